//! The OpenTelemetry Collector configuration made from a spec: one renderer for both targets.
//!
//! The app and the collector share a network namespace (a pod, or an `awsvpc` task), so the
//! same YAML serves Kubernetes (mounted from a ConfigMap) and ECS (passed with
//! `--config=env:VAR`). Rules, fixing the mistakes of the seed (the Flask guide this project
//! rebuilds, see the README):
//! - processors: `memory_limiter` first, then (optional) `probabilistic_sampler`, then `batch`;
//! - traces → Jaeger (OTLP/gRPC) and/or X-Ray: by default OTLP/HTTP signed by the `sigv4auth`
//!   extension to X-Ray's OTLP endpoint, or the legacy `awsxray` exporter; metrics →
//!   `prometheus` and optionally `awsemf`; metrics never go to Jaeger, which only takes traces;
//! - OTLP receivers on localhost only; `health_check` (13133) for probes;
//! - only components of the contrib distribution, with their current type names.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::spec::{Distribution, TracedAppSpec, XrayExporter, XrayProtocol};

/// Pinned default contrib image: the release train the tests build and validate against
/// (tools/otelcol-builder.yaml).
pub const CONTRIB_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.161.0";
/// Pinned default ADOT image.
pub const ADOT_IMAGE: &str = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0";

pub use crate::sidecar::{
    COLLECTOR_PORTS, HEALTH_PORT, OTLP_GRPC_PORT, OTLP_HTTP_PORT, SELF_TELEMETRY_PORT,
    TELEMETRY_PORT, XRAY_UDP_PORT,
};

/// Path of the traces endpoint under X-Ray's OTLP host (the `otlphttp` exporter appends it to
/// its `endpoint`).
pub const XRAY_OTLP_PATH: &str = "/v1/traces";

/// SigV4 service name of X-Ray (its OTLP endpoint included).
pub const XRAY_SIGNING_SERVICE: &str = "xray";

/// X-Ray's regional endpoint, e.g. `https://xray.eu-west-1.amazonaws.com`.
pub fn xray_regional_endpoint(region: &str) -> String {
    format!("https://xray.{region}.amazonaws.com")
}

/// A collector configuration: what `--config` reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorConfig {
    pub receivers: BTreeMap<String, Value>,
    pub processors: BTreeMap<String, Value>,
    pub exporters: BTreeMap<String, Value>,
    pub extensions: BTreeMap<String, Value>,
    pub service: Service,
}

/// The `service` section: enabled extensions, the pipelines, and the collector's own telemetry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub extensions: Vec<String>,
    pub pipelines: BTreeMap<String, Pipeline>,
    pub telemetry: Telemetry,
}

/// The collector's own metrics (`otelcol_exporter_sent_spans`, `..._send_failed_spans`, ...),
/// served in Prometheus text on [`TELEMETRY_PORT`] at `host`. Rendered on loopback, so that
/// nothing outside the pod or task can read them; the Kubernetes target binds the pod's IP
/// instead ([`CollectorConfig::telemetry_on`]) for the operator's export-health sampling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    pub metrics: TelemetryMetrics,
}

/// See [`Telemetry`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryMetrics {
    /// `normal`: per-exporter counters and queue sizes, without per-request detail.
    pub level: String,
    pub readers: Vec<Value>,
}

impl Telemetry {
    fn served_on(host: &str) -> Self {
        Self {
            metrics: TelemetryMetrics {
                level: "normal".to_owned(),
                readers: vec![json!({"pull": {"exporter": {"prometheus": {
                    "host": host,
                    "port": TELEMETRY_PORT,
                }}}})],
            },
        }
    }
}

/// Where the collector serves its own metrics unless told otherwise.
pub const TELEMETRY_HOST: &str = "127.0.0.1";

/// One pipeline's components, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

/// The image the collector container runs.
pub fn image(spec: &TracedAppSpec) -> String {
    spec.collector.image.clone().unwrap_or_else(|| {
        match spec.collector.distribution {
            Distribution::Contrib => CONTRIB_IMAGE,
            Distribution::Adot => ADOT_IMAGE,
        }
        .to_owned()
    })
}

/// Region for AWS components, the one resolution for a render: an exporter's own region
/// (X-Ray's, else CloudWatch's), else the region the task runs in (`task_region`: the ECS
/// render's, which honours `--region`), else `spec.ecs.region`, else `us-east-1`.
fn aws_region(spec: &TracedAppSpec, task_region: Option<&str>) -> String {
    let ex = &spec.exporters;
    ex.xray
        .as_ref()
        .and_then(|x| x.region.clone())
        .or_else(|| {
            ex.cloudwatch_metrics
                .as_ref()
                .and_then(|c| c.region.clone())
        })
        .or_else(|| task_region.map(str::to_owned))
        .or_else(|| spec.ecs.as_ref().map(|e| e.region.clone()))
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// Builds the collector configuration for a (validated) spec.
pub fn render(spec: &TracedAppSpec) -> CollectorConfig {
    render_in(spec, None)
}

/// [`render`] for a collector running in `task_region` (see [`aws_region`]).
fn render_in(spec: &TracedAppSpec, task_region: Option<&str>) -> CollectorConfig {
    let mut receivers = BTreeMap::new();
    let mut processors = BTreeMap::new();
    let mut exporters = BTreeMap::new();
    let mut extensions = BTreeMap::new();

    receivers.insert(
        "otlp".to_owned(),
        json!({"protocols": {
            "grpc": {"endpoint": format!("localhost:{OTLP_GRPC_PORT}")},
            "http": {"endpoint": format!("localhost:{OTLP_HTTP_PORT}")},
        }}),
    );
    let mut trace_receivers = vec!["otlp".to_owned()];
    if spec.collector.xray_receiver {
        // Legacy X-Ray SDKs send segments over UDP, and ask the proxy (TCP, same port) for
        // sampling rules: the proxy calls X-Ray with the exporter's endpoint and role, so that
        // those calls also go through a VPC endpoint and an assumed role.
        let xray = spec.exporters.xray.as_ref();
        let mut proxy = serde_json::Map::new();
        proxy.insert(
            "endpoint".into(),
            format!("localhost:{XRAY_UDP_PORT}").into(),
        );
        proxy.insert("region".into(), aws_region(spec, task_region).into());
        if let Some(endpoint) = xray.and_then(|x| x.endpoint.clone()) {
            proxy.insert("aws_endpoint".into(), endpoint.into());
        }
        if let Some(role) = xray.and_then(|x| x.role_arn.clone()) {
            proxy.insert("role_arn".into(), role.into());
        }
        receivers.insert(
            "awsxray".to_owned(),
            json!({
                "endpoint": format!("localhost:{XRAY_UDP_PORT}"),
                "transport": "udp",
                "proxy_server": proxy,
            }),
        );
        trace_receivers.push("awsxray".to_owned());
    }

    let col = &spec.collector;
    processors.insert(
        "memory_limiter".to_owned(),
        json!({"check_interval": "1s", "limit_mib": col.memory_limit_mib, "spike_limit_mib": col.spike_limit_mib}),
    );
    processors.insert(
        "batch".to_owned(),
        json!({
            "send_batch_size": col.batch.send_batch_size,
            "timeout": col.batch.timeout,
            "send_batch_max_size": col.batch.send_batch_max_size,
        }),
    );
    let mut trace_processors = vec!["memory_limiter".to_owned()];
    if let Some(pct) = spec.sampling.collector_percentage {
        processors.insert(
            "probabilistic_sampler".to_owned(),
            json!({"sampling_percentage": pct}),
        );
        trace_processors.push("probabilistic_sampler".to_owned());
    }
    trace_processors.push("batch".to_owned());

    let mut trace_exporters = Vec::new();
    if let Some(j) = &spec.exporters.jaeger {
        // Since collector v0.144 the OTLP/gRPC exporter is `otlp_grpc`; ADOT releases still use
        // the older `otlp` name, which contrib keeps as a deprecated alias.
        let kind = match col.distribution {
            Distribution::Contrib => "otlp_grpc",
            Distribution::Adot => "otlp",
        };
        let mut tls = serde_json::Map::new();
        tls.insert("insecure".into(), j.tls.insecure.into());
        if let Some(ca) = &j.tls.ca_file {
            tls.insert("ca_file".into(), ca.clone().into());
        }
        let name = format!("{kind}/jaeger");
        let queue_size =
            crate::resources::exporter_queue_batches(col.memory_limit_mib, batch_spans(spec));
        exporters.insert(
            name.clone(),
            json!({
                "endpoint": j.endpoint,
                "tls": tls,
                "compression": j.compression.as_str(),
                "sending_queue": {"queue_size": queue_size},
            }),
        );
        trace_exporters.push(name);
    }
    let mut service_extensions = vec!["health_check".to_owned()];
    if let Some(x) = spec.exporters.xray.as_ref().filter(|x| x.enabled) {
        let region = aws_region(spec, task_region);
        let name = match x.protocol {
            XrayProtocol::Otlp => {
                let (auth, exporter) = xray_otlp(spec, x, &region);
                extensions.insert(XRAY_SIGV4_EXTENSION.to_owned(), auth);
                service_extensions.push(XRAY_SIGV4_EXTENSION.to_owned());
                let name = format!("{}/xray", otlp_http_type(col.distribution));
                exporters.insert(name.clone(), exporter);
                name
            }
            XrayProtocol::Xray => {
                exporters.insert("awsxray".to_owned(), awsxray(x, &region));
                "awsxray".to_owned()
            }
        };
        trace_exporters.push(name);
    }

    exporters.insert(
        "prometheus".to_owned(),
        json!({"endpoint": format!("0.0.0.0:{}", spec.exporters.prometheus.port)}),
    );
    let mut metric_exporters = vec!["prometheus".to_owned()];
    if let Some(cw) = &spec.exporters.cloudwatch_metrics {
        let log_group = cw
            .log_group
            .clone()
            .unwrap_or_else(|| format!("/metrics/{}", cw.namespace));
        let mut cfg = serde_json::Map::new();
        cfg.insert(
            "region".into(),
            cw.region
                .clone()
                .unwrap_or_else(|| aws_region(spec, task_region))
                .into(),
        );
        cfg.insert("namespace".into(), cw.namespace.clone().into());
        cfg.insert("log_group_name".into(), log_group.into());
        // Explicit: the exporter's default multiplies the metrics (and warns it will change).
        cfg.insert(
            "dimension_rollup_option".into(),
            serde_json::to_value(cw.dimension_rollup).expect("an enum of names"),
        );
        if let Some(endpoint) = &cw.endpoint {
            cfg.insert("endpoint".into(), endpoint.clone().into());
        }
        if let Some(role) = spec
            .exporters
            .xray
            .as_ref()
            .and_then(|x| x.role_arn.clone())
        {
            cfg.insert("role_arn".into(), role.into());
        }
        exporters.insert("awsemf".to_owned(), Value::Object(cfg));
        metric_exporters.push("awsemf".to_owned());
    }

    extensions.insert(
        "health_check".to_owned(),
        json!({"endpoint": format!("0.0.0.0:{HEALTH_PORT}")}),
    );

    let mut pipelines = BTreeMap::new();
    // Segments from the awsxray receiver carry `aws.xray.inprogress`, which the awsxray
    // exporter removes from the span although it declares that it does not change data. In a
    // pipeline that also exports elsewhere, the collector hands both exporters the same
    // read-only data, and that removal panics the collector ("invalid access to shared data";
    // contrib issue 46889, still so in v0.161.0; seen in our end-to-end test). In a pipeline
    // of its own, after `batch`, the exporter gets its own copy.
    if spec.collector.xray_receiver
        && trace_exporters.len() > 1
        && trace_exporters.iter().any(|e| e == "awsxray")
    {
        trace_exporters.retain(|e| e != "awsxray");
        pipelines.insert(
            "traces/xray".to_owned(),
            Pipeline {
                receivers: trace_receivers.clone(),
                processors: trace_processors.clone(),
                exporters: vec!["awsxray".to_owned()],
            },
        );
    }
    pipelines.insert(
        "traces".to_owned(),
        Pipeline {
            receivers: trace_receivers,
            processors: trace_processors,
            exporters: trace_exporters,
        },
    );
    pipelines.insert(
        "metrics".to_owned(),
        Pipeline {
            receivers: vec!["otlp".to_owned()],
            processors: vec!["memory_limiter".to_owned(), "batch".to_owned()],
            exporters: metric_exporters,
        },
    );

    CollectorConfig {
        receivers,
        processors,
        exporters,
        extensions,
        service: Service {
            extensions: service_extensions,
            pipelines,
            telemetry: Telemetry::served_on(TELEMETRY_HOST),
        },
    }
}

/// Name of the `sigv4auth` extension instance that signs the requests to X-Ray.
pub const XRAY_SIGV4_EXTENSION: &str = "sigv4auth/xray";

/// The OTLP/HTTP exporter's type name: `otlp_http` since collector v0.144; ADOT releases still
/// use `otlphttp`, which contrib keeps as a deprecated alias.
fn otlp_http_type(distribution: Distribution) -> &'static str {
    match distribution {
        Distribution::Contrib => "otlp_http",
        Distribution::Adot => "otlphttp",
    }
}

/// Spans a batch holds at most as it reaches an exporter: `send_batch_max_size`, or about
/// `send_batch_size` when that is 0 (no limit).
fn batch_spans(spec: &TracedAppSpec) -> u32 {
    let batch = &spec.collector.batch;
    match batch.send_batch_max_size {
        0 => batch.send_batch_size,
        max => max,
    }
}

/// X-Ray over OTLP: the `sigv4auth` extension (service `xray`, the region, and the role to
/// assume if any) and the OTLP/HTTP exporter it signs for. Credentials come from the AWS SDK's
/// default chain in the collector's environment (IRSA or EKS Pod Identity, the ECS task role,
/// or keys from a Secret), never from this configuration.
fn xray_otlp(spec: &TracedAppSpec, x: &XrayExporter, region: &str) -> (Value, Value) {
    let mut auth = serde_json::Map::new();
    auth.insert("region".into(), region.into());
    auth.insert("service".into(), XRAY_SIGNING_SERVICE.into());
    if let Some(role) = &x.role_arn {
        auth.insert(
            "assume_role".into(),
            json!({"arn": role, "sts_region": region, "session_name": "tracedapp-collector"}),
        );
    }
    let endpoint = x
        .endpoint
        .clone()
        .unwrap_or_else(|| xray_regional_endpoint(region));
    let queue_size = crate::resources::exporter_queue_batches(
        spec.collector.memory_limit_mib,
        batch_spans(spec),
    );
    let mut exporter = json!({
        "traces_endpoint": format!("{}{XRAY_OTLP_PATH}", endpoint.trim_end_matches('/')),
        "auth": {"authenticator": XRAY_SIGV4_EXTENSION},
        "compression": "gzip",
        "encoding": "proto",
        "retry_on_failure": {"enabled": true},
        "sending_queue": {"queue_size": queue_size},
    });
    if spec.collector.distribution == Distribution::Contrib {
        exporter["compression_params"] = json!({"level": XRAY_GZIP_LEVEL});
    }
    (Value::Object(auth), exporter)
}

/// gzip's level on the X-Ray hop (X-Ray takes gzip or nothing): its fastest. At the default
/// level gzip was a fifth of the collector's CPU; this one sent 6 % more bytes for 6 % less
/// CPU per span (BENCHMARKS.md). Set for contrib, whose version is pinned and tested here;
/// ADOT's image keeps its default.
const XRAY_GZIP_LEVEL: u8 = 1;

/// The legacy `awsxray` exporter (segments through `PutTraceSegments`).
fn awsxray(x: &XrayExporter, region: &str) -> Value {
    let mut cfg = serde_json::Map::new();
    cfg.insert("region".into(), region.into());
    if let Some(role) = &x.role_arn {
        cfg.insert("role_arn".into(), role.clone().into());
    }
    if let Some(endpoint) = &x.endpoint {
        cfg.insert("endpoint".into(), endpoint.clone().into());
    }
    cfg.insert("index_all_attributes".into(), x.index_all_attributes.into());
    if !x.indexed_attributes.is_empty() {
        cfg.insert("indexed_attributes".into(), json!(x.indexed_attributes));
    }
    Value::Object(cfg)
}

/// The CloudWatch metric namespace of the collectors' own counters on ECS.
pub const SELF_TELEMETRY_NAMESPACE: &str = "TracedApp/Collector";

/// The log group that holds the collectors' own counters of an ECS task family (EMF records:
/// `otelcol_exporter_sent_spans` and friends, by `exporter` and `service.instance.id`, one
/// collector each). `tracedapp ecs status` reads it back.
pub fn self_telemetry_log_group(family: &str) -> String {
    format!("/tracedapp/collector/{family}")
}

/// Name of the pipeline that carries the collector's own counters on ECS.
pub const SELF_TELEMETRY_PIPELINE: &str = "metrics/collector";

/// The configuration an ECS task's collector runs: [`render`]'s, plus its own export counters
/// sent to CloudWatch — the collector pushes them to itself every 10 s (an OTLP reader of its
/// telemetry, to a receiver on loopback), and a pipeline of their own takes them to CloudWatch
/// Logs as EMF in [`self_telemetry_log_group`], with the collector's instance id. On
/// Kubernetes the operator reads port 8888 instead; on ECS nothing could.
pub fn ecs_config(spec: &TracedAppSpec, family: &str, region: &str) -> CollectorConfig {
    let mut c = render_in(spec, Some(region));
    c.receivers.insert(
        "otlp/collector".to_owned(),
        json!({"protocols": {"http": {"endpoint": format!("127.0.0.1:{SELF_TELEMETRY_PORT}")}}}),
    );
    let mut emf = serde_json::Map::new();
    emf.insert("region".into(), region.into());
    emf.insert("namespace".into(), SELF_TELEMETRY_NAMESPACE.into());
    emf.insert(
        "log_group_name".into(),
        self_telemetry_log_group(family).into(),
    );
    emf.insert("dimension_rollup_option".into(), "NoDimensionRollup".into());
    emf.insert(
        "resource_to_telemetry_conversion".into(),
        json!({"enabled": true}),
    );
    if let Some(endpoint) = spec
        .exporters
        .cloudwatch_metrics
        .as_ref()
        .and_then(|c| c.endpoint.clone())
    {
        emf.insert("endpoint".into(), endpoint.into());
    }
    c.exporters
        .insert("awsemf/collector".to_owned(), Value::Object(emf));
    c.service.pipelines.insert(
        SELF_TELEMETRY_PIPELINE.to_owned(),
        Pipeline {
            receivers: vec!["otlp/collector".to_owned()],
            processors: vec!["memory_limiter".to_owned(), "batch".to_owned()],
            exporters: vec!["awsemf/collector".to_owned()],
        },
    );
    c.service
        .telemetry
        .metrics
        .readers
        .push(json!({"periodic": {
            "interval": 10000,
            "exporter": {"otlp": {
                "protocol": "http/protobuf",
                "endpoint": format!("http://127.0.0.1:{SELF_TELEMETRY_PORT}"),
            }},
        }}));
    c
}

impl CollectorConfig {
    /// The same configuration with the collector's own metrics served at `host` (an address,
    /// or a `${env:VAR}` the collector expands; ours, never a user's text).
    pub fn telemetry_on(mut self, host: &str) -> Self {
        self.service.telemetry = Telemetry::served_on(host);
        self
    }

    /// The configuration as YAML, stable for the same spec.
    ///
    /// Guarantees: what a user wrote is data, never a directive. The collector expands
    /// `${env:…}`, `${file:…}` and friends in every string of its configuration, so a spec
    /// holding `${env:AWS_SECRET_ACCESS_KEY}` in an endpoint or a path would read the
    /// collector's environment or files; every `$` is written as `$$`, which the collector
    /// reads back as one literal `$`. (Quoting by the YAML writer keeps newlines from
    /// starting new keys.)
    pub fn to_yaml(&self) -> String {
        let mut escaped = self.clone();
        for section in [
            &mut escaped.receivers,
            &mut escaped.processors,
            &mut escaped.exporters,
            &mut escaped.extensions,
        ] {
            section.values_mut().for_each(escape_dollars);
        }
        serde_saphyr::to_string(&escaped)
            .expect("a tree of maps, lists and scalars always serialises")
    }
}

/// `$` → `$$` in every string of `value`.
fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Command-line flags the collector needs besides `--config`, the same on both targets.
///
/// With the legacy `awsxray` exporter: the `exporter.xray.allowDot` feature gate (beta, so on by
/// default since v0.97) keeps dots in annotation keys, which X-Ray documents as letters,
/// digits and `_` only and will not filter on; turning it off makes `http.route` the
/// annotation `http_route`.
pub fn command_flags(spec: &TracedAppSpec) -> Vec<String> {
    let xray = spec
        .exporters
        .xray
        .as_ref()
        .is_some_and(|x| x.enabled && x.protocol == XrayProtocol::Xray);
    if xray {
        vec!["--feature-gates=-exporter.xray.allowDot".to_owned()]
    } else {
        Vec::new()
    }
}

/// Exporters in use, for status and `kubectl get`: e.g. `jaeger,xray,prometheus`.
pub fn exporters_summary(spec: &TracedAppSpec) -> String {
    let ex = &spec.exporters;
    let mut names = Vec::new();
    if ex.jaeger.is_some() {
        names.push("jaeger");
    }
    if ex.xray.as_ref().is_some_and(|x| x.enabled) {
        names.push("xray");
    }
    names.push("prometheus");
    if ex.cloudwatch_metrics.is_some() {
        names.push("cloudwatch");
    }
    names.join(",")
}

#[cfg(test)]
mod tests;
