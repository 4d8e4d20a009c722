//! The CRD's validation, in Rust, for the paths that never meet an API server (CLI, ECS).
//!
//! Each check here has a twin in the CRD schema (a bound, a pattern or a CEL rule in
//! [`crate::spec`]); messages say the same thing and name the field path, e.g.
//! `spec.exporters.xray.region: required when X-Ray export is enabled`.

use std::collections::BTreeSet;
use std::fmt;

use crate::fargate;
use crate::spec::{LaunchType, RESERVED_ENV, ResourceAmounts, Resources, TracedApp, TracedAppSpec};

/// One problem with a spec: where it is and what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.app.env[2].name`.
    pub path: String,
    /// What is wrong or expected.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Ports the collector itself uses inside the pod/task; the app and Prometheus must avoid them.
pub const COLLECTOR_PORTS: &[(i32, &str)] = &[
    (4317, "OTLP/gRPC receiver"),
    (4318, "OTLP/HTTP receiver"),
    (8888, "collector's own telemetry"),
    (13133, "collector health check"),
];

const ROLE_ARN: &str = "an IAM role ARN like arn:aws:iam::123456789012:role/name";
const REGION: &str = "an AWS region like us-east-1";

#[derive(Default)]
struct Checker(Vec<FieldError>);

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, ok: bool, path: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.fail(path, message);
        }
    }

    fn range(&mut self, value: i64, lo: i64, hi: i64, path: &str) {
        self.check(
            (lo..=hi).contains(&value),
            path,
            format!("must be between {lo} and {hi}, got {value}"),
        );
    }

    fn opt_pattern(
        &mut self,
        value: Option<&String>,
        ok: fn(&str) -> bool,
        path: &str,
        what: &str,
    ) {
        if let Some(v) = value {
            self.check(ok(v), path, format!("must be {what}, got {v:?}"));
        }
    }
}

/// Checks a whole resource (name included), as the CLI reads it from a file.
pub fn validate(app: &TracedApp) -> Result<(), ValidationErrors> {
    let mut c = Checker::default();
    match app.metadata.name.as_deref() {
        None | Some("") => c.fail("metadata.name", "is required"),
        Some(name) => c.check(
            is_dns_label(name),
            "metadata.name",
            format!(
                "must be a DNS label (lowercase letters, digits and '-', at most 63), got {name:?}"
            ),
        ),
    }
    check_spec(&mut c, &app.spec);
    if c.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(c.0))
    }
}

/// Checks the spec alone (what the API server's schema and CEL rules check).
pub fn validate_spec(spec: &TracedAppSpec) -> Result<(), ValidationErrors> {
    let mut c = Checker::default();
    check_spec(&mut c, spec);
    if c.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(c.0))
    }
}

fn check_spec(c: &mut Checker, spec: &TracedAppSpec) {
    let app = &spec.app;
    c.check(
        !app.image.trim().is_empty(),
        "spec.app.image",
        "is required (a container image)",
    );
    c.range(app.port.into(), 1, 65535, "spec.app.port");
    c.range(app.replicas.into(), 0, 1000, "spec.app.replicas");
    if let Some(seconds) = app.progress_deadline_seconds {
        c.range(seconds.into(), 1, 86400, "spec.app.progressDeadlineSeconds");
    }
    c.check(
        app.health_path.starts_with('/'),
        "spec.app.healthPath",
        format!("must start with '/', got {:?}", app.health_path),
    );
    let mut seen = BTreeSet::new();
    for (i, e) in app.env.iter().enumerate() {
        let path = format!("spec.app.env[{i}].name");
        c.check(
            is_env_name(&e.name),
            &path,
            format!(
                "must be letters, digits and '_', not starting with a digit, got {:?}",
                e.name
            ),
        );
        c.check(
            !RESERVED_ENV.contains(&e.name.as_str()),
            &path,
            format!(
                "{} is set by TracedApp itself; use the matching spec field instead",
                e.name
            ),
        );
        c.check(
            seen.insert(&e.name),
            &path,
            format!("{} is set twice", e.name),
        );
    }
    check_resources(c, &app.resources, "spec.app.resources");
    for &(port, what) in COLLECTOR_PORTS {
        c.check(
            app.port != port,
            "spec.app.port",
            format!("{port} is the {what} in the same pod/task; pick another port"),
        );
    }

    if let Some(name) = &spec.service_name {
        c.check(
            !name.trim().is_empty(),
            "spec.serviceName",
            "must not be empty when set",
        );
    }
    for key in spec.resource_attributes.keys() {
        c.check(
            key != "service.name" && !key.is_empty(),
            "spec.resourceAttributes",
            "must not contain service.name (use spec.serviceName) or an empty key",
        );
    }

    let s = &spec.sampling;
    c.check(
        (0.0..=1.0).contains(&s.ratio),
        "spec.sampling.ratio",
        format!("must be between 0 and 1, got {}", s.ratio),
    );
    if let Some(p) = s.collector_percentage {
        c.check(
            (0.0..=100.0).contains(&p),
            "spec.sampling.collectorPercentage",
            format!("must be between 0 and 100, got {p}"),
        );
    }

    let col = &spec.collector;
    if let Some(image) = &col.image {
        c.check(
            !image.trim().is_empty(),
            "spec.collector.image",
            "must not be empty when set",
        );
    }
    c.range(
        col.memory_limit_mib.into(),
        32,
        65536,
        "spec.collector.memoryLimitMiB",
    );
    c.check(
        col.spike_limit_mib < col.memory_limit_mib,
        "spec.collector.spikeLimitMiB",
        format!(
            "must be less than memoryLimitMiB ({}), got {}",
            col.memory_limit_mib, col.spike_limit_mib
        ),
    );
    let b = &col.batch;
    c.range(
        b.send_batch_size.into(),
        1,
        100_000,
        "spec.collector.batch.sendBatchSize",
    );
    c.check(
        is_go_duration(&b.timeout),
        "spec.collector.batch.timeout",
        format!(
            "must be a duration like 200ms, 10s or 1m, got {:?}",
            b.timeout
        ),
    );
    c.check(
        b.send_batch_max_size == 0 || b.send_batch_max_size >= b.send_batch_size,
        "spec.collector.batch.sendBatchMaxSize",
        format!(
            "must be 0 (no limit) or at least sendBatchSize ({}), got {}",
            b.send_batch_size, b.send_batch_max_size
        ),
    );
    check_resources(c, &col.resources, "spec.collector.resources");

    let ex = &spec.exporters;
    let xray_on = ex.xray.as_ref().is_some_and(|x| x.enabled);
    c.check(
        ex.jaeger.is_some() || xray_on,
        "spec.exporters",
        "at least one trace exporter is required: set exporters.jaeger or enable exporters.xray",
    );
    if let Some(j) = &ex.jaeger {
        c.check(
            is_host_port(&j.endpoint),
            "spec.exporters.jaeger.endpoint",
            format!(
                "must be host:port (OTLP/gRPC, no scheme), got {:?}",
                j.endpoint
            ),
        );
    }
    if let Some(x) = &ex.xray {
        if x.enabled && x.region.is_none() {
            c.fail(
                "spec.exporters.xray.region",
                "required when X-Ray export is enabled",
            );
        }
        c.opt_pattern(
            x.region.as_ref(),
            is_region,
            "spec.exporters.xray.region",
            REGION,
        );
        c.opt_pattern(
            x.role_arn.as_ref(),
            is_role_arn,
            "spec.exporters.xray.roleArn",
            ROLE_ARN,
        );
        c.opt_pattern(
            x.endpoint.as_ref(),
            |e| e.starts_with("http://") || e.starts_with("https://"),
            "spec.exporters.xray.endpoint",
            "an http(s):// URL",
        );
        c.check(
            x.indexed_attributes.len() <= 50,
            "spec.exporters.xray.indexedAttributes",
            "must have at most 50 items (X-Ray keeps 50 annotations per trace)",
        );
        for (i, a) in x.indexed_attributes.iter().enumerate() {
            c.check(
                !a.trim().is_empty(),
                format!("spec.exporters.xray.indexedAttributes[{i}]"),
                "must not be empty",
            );
        }
    }
    if spec.collector.xray_receiver {
        for (port, path) in [
            (app.port, "spec.app.port"),
            (ex.prometheus.port, "spec.exporters.prometheus.port"),
        ] {
            c.check(
                port != crate::collector::XRAY_UDP_PORT,
                path,
                "must not be 2000: with collector.xrayReceiver the collector takes port 2000 for X-Ray segments",
            );
        }
    }
    let prom = ex.prometheus.port;
    c.range(prom.into(), 1, 65535, "spec.exporters.prometheus.port");
    for &(port, what) in COLLECTOR_PORTS {
        c.check(
            prom != port,
            "spec.exporters.prometheus.port",
            format!("{port} is the {what}; pick another port (default 8889)"),
        );
    }
    c.check(
        prom != app.port,
        "spec.exporters.prometheus.port",
        format!("{prom} is also the app's port; the app and collector share the pod/task network"),
    );
    if let Some(cw) = &ex.cloudwatch_metrics {
        c.check(
            !cw.namespace.is_empty() && cw.namespace.len() <= 255,
            "spec.exporters.cloudwatchMetrics.namespace",
            "must be 1 to 255 characters",
        );
        c.opt_pattern(
            cw.log_group.as_ref(),
            is_log_group,
            "spec.exporters.cloudwatchMetrics.logGroup",
            "a CloudWatch Logs group name",
        );
        c.opt_pattern(
            cw.region.as_ref(),
            is_region,
            "spec.exporters.cloudwatchMetrics.region",
            REGION,
        );
        c.opt_pattern(
            cw.endpoint.as_ref(),
            |e| e.starts_with("http://") || e.starts_with("https://"),
            "spec.exporters.cloudwatchMetrics.endpoint",
            "an http(s):// URL",
        );
        let region_known =
            cw.region.is_some() || ex.xray.as_ref().is_some_and(|x| x.region.is_some());
        c.check(
            region_known,
            "spec.exporters.cloudwatchMetrics.region",
            "required when exporters.xray.region is not set",
        );
    }

    c.opt_pattern(
        spec.aws.iam_role_arn.as_ref(),
        is_role_arn,
        "spec.aws.iamRoleArn",
        ROLE_ARN,
    );
    if let Some(secret) = &spec.aws.credentials_secret {
        c.check(
            is_dns_subdomain(&secret.name),
            "spec.aws.credentialsSecret.name",
            format!("must be a Secret name, got {:?}", secret.name),
        );
    }

    if let Some(ecs) = &spec.ecs {
        c.opt_pattern(
            ecs.family.as_ref(),
            |f| {
                !f.is_empty()
                    && f.len() <= 255
                    && f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            },
            "spec.ecs.family",
            "1 to 255 letters, digits, '-' or '_'",
        );
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        c.check(
            digits(&ecs.cpu),
            "spec.ecs.cpu",
            format!("must be CPU units like 256, got {:?}", ecs.cpu),
        );
        c.check(
            digits(&ecs.memory),
            "spec.ecs.memory",
            format!("must be MiB like 512, got {:?}", ecs.memory),
        );
        if ecs.launch_type == LaunchType::Fargate && digits(&ecs.cpu) && digits(&ecs.memory) {
            c.check(
                fargate::is_valid(&ecs.cpu, &ecs.memory),
                "spec.ecs",
                format!(
                    "cpu {} / memory {} is not a Fargate task size: {}",
                    ecs.cpu,
                    ecs.memory,
                    fargate::expected(&ecs.cpu)
                ),
            );
        }
        c.opt_pattern(
            ecs.execution_role_arn.as_ref(),
            is_role_arn,
            "spec.ecs.executionRoleArn",
            ROLE_ARN,
        );
        c.opt_pattern(
            ecs.task_role_arn.as_ref(),
            is_role_arn,
            "spec.ecs.taskRoleArn",
            ROLE_ARN,
        );
        c.opt_pattern(
            ecs.log_group.as_ref(),
            is_log_group,
            "spec.ecs.logGroup",
            "a CloudWatch Logs group name",
        );
        c.check(
            is_region(&ecs.region),
            "spec.ecs.region",
            format!("must be {REGION}, got {:?}", ecs.region),
        );
    }
}

fn check_resources(c: &mut Checker, r: &Resources, path: &str) {
    let amounts = |c: &mut Checker, a: &Option<ResourceAmounts>, which: &str| {
        if let Some(a) = a {
            c.opt_pattern(
                a.cpu.as_ref(),
                is_cpu,
                &format!("{path}.{which}.cpu"),
                "a CPU amount like 250m or 1",
            );
            c.opt_pattern(
                a.memory.as_ref(),
                is_memory,
                &format!("{path}.{which}.memory"),
                "a memory amount like 256Mi or 1Gi",
            );
        }
    };
    amounts(c, &r.requests, "requests");
    amounts(c, &r.limits, "limits");
}

/// RFC 1123 label: what a Kubernetes object name must be to also be a Service name.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `"512Mi"` → `("512", "Mi")` when the number part is all digits.
fn number_and_unit(s: &str) -> Option<(&str, &str)> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (digits, &s[digits.len()..]))
}

fn is_go_duration(s: &str) -> bool {
    number_and_unit(s).is_some_and(|(_, unit)| matches!(unit, "ms" | "s" | "m"))
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .last()
            .is_some_and(|d| d.len() == 1 && d.as_bytes()[0].is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|r| !r.is_empty())
}

fn is_log_group(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
}

fn is_cpu(s: &str) -> bool {
    match s.strip_suffix('m') {
        Some(milli) => !milli.is_empty() && milli.bytes().all(|b| b.is_ascii_digit()),
        None => s.parse::<f64>().is_ok_and(|v| v > 0.0) && !s.starts_with('.') && !s.contains('e'),
    }
}

fn is_memory(s: &str) -> bool {
    number_and_unit(s).is_some_and(|(_, unit)| {
        matches!(unit, "" | "Ki" | "Mi" | "Gi" | "Ti" | "k" | "M" | "G" | "T")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert!(is_region("us-east-1") && is_region("us-gov-west-1") && !is_region("useast1"));
        assert!(is_role_arn("arn:aws:iam::123456789012:role/x"));
        assert!(!is_role_arn("arn:aws:iam::12345:role/x") && !is_role_arn("arn:aws:s3:::bucket"));
        assert!(
            is_go_duration("10s")
                && is_go_duration("200ms")
                && !is_go_duration("10")
                && !is_go_duration("s")
        );
        assert!(
            is_host_port("jaeger:4317")
                && is_host_port("[::1]:4317")
                && !is_host_port("http://j:4317/")
        );
        assert!(is_cpu("250m") && is_cpu("0.5") && !is_cpu("fast"));
        assert!(is_memory("256Mi") && is_memory("1G") && !is_memory("1GB"));
        assert!(is_dns_label("shop-1") && !is_dns_label("Shop") && !is_dns_label("-a"));
    }
}
