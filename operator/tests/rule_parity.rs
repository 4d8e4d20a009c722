//! One source of rules, proven: for a generated corpus of TracedApps on and just past every
//! boundary, the CLI's loader (`tracedapp_api::load`) accepts exactly what a real
//! kube-apiserver with `manifests/crd.yaml` accepts (a server-side dry run, with strict field
//! validation as `kubectl apply` does), and rejects exactly what it rejects.
//!
//! The corpus: every single boundary mutation of a valid base spec on its own, then
//! property-based combinations of two or three (proptest). Values are JSON, as the API server
//! receives them; YAML-only spellings (`.nan`, duplicate keys) are the loader's alone and are
//! tested in `api/src/load.rs`.

use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::discovery::ApiResource;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use testkit::kube::ControlPlane;

/// A valid TracedApp, the starting point of every case.
fn base() -> Value {
    json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "metadata": {"name": "parity", "namespace": "demo"},
        "spec": {
            "app": {"image": "app:1"},
            "exporters": {"jaeger": {"endpoint": "jaeger:4317", "tls": {"insecure": true}}}
        }
    })
}

fn chars(c: &str, n: usize) -> String {
    c.repeat(n)
}

/// `(JSON pointer, value)`: each sets one field to a value on, or just past, a boundary.
fn mutations() -> Vec<(&'static str, Value)> {
    // The collector container's default memory limit (MiB).
    let limit = tracedapp_api::resources::collector_memory_limit_mib(
        tracedapp_api::spec::CollectorSpec::default().memory_limit_mib,
    );
    let role = "arn:aws:iam::123456789012:role/x";
    let env = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
            .collect()
    };
    let attrs = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let indexed = |n: usize| -> Value { (0..n).map(|i| json!(format!("a{i}"))).collect() };
    let mut m: Vec<(&'static str, Value)> = vec![];
    let mut add = |path: &'static str, values: Vec<Value>| {
        m.extend(values.into_iter().map(|v| (path, v)));
    };
    add(
        "/metadata/name",
        vec![
            json!("a"),
            json!("a-b"),
            json!("shop.v2"),
            json!("Shop"),
            json!("-a"),
            json!("a-"),
            json!(chars("a", 63)),
            json!(chars("a", 64)),
            json!("a_b"),
            json!("é"),
        ],
    );
    add(
        "/spec/app/port",
        vec![
            json!(0),
            json!(1),
            json!(2000),
            json!(3000),
            json!(4317),
            json!(4318),
            json!(8888),
            json!(8889),
            json!(13133),
            json!(65535),
            json!(65536),
            json!(-1),
            json!("3000"),
            json!(3000.5),
            json!(10_000_000_000i64),
        ],
    );
    add(
        "/spec/app/replicas",
        vec![json!(-1), json!(0), json!(1000), json!(1001)],
    );
    add(
        "/spec/app/image",
        vec![
            json!(""),
            json!(" "),
            json!("a b"),
            json!("app:1\n"),
            json!("é:1"),
            json!(chars("x", 1024)),
            json!(chars("x", 1025)),
            json!("\t"),
        ],
    );
    add(
        "/spec/app/healthPath",
        vec![
            json!("/"),
            json!("health"),
            json!("/a b"),
            json!("/é"),
            json!(format!("/{}", chars("x", 1023))),
            json!(format!("/{}", chars("x", 1024))),
        ],
    );
    add(
        "/spec/app/env",
        vec![
            env(100),
            env(101),
            json!([{"name": "1A", "value": "x"}]),
            json!([{"name": "A-B", "value": "x"}]),
            json!([{"name": "PORT", "value": "1"}]),
            json!([{"name": "OTEL_SERVICE_NAME", "value": "x"}]),
            json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
            json!([{"name": "A", "value": "$(B)"}]),
            json!([{"name": "A", "value": chars("v", 32768)}]),
            json!([{"name": "A", "value": chars("v", 32769)}]),
        ],
    );
    add(
        "/spec/app/resources",
        vec![
            json!({"requests": {"cpu": "inf"}}),
            json!({"requests": {"cpu": "1."}}),
            json!({"requests": {"cpu": "0"}}),
            json!({"requests": {"cpu": "1e3"}}),
            json!({"requests": {"cpu": "01"}}),
            json!({"requests": {"cpu": "0.5"}}),
            json!({"requests": {"cpu": "250m"}}),
            json!({"requests": {"memory": "1Gi"}}),
            json!({"requests": {"memory": "256Mi"}}),
            json!({"requests": {"memory": "257Mi"}}),
            json!({"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}),
            json!({"limits": {"cpu": "50m"}}),
            json!({"limits": {"cpu": "100m"}}),
            json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
            json!({"requests": {"memory": "1GB"}}),
        ],
    );
    add(
        "/spec/app/progressDeadlineSeconds",
        vec![json!(0), json!(1), json!(86400), json!(86401)],
    );
    add(
        "/spec/serviceName",
        vec![
            json!(""),
            json!(" "),
            json!(" a"),
            json!("a "),
            json!("shop"),
            json!(chars("x", 253)),
            json!(chars("x", 254)),
            json!(chars("é", 253)),
        ],
    );
    add(
        "/spec/resourceAttributes",
        vec![
            json!({"a,b": "c"}),
            json!({"a=b": "c"}),
            json!({"a b": "c"}),
            json!({"service.name": "x"}),
            json!({"k8s.pod.name": "x"}),
            json!({"deployment.environment.name": "prod"}),
            json!({"k": chars("v", 255)}),
            json!({"k": chars("v", 256)}),
            json!({"k": chars("é", 255)}),
            json!({"": "x"}),
            attrs(64),
            attrs(65),
        ],
    );
    add(
        "/spec/sampling",
        vec![
            json!({"ratio": -0.1}),
            json!({"ratio": 0}),
            json!({"ratio": 1}),
            json!({"ratio": 1.0001}),
            json!({"ratio": "1"}),
            json!({"collectorPercentage": 0}),
            json!({"collectorPercentage": 100}),
            json!({"collectorPercentage": 100.5}),
        ],
    );
    add(
        "/spec/collector",
        vec![
            json!({"memoryLimitMiB": 31}),
            json!({"memoryLimitMiB": 32, "spikeLimitMiB": 8}),
            json!({"memoryLimitMiB": 65536}),
            json!({"memoryLimitMiB": 65537}),
            json!({"spikeLimitMiB": 511}),
            json!({"spikeLimitMiB": 512}),
            json!({"batch": {"timeout": "0s"}}),
            json!({"batch": {"timeout": "1ms"}}),
            json!({"batch": {"timeout": "10"}}),
            json!({"batch": {"timeout": "1h"}}),
            json!({"batch": {"timeout": "999999s"}}),
            json!({"batch": {"timeout": "1000000s"}}),
            json!({"batch": {"sendBatchSize": 0}}),
            json!({"batch": {"sendBatchSize": 100000}}),
            json!({"batch": {"sendBatchSize": 100001}}),
            json!({"batch": {"sendBatchMaxSize": 255}}),
            json!({"batch": {"sendBatchMaxSize": 0}}),
            json!({"xrayReceiver": true}),
            json!({"image": ""}),
            json!({"image": "a b"}),
            json!({"resources": {"requests": {"memory": "1Gi"}}}),
            // On and just past the default memory limit.
            json!({"resources": {"requests": {"memory": format!("{limit}Mi")}}}),
            json!({"resources": {"requests": {"memory": format!("{}Mi", limit + 1)}}}),
            json!({"distribution": "adot"}),
            json!({"distribution": "ADOT"}),
        ],
    );
    add(
        "/spec/exporters/jaeger/endpoint",
        vec![
            json!("j:1"),
            json!("j:0"),
            json!("j:65535"),
            json!("j:65536"),
            json!("j:99999"),
            json!("http://j:4317"),
            json!("[::1]:4317"),
            json!("10.0.0.1:4317"),
            json!("-j:4317"),
            json!("j"),
            json!("j:"),
        ],
    );
    add(
        "/spec/exporters/jaeger/tls/caFile",
        vec![json!("/ca.pem"), json!("ca.pem"), json!("/a b")],
    );
    add(
        "/spec/exporters/xray",
        vec![
            json!({"region": "us-east-1"}),
            json!({"enabled": true}),
            json!({"enabled": false}),
            json!({"region": "useast1"}),
            json!({"region": "us-gov-west-1"}),
            json!({"region": "us-east-1", "roleArn": role}),
            json!({"region": "us-east-1", "roleArn": "arn:aws:iam::12:role/x"}),
            json!({"region": "us-east-1", "roleArn": "arn:aws-cn:iam::123456789012:role/a/b"}),
            json!({"region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/${env:X}"}),
            json!({"region": "us-east-1", "endpoint": "http://x"}),
            json!({"region": "us-east-1", "endpoint": "ftp://x"}),
            json!({"region": "us-east-1", "endpoint": "http://a b"}),
            json!({"region": "us-east-1", "indexedAttributes": indexed(50)}),
            json!({"region": "us-east-1", "indexedAttributes": indexed(51)}),
            json!({"region": "us-east-1", "indexedAttributes": [""]}),
        ],
    );
    add(
        "/spec/exporters/prometheus",
        vec![
            json!({"port": 8889}),
            json!({"port": 3000}),
            json!({"port": 4317}),
            json!({"port": 2000}),
            json!({"port": 0}),
            json!({"port": 65536}),
        ],
    );
    add(
        "/spec/exporters/cloudwatchMetrics",
        vec![
            json!({"namespace": "N"}),
            json!({"namespace": "N", "region": "us-east-1"}),
            json!({"namespace": "AWS/x", "region": "us-east-1"}),
            json!({"namespace": " x", "region": "us-east-1"}),
            json!({"namespace": chars("n", 255), "region": "us-east-1"}),
            json!({"namespace": chars("n", 256), "region": "us-east-1"}),
            json!({"namespace": "N", "region": "us-east-1", "logGroup": "/a"}),
            json!({"namespace": "N", "region": "us-east-1", "logGroup": "a b"}),
            json!({"namespace": "N", "region": "us-east-1", "dimensionRollup": "Bogus"}),
            json!({"namespace": "N", "region": "us-east-1", "dimensionRollup": "SingleDimensionRollupOnly"}),
        ],
    );
    add(
        "/spec/aws",
        vec![
            json!({"iamRoleArn": role}),
            json!({"iamRoleArn": "arn:aws:iam::123456789012:user/x"}),
            json!({"credentialsSecret": {"name": "keys"}}),
            json!({"credentialsSecret": {"name": "Keys"}}),
            json!({"credentialsSecret": {"name": "k", "accessKeyIdKey": "a/b"}}),
        ],
    );
    add(
        "/spec/ecs",
        vec![
            json!({"cpu": "256", "memory": "512"}),
            json!({"cpu": "256", "memory": "512", "executionRoleArn": role}),
            json!({"cpu": "256", "memory": "1536", "executionRoleArn": role}),
            json!({"cpu": "256", "memory": "2048", "executionRoleArn": role}),
            json!({"cpu": "8192", "memory": "20480", "executionRoleArn": role}),
            json!({"cpu": "8192", "memory": "20000", "executionRoleArn": role}),
            json!({"cpu": "0256", "memory": "512", "launchType": "EC2"}),
            json!({"cpu": "300", "memory": "512", "launchType": "EC2"}),
            json!({"launchType": "EC2"}),
            json!({"launchType": "ec2"}),
            json!({"region": "x", "launchType": "EC2"}),
            json!({"family": "a.b", "launchType": "EC2"}),
        ],
    );
    add("/spec/exportrs", vec![json!({})]);
    // Settings that defeat each other: a container limit below the memory_limiter's room, a
    // batch larger than the limiter's working room, an ECS task smaller than the collector's.
    add(
        "/spec/collector/resources",
        vec![
            json!({"limits": {"memory": "256Mi"}}),
            json!({"limits": {"memory": "319Mi"}}),
            json!({"limits": {"memory": "320Mi"}}),
            json!({"limits": {"memory": "1Gi"}}),
            json!({"limits": {"cpu": "1"}}),
        ],
    );
    add(
        "/spec/collector/batch",
        vec![
            json!({"sendBatchSize": 100000, "sendBatchMaxSize": 100000}),
            json!({"sendBatchSize": 50000, "sendBatchMaxSize": 0}),
        ],
    );
    add(
        "/spec/collector",
        vec![
            json!({"memoryLimitMiB": 64, "spikeLimitMiB": 16, "batch": {"sendBatchSize": 60000, "sendBatchMaxSize": 0}}),
            json!({"memoryLimitMiB": 64, "spikeLimitMiB": 16, "batch": {"sendBatchSize": 40000, "sendBatchMaxSize": 0}}),
            json!({"memoryLimitMiB": 512}),
            json!({"memoryLimitMiB": 512, "resources": {"limits": {"memory": "512Mi"}}}),
        ],
    );
    add(
        "/spec/ecs/memory",
        vec![json!("256"), json!("319"), json!("320")],
    );
    // A field written as null: the API server drops it unless its schema is nullable; rules
    // that need the field then fail, defaults then apply.
    for path in [
        "/spec/exporters/jaeger",
        "/spec/exporters/xray",
        "/spec/exporters/jaeger/endpoint",
        "/spec/exporters/jaeger/tls",
        "/spec/app",
        "/spec/app/port",
        "/spec/app/image",
        "/spec/app/env",
        "/spec/app/resources",
        "/spec/app/resources/limits",
        "/spec/app/resources/limits/cpu",
        "/spec/app/progressDeadlineSeconds",
        "/spec/sampling",
        "/spec/sampling/ratio",
        "/spec/serviceName",
        "/spec/collector",
        "/spec/collector/image",
        "/spec/aws/iamRoleArn",
        "/spec/resourceAttributes",
    ] {
        add(path, vec![Value::Null]);
    }
    add(
        "/spec/exporters",
        vec![json!({"jaeger": null, "xray": {"enabled": true, "region": "us-east-1"}})],
    );
    add(
        "/spec/app/env",
        vec![json!([null]), json!([{"name": "A", "value": null}])],
    );
    m
}

/// `base()` with `changes` applied (creating parent objects as needed).
fn with(changes: &[(&str, Value)]) -> Value {
    let mut spec = base();
    for (pointer, value) in changes {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        let mut at = &mut spec;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            if at.get(part).is_none() {
                at[part] = json!({});
            }
            at = &mut at[part];
        }
        at[key] = value.clone();
    }
    spec
}

/// What the API server says to a server-side apply (dry run, strict field validation, as
/// `kubectl apply --server-side`): `Ok` accepted, `Err` its message.
async fn server(api: &Api<DynamicObject>, object: &Value) -> Result<(), String> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams {
        dry_run: true,
        force: true,
        field_manager: Some("parity".into()),
        field_validation: Some(ValidationDirective::Strict),
    };
    match api.patch(name, &params, &Patch::Apply(object)).await {
        Ok(_) => Ok(()),
        // A wrongly typed field fails server-side apply with 500 ("failed to create typed
        // patch object"): a refusal all the same.
        Err(kube::Error::Api(e)) => Err(e.message),
        Err(e) => panic!("the API server failed: {e}"),
    }
}

fn local(object: &Value) -> Result<(), String> {
    tracedapp_api::load::from_value(object)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Disagreements found, for the report.
type Findings = std::sync::Mutex<Vec<String>>;

async fn compare(
    api: &Api<DynamicObject>,
    object: &Value,
    label: &str,
    findings: &Findings,
) -> bool {
    let (ours, theirs) = (local(object), server(api, object).await);
    if ours.is_ok() == theirs.is_ok() {
        return true;
    }
    findings.lock().unwrap().push(format!(
        "{label}\n  CLI:        {}\n  API server: {}",
        ours.err().unwrap_or_else(|| "accepted".into()),
        theirs.err().unwrap_or_else(|| "accepted".into())
    ));
    false
}

#[test]
fn cli_and_api_server_accept_and_reject_the_same_specs() {
    let cp = ControlPlane::with_tracedapp_crd(&["demo"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api: Api<DynamicObject> = runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&cp.kubeconfig).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let resource = ApiResource {
            group: "tracedapp.dev".into(),
            version: "v1alpha1".into(),
            api_version: "tracedapp.dev/v1alpha1".into(),
            kind: "TracedApp".into(),
            plural: "tracedapps".into(),
        };
        Api::namespaced_with(client, "demo", &resource)
    });
    let findings = Findings::default();
    assert!(
        runtime.block_on(compare(&api, &base(), "the base spec", &findings))
            && local(&base()).is_ok(),
        "the base spec is valid on both sides"
    );

    // Every boundary value on its own.
    let all = mutations();
    let mut rejected = 0;
    for (path, value) in &all {
        let object = with(&[(path, value.clone())]);
        rejected += usize::from(local(&object).is_err());
        let label = format!("{path} = {}", short(value));
        runtime.block_on(compare(&api, &object, &label, &findings));
    }
    assert!(
        rejected > all.len() / 3 && rejected < all.len(),
        "the corpus sits on both sides of the rules ({rejected} of {} rejected)",
        all.len()
    );

    // Two or three at once, drawn by proptest.
    let mut runner = TestRunner::new(Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(0..all.len(), 2..=3);
    let outcome = runner.run(&strategy, |picks| {
        let changes: Vec<(&str, Value)> = picks
            .iter()
            .map(|&i| (all[i].0, all[i].1.clone()))
            .collect();
        let object = with(&changes);
        let label = changes
            .iter()
            .map(|(p, v)| format!("{p} = {}", short(v)))
            .collect::<Vec<_>>()
            .join(", ");
        prop_assert!(runtime.block_on(compare(&api, &object, &label, &findings)));
        Ok(())
    });
    let findings = findings.into_inner().unwrap();
    eprintln!(
        "checked {} single mutations and 160 combinations against the API server",
        all.len()
    );
    assert!(
        findings.is_empty() && outcome.is_ok(),
        "the CLI and the API server disagree on {} specs:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

/// One YAML spelling of a field's value, read by the CLI and by kubectl + the API server: the
/// same value, or a refusal by the CLI that names the field. Never a different number.
#[test]
fn yaml_scalars_mean_to_the_cli_what_they_mean_to_kubectl() {
    let cp = ControlPlane::with_tracedapp_crd(&["demo"]);
    let template = "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: yaml, namespace: demo}\nspec:\n  app:\n    image: \"app:1\"\n    replicas: REPLICAS\n    env: [{name: V, value: VALUE}]\n  sampling: {ratio: RATIO}\n  exporters: {jaeger: {endpoint: \"j:4317\", tls: {insecure: INSECURE}}}\n";
    let fields: [(&str, &str, &str, &[&str]); 4] = [
        (
            "REPLICAS",
            "/spec/app/replicas",
            "2",
            &[
                "010", "0x10", "1_0", "+1", "1e1", "08", "0o7", "0b11", "yes", "\"3\"", "3.0",
                "1_0.0", "~", "-0",
            ],
        ),
        (
            "VALUE",
            "/spec/app/env/0/value",
            "x",
            &[
                "yes",
                "on",
                "y",
                "tRue",
                "010",
                "1_000",
                "~",
                "2024-01-01",
                ".5",
                "0x1F",
                "'0x1F'",
                "\"yes\"",
                "12:30",
                "1e3",
                "NO",
            ],
        ),
        (
            "RATIO",
            "/spec/sampling/ratio",
            "1",
            &[".5", "+.5", "5e-1", "0.50", "yes", "0", "1_0e-1", "'0.5'"],
        ),
        (
            "INSECURE",
            "/spec/exporters/jaeger/tls/insecure",
            "true",
            &["yes", "on", "Y", "TRUE", "tRue", "1", "off", "n"],
        ),
    ];
    let mut findings = Vec::new();
    let mut checked = 0;
    for (placeholder, pointer, _, spellings) in fields {
        for spelling in spellings {
            let mut text = template.to_owned();
            for (p, _, default, _) in fields {
                let value = if p == placeholder { spelling } else { default };
                text = text.replace(p, value);
            }
            checked += 1;
            let ours = tracedapp_api::load::from_yaml(&text).map(|app| {
                serde_json::to_value(&app)
                    .unwrap()
                    .pointer(pointer)
                    .cloned()
            });
            let out = cp.kubectl_stdin(
                &[
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "-o=json",
                    "-f",
                    "-",
                ],
                Some(&text),
            );
            let theirs: Result<Option<Value>, String> = if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                Ok(v.pointer(pointer).cloned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            };
            let field = pointer
                .trim_start_matches('/')
                .replace('/', ".")
                .replace(".0.", "[0].");
            // Numbers compare as numbers: the API server keeps `0` where Rust writes `0.0`.
            let same = |a: &Option<Value>, b: &Option<Value>| match (a, b) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
                _ => a == b,
            };
            let verdict = match (&ours, &theirs) {
                (Ok(a), Ok(b)) if same(a, b) => None,
                (Ok(a), Ok(b)) => Some(format!("CLI reads {a:?}, kubectl sends {b:?}")),
                (Ok(a), Err(e)) => Some(format!("CLI accepts {a:?}, the API server refuses: {e}")),
                (Err(e), _) if e.to_string().contains(&field) => None,
                (Err(e), _) => Some(format!("CLI refuses without naming {field}: {e}")),
            };
            if let Some(v) = verdict {
                findings.push(format!("{placeholder} = {spelling}: {v}"));
            }
        }
    }
    eprintln!("checked {checked} YAML spellings against kubectl and the API server");
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 60 {
        format!(
            "{}… ({} chars)",
            &text[..text.floor_char_boundary(57)],
            text.chars().count()
        )
    } else {
        text
    }
}

/// What passes validation works downstream: for every spec of the corpus the rules accept,
/// rendering does not panic, the Kubernetes objects pass a server-side dry run on a real API
/// server, and (for one spec in four) the collector configuration passes the real collector's
/// `validate` with the flags a pod passes it.
#[test]
fn every_valid_spec_renders_objects_kubernetes_and_the_collector_accept() {
    let cp = ControlPlane::with_tracedapp_crd(&["demo"]);
    // STS for the configurations that assume a role (sigv4auth does while it validates).
    let moto = testkit::moto::Moto::start();
    let dir = testkit::TempDir::new("render-corpus");
    let mut failures = Vec::new();
    let mut rendered = 0;
    for (i, (path, value)) in mutations().into_iter().enumerate() {
        let Ok(app) = tracedapp_api::load::from_value(&with(&[(path, value.clone())])) else {
            continue;
        };
        let label = format!("{path} = {}", short(&value));
        let outcome = std::panic::catch_unwind(|| {
            let children = tracedapp_k8s::manifests::build(&app).list();
            let list = json!({"apiVersion": "v1", "kind": "List", "items": children});
            (list, tracedapp_api::collector::render(&app.spec).to_yaml())
        });
        let Ok((list, config)) = outcome else {
            failures.push(format!("{label}: rendering panicked"));
            continue;
        };
        rendered += 1;
        let out = cp.kubectl_stdin(
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&list.to_string()),
        );
        if !out.status.success() {
            failures.push(format!(
                "{label}: the API server refused the objects: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i % 4 == 0 {
            let file = dir.path().join("collector.yaml");
            std::fs::write(&file, &config).unwrap();
            let (ok, output) = testkit::collector::validate(
                &file,
                &tracedapp_api::collector::command_flags(&app.spec),
                &moto.url,
            );
            if !ok {
                failures.push(format!(
                    "{label}: the collector refused its config: {output}"
                ));
            }
        }
    }
    eprintln!("rendered and dry-ran {rendered} valid specs");
    assert!(rendered > 60, "the corpus holds valid specs ({rendered})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
