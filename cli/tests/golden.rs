//! Golden tests: every `testdata/<case>.input.yaml` renders to the checked-in
//! `<case>.k8s.yaml`, `<case>.collector.yaml`, `<case>.ecs.json` and `<case>.lambda.yaml`
//! (the render, or the fields the Lambda layer refuses); every
//! `testdata/invalid/<case>.yaml` fails with exactly the message in `<case>.error`.
//!
//! `UPDATE_GOLDENS=1 cargo test -p tracedapp-cli --test golden` rewrites the expected files
//! on purpose; review the diff before committing.

use std::path::{Path, PathBuf};

use testkit::files_ending;
use tracedapp_cli::{Format, RenderTarget, read_app, render};

fn testdata() -> PathBuf {
    testkit::repo_root().join("testdata")
}

/// Compares `actual` with the golden file (or rewrites it); returns a failure description.
fn check(golden: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(golden, actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
        .unified_diff()
        .header("expected", "actual")
        .to_string();
    Some(format!(
        "{} differs (UPDATE_GOLDENS=1 to accept):\n{diff}",
        golden.display()
    ))
}

#[test]
fn every_case_renders_to_its_goldens() {
    let inputs = files_ending(&testdata(), ".input.yaml");
    assert!(
        inputs.len() >= 7,
        "expected the golden cases, found {inputs:?}"
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let app = read_app(input).unwrap_or_else(|e| panic!("{e}"));
        let stem = input
            .to_string_lossy()
            .trim_end_matches(".input.yaml")
            .to_owned();
        for (target, ext) in [
            (RenderTarget::K8s, "k8s.yaml"),
            (RenderTarget::Collector, "collector.yaml"),
            (RenderTarget::Ecs, "ecs.json"),
        ] {
            let out = render(&app, target, None, &Default::default()).unwrap();
            failures.extend(check(Path::new(&format!("{stem}.{ext}")), &out));
        }
        let lambda = render(&app, RenderTarget::Lambda, None, &Default::default())
            .unwrap_or_else(|refused| format!("refused: {refused}\n"));
        failures.extend(check(Path::new(&format!("{stem}.lambda.yaml")), &lambda));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rendering_is_stable() {
    for input in files_ending(&testdata(), ".input.yaml") {
        let app = read_app(&input).unwrap();
        for target in [
            RenderTarget::K8s,
            RenderTarget::Collector,
            RenderTarget::Ecs,
        ] {
            let a = render(&app, target, Some(Format::Json), &Default::default()).unwrap();
            let b = render(&app, target, Some(Format::Json), &Default::default()).unwrap();
            assert_eq!(a, b, "{} {target:?}", input.display());
        }
    }
}
#[test]
fn every_invalid_spec_fails_with_its_exact_message() {
    let dir = testdata().join("invalid");
    let inputs = files_ending(&dir, ".yaml");
    assert!(
        inputs.len() >= 15,
        "at least 15 invalid specs, found {}",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let Err(err) = read_app(input) else {
            failures.push(format!("{} was accepted", input.display()));
            continue;
        };
        // Exactly what `tracedapp render k8s -f testdata/invalid/<case>.yaml` prints from the
        // repository root.
        let message = format!("tracedapp: {err}\n")
            .replace(&format!("{}/", testdata().display()), "testdata/");
        failures.extend(check(&input.with_extension("error"), &message));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the binary prints is what the goldens hold: an error of several lines keeps its lines
/// (control characters from the file are escaped, line breaks of the message are not).
#[test]
fn the_binary_prints_the_golden_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args([
            "render",
            "k8s",
            "-f",
            "testdata/invalid/app-port-clash.yaml",
        ])
        .current_dir(testkit::repo_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let expected =
        std::fs::read_to_string(testdata().join("invalid/app-port-clash.error")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
}

/// `render collector` prints what runs: the ConfigMap's content that `render k8s` holds, and
/// the ECS task's collector runs that configuration plus its own counters' pipeline.
#[test]
fn the_collector_config_printed_is_the_one_that_runs() {
    for input in files_ending(&testdata(), ".input.yaml") {
        let app = read_app(&input).unwrap();
        let printed = render(&app, RenderTarget::Collector, None, &Default::default()).unwrap();
        let k8s = render(
            &app,
            RenderTarget::K8s,
            Some(Format::Json),
            &Default::default(),
        )
        .unwrap();
        let list: serde_json::Value = serde_json::from_str(&k8s).unwrap();
        let held = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "ConfigMap")
            .and_then(|cm| cm["data"].as_object())
            .and_then(|d| d.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{}: a ConfigMap with the config", input.display()));
        assert_eq!(printed, held, "{}", input.display());
    }
}

/// `render lambda --out-dir` writes the layer's configuration and the function's environment
/// (the shape `aws lambda --environment file://` takes); a spec the layer cannot run exits 2
/// naming the field, and writes nothing.
#[test]
fn render_lambda_writes_the_two_files_or_refuses_with_the_field() {
    let dir = testkit::TempDir::new("render-lambda");
    let example = testkit::repo_root().join("manifests/examples/lambda.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args(["render", "lambda", "-f"])
        .arg(&example)
        .arg("--out-dir")
        .arg(dir.path().join("build"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = read_app(&example).unwrap();
    let rendered = tracedapp_cli::lambda::render(&app).unwrap();
    let collector = std::fs::read_to_string(dir.path().join("build/collector.yaml")).unwrap();
    assert_eq!(collector, rendered.collector.to_yaml());
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("build/environment.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        env["Variables"]["OPENTELEMETRY_COLLECTOR_CONFIG_URI"],
        "/var/task/collector.yaml"
    );

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args(["render", "lambda", "-f"])
        .arg(testkit::repo_root().join("manifests/examples/aws.yaml"))
        .arg("--out-dir")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("spec.exporters.cloudwatchMetrics:"),
        "{stderr}"
    );
    assert!(!dir.path().join("refused").exists());
}
