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
//! - [`telemetry`]: providers, propagators, bounded export with counted drops, JSON logs.
//! - [`server`]: serving with a graceful, bounded shutdown.

pub mod app;
pub mod config;
pub mod downstream;
pub mod observe;
pub mod server;
pub mod telemetry;

pub use app::{AppState, app};
