//! Applying a TracedApp's children: compare each with the cached live object and
//! server-side apply (one field manager; with force once the object is known to be ours) only
//! what differs; delete collector ConfigMaps of configs older than the ones kept for rollback.
//!
//! Guarantees: a child the cache already shows as wanted costs no request; a cache older
//! than our own last write is not mistaken for drift, and a child we created moments ago is
//! not created again; nothing is applied while a child's name is taken by an object that is
//! not ours ([`Context::foreign_children`], and a first apply without force). A new app
//! costs its five applies and nothing else here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracedapp_api::spec::TracedApp;
use tracing::Instrument;

use super::context::{LastWrite, json_hash};
use super::{Context, Error, diff, ownership};
use tracedapp_k8s::labels::MANAGER;
use tracedapp_k8s::manifests::Children;

/// What applying the children came to.
#[derive(Debug)]
pub struct Applied {
    /// The live Deployment (for the status).
    pub deployment: Deployment,
    /// Where children differed from what we apply although the spec did not change
    /// (`Deployment spec.replicas`): edited by hand, now restored.
    pub drifted: Vec<String>,
    /// A child we created is not in its cache yet: look again after [`CACHE_CATCH_UP`].
    pub pending: bool,
}

impl Context {
    /// Why the children cannot be applied, if an object of one of their names is not ours
    /// (read from the names caches: no request).
    pub(crate) fn foreign_children(&self, ns: &str, children: &Children) -> Option<String> {
        let n = &self.names;
        let conflicts: Vec<String> = [
            ownership::foreign(&n.config_maps, ns, &children.config_map),
            ownership::foreign(&n.accounts, ns, &children.service_account),
            ownership::foreign(&n.deployments, ns, &children.deployment),
            ownership::foreign(&n.services, ns, &children.service),
            ownership::foreign(&n.network_policies, ns, &children.network_policy),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!conflicts.is_empty()).then(|| conflicts.join("; "))
    }

    /// Whether the live Deployment was made with another selector than `desired`'s (by an
    /// older operator), and is being moved: a selector cannot change, so the Deployment is
    /// deleted with `propagationPolicy: Orphan`, which leaves its ReplicaSets and pods running.
    /// The pass after it is gone creates the Deployment with the new selector; the Deployment
    /// controller adopts the orphaned ReplicaSet (its labels carry the new selector's too) and,
    /// the pod template being the same, keeps its pods: no restart, no span lost.
    pub(crate) async fn moving_selector(
        &self,
        ns: &str,
        desired: &Deployment,
    ) -> Result<bool, Error> {
        let name = desired.name_any();
        let Some(live) = self.deployments.get(&ObjectRef::new(&name).within(ns)) else {
            return Ok(false);
        };
        let selector = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone());
        if selector(&live) == selector(desired) {
            return Ok(false);
        }
        if live.metadata.deletion_timestamp.is_some() {
            // Deleted already; the garbage collector is orphaning its ReplicaSets.
            return Ok(true);
        }
        tracing::info!(deployment = %name, namespace = ns, "moving the Deployment to the current selector: deleting it with its pods left running");
        let params = DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
            preconditions: live.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        self.metrics.wrote("delete", "Deployment");
        match api.delete(&name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies every child that differs from its live object, in order: config and identity
    /// before the pods that use them.
    pub(crate) async fn apply_all(&self, ns: &str, children: &Children) -> Result<Applied, Error> {
        let mut drifted = Vec::new();
        let mut pending = false;
        let mut note = |kind: &str, e: Option<&str>, p: bool| {
            drifted.extend(e.map(|p| format!("{kind} {p}")));
            pending |= p;
        };
        let e = self
            .ensure(&self.config_maps, ns, &children.config_map)
            .await?;
        note("ConfigMap", e.drift(), e.pending());
        let e = self
            .ensure(&self.accounts, ns, &children.service_account)
            .await?;
        note("ServiceAccount", e.drift(), e.pending());
        let deployment = self
            .ensure(&self.deployments, ns, &children.deployment)
            .await?;
        note("Deployment", deployment.drift(), deployment.pending());
        let e = self.ensure(&self.services, ns, &children.service).await?;
        note("Service", e.drift(), e.pending());
        let e = self
            .ensure(&self.network_policies, ns, &children.network_policy)
            .await?;
        note("NetworkPolicy", e.drift(), e.pending());
        Ok(Applied {
            deployment: deployment.object(),
            drifted,
            pending,
        })
    }

    /// Applies `desired` unless the cached live object already holds it.
    async fn ensure<K>(&self, store: &Store<K>, ns: &str, desired: &K) -> Result<Ensured<K>, Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let kind = <K as k8s_openapi::Resource>::KIND;
        let name = desired.meta().name.clone().unwrap_or_default();
        let key = format!("{kind}/{ns}/{name}");
        let want = serde_json::to_value(desired).expect("k8s objects serialise");
        let want_hash = json_hash(&want);
        let live = store.get(&ObjectRef::new(&name).within(ns));
        let ours = self.last_write(&key).filter(|w| w.hash == want_hash);
        let mut drift = None;
        if let Some(live) = &live {
            let cache_is_older =
                ours.is_some_and(|w| resource_version(live.as_ref()) < w.resource_version);
            if cache_is_older {
                return Ok(Ensured::Unchanged(live.as_ref().clone()));
            }
            let have = serde_json::to_value(live.as_ref()).expect("k8s objects serialise");
            match diff::first_difference(&have, &want) {
                None => return Ok(Ensured::Unchanged(live.as_ref().clone())),
                Some(path) => drift = Some(path),
            }
        } else if ours.is_some_and(|w| w.at.elapsed() < CACHE_CATCH_UP) {
            // We created it moments ago and its watch event is still on its way (a pass that
            // follows another one closely); the pass comes back once the window is over, in
            // case it was deleted meanwhile.
            return Ok(Ensured::Pending(desired.clone()));
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let span = tracing::info_span!("apply", kind, name = %name, drift = drift.as_deref());
        let applied = if live.is_some() {
            self.apply_forced(&api, &name, desired, span).await?
        } else {
            // A child the cache does not show is applied without force: if an object of its
            // name appeared since the names cache was read and another manager holds its
            // fields, the API server answers 409 instead of handing them to us.
            let params = PatchParams::apply(MANAGER);
            match api
                .patch(&name, &params, &Patch::Apply(desired))
                .instrument(span.clone())
                .await
            {
                Ok(applied) => applied,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    if let Some(why) = ownership::foreign_read(&self.client, ns, desired).await? {
                        return Err(Error::ChildTaken(why));
                    }
                    self.apply_forced(&api, &name, desired, span).await?
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.metrics.wrote("apply", kind);
        self.remember_write(key, &applied, want_hash);
        Ok(match drift {
            None => Ensured::Created(applied),
            Some(path) => Ensured::Updated(applied, path),
        })
    }

    /// Server-side apply of `desired` with force: our fields are ours.
    async fn apply_forced<K>(
        &self,
        api: &Api<K>,
        name: &str,
        desired: &K,
        span: tracing::Span,
    ) -> Result<K, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let params = PatchParams::apply(MANAGER).force();
        api.patch(name, &params, &Patch::Apply(desired))
            .instrument(span)
            .await
    }

    /// Remembers our write to `key` (`Kind/ns/name`): what the API server answered and a hash
    /// of what we sent; now and then forgets children that are gone (deleted apps).
    pub(super) fn remember_write<K: Resource>(&self, key: String, answer: &K, hash: u64) {
        let Ok(mut m) = self.last_writes.lock() else {
            return;
        };
        let write = LastWrite {
            resource_version: resource_version(answer),
            hash,
            at: Instant::now(),
        };
        m.insert(key, write);
        let cached = self.config_maps.len()
            + self.accounts.len()
            + self.deployments.len()
            + self.services.len()
            + self.network_policies.len();
        if m.len() > 64 + 2 * cached {
            m.retain(|key, _| self.in_cache(key));
        }
    }

    /// Whether the child `Kind/namespace/name` is in its watch cache.
    fn in_cache(&self, key: &str) -> bool {
        let mut parts = key.splitn(3, '/');
        let (Some(kind), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        match kind {
            "ConfigMap" => self
                .config_maps
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "ServiceAccount" => self
                .accounts
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "Deployment" => self
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "Service" => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "NetworkPolicy" => self
                .network_policies
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            _ => false,
        }
    }
}

/// What [`Context::ensure`] did for one child.
enum Ensured<K> {
    /// The live object already held what we apply; nothing sent.
    Unchanged(K),
    /// We created it within [`CACHE_CATCH_UP`] and the cache has not shown it yet: nothing
    /// sent; the object is what we applied.
    Pending(K),
    Created(K),
    /// It differed at this path; applied.
    Updated(K, String),
}

impl<K> Ensured<K> {
    /// Where the live object differed from what we applied, if it existed.
    fn drift(&self) -> Option<&str> {
        match self {
            Ensured::Updated(_, path) => Some(path),
            _ => None,
        }
    }

    fn pending(&self) -> bool {
        matches!(self, Ensured::Pending(_))
    }

    fn object(self) -> K {
        match self {
            Ensured::Unchanged(k)
            | Ensured::Pending(k)
            | Ensured::Created(k)
            | Ensured::Updated(k, _) => k,
        }
    }
}

/// `k`'s resourceVersion as a number (0 if it has none).
pub(super) fn resource_version<K: Resource>(k: &K) -> u64 {
    k.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How long a child we created may be missing from its cache before it is applied again.
pub const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// Collector ConfigMaps of older config hashes kept for rollback (besides the current one).
pub const KEEP_OLD_CONFIG_MAPS: usize = 2;

/// Deletes this TracedApp's collector ConfigMaps beyond the current one and the
/// [`KEEP_OLD_CONFIG_MAPS`] newest older ones (read from the cache: no request unless
/// something is deleted).
///
/// Only what the TracedApp owns is a candidate: a ConfigMap whose controller owner reference
/// carries its uid, as for every child it applies. Labels alone decide nothing: anyone can copy
/// them onto a ConfigMap of their own.
pub(crate) async fn prune_config_maps(
    ctx: &Context,
    ns: &str,
    app: &TracedApp,
    current_hash: &str,
) -> Result<(), Error> {
    let current = tracedapp_k8s::naming::collector_config_map(app, current_hash);
    let mut old: Vec<Arc<ConfigMap>> = ctx
        .config_maps
        .state()
        .into_iter()
        .filter(|cm| {
            cm.namespace().as_deref() == Some(ns)
                && owned_by(cm.as_ref(), app)
                && cm
                    .labels()
                    .get("app.kubernetes.io/component")
                    .map(String::as_str)
                    == Some(tracedapp_k8s::labels::COMPONENT_CONFIG)
                && cm.name_any() != current
        })
        .collect();
    // Newest first; names break ties within the same second.
    old.sort_by_key(|cm| {
        std::cmp::Reverse((
            cm.metadata.creation_timestamp.as_ref().map(|t| t.0),
            cm.name_any(),
        ))
    });
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for cm in old.into_iter().skip(KEEP_OLD_CONFIG_MAPS) {
        tracing::info!(config_map = %cm.name_any(), "pruning an old collector config");
        ctx.metrics.wrote("delete", "ConfigMap");
        // Deleted only if it is still the object we judged (its uid): a ConfigMap recreated
        // under that name by someone else since is not ours to delete.
        let params = DeleteParams {
            preconditions: cm.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&cm.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `object`'s controller owner reference is `app` (by uid).
pub(crate) fn owned_by<K: Resource>(object: &K, app: &TracedApp) -> bool {
    let Some(uid) = app.uid() else {
        return false;
    };
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid && o.kind == "TracedApp")
}
