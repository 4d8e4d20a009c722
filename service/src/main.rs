use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reqwest::Url;

use traced_service::downstream::{Downstream, check_url};
use traced_service::server::{Limits, default_max_connections, serve, shutdown_signal};
use traced_service::{AppState, app};
use tracedapp_telemetry::config::TelemetryConfig;
use tracedapp_telemetry::{Telemetry, TelemetryOptions};

const OTEL_HELP: &str = "\
TELEMETRY (standard OpenTelemetry environment variables; empty counts as unset):
  OTEL_SDK_DISABLED=true|false          turn all export off (default false)
  OTEL_SERVICE_NAME                     service.name (default traced-service)
  OTEL_RESOURCE_ATTRIBUTES              k=v,k2=v2 (percent-encoded values), e.g.
                                        deployment.environment.name=dev
  OTEL_EXPORTER_OTLP_ENDPOINT           collector URL (default http://localhost:4317 for grpc,
                                        http://localhost:4318 for http/protobuf)
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT    full URL for traces only (used as is)
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT   full URL for metrics only (used as is)
  OTEL_EXPORTER_OTLP_PROTOCOL           grpc (default) | http/protobuf; also _TRACES_/_METRICS_
  OTEL_EXPORTER_OTLP_HEADERS            k=v,k2=v2 (percent-encoded values) sent with every
                                        export, e.g. authorization=Bearer%20<token>; values
                                        are never logged (credentials in an endpoint URL are
                                        refused: endpoints are)
  OTEL_EXPORTER_OTLP_TIMEOUT            ms one export may take, retries included (default
                                        10000)
  OTEL_EXPORTER_OTLP_COMPRESSION        gzip | none (default); each of these three also
                                        has _TRACES_/_METRICS_ variants
  OTEL_TRACES_SAMPLER                   always_on | always_off | traceidratio |
                                        parentbased_always_on (default) |
                                        parentbased_always_off | parentbased_traceidratio
  OTEL_TRACES_SAMPLER_ARG               ratio in [0, 1] for the *traceidratio samplers
  OTEL_PROPAGATORS                      tracecontext,baggage,xray (default) | none; xray reads
                                        the X-Amzn-Trace-Id header an AWS load balancer adds
  OTEL_METRIC_EXPORT_INTERVAL           ms between metric exports (default 60000)
  OTEL_BSP_MAX_QUEUE_SIZE               spans waiting for export at most (default 8192); more
                                        are dropped and counted in app.telemetry.spans.dropped
  SPAN_QUEUE_MAX_BYTES                  what those spans may weigh at most, estimated as encoded
                                        (default 67108864, 64 MiB; ours, not an OTEL_ variable)
  OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT     longest string attribute value kept, in bytes; longer
                                        ones are cut (default 4096; the _SPAN_ variant wins)
  OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_EXPORT_TIMEOUT
                                        batching, read by the SDK
  RUST_LOG                              log filter, e.g. info or traced_service=debug

An invalid value stops the service at start-up with one line naming the variable.

EXAMPLES:
  traced-service                                       # :3000, export to localhost:4317
  OTEL_SERVICE_NAME=shop OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 traced-service
  traced-service --port 3001 --downstream-url http://127.0.0.1:3000/   # /chain calls :3000
";

/// The reference traced service: `/`, `/health`, `/metrics-test` and `/chain`, exporting
/// OpenTelemetry traces and metrics over OTLP.
#[derive(Debug, Parser)]
#[command(version, after_help = OTEL_HELP)]
struct Args {
    /// Port to listen on (0 picks a free one; the chosen address is logged).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,

    /// Address to bind.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    bind: IpAddr,

    /// URL that `GET /chain` calls with the trace context injected (another instance of this
    /// service, or any HTTP service). Without it, /chain answers 503.
    #[arg(long, env = "DOWNSTREAM_URL")]
    downstream_url: Option<Url>,

    /// Timeout for the /chain call, in seconds.
    #[arg(long, env = "DOWNSTREAM_TIMEOUT_SECS", default_value_t = 5.0)]
    downstream_timeout_secs: f64,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10.0)]
    shutdown_grace_secs: f64,

    /// The longest a client may take to send a request's head, in seconds, counted from the
    /// connection's start for the first one: a connection that says nothing, or too slowly, is
    /// closed (HTTP/1 and HTTP/2 alike).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 5.0)]
    header_read_timeout_secs: f64,

    /// The longest a connection may stay open with no request in flight, in seconds (HTTP/1
    /// keep-alive and HTTP/2 alike; longer than a load balancer's idle timeout, AWS ALB's 60 s).
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 75.0)]
    idle_timeout_secs: f64,

    /// Connections open at once (default: 4096, or less under a lower file-descriptor limit,
    /// so that accepting never fails for lack of descriptors).
    #[arg(long, env = "MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: Option<u64>,

    /// After the server stops, how long exporting queued spans and metrics may take, in seconds.
    #[arg(long, env = "TELEMETRY_FLUSH_SECS", default_value_t = 5.0)]
    telemetry_flush_secs: f64,

    /// Generate X-Ray-style trace ids (start time in the first 4 bytes). X-Ray also accepts
    /// W3C random ids, so this is only needed for older X-Ray tooling.
    #[arg(long, env = "XRAY_TRACE_IDS")]
    xray_trace_ids: bool,

    /// Log format: json, text, or auto (json unless stderr is a terminal).
    #[arg(long, env = "LOG_FORMAT", default_value = "auto", value_parser = ["auto", "json", "text"])]
    log_format: String,
    /// One log line per request (method, route, status, duration, trace id) at info.
    #[arg(long, env = "ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    access_log: bool,
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("invalid --{flag}={value}: expected a number of seconds >= 0"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match TelemetryConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("traced-service: {e}");
            return ExitCode::from(2);
        }
    };
    let durations = (|| {
        Ok::<_, String>((
            seconds(args.downstream_timeout_secs, "downstream-timeout-secs")?,
            seconds(args.shutdown_grace_secs, "shutdown-grace-secs")?,
            seconds(args.telemetry_flush_secs, "telemetry-flush-secs")?,
            seconds(args.header_read_timeout_secs, "header-read-timeout-secs")?,
            seconds(args.idle_timeout_secs, "idle-timeout-secs")?,
        ))
    })();
    let (downstream_timeout, grace, flush, header_read_timeout, idle_timeout) = match durations {
        Ok(d) => d,
        Err(e) => {
            eprintln!("traced-service: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Err(e)) = args.downstream_url.as_ref().map(check_url) {
        eprintln!("traced-service: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("traced-service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json_logs = match args.log_format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let options = TelemetryOptions {
        xray_trace_ids: args.xray_trace_ids,
        json_logs,
        traces_only: false,
    };
    let result = runtime.block_on(async {
        let telemetry = Telemetry::init(&config, options).map_err(|e| e.to_string())?;
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        if config.disabled {
            tracing::info!(
                address = %local,
                service_name = %config.service_name,
                telemetry = "disabled",
                "listening"
            );
        } else {
            tracing::info!(
                address = %local,
                service_name = %config.service_name,
                traces_endpoint = %config.traces.endpoint,
                telemetry = "enabled",
                "listening"
            );
        }
        // After the log is set up: a client without CA certificates says so there.
        let downstream = args
            .downstream_url
            .map(|url| Downstream::new(url, downstream_timeout))
            .transpose()
            .map_err(|e| e.to_string())?;
        let limits = Limits {
            header_read_timeout,
            idle_timeout,
            max_connections: args
                .max_connections
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(default_max_connections),
        };
        tracing::debug!(?limits, "connection limits");
        let served = serve(
            listener,
            app(AppState {
                observed: !config.disabled,
                access_log: args.access_log,
                ..AppState::new(downstream)
            }),
            shutdown_signal(),
            grace,
            limits,
        )
        .await;
        tracing::info!(
            flush_s = flush.as_secs_f64(),
            "server stopped; flushing telemetry"
        );
        tokio::task::spawn_blocking(move || telemetry.shutdown(flush))
            .await
            .map_err(|e| format!("telemetry flush panicked: {e}"))?;
        served.map_err(|e| format!("server error: {e}"))
    });
    // Exporter tasks may still hold the runtime; don't wait for them past the flush.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("traced-service: {e}");
            ExitCode::FAILURE
        }
    }
}
