//! The telemetry pipeline: sampling, the collector beside the app, and the exporters.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns::*;
use super::{Resources, is_default};
use crate::resources;

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
#[x_kube(validation = resources::collector_rules()[0].clone())]
#[x_kube(validation = resources::collector_rules()[1].clone())]
pub struct CollectorSpec {
    /// Collector image. Defaults to the pinned image of the chosen distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = IMAGE))]
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
    /// Send traces to AWS X-Ray, over OTLP signed with SigV4 (`protocol: otlp`, the default)
    /// or with the legacy `awsxray` exporter (`protocol: xray`). No X-Ray daemon either way.
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
    /// Compression of the spans sent to Jaeger: `gzip` (the default: every OTLP receiver
    /// takes it), `zstd` or `snappy` (less of the collector's CPU, fewer bytes saved; taken by
    /// receivers built on the OpenTelemetry Collector, Jaeger v2 among them), or `none`. gzip
    /// is about a fifth of the sidecar's CPU; `snappy` cut the collector's CPU per span by
    /// about a third (BENCHMARKS.md).
    #[serde(default, skip_serializing_if = "is_default")]
    pub compression: Compression,
}

/// Compression of an OTLP/gRPC hop.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    Snappy,
    None,
}

impl Compression {
    /// The name the collector's configuration gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Snappy => "snappy",
            Self::None => "none",
        }
    }
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
#[x_kube(validation = Rule::new("self.protocol == 'xray' || ((!has(self.indexedAttributes) || size(self.indexedAttributes) == 0) && !self.indexAllAttributes)").message("indexedAttributes and indexAllAttributes choose X-Ray annotations, which only the legacy awsxray exporter makes: set protocol: xray to keep them, or remove them (over OTLP X-Ray keeps every span attribute, and Transaction Search searches them all)"))]
pub struct XrayExporter {
    /// Turn X-Ray export on or off without deleting its settings.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How spans reach X-Ray. `otlp` (default): OTLP/HTTP to X-Ray's OTLP endpoint
    /// (`https://xray.<region>.amazonaws.com/v1/traces`), signed with SigV4; the account needs
    /// CloudWatch Transaction Search turned on (`tracedapp aws check` says whether it is).
    /// `xray`: the legacy `awsxray` exporter (segments through `PutTraceSegments`), for
    /// accounts without Transaction Search.
    #[serde(default)]
    pub protocol: XrayProtocol,
    /// AWS region of X-Ray, e.g. `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION))]
    pub region: Option<String>,
    /// IAM role the collector assumes (through STS) to call X-Ray, on top of its own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub role_arn: Option<String>,
    /// Override X-Ray's endpoint, `scheme://host[:port]` (tests, VPC endpoints). Under `otlp`
    /// spans go to `<endpoint>/v1/traces`; under `xray` the X-Ray API is called there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL), length(max = 2048))]
    pub endpoint: Option<String>,
    /// `protocol: xray` only. Span attributes to index as X-Ray annotations (searchable with
    /// filter expressions); the others are kept as metadata. X-Ray keeps at most 50
    /// annotations per trace. Keys become what X-Ray accepts, letters, digits and `_`:
    /// `http.route` is annotation `http_route`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 255), regex(pattern = TOKEN)))]
    pub indexed_attributes: Vec<String>,
    /// `protocol: xray` only. Index every span attribute, and every resource attribute (as
    /// `otel_resource_<key>`), instead of `indexedAttributes`. X-Ray drops annotations past 50
    /// per trace.
    #[serde(default)]
    pub index_all_attributes: bool,
}

/// How the collector sends spans to X-Ray.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum XrayProtocol {
    /// OTLP/HTTP with SigV4 to X-Ray's OTLP endpoint (needs Transaction Search).
    #[default]
    Otlp,
    /// The legacy `awsxray` exporter (`PutTraceSegments`).
    Xray,
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

fn default_ratio() -> f64 {
    1.0
}

/// Measured (BENCHMARKS.md, "The collector sidecar"): 53 MiB resident at 20k spans/s, and a
/// burst with the exporter's destination down peaked at 278 MiB with this limit, under the
/// container's 320 MiB. 512 (the contrib examples' figure) left ten times the steady need.
fn default_memory_limit() -> u32 {
    256
}

/// A quarter of the limit, as the `memory_limiter` documentation advises (20 % or more).
fn default_spike_limit() -> u32 {
    64
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

/// X-Ray's OTLP endpoint takes at most this many spans in one request (and 5 MB uncompressed,
/// 200 KB per span: AWS's "OTLP endpoint" limits).
pub const XRAY_OTLP_MAX_SPANS: u32 = 10_000;

/// The CRD rule that batches fit one request to X-Ray's OTLP endpoint.
pub fn xray_otlp_batch_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "!(has(self.exporters.xray) && self.exporters.xray.enabled && \
         self.exporters.xray.protocol == 'otlp') || \
         (self.collector.batch.sendBatchMaxSize >= 1 && \
         self.collector.batch.sendBatchMaxSize <= {XRAY_OTLP_MAX_SPANS})"
    ))
    .message(kube::core::Message::Message(format!(
        "collector.batch.sendBatchMaxSize must be 1 to {XRAY_OTLP_MAX_SPANS} when exporting to \
         X-Ray over OTLP: its endpoint refuses requests of more spans"
    )))
    .field_path(".collector.batch.sendBatchMaxSize")
}
