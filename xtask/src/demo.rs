//! `cargo xtask demo`: the seed's docker-compose system, without Docker, on 127.0.0.1.
//!
//! Jaeger v2 ← the OpenTelemetry Collector running the configuration rendered from
//! `manifests/examples/shop.yaml` (Jaeger endpoint pointed at the local Jaeger) ← two
//! traced-service processes, `shop` calling `shop-backend` on `/chain`. Metrics on the
//! collector's Prometheus exporter. Stays up until Ctrl-C, then stops everything.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use testkit::collector::Collector;
use testkit::jaeger::Jaeger;
use testkit::{Process, TempDir, free_port, wait_until};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Port of the app (`shop`); its backend gets a free port.
    #[arg(long, default_value_t = 3000)]
    app_port: u16,
    /// Port of the Jaeger UI and query API.
    #[arg(long, default_value_t = 16686)]
    jaeger_port: u16,
    /// Port of the collector's Prometheus exporter (the app's metrics).
    #[arg(long, default_value_t = 8889)]
    prometheus_port: u16,
}

fn check_free(port: u16, flag: &str) -> Result<()> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!("port {port} on 127.0.0.1 is taken; pick another with {flag} <port>");
    }
    Ok(())
}

pub fn run(o: &Options) -> Result<()> {
    check_free(o.app_port, "--app-port")?;
    check_free(o.jaeger_port, "--jaeger-port")?;
    check_free(o.prometheus_port, "--prometheus-port")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    println!("demo: building traced-service ...");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "-p", "traced-service"])
        .status()?;
    if !status.success() {
        bail!("building traced-service failed");
    }
    let service_bin = std::env::current_dir()?.join("target/release/traced-service");

    println!("demo: starting Jaeger on :{} ...", o.jaeger_port);
    let jaeger = Jaeger::start_with_ui_port(Some(o.jaeger_port));

    let example = "manifests/examples/shop.yaml";
    let mut app =
        tracedapp_operator::cli::read_app(example.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let j = app
        .spec
        .exporters
        .jaeger
        .as_mut()
        .context("the example exports to Jaeger")?;
    j.endpoint = jaeger.otlp_grpc.clone();
    j.tls.insecure = true;
    // The collector built here has no awsxray exporter (see tools/otelcol-builder.yaml).
    let xray = app.spec.exporters.xray.take().is_some();
    let config = tracedapp_api::collector::render(&app.spec).to_yaml();
    println!("demo: starting the collector with the config rendered from {example} ...");
    let collector = Collector::start_with_prometheus_port(&config, Some(o.prometheus_port));

    let dir = TempDir::new("demo");
    let backend_port = free_port();
    let start_service = |name: &str, port: u16, downstream: Option<String>| {
        let mut cmd = Command::new(&service_bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .env("OTEL_SERVICE_NAME", name)
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=demo",
            )
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_grpc_url)
            .env("OTEL_METRIC_EXPORT_INTERVAL", "5000")
            .env("LOG_FORMAT", "json");
        if let Some(url) = downstream {
            cmd.env("DOWNSTREAM_URL", url);
        }
        let p = Process::start(name, cmd, dir.path().join(format!("{name}.log")));
        wait_until(
            &format!("{name} to listen"),
            Duration::from_secs(30),
            || testkit::process::listening(port),
        );
        p
    };
    println!(
        "demo: starting shop (:{}) and shop-backend (:{backend_port}) ...",
        o.app_port
    );
    let _backend = start_service("shop-backend", backend_port, None);
    let _frontend = start_service(
        "shop",
        o.app_port,
        Some(format!("http://127.0.0.1:{backend_port}/")),
    );

    let app_url = format!("http://127.0.0.1:{}", o.app_port);
    println!("demo: sending traffic ...");
    for path in [
        "/",
        "/health",
        "/chain",
        "/metrics-test",
        "/chain",
        "/no-such-page",
        "/chain",
    ] {
        let status = reqwest::blocking::get(format!("{app_url}{path}"))
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        println!("  GET {path} -> {status}");
    }
    println!(
        "demo: waiting for the first /chain trace in Jaeger (the collector batches for up to 10 s) ..."
    );
    let mut trace_id = None;
    wait_until("a /chain trace in Jaeger", Duration::from_secs(60), || {
        trace_id = jaeger.traces("shop", 20).into_iter().find_map(|t| {
            let chained = t["spans"]
                .as_array()?
                .iter()
                .any(|s| s["operationName"] == "GET /chain");
            chained
                .then(|| t["traceID"].as_str().map(str::to_owned))
                .flatten()
        });
        trace_id.is_some()
    });

    let ui = format!("http://127.0.0.1:{}", o.jaeger_port);
    println!();
    println!("TracedApp demo is running. Ctrl-C stops everything.");
    println!("  app:              {app_url}/   (try /chain, /metrics-test)");
    let trace_id = trace_id.unwrap_or_default();
    println!("  Jaeger traces:    {ui}/api/traces?service=shop");
    println!("  a /chain trace:   {ui}/api/traces/{trace_id}");
    println!(
        "                    (with a full Jaeger build, the UI: {ui}/trace/{trace_id}; the one built"
    );
    println!(
        "                    here from Go modules serves a placeholder page: the UI assets are not in them)"
    );
    println!(
        "  Prometheus:       {}   (app_requests_total, app_request_duration_seconds)",
        collector.prometheus_url
    );
    println!("  collector config: {}", collector.config_file.display());
    if xray {
        println!(
            "  X-Ray:            not in this demo: the collector built here has no awsxray exporter\n\
             \x20                   (the Go proxy here refuses its modules); on AWS the same config sends to X-Ray."
        );
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\ndemo: stopping ...");
    Ok(())
}
