//! Which pods are a TracedApp's own. A label can be set by anyone who can create a pod in the
//! namespace, so it only narrows what is watched; ownership is the chain Kubernetes itself
//! keeps: the pod's controller is a ReplicaSet whose controller is the Deployment whose
//! controller is the TracedApp (each link by uid).
//!
//! A pod that forges the chain (an owner reference to one of our ReplicaSets) is counted
//! against its ReplicaSet by the ReplicaSet controller, which deletes the surplus: forging it
//! gains nothing lasting.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracedapp_api::TracedApp;

/// The uid of `object`'s controller owner reference of `kind`, if it has one.
fn controller_uid<'a, K: Resource>(object: &'a K, kind: &str) -> Option<&'a str> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| o.uid.as_str())
}

/// The caches the chain is read from.
#[derive(Clone)]
pub struct Chain {
    pub deployments: Store<Deployment>,
    pub replica_sets: Store<PartialObjectMeta<ReplicaSet>>,
    pub pods: Store<Pod>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").finish_non_exhaustive()
    }
}

impl Chain {
    /// The uid of the Deployment `app` owns (its child of the Deployment's name).
    fn deployment_uid(&self, app: &TracedApp) -> Option<String> {
        let app_uid = app.uid()?;
        let name = tracedapp_k8s::naming::workload(app);
        let deployment = self
            .deployments
            .get(&ObjectRef::new(&name).within(&app.namespace()?))?;
        (controller_uid(deployment.as_ref(), "TracedApp") == Some(app_uid.as_str()))
            .then(|| deployment.uid())
            .flatten()
    }

    /// `app`'s own pods (one app: a pass reads this).
    pub fn pods_of(&self, app: &TracedApp) -> Vec<Arc<Pod>> {
        let Some(deployment) = self.deployment_uid(app) else {
            return Vec::new();
        };
        let replica_sets: HashSet<String> = self
            .replica_sets
            .state()
            .iter()
            .filter(|rs| controller_uid(rs.as_ref(), "Deployment") == Some(deployment.as_str()))
            .filter_map(|rs| rs.uid())
            .collect();
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                controller_uid(p.as_ref(), "ReplicaSet").is_some_and(|rs| replica_sets.contains(rs))
            })
            .collect()
    }

    /// Every app's own pods, by `namespace/name` (a sampler round reads this: each cache is
    /// walked once, whatever the number of apps).
    pub fn pods_by_app(&self, apps: &[Arc<TracedApp>]) -> HashMap<String, Vec<Arc<Pod>>> {
        let deployment_to_app: HashMap<String, String> = apps
            .iter()
            .filter_map(|a| Some((self.deployment_uid(a)?, super::status::key(a))))
            .collect();
        let rs_to_app: HashMap<String, &String> = self
            .replica_sets
            .state()
            .iter()
            .filter_map(|rs| {
                let app = deployment_to_app.get(controller_uid(rs.as_ref(), "Deployment")?)?;
                Some((rs.uid()?, app))
            })
            .collect();
        let mut out: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for pod in self.pods.state() {
            if let Some(app) =
                controller_uid(pod.as_ref(), "ReplicaSet").and_then(|rs| rs_to_app.get(rs))
            {
                out.entry((*app).clone()).or_default().push(pod);
            }
        }
        out
    }
}
