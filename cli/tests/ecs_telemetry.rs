//! Export health on ECS, on real components: the real collector runs the configuration of the
//! rendered task definition (its own counters pushed to itself and on to CloudWatch Logs as
//! EMF — here moto's), a real service sends it traffic, X-Ray is the SigV4-checking stand-in;
//! `tracedapp ecs status` reads the counters back and judges them as the operator does, and
//! `ecs deploy --wait-for-telemetry` waits for them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::tracedapp_aws;
use testkit::collector::{Collector, Options};
use testkit::ecs_script::{Play, ScriptedEcs};
use testkit::moto::Moto;
use testkit::xray_otlp::{Key, Verifier};

const REGION: &str = "eu-west-1";

fn key() -> Key {
    Key::new("AKIDECSTELEMETRY", "the-ecs-telemetry-secret")
}

fn write_app(dir: &Path, family: &str, xray: &str, moto: &Moto) -> PathBuf {
    let path = dir.join(format!("{family}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: {family}}}
spec:
  app: {{image: "ghcr.io/acme/shop:1.0"}}
  collector:
    batch: {{timeout: 1s}}
  exporters:
    xray: {{region: {REGION}, endpoint: "{xray}"}}
    cloudwatchMetrics: {{namespace: Acme/Shop, endpoint: "{moto}"}}
  ecs:
    region: {REGION}
    executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
    service:
      network:
        subnets: [subnet-0123456789abcdef0]
"#,
            moto = moto.url
        ),
    )
    .unwrap();
    path
}

/// The collector as the task definition of `file` runs it (its configuration and flags), with
/// the test key as the task role's, its own telemetry on.
fn collector(file: &Path) -> Collector {
    let app = tracedapp_api::load::read(file).unwrap();
    let td = tracedapp_ecs::task_definition(&app);
    let c = td
        .container_definitions
        .iter()
        .find(|c| c.name == tracedapp_api::sidecar::COLLECTOR_CONTAINER)
        .unwrap();
    let config = &c
        .environment
        .iter()
        .find(|kv| kv.name == tracedapp_ecs::build::CONFIG_ENV)
        .unwrap()
        .value;
    assert!(
        config.contains("awsemf/collector"),
        "the ECS collector reports itself"
    );
    Collector::start_with(
        config,
        &Options {
            flags: c.command[1..].to_vec(),
            env: key().env(),
            own_telemetry: true,
            ..Default::default()
        },
    )
}

/// `traced-service` sending spans to `collector`, with steady traffic until dropped.
struct Traffic {
    child: Child,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(collector: &Collector) -> Self {
        let port = testkit::free_port();
        let bin = env!("CARGO_MANIFEST_DIR").to_owned() + "/../target/debug/traced-service";
        assert!(
            Path::new(&bin).exists(),
            "{bin}: build it first (`cargo build -p traced-service`; `cargo xtask test` does)"
        );
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .env("OTEL_SERVICE_NAME", "shop")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_grpc_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        testkit::wait_until("the service to listen", Duration::from_secs(30), || {
            testkit::process::listening(port)
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = testkit::http::status(&format!("http://127.0.0.1:{port}/"));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            child,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tracedapp(moto: &Moto, ecs_endpoint: &str, args: &[&str]) -> Output {
    tracedapp_aws(args)
        .args(["--endpoint-url", ecs_endpoint])
        .env("AWS_ENDPOINT_URL", &moto.url)
        .output()
        .unwrap()
}

/// Two task families: one whose X-Ray takes the spans, one whose X-Ray refuses its key.
/// `ecs status` of each: `ExportHealthy=True` with the spans X-Ray took; `False` naming
/// `otlp_http/xray`, with the operator's words.
#[test]
fn status_reads_the_collectors_own_counters_back_and_judges_them() {
    let moto = Moto::start();
    let xray = Verifier::start(testkit::xray_otlp::Options {
        region: REGION.to_owned(),
        keys: vec![key()],
        moto_url: None,
    });
    let refusing = Verifier::start(testkit::xray_otlp::Options {
        region: REGION.to_owned(),
        keys: vec![Key::new("AKIDECSTELEMETRY", "another-secret")],
        moto_url: None,
    });
    let dir = testkit::TempDir::new("ecs-telemetry");
    let good = write_app(dir.path(), "shop-ok", &xray.endpoint(), &moto);
    let bad = write_app(dir.path(), "shop-bad", &refusing.endpoint(), &moto);
    let (c1, c2) = (collector(&good), collector(&bad));
    let (_t1, _t2) = (Traffic::start(&c1), Traffic::start(&c2));

    // No ECS service here (status says so, exit 3 for the missing cluster): the telemetry is
    // what is read.
    let status = |file: &Path| {
        let out = tracedapp(
            &moto,
            &moto.url,
            &["ecs", "status", "-f", file.to_str().unwrap()],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut last = String::new();
    testkit::wait_until(
        "ExportHealthy=True for shop-ok",
        Duration::from_secs(90),
        || {
            last = status(&good);
            last.contains("ExportHealthy=True")
        },
    );
    assert!(
        last.contains(
            "telemetry (the collectors' own counters, from /tracedapp/collector/shop-ok)"
        ),
        "{last}"
    );
    assert!(
        last.contains("every exporter delivered what it was given in the last 5 min"),
        "{last}"
    );
    let sent: u64 = last
        .lines()
        .find_map(|l| l.trim().strip_prefix("otlp_http/xray: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the X-Ray exporter's count: {last}"));
    assert!(sent > 0, "{last}");
    assert!(
        xray.spans().len() as u64 >= sent,
        "no more counted than X-Ray took: {sent} counted, {} taken",
        xray.spans().len()
    );

    testkit::wait_until(
        "ExportHealthy=False for shop-bad",
        Duration::from_secs(90),
        || {
            last = status(&bad);
            last.contains("ExportHealthy=False")
        },
    );
    assert!(last.contains("(ExportFailing): otlp_http/xray: "), "{last}");
    assert!(last.contains("spans failed in the last 5 min"), "{last}");
    assert!(xray.spans().iter().all(|s| s.service == "shop"));
    assert!(refusing.spans().is_empty());
}

/// `deploy --wait-for-telemetry`: the deployment completes (scripted ECS), then deploy waits
/// until the collectors' counters since then show X-Ray taking the spans.
#[test]
fn deploy_waits_for_the_new_tasks_spans_to_reach_every_exporter() {
    let moto = Moto::start();
    let xray = Verifier::start(testkit::xray_otlp::Options {
        region: REGION.to_owned(),
        keys: vec![key()],
        moto_url: None,
    });
    let dir = testkit::TempDir::new("ecs-telemetry-deploy");
    let file = write_app(dir.path(), "shop", &xray.endpoint(), &moto);
    let ecs = ScriptedEcs::start(Play::Completes);
    let c = collector(&file);
    let _traffic = Traffic::start(&c);
    let out = tracedapp(
        &moto,
        &ecs.url,
        &[
            "ecs",
            "deploy",
            "-f",
            file.to_str().unwrap(),
            "--interval",
            "200ms",
            "--wait-for-telemetry",
            "--timeout",
            "120s",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("deployed: service shop runs shop:1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "telemetry: the new tasks' spans reach every trace exporter (otlp_http/xray)"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("waiting for the new tasks' telemetry"),
        "{stderr}"
    );
    assert!(!xray.spans().is_empty());
}
