//! Every rendered collector configuration passes the real collector's `validate` command
//! (built by `cargo xtask setup` from tools/otelcol-builder.yaml, AWS components included),
//! with nothing removed and the same command-line flags a pod or task passes; a broken
//! configuration fails it.
//!
//! `sigv4auth` fetches credentials while it validates its configuration (at start, in a pod),
//! so `validate` runs with static test keys, and with every AWS endpoint pointed at a closed
//! loopback port: a configuration that assumes a role would fail here rather than call STS.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testkit::{TempDir, files_ending, repo_root};

fn specs() -> Vec<PathBuf> {
    let mut out = files_ending(&repo_root().join("testdata"), ".input.yaml");
    out.extend(files_ending(
        &repo_root().join("manifests/examples"),
        ".yaml",
    ));
    out
}

/// Runs `otelcol validate` on `yaml` with `flags`; returns (success, output).
fn validate(dir: &Path, name: &str, yaml: &str, flags: &[String]) -> (bool, String) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    testkit::collector::validate(&file, flags, "http://127.0.0.1:1")
}

#[test]
fn every_rendered_config_passes_the_real_collector() {
    let dir = TempDir::new("otelcol");
    let mut failures = Vec::new();
    let specs = specs();
    assert!(specs.len() >= 8, "{specs:?}");
    let mut aws = 0;
    for spec in &specs {
        let app = tracedapp_api::load::read(spec).unwrap();
        let yaml = tracedapp_api::collector::render(&app.spec).to_yaml();
        aws += usize::from(
            yaml.contains("awsxray") || yaml.contains("awsemf") || yaml.contains("sigv4auth"),
        );
        let flags = tracedapp_api::collector::command_flags(&app.spec);
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let (ok, output) = validate(dir.path(), &name, &yaml, &flags);
        if !ok {
            failures.push(format!("{}:\n{output}", spec.display()));
        }
        // The ECS task's collector runs the same plus its own counters' pipeline.
        let ecs = tracedapp_api::collector::ecs_config(&app.spec, "family", "eu-west-1").to_yaml();
        let (ok, output) = validate(dir.path(), &format!("{name}-ecs"), &ecs, &flags);
        if !ok {
            failures.push(format!("{} (ECS):\n{output}", spec.display()));
        }
    }
    assert!(aws >= 3, "the cases cover the AWS components ({aws} do)");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_config_fails_validation_with_a_clear_reason() {
    let dir = TempDir::new("otelcol-broken");
    let app =
        tracedapp_api::load::read(&repo_root().join("testdata/jaeger-only.input.yaml")).unwrap();
    let yaml = tracedapp_api::collector::render(&app.spec).to_yaml();
    let (ok, output) = validate(dir.path(), "good", &yaml, &[]);
    assert!(ok, "the unbroken config is valid: {output}");

    let mut config: Value = serde_saphyr::from_str(&yaml).unwrap();
    config["processors"]["batch"]["timeout"] = "ten seconds".into();
    let (ok, output) = validate(
        dir.path(),
        "bad-timeout",
        &serde_saphyr::to_string(&config).unwrap(),
        &[],
    );
    assert!(!ok, "a non-duration timeout must fail");
    assert!(output.contains("timeout"), "{output}");

    let mut config: Value = serde_saphyr::from_str(&yaml).unwrap();
    config["service"]["pipelines"]["traces"]["exporters"] = serde_json::json!(["zipkin"]);
    let (ok, output) = validate(
        dir.path(),
        "bad-exporter",
        &serde_saphyr::to_string(&config).unwrap(),
        &[],
    );
    assert!(!ok, "an undefined exporter must fail");
    assert!(output.contains("zipkin"), "{output}");
}

/// What a user writes stays data: `${env:…}` and `${file:…}` in the spec reach the collector
/// as literal text (its `print-config` shows the configuration after its own expansion).
#[test]
fn spec_strings_are_never_expanded_by_the_collector() {
    // Both X-Ray paths: the legacy exporter's annotations, the OTLP exporter's endpoint.
    for xray in [
        "{protocol: xray, region: us-east-1, endpoint: 'http://127.0.0.1:1/${file:/etc/hostname}', \
         indexedAttributes: ['${env:PATH}']}",
        "{protocol: otlp, region: us-east-1, endpoint: 'http://127.0.0.1:1/${file:/etc/hostname}'}",
    ] {
        never_expanded(xray);
    }
}

fn never_expanded(xray: &str) {
    let dir = TempDir::new("otelcol-injection");
    let spec = format!(
        r#"
apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: inject, namespace: demo}}
spec:
  app: {{image: "app:1"}}
  exporters:
    jaeger: {{endpoint: "jaeger:4317", tls: {{caFile: "/certs/${{env:HOME}}/ca.pem"}}}}
    xray: {xray}
"#
    );
    let app = tracedapp_api::load::from_yaml(&spec).expect("the spec is valid");
    let yaml = tracedapp_api::collector::render(&app.spec).to_yaml();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = Command::new(testkit::tools::otelcol())
        .args(["print-config", "--mode=unredacted"])
        .arg(format!("--config=file:{}", file.display()))
        .args(tracedapp_api::collector::command_flags(&app.spec))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .envs(testkit::moto::CREDENTIALS)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut literals = vec![
        "/certs/${env:HOME}/ca.pem",
        "http://127.0.0.1:1/${file:/etc/hostname}",
    ];
    if xray.contains("indexedAttributes") {
        literals.push("${env:PATH}");
    }
    for literal in literals {
        assert!(
            printed.contains(literal),
            "{literal} was expanded:\n{printed}"
        );
    }
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(!printed.contains(&format!("/certs/{home}/")), "{printed}");
}
