//! Whose is an object? Children are server-side applied with force, so a TracedApp named like
//! an existing Deployment, Service, ConfigMap or ServiceAccount would take it over, and its
//! deletion would then garbage-collect it. Before anything is applied, every child that
//! already exists must be this TracedApp's: its controller owner reference carries the
//! TracedApp's uid.
//!
//! Expected flow: the watch cache is asked first (our labelled children); an object that is not
//! there is looked up once (an unlabelled object is not in the cache). In a steady state every
//! child is cached, so this sends no request.

use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Why `desired` cannot be applied, if an object of its name exists that is not ours.
pub async fn foreign<K>(
    client: &Client,
    store: &Store<K>,
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
    let name = desired.meta().name.clone().unwrap_or_default();
    let ours = desired
        .meta()
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.clone());
    let live = match store.get(&ObjectRef::new(&name).within(ns)) {
        Some(cached) => Some(cached.as_ref().clone()),
        None => {
            Api::<K>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await?
        }
    };
    let Some(live) = live else {
        return Ok(None);
    };
    let controller = live
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let kind = <K as k8s_openapi::Resource>::KIND;
    Ok(match (controller, ours) {
        (Some(c), Some(uid)) if c.uid == uid => None,
        (Some(c), _) => Some(format!(
            "{kind} {name} exists and belongs to {} {}",
            c.kind, c.name
        )),
        (None, _) => Some(format!(
            "{kind} {name} exists and is not this TracedApp's; rename the TracedApp or remove \
             the {kind}"
        )),
    })
}
