//! A stall of the sink under load: does the service's bounded queue ride it out, and from which
//! stall length on does it drop (and say so)?
//!
//! Per stall length: traced-service (release, 100 % sampled, default queue) calling itself on
//! `/chain` (three spans per request: server, client, the callee's server), exporting over
//! OTLP/gRPC to the real collector running TracedApp's default rendered configuration
//! (`manifests/examples/shop.yaml`: `memory_limiter`, `batch`), which exports to a counting
//! OTLP receiver. wrk loads `/chain` for `seconds`; halfway, the collector is stopped
//! (`SIGSTOP`) for the stall length, then continued. Printed per run: spans per second that
//! reached the receiver, the spans the service says it dropped (queue full / export failed),
//! and the spans the receiver got against three per request wrk counted.
//!
//! Usage: `bench/stall.sh [seconds=20] [stalls in ms=0,100,250,500,1000,2000]`
//! (needs `cargo xtask setup` and wrk).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use testkit::collector::{Collector, Options};
use testkit::otlp::{Handler, Server};
use testkit::process::{Process, TempDir, free_port, listening, wait_until};

/// Spans one `/chain` request makes when the service calls itself.
const SPANS_PER_CHAIN: u64 = 3;

#[derive(Debug, Default)]
struct Count(AtomicU64);

impl Handler for Count {
    fn traces(&self, request: ExportTraceServiceRequest) {
        let n: usize = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn metrics(&self, _: ExportMetricsServiceRequest) {}
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(20, |s| s.parse().expect("seconds"));
    let stalls: Vec<u64> = args
        .get(2)
        .map_or("0,100,250,500,1000,2000", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("a stall in ms"))
        .collect();
    let service_bin = std::path::Path::new("target/release/traced-service");
    assert!(
        service_bin.is_file(),
        "build it first: cargo build --release -p traced-service"
    );
    println!(
        "{:>8} {:>12} {:>10} {:>12} {:>14} {:>16}",
        "stall", "spans/s", "dropped", "queue_full", "export_failed", "received/3×req"
    );
    for stall in stalls {
        let count = Arc::new(Count::default());
        let sink = Server::grpc(([127, 0, 0, 1], 0).into(), count.clone()).await;
        let mut app = tracedapp_api::load::from_yaml(
            &std::fs::read_to_string("manifests/examples/shop.yaml").expect("the example"),
        )
        .expect("a valid example");
        let export = app.spec.exporters.jaeger.as_mut().expect("Jaeger export");
        export.endpoint = sink.addr.to_string();
        export.tls.insecure = true;
        // Traces to Jaeger only: the example's X-Ray exporter would call AWS.
        app.spec.exporters.xray = None;
        let collector = Collector::start_for(&app.spec, &Options::default());

        let dir = TempDir::new("stall");
        let port = free_port();
        let mut cmd = Command::new(service_bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_grpc_url)
            .env("OTEL_TRACES_SAMPLER", "always_on")
            .env("OTEL_SERVICE_NAME", "stall")
            .env("DOWNSTREAM_URL", format!("http://127.0.0.1:{port}/"))
            .env("LOG_FORMAT", "json");
        let mut service = Process::start("traced-service", cmd, dir.path().join("service.log"));
        wait_until("the service to listen", Duration::from_secs(20), || {
            listening(port)
        });

        let wrk = Command::new("wrk")
            .args(["-t2", "-c16", &format!("-d{seconds}s")])
            .arg(format!("http://127.0.0.1:{port}/chain"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("wrk (Debian package wrk)");
        tokio::time::sleep(Duration::from_secs(seconds) / 2).await;
        if stall > 0 {
            signal(collector.pid(), "STOP");
            tokio::time::sleep(Duration::from_millis(stall)).await;
            signal(collector.pid(), "CONT");
        }
        let out = wrk.wait_with_output().expect("wrk's report");
        let report = String::from_utf8_lossy(&out.stdout);
        let requests: u64 = report
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("wrk's request count");

        service.terminate(Duration::from_secs(40));
        // What reached the collector goes on within its batch timeout.
        let mut last = u64::MAX;
        wait_until("the receiver to settle", Duration::from_secs(60), || {
            std::thread::sleep(Duration::from_secs(2));
            let now = count.0.load(Ordering::Relaxed);
            std::mem::replace(&mut last, now) == now
        });
        let received = count.0.load(Ordering::Relaxed);
        if received == 0 {
            eprintln!(
                "nothing reached the receiver; the collector's log:\n{}\nthe service's:\n{}",
                collector.log(),
                service.log_tail(20)
            );
        }
        let (dropped, queue_full, export_failed) = drops(&service.log());
        println!(
            "{:>6}ms {:>12.0} {:>10} {:>12} {:>14} {:>16.3}",
            stall,
            received as f64 / seconds as f64,
            dropped,
            queue_full,
            export_failed,
            received as f64 / (SPANS_PER_CHAIN * requests) as f64
        );
    }
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid}");
}

/// `(dropped, queue_full, export_failed)` from the service's shutdown warning (zeros without it).
fn drops(log: &str) -> (u64, u64, u64) {
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("some spans were dropped"))
        });
    let field = |k: &str| line.as_ref().and_then(|v| v[k].as_u64()).unwrap_or(0);
    (
        field("dropped_spans"),
        field("queue_full"),
        field("export_failed"),
    )
}
