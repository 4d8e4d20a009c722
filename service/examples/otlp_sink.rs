//! A lean OTLP/gRPC sink for benchmarks: counts spans and remembers the latest `app.requests`
//! total, without storing anything. `GET /stats` on the stats port answers
//! `{"spans": N, "server_spans": N, "app_requests": N}`.
//!
//! Usage: `cargo run --release --example otlp_sink -- <otlp-port> <stats-port>`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    server_spans: AtomicU64,
    app_requests: AtomicU64,
}

#[derive(Clone)]
struct Sink(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                let server = ss.spans.iter().filter(|s| s.kind == 2).count() as u64;
                self.0
                    .spans
                    .fetch_add(ss.spans.len() as u64, Ordering::Relaxed);
                self.0.server_spans.fetch_add(server, Ordering::Relaxed);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut total = None;
        for rm in request.into_inner().resource_metrics {
            for m in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                if m.name != "app.requests" {
                    continue;
                }
                if let Some(metric::Data::Sum(sum)) = m.data {
                    let n: u64 = sum
                        .data_points
                        .iter()
                        .map(|p| match p.value {
                            Some(number_data_point::Value::AsInt(i)) => i as u64,
                            Some(number_data_point::Value::AsDouble(d)) => d as u64,
                            None => 0,
                        })
                        .sum();
                    total = Some(n);
                }
            }
        }
        if let Some(n) = total {
            // Cumulative temporality: the latest export holds the running total.
            self.0.app_requests.fetch_max(n, Ordering::Relaxed);
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let otlp_port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4317);
    let stats_port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4399);
    let counts = Arc::new(Counts::default());
    let sink = Sink(counts.clone());
    let stats = axum::Router::new().route(
        "/stats",
        axum::routing::get(move || {
            let c = counts.clone();
            async move {
                axum::Json(serde_json::json!({
                    "spans": c.spans.load(Ordering::Relaxed),
                    "server_spans": c.server_spans.load(Ordering::Relaxed),
                    "app_requests": c.app_requests.load(Ordering::Relaxed),
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", stats_port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, stats).await.unwrap() });
    eprintln!(
        "otlp_sink: OTLP/gRPC on 127.0.0.1:{otlp_port}, stats on 127.0.0.1:{stats_port}/stats"
    );
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()))
        .add_service(MetricsServiceServer::new(sink))
        .serve(([127, 0, 0, 1], otlp_port).into())
        .await
        .unwrap();
}
