//! The TracedApp controller (`tracedapp-operator`).
//!
//! # Layout
//! - [`run`]: the process — one kube-runtime controller per watched namespace, the watch
//!   caches, leader election, `/healthz`, `/readyz`, `/metrics`, a graceful stop.
//! - [`reconcile`]: one pass over one TracedApp — validate → build (pure) → check ownership →
//!   apply what differs → prune → status; and the retry policy. Start here.
//! - [`apply`]: comparing with the watch cache, server-side apply, pruning old ConfigMaps.
//! - [`ownership`]: is an existing object of a child's name ours?
//! - [`owned`]: which pods are an app's own (the owner chain, not a label).
//! - [`diff`]: does the live object already say what we would apply?
//! - [`status`]: conditions and the Events their transitions deserve (pure).
//! - [`pods`]: why the app's pods are not ready (pure).
//! - [`health`]: export health — reads each app's collectors and judges whether their
//!   exporters deliver (the `ExportHealthy` condition).
//! - [`leader`], [`metrics`]: the Lease; the operator's own metrics.
//!
//! A steady state sends no request at all: reads come from watch caches, and a pass applies
//! (and writes status) only what differs.

pub mod apply;
pub mod diff;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod owned;
pub mod ownership;
pub mod pods;
pub mod reconcile;
pub mod run;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

pub use reconcile::{error_policy, reconcile};
pub use run::{Options, run, run_until, shutdown_signal};

use metrics::Metrics;

/// What can go wrong in a reconcile (each retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TracedApp has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Shared by every reconcile of one controller.
pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    config_maps: Store<ConfigMap>,
    accounts: Store<ServiceAccount>,
    deployments: Store<Deployment>,
    services: Store<Service>,
    network_policies: Store<NetworkPolicy>,
    /// The app's pods, found through their owners.
    chain: owned::Chain,
    /// Where the operator runs (its namespace goes into each NetworkPolicy).
    site: tracedapp_k8s::manifests::Site,
    /// Reads of the collectors' own metrics, and what they say.
    export: Arc<health::ExportHealth>,
    /// Consecutive failures per TracedApp (namespace/name), for the back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// Per child (`Kind/ns/name`): the resourceVersion our last apply returned and a hash of
    /// what we applied. A cache older than our own write is not mistaken for drift.
    last_writes: Mutex<HashMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
