//! Test rig: an in-process OTLP receiver (gRPC or HTTP/protobuf) on 127.0.0.1 that records what
//! the real `traced-service` process exports, and a handle on that process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the rig"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;

/// What the receiver has been sent.
#[derive(Debug, Default)]
pub struct Recorded {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client (OTLP `SpanKind`).
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attrs: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error (OTLP `StatusCode`).
    pub status: i32,
}

pub const KIND_SERVER: i32 = 2;
pub const KIND_CLIENT: i32 = 3;
pub const STATUS_ERROR: i32 = 2;

/// One metric data point: metric name and its attributes (plus the count/sum when present).
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    pub attrs: HashMap<String, String>,
    pub value: f64,
}

/// An OTLP receiver on 127.0.0.1; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Recorded>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Receiver {
    /// OTLP/gRPC on a free port.
    pub async fn grpc() -> Self {
        Self::grpc_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// OTLP/gRPC on the given address (to bring a "collector" up on a port chosen earlier).
    pub async fn grpc_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let sink = Sink(recorded.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(sink.clone()))
                .add_service(MetricsServiceServer::new(sink))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = rx.await;
                    },
                ),
        );
        Self {
            addr,
            recorded,
            stop: Some(tx),
        }
    }

    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `POST /v1/metrics`) on a free port.
    pub async fn http() -> Self {
        use axum::routing::post;
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let (r1, r2) = (recorded.clone(), recorded.clone());
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(move |body: axum::body::Bytes| async move {
                    let req = ExportTraceServiceRequest::decode(body).unwrap();
                    r1.lock().unwrap().traces.push(req);
                    ExportTraceServiceResponse::default().encode_to_vec()
                }),
            )
            .route(
                "/v1/metrics",
                post(move |body: axum::body::Bytes| async move {
                    let req = ExportMetricsServiceRequest::decode(body).unwrap();
                    r2.lock().unwrap().metrics.push(req);
                    ExportMetricsServiceResponse::default().encode_to_vec()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            recorded,
            stop: Some(tx),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let recorded = self.recorded.lock().unwrap();
        let mut out = Vec::new();
        for req in &recorded.traces {
            for rs in &req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| attrs(&r.attributes).remove("service.name"))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push(Span {
                            service: service.clone(),
                            name: s.name.clone(),
                            kind: s.kind,
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent_span_id: hex(&s.parent_span_id),
                            attrs: attrs(&s.attributes),
                            status: s.status.as_ref().map_or(0, |st| st.code),
                        });
                    }
                }
            }
        }
        out
    }

    /// Every metric data point received so far (all exports, cumulative values included).
    pub fn points(&self) -> Vec<Point> {
        let recorded = self.recorded.lock().unwrap();
        let mut out = Vec::new();
        for req in &recorded.metrics {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        let push = |out: &mut Vec<Point>, a: &[KeyValue], value: f64| {
                            out.push(Point {
                                metric: m.name.clone(),
                                unit: m.unit.clone(),
                                attrs: attrs(a),
                                value,
                            })
                        };
                        match &m.data {
                            Some(metric::Data::Sum(s)) => {
                                for p in &s.data_points {
                                    let v = match p.value {
                                        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i as f64,
                                        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d)) => d,
                                        None => 0.0,
                                    };
                                    push(&mut out, &p.attributes, v);
                                }
                            }
                            Some(metric::Data::Histogram(h)) => {
                                for p in &h.data_points {
                                    push(&mut out, &p.attributes, p.count as f64);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        out
    }

    /// The largest `sum` seen for a histogram's data point with this `endpoint` (cumulative).
    pub fn recorded_histogram_sum(&self, metric_name: &str, endpoint: &str) -> f64 {
        let recorded = self.recorded.lock().unwrap();
        let mut best = 0.0_f64;
        for rm in recorded.metrics.iter().flat_map(|r| &r.resource_metrics) {
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if m.name != metric_name {
                    continue;
                }
                if let Some(metric::Data::Histogram(h)) = &m.data {
                    for p in &h.data_points {
                        if attrs(&p.attributes).get("endpoint").map(String::as_str)
                            == Some(endpoint)
                        {
                            best = best.max(p.sum.unwrap_or_default());
                        }
                    }
                }
            }
        }
        best
    }

    /// Waits until `pred(spans)` holds, or panics with what was received after `timeout`.
    pub async fn wait_spans(&self, timeout: Duration, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if pred(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for spans; got {}: {:#?}",
                    spans.len(),
                    spans.iter().take(10).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_points(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Point]) -> bool,
    ) -> Vec<Point> {
        let deadline = Instant::now() + timeout;
        loop {
            let points = self.points();
            if pred(&points) {
                return points;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for metrics; got {points:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
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

/// A running `traced-service` process; killed when dropped, its log printed if the test failed.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// A free port on 127.0.0.1 (bound, then released for someone else to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Service {
    /// Starts the service on a free port with these extra environment variables and arguments,
    /// exporting to `otlp` (an endpoint URL), and waits until it listens.
    pub fn start(otlp: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_under(&[], otlp, env, args)
    }

    /// [`Service::start`] run by `wrapper` (e.g. `prlimit --nofile=128`).
    pub fn start_under(wrapper: &[&str], otlp: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_traced-service");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["--port", "0", "--bind", "127.0.0.1"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,traced_service=debug")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            // Export soon after spans end, so tests need not wait the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start traced-service");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(v["address"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("traced-service did not start: {:#?}", logs.lock().unwrap())
            })
            .parse()
            .unwrap();
        Self { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines (JSON) written so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("traced-service did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- traced-service log ({}) ---", self.addr);
            for line in self.logs.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}
