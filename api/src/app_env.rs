//! The environment the app container gets on both targets: where to send OTLP, its service
//! name, resource attributes and sampling. Kubernetes adds the downward-API variables first.

use crate::sidecar::OTLP_GRPC_PORT;
use crate::spec::TracedAppSpec;

/// `(name, value)` pairs for the app container, user `env` last.
///
/// `platform_attributes` are prepended to `OTEL_RESOURCE_ATTRIBUTES` (e.g. `k8s.pod.name=...`
/// or `cloud.platform=aws_ecs`); the spec's `resourceAttributes` follow, percent-encoded.
///
/// Every text that comes from the spec (the service name, the user's variables) is passed
/// through `as_text`, which a target uses to keep it from being interpreted (Kubernetes
/// expands `$(VAR)` in values: [`kubernetes_text`]); the platform's attributes are not, so that
/// their own references still expand. Resource attribute values need nothing more: their
/// percent-encoding already turns `$(` into `%24%28`.
pub fn app_env(
    spec: &TracedAppSpec,
    app_name: &str,
    platform_attributes: &[String],
    as_text: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    let service_name = as_text(spec.service_name.as_deref().unwrap_or(app_name));
    let mut attributes = platform_attributes.to_vec();
    attributes.extend(
        spec.resource_attributes
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v))),
    );
    let mut env = vec![
        ("PORT".to_owned(), spec.app.port.to_string()),
        ("OTEL_SERVICE_NAME".to_owned(), service_name),
        ("OTEL_RESOURCE_ATTRIBUTES".to_owned(), attributes.join(",")),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://localhost:{OTLP_GRPC_PORT}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), "grpc".to_owned()),
        (
            "OTEL_TRACES_SAMPLER".to_owned(),
            "parentbased_traceidratio".to_owned(),
        ),
        (
            "OTEL_TRACES_SAMPLER_ARG".to_owned(),
            spec.sampling.ratio.to_string(),
        ),
    ];
    env.extend(
        spec.app
            .env
            .iter()
            .map(|e| (e.name.clone(), as_text(&e.value))),
    );
    env
}

/// A value Kubernetes keeps as it is written: `$(` becomes `$$(`, which the kubelet turns back
/// into `$(` instead of expanding a variable reference.
pub fn kubernetes_text(value: &str) -> String {
    value.replace("$(", "$$(")
}

/// A value for a target that interprets nothing in it (ECS).
pub fn verbatim(value: &str) -> String {
    value.to_owned()
}

/// `OTEL_RESOURCE_ATTRIBUTES` values are W3C-baggage encoded: escape what would break parsing.
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_break_the_list_are_escaped() {
        assert_eq!(percent_encode("a b,c=d"), "a%20b%2Cc%3Dd");
        assert_eq!(percent_encode("prod-eu/1"), "prod-eu/1");
    }
}
