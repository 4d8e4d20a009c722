//! `traced-service`: the reference traced app that TracedApp deploys.
//!
//! An Axum service (`/`, `/health`, `/metrics-test`, `/chain`) that exports traces and metrics
//! over OTLP, configured by the standard `OTEL_*` environment variables, and that loses no span
//! when it stops.
//!
//! # Layout
//! - [`app`]: the routes and `fn app(state) -> Router`; start here.
//! - [`observe`]: the middleware that makes each request a SERVER span and metric points.
//! - [`downstream`]: the `/chain` call, a CLIENT span with the trace context injected.
//! - [`config`]: `OTEL_*` variables parsed and checked up front.
//! - [`telemetry`]: providers, propagators, our span exporter, bounded export with counted
//!   drops, JSON logs.
//! - [`server`]: serving with a graceful, bounded shutdown.

pub mod app;
pub mod config;
pub mod downstream;
pub mod observe;
pub mod server;
pub mod telemetry;

pub use app::{AppState, app};

/// An error with its causes, `top: cause: root`. HTTP clients' top-level messages say little
/// ("error sending request"); the causes say what happened ("connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
