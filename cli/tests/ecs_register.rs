//! `tracedapp ecs register` against a real AWS API emulator: a `moto` server on 127.0.0.1.
//!
//! moto comes from `cargo xtask setup` (the README's test command runs it first); the tests find
//! it through `TRACEDAPP_MOTO_SERVER` or the cache and fail, not skip, when it is missing.

use std::path::PathBuf;
mod common;

use std::process::Output;

use common::tracedapp_aws;

use testkit::moto::Moto;

use tracedapp_ecs::register::describe_latest;

fn tracedapp(args: &[&str]) -> Output {
    tracedapp_aws(args).output().unwrap()
}

fn write_app(dir: &std::path::Path, image: &str) -> PathBuf {
    let path = dir.join("app.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: shop}}
spec:
  app: {{image: "{image}"}}
  exporters:
    jaeger: {{endpoint: "jaeger:4317", tls: {{insecure: true}}}}
    xray: {{region: us-east-1}}
  ecs:
    family: shop-task
    executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
    taskRoleArn: arn:aws:iam::123456789012:role/shop
"#
        ),
    )
    .unwrap();
    path
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "tracedapp failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Register; the same spec again registers nothing; a changed spec registers a new revision;
/// describe shows both containers and the collector's config variable.
/// An ECS client of moto in `region`, with the credentials moto accepts.
async fn ecs_client(moto: &Moto, region: &str) -> aws_sdk_ecs::Client {
    let [(_, key_id), (_, secret)] = testkit::moto::CREDENTIALS;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            key_id, secret, None, None, "moto",
        ))
        .load()
        .await;
    aws_sdk_ecs::Client::new(&config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_idempotent_against_moto() {
    let moto = Moto::start();
    let dir = tempdir();
    let file = write_app(&dir, "ghcr.io/acme/shop:1.0.0");
    let register = |file: &PathBuf| {
        tracedapp(&[
            "ecs",
            "register",
            "-f",
            file.to_str().unwrap(),
            "--endpoint-url",
            &moto.url,
        ])
    };

    let first = stdout(&register(&file));
    assert!(
        first.starts_with("registered arn:aws:ecs:us-east-1:"),
        "{first}"
    );
    assert!(first.contains("task-definition/shop-task:1"), "{first}");

    let again = stdout(&register(&file));
    assert!(
        again.starts_with("unchanged "),
        "same spec must not register: {again}"
    );
    assert!(again.contains("shop-task:1"), "{again}");

    let file = write_app(&dir, "ghcr.io/acme/shop:1.1.0");
    let changed = stdout(&register(&file));
    assert!(
        changed.starts_with("registered ") && changed.contains("shop-task:2"),
        "{changed}"
    );

    let client = ecs_client(&moto, "us-east-1").await;
    let (td, arn, revision) = describe_latest(&client, "shop-task")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revision, 2);
    assert!(arn.ends_with("shop-task:2"));
    let names: Vec<_> = td
        .container_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["otel-collector", "app"]);
    let collector = &td.container_definitions[0];
    // X-Ray over OTLP: the legacy exporter's feature gate is not passed.
    assert_eq!(
        collector.command,
        ["--config=env:TRACEDAPP_COLLECTOR_CONFIG"],
        "the command ECS stores is the one rendered"
    );
    let config = collector
        .environment
        .iter()
        .find(|e| e.name == "TRACEDAPP_COLLECTOR_CONFIG")
        .expect("the collector's config variable");
    assert!(config.value.contains("otlp_http/xray:") && config.value.contains("memory_limiter:"));
    assert_eq!(td.container_definitions[1].image, "ghcr.io/acme/shop:1.1.0");
}

/// `--dry-run` prints the task definition and calls nothing (no endpoint is reachable).
#[test]
fn dry_run_prints_and_calls_nothing() {
    let dir = tempdir();
    let file = write_app(&dir, "app:1");
    let out = tracedapp(&[
        "ecs",
        "register",
        "-f",
        file.to_str().unwrap(),
        "--dry-run",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["family"], "shop-task");
}

/// Exit codes tell bad input (2) from an AWS failure (3).
#[test]
fn exit_codes_separate_bad_input_from_aws_failures() {
    let dir = tempdir();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: x}\nspec: {app: {image: a}, exporters: {}}\n").unwrap();
    let out = tracedapp(&["ecs", "register", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml")
            && stderr.contains("spec.exporters: at least one trace exporter"),
        "{stderr}"
    );

    let missing = tracedapp(&["render", "k8s", "-f", "/nonexistent/app.yaml"]);
    assert_eq!(missing.status.code(), Some(2));

    let file = write_app(&dir, "app:1");
    // Nothing listens on port 9: the API call fails.
    let out = tracedapp(&[
        "ecs",
        "register",
        "-f",
        file.to_str().unwrap(),
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tracedapp-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `--region` decides where the task is registered and where its logs go: both in the region
/// given, whatever `spec.ecs.region` says (the flag once changed only the API call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_flag_sets_the_tasks_region_and_its_logs() {
    let moto = Moto::start();
    let dir = tempdir();
    let file = write_app(&dir, "ghcr.io/acme/shop:1.0.0");
    let out = stdout(&tracedapp(&[
        "ecs",
        "register",
        "-f",
        file.to_str().unwrap(),
        "--endpoint-url",
        &moto.url,
        "--region",
        "eu-west-1",
    ]));
    assert!(
        out.starts_with("registered arn:aws:ecs:eu-west-1:"),
        "{out}"
    );
    let client = ecs_client(&moto, "eu-west-1").await;
    let (td, _, _) = describe_latest(&client, "shop-task")
        .await
        .unwrap()
        .expect("registered in eu-west-1");
    for c in &td.container_definitions {
        assert_eq!(
            c.log_configuration.options["awslogs-region"], "eu-west-1",
            "{}",
            c.name
        );
    }
}
