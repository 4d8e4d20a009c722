//! A lean OTLP/gRPC sink for benchmarks: counts spans and remembers the latest `app.requests`
//! total, without storing anything. `GET /stats` on the stats port answers
//! `{"spans": N, "server_spans": N, "app_requests": N}`.
//!
//! Usage: `cargo run --release --example otlp_sink -- <otlp-port> <stats-port>`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use testkit::otlp::{Handler, KIND_SERVER, Server, number};

#[derive(Debug, Default)]
struct Counts {
    spans: AtomicU64,
    server_spans: AtomicU64,
    app_requests: AtomicU64,
}

impl Handler for Counts {
    fn traces(&self, request: ExportTraceServiceRequest) {
        for ss in request.resource_spans.iter().flat_map(|rs| &rs.scope_spans) {
            let server = ss.spans.iter().filter(|s| s.kind == KIND_SERVER).count() as u64;
            self.spans
                .fetch_add(ss.spans.len() as u64, Ordering::Relaxed);
            self.server_spans.fetch_add(server, Ordering::Relaxed);
        }
    }

    fn metrics(&self, request: ExportMetricsServiceRequest) {
        for rm in request.resource_metrics {
            for m in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                if m.name != "app.requests" {
                    continue;
                }
                if let Some(metric::Data::Sum(sum)) = m.data {
                    let n: f64 = sum.data_points.iter().map(|p| number(p.value)).sum();
                    // Cumulative temporality: the latest export holds the running total.
                    self.app_requests.fetch_max(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let otlp_port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4317);
    let stats_port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4399);
    let counts = Arc::new(Counts::default());
    let _otlp = Server::grpc(([127, 0, 0, 1], otlp_port).into(), counts.clone()).await;
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
    eprintln!(
        "otlp_sink: OTLP/gRPC on 127.0.0.1:{otlp_port}, stats on 127.0.0.1:{stats_port}/stats"
    );
    axum::serve(listener, stats).await.unwrap();
}
