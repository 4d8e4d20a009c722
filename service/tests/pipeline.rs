//! The seed's pipeline (the seed is the Flask guide this project rebuilds, see the README), end
//! to end, with real programs on 127.0.0.1: two service processes (`/chain` from one to the
//! other) → the OpenTelemetry Collector running the configuration rendered from
//! `manifests/examples/shop.yaml` → Jaeger v2; metrics → the collector's Prometheus exporter.
//!
//! The example's X-Ray leg is left out here (its region's real endpoint must not be called):
//! `aws.rs` runs the AWS half against moto, with `manifests/examples/aws.yaml`.

mod common;

use std::time::Duration;

use common::Service;
use serde_json::Value;
use testkit::collector::Collector;
use testkit::jaeger::Jaeger;
use testkit::wait_until;
use tracedapp_api::spec::Compression;

/// The example's collector config, with Jaeger pointed at `jaeger` and X-Ray left out (see
/// the module docs).
fn rendered_config(jaeger: &Jaeger) -> String {
    rendered_config_with(jaeger, Compression::default())
}

/// The same with `compression` on the Jaeger hop.
fn rendered_config_with(jaeger: &Jaeger, compression: Compression) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/shop.yaml"
    );
    let mut app = tracedapp_api::load::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
    let j = app
        .spec
        .exporters
        .jaeger
        .as_mut()
        .expect("the example exports to Jaeger");
    j.endpoint = jaeger.otlp_grpc.clone();
    j.tls.insecure = true;
    j.compression = compression;
    app.spec.exporters.xray = None;
    tracedapp_api::collector::render(&app.spec).to_yaml()
}

/// The spans of a Jaeger trace: (service, operation, span id, parent span id, trace id).
fn spans(trace: &Value) -> Vec<(String, String, String, String, String)> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let service = processes[s["processID"].as_str().unwrap()]["serviceName"]
                .as_str()
                .unwrap()
                .to_owned();
            let parent = s["references"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                .map(|r| r["spanID"].as_str().unwrap().to_owned())
                .unwrap_or_default();
            (
                service,
                s["operationName"].as_str().unwrap().to_owned(),
                s["spanID"].as_str().unwrap().to_owned(),
                parent,
                s["traceID"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn chained_services_reach_jaeger_and_prometheus_through_the_rendered_collector() {
    let jaeger = Jaeger::start();
    let collector = Collector::start(&rendered_config(&jaeger));
    let backend = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", "backend")],
        &[],
    );
    let frontend = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", "frontend")],
        &["--downstream-url", &backend.url("/")],
    );
    for _ in 0..3 {
        assert_eq!(testkit::http::status(&frontend.url("/chain")), 200);
        assert_eq!(testkit::http::status(&frontend.url("/metrics-test")), 200);
    }

    // Traces: one trace per /chain with frontend SERVER → frontend CLIENT → backend SERVER.
    // The rendered batch processor waits up to 10 s before sending.
    let mut chain_trace = None;
    wait_until(
        "a /chain trace with both services in Jaeger",
        Duration::from_secs(60),
        || {
            chain_trace = jaeger
                .traces("frontend", 50)
                .into_iter()
                .find(|t| spans(t).iter().any(|s| s.0 == "backend"));
            chain_trace.is_some()
        },
    );
    let chain_trace = chain_trace.unwrap();
    // Drawn as `tracedapp trace` draws it: parentage as indentation.
    traceview::record("chain.jaeger.json", &chain_trace);
    let drawing = traceview::draw(
        chain_trace["traceID"].as_str().unwrap(),
        &traceview::jaeger::spans(&chain_trace),
        &traceview::Style::default(),
    );
    assert!(
        drawing[1].starts_with("frontend: GET /chain "),
        "{drawing:#?}"
    );
    assert!(drawing[2].starts_with("  frontend: GET "), "{drawing:#?}");
    assert!(
        drawing[3].starts_with("    backend: GET / "),
        "{drawing:#?}"
    );
    let spans = spans(&chain_trace);
    let find = |service: &str, op: &str| {
        spans
            .iter()
            .find(|s| s.0 == service && s.1 == op)
            .unwrap_or_else(|| panic!("no {service} span {op:?} in {spans:?}"))
    };
    let server = find("frontend", "GET /chain");
    let client = find("frontend", "GET");
    let downstream = find("backend", "GET /");
    assert_eq!(
        client.3, server.2,
        "the client span is a child of the server span"
    );
    assert_eq!(
        downstream.3, client.2,
        "the backend's span is a child of the client span"
    );
    assert!(
        spans.iter().all(|s| s.4 == server.4),
        "one trace id across both processes"
    );
    assert!(jaeger.services().contains(&"backend".to_owned()));

    // Metrics: the app's instruments through the collector's Prometheus exporter, by endpoint.
    let mut scrape = String::new();
    wait_until(
        "app metrics on the Prometheus exporter",
        Duration::from_secs(60),
        || {
            scrape = collector.scrape();
            scrape.contains("app_requests_total{") && scrape.contains("endpoint=\"/metrics-test\"")
        },
    );
    let requests = scrape
        .lines()
        .find(|l| {
            l.starts_with("app_requests_total{")
                && l.contains("endpoint=\"/chain\"")
                && l.contains("frontend")
        })
        .unwrap_or_else(|| panic!("no app_requests_total for /chain:\n{scrape}"));
    assert!(
        requests.ends_with(" 3"),
        "three /chain requests counted: {requests}"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("app_request_duration_seconds_bucket{")
                && l.contains("endpoint=\"/metrics-test\"")),
        "the request-duration histogram by endpoint:\n{scrape}"
    );
    assert!(scrape.contains("http_server_request_duration_seconds_bucket{"));
}

#[test]
fn every_request_becomes_a_trace_in_jaeger() {
    const N: usize = 300;
    let jaeger = Jaeger::start();
    let collector = Collector::start(&rendered_config(&jaeger));
    let mut svc = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", "zero-loss")],
        &[],
    );
    for i in 0..N {
        assert_eq!(
            testkit::http::status(&svc.url("/health")),
            200,
            "request {i}"
        );
    }
    assert_eq!(svc.terminate(Duration::from_secs(20)), Some(0));
    let mut count = 0;
    wait_until(
        &format!("{N} traces in Jaeger"),
        Duration::from_secs(60),
        || {
            count = jaeger.traces("zero-loss", N * 2).len();
            count >= N
        },
    );
    // Give stragglers a moment, then check there is exactly one trace per request.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(jaeger.traces("zero-loss", N * 2).len(), N);
}

/// Every `exporters.jaeger.compression` a spec may choose reaches a real Jaeger whole.
#[test]
fn every_jaeger_compression_reaches_jaeger() {
    const N: usize = 20;
    let jaeger = Jaeger::start();
    for compression in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
        Compression::None,
    ] {
        let name = format!("compression-{}", compression.as_str());
        let collector = Collector::start(&rendered_config_with(&jaeger, compression));
        let mut svc = Service::start(
            &collector.otlp_grpc_url,
            &[("OTEL_SERVICE_NAME", name.as_str())],
            &[],
        );
        for _ in 0..N {
            assert_eq!(testkit::http::status(&svc.url("/health")), 200);
        }
        assert_eq!(svc.terminate(Duration::from_secs(20)), Some(0));
        wait_until(
            &format!("{N} traces of {name} in Jaeger"),
            Duration::from_secs(60),
            || jaeger.traces(&name, N * 2).len() >= N,
        );
    }
}
