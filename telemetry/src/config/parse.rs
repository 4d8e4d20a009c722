//! Parsers of single `OTEL_*` values: each returns the value, or an error naming the variable
//! and what it accepts (never repeating a value that may hold a credential).

use std::collections::BTreeMap;

use super::{ConfigError, Headers, PROTOCOLS, PropagatorChoice, Protocol, SAMPLERS, SamplerChoice};

pub(super) fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(var, value, "expected true or false")),
    }
}

pub(super) fn parse_positive(var: &'static str, value: &str) -> Result<u64, ConfigError> {
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
pub(super) fn parse_resource_attributes(
    value: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
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
pub(super) fn entries(list: &str) -> impl Iterator<Item = Result<(&str, &str), &str>> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(e)
        })
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
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

pub(super) fn parse_protocol(var: &'static str, value: &str) -> Result<Protocol, ConfigError> {
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

/// `key1=value1,key2=value2`, values percent-encoded, as the OTLP exporter spec says. An error
/// names the key, never the value.
pub(super) fn parse_headers(var: &'static str, value: &str) -> Result<Headers, ConfigError> {
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
pub(super) fn is_transport_header(name: &http::HeaderName) -> bool {
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

pub(super) fn check_url(var: &'static str, value: &str) -> Result<(), ConfigError> {
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

pub(super) fn parse_sampler(
    name: Option<&str>,
    arg: Option<&str>,
) -> Result<SamplerChoice, ConfigError> {
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

pub(super) fn parse_propagators(value: &str) -> Result<Vec<PropagatorChoice>, ConfigError> {
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
