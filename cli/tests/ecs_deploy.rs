//! `tracedapp ecs deploy` waiting for its own deployment, against `testkit::ecs_script` — a
//! scripted ECS endpoint for fault injection, speaking ECS's JSON protocol to the real
//! aws-sdk-ecs client — because moto never moves a deployment after `UpdateService`. Each play
//! must end with the right exit code and say why. (Creating, updating, diffing and rolling back
//! against moto itself: `ecs_service.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{text, tracedapp_aws};
use testkit::ecs_script::{Play, ScriptedEcs};

fn write_app(dir: &Path, image: &str) -> PathBuf {
    let path = dir.join(format!("app-{}.yaml", image.replace([':', '/'], "-")));
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: shop}}
spec:
  app: {{image: "{image}", replicas: 2}}
  exporters:
    jaeger: {{endpoint: "jaeger:4317", tls: {{insecure: true}}}}
  ecs:
    region: eu-west-1
    executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
    service:
      network:
        subnets: [subnet-0123456789abcdef0]
"#
        ),
    )
    .unwrap();
    path
}

fn command(args: &[&str], ecs: &ScriptedEcs) -> Command {
    let mut cmd = tracedapp_aws(args);
    cmd.args(["--endpoint-url", &ecs.url]);
    cmd
}

/// The task definition revision 1 of the service: what `render ecs` gives for `file`.
fn rendered(file: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args(["render", "ecs", "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A service running `shop:1` (image 1.0), then `deploy` of image 2.0 with `play`.
fn deploy_with(play: Play, extra: &[&str]) -> (Output, ScriptedEcs) {
    let dir = testkit::TempDir::new("ecs-deploy");
    let v1 = write_app(dir.path(), "ghcr.io/acme/shop:1.0");
    let v2 = write_app(dir.path(), "ghcr.io/acme/shop:2.0");
    let ecs = ScriptedEcs::start(play).with_service("shop", rendered(&v1), "shop", 2);
    let mut args = vec![
        "ecs",
        "deploy",
        "-f",
        v2.to_str().unwrap(),
        "--interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    let out = command(&args, &ecs).output().unwrap();
    (out, ecs)
}

#[test]
fn a_deployment_that_completes_exits_0_with_its_progress_shown() {
    let (out, ecs) = deploy_with(Play::Completes, &[]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("task definition shop:2 (new revision)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deployed: service shop runs shop:2 on every desired task (deployment ecs-svc/2 COMPLETED)"),
        "{stdout}"
    );
    assert!(
        stderr
            .contains("ecs-svc/2 PRIMARY shop:2 IN_PROGRESS: 1 running, 1 pending, 0 failed of 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("event: (service shop) has reached a steady state."),
        "{stderr}"
    );
    let calls = ecs.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "RegisterTaskDefinition")
            .count(),
        1
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "UpdateService").count(),
        1,
        "{calls:?}"
    );
}

#[test]
fn a_circuit_breaker_rollback_is_a_failure_with_its_reasons() {
    let (out, _) = deploy_with(Play::RolledBack, &[]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(
        code,
        Some(5),
        "a rollback is not a success: {stdout}{stderr}"
    );
    for needle in [
        "deployment ecs-svc/2 of shop:2 failed: ECS deployment circuit breaker: tasks failed to start.",
        "ECS rolled the service back to shop:1 (deployment ecs-svc/3",
        "stopped tasks:",
        "Task failed to start",
        "container app: no exit code, CannotPullContainerError",
        "rolling back to deployment ecs-svc/3",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in:\n{stderr}");
    }
    assert!(!stdout.contains("deployed:"), "{stdout}");
}

#[test]
fn tasks_that_exit_are_named_with_their_exit_codes() {
    let (out, _) = deploy_with(Play::TasksExit, &[]);
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("Essential container in task exited"),
        "{stderr}"
    );
    assert!(stderr.contains("container app: exit code 1"), "{stderr}");
    assert!(
        !stderr.contains("rolled the service back"),
        "no rollback here: {stderr}"
    );
}

#[test]
fn a_deployment_that_hangs_times_out_saying_what_it_waited_for() {
    let (out, _) = deploy_with(Play::Hangs, &["--timeout", "2s"]);
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains(
            "gave up after 2 s waiting for deployment ecs-svc/2 of shop:2 to complete; it goes on"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Last seen: ecs-svc/2 PRIMARY shop:2 IN_PROGRESS: 0 running, 2 pending"),
        "{stderr}"
    );
}

#[test]
fn someone_elses_deployment_is_reported_not_mistaken_for_ours() {
    let (out, _) = deploy_with(Play::OtherDeployment, &[]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    assert!(
        stderr.contains("was replaced by deployment ecs-svc/3 of shop:99"),
        "{stderr}"
    );
}

#[test]
fn throttled_looks_are_retried() {
    let (out, ecs) = deploy_with(Play::Throttled(4), &[]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stdout.contains("deployed:"), "{stdout}");
    assert!(
        ecs.calls()
            .iter()
            .filter(|c| *c == "DescribeServices")
            .count()
            >= 5,
        "{:?}",
        ecs.calls()
    );
}

#[test]
fn the_same_spec_again_changes_nothing() {
    let dir = testkit::TempDir::new("ecs-deploy-same");
    let v1 = write_app(dir.path(), "ghcr.io/acme/shop:1.0");
    let ecs = ScriptedEcs::start(Play::Completes).with_service("shop", rendered(&v1), "shop", 2);
    let out = command(&["ecs", "deploy", "-f", v1.to_str().unwrap()], &ecs)
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("task definition shop:1 (unchanged)"),
        "{stdout}"
    );
    assert!(stdout.contains("unchanged: service shop"), "{stdout}");
    let calls = ecs.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c == "UpdateService" || c == "RegisterTaskDefinition"),
        "{calls:?}"
    );
}

#[test]
fn a_missing_service_is_created_and_waited_for() {
    let dir = testkit::TempDir::new("ecs-deploy-create");
    let v1 = write_app(dir.path(), "ghcr.io/acme/shop:1.0");
    let ecs = ScriptedEcs::start(Play::Completes);
    let out = command(
        &[
            "ecs",
            "deploy",
            "-f",
            v1.to_str().unwrap(),
            "--interval",
            "100ms",
        ],
        &ecs,
    )
    .output()
    .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("creating service shop in cluster default"),
        "{stderr}"
    );
    assert!(
        stdout.contains("deployed: service shop runs shop:1"),
        "{stdout}"
    );
    assert!(ecs.calls().contains(&"CreateService".to_owned()));
}

#[test]
fn ctrl_c_stops_waiting_and_leaves_the_deployment_alone() {
    let dir = testkit::TempDir::new("ecs-deploy-int");
    let v1 = write_app(dir.path(), "ghcr.io/acme/shop:1.0");
    let v2 = write_app(dir.path(), "ghcr.io/acme/shop:2.0");
    let ecs = ScriptedEcs::start(Play::Hangs).with_service("shop", rendered(&v1), "shop", 2);
    let child = command(
        &[
            "ecs",
            "deploy",
            "-f",
            v2.to_str().unwrap(),
            "--interval",
            "100ms",
        ],
        &ecs,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    testkit::wait_until("deploy to start waiting", Duration::from_secs(30), || {
        ecs.calls()
            .iter()
            .filter(|c| *c == "DescribeServices")
            .count()
            >= 3
    });
    let calls_before = ecs.calls().len();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped waiting; deployment ecs-svc/2 goes on"),
        "{stderr}"
    );
    let after: Vec<String> = ecs.calls()[calls_before..].to_vec();
    assert!(
        after.iter().all(|c| c == "DescribeServices"),
        "nothing but looks after Ctrl-C: {after:?}"
    );
}
