//! The one middleware that turns every request into a SERVER span and three metric points.
//!
//! Span: name `GET /route`, kind SERVER, the stable HTTP semantic-convention attributes, parent
//! taken from the incoming headers by the global propagator (`traceparent`, `X-Amzn-Trace-Id`),
//! error status on 5xx. Metrics: `http.server.request.duration`, `app.requests` and
//! `app.request.duration`, labelled by the route template (never the raw path).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry_http::HeaderExtractor;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Label used for requests that matched no route, so a flood of 404s adds one series, not many.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Duration buckets in seconds, as the HTTP semantic conventions advise.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The metric instruments the middleware records into.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    server_duration: Histogram<f64>,
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
}

impl HttpMetrics {
    pub fn new(meter: &Meter) -> Self {
        Self {
            server_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_description("Duration of HTTP server requests")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            requests: meter
                .u64_counter("app.requests")
                .with_description("Requests served, by endpoint (route template)")
                .with_unit("{request}")
                .build(),
            request_duration: meter
                .f64_histogram("app.request.duration")
                .with_description("Whole-request duration, by endpoint (route template)")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    }
}

/// `axum::middleware::from_fn_with_state` target: wraps one request in its span and metrics.
pub async fn observe(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.to_string(),
    };
    let (server_address, server_port) = host_and_port(&req);
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());

    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route.as_deref(),
        url.path = req.uri().path(),
        url.scheme = "http",
        server.address = server_address.as_deref(),
        server.port = server_port,
        client.address = client.as_deref(),
        user_agent.original = user_agent,
        http.response.status_code = Empty,
        "error.type" = Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    // Fails only when no OpenTelemetry layer is installed (telemetry disabled): nothing to do.
    let _ = span.set_parent(parent);

    let response = next.run(req).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    let elapsed = started.elapsed().as_secs_f64();
    span.in_scope(|| {
        tracing::debug!(status = status.as_u16(), duration_s = elapsed, "request finished");
    });
    drop(span);

    let endpoint = route.unwrap_or_else(|| UNMATCHED_ENDPOINT.to_owned());
    let mut attrs = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        KeyValue::new("url.scheme", "http"),
    ];
    if endpoint != UNMATCHED_ENDPOINT {
        attrs.push(KeyValue::new("http.route", endpoint.clone()));
    }
    if status.is_server_error() {
        attrs.push(KeyValue::new("error.type", status.as_str().to_owned()));
    }
    metrics.server_duration.record(elapsed, &attrs);
    let by_endpoint = [KeyValue::new("endpoint", endpoint)];
    metrics.requests.add(1, &by_endpoint);
    metrics.request_duration.record(elapsed, &by_endpoint);
    response
}

/// `server.address` and `server.port` from the `Host` header (or the URI for HTTP/2).
fn host_and_port(req: &Request) -> (Option<String>, Option<u16>) {
    let authority = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| req.uri().authority().cloned());
    match authority {
        Some(a) => (Some(a.host().to_owned()), a.port_u16()),
        None => (None, None),
    }
}
