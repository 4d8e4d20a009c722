//! Sizing the collector sidecar: the real collector running the configuration TracedApp renders
//! by default (OTLP receivers, `memory_limiter`, `batch`, traces to a real Jaeger and to X-Ray,
//! moto standing in for AWS), fed OTLP/gRPC span batches at fixed rates. Prints, per phase:
//! spans offered and refused, the collector's CPU (cores) and peak resident memory.
//!
//! Phases: idle (10 s), then each rate for `seconds`, then a burst: Jaeger stopped and spans
//! sent as fast as one client can, to see the `memory_limiter` refuse data before the
//! container's memory limit is reached.
//!
//! Usage: `[MEMORY_LIMIT_MIB=256] bench/collector.sh [seconds=20] [rates=1000,5000,20000]`
//! (needs `cargo xtask setup`).

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use testkit::collector::{Collector, Options};
use testkit::jaeger::Jaeger;
use testkit::moto::{self, Moto};
use testkit::process::{cpu_seconds, memory_mib};
use tracedapp_api::resources;

/// Spans per request: what the service's batch exporter sends under load is larger (512), but
/// smaller requests give the rate control a finer grain.
const SPANS_PER_REQUEST: usize = 100;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(20, |s| s.parse().expect("seconds"));
    let rates: Vec<u64> = args.get(2).map_or(vec![1_000, 5_000, 20_000], |s| {
        s.split(',').map(|r| r.parse().expect("rate")).collect()
    });

    let mut jaeger = Some(Jaeger::start());
    let mut app = tracedapp_api::load::from_yaml(
        &std::fs::read_to_string("manifests/examples/shop.yaml").expect("the example"),
    )
    .expect("a valid example");
    let jaeger_export = app.spec.exporters.jaeger.as_mut().expect("Jaeger export");
    jaeger_export.endpoint = jaeger.as_ref().unwrap().otlp_grpc.clone();
    jaeger_export.tls.insecure = true;
    // X-Ray: moto on 127.0.0.1 stands in for AWS.
    let aws = Moto::start();
    let xray = app.spec.exporters.xray.as_mut().expect("X-Ray export");
    xray.endpoint = Some(aws.url.clone());
    // `MEMORY_LIMIT_MIB=256`: try another memory_limiter limit (spike: a quarter of it).
    if let Some(mib) = std::env::var("MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        app.spec.collector.memory_limit_mib = mib;
        app.spec.collector.spike_limit_mib = mib / 4;
    }
    let spec = &app.spec;
    let limiter = spec.collector.memory_limit_mib;
    let collector = Collector::start_for(
        spec,
        &Options {
            env: moto::credentials(),
            ..Default::default()
        },
    );
    let pid = collector.pid();
    println!(
        "collector defaults: memory_limiter {} MiB (spike {} MiB), container limit {} MiB, GOMEMLIMIT {} MiB",
        limiter,
        spec.collector.spike_limit_mib,
        resources::collector_memory_limit_mib(limiter),
        resources::collector_gomemlimit_mib(limiter)
    );
    let mut client = TraceServiceClient::connect(collector.otlp_grpc_url.clone())
        .await
        .expect("the collector's OTLP/gRPC receiver");

    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "idle                 RSS {:>6.1} MiB",
        memory_mib(pid, "VmRSS")
    );
    println!("phase                offered/s  refused   CPU (cores)  peak RSS");
    for rate in rates {
        let r = run(&mut client, pid, Some(rate), Duration::from_secs(seconds)).await;
        r.print(&format!("{rate} spans/s"));
    }
    // The burst: the exporter's destination gone, everything backs up into the collector.
    drop(jaeger.take());
    let r = run(&mut client, pid, None, Duration::from_secs(seconds * 2)).await;
    r.print("burst, Jaeger down");
    let log = collector.log();
    let xray_errors = log
        .lines()
        .filter(|l| l.contains("\terror\t") && l.contains("awsxray"))
        .count();
    println!("collector log: {xray_errors} error lines from the X-Ray exporter");
}

struct Phase {
    offered: u64,
    refused: u64,
    elapsed: Duration,
    cpu: f64,
    peak_mib: f64,
}

impl Phase {
    fn print(&self, label: &str) {
        println!(
            "{label:<20} {:>9.0}  {:>7}   {:>6.2}       {:>6.1} MiB",
            self.offered as f64 / self.elapsed.as_secs_f64(),
            self.refused,
            self.cpu / self.elapsed.as_secs_f64(),
            self.peak_mib
        );
    }
}

/// Sends batches at `rate` spans/s (or as fast as answered) for `length`, sampling the
/// collector's memory every 200 ms.
async fn run(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    pid: u32,
    rate: Option<u64>,
    length: Duration,
) -> Phase {
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    let (mut offered, mut refused) = (0u64, 0u64);
    let mut peak: f64 = memory_mib(pid, "VmRSS");
    let mut last_sample = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < length {
        if let Some(rate) = rate {
            // Where the schedule says we should be; sleep until the next request is due.
            let due = Duration::from_secs_f64(offered as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        n += 1;
        let request = batch(n);
        offered += SPANS_PER_REQUEST as u64;
        match client.export(request).await {
            Ok(answer) => {
                if let Some(partial) = answer.into_inner().partial_success {
                    refused += partial.rejected_spans as u64;
                }
            }
            Err(_) => refused += SPANS_PER_REQUEST as u64,
        }
        if last_sample.elapsed() >= Duration::from_millis(200) {
            peak = peak.max(memory_mib(pid, "VmRSS"));
            last_sample = Instant::now();
        }
    }
    Phase {
        offered,
        refused,
        elapsed: started.elapsed(),
        cpu: cpu_seconds(pid) - cpu_before,
        peak_mib: peak.max(memory_mib(pid, "VmRSS")),
    }
}

/// One request of server spans shaped like traced-service's (the same attribute keys).
fn batch(n: u64) -> ExportTraceServiceRequest {
    let text = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let int = |k: &str, v: i64| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (0..SPANS_PER_REQUEST as u64)
        .map(|i| {
            let id = n * SPANS_PER_REQUEST as u64 + i + 1;
            Span {
                // X-Ray's shape: the first 4 bytes are the epoch second (its exporter drops
                // spans whose trace id does not start with a recent time).
                trace_id: [
                    &((now / 1_000_000_000) as u32).to_be_bytes()[..],
                    &id.to_be_bytes(),
                    &1u32.to_be_bytes(),
                ]
                .concat(),
                span_id: id.to_be_bytes().to_vec(),
                name: "GET /chain".into(),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: now - 1_000_000,
                end_time_unix_nano: now,
                attributes: vec![
                    text("http.request.method", "GET"),
                    text("http.route", "/chain"),
                    text("url.path", "/chain"),
                    text("url.scheme", "http"),
                    text("server.address", "shop.demo.svc"),
                    int("server.port", 8080),
                    text("client.address", "10.88.0.7"),
                    text("user_agent.original", "curl/8.5.0"),
                    int("http.response.status_code", 200),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "shop"),
                    text("service.version", "0.1.0"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
