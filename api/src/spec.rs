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

use crate::fargate;
use crate::resources;

// Patterns use only syntax Go's RE2 (the API server) and Rust's `regex` (the CLI) read alike:
// ASCII classes, `[[:space:]]` rather than `\s` (which is Unicode-aware in Rust).

/// An IAM role ARN (partition, 12-digit account, role name with its optional path).
const ROLE_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// An AWS region, e.g. `us-east-1`, `us-gov-west-1`.
const REGION: &str = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$";
/// Text without spaces or control characters around it (and not empty).
const TRIMMED: &str = r"^[^[:space:][:cntrl:]]([^[:cntrl:]]*[^[:space:][:cntrl:]])?$";
/// A single token: no whitespace or control characters at all (images, paths, URLs).
const TOKEN: &str = r"^[^[:space:][:cntrl:]]+$";
/// A key in a Secret's data.
const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";
/// An absolute path without spaces.
const ABS_PATH: &str = r"^/[^[:space:][:cntrl:]]*$";
/// An environment variable name.
const ENV_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// A CPU amount (a subset of Kubernetes quantities: no exponents).
const CPU: &str = r"^([0-9]{1,9}m|[0-9]{1,6}(\.[0-9]{1,3})?)$";
/// A memory amount.
const MEMORY: &str = r"^[0-9]{1,15}(Ki|Mi|Gi|Ti|k|M|G|T)?$";
/// A non-zero Go duration in ms, s or m.
const DURATION: &str = r"^[1-9][0-9]{0,5}(ms|s|m)$";
/// A CloudWatch metric namespace.
const CW_NAMESPACE: &str = r"^[A-Za-z0-9._/#:-]([A-Za-z0-9._/#: -]*[A-Za-z0-9._/#:-])?$";
/// A DNS subdomain (a Secret's name).
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An ECS task-definition family.
const ECS_FAMILY: &str = r"^[A-Za-z0-9_-]{1,255}$";
/// ECS task CPU units.
const ECS_CPU: &str = r"^[1-9][0-9]{0,5}$";
/// ECS task memory, MiB.
const ECS_MEMORY: &str = r"^[1-9][0-9]{0,6}$";

/// What each pattern of the schema means, for error messages ("must be <meaning>").
pub const PATTERN_MEANINGS: &[(&str, &str)] = &[
    (
        NAME_PATTERN,
        "a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
    ),
    (
        ROLE_ARN,
        "an IAM role ARN like arn:aws:iam::123456789012:role/name",
    ),
    (REGION, "an AWS region like us-east-1"),
    (TRIMMED, "text without leading or trailing spaces"),
    (TOKEN, "one word, without spaces or control characters"),
    (HTTP_URL, "an http:// or https:// URL without spaces"),
    (
        LOG_GROUP,
        "a CloudWatch Logs group name (letters, digits and . _ - / #)",
    ),
    (
        HOST_PORT,
        "host:port (OTLP/gRPC, no scheme) with a port from 1 to 65535",
    ),
    (
        SECRET_KEY,
        "a Secret key (letters, digits, '-', '_' and '.')",
    ),
    (
        ABS_PATH,
        "an absolute path (starting with '/') without spaces",
    ),
    (
        ENV_NAME,
        "letters, digits and '_', not starting with a digit",
    ),
    (CPU, "a CPU amount like 250m, 1 or 0.5"),
    (MEMORY, "a memory amount like 256Mi or 1Gi"),
    (DURATION, "a duration above zero like 200ms, 10s or 1m"),
    (
        CW_NAMESPACE,
        "a CloudWatch namespace (letters, digits, spaces and . _ - / # :)",
    ),
    (
        DNS_SUBDOMAIN,
        "a Secret name (lowercase letters, digits, '-' and '.')",
    ),
    (ECS_FAMILY, "1 to 255 letters, digits, '-' or '_'"),
    (ECS_CPU, "CPU units like 256, 512 or 1024"),
    (ECS_MEMORY, "MiB like 512 or 2048"),
];
/// An http(s) URL without whitespace.
const HTTP_URL: &str = r"^https?://[^[:space:][:cntrl:]]+$";
/// A CloudWatch Logs group name.
const LOG_GROUP: &str = r"^[.\-_/#A-Za-z0-9]{1,512}$";
/// `host:port` with a port from 1 to 65535; the host a DNS name, an IPv4 address or a
/// bracketed IPv6 address.
const HOST_PORT: &str = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";

/// The pattern of a TracedApp's name: a DNS label, since it also names the app's Service.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// The longest TracedApp name.
pub const NAME_MAX: u64 = 63;

/// The CustomResourceDefinition: what the derive makes, plus the rule on `metadata.name` (a
/// CRD's schema may constrain the name and nothing else of `metadata`; schema rules, unlike a
/// CEL rule on the whole object, spare status writes to objects an older CRD let in).
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = TracedApp::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("a derived CRD has a schema");
    let name: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps =
        serde_json::from_value(serde_json::json!({
            "type": "string",
            "maxLength": NAME_MAX,
            "pattern": NAME_PATTERN,
        }))
        .expect("a schema");
    let metadata = schema
        .properties
        .get_or_insert_with(Default::default)
        .entry("metadata".to_owned())
        .or_default();
    metadata.type_ = Some("object".to_owned());
    metadata
        .properties
        .get_or_insert_with(Default::default)
        .insert("name".to_owned(), name);
    crd
}

/// The CRD as YAML, exactly as `manifests/crd.yaml` holds it.
pub fn crd_yaml() -> String {
    format!(
        "# Generated by `cargo xtask codegen` from api/src/spec.rs: do not edit.\n{}",
        serde_saphyr::to_string(&crd()).expect("a CRD always serialises")
    )
}

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
    printcolumn = r#"{"name":"Exporters","type":"string","jsonPath":".status.exporters"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = crate::collector::port_rule("app.port"))]
#[x_kube(validation = crate::collector::port_rule("exporters.prometheus.port"))]
#[x_kube(validation = Rule::new("self.exporters.prometheus.port != self.app.port").message("exporters.prometheus.port must differ from app.port: the app and collector share the pod/task network").field_path(".exporters.prometheus.port"))]
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

    /// AWS ECS task-definition settings (used by `tracedapp render ecs` and `tracedapp ecs register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsSpec>,
}

/// The application container.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = resources::cel_rule(resources::APP, false))]
pub struct AppSpec {
    /// Container image of the app, e.g. `ghcr.io/acme/shop:1.4.2`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = TOKEN))]
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

/// A CPU and a memory amount.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct ResourceAmounts {
    /// CPU, e.g. `250m`, `1` or `0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CPU), length(max = 10))]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi` or `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MEMORY), length(max = 17))]
    pub memory: Option<String>,
}

/// Sampling: a parent-based ratio in the app, and optionally probabilistic sampling in the
/// collector as well.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sampling {
    /// Fraction of new traces the app keeps (0 to 1). Traces started upstream keep the
    /// upstream decision (parent-based).
    #[serde(default = "default_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ratio: f64,
    /// If set, the collector also keeps only this percentage (0 to 100) of the traces it receives
    /// (`probabilistic_sampler` processor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub collector_percentage: Option<f64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            ratio: default_ratio(),
            collector_percentage: None,
        }
    }
}

/// Which collector build runs beside the app.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Distribution {
    /// The OpenTelemetry Collector contrib image (`otel/opentelemetry-collector-contrib`).
    #[default]
    #[serde(rename = "contrib")]
    Contrib,
    /// The AWS Distro for OpenTelemetry collector (`public.ecr.aws/aws-observability/aws-otel-collector`).
    #[serde(rename = "adot")]
    Adot,
}

/// The OpenTelemetry Collector that runs beside the app (sidecar / second container).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.spikeLimitMiB < self.memoryLimitMiB").message("spikeLimitMiB must be less than memoryLimitMiB").field_path(".spikeLimitMiB"))]
#[x_kube(validation = resources::cel_rule(resources::COLLECTOR, true))]
pub struct CollectorSpec {
    /// Collector image. Defaults to the pinned image of the chosen distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = TOKEN))]
    pub image: Option<String>,

    /// Collector build: `contrib` (default) or `adot`.
    #[serde(default)]
    pub distribution: Distribution,

    /// `memory_limiter`: the collector refuses data above this much memory (MiB).
    #[serde(default = "default_memory_limit", rename = "memoryLimitMiB")]
    #[schemars(range(min = 32, max = 65536))]
    pub memory_limit_mib: u32,

    /// `memory_limiter`: headroom below the limit where it starts refusing data (MiB).
    #[serde(default = "default_spike_limit", rename = "spikeLimitMiB")]
    #[schemars(range(min = 0, max = 65535))]
    pub spike_limit_mib: u32,

    /// `batch` processor settings.
    #[serde(default)]
    pub batch: Batch,

    /// CPU and memory for the collector container.
    #[serde(default)]
    pub resources: Resources,

    /// Also accept segments from legacy X-Ray SDKs on UDP port 2000 (`awsxray` receiver).
    #[serde(default)]
    pub xray_receiver: bool,
}

impl Default for CollectorSpec {
    fn default() -> Self {
        Self {
            image: None,
            distribution: Distribution::default(),
            memory_limit_mib: default_memory_limit(),
            spike_limit_mib: default_spike_limit(),
            batch: Batch::default(),
            resources: Resources::default(),
            xray_receiver: false,
        }
    }
}

/// `batch` processor settings.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.sendBatchMaxSize == 0 || self.sendBatchMaxSize >= self.sendBatchSize").message("sendBatchMaxSize must be 0 (no limit) or at least sendBatchSize"))]
pub struct Batch {
    /// Send a batch once this many spans/points are waiting.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub send_batch_size: u32,
    /// Send a batch after this long even if it is not full (Go duration: `200ms`, `10s`, `1m`).
    #[serde(default = "default_batch_timeout")]
    #[schemars(regex(pattern = DURATION))]
    pub timeout: String,
    /// Largest batch sent (0: no limit).
    #[serde(default = "default_batch_max")]
    #[schemars(range(min = 0, max = 100000))]
    pub send_batch_max_size: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            send_batch_size: default_batch_size(),
            timeout: default_batch_timeout(),
            send_batch_max_size: default_batch_max(),
        }
    }
}

/// Where the collector sends telemetry. Traces go to Jaeger and/or X-Ray; metrics go to the
/// Prometheus exporter and optionally CloudWatch (EMF). Metrics never go to Jaeger.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.jaeger) || (has(self.xray) && self.xray.enabled)").message("at least one trace exporter is required: set exporters.jaeger or enable exporters.xray"))]
#[x_kube(validation = Rule::new("!has(self.cloudwatchMetrics) || has(self.cloudwatchMetrics.region) || (has(self.xray) && has(self.xray.region))").message("cloudwatchMetrics.region is required when xray.region is not set"))]
pub struct Exporters {
    /// Send traces to Jaeger over OTLP/gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaeger: Option<JaegerExporter>,
    /// Send traces to AWS X-Ray (`awsxray` exporter, no X-Ray daemon needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xray: Option<XrayExporter>,
    /// Expose the app's metrics for Prometheus to scrape (`prometheus` exporter).
    #[serde(default)]
    pub prometheus: PrometheusExporter,
    /// Also send metrics to CloudWatch as embedded metric format logs (`awsemf` exporter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudwatch_metrics: Option<CloudWatchMetrics>,
}

/// Jaeger's OTLP/gRPC endpoint.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct JaegerExporter {
    /// `host:port` of Jaeger's OTLP/gRPC receiver, e.g. `jaeger-collector.observability:4317`.
    #[schemars(regex(pattern = HOST_PORT), length(max = 261))]
    pub endpoint: String,
    /// TLS to Jaeger.
    #[serde(default)]
    pub tls: Tls,
}

/// TLS settings for an exporter.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// Send in plain text (no TLS). Only for in-cluster or local endpoints.
    #[serde(default)]
    pub insecure: bool,
    /// Path of a CA certificate file inside the collector container (mount it yourself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ABS_PATH), length(max = 4096))]
    pub ca_file: Option<String>,
}

/// AWS X-Ray export.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || has(self.region)").message("region is required when X-Ray export is enabled"))]
pub struct XrayExporter {
    /// Turn X-Ray export on or off without deleting its settings.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// AWS region of X-Ray, e.g. `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION))]
    pub region: Option<String>,
    /// IAM role the collector assumes to call X-Ray (in addition to its own identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub role_arn: Option<String>,
    /// Override the X-Ray API endpoint (tests, VPC endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL), length(max = 2048))]
    pub endpoint: Option<String>,
    /// Span attributes to index as X-Ray annotations (searchable with filter expressions); the
    /// others are kept as metadata. X-Ray keeps at most 50 annotations per trace. Keys become
    /// what X-Ray accepts, letters, digits and `_`: `http.route` is annotation `http_route`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 255), regex(pattern = TOKEN)))]
    pub indexed_attributes: Vec<String>,
    /// Index every span attribute, and every resource attribute (as `otel_resource_<key>`),
    /// instead of `indexedAttributes`. X-Ray drops annotations past 50 per trace.
    #[serde(default)]
    pub index_all_attributes: bool,
}

/// The Prometheus exporter in the collector.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct PrometheusExporter {
    /// Port of the collector's `/metrics` endpoint with the app's metrics (8888 is the
    /// collector's own telemetry, so it is not allowed).
    #[serde(default = "default_prometheus_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for PrometheusExporter {
    fn default() -> Self {
        Self {
            port: default_prometheus_port(),
        }
    }
}

/// CloudWatch metrics through embedded metric format logs.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetrics {
    /// CloudWatch metric namespace, e.g. `TracedApp/shop` (not starting with `AWS/`).
    #[schemars(length(min = 1, max = 255), regex(pattern = CW_NAMESPACE))]
    #[x_kube(validation = Rule::new("!self.startsWith('AWS/')").message("the AWS/ namespaces are AWS's own"))]
    pub namespace: String,
    /// Log group that receives the EMF records. Defaults to `/metrics/<namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LOG_GROUP))]
    pub log_group: Option<String>,
    /// AWS region. Defaults to the X-Ray region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION))]
    pub region: Option<String>,
    /// Override the CloudWatch Logs endpoint (tests, VPC endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL), length(max = 2048))]
    pub endpoint: Option<String>,
    /// Which dimension combinations each metric is published under. `NoDimensionRollup`
    /// (default): one, all of the metric's attributes (e.g. `endpoint`) plus `OTelLib` (the
    /// instrumentation scope, which the exporter always adds). The others add the metric with
    /// no dimension and/or with each single dimension, multiplying the metrics CloudWatch
    /// bills for.
    #[serde(default)]
    pub dimension_rollup: DimensionRollup,
}

/// CloudWatch dimension rollup of the `awsemf` exporter.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DimensionRollup {
    /// One dimension set per metric: all of its attributes.
    #[default]
    NoDimensionRollup,
    /// Also each attribute alone.
    SingleDimensionRollupOnly,
    /// Also no dimension at all, and each attribute alone.
    ZeroAndSingleDimensionRollup,
}

/// The AWS identity of the collector. Prefer an IAM role (IRSA on EKS, the task role on ECS);
/// a Secret with access keys is the fallback for clusters outside AWS.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AwsIdentity {
    /// IAM role for the pod's ServiceAccount (IRSA, `eks.amazonaws.com/role-arn`) and the default
    /// ECS task role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub iam_role_arn: Option<String>,
    /// Kubernetes Secret holding access keys, injected into the collector as environment
    /// variables (never copied into a ConfigMap or this spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
}

/// A Secret with AWS access keys, in the TracedApp's namespace.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub secret_access_key_key: String,
}

/// ECS launch type.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LaunchType {
    /// Serverless: task cpu/memory must be a Fargate combination.
    #[default]
    #[serde(rename = "FARGATE")]
    Fargate,
    /// Your own EC2 container instances.
    #[serde(rename = "EC2")]
    Ec2,
}

/// AWS ECS task-definition settings.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = fargate::cel_rule())]
pub struct EcsSpec {
    /// Task-definition family. Defaults to the TracedApp's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ECS_FAMILY))]
    pub family: Option<String>,
    /// `FARGATE` (default) or `EC2`.
    #[serde(default)]
    pub launch_type: LaunchType,
    /// Task CPU units (`256` = 0.25 vCPU).
    #[serde(default = "default_ecs_cpu")]
    #[schemars(regex(pattern = ECS_CPU))]
    pub cpu: String,
    /// Task memory in MiB.
    #[serde(default = "default_ecs_memory")]
    #[schemars(regex(pattern = ECS_MEMORY))]
    pub memory: String,
    /// Role ECS uses to pull images and write logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub execution_role_arn: Option<String>,
    /// Role the containers run as (X-Ray and CloudWatch calls). Defaults to `aws.iamRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub task_role_arn: Option<String>,
    /// CloudWatch Logs group for both containers. Defaults to `/ecs/<family>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LOG_GROUP))]
    pub log_group: Option<String>,
    /// AWS region of the task (and of its logs).
    #[serde(default = "default_region")]
    #[schemars(regex(pattern = REGION))]
    pub region: String,
}

/// Observed state, written by the operator.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TracedAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `ConfigValid`, `Progressing`, `Ready`, `Degraded`.
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
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `ConfigValid`, `Progressing`, `Ready` or `Degraded`.
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
fn default_ratio() -> f64 {
    1.0
}
fn default_memory_limit() -> u32 {
    512
}
fn default_spike_limit() -> u32 {
    128
}
fn default_batch_size() -> u32 {
    256
}
fn default_batch_timeout() -> String {
    "10s".into()
}
fn default_batch_max() -> u32 {
    512
}
fn default_true() -> bool {
    true
}
fn default_prometheus_port() -> i32 {
    8889
}
fn default_access_key_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_ecs_cpu() -> String {
    "256".into()
}
fn default_ecs_memory() -> String {
    "512".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
