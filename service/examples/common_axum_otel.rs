//! The common Rust setup, for `bench/service.sh` to compare ours with: axum with
//! `axum-tracing-opentelemetry`'s layers, spans made through `tracing` and
//! `tracing-opentelemetry`, exported by the SDK's batch processor over OTLP/gRPC
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), every request sampled. It answers `/` with the same JSON as
//! traced-service. It records no metrics (ours records three per request).
//!
//! Usage: `common_axum_otel <port>` (listens on 127.0.0.1; SIGTERM flushes and exits).

use axum::routing::get;
use axum::{Json, Router};
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Value, json};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

async fn root() -> Json<Value> {
    Json(json!({ "message": "Hello from traced-service", "service": "traced-service" }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: common_axum_otel <port>");
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .expect("the OTLP exporter");
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("common").build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("common")))
        .with(LevelFilter::INFO)
        .init();

    let app = Router::new()
        .route("/", get(root))
        .layer(OtelInResponseLayer)
        .layer(OtelAxumLayer::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .expect("serve");
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}
