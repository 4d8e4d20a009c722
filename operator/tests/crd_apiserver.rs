//! `manifests/crd.yaml` on a real kube-apiserver (with etcd), started by the test.
//!
//! Needs the tools from `cargo xtask setup`; the README's `cargo xtask test` runs it first.

use testkit::kube::ControlPlane;
use testkit::{files_ending, repo_root};

/// A fresh API server with the CRD installed and the namespaces the specs use.
fn with_crd() -> ControlPlane {
    ControlPlane::with_tracedapp_crd(&["demo", "prod", "dev"])
}

#[test]
fn crd_accepts_every_valid_spec_and_rejects_every_invalid_one() {
    let cp = with_crd();

    // The CRD is structural and its CEL rules compile: the API server marked it Established
    // and reports no NonStructuralSchema condition.
    let conditions = cp.kubectl_ok(&[
        "get",
        "crd/tracedapps.tracedapp.dev",
        "-o=jsonpath={.status.conditions[*].type}",
    ]);
    assert!(!conditions.contains("NonStructural"), "{conditions}");

    // Every example and golden input is accepted, with the defaults filled in server-side.
    let mut valid = files_ending(&repo_root().join("manifests/examples"), ".yaml");
    valid.extend(files_ending(&repo_root().join("testdata"), ".input.yaml"));
    assert!(valid.len() >= 8);
    for file in &valid {
        let out = cp.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{} rejected: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = cp.kubectl_ok(&["get", "ta", "hello", "-o=jsonpath={.spec.app.port}"]);
    assert_eq!(port, "3000", "defaults come from the CRD schema");
    let limit = cp.kubectl_ok(&[
        "get",
        "ta",
        "hello",
        "-o=jsonpath={.spec.collector.memoryLimitMiB}",
    ]);
    let default = tracedapp_api::spec::CollectorSpec::default().memory_limit_mib;
    assert_eq!(
        limit,
        default.to_string(),
        "the server fills in our default"
    );

    // Every invalid spec that is a TracedApp at all is rejected by the API server too, and the
    // message is ours.
    let expected: &[(&str, &str)] = &[
        (
            "app-port-clash",
            "spec.app.port: Invalid value: app.port must not be a port the collector opens",
        ),
        ("bad-batch-timeout", "spec.collector.batch.timeout"),
        (
            "batch-larger-than-limiter",
            "spec.collector.batch: Invalid value: batch is too large for the memory_limiter",
        ),
        (
            "collector-limit-below-limiter",
            "spec.collector.resources.limits.memory: Invalid value: resources.limits.memory must be at least memoryLimitMiB",
        ),
        (
            "ecs-task-smaller-than-collector",
            "spec.ecs.memory: Invalid value: ecs.memory must be at least collector.memoryLimitMiB",
        ),
        (
            "null-trace-exporter",
            "at least one trace exporter is required",
        ),
        ("octal-replicas-as-text", "spec.app.env[0].value"),
        ("bad-name", "metadata.name"),
        ("bad-role-arn", "spec.aws.iamRoleArn"),
        (
            "cloudwatch-without-region",
            "cloudwatchMetrics.region is required when xray.region is not set",
        ),
        ("duplicate-env", "variable names must be unique"),
        ("fargate-cpu", "cpu/memory is not a Fargate task size"),
        ("fargate-size", "cpu/memory is not a Fargate task size"),
        (
            "fargate-without-execution-role",
            "spec.ecs.executionRoleArn: Invalid value: ecs.executionRoleArn is required on FARGATE",
        ),
        ("health-path-relative", "spec.app.healthPath"),
        ("jaeger-url-with-scheme", "spec.exporters.jaeger.endpoint"),
        ("missing-image", "spec.app.image: Required value"),
        (
            "no-trace-exporter",
            "at least one trace exporter is required",
        ),
        ("port-out-of-range", "spec.app.port"),
        (
            "prometheus-on-collector-port",
            "spec.exporters.prometheus.port: Invalid value: exporters.prometheus.port must not be a port the collector opens",
        ),
        ("ratio-above-one", "spec.sampling.ratio"),
        (
            "reserved-env",
            "must not set a variable TracedApp sets itself",
        ),
        (
            "service-name-attribute",
            "must not set an attribute TracedApp sets itself (service.name",
        ),
        (
            "spike-not-below-limit",
            "spikeLimitMiB must be less than memoryLimitMiB",
        ),
        ("unknown-field", "xRay"),
        ("wrong-type", "spec.app.replicas"),
        (
            "xray-without-region",
            "region is required when X-Ray export is enabled",
        ),
        (
            "xray-receiver-port-clash",
            "spec.app.port: Invalid value: app.port must not be a port the collector opens",
        ),
        (
            "xray-annotations-over-otlp",
            "indexedAttributes and indexAllAttributes choose X-Ray annotations",
        ),
        (
            "ecs-service-without-subnets",
            "spec.ecs.service.network.subnets: Invalid value: 0: spec.ecs.service.network.subnets in body should have at least 1 items",
        ),
        (
            "ecs-service-grace-without-lb",
            "healthCheckGracePeriodSeconds applies only with a loadBalancer",
        ),
        (
            "ecs-service-no-room-to-deploy",
            "maximumPercent must be above minimumHealthyPercent",
        ),
        ("bad-name-dotted", "metadata.name"),
        ("bad-image", "spec.app.image"),
        ("cpu-fraction-unquoted", "spec.app.resources.limits.cpu"),
        ("bad-image-digest", "spec.app.image"),
        ("bad-name-long", "metadata.name"),
        (
            "misplaced-field",
            ".spec.replicas: field not declared in schema",
        ),
        (
            "env-value-from",
            ".spec.app.env[0].valueFrom: field not declared in schema",
        ),
        (
            "xray-otlp-unbounded-batch",
            "spec.collector.batch.sendBatchMaxSize: Invalid value: collector.batch.sendBatchMaxSize must be 1 to 10000",
        ),
    ];
    let dir = repo_root().join("testdata/invalid");
    let mut failures = Vec::new();
    for (case, message) in expected {
        let file = dir.join(format!("{case}.yaml"));
        let out = cp.kubectl(&[
            "apply",
            "--server-side",
            "-n",
            "default",
            "-f",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{case}: accepted by the API server"));
        } else if !stderr.contains(message) {
            failures.push(format!("{case}: expected {message:?} in: {stderr}"));
        }
    }
    // Cases that are not TracedApps (a ConfigMap, broken YAML) are the CLI's alone, and so is
    // a key given twice: kubectl keeps the last value without a word; the CLI refuses it.
    let covered = files_ending(&dir, ".yaml").len();
    assert_eq!(
        covered,
        expected.len() + 3,
        "every invalid case is listed above or is not a TracedApp"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kubectl_get_shows_the_printer_columns() {
    let cp = with_crd();
    let example = repo_root().join("manifests/examples/shop.yaml");
    cp.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap()]);
    let table = cp.kubectl_ok(&["get", "ta", "-n", "demo"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "REPLICAS", "EXPORT", "EXPORTERS", "AGE"]
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with("shop "),
        "{table}"
    );
    // The short name works too.
    let names = cp.kubectl_ok(&["get", "tracedapps", "-A", "-o=name"]);
    assert_eq!(names.trim(), "tracedapp.tracedapp.dev/shop");
}
