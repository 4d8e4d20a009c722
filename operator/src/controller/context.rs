//! What every reconcile of one controller shares ([`Context`]: the client, the watch caches,
//! export health, the back-off and our own last writes) and what a reconcile can fail with
//! ([`Error`]). Their methods live with what they do: [`super::apply`], [`super::reconcile`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::metrics::Metrics;
use super::{health, owned};

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
    pub(super) client: Client,
    pub(super) metrics: Arc<Metrics>,
    pub(super) recorder: Recorder,
    pub(super) config_maps: Store<ConfigMap>,
    pub(super) accounts: Store<ServiceAccount>,
    pub(super) deployments: Store<Deployment>,
    pub(super) services: Store<Service>,
    pub(super) network_policies: Store<NetworkPolicy>,
    /// The app's pods, found through their owners.
    pub(super) chain: owned::Chain,
    /// Where the operator runs (its namespace goes into each NetworkPolicy).
    pub(super) site: tracedapp_k8s::manifests::Site,
    /// Reads of the collectors' own metrics, and what they say.
    pub(super) export: Arc<health::ExportHealth>,
    /// Consecutive failures per TracedApp (namespace/name), for the back-off.
    pub(super) failures: Mutex<HashMap<String, u32>>,
    /// Per child (`Kind/ns/name`): the resourceVersion our last apply returned and a hash of
    /// what we applied. A cache older than our own write is not mistaken for drift.
    pub(super) last_writes: Mutex<HashMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}
