//! The `TracedApp` custom resource (`tracedapp.dev/v1alpha1`).
//!
//! One spec describes an app and its telemetry pipeline for both targets: Kubernetes (app
//! container + collector sidecar) and AWS ECS (app container + collector container). Doc comments
//! become the CRD's field descriptions; `#[serde(default = ...)]` become its defaults; schemars
//! bounds and `x_kube` CEL rules become its validation. The same checks run in Rust
//! ([`crate::validate`]) for the CLI and ECS path, where no API server is involved.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resources;

mod aws;
mod crd;
mod network;
mod patterns;
mod pipeline;

pub use aws::*;
pub use crd::{crd, crd_yaml};
pub use network::*;
use patterns::*;
pub use patterns::{
    IMAGE as IMAGE_PATTERN, NAME_MAX, NAME_PATTERN, PATTERN_MEANINGS, is_aws_region,
};
pub use pipeline::*;

/// Environment variables the generated app container sets itself; a user `env` entry may not
/// redefine them.
pub const RESERVED_ENV: &[&str] = &[
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "K8S_POD_NAME",
    "K8S_NAMESPACE_NAME",
    "PORT",
];

/// A service and its OpenTelemetry pipeline: the app, a collector beside it, and where traces
/// and metrics go. Rendered to Kubernetes objects by the operator and to an ECS task definition
/// by `tracedapp render ecs`.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tracedapp.dev",
    version = "v1alpha1",
    kind = "TracedApp",
    plural = "tracedapps",
    shortname = "ta",
    namespaced,
    status = "TracedAppStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"string","jsonPath":".status.replicasSummary"}"#,
    printcolumn = r#"{"name":"Export","type":"string","jsonPath":".status.conditions[?(@.type==\"ExportHealthy\")].status"}"#,
    printcolumn = r#"{"name":"Exporters","type":"string","jsonPath":".status.exporters"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = crate::sidecar::port_rule("app.port"))]
#[x_kube(validation = crate::sidecar::port_rule("exporters.prometheus.port"))]
#[x_kube(validation = Rule::new("self.exporters.prometheus.port != self.app.port").message("exporters.prometheus.port must differ from app.port: the app and collector share the pod/task network").field_path(".exporters.prometheus.port"))]
#[x_kube(validation = crate::resources::ecs_memory_rule())]
#[x_kube(validation = pipeline::xray_otlp_batch_rule())]
#[x_kube(validation = Rule::new("!has(self.ecs) || self.ecs.launchType != 'FARGATE' || has(self.ecs.executionRoleArn)").message("ecs.executionRoleArn is required on FARGATE: ECS needs it to write the containers' awslogs").field_path(".ecs.executionRoleArn"))]
pub struct TracedAppSpec {
    /// The application container.
    pub app: AppSpec,

    /// OpenTelemetry `service.name` of the app. Defaults to the TracedApp's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = TRIMMED))]
    pub service_name: Option<String>,

    /// Extra OpenTelemetry resource attributes, e.g. `deployment.environment.name: prod`.
    /// Keys are tokens (letters, digits and `!#$%&'*+-.^_|~`, at most 255); values are any
    /// text up to 255 characters, percent-encoded into `OTEL_RESOURCE_ATTRIBUTES`. The keys
    /// TracedApp sets itself are refused: `service.name` (use `serviceName`), `k8s.pod.name`,
    /// `k8s.namespace.name`, `k8s.deployment.name`, `cloud.provider`, `cloud.platform`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(r#"self.all(k, k.size() <= 255 && k.matches("^[A-Za-z0-9!#$%&'*+.^_|~-]+$"))"#).message("keys must be 1 to 255 token characters: letters, digits and !#$%&'*+-.^_|~ (no spaces, commas or '=')"))]
    #[x_kube(validation = Rule::new("self.all(k, !(k in ['service.name', 'k8s.pod.name', 'k8s.namespace.name', 'k8s.deployment.name', 'cloud.provider', 'cloud.platform']))").message("must not set an attribute TracedApp sets itself (service.name: use spec.serviceName; k8s.pod.name, k8s.namespace.name, k8s.deployment.name, cloud.provider, cloud.platform)"))]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 255}))]
    pub resource_attributes: BTreeMap<String, String>,

    /// Which traces to keep.
    #[serde(default)]
    pub sampling: Sampling,

    /// The OpenTelemetry Collector that runs beside the app.
    #[serde(default)]
    pub collector: CollectorSpec,

    /// Where the collector sends traces and metrics. At least one trace exporter (Jaeger or
    /// X-Ray) is required.
    pub exporters: Exporters,

    /// AWS identity used by the collector to call X-Ray and CloudWatch.
    #[serde(default)]
    pub aws: AwsIdentity,

    /// Who may reach the app's pods (Kubernetes). Default: nobody beyond the namespace's own
    /// NetworkPolicies; the operator alone reaches the collector's telemetry port.
    #[serde(default, skip_serializing_if = "is_default")]
    pub network_policy: NetworkPolicySpec,

    /// AWS ECS task-definition settings (used by `tracedapp render ecs` and `tracedapp ecs register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsSpec>,
}

/// For `skip_serializing_if`: a field left at its default is not written out.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The application container.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = resources::cel_rule(resources::APP, false))]
pub struct AppSpec {
    /// Container image of the app, e.g. `ghcr.io/acme/shop:1.4.2`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = IMAGE))]
    pub image: String,

    /// Port the app listens on.
    #[serde(default = "default_app_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Number of pods (Kubernetes) or desired tasks (informational for ECS).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Extra environment variables for the app. Names the generated container sets itself
    /// (`PORT`, `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, ...) are rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(e, !(e.name in ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'K8S_POD_NAME', 'K8S_NAMESPACE_NAME', 'PORT']))").message("must not set a variable TracedApp sets itself (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, K8S_POD_NAME, K8S_NAMESPACE_NAME, PORT)"))]
    #[x_kube(validation = Rule::new("self.all(e, self.exists_one(f, f.name == e.name))").message("variable names must be unique"))]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// CPU and memory for the app container.
    #[serde(default)]
    pub resources: Resources,

    /// HTTP path of the app's liveness/readiness check.
    #[serde(default = "default_health_path")]
    #[schemars(regex(pattern = ABS_PATH), length(max = 1024))]
    pub health_path: String,

    /// Seconds a rollout may go without progress before it counts as stuck: the Deployment
    /// then reports `ProgressDeadlineExceeded`, and so does the TracedApp's `Degraded`
    /// condition. Kubernetes only (default: Kubernetes' own, 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
}

/// One environment variable (a plain value: secrets belong in `aws.credentialsSecret` or in the
/// app's own secret store, never in the spec).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct EnvVar {
    /// Variable name: letters, digits and `_`, not starting with a digit.
    #[schemars(regex(pattern = ENV_NAME), length(max = 256))]
    pub name: String,
    /// Variable value, passed as it is on both targets: `$(NAME)` is not expanded (on
    /// Kubernetes it is escaped, since ECS would not expand it either).
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub value: String,
}

/// CPU and memory requests and limits, in Kubernetes quantity syntax (`250m`, `256Mi`).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct Resources {
    /// What the container is guaranteed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// What the container may use at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// A CPU and a memory amount: Kubernetes quantities, as a Deployment takes them in a CRD — text
/// (`250m`, `0.5`, `1.5Gi`) or a whole number (`cpu: 2`, `memory: 268435456`), kept as text.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct ResourceAmounts {
    /// CPU, e.g. `250m`, `1` or `0.5`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int_or_string"
    )]
    #[schemars(schema_with = "cpu_schema")]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi`, `1Gi` or `1.5Gi`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int_or_string"
    )]
    #[schemars(schema_with = "memory_schema")]
    pub memory: Option<String>,
}

/// The schema of a value that is a whole number or text (`x-kubernetes-int-or-string`): its
/// pattern and length apply to text.
pub(crate) fn int_or_string_schema(
    description: &str,
    pattern: &str,
    max: Option<u32>,
) -> schemars::Schema {
    let mut schema = schemars::json_schema!({
        "description": description,
        "x-kubernetes-int-or-string": true,
        "pattern": pattern,
    });
    if let Some(max) = max {
        schema.insert("maxLength".into(), max.into());
    }
    schema
}

fn cpu_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    int_or_string_schema("CPU, e.g. `250m`, `1` or `0.5`.", CPU, Some(10))
}

fn memory_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    int_or_string_schema("Memory, e.g. `256Mi`, `1Gi` or `1.5Gi`.", MEMORY, Some(24))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Text(String),
}

impl IntOrString {
    fn text(self) -> String {
        match self {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::Text(s) => s,
        }
    }
}

/// A whole number or text, kept as text (a quantity), when given.
fn int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<IntOrString>::deserialize(d)?.map(IntOrString::text))
}

/// A whole number or text, kept as text.
pub(crate) fn int_or_string_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<String, D::Error> {
    IntOrString::deserialize(d).map(IntOrString::text)
}

/// Observed state, written by the operator.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TracedAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `ConfigValid`, `Progressing`, `Ready`, `Degraded`, `ExportHealthy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `ready/wanted`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_summary: Option<String>,
    /// Trace and metric exporters in use, e.g. `jaeger,xray,prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporters: Option<String>,
    /// Short hash of the rendered collector configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_config_hash: Option<String>,
    /// Per exporter: what the app's collectors delivered and failed to deliver in the
    /// export-health window, as of the last change of the `ExportHealthy` condition (so that
    /// a steady state writes nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportTotals>,
}

/// One exporter's counts over the export-health window, summed over the pods sampled.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExportTotals {
    /// The exporter, as the collector configuration names it, e.g. `otlp_grpc/jaeger`.
    pub exporter: String,
    pub sent_spans: i64,
    /// Spans the exporter gave up on, or could not queue.
    pub failed_spans: i64,
    pub sent_metric_points: i64,
    pub failed_metric_points: i64,
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `ConfigValid`, `Progressing`, `Ready`, `Degraded` or `ExportHealthy`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn default_app_port() -> i32 {
    3000
}

fn default_replicas() -> i32 {
    1
}

fn default_health_path() -> String {
    "/health".into()
}
