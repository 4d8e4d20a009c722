//! An in-process OTLP receiver on 127.0.0.1 (gRPC, or HTTP with protobuf bodies), for tests that
//! check what a real `traced-service` process exports, and for the benchmark sink.
//!
//! What happens to a request is up to a [`Handler`]: [`Recorder`] keeps every request and
//! flattens them into [`Span`]s and [`Point`]s for assertions; a benchmark counts and drops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;

/// OTLP `SpanKind` of a server span.
pub const KIND_SERVER: i32 = 2;
/// OTLP `SpanKind` of a client span.
pub const KIND_CLIENT: i32 = 3;
/// OTLP `StatusCode` of an error.
pub const STATUS_ERROR: i32 = 2;

/// What the receiver does with each export request.
pub trait Handler: Send + Sync + 'static {
    fn traces(&self, request: ExportTraceServiceRequest);
    fn metrics(&self, request: ExportMetricsServiceRequest);
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    gate: Arc<Gate>,
}

/// What the receiver saw of requests besides their contents, and the refusals asked of it.
#[derive(Debug, Default)]
struct Gate {
    /// The headers (gRPC metadata) of every trace request, refused ones included.
    trace_headers: Mutex<Vec<http::HeaderMap>>,
    /// The headers of every metrics request.
    metric_headers: Mutex<Vec<http::HeaderMap>>,
    /// Trace requests still to refuse as unavailable (gRPC `UNAVAILABLE`, HTTP 503).
    refuse: AtomicUsize,
    /// HTTP trace requests with a longer body are refused with 413 (0: no limit).
    max_trace_body: AtomicUsize,
    /// How many were.
    too_large: AtomicUsize,
}

impl Gate {
    /// Notes a trace request; false if it is to be refused.
    fn admit_traces(&self, headers: http::HeaderMap) -> bool {
        self.trace_headers.lock().unwrap().push(headers);
        self.refuse
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_err()
    }

    fn note_metrics(&self, headers: http::HeaderMap) {
        self.metric_headers.lock().unwrap().push(headers);
    }
}

impl Server {
    /// OTLP/gRPC on `addr` (port 0 for a free one). Must run inside a Tokio runtime.
    pub async fn grpc(addr: SocketAddr, handler: Arc<dyn Handler>) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the OTLP/gRPC port");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(Gate::default());
        let service = Grpc(handler, gate.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                // Collectors compress their exports (gzip by default); SDKs usually do not.
                .add_service(
                    TraceServiceServer::new(service.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    MetricsServiceServer::new(service)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        Self {
            addr,
            stop: Some(stop),
            gate,
        }
    }

    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `POST /v1/metrics`) on a free port.
    pub async fn http(handler: Arc<dyn Handler>) -> Self {
        use axum::body::Bytes;
        use axum::http::StatusCode;
        use axum::routing::post;
        let (h1, h2) = (handler.clone(), handler);
        let gate = Arc::new(Gate::default());
        let (g, g2) = (gate.clone(), gate.clone());
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(move |headers: http::HeaderMap, body: Bytes| async move {
                    let limit = g.max_trace_body.load(Ordering::Acquire);
                    if limit > 0 && body.len() > limit {
                        g.too_large.fetch_add(1, Ordering::AcqRel);
                        return Err((StatusCode::PAYLOAD_TOO_LARGE, "too large".to_owned()));
                    }
                    let body = unpack(&headers, &body)?;
                    if !g.admit_traces(headers) {
                        return Err((StatusCode::SERVICE_UNAVAILABLE, "refused".to_owned()));
                    }
                    let request = ExportTraceServiceRequest::decode(body.as_slice())
                        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
                    h1.traces(request);
                    Ok::<_, (StatusCode, String)>(
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }),
            )
            .route(
                "/v1/metrics",
                post(move |headers: http::HeaderMap, body: Bytes| async move {
                    let body = unpack(&headers, &body)?;
                    g2.note_metrics(headers);
                    let request = ExportMetricsServiceRequest::decode(body.as_slice())
                        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
                    h2.metrics(request);
                    Ok::<_, (StatusCode, String)>(
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }),
            );
        // Bodies are limited by `limit_trace_bodies` alone (axum's default is 2 MB).
        let app = app.layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            stop: Some(stop),
            gate,
        }
    }

    /// The endpoint URL to give an exporter.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The headers (gRPC metadata) of every trace request so far, refused ones included.
    pub fn trace_request_headers(&self) -> Vec<http::HeaderMap> {
        self.gate.trace_headers.lock().unwrap().clone()
    }

    /// The headers (gRPC metadata) of every metrics request so far.
    pub fn metric_request_headers(&self) -> Vec<http::HeaderMap> {
        self.gate.metric_headers.lock().unwrap().clone()
    }

    /// Refuses the next `n` trace requests as unavailable, as a collector under memory
    /// pressure does (gRPC `UNAVAILABLE`, HTTP 503).
    pub fn refuse_traces(&self, n: usize) {
        self.gate.refuse.store(n, Ordering::Release);
    }

    /// Refuses HTTP trace requests whose body is longer than `bytes` with 413, as a collector's
    /// `max_request_body_size` does.
    pub fn limit_trace_bodies(&self, bytes: usize) {
        self.gate.max_trace_body.store(bytes, Ordering::Release);
    }

    /// How many trace requests were refused as too large.
    pub fn too_large_refusals(&self) -> usize {
        self.gate.too_large.load(Ordering::Acquire)
    }
}

/// An HTTP request's body, gunzipped if its `Content-Encoding` says gzip.
pub(crate) fn unpack(
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Vec<u8>, (axum::http::StatusCode, String)> {
    use std::io::Read as _;
    if headers
        .get(http::header::CONTENT_ENCODING)
        .is_none_or(|v| v != "gzip")
    {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                axum::http::StatusCode::BAD_REQUEST,
                format!("bad gzip: {e}"),
            )
        })?;
    Ok(out)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone)]
struct Grpc(Arc<dyn Handler>, Arc<Gate>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if !self
            .1
            .admit_traces(request.metadata().clone().into_headers())
        {
            return Err(tonic::Status::unavailable("refused by the test"));
        }
        self.0.traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.1
            .note_metrics(request.metadata().clone().into_headers());
        self.0.metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    /// Its resource's attributes (`service.name` included).
    pub resource: HashMap<String, String>,
    pub name: String,
    /// 1 internal, 2 server, 3 client (OTLP `SpanKind`).
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attrs: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error (OTLP `StatusCode`).
    pub status: i32,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

/// One metric data point: the metric, its attributes, and its value (the count for a
/// histogram).
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    pub attrs: HashMap<String, String>,
    pub value: f64,
    /// A histogram point's sum.
    pub sum: Option<f64>,
}

/// A [`Handler`] that keeps every request.
#[derive(Debug, Default)]
pub struct Recorder {
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
}

impl Handler for Recorder {
    fn traces(&self, request: ExportTraceServiceRequest) {
        self.traces.lock().unwrap().push(request);
    }

    fn metrics(&self, request: ExportMetricsServiceRequest) {
        self.metrics.lock().unwrap().push(request);
    }
}

impl Recorder {
    /// Forgets what was received (a long benchmark keeps no spans it will not read).
    pub fn clear(&self) {
        self.traces.lock().unwrap().clear();
        self.metrics.lock().unwrap().clear();
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let mut out = Vec::new();
        for rs in self
            .traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
        {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| attrs(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                out.push(Span {
                    service: service.clone(),
                    resource: resource.clone(),
                    name: s.name.clone(),
                    kind: s.kind,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    attrs: attrs(&s.attributes),
                    status: s.status.as_ref().map_or(0, |st| st.code),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
        out
    }

    /// Every sum and histogram data point received so far (all exports, so cumulative values
    /// appear once per export).
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for rm in self
            .metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_metrics)
        {
            for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                let point = |a: &[KeyValue], value: f64, sum: Option<f64>| Point {
                    metric: m.name.clone(),
                    unit: m.unit.clone(),
                    attrs: attrs(a),
                    value,
                    sum,
                };
                match &m.data {
                    Some(metric::Data::Sum(s)) => out.extend(
                        s.data_points
                            .iter()
                            .map(|p| point(&p.attributes, number(p.value), None)),
                    ),
                    Some(metric::Data::Histogram(h)) => out.extend(
                        h.data_points
                            .iter()
                            .map(|p| point(&p.attributes, p.count as f64, p.sum)),
                    ),
                    _ => {}
                }
            }
        }
        out
    }

    /// Waits until `pred(spans)` holds, or panics with what was received after `timeout`.
    pub async fn wait_spans(&self, timeout: Duration, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        wait(timeout, "spans", || self.spans(), pred).await
    }

    /// Waits until `pred(points)` holds, or panics with what was received after `timeout`.
    pub async fn wait_points(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Point]) -> bool,
    ) -> Vec<Point> {
        wait(timeout, "metrics", || self.points(), pred).await
    }
}

async fn wait<T: std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    read: impl Fn() -> Vec<T>,
    pred: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read();
        if pred(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; got {}: {:#?}",
            got.len(),
            got.iter().take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A number data point's value as f64 (0 when absent).
pub fn number(value: Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(d)) => d,
        None => 0.0,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_string(kv.value.as_ref())))
        .collect()
}

fn value_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}
