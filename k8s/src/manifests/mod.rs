//! One pure builder per Kubernetes object, and [`build`] that lists them: the collector's
//! ConfigMap, the ServiceAccount, the Deployment, the Service and the NetworkPolicy.
//!
//! Builders take a validated [`TracedApp`] and return objects; they never talk to a cluster.
//! When the TracedApp has a `uid` (it came from the API server) every child gets a controller
//! owner reference, so deleting the TracedApp garbage-collects its children.

mod configmap;
mod deployment;
mod networkpolicy;
mod service;
mod serviceaccount;

pub use configmap::config_map;
pub use deployment::deployment;
pub use networkpolicy::network_policy;
pub use service::service;
pub use serviceaccount::service_account;

use std::borrow::Cow;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde::Serialize;
use tracedapp_api::TracedApp;
use tracedapp_api::collector::{self, CollectorConfig};
use tracedapp_api::spec::Distribution;

use crate::labels;

/// Key of the collector configuration inside its ConfigMap.
pub const CONFIG_KEY: &str = "collector.yaml";
/// Where the sidecar mounts it.
pub const CONFIG_DIR: &str = "/etc/otelcol";
/// The collector container's variable holding the pod's IP (downward API), where it serves
/// its own metrics.
pub const POD_IP_ENV: &str = "POD_IP";
/// Name of the collector container's port serving its own metrics.
pub const TELEMETRY_PORT_NAME: &str = "otel-telemetry";

/// What one TracedApp is rendered into, with the facts the builders share.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The collector configuration as YAML.
    pub collector_yaml: String,
    /// Its short hash (ConfigMap name suffix and pod-template annotation).
    pub config_hash: String,
}

impl Rendered {
    /// The collector configuration the sidecar of `app` runs: the renderer's, with the
    /// collector's own metrics served on the pod's IP (for the operator's export-health reads).
    pub fn config(app: &TracedApp) -> CollectorConfig {
        collector::render(&app.spec).telemetry_on(&format!("${{env:{POD_IP_ENV}}}"))
    }

    /// Renders the collector configuration of `app`.
    pub fn new(app: &TracedApp) -> Self {
        let collector_yaml = Self::config(app).to_yaml();
        let config_hash = tracedapp_api::hash::short_hash(&collector_yaml);
        Self {
            collector_yaml,
            config_hash,
        }
    }
}

/// Every child object of a TracedApp, and the collector configuration they carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// The collector configuration (rendered once) and its hash.
    pub rendered: Rendered,
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
}

/// Facts about where the operator runs that the children depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The operator's namespace: its pods alone may read the collectors' own metrics.
    pub operator_namespace: String,
    /// The collector image of every app whose spec names none and keeps the default (contrib)
    /// distribution: e.g. the site's build of TracedApp's distribution
    /// (`tools/otelcol.Dockerfile`). `None`: the distribution's pinned image.
    pub collector_image: Option<String>,
}

impl Site {
    /// `app` as this site runs it: its collector image taken from [`Site::collector_image`]
    /// where the spec names none and keeps the contrib distribution (a spec's own choice wins).
    pub fn applied_to<'a>(&self, app: &'a TracedApp) -> Cow<'a, TracedApp> {
        let collector = &app.spec.collector;
        match &self.collector_image {
            Some(image)
                if collector.image.is_none() && collector.distribution == Distribution::Contrib =>
            {
                let mut app = app.clone();
                app.spec.collector.image = Some(image.clone());
                Cow::Owned(app)
            }
            _ => Cow::Borrowed(app),
        }
    }
}

/// The namespace the README and the chart install the operator into.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "tracedapp-system";

impl Default for Site {
    fn default() -> Self {
        Self {
            operator_namespace: DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            collector_image: None,
        }
    }
}

/// One child, for code that handles them uniformly (printing, applying).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "five per TracedApp, built once per reconcile: boxing buys nothing"
)]
pub enum Child {
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    Deployment(Deployment),
    Service(Service),
    NetworkPolicy(NetworkPolicy),
}

impl Children {
    /// The children in apply order: config and identity before the pods that use them.
    pub fn list(self) -> Vec<Child> {
        // `rendered` is in the ConfigMap already.
        vec![
            Child::ConfigMap(self.config_map),
            Child::ServiceAccount(self.service_account),
            Child::Deployment(self.deployment),
            Child::Service(self.service),
            Child::NetworkPolicy(self.network_policy),
        ]
    }
}

/// Builds every child of a (validated) TracedApp, for an operator in the default namespace.
pub fn build(app: &TracedApp) -> Children {
    build_at(app, &Site::default())
}

/// Builds every child of a (validated) TracedApp, for an operator at `site`.
pub fn build_at(app: &TracedApp, site: &Site) -> Children {
    let app = &*site.applied_to(app);
    let rendered = Rendered::new(app);
    Children {
        config_map: config_map(app, &rendered),
        service_account: service_account(app),
        deployment: deployment(app, &rendered),
        service: service(app),
        network_policy: network_policy(app, site),
        rendered,
    }
}

/// Metadata shared by every child: name, namespace, labels, owner reference.
pub(crate) fn child_meta(app: &TracedApp, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: app.metadata.namespace.clone(),
        labels: Some(labels::common(app, component)),
        owner_references: owner_reference(app).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(app: &TracedApp) -> Option<OwnerReference> {
    app.controller_owner_ref(&())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::naming;
    use tracedapp_api::fixtures::{Fixture, app};

    fn containers(c: &Children) -> Vec<Container> {
        let pod = c.deployment.spec.clone().unwrap().template.spec.unwrap();
        let mut all = pod.init_containers.unwrap_or_default();
        all.extend(pod.containers);
        all
    }

    /// The collector is a native sidecar: an init container that keeps running, probed before
    /// the app starts, so it is up first and stops last.
    #[test]
    fn collector_is_a_native_sidecar_that_starts_first() {
        let pod = build(&app())
            .deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let init = pod.init_containers.unwrap();
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].name, naming::COLLECTOR_CONTAINER);
        assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
        assert!(
            init[0].startup_probe.is_some(),
            "the app waits for a healthy collector"
        );
        assert_eq!(pod.containers[0].name, naming::APP_CONTAINER);
    }

    /// A site's collector image reaches apps whose spec leaves the choice to it, and no other.
    #[test]
    fn the_sites_collector_image_fills_only_what_the_spec_leaves_open() {
        let site = Site {
            collector_image: Some("registry.example.com/otelcol-tracedapp:0.161.0".into()),
            ..Site::default()
        };
        let collector_image = |children: &Children| {
            containers(children)
                .into_iter()
                .find(|c| c.name == naming::COLLECTOR_CONTAINER)
                .and_then(|c| c.image)
                .unwrap()
        };
        let image_of = |app: &TracedApp| collector_image(&build_at(app, &site));
        assert_eq!(
            image_of(&app()),
            "registry.example.com/otelcol-tracedapp:0.161.0"
        );
        let mut own = app();
        own.spec.collector.image = Some("ghcr.io/acme/collector:2".into());
        assert_eq!(
            image_of(&own),
            "ghcr.io/acme/collector:2",
            "the spec's own image"
        );
        let mut adot = app();
        adot.spec.collector.distribution = Distribution::Adot;
        assert_eq!(
            image_of(&adot),
            collector::ADOT_IMAGE,
            "the spec chose ADOT"
        );
        assert_eq!(
            collector_image(&build(&app())),
            collector::CONTRIB_IMAGE,
            "no site image: the pinned contrib image"
        );
    }

    /// Every container meets the restricted Pod Security Standard.
    #[test]
    fn every_container_is_restricted() {
        let children = build(&app().with_xray());
        let pod = children
            .deployment
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        for c in containers(&children) {
            let sc = c.security_context.unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(
                sc.capabilities.unwrap().drop.unwrap(),
                ["ALL"],
                "{}",
                c.name
            );
            assert_eq!(
                sc.seccomp_profile.unwrap().type_,
                "RuntimeDefault",
                "{}",
                c.name
            );
            let res = c.resources.unwrap();
            assert!(res.requests.is_some() && res.limits.is_some(), "{}", c.name);
        }
    }

    /// AWS keys reach the collector only through `secretKeyRef`; the ConfigMap never holds them.
    #[test]
    fn credentials_stay_in_their_secret() {
        let children = build(&app().with_xray().with_secret_credentials());
        let data = serde_json::to_string(&children.config_map.data).unwrap();
        assert!(
            !data.contains("AWS_") && !data.contains("aws-keys"),
            "{data}"
        );
        let collector = &containers(&children)[0];
        let env = collector.env.clone().unwrap();
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let e = env.iter().find(|e| e.name == var).expect(var);
            assert!(e.value.is_none(), "{var} must not be a literal");
            let r = e.value_from.clone().unwrap().secret_key_ref.unwrap();
            assert_eq!(r.name, "aws-keys");
        }
    }

    /// A collector config change gives a new ConfigMap name and pod annotation (pods roll); the
    /// same spec gives the same ones (no needless rollout).
    #[test]
    fn config_change_rolls_the_pods_and_only_then() {
        let annotation = |c: &Children| {
            c.deployment
                .spec
                .clone()
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[labels::CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let (a, b) = (build(&app()), build(&app()));
        assert_eq!(a.config_map.metadata.name, b.config_map.metadata.name);
        assert_eq!(annotation(&a), annotation(&b));
        let changed = build(&app().edit(|t| t.spec.collector.batch.send_batch_size = 100));
        assert_ne!(a.config_map.metadata.name, changed.config_map.metadata.name);
        assert_ne!(annotation(&a), annotation(&changed));
        let volume = changed
            .deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .volumes
            .unwrap()[0]
            .config_map
            .clone()
            .unwrap()
            .name;
        assert_eq!(
            Some(volume),
            changed.config_map.metadata.name,
            "pods mount the new ConfigMap"
        );
    }

    /// Children of a stored TracedApp carry a controller owner reference (garbage collection).
    #[test]
    fn stored_apps_own_their_children() {
        for child in build(&app().stored()).list() {
            let meta = match &child {
                Child::ConfigMap(o) => &o.metadata,
                Child::ServiceAccount(o) => &o.metadata,
                Child::Deployment(o) => &o.metadata,
                Child::Service(o) => &o.metadata,
                Child::NetworkPolicy(o) => &o.metadata,
            };
            let owners = meta.owner_references.clone().unwrap();
            assert_eq!(owners[0].kind, "TracedApp");
            assert_eq!(owners[0].controller, Some(true));
        }
        assert!(build(&app()).config_map.metadata.owner_references.is_none());
    }

    /// IRSA: the ServiceAccount is annotated with the role only when one is given.
    #[test]
    fn irsa_annotation_follows_the_role() {
        let sa = build(&app().with_role("arn:aws:iam::123456789012:role/x")).service_account;
        assert_eq!(
            sa.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::123456789012:role/x"
        );
        assert!(build(&app()).service_account.metadata.annotations.is_none());
    }

    /// `$(NAME)` in a user's variable or service name is text on both targets: escaped for
    /// Kubernetes, whose kubelet would expand it (ECS does not); our own `$(K8S_POD_NAME)`
    /// reference still works.
    #[test]
    fn user_variables_are_not_expanded_by_kubernetes() {
        let app = app().edit(|a| {
            a.spec.app.env = vec![
                serde_json::from_value(
                    serde_json::json!({"name": "GREETING", "value": "hi $(K8S_POD_NAME)"}),
                )
                .unwrap(),
            ];
            a.spec.service_name = Some("shop-$(K8S_NAMESPACE_NAME)".into());
        });
        let env = containers(&build(&app))[1].env.clone().unwrap();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(get("GREETING").unwrap(), "hi $$(K8S_POD_NAME)");
        assert_eq!(
            get("OTEL_SERVICE_NAME").unwrap(),
            "shop-$$(K8S_NAMESPACE_NAME)"
        );
        assert!(
            get("OTEL_RESOURCE_ATTRIBUTES")
                .unwrap()
                .contains("k8s.pod.name=$(K8S_POD_NAME)")
        );
    }

    /// The app sends OTLP to the sidecar on localhost and names its pod and namespace.
    #[test]
    fn app_exports_to_the_sidecar_with_kubernetes_attributes() {
        let app_container = containers(&build(&app()))[1].clone();
        let env = app_container.env.unwrap();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap(),
            "http://localhost:4317"
        );
        assert_eq!(get("OTEL_SERVICE_NAME").unwrap(), "shop");
        let attrs = get("OTEL_RESOURCE_ATTRIBUTES").unwrap();
        assert!(attrs.contains("k8s.pod.name=$(K8S_POD_NAME)"), "{attrs}");
        let pod_name = env.iter().position(|e| e.name == "K8S_POD_NAME").unwrap();
        let attributes = env
            .iter()
            .position(|e| e.name == "OTEL_RESOURCE_ATTRIBUTES")
            .unwrap();
        assert!(
            pod_name < attributes,
            "$(K8S_POD_NAME) only expands if defined earlier"
        );
    }
}
