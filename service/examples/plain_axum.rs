//! The baseline of `bench/service.sh`: a plain axum app answering `/` with the same JSON as
//! traced-service, with no middleware, no telemetry and `axum::serve`. What a disabled SDK
//! should cost is measured against it.
//!
//! Usage: `plain_axum <port>` (listens on 127.0.0.1).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn root() -> Json<Value> {
    Json(json!({ "message": "Hello from traced-service", "service": "traced-service" }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: plain_axum <port>");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let app = Router::new().route("/", get(root));
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .expect("serve");
}
