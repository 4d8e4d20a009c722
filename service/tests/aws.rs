//! The AWS half of the pipeline, end to end, with real programs on 127.0.0.1: two service
//! processes (`/chain`) → the collector running the configuration rendered from an example
//! (with the AWS components) → Jaeger, X-Ray and moto's CloudWatch Logs. Only the endpoints
//! are changed: Jaeger's, X-Ray's and CloudWatch's point at the local programs.
//!
//! Two X-Ray paths: `manifests/examples/aws.yaml` sends spans over OTLP signed with SigV4, to
//! `testkit::xray_otlp::Verifier` (no emulator implements X-Ray's OTLP endpoint; it checks each
//! signature as AWS does), with each way the collector gets its identity (static keys, an
//! assumed role, IRSA's web identity, the ECS task role); `aws-xray-legacy.yaml` uses the
//! `awsxray` exporter, to moto's X-Ray.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Service;
use serde_json::Value;
use testkit::collector::{Collector, Options};
use testkit::jaeger::Jaeger;
use testkit::moto::{self, Moto};
use testkit::otlp::{KIND_CLIENT, KIND_SERVER, STATUS_ERROR, Span};
use testkit::wait_until;
use testkit::xray_otlp::{self, CredentialsEndpoint, Key, Verifier};
use tracedapp_api::TracedApp;
use tracedapp_api::spec::XrayProtocol;

const WAIT: Duration = Duration::from_secs(60);
/// The examples' region (X-Ray and CloudWatch).
const REGION: &str = "eu-west-1";
/// X-Ray over OTLP (the default).
const OTLP: &str = "aws.yaml";
/// The legacy `awsxray` exporter.
const LEGACY: &str = "aws-xray-legacy.yaml";

/// An AWS example (`manifests/examples/<file>`) with its endpoints pointed at `jaeger` and
/// `moto`.
fn example(file: &str, jaeger: &Jaeger, moto: &Moto) -> TracedApp {
    let path = format!(
        "{}/../manifests/examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut app = tracedapp_api::load::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ex = &mut app.spec.exporters;
    let j = ex.jaeger.as_mut().expect("the example exports to Jaeger");
    j.endpoint = jaeger.otlp_grpc.clone();
    ex.xray.as_mut().expect("and to X-Ray").endpoint = Some(moto.url.clone());
    ex.cloudwatch_metrics
        .as_mut()
        .expect("and to CloudWatch")
        .endpoint = Some(moto.url.clone());
    app
}

/// Every segment and subsegment of an X-Ray trace, flattened: (document, parent segment id).
fn segments(trace: &Value) -> Vec<Value> {
    fn walk(doc: &Value, out: &mut Vec<Value>) {
        out.push(doc.clone());
        for sub in doc["subsegments"].as_array().into_iter().flatten() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    for s in trace["Segments"].as_array().into_iter().flatten() {
        walk(&s["Document"], &mut out);
    }
    out
}

/// The trace ids (W3C hex) of the Jaeger traces of `service`.
fn jaeger_ids(jaeger: &Jaeger, service: &str) -> BTreeSet<String> {
    jaeger
        .traces(service, 1000)
        .iter()
        .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
        .collect()
}

/// N `/chain` requests, one 404 and one 502: the same traces in Jaeger and X-Ray (ids equal
/// after conversion); X-Ray's segments carry the service name, the HTTP fields, the
/// downstream call as a `remote` subsegment, `error` for the 4xx and `fault` for the 5xx, and
/// exactly the annotations the spec indexes (keys X-Ray accepts). CloudWatch Logs holds EMF
/// records for `app.requests` and `app.request.duration` by endpoint, without rollup.
#[test]
fn traces_reach_jaeger_and_xray_and_metrics_reach_cloudwatch() {
    let moto = Moto::start();
    let jaeger = Jaeger::start();
    let app = example(LEGACY, &jaeger, &moto);
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env: moto::credentials(),
            ..Default::default()
        },
    );
    let service = app.spec.service_name.clone().unwrap();
    let backend_name = format!("{service}-backend");
    let mut backend = Service::start(
        &collector.otlp_grpc_url,
        &[
            ("OTEL_SERVICE_NAME", &backend_name),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
        &[],
    );
    let front = Service::start(
        &collector.otlp_grpc_url,
        &[
            ("OTEL_SERVICE_NAME", &service),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
        &["--downstream-url", &backend.url("/")],
    );

    const N: usize = 5;
    for _ in 0..N {
        assert_eq!(testkit::http::status(&front.url("/chain")), 200);
    }
    assert_eq!(testkit::http::status(&front.url("/no-such-page")), 404);
    backend.terminate(Duration::from_secs(10));
    assert_eq!(
        testkit::http::status(&front.url("/chain")),
        502,
        "the downstream is gone"
    );
    let expected = N + 2;

    // The same traces in Jaeger and in X-Ray.
    let mut xray = Vec::new();
    wait_until("every trace in Jaeger and X-Ray", WAIT, || {
        xray = moto.xray_traces(REGION);
        jaeger_ids(&jaeger, &service).len() == expected && xray.len() == expected
    });
    let xray_ids: BTreeSet<String> = xray
        .iter()
        .map(|t| moto::w3c_trace_id(t["Id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        xray_ids,
        jaeger_ids(&jaeger, &service),
        "trace ids match after conversion"
    );

    let all: Vec<(Value, Vec<Value>)> = xray.iter().map(|t| (t.clone(), segments(t))).collect();
    let root = |segs: &[Value], path: &str| {
        segs.iter()
            .find(|s| {
                s["name"] == service.as_str()
                    && s["http"]["request"]["url"]
                        .as_str()
                        .is_some_and(|u| u.ends_with(path))
            })
            .cloned()
    };
    // /chain: the segment, its remote subsegment, and the backend's segment under it.
    let chain = all
        .iter()
        .find_map(|(trace, segs)| {
            let r = root(segs, "/chain")?;
            (r["http"]["response"]["status"] == 200).then(|| (r, segs.clone(), trace.clone()))
        })
        .expect("a /chain trace in X-Ray");
    let (chain_root, segs, chain_trace) = chain;
    // Drawn from X-Ray's segments as from Jaeger's spans: the backend under the remote call.
    traceview::record("chain.xray.json", &chain_trace);
    let drawing = traceview::draw(
        "x",
        &traceview::xray::spans(&chain_trace),
        &traceview::Style::default(),
    );
    let depth = |needle: &str| {
        drawing
            .iter()
            .find(|l| l.contains(needle))
            .map(|l| l.len() - l.trim_start().len())
            .unwrap_or_else(|| panic!("{needle} in {drawing:#?}"))
    };
    assert_eq!(depth(&format!("{service}: GET /chain")), 0, "{drawing:#?}");
    assert!(
        depth(&format!("{backend_name}: GET /")) >= 4,
        "{drawing:#?}"
    );
    assert_eq!(chain_root["http"]["request"]["method"], "GET");
    // The CLIENT span is a subsegment document of its own, under the root segment.
    let remote = segs
        .iter()
        .find(|s| s["namespace"] == "remote" && s["parent_id"] == chain_root["id"])
        .unwrap_or_else(|| panic!("a remote subsegment under {}: {segs:#?}", chain_root["id"]));
    let downstream = segs
        .iter()
        .find(|s| s["name"] == backend_name.as_str())
        .unwrap_or_else(|| panic!("the backend's segment: {segs:#?}"));
    assert_eq!(
        downstream["parent_id"], remote["id"],
        "the backend answers the remote call"
    );
    // Annotations: what the spec indexes, with keys X-Ray accepts; nothing else.
    let annotations = chain_root["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let keys: BTreeSet<&str> = annotations.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["http_route", "http_response_status_code"]),
        "{chain_root:#}"
    );
    assert_eq!(annotations["http_route"], "/chain");

    let status_of = |path: &str, code: u64| {
        all.iter()
            .find_map(|(_, segs)| {
                root(segs, path).filter(|r| r["http"]["response"]["status"] == code)
            })
            .unwrap_or_else(|| panic!("a {path} segment with status {code}"))
    };
    let not_found = status_of("/no-such-page", 404);
    assert_eq!(not_found["error"], true, "4xx is an error: {not_found:#}");
    assert_ne!(not_found["fault"], true);
    let bad_gateway = status_of("/chain", 502);
    assert_eq!(
        bad_gateway["fault"], true,
        "5xx is a fault: {bad_gateway:#}"
    );

    // CloudWatch: EMF records by endpoint, each metric under exactly one dimension set.
    let cw = app.spec.exporters.cloudwatch_metrics.as_ref().unwrap();
    let group = cw.log_group.clone().unwrap();
    let mut records: Vec<Value> = Vec::new();
    wait_until(
        "EMF records for app.requests and app.request.duration",
        WAIT,
        || {
            records = moto
                .log_events(REGION, &group)
                .iter()
                .filter_map(|(_, m)| serde_json::from_str(m).ok())
                .collect();
            ["app.requests", "app.request.duration"].iter().all(|name| {
                records
                    .iter()
                    .any(|r| r.get(*name).is_some() && r["endpoint"] == "/chain")
            })
        },
    );
    for name in ["app.requests", "app.request.duration"] {
        for r in records.iter().filter(|r| r.get(name).is_some()) {
            let directives = r["_aws"]["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(directives.len(), 1, "{r:#}");
            assert_eq!(directives[0]["Namespace"], cw.namespace.as_str());
            // One dimension set (no rollup): the metric's attribute, and the instrumentation
            // scope, which awsemf always adds as `OTelLib`.
            let sets = directives[0]["Dimensions"].as_array().unwrap();
            assert_eq!(sets.len(), 1, "{name}: one dimension set: {r:#}");
            let dims: BTreeSet<&str> = sets[0]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                dims,
                BTreeSet::from(["endpoint", "OTelLib"]),
                "{name}: {r:#}"
            );
        }
    }
    drop(front);
}

/// The seed's legacy path: an app using the Python X-Ray SDK sends segments over UDP, as to
/// the X-Ray daemon, to the collector's `awsxray` receiver; they reach X-Ray and Jaeger.
#[test]
fn legacy_xray_sdk_segments_reach_xray_and_jaeger() {
    let moto = Moto::start();
    let jaeger = Jaeger::start();
    let app = example(LEGACY, &jaeger, &moto);
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env: moto::credentials(),
            ..Default::default()
        },
    );
    let daemon = collector
        .xray_udp
        .clone()
        .expect("the example has xrayReceiver");
    let script = r#"
import sys
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(daemon_address=sys.argv[1], sampling=False, context_missing="LOG_ERROR")
for i in range(3):
    segment = xray_recorder.begin_segment("legacy-app")
    segment.put_http_meta("method", "GET")
    segment.put_http_meta("url", "http://legacy/orders/%d" % i)
    with xray_recorder.in_subsegment("lookup") as sub:
        sub.put_annotation("order", i)
    segment.put_http_meta("status", 200)
    xray_recorder.end_segment()
"#;
    let out = std::process::Command::new(testkit::tools::moto_python())
        .args(["-c", script, &daemon])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the legacy app ran: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut xray = Vec::new();
    wait_until("3 legacy traces in X-Ray and Jaeger", WAIT, || {
        xray = moto
            .xray_traces(REGION)
            .into_iter()
            .filter(|t| segments(t).iter().any(|s| s["name"] == "legacy-app"))
            .collect();
        xray.len() == 3 && jaeger_ids(&jaeger, "legacy-app").len() == 3
    });
    let ids: BTreeSet<String> = xray
        .iter()
        .map(|t| moto::w3c_trace_id(t["Id"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, jaeger_ids(&jaeger, "legacy-app"));
    assert!(
        xray.iter()
            .all(|t| segments(t).iter().any(|s| s["name"] == "lookup")),
        "the subsegments came along"
    );
}

/// ECS wiring, for real: the collector started exactly as the rendered task definition's
/// collector container starts (its command, the configuration in the environment variable the
/// task definition sets), and the app with the app container's environment. Its spans reach
/// moto's X-Ray. The container's ports are fixed (4317, 4318, 8889, 13133, 2000 on
/// 127.0.0.1), as in a task's network namespace.
#[test]
fn the_ecs_collector_container_runs_as_the_task_definition_says() {
    let moto = Moto::start();
    let jaeger = Jaeger::start();
    let app = example(LEGACY, &jaeger, &moto);
    let td = tracedapp_ecs::task_definition(&app);
    let container = |name: &str| {
        td.container_definitions
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} container"))
    };
    let collector = container(tracedapp_api::sidecar::COLLECTOR_CONTAINER);
    let dir = testkit::TempDir::new("ecs-collector");
    let mut cmd = std::process::Command::new(testkit::tools::otelcol());
    cmd.args(&collector.command)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for kv in &collector.environment {
        cmd.env(&kv.name, &kv.value);
    }
    for (k, v) in moto::CREDENTIALS {
        cmd.env(k, v);
    }
    let mut process = testkit::Process::start("otelcol (ECS)", cmd, dir.path().join("otelcol.log"));
    let otlp = tracedapp_api::collector::OTLP_GRPC_PORT as u16;
    wait_until(
        "the collector to listen on the task's OTLP port",
        WAIT,
        || {
            process.assert_running();
            testkit::process::listening(otlp)
        },
    );

    // The app container's own environment says where to send OTLP (localhost:4317).
    let app_container = container(tracedapp_api::sidecar::APP_CONTAINER);
    let env: Vec<(&str, &str)> = app_container
        .environment
        .iter()
        .filter(|kv| kv.name.starts_with("OTEL_"))
        .map(|kv| (kv.name.as_str(), kv.value.as_str()))
        .collect();
    let endpoint = env
        .iter()
        .find(|(k, _)| *k == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|(_, v)| (*v).to_owned())
        .expect("the app container has an OTLP endpoint");
    let service = Service::start(&endpoint, &env, &[]);
    for _ in 0..3 {
        assert_eq!(testkit::http::status(&service.url("/")), 200);
    }
    let name = app.spec.service_name.clone().unwrap();
    wait_until("the app's 3 traces in X-Ray", WAIT, || {
        moto.xray_traces(REGION)
            .iter()
            .filter(|t| segments(t).iter().any(|s| s["name"] == name.as_str()))
            .count()
            == 3
    });
    process.assert_running();
}

// ---- X-Ray over OTLP ------------------------------------------------------------------------

/// A stand-in for X-Ray's OTLP endpoint in the examples' region, knowing `keys` (and moto's
/// temporary keys if `moto` is given).
fn xray_otlp(keys: Vec<Key>, moto: Option<&Moto>) -> Verifier {
    Verifier::start(xray_otlp::Options {
        region: REGION.to_owned(),
        keys,
        moto_url: moto.map(|m| m.url.clone()),
    })
}

/// The OTLP example with X-Ray at `xray`, and neither Jaeger nor CloudWatch (for the tests
/// about identity, where only X-Ray matters).
fn xray_only(xray: &Verifier, role_arn: Option<&str>) -> TracedApp {
    let path = format!(
        "{}/../manifests/examples/{OTLP}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut app = tracedapp_api::load::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ex = &mut app.spec.exporters;
    ex.jaeger = None;
    ex.cloudwatch_metrics = None;
    let x = ex.xray.as_mut().expect("the example exports to X-Ray");
    assert_eq!(x.protocol, XrayProtocol::Otlp, "the example uses OTLP");
    x.endpoint = Some(xray.endpoint());
    x.role_arn = role_arn.map(str::to_owned);
    app
}

/// The W3C trace ids of the server spans of `service` among `spans`.
fn server_traces(spans: &[Span], service: &str) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| s.service == service && s.kind == KIND_SERVER)
        .map(|s| s.trace_id.clone())
        .collect()
}

/// Sends three requests to a service behind `collector` and waits until X-Ray (`xray`) holds
/// their three traces; the access keys that signed what it accepted.
fn three_traces_arrive(collector: &Collector, xray: &Verifier) -> BTreeSet<String> {
    let name = "identity-check";
    let service = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", name)],
        &[],
    );
    for _ in 0..3 {
        assert_eq!(testkit::http::status(&service.url("/")), 200);
    }
    wait_until("3 traces signed and accepted", WAIT, || {
        server_traces(&xray.spans(), name).len() == 3
    });
    let outcomes = xray.outcomes();
    assert!(
        outcomes.iter().all(|o| o.status == 200),
        "every request was accepted: {outcomes:?}"
    );
    outcomes
        .iter()
        .filter_map(|o| o.access_key_id.clone())
        .collect()
}

/// N `/chain` requests, one 404 and one 502, through the collector running the rendered OTLP
/// example with static keys (a Secret's, on Kubernetes): every request X-Ray receives is
/// signed with that key for X-Ray in the spec's region, and the traces are those Jaeger has,
/// complete — names, kinds, HTTP attributes, the parent links across the two services, the
/// resource attributes — with 5xx marked as errors. The legacy exporter's feature gate is not
/// passed.
#[test]
fn traces_reach_xray_over_otlp_signed_and_complete() {
    let moto = Moto::start();
    let jaeger = Jaeger::start();
    let key = Key::new("AKIDSTATICTRACEDAPP", "a-secret-only-this-test-knows");
    let xray = xray_otlp(vec![key.clone()], None);
    let mut app = example(OTLP, &jaeger, &moto);
    app.spec.exporters.xray.as_mut().unwrap().endpoint = Some(xray.endpoint());
    assert!(tracedapp_api::collector::command_flags(&app.spec).is_empty());
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env: key.env(),
            ..Default::default()
        },
    );
    let service = app.spec.service_name.clone().unwrap();
    let backend_name = format!("{service}-backend");
    let mut backend = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", &backend_name)],
        &[],
    );
    let front = Service::start(
        &collector.otlp_grpc_url,
        &[
            ("OTEL_SERVICE_NAME", &service),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod",
            ),
        ],
        &["--downstream-url", &backend.url("/")],
    );
    const N: usize = 5;
    for _ in 0..N {
        assert_eq!(testkit::http::status(&front.url("/chain")), 200);
    }
    assert_eq!(testkit::http::status(&front.url("/no-such-page")), 404);
    backend.terminate(Duration::from_secs(10));
    assert_eq!(testkit::http::status(&front.url("/chain")), 502);
    let expected = N + 2;

    let mut spans = Vec::new();
    wait_until("every trace in Jaeger and X-Ray", WAIT, || {
        spans = xray.spans();
        jaeger_ids(&jaeger, &service).len() == expected
            && server_traces(&spans, &service).len() == expected
    });
    assert_eq!(
        server_traces(&spans, &service),
        jaeger_ids(&jaeger, &service),
        "the same traces, W3C ids unchanged"
    );
    let outcomes = xray.outcomes();
    assert!(!outcomes.is_empty());
    for o in &outcomes {
        assert_eq!(
            (o.status, o.access_key_id.as_deref()),
            (200, Some(key.access_key_id.as_str())),
            "signed with the Secret's key: {outcomes:?}"
        );
    }

    // A /chain trace: front SERVER → front CLIENT → backend SERVER, linked by parent ids.
    let root = spans
        .iter()
        .find(|s| {
            s.service == service
                && s.kind == KIND_SERVER
                && s.attrs.get("http.route").map(String::as_str) == Some("/chain")
                && s.attrs.get("http.response.status_code").map(String::as_str) == Some("200")
        })
        .unwrap_or_else(|| panic!("a /chain server span: {spans:#?}"));
    assert_eq!(root.name, "GET /chain");
    assert!(root.parent_span_id.is_empty(), "the root: {root:?}");
    assert_eq!(root.attrs["http.request.method"], "GET");
    assert_ne!(root.status, STATUS_ERROR);
    assert_eq!(root.resource["service.name"], service);
    assert_eq!(root.resource["deployment.environment.name"], "prod");
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let client = in_trace
        .iter()
        .find(|s| s.kind == KIND_CLIENT && s.parent_span_id == root.span_id)
        .unwrap_or_else(|| panic!("the downstream call under the root: {in_trace:#?}"));
    assert_eq!(client.service, service);
    let downstream = in_trace
        .iter()
        .find(|s| s.service == backend_name && s.kind == KIND_SERVER)
        .unwrap_or_else(|| panic!("the backend's span: {in_trace:#?}"));
    assert_eq!(
        downstream.parent_span_id, client.span_id,
        "the backend answers the call"
    );
    assert_eq!(downstream.resource["service.name"], backend_name);

    let status_of = |route_or_path: &str, code: &str| {
        spans
            .iter()
            .find(|s| {
                s.service == service
                    && s.kind == KIND_SERVER
                    && s.attrs.get("http.response.status_code").map(String::as_str) == Some(code)
                    && s.name.contains(route_or_path)
            })
            .unwrap_or_else(|| panic!("a {code} server span for {route_or_path}: {spans:#?}"))
    };
    assert_eq!(
        status_of("/chain", "502").status,
        STATUS_ERROR,
        "5xx is an error"
    );
    assert_ne!(
        status_of("GET", "404").status,
        STATUS_ERROR,
        "4xx is the client's"
    );
    drop(front);
}

/// With `roleArn`, the collector assumes the role through STS (moto's) with its own identity,
/// and signs with the temporary key STS issued for that role, session token included: X-Ray
/// (which does not know the collector's own key) accepts every request.
#[test]
fn a_role_is_assumed_through_sts_and_its_temporary_key_signs() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/xray-writer";
    let moto = Moto::start();
    let xray = xray_otlp(Vec::new(), Some(&moto));
    let app = xray_only(&xray, Some(ROLE));
    let mut env = moto::credentials();
    env.push(("AWS_ENDPOINT_URL_STS".to_owned(), moto.url.clone()));
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env,
            ..Default::default()
        },
    );
    let signers = three_traces_arrive(&collector, &xray);
    let roles = moto.assumed_roles();
    let issued: BTreeSet<String> = roles
        .iter()
        .filter(|r| r["role_arn"] == ROLE)
        .filter_map(|r| r["access_key_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !signers.is_empty() && signers.is_subset(&issued),
        "signed by {signers:?}, keys STS issued for {ROLE}: {roles:#?}"
    );
    assert!(!signers.contains("testing"), "not the collector's own key");
}

/// IRSA (and any web identity): the projected token file and role in the environment, as EKS
/// injects them; the AWS SDK in the collector trades the token with STS (moto's) for the
/// role's temporary key, which signs.
#[test]
fn irsa_web_identity_signs_through_sts() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/payments-xray";
    let moto = Moto::start();
    let xray = xray_otlp(Vec::new(), Some(&moto));
    let app = xray_only(&xray, None);
    let dir = testkit::TempDir::new("irsa");
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.a-projected-service-account-token.sig",
    )
    .unwrap();
    let env = vec![
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
            token.display().to_string(),
        ),
        ("AWS_ROLE_ARN".to_owned(), ROLE.to_owned()),
        ("AWS_ENDPOINT_URL_STS".to_owned(), moto.url.clone()),
    ];
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env,
            ..Default::default()
        },
    );
    let signers = three_traces_arrive(&collector, &xray);
    let issued: BTreeSet<String> = moto
        .assumed_roles()
        .iter()
        .filter(|r| r["role_arn"] == ROLE)
        .filter_map(|r| r["access_key_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !signers.is_empty() && signers.is_subset(&issued),
        "signed by {signers:?}, issued for the IRSA role: {issued:?}"
    );
}

/// ECS: the collector container as the task definition rendered from the OTLP example runs it
/// (its configuration from the environment variable the task definition sets, its flags), with
/// the task role's credentials from the container credentials endpoint, as the ECS agent
/// serves them: that temporary key signs.
#[test]
fn the_ecs_task_role_signs_for_the_collector_container() {
    let task_key = Key {
        access_key_id: "ASIATASKROLE0001".to_owned(),
        secret_access_key: "task-role-secret".to_owned(),
        session_token: Some("task-role-session-token".to_owned()),
    };
    let agent = CredentialsEndpoint::start(task_key.clone(), "ecs-agent-token");
    let xray = xray_otlp(vec![task_key.clone()], None);
    let app = xray_only(&xray, None);
    let td = tracedapp_ecs::task_definition(&app);
    let container = td
        .container_definitions
        .iter()
        .find(|c| c.name == tracedapp_api::sidecar::COLLECTOR_CONTAINER)
        .expect("a collector container");
    let (var, flags) = container
        .command
        .split_first()
        .expect("the collector's command");
    let var = var
        .strip_prefix("--config=env:")
        .expect("the configuration comes from the environment");
    let config = &container
        .environment
        .iter()
        .find(|kv| kv.name == var)
        .expect("the task definition sets it")
        .value;
    assert!(config.contains("sigv4auth"), "{config}");
    let collector = Collector::start_with(
        config,
        &Options {
            flags: flags.to_vec(),
            env: agent.env(),
            ..Default::default()
        },
    );
    let signers = three_traces_arrive(&collector, &xray);
    assert_eq!(signers, BTreeSet::from([task_key.access_key_id.clone()]));
    assert!(agent.served() >= 1, "the key came from the agent");
}

/// A wrong secret: X-Ray refuses every request (403, signature mismatch), nothing is
/// accepted, and the collector says so in its log, naming the X-Ray exporter.
#[test]
fn wrong_credentials_are_refused_and_the_collector_says_so() {
    let real = Key::new("AKIDSTATICTRACEDAPP", "the-real-secret");
    let xray = xray_otlp(vec![real.clone()], None);
    let app = xray_only(&xray, None);
    let wrong = Key::new(&real.access_key_id, "a-stale-secret");
    let collector = Collector::start_for(
        &app.spec,
        &Options {
            env: wrong.env(),
            ..Default::default()
        },
    );
    let service = Service::start(
        &collector.otlp_grpc_url,
        &[("OTEL_SERVICE_NAME", "wrong-key")],
        &[],
    );
    for _ in 0..3 {
        assert_eq!(testkit::http::status(&service.url("/")), 200);
    }
    wait_until("the collector to report the refusal", WAIT, || {
        let log = collector.log();
        log.contains("otlp_http/xray") && log.contains("403")
    });
    let outcomes = xray.outcomes();
    assert!(!outcomes.is_empty());
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == 403 && o.error == "InvalidSignatureException"),
        "{outcomes:?}"
    );
    assert!(xray.spans().is_empty(), "nothing accepted");
}
