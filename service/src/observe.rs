//! The one middleware that turns every request into a SERVER span and three metric points.
//!
//! Span: name `GET /route`, kind SERVER, the stable HTTP semantic-convention attributes, parent
//! taken from the incoming headers by the global propagator (`traceparent`, `X-Amzn-Trace-Id`),
//! error status on 5xx. Metrics: `http.server.request.duration`, `app.requests` and
//! `app.request.duration`, labelled by the route template (never the raw path).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::trace::{FutureExt, Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_http::HeaderExtractor;

/// Label used for requests that matched no route, so a flood of 404s adds one series, not many.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Duration buckets in seconds, as the HTTP semantic conventions advise.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The tracer and metric instruments the middleware records into (shared: cloning is one
/// reference count, as axum clones its state for every request).
#[derive(Debug, Clone)]
pub struct HttpMetrics(Arc<Instruments>);

#[derive(Debug)]
struct Instruments {
    tracer: BoxedTracer,
    /// The headers the global propagator reads, looked up once: most requests carry none,
    /// and then the propagator (behind a global lock) is not asked at all.
    trace_headers: Vec<http::HeaderName>,
    routes: RouteTexts,
    /// The by-endpoint metrics of requests that matched no route.
    unmatched: ByEndpoint,
}

/// A route's three metrics, bound to their series: a record goes straight to its series,
/// without the SDK hashing the attributes to find it. `app.requests` and `app.request.duration`
/// are bound to the `endpoint`; `http.server.request.duration`, whose attributes also hold the
/// method and the status code, once per method and status seen (a bounded set: ten verbs, and
/// the codes the handlers answer with).
#[derive(Debug)]
struct ByEndpoint {
    requests: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
    route: Option<&'static str>,
    server_duration: Histogram<f64>,
    server_bound: RwLock<HashMap<(usize, u16), BoundHistogram<f64>>>,
}

impl ByEndpoint {
    fn new(m: &Meters, endpoint: &'static str, route: Option<&'static str>) -> Self {
        let attributes = [KeyValue::new("endpoint", endpoint)];
        Self {
            requests: m.requests.bind(&attributes),
            duration: m.request_duration.bind(&attributes),
            route,
            server_duration: m.server_duration.clone(),
            server_bound: RwLock::default(),
        }
    }

    /// Records one request's three metric points.
    fn record(&self, verb: usize, status: http::StatusCode, elapsed: f64) {
        self.requests.add(1);
        self.duration.record(elapsed);
        let key = (verb, status.as_u16());
        if let Ok(bound) = self.server_bound.read()
            && let Some(b) = bound.get(&key)
        {
            b.record(elapsed);
            return;
        }
        let mut attrs = vec![
            KeyValue::new("http.request.method", method_name(verb)),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            KeyValue::new("url.scheme", "http"),
        ];
        if let Some(r) = self.route {
            attrs.push(KeyValue::new("http.route", r));
        }
        if status.is_server_error() {
            attrs.push(KeyValue::new("error.type", status.as_str().to_owned()));
        }
        let mut map = self.server_bound.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| self.server_duration.bind(&attrs))
            .record(elapsed);
    }
}

/// The three instruments, unbound.
#[derive(Debug, Clone)]
struct Meters {
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
    server_duration: Histogram<f64>,
}

impl HttpMetrics {
    /// Instruments from the global tracer, meter and propagator (no-ops when telemetry is
    /// off); made after `Telemetry::init` has installed them.
    pub fn new(meter: &Meter) -> Self {
        let trace_headers = global::get_text_map_propagator(|p| {
            p.fields()
                .filter_map(|f| http::HeaderName::try_from(f).ok())
                .collect()
        });
        let requests = meter
            .u64_counter("app.requests")
            .with_description("Requests served, by endpoint (route template)")
            .with_unit("{request}")
            .build();
        let request_duration = meter
            .f64_histogram("app.request.duration")
            .with_description("Whole-request duration, by endpoint (route template)")
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let meters = Meters {
            requests,
            request_duration,
            server_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_description("Duration of HTTP server requests")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        };
        Self(Arc::new(Instruments {
            trace_headers,
            unmatched: ByEndpoint::new(&meters, UNMATCHED_ENDPOINT, None),
            routes: RouteTexts::new(meters),
            tracer: global::tracer("traced-service"),
        }))
    }
}

/// The peer of a connection, its address formatted once for every request on it
/// (`client.address`): what `ConnectInfo` carries into the middleware.
#[derive(Debug, Clone)]
pub struct Peer {
    ip: Arc<str>,
}

impl Connected<SocketAddr> for Peer {
    fn connect_info(addr: SocketAddr) -> Self {
        Self {
            ip: addr.ip().to_string().into(),
        }
    }
}

/// The span names, `http.route` values and by-endpoint metrics of the routes seen, made once per
/// route template. Templates come from the router (never raw paths) and verbs from a closed
/// list, so the set is bounded; it lives as long as the process.
#[derive(Debug)]
struct RouteTexts {
    seen: RwLock<HashMap<String, &'static RouteText>>,
    meters: Meters,
}

#[derive(Debug)]
struct RouteText {
    route: &'static str,
    /// `"{verb} {route}"` for each of [`VERBS`].
    span_names: [&'static str; VERBS.len()],
    by_endpoint: ByEndpoint,
}

/// The nine methods the HTTP semantic conventions know, then `HTTP`: the span-name verb of
/// any other method. `http.request.method` and span names both come from this one list.
const VERBS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "HTTP",
];

/// Where in [`VERBS`] any method the conventions do not know goes.
const OTHER_VERB: usize = VERBS.len() - 1;

/// `method`'s place in [`VERBS`].
fn verb_index(method: &http::Method) -> usize {
    VERBS[..OTHER_VERB]
        .iter()
        .position(|v| *v == method.as_str())
        .unwrap_or(OTHER_VERB)
}

/// `http.request.method` for the method at `verb` in [`VERBS`].
fn method_name(verb: usize) -> &'static str {
    if verb == OTHER_VERB {
        OTHER_METHOD
    } else {
        VERBS[verb]
    }
}

impl RouteTexts {
    fn new(meters: Meters) -> Self {
        Self {
            seen: RwLock::default(),
            meters,
        }
    }

    fn get(&self, route: &str) -> &'static RouteText {
        if let Some(text) = self.seen.read().ok().and_then(|m| m.get(route).copied()) {
            return text;
        }
        let mut map = self.seen.write().unwrap_or_else(|e| e.into_inner());
        map.entry(route.to_owned()).or_insert_with(|| {
            let route: &'static str = Box::leak(route.into());
            Box::leak(Box::new(RouteText {
                route,
                span_names: VERBS.map(|v| &*Box::leak(format!("{v} {route}").into_boxed_str())),
                by_endpoint: ByEndpoint::new(&self.meters, route, Some(route)),
            }))
        })
    }
}

/// `axum::middleware::from_fn_with_state` target: wraps one request in its span and metrics.
///
/// The span is made with the OpenTelemetry API rather than through `tracing`: it is cheaper on
/// this hot path and gives exact control of kind and attributes. The span's context is attached
/// while the handler runs, so `tracing` spans and log lines inside it join the same trace.
pub async fn observe(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let metrics = &*metrics.0;
    let started = Instant::now();
    let verb = verb_index(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| metrics.routes.get(p.as_str()));
    let name = route.map_or(VERBS[verb], |r| r.span_names[verb]);

    // Most requests carry no trace context: then there is nothing to extract.
    let headers = req.headers();
    let parent = if metrics
        .trace_headers
        .iter()
        .any(|h| headers.contains_key(h))
    {
        global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
    } else {
        opentelemetry::Context::current()
    };
    // The sampler decides first; the attributes are made only for a span that records (an
    // unsampled request formats and copies nothing). The samplers `OTEL_TRACES_SAMPLER` names
    // decide on the trace id and the parent, never on attributes.
    let mut span = metrics
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .start_with_context(&metrics.tracer, &parent);
    let recording = span.is_recording();
    if recording {
        span.set_attributes(request_attributes(&req, verb, route));
    }
    let cx = parent.with_span(span);

    let response = next.run(req).with_context(cx.clone()).await;

    let status = response.status();
    let elapsed = started.elapsed().as_secs_f64();
    if recording {
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
            span.set_status(Status::error(""));
        }
        span.end();
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        let _guard = cx.clone().attach();
        tracing::debug!(
            status = status.as_u16(),
            duration_s = elapsed,
            "request finished"
        );
    }
    route
        .map_or(&metrics.unmatched, |r| &r.by_endpoint)
        .record(verb, status, elapsed);
    response
}

/// The SERVER span's attributes known when the request arrives (a recording span only).
fn request_attributes(
    req: &Request,
    verb: usize,
    route: Option<&'static RouteText>,
) -> Vec<KeyValue> {
    let method = method_name(verb);
    let mut attributes = Vec::with_capacity(13);
    attributes.push(KeyValue::new("http.request.method", method));
    if method == OTHER_METHOD {
        attributes.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_owned(),
        ));
    }
    if let Some(r) = route {
        attributes.push(KeyValue::new("http.route", r.route));
    }
    attributes.push(KeyValue::new("url.path", req.uri().path().to_owned()));
    attributes.push(KeyValue::new("url.scheme", "http"));
    if let Some(authority) = host_and_port(req) {
        attributes.push(KeyValue::new("server.address", authority.host().to_owned()));
        if let Some(port) = authority.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<Peer>>() {
        attributes.push(KeyValue::new(
            "client.address",
            StringValue::from(peer.ip.clone()),
        ));
    }
    if let Some(ua) = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", ua.to_owned()));
    }
    attributes
}

/// What `http.request.method` holds for a method the conventions do not know.
pub const OTHER_METHOD: &str = "_OTHER";

/// `http.request.method` as the HTTP semantic conventions define it: one of the nine known
/// methods, else `_OTHER`. A client sending made-up methods cannot grow metric cardinality.
pub fn known_method(method: &http::Method) -> &'static str {
    method_name(verb_index(method))
}

/// `server.address` and `server.port` from the `Host` header (or the URI for HTTP/2).
fn host_and_port(req: &Request) -> Option<http::uri::Authority> {
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| req.uri().authority().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_texts_are_made_once_per_route() {
        let meter = global::meter("test");
        let routes = RouteTexts::new(Meters {
            requests: meter.u64_counter("c").build(),
            request_duration: meter.f64_histogram("h").build(),
            server_duration: meter.f64_histogram("s").build(),
        });
        let chain = routes.get("/chain");
        assert!(std::ptr::eq(chain, routes.get("/chain")), "made once");
        assert_eq!(chain.route, "/chain");
        assert_eq!(chain.span_names[0], "GET /chain");
        assert_eq!(chain.span_names[OTHER_VERB], "HTTP /chain");
        assert_eq!(routes.get("/").span_names[2], "POST /");
        assert_eq!(routes.seen.read().unwrap().len(), 2);
    }

    #[test]
    fn known_methods_keep_their_names_and_others_become_other() {
        for m in [
            http::Method::GET,
            http::Method::HEAD,
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::CONNECT,
            http::Method::OPTIONS,
            http::Method::TRACE,
            http::Method::PATCH,
        ] {
            assert_eq!(known_method(&m), m.as_str());
            assert_eq!(VERBS[verb_index(&m)], m.as_str());
        }
        for other in ["FOO", "get", "HTTP", "_OTHER"] {
            let m = http::Method::from_bytes(other.as_bytes()).unwrap();
            assert_eq!(known_method(&m), OTHER_METHOD, "{other}");
            assert_eq!(VERBS[verb_index(&m)], "HTTP", "{other}");
        }
    }
}
