//! `tracedapp-api`: the `TracedApp` custom resource and what is made from it without I/O.
//!
//! # Layout
//! - [`spec`]: the resource (`tracedapp.dev/v1alpha1`): every field, default and CRD rule.
//! - [`validate`]: the same rules in Rust, with field paths, for the CLI and ECS path.
//! - [`fargate`]: the Fargate cpu/memory table behind both the CEL rule and the Rust check.
//! - [`app_env`]: the `OTEL_*` environment of the app container, shared by both targets.
//! - [`collector`]: the collector configuration model and its renderer (one for both targets).
//! - [`hash`]: the short hashes in generated names.
//! - [`health`]: export health judged from the collector's own counters (operator and ECS).
//! - [`lambda`]: the Lambda target: the collector layer's configuration and the function's
//!   environment.
//! - [`load`]: reading a TracedApp from YAML with errors that name the field.
//! - [`rules`]: every rule of the CRD, evaluated without an API server.
//! - [`resources`]: container resource defaults, and their rule.
//! - [`sidecar`]: the app + collector layout both targets share (names, ports, user).

pub mod app_env;
pub mod collector;
pub mod fargate;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod hash;
pub mod health;
pub mod lambda;
pub mod load;
pub mod resources;
pub mod rules;
pub mod sidecar;
pub mod spec;
pub mod validate;
pub mod yaml;

pub use spec::{TracedApp, TracedAppSpec, TracedAppStatus};
