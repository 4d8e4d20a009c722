//! One pure builder per Kubernetes object, and [`build`] that lists them.
//!
//! Builders take a validated [`TracedApp`] and return objects; they never talk to a cluster.
//! When the TracedApp has a `uid` (it came from the API server) every child gets a controller
//! owner reference, so deleting the TracedApp garbage-collects its children.

mod configmap;
mod deployment;
mod service;
mod serviceaccount;

pub use configmap::config_map;
pub use deployment::deployment;
pub use service::service;
pub use serviceaccount::service_account;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde::Serialize;
use tracedapp_api::TracedApp;
use tracedapp_api::collector::{self, CollectorConfig};

use crate::{labels, naming};

/// Key of the collector configuration inside its ConfigMap.
pub const CONFIG_KEY: &str = "collector.yaml";
/// Where the sidecar mounts it.
pub const CONFIG_DIR: &str = "/etc/otelcol";

/// What one TracedApp is rendered into, with the facts the builders share.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The collector configuration as YAML.
    pub collector_yaml: String,
    /// Its short hash (ConfigMap name suffix and pod-template annotation).
    pub config_hash: String,
}

impl Rendered {
    /// Renders the collector configuration of `app`.
    pub fn new(app: &TracedApp) -> Self {
        let config: CollectorConfig = collector::render(&app.spec);
        let collector_yaml = config.to_yaml();
        let config_hash = collector::short_hash(&collector_yaml);
        Self {
            collector_yaml,
            config_hash,
        }
    }
}

/// Every child object of a TracedApp.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
}

/// One child, for code that handles them uniformly (printing, applying).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Child {
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    Deployment(Deployment),
    Service(Service),
}

impl Children {
    /// The children in apply order: config and identity before the pods that use them.
    pub fn list(self) -> Vec<Child> {
        vec![
            Child::ConfigMap(self.config_map),
            Child::ServiceAccount(self.service_account),
            Child::Deployment(self.deployment),
            Child::Service(self.service),
        ]
    }
}

/// Builds every child of a (validated) TracedApp.
pub fn build(app: &TracedApp) -> Children {
    let rendered = Rendered::new(app);
    Children {
        config_map: config_map(app, &rendered),
        service_account: service_account(app),
        deployment: deployment(app, &rendered),
        service: service(app),
    }
}

/// The TracedApp's name (validated to be present).
pub(crate) fn app_name(app: &TracedApp) -> String {
    app.metadata.name.clone().unwrap_or_default()
}

/// Metadata shared by every child: name, namespace, labels, owner reference.
pub(crate) fn child_meta(app: &TracedApp, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: app.metadata.namespace.clone(),
        labels: Some(labels::common(&app_name(app), component)),
        owner_references: owner(app).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn owner(app: &TracedApp) -> Option<OwnerReference> {
    app.controller_owner_ref(&())
}

/// The name shared by the Deployment, Service and ServiceAccount.
pub(crate) fn workload_name(app: &TracedApp) -> String {
    naming::workload(&app_name(app))
}
