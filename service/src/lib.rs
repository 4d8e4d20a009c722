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
//!
//! Telemetry (`OTEL_*` configuration, providers, our span exporter, counted drops, logs) is the
//! `tracedapp-telemetry` crate, shared with the Lambda function.
//! - [`server`]: serving with a graceful, bounded shutdown.

pub mod app;
pub mod downstream;
pub mod observe;
pub mod server;

pub use app::{AppState, app};
