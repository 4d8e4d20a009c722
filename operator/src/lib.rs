//! `tracedapp-operator`: the controller that keeps a TracedApp's Kubernetes objects (the
//! `tracedapp-operator` binary, `src/main.rs`). The objects themselves are built by
//! `tracedapp-k8s`, as `tracedapp-ecs` builds the ECS task.
//!
//! # Layout
//! - [`controller`]: the reconcile loop, export health, leader election.
//! - [`telemetry`]: logs and the operator's own OTLP traces.

pub mod controller;
pub mod telemetry;

/// The CRD as YAML, exactly as `manifests/crd.yaml` holds it.
pub use tracedapp_api::spec::crd_yaml;
