//! One signal's export settings (traces, metrics), resolved from its own variables and the
//! generic ones as the OTLP exporter specification says.

use std::time::Duration;

use super::parse::{check_url, parse_headers, parse_positive, parse_protocol};
use super::{ConfigError, DEFAULT_EXPORT_TIMEOUT, Headers, Protocol, SignalExport};

/// The variables that configure one signal's export, the signal's own first.
pub(super) struct SignalVars {
    protocol: &'static str,
    endpoint: &'static str,
    headers: &'static str,
    timeout: &'static str,
    compression: &'static str,
    /// The path the generic endpoint gets for HTTP.
    http_path: &'static str,
}

pub(super) const TRACES: SignalVars = SignalVars {
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    http_path: "/v1/traces",
};

pub(super) const METRICS: SignalVars = SignalVars {
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
pub(super) fn signal_export<'a>(
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
