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
use super::{health, owned, ownership};

/// What can go wrong in a reconcile (each retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TracedApp has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A child's name turned out to be taken by an object that is not ours when it was
    /// applied (the caches had not shown it yet).
    #[error("{0}")]
    ChildTaken(String),
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
    /// Every object of the child kinds, metadata only: whose a name is.
    pub(super) names: ownership::Names,
    /// The app's pods, found through their owners.
    pub(super) chain: owned::Chain,
    /// Where the operator runs (its namespace goes into each NetworkPolicy).
    pub(super) site: tracedapp_k8s::manifests::Site,
    /// Reads of the collectors' own metrics, and what they say.
    pub(super) export: Arc<health::ExportHealth>,
    /// Consecutive failures per TracedApp (namespace/name), for the back-off.
    pub(super) failures: Mutex<HashMap<String, u32>>,
    /// Per child (`Kind/ns/name`) and per status (`TracedApp/ns/name`): our last write. A
    /// cache older than our own write is not mistaken for drift, nor answered with the same
    /// write again.
    pub(super) last_writes: Mutex<HashMap<String, LastWrite>>,
}

/// What we last wrote to one object.
#[derive(Debug, Clone, Copy)]
pub struct LastWrite {
    /// The resourceVersion the API server answered.
    pub resource_version: u64,
    /// A hash of what we sent.
    pub hash: u64,
    pub at: std::time::Instant,
}

impl Context {
    /// Our last write to `key`, if we remember one.
    pub(super) fn last_write(&self, key: &str) -> Option<LastWrite> {
        self.last_writes.lock().ok()?.get(key).copied()
    }
}

/// A hash of `value`'s JSON form (what a write sent).
pub fn json_hash<T: serde::Serialize>(value: &T) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .expect("k8s objects serialise")
        .hash(&mut h);
    h.finish()
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}
