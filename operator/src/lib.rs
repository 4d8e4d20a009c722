//! `tracedapp-operator`: TracedApp → Kubernetes objects, and the controller that keeps them
//! (the `tracedapp-operator` binary, `src/main.rs`).
//!
//! # Layout
//! - [`manifests`]: one pure builder per object and `build()` that lists them; start here.
//! - [`naming`]: every generated name (DNS-safe, truncated with a hash).
//! - [`labels`]: every label set and the config-hash annotation.
//! - [`controller`]: the reconcile loop.
//! - [`telemetry`]: logs and the operator's own OTLP traces.

pub mod controller;
#[cfg(test)]
mod fixtures;
pub mod labels;
pub mod manifests;
pub mod naming;
pub mod telemetry;

/// The CRD as YAML, exactly as `manifests/crd.yaml` holds it.
pub use tracedapp_api::spec::crd_yaml;
