//! `tracedapp-operator`: the controller that keeps every TracedApp's children and status.
//!
//! Reconciles each TracedApp into a ConfigMap, ServiceAccount, Deployment, Service and
//! NetworkPolicy (server-side apply, owner references), writes its status and publishes Events. A pass that
//! finds nothing to change sends no write. Uses the in-cluster configuration or $KUBECONFIG.
//! On SIGTERM/SIGINT: finishes the passes under way, releases the lease, exits 0.
//! Exit codes: 0 stopped cleanly, 2 bad arguments, 3 the Kubernetes API failed (or the lease
//! was lost).

use std::process::ExitCode;

use clap::Parser;

const ENVIRONMENT: &str = "\
ENVIRONMENT:
  RUST_LOG                     log filter (default: info), e.g. info,kube=debug
  OTEL_EXPORTER_OTLP_ENDPOINT  export the operator's own traces over OTLP/gRPC, e.g.
                               http://jaeger-collector:4317 (OTEL_SERVICE_NAME defaults to
                               tracedapp-operator; OTEL_SDK_DISABLED=true turns it off)
  KUBECONFIG                   cluster to use outside a pod

EXAMPLES:
  tracedapp-operator --namespace demo                       one namespace
  tracedapp-operator --leader-elect --lease-namespace tracedapp-system   one of several replicas

EXIT CODES: 0 stopped cleanly, 2 bad arguments, 3 Kubernetes API failure or lost lease.";

/// The TracedApp operator: keeps every TracedApp's ConfigMap, ServiceAccount, Deployment,
/// Service and NetworkPolicy applied and its status current. A pass that finds nothing to change sends no write.
#[derive(Debug, Parser)]
#[command(name = "tracedapp-operator", version, after_help = ENVIRONMENT)]
struct Args {
    /// Watch only these namespaces (repeat or comma-separate; default: all namespaces).
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Reconcile only while holding a Lease, so that several replicas can run with one
    /// active. Needs get, create and patch on leases in --lease-namespace.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: --operator-namespace, the operator's own).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "tracedapp-operator")]
    lease_name: String,
    /// Seconds a Lease holds without renewal: the longest fail-over after a leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration: u64,
    /// Who this replica is, in the Lease and in Events (in a cluster: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// The operator's own namespace: each TracedApp's NetworkPolicy lets only the operator's
    /// pods in it read the collectors' own metrics.
    #[arg(long, env = "POD_NAMESPACE", default_value = tracedapp_k8s::manifests::DEFAULT_OPERATOR_NAMESPACE)]
    operator_namespace: String,
    /// The collector image of every TracedApp whose spec names none (and keeps the default
    /// contrib distribution), e.g. your build of TracedApp's distribution
    /// (`tools/otelcol.Dockerfile`). A spec's `collector.image` still wins. Default: the
    /// distribution's pinned image.
    #[arg(long, env = "COLLECTOR_IMAGE", value_parser = collector_image)]
    collector_image: Option<String>,
    /// Export health: read each app's collectors and set the `ExportHealthy` condition
    /// (`false` writes no such condition and reads nothing).
    #[arg(long, env = "EXPORT_HEALTH", default_value_t = true, action = clap::ArgAction::Set)]
    export_health: bool,
    /// Seconds between two rounds of reads (each shifted by up to ±20 %).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    export_interval_seconds: u64,
    /// Seconds of reads a verdict covers.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86400))]
    export_window_seconds: u64,
    /// An exporter whose queue holds batches and that delivered nothing for this many seconds
    /// is failing (it is retrying; it counts failures only when it gives up).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86400))]
    export_stall_seconds: u64,
    /// Failed share, in percent, at which an exporter is failing.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=100))]
    export_failure_percent: u8,
    /// Collectors read at once, over all apps.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    export_reads_in_flight: u64,
    /// Pods read per app in each round.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    export_pods_per_app: u64,
    /// Address for /healthz, /readyz and Prometheus /metrics; `off` to serve none.
    #[arg(long, env = "METRICS_BIND", default_value = "0.0.0.0:8080")]
    metrics_bind: String,
}

/// `--collector-image`: checked as `spec.collector.image` is.
fn collector_image(s: &str) -> Result<String, String> {
    tracedapp_api::validate::collector_image(s).map(|()| s.to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracedapp-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_controller(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("tracedapp-operator: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run_controller(args: Args) -> Result<(), (u8, String)> {
    let metrics_addr = match args.metrics_bind.as_str() {
        "off" => None,
        addr => Some(addr.parse().map_err(|e| {
            bad(format!(
                "--metrics-bind {addr:?}: not an address like 0.0.0.0:8080 ({e})"
            ))
        })?),
    };
    let telemetry = tracedapp_operator::telemetry::init().map_err(bad)?;
    let export_health = export_settings(&args);
    let identity = args.identity.unwrap_or_else(default_identity);
    let options = tracedapp_operator::controller::Options {
        namespaces: args.namespaces,
        leader_election: args.leader_elect.then(|| {
            tracedapp_operator::controller::leader::LeaseOptions {
                namespace: args
                    .lease_namespace
                    .clone()
                    .unwrap_or_else(|| args.operator_namespace.clone()),
                name: args.lease_name,
                duration: std::time::Duration::from_secs(args.lease_duration),
            }
        }),
        metrics_addr,
        identity,
        site: tracedapp_k8s::manifests::Site {
            operator_namespace: args.operator_namespace,
            collector_image: args.collector_image,
        },
        export_health,
    };
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            telemetry.shutdown().await;
            return Err(api(format!("cannot reach Kubernetes: {e}")));
        }
    };
    tracing::info!(
        namespaces = ?options.namespaces,
        leader_elect = options.leader_election.is_some(),
        identity = %options.identity,
        "controller starting"
    );
    let outcome = tracedapp_operator::controller::run(client, options).await;
    telemetry.shutdown().await;
    outcome.map_err(|e| api(format!("{e:#}")))
}

/// The host name and process id: unique per replica outside a cluster too.
fn export_settings(args: &Args) -> tracedapp_operator::controller::health::Settings {
    use std::time::Duration;
    let defaults = tracedapp_operator::controller::health::Settings::default();
    tracedapp_operator::controller::health::Settings {
        enabled: args.export_health,
        interval: Duration::from_secs(args.export_interval_seconds),
        max_in_flight: args.export_reads_in_flight as usize,
        pods_per_app: args.export_pods_per_app as usize,
        rules: tracedapp_operator::controller::health::Rules {
            window: Duration::from_secs(args.export_window_seconds),
            threshold: f64::from(args.export_failure_percent) / 100.0,
            stall_after: Duration::from_secs(args.export_stall_seconds),
        },
        ..defaults
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "tracedapp".into());
    format!("{host}-{}", std::process::id())
}

fn bad(message: String) -> (u8, String) {
    (2, message)
}

fn api(message: String) -> (u8, String) {
    (3, message)
}
