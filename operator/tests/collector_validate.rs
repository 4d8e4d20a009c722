//! Every rendered collector configuration passes the real collector's `validate` command
//! (built by `cargo xtask setup` from tools/otelcol-builder.yaml), and a broken one fails it.
//!
//! Limit: the collector built here lacks the awsxray receiver and the awsxray/awsemf exporters
//! (their modules are not served by the Go proxy reachable here; see the manifest). For specs
//! that use them, those components are removed before validation, and the test prints which
//! cases were validated that way; everything else in those configs is still validated.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testkit::{TempDir, files_ending, repo_root};
use tracedapp_operator::cli::read_app;

/// Component types absent from the test collector.
const UNBUILDABLE: &[&str] = &["awsxray", "awsemf"];

fn specs() -> Vec<PathBuf> {
    let mut out = files_ending(&repo_root().join("testdata"), ".input.yaml");
    out.extend(files_ending(
        &repo_root().join("manifests/examples"),
        ".yaml",
    ));
    out
}

/// Runs `otelcol validate` on `yaml`; returns (success, output).
fn validate(dir: &Path, name: &str, yaml: &str) -> (bool, String) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(testkit::tools::otelcol())
        .arg("validate")
        .arg(format!("--config=file:{}", file.display()))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Removes the components the test collector lacks, from their sections and every pipeline.
/// Returns whether anything was removed.
fn strip_unbuildable(config: &mut Value) -> bool {
    let is_unbuildable = |id: &str| UNBUILDABLE.contains(&id.split('/').next().unwrap_or(id));
    let mut removed = false;
    for section in ["receivers", "exporters"] {
        if let Some(map) = config[section].as_object_mut() {
            let before = map.len();
            map.retain(|id, _| !is_unbuildable(id));
            removed |= map.len() != before;
        }
    }
    if let Some(pipelines) = config["service"]["pipelines"].as_object_mut() {
        for pipeline in pipelines.values_mut() {
            for list in ["receivers", "exporters"] {
                if let Some(ids) = pipeline[list].as_array_mut() {
                    ids.retain(|id| !is_unbuildable(id.as_str().unwrap_or_default()));
                }
            }
        }
        // A pipeline left without exporters would be invalid for our own doing: give it the
        // debug exporter so the rest of it is still checked.
        let mut need_debug = false;
        for pipeline in pipelines.values_mut() {
            if pipeline["exporters"].as_array().is_some_and(Vec::is_empty) {
                pipeline["exporters"] = serde_json::json!(["debug"]);
                need_debug = true;
            }
        }
        if need_debug {
            config["exporters"]["debug"] = serde_json::json!({});
        }
    }
    removed
}

#[test]
fn every_rendered_config_passes_the_real_collector() {
    let dir = TempDir::new("otelcol");
    let mut failures = Vec::new();
    let mut stripped = Vec::new();
    let specs = specs();
    assert!(specs.len() >= 8, "{specs:?}");
    for spec in &specs {
        let app = read_app(spec).unwrap();
        let yaml = tracedapp_api::collector::render(&app.spec).to_yaml();
        let mut config: Value = serde_saphyr::from_str(&yaml).unwrap();
        if strip_unbuildable(&mut config) {
            stripped.push(spec.file_name().unwrap().to_string_lossy().into_owned());
        }
        let yaml = serde_saphyr::to_string(&config).unwrap();
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let (ok, output) = validate(dir.path(), &name, &yaml);
        if !ok {
            failures.push(format!("{}:\n{output}", spec.display()));
        }
    }
    eprintln!(
        "validated {} configs; without the AWS components for: {}",
        specs.len(),
        stripped.join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_config_fails_validation_with_a_clear_reason() {
    let dir = TempDir::new("otelcol-broken");
    let app = read_app(&repo_root().join("testdata/jaeger-only.input.yaml")).unwrap();
    let yaml = tracedapp_api::collector::render(&app.spec).to_yaml();
    let (ok, output) = validate(dir.path(), "good", &yaml);
    assert!(ok, "the unbroken config is valid: {output}");

    let mut config: Value = serde_saphyr::from_str(&yaml).unwrap();
    config["processors"]["batch"]["timeout"] = "ten seconds".into();
    let (ok, output) = validate(
        dir.path(),
        "bad-timeout",
        &serde_saphyr::to_string(&config).unwrap(),
    );
    assert!(!ok, "a non-duration timeout must fail");
    assert!(output.contains("timeout"), "{output}");

    let mut config: Value = serde_saphyr::from_str(&yaml).unwrap();
    config["service"]["pipelines"]["traces"]["exporters"] = serde_json::json!(["zipkin"]);
    let (ok, output) = validate(
        dir.path(),
        "bad-exporter",
        &serde_saphyr::to_string(&config).unwrap(),
    );
    assert!(!ok, "an undefined exporter must fail");
    assert!(output.contains("zipkin"), "{output}");
}
