//! Telemetry settings read from the standard `OTEL_*` environment variables.
//!
//! Everything is parsed and checked up front, from a plain map of variables, so a bad value stops
//! the process at start-up with one line that names the variable and what it accepts, and so the
//! parsing can be tested without touching the process environment.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

mod parse;
mod signal;

use parse::*;
use signal::{METRICS, TRACES, signal_export};

/// A variable that is set to something we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}={value:?}: {expected}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub var: &'static str,
    /// The value it had.
    pub value: String,
    /// What the variable accepts.
    pub expected: String,
}

impl ConfigError {
    fn new(var: &'static str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            var,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

/// OTLP transport, from `OTEL_EXPORTER_OTLP_PROTOCOL` (or a signal-specific variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (default, port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

/// Which span to keep, from `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// A propagator named in `OTEL_PROPAGATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorChoice {
    /// W3C `traceparent`/`tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// AWS `X-Amzn-Trace-Id` (what an AWS load balancer adds).
    Xray,
}

/// Where and how one signal (traces or metrics) is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalExport {
    pub protocol: Protocol,
    /// Full URL: for gRPC the collector's address, for HTTP the signal path (`/v1/traces`).
    pub endpoint: String,
    /// Sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`, or the signal's own variable).
    pub headers: Headers,
    /// How long one export may take, retries included (`OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
    pub timeout: Duration,
    /// Compress each export with gzip (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
    pub gzip: bool,
}

/// Export headers, checked as HTTP header names and values. They often carry credentials, so
/// their values never appear in a log line, an error, or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(http::HeaderName, http::HeaderValue)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k.as_str(), "<redacted>")))
            .finish()
    }
}

impl Headers {
    pub fn to_header_map(&self) -> http::HeaderMap {
        self.0.iter().cloned().collect()
    }
}

/// The OTLP exporter's own default timeout.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the telemetry set-up needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `OTEL_SDK_DISABLED=true`: no spans, no metrics exported (instruments are no-ops).
    pub disabled: bool,
    pub service_name: String,
    /// From `OTEL_RESOURCE_ATTRIBUTES`, without `service.name` (kept in `service_name`).
    pub resource_attributes: BTreeMap<String, String>,
    pub traces: SignalExport,
    pub metrics: SignalExport,
    pub sampler: SamplerChoice,
    pub propagators: Vec<PropagatorChoice>,
    pub metric_export_interval: Duration,
    /// Spans held for export at most; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub span_queue_size: usize,
    /// Bytes (estimated, as encoded) the spans held for export may weigh at most; more are
    /// dropped and counted (`SPAN_QUEUE_MAX_BYTES`, ours: the SDK bounds only the count).
    pub span_queue_bytes: usize,
    /// Longest attribute value a span keeps, in bytes; longer string values are cut
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`).
    pub attribute_value_limit: usize,
}

/// The service name used when neither `OTEL_SERVICE_NAME` nor `service.name` is given.
pub const DEFAULT_SERVICE_NAME: &str = "traced-service";
/// Our default export queue: bigger than the SDK's 2,048 so a burst does not drop spans.
pub const DEFAULT_SPAN_QUEUE_SIZE: usize = 8192;
/// Our default byte bound on that queue: 8,192 ordinary spans (about 1 KiB each) fit many
/// times over; 8,192 spans carrying request heads of hundreds of KiB do not, and are dropped
/// and counted instead of growing the process into GiB while the collector is away.
pub const DEFAULT_SPAN_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Our default attribute value limit (the OpenTelemetry spec sets none): a URL path or a
/// user agent of hundreds of KiB is cut to this many bytes.
pub const DEFAULT_ATTRIBUTE_VALUE_LIMIT: usize = 4096;

const SAMPLERS: &str = "always_on, always_off, traceidratio, parentbased_always_on, \
                        parentbased_always_off, parentbased_traceidratio";
const PROTOCOLS: &str = "grpc, http/protobuf";

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables (empty values count as unset, as the OpenTelemetry spec says).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let disabled = match get("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) => parse_bool("OTEL_SDK_DISABLED", v)?,
        };

        let mut resource_attributes = match get("OTEL_RESOURCE_ATTRIBUTES") {
            None => BTreeMap::new(),
            Some(v) => parse_resource_attributes(v)?,
        };
        let from_attributes = resource_attributes.remove("service.name");
        let service_name = get("OTEL_SERVICE_NAME")
            .map(str::to_owned)
            .or(from_attributes)
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

        let traces = signal_export(&get, &TRACES)?;
        let metrics = signal_export(&get, &METRICS)?;

        let sampler = parse_sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;

        let propagators = match get("OTEL_PROPAGATORS") {
            None => vec![
                PropagatorChoice::TraceContext,
                PropagatorChoice::Baggage,
                PropagatorChoice::Xray,
            ],
            Some(v) => parse_propagators(v)?,
        };

        let metric_export_interval = match get("OTEL_METRIC_EXPORT_INTERVAL") {
            None => Duration::from_secs(60),
            Some(v) => Duration::from_millis(parse_positive("OTEL_METRIC_EXPORT_INTERVAL", v)?),
        };
        let span_queue_size = match get("OTEL_BSP_MAX_QUEUE_SIZE") {
            None => DEFAULT_SPAN_QUEUE_SIZE,
            Some(v) => parse_positive("OTEL_BSP_MAX_QUEUE_SIZE", v)? as usize,
        };
        let span_queue_bytes = match get("SPAN_QUEUE_MAX_BYTES") {
            None => DEFAULT_SPAN_QUEUE_BYTES,
            Some(v) => parse_positive("SPAN_QUEUE_MAX_BYTES", v)? as usize,
        };
        let attribute_value_limit = match (
            get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
            get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
        ) {
            (Some(v), _) => parse_positive("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", v)? as usize,
            (None, Some(v)) => parse_positive("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", v)? as usize,
            (None, None) => DEFAULT_ATTRIBUTE_VALUE_LIMIT,
        };

        Ok(Self {
            disabled,
            service_name,
            resource_attributes,
            traces,
            metrics,
            sampler,
            propagators,
            metric_export_interval,
            span_queue_size,
            span_queue_bytes,
            attribute_value_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_vars(&vars)
    }

    #[test]
    fn defaults_follow_the_spec_and_continue_aws_traces() {
        let c = parse(&[]).unwrap();
        assert!(!c.disabled);
        assert_eq!(c.service_name, DEFAULT_SERVICE_NAME);
        assert_eq!(c.traces.protocol, Protocol::Grpc);
        assert_eq!(c.traces.endpoint, "http://localhost:4317");
        assert_eq!(c.sampler, SamplerChoice::ParentBasedAlwaysOn);
        assert_eq!(
            c.propagators,
            [
                PropagatorChoice::TraceContext,
                PropagatorChoice::Baggage,
                PropagatorChoice::Xray
            ]
        );
        assert_eq!(c.metric_export_interval, Duration::from_secs(60));
    }

    #[test]
    fn http_endpoints_get_the_signal_path_only_from_the_generic_variable() {
        let c = parse(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://metrics:9000/custom",
            ),
        ])
        .unwrap();
        assert_eq!(c.traces.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.metrics.endpoint, "http://metrics:9000/custom");
        assert_eq!(c.metrics.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn signal_protocol_overrides_the_generic_one() {
        let c = parse(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(c.traces.protocol, Protocol::Grpc);
        assert_eq!(c.traces.endpoint, "http://localhost:4317");
        assert_eq!(c.metrics.endpoint, "http://localhost:4318/v1/metrics");
    }

    #[test]
    fn service_name_variable_wins_over_resource_attribute() {
        let c = parse(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,deployment.environment.name=dev%20one",
        )])
        .unwrap();
        assert_eq!(c.service_name, "from-attrs");
        assert_eq!(
            c.resource_attributes["deployment.environment.name"],
            "dev one"
        );
        assert!(!c.resource_attributes.contains_key("service.name"));
        let c = parse(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "shop"),
        ])
        .unwrap();
        assert_eq!(c.service_name, "shop");
    }

    #[test]
    fn sampler_ratio_is_read_and_bounded() {
        let c = parse(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(c.sampler, SamplerChoice::ParentBasedTraceIdRatio(0.25));
        let e = parse(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid OTEL_TRACES_SAMPLER_ARG=\"1.5\": expected a sampling ratio between 0 and 1, e.g. 0.25"
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_accepts() {
        let cases: &[(&str, &str, &str)] = &[
            ("OTEL_SDK_DISABLED", "yes", "expected true or false"),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "udp",
                "expected one of grpc, http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "localhost:4317",
                "expected an http:// or https:// URL",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://",
                "expected an http:// or https:// URL",
            ),
            (
                "OTEL_TRACES_SAMPLER",
                "sometimes",
                "expected one of always_on",
            ),
            (
                "OTEL_PROPAGATORS",
                "tracecontext,b3",
                "unknown propagator \"b3\"",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0", "greater than 0"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5s", "whole number"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team", "key=value"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "whole number"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "whole number"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "greater than 0"),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "zstd",
                "expected gzip or none",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "token", "key=value"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Content-Type=text/plain",
                "set by the exporter itself",
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "grpc-timeout=1S",
                "set by the exporter itself",
            ),
        ];
        for (var, value, expected) in cases {
            let e = parse(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, *var);
            let line = e.to_string();
            assert!(line.starts_with(&format!("invalid {var}=")), "{line}");
            assert!(line.contains(expected), "{var}={value}: {line}");
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn export_headers_timeout_and_compression_follow_the_spec() {
        let c = parse(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Basic%20dXNlcg%3D%3D , x-scope=shop,,",
            ),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-scope=metrics"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ])
        .unwrap();
        let headers: Vec<_> = c
            .traces
            .headers
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [("authorization", "Basic dXNlcg=="), ("x-scope", "shop")]
        );
        assert_eq!(
            c.metrics.headers.0.len(),
            1,
            "the signal's own variable wins"
        );
        assert_eq!(c.traces.timeout, Duration::from_millis(2500));
        assert_eq!(c.metrics.timeout, Duration::from_millis(2500));
        assert!(c.traces.gzip);
        assert!(!c.metrics.gzip);
        let d = parse(&[]).unwrap();
        assert_eq!(d.traces.timeout, DEFAULT_EXPORT_TIMEOUT);
        assert!(d.traces.headers.0.is_empty() && !d.traces.gzip);
    }

    #[test]
    fn credentials_in_an_endpoint_url_are_refused_without_being_repeated() {
        for (var, url) in [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:s3cret@collector:4317",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://s3cret@collector/v1/traces",
            ),
        ] {
            let e = parse(&[(var, url)]).unwrap_err();
            assert_eq!(e.var, var);
            let line = e.to_string();
            assert!(line.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{line}");
            assert!(!line.contains("s3cret"), "{line}");
        }
    }

    #[test]
    fn header_values_never_appear_in_errors_or_debug_output() {
        for bad in [
            "api key=s3cret",
            "x-key=s3cret%zz",
            "x-key=s3cret%0A",
            "=s3cret",
            "x-key",
        ] {
            let e = parse(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", bad)]).unwrap_err();
            assert_eq!(e.var, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
            assert!(!e.to_string().contains("s3cret"), "{bad}: {e}");
        }
        let c = parse(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-key=s3cret")]).unwrap();
        let debug = format!("{c:?}");
        assert!(
            debug.contains("x-key") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn propagators_can_be_turned_off() {
        assert!(
            parse(&[("OTEL_PROPAGATORS", "none")])
                .unwrap()
                .propagators
                .is_empty()
        );
    }
}
