//! Whose is an object? Children are server-side applied with force, so a TracedApp named like
//! an existing Deployment, Service, ConfigMap, ServiceAccount or NetworkPolicy would take it
//! over, and its deletion would then garbage-collect it. Before anything is applied, every
//! child that already exists must be this TracedApp's: its controller owner reference carries
//! the TracedApp's uid.
//!
//! Expected flow: the names caches ([`Names`]: every object of the five kinds, labelled or
//! not, metadata only) answer, so a new app costs no read. A cache lags the API server by the
//! time an event takes to arrive; for an object created in that window, the first apply of a
//! child the caches do not show is sent without force (see [`super::apply`]): it fails with a
//! conflict on an object another manager holds, and [`foreign_read`] then asks the API server.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Metadata of every object of the child kinds in the watched namespaces.
#[derive(Clone)]
pub struct Names {
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub deployments: Store<PartialObjectMeta<Deployment>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").finish_non_exhaustive()
    }
}

/// Why `desired` cannot be applied, if the names cache holds an object of its name that is
/// not ours (no request).
pub fn foreign<K>(store: &Store<PartialObjectMeta<K>>, ns: &str, desired: &K) -> Option<String>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + k8s_openapi::Resource + Clone,
{
    let name = desired.meta().name.as_deref().unwrap_or_default();
    let live = store.get(&ObjectRef::new(name).within(ns))?;
    judge::<K>(&live.metadata, desired.meta())
}

/// [`foreign`], read from the API server (one GET): for the rare object the cache has not
/// shown yet.
pub async fn foreign_read<K>(
    client: &Client,
    ns: &str,
    desired: &K,
) -> Result<Option<String>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = desired.meta().name.as_deref().unwrap_or_default();
    let live = Api::<K>::namespaced(client.clone(), ns)
        .get_metadata_opt(name)
        .await?;
    Ok(live.and_then(|live| judge::<K>(&live.metadata, desired.meta())))
}

/// `None` if the live object's controller is the owner `desired` names; otherwise why not.
fn judge<K: k8s_openapi::Resource>(live: &ObjectMeta, desired: &ObjectMeta) -> Option<String> {
    let name = desired.name.as_deref().unwrap_or_default();
    let ours = desired
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.as_str());
    let controller = live
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let kind = K::KIND;
    match (controller, ours) {
        (Some(c), Some(uid)) if c.uid == uid => None,
        (Some(c), _) => Some(format!(
            "{kind} {name} exists and belongs to {} {}",
            c.kind, c.name
        )),
        (None, _) => Some(format!(
            "{kind} {name} exists and is not this TracedApp's; rename the TracedApp or remove \
             the {kind}"
        )),
    }
}
