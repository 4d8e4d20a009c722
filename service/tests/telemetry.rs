//! What the real service process exports, as recorded by an in-process OTLP receiver.

mod common;

use std::time::Duration;

use common::{Receiver, Service};
use testkit::otlp::{KIND_CLIENT, KIND_SERVER, STATUS_ERROR};

const WAIT: Duration = Duration::from_secs(20);

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A server span is named `GET /route`, is of kind SERVER and carries the stable HTTP attributes.
#[tokio::test]
async fn server_spans_follow_the_http_semantic_conventions() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[("OTEL_SERVICE_NAME", "shop")], &[]);
    let res = get(&svc.url("/"), &[("user-agent", "semconv-test/1.0")]).await;
    assert_eq!(res.status(), 200);

    let spans = rx
        .wait_spans(WAIT, |s| s.iter().any(|s| s.name == "GET /"))
        .await;
    let span = spans.iter().find(|s| s.name == "GET /").unwrap();
    assert_eq!(span.service, "shop");
    assert_eq!(span.kind, KIND_SERVER);
    assert_eq!(
        span.parent_span_id, "",
        "a request without context starts a trace"
    );
    let a = &span.attrs;
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.route"], "/");
    assert_eq!(a["url.path"], "/");
    assert_eq!(a["url.scheme"], "http");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["server.port"], svc.addr.port().to_string());
    assert_eq!(a["client.address"], "127.0.0.1");
    assert_eq!(a["user_agent.original"], "semconv-test/1.0");
    assert_ne!(span.status, STATUS_ERROR);
    for internal in ["otel.name", "otel.kind", "level", "target", "busy_ns"] {
        assert!(
            !a.contains_key(internal),
            "{internal} leaked into attributes: {a:?}"
        );
    }

    // The JSON log line written inside the request carries the same trace and span ids.
    let logs = svc.logs();
    let line = logs
        .iter()
        .find(|l| l["message"] == "request finished" && l["trace_id"] == span.trace_id.as_str())
        .unwrap_or_else(|| panic!("no log line with trace_id {}: {logs:#?}", span.trace_id));
    assert_eq!(line["span_id"], span.span_id.as_str());
}

/// Unknown paths: a span without `http.route`, named by the method alone; 5xx sets error status.
#[tokio::test]
async fn not_found_and_server_errors_are_recorded_as_such() {
    let rx = Receiver::grpc().await;
    // /chain with a downstream that refuses connections answers 502.
    let svc = Service::start(
        &rx.endpoint(),
        &[],
        &["--downstream-url", "http://127.0.0.1:9/"],
    );
    assert_eq!(get(&svc.url("/no/such/page"), &[]).await.status(), 404);
    let res = get(&svc.url("/chain"), &[]).await;
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("did not answer"),
        "{body}"
    );

    // The spans of one request may leave in different batches (two export lanes): wait for
    // all three.
    let spans = rx
        .wait_spans(WAIT, |s| {
            s.iter().any(|s| s.name == "GET /chain")
                && s.iter().any(|s| s.name == "GET")
                && s.iter().any(|s| s.kind == KIND_CLIENT)
        })
        .await;
    let not_found = spans
        .iter()
        .find(|s| s.kind == KIND_SERVER && s.name == "GET")
        .expect("404 server span named by method only");
    assert_eq!(not_found.attrs["http.response.status_code"], "404");
    assert!(!not_found.attrs.contains_key("http.route"));
    assert_ne!(not_found.status, STATUS_ERROR, "4xx is not a server error");

    let chain = spans.iter().find(|s| s.name == "GET /chain").unwrap();
    assert_eq!(chain.attrs["http.response.status_code"], "502");
    assert_eq!(chain.attrs["error.type"], "502");
    assert_eq!(chain.status, STATUS_ERROR);
    let client = spans
        .iter()
        .find(|s| s.kind == KIND_CLIENT)
        .expect("client span for the failed downstream call");
    assert_eq!(client.parent_span_id, chain.span_id);
    assert_eq!(client.status, STATUS_ERROR);
}

/// `/chain` across two real processes: SERVER(A) → CLIENT(A) → SERVER(B), one trace id.
#[tokio::test]
async fn chain_propagates_context_across_two_processes() {
    let rx = Receiver::grpc().await;
    let b = Service::start(&rx.endpoint(), &[("OTEL_SERVICE_NAME", "backend")], &[]);
    let a = Service::start(
        &rx.endpoint(),
        &[("OTEL_SERVICE_NAME", "frontend")],
        &["--downstream-url", &b.url("/")],
    );
    let res = get(&a.url("/chain"), &[]).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["downstream"]["body"]["message"],
        "Hello from traced-service"
    );

    let spans = rx
        .wait_spans(WAIT, |s| {
            s.iter().any(|s| s.service == "backend") && s.len() >= 3
        })
        .await;
    let a_server = spans.iter().find(|s| s.name == "GET /chain").unwrap();
    let a_client = spans
        .iter()
        .find(|s| s.kind == KIND_CLIENT && s.service == "frontend")
        .unwrap();
    let b_server = spans
        .iter()
        .find(|s| s.service == "backend" && s.kind == KIND_SERVER)
        .unwrap();
    assert_eq!(a_client.parent_span_id, a_server.span_id);
    assert_eq!(b_server.parent_span_id, a_client.span_id);
    assert_eq!(a_server.trace_id, b_server.trace_id);
    assert_eq!(a_client.trace_id, b_server.trace_id);
    assert_eq!(a_client.attrs["url.full"], b.url("/"));
    assert_eq!(a_client.attrs["http.response.status_code"], "200");
    assert_eq!(a_client.attrs["server.port"], b.addr.port().to_string());
}

/// In an image without CA certificates the service still starts, says so once, and `/chain`
/// still reaches a plain-HTTP downstream (it used to panic at start).
#[tokio::test]
async fn chain_works_without_system_ca_certificates() {
    let rx = Receiver::grpc().await;
    let b = Service::start(&rx.endpoint(), &[], &[]);
    let no_certs = [
        ("SSL_CERT_FILE", "/nonexistent/ca.crt"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    let a = Service::start(
        &rx.endpoint(),
        &no_certs,
        &["--downstream-url", &b.url("/")],
    );
    let res = get(&a.url("/chain"), &[]).await;
    assert_eq!(res.status(), 200);
    assert!(
        a.logs().iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("no CA certificates"))),
        "{:#?}",
        a.logs()
    );
}

/// A `traceparent` from the client continues its trace.
#[tokio::test]
async fn traceparent_from_the_client_continues_the_trace() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[], &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    get(
        &svc.url("/health"),
        &[("traceparent", &format!("00-{trace_id}-{parent}-01"))],
    )
    .await;
    let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
    assert_eq!(spans[0].trace_id, trace_id);
    assert_eq!(spans[0].parent_span_id, parent);
}

/// An AWS load balancer's `X-Amzn-Trace-Id` continues the trace (xray propagator by default).
#[tokio::test]
async fn amazon_trace_header_continues_the_trace() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[], &[]);
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    get(&svc.url("/"), &[("x-amzn-trace-id", header)]).await;
    let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
    assert_eq!(spans[0].trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(spans[0].parent_span_id, "53995c3f42cd8ad8");
}

/// With `OTEL_PROPAGATORS=tracecontext` the X-Ray header is ignored: the variable is honoured.
#[tokio::test]
async fn propagators_variable_is_honoured() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[("OTEL_PROPAGATORS", "tracecontext")], &[]);
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    get(&svc.url("/"), &[("x-amzn-trace-id", header)]).await;
    let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
    assert_ne!(spans[0].trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(spans[0].parent_span_id, "");
}

/// `--xray-trace-ids`: the first 8 hex digits of a new trace id are the start time (epoch secs).
#[tokio::test]
async fn xray_trace_ids_start_with_the_epoch_time() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[], &["--xray-trace-ids"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    get(&svc.url("/"), &[]).await;
    let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
    let epoch = u64::from_str_radix(&spans[0].trace_id[..8], 16).unwrap();
    assert!(
        epoch.abs_diff(now) < 60,
        "trace id {} vs now {now}",
        spans[0].trace_id
    );
}

/// `OTEL_TRACES_SAMPLER=always_off` exports no spans while requests are still served.
#[tokio::test]
async fn sampler_variable_is_honoured() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(
        &rx.endpoint(),
        &[("OTEL_TRACES_SAMPLER", "always_off")],
        &[],
    );
    for _ in 0..5 {
        assert_eq!(get(&svc.url("/"), &[]).await.status(), 200);
    }
    // Metrics still flow, which shows export works; spans do not.
    rx.wait_points(WAIT, |p| p.iter().any(|p| p.metric == "app.requests"))
        .await;
    assert!(
        rx.spans().is_empty(),
        "always_off exported {:?}",
        rx.spans()
    );
}

/// The three instruments arrive by route template; a flood of distinct 404 paths is one series.
#[tokio::test]
async fn metrics_arrive_by_endpoint_with_bounded_cardinality() {
    let rx = Receiver::grpc().await;
    let svc = Service::start(&rx.endpoint(), &[], &[]);
    for _ in 0..3 {
        get(&svc.url("/"), &[]).await;
    }
    get(&svc.url("/metrics-test"), &[]).await;
    for i in 0..50 {
        get(&svc.url(&format!("/flood/{i}")), &[]).await;
    }
    let has = |p: &[testkit::otlp::Point], metric: &str, endpoint: &str, min: f64| {
        p.iter().any(|p| {
            p.metric == metric
                && p.attrs.get("endpoint").map(String::as_str) == Some(endpoint)
                && p.value >= min
        })
    };
    let points = rx
        .wait_points(WAIT, |p| {
            has(p, "app.requests", "/", 3.0) && has(p, "app.requests", "unmatched", 50.0)
        })
        .await;
    assert!(has(&points, "app.request.duration", "/metrics-test", 1.0));
    let endpoints: std::collections::BTreeSet<_> = points
        .iter()
        .filter(|p| p.metric == "app.requests")
        .map(|p| p.attrs["endpoint"].clone())
        .collect();
    assert_eq!(
        endpoints.into_iter().collect::<Vec<_>>(),
        ["/", "/metrics-test", "unmatched"],
        "raw paths must never become label values"
    );
    let semconv = points
        .iter()
        .find(|p| {
            p.metric == "http.server.request.duration"
                && p.attrs.get("http.route").map(String::as_str) == Some("/")
        })
        .expect("http.server.request.duration by http.route");
    assert_eq!(semconv.unit, "s");
    assert_eq!(semconv.attrs["http.request.method"], "GET");
    assert_eq!(semconv.attrs["http.response.status_code"], "200");
    // The seed's Flask app measured before doing the work; ours covers the 100 ms wait.
    let slow = rx.recorded_histogram_sum("app.request.duration", "/metrics-test");
    assert!(slow >= 0.1, "duration of /metrics-test was {slow} s");
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` exports traces and metrics over HTTP, also on a
/// system without CA certificates (a minimal image: reqwest will not build a client without
/// roots unless told to).
#[tokio::test]
async fn http_protobuf_export_works() {
    let no_ca_certificates = [
        ("SSL_CERT_FILE", "/nonexistent/ca.crt"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    for extra in [&[][..], &no_ca_certificates] {
        let rx = Receiver::http().await;
        let mut env = vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        env.extend_from_slice(extra);
        let svc = Service::start(&rx.endpoint(), &env, &[]);
        get(&svc.url("/health"), &[]).await;
        let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
        assert_eq!(spans[0].name, "GET /health", "{extra:?}");
        rx.wait_points(WAIT, |p| p.iter().any(|p| p.metric == "app.requests"))
            .await;
        let warned = |what: &str| {
            svc.logs().iter().any(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no CA certificates") && m.contains(what))
            })
        };
        for what in ["span export", "metric export"] {
            assert_eq!(warned(what), !extra.is_empty(), "{what} warning, {extra:?}");
        }
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` reach the collector
/// with both signals over both protocols, and a header's value (often a credential) is never
/// logged.
#[tokio::test]
async fn export_headers_and_gzip_reach_the_collector() {
    for (protocol, rx, compressed_by) in [
        ("grpc", Receiver::grpc().await, "grpc-encoding"),
        ("http/protobuf", Receiver::http().await, "content-encoding"),
    ] {
        let mut svc = Service::start(
            &rx.endpoint(),
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20s3cret-token, x-tenant=shop",
                ),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
            &[],
        );
        get(&svc.url("/health"), &[]).await;
        let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
        assert_eq!(spans[0].name, "GET /health", "{protocol}");
        rx.wait_points(WAIT, |p| !p.is_empty()).await;
        for (signal, headers) in [
            ("traces", rx.trace_request_headers()),
            ("metrics", rx.metric_request_headers()),
        ] {
            let first = &headers[0];
            assert_eq!(
                first["authorization"], "Bearer s3cret-token",
                "{protocol} {signal}"
            );
            assert_eq!(first["x-tenant"], "shop", "{protocol} {signal}");
            assert_eq!(first[compressed_by], "gzip", "{protocol} {signal}");
        }
        svc.terminate(Duration::from_secs(10));
        let logs = serde_json::to_string(&svc.logs()).unwrap();
        assert!(
            !logs.contains("s3cret"),
            "{protocol}: a header value was logged"
        );
    }
}

/// A collector that refuses exports for a moment (as under memory pressure) gets them again:
/// the spans arrive and none is counted as dropped.
#[tokio::test]
async fn refused_exports_are_retried() {
    for (protocol, rx) in [
        ("grpc", Receiver::grpc().await),
        ("http/protobuf", Receiver::http().await),
    ] {
        rx.refuse_traces(2);
        let mut svc = Service::start(
            &rx.endpoint(),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)],
            &[],
        );
        get(&svc.url("/health"), &[]).await;
        let spans = rx.wait_spans(WAIT, |s| !s.is_empty()).await;
        assert_eq!(spans[0].name, "GET /health", "{protocol}");
        assert_eq!(
            rx.trace_request_headers().len(),
            3,
            "{protocol}: two refusals, then one"
        );
        assert_eq!(
            svc.terminate(Duration::from_secs(10)),
            Some(0),
            "{protocol}"
        );
        let logs = svc.logs();
        assert!(
            !logs
                .iter()
                .any(|l| l["message"].as_str().is_some_and(|m| m.contains("dropped"))),
            "{protocol}: {logs:?}"
        );
    }
}
