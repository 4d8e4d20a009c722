//! Telemetry settings read from the standard `OTEL_*` environment variables.
//!
//! Everything is parsed and checked up front, from a plain map of variables, so a bad value stops
//! the process at start-up with one line that names the variable and what it accepts, and so the
//! parsing can be tested without touching the process environment.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

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

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(var, value, "expected true or false")),
    }
}

fn parse_positive(var: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::new(
            var,
            value,
            "expected a whole number greater than 0",
        )),
    }
}

/// `key1=value1,key2=value2`, values percent-encoded (W3C baggage octets).
fn parse_resource_attributes(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
    let mut out = BTreeMap::new();
    for entry in entries(value) {
        let (key, raw) = entry.map_err(|pair| {
            ConfigError::new(
                VAR,
                value,
                format!("expected comma-separated key=value pairs, got {pair:?}"),
            )
        })?;
        let pair = format!("{key}={raw}");
        if key.is_empty() {
            return Err(ConfigError::new(
                VAR,
                value,
                format!("expected a key before '=' in {pair:?}"),
            ));
        }
        let decoded = percent_decode(raw).ok_or_else(|| {
            ConfigError::new(VAR, value, format!("bad percent-encoding in {pair:?}"))
        })?;
        out.insert(key.to_owned(), decoded);
    }
    Ok(out)
}

/// The entries of a `key1=value1,key2=value2` list, empty ones skipped: `Ok((key, raw value))`,
/// both trimmed, or `Err(entry)` for an entry without `=`.
fn entries(list: &str) -> impl Iterator<Item = Result<(&str, &str), &str>> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(e)
        })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_protocol(var: &'static str, value: &str) -> Result<Protocol, ConfigError> {
    match value {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err(ConfigError::new(
            var,
            value,
            format!("http/json is not supported; expected one of {PROTOCOLS}"),
        )),
        _ => Err(ConfigError::new(
            var,
            value,
            format!("expected one of {PROTOCOLS}"),
        )),
    }
}

/// The variables that configure one signal's export, the signal's own first.
struct SignalVars {
    protocol: &'static str,
    endpoint: &'static str,
    headers: &'static str,
    timeout: &'static str,
    compression: &'static str,
    /// The path the generic endpoint gets for HTTP.
    http_path: &'static str,
}

const TRACES: SignalVars = SignalVars {
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    http_path: "/v1/traces",
};

const METRICS: SignalVars = SignalVars {
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    http_path: "/v1/metrics",
};

/// Resolves one signal's export the way the OTLP exporter spec says: a signal-specific variable
/// wins over the generic one; the signal-specific endpoint is used as is, the generic one gets
/// `/v1/<signal>` appended for HTTP.
fn signal_export<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    vars: &SignalVars,
) -> Result<SignalExport, ConfigError> {
    // The signal's own variable if set, else the generic one; with the name that was used.
    let pick = |own: &'static str, generic: &'static str| {
        get(own)
            .map(|v| (own, v))
            .or_else(|| get(generic).map(|v| (generic, v)))
    };
    let protocol = match pick(vars.protocol, "OTEL_EXPORTER_OTLP_PROTOCOL") {
        Some((var, v)) => parse_protocol(var, v)?,
        None => Protocol::Grpc,
    };
    let endpoint = if let Some(v) = get(vars.endpoint) {
        check_url(vars.endpoint, v)?;
        v.to_owned()
    } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        check_url("OTEL_EXPORTER_OTLP_ENDPOINT", v)?;
        match protocol {
            Protocol::Grpc => v.to_owned(),
            Protocol::HttpProtobuf => format!("{}{}", v.trim_end_matches('/'), vars.http_path),
        }
    } else {
        match protocol {
            Protocol::Grpc => "http://localhost:4317".to_owned(),
            Protocol::HttpProtobuf => format!("http://localhost:4318{}", vars.http_path),
        }
    };
    let headers = match pick(vars.headers, "OTEL_EXPORTER_OTLP_HEADERS") {
        Some((var, v)) => parse_headers(var, v)?,
        None => Headers::default(),
    };
    let timeout = match pick(vars.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT") {
        Some((var, v)) => Duration::from_millis(parse_positive(var, v)?),
        None => DEFAULT_EXPORT_TIMEOUT,
    };
    let gzip = match pick(vars.compression, "OTEL_EXPORTER_OTLP_COMPRESSION") {
        None => false,
        Some((var, v)) => match v {
            "gzip" => true,
            "none" => false,
            _ => return Err(ConfigError::new(var, v, "expected gzip or none")),
        },
    };
    Ok(SignalExport {
        protocol,
        endpoint,
        headers,
        timeout,
        gzip,
    })
}

/// `key1=value1,key2=value2`, values percent-encoded, as the OTLP exporter spec says. An error
/// names the key, never the value.
fn parse_headers(var: &'static str, value: &str) -> Result<Headers, ConfigError> {
    const HIDDEN: &str = "(not shown: headers may hold credentials)";
    let mut out = Vec::new();
    for entry in entries(value) {
        let (key, raw) = entry.map_err(|_| {
            ConfigError::new(
                var,
                HIDDEN,
                "expected comma-separated key=value pairs; one entry has no '='",
            )
        })?;
        let name = http::HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
            ConfigError::new(
                var,
                HIDDEN,
                format!("{key:?} is not a valid header name (letters, digits and -)"),
            )
        })?;
        if is_transport_header(&name) {
            return Err(ConfigError::new(
                var,
                HIDDEN,
                format!("{key:?} is set by the exporter itself and cannot be overridden"),
            ));
        }
        let decoded = percent_decode(raw)
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    var,
                    HIDDEN,
                    format!("the value of {key:?} is not valid percent-encoded header text"),
                )
            })?;
        out.push((name, decoded));
    }
    Ok(Headers(out))
}

/// Headers the OTLP transports set themselves: overriding one would break every export.
fn is_transport_header(name: &http::HeaderName) -> bool {
    use http::header;
    [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::TE,
        header::HOST,
        header::CONNECTION,
    ]
    .contains(name)
        || name.as_str().starts_with("grpc-")
}

fn check_url(var: &'static str, value: &str) -> Result<(), ConfigError> {
    let expected = "expected an http:// or https:// URL, e.g. http://localhost:4317";
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::new(var, value, expected))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        // The endpoint is logged (at start, and with every failed export); a password in it
        // would be too. The value itself is not repeated in the error either.
        return Err(ConfigError::new(
            var,
            "(not shown: it holds credentials)",
            "credentials do not belong in the URL, which is logged; \
             send them as OTEL_EXPORTER_OTLP_HEADERS=authorization=...",
        ));
    }
    match value.parse::<http::Uri>() {
        Ok(uri) if !authority.is_empty() && uri.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(var, value, expected)),
    }
}

fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<SamplerChoice, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match arg {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    a,
                    "expected a sampling ratio between 0 and 1, e.g. 0.25",
                )),
            },
        }
    };
    Ok(match name.unwrap_or("parentbased_always_on") {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::TraceIdRatio(ratio()?),
        "parentbased_always_on" => SamplerChoice::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerChoice::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerChoice::ParentBasedTraceIdRatio(ratio()?),
        other => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                other,
                format!("expected one of {SAMPLERS}"),
            ));
        }
    })
}

fn parse_propagators(value: &str) -> Result<Vec<PropagatorChoice>, ConfigError> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let choice = match name {
            "tracecontext" => PropagatorChoice::TraceContext,
            "baggage" => PropagatorChoice::Baggage,
            "xray" => PropagatorChoice::Xray,
            "none" => continue,
            _ => {
                return Err(ConfigError::new(
                    "OTEL_PROPAGATORS",
                    value,
                    format!(
                        "unknown propagator {name:?}; expected a comma-separated list of \
                         tracecontext, baggage, xray or none"
                    ),
                ));
            }
        };
        if !out.contains(&choice) {
            out.push(choice);
        }
    }
    Ok(out)
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
