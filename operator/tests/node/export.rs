//! Export health on real pods: the `ExportHealthy` condition follows Jaeger going away and
//! coming back, names `awsxray` when X-Ray cannot be reached, and a healthy app's status is
//! not rewritten while it stays healthy. X-Ray over OTLP: with keys from a Secret, every
//! `/chain` trace reaches a SigV4-checking stand-in for X-Ray's OTLP endpoint (on the node's
//! bridge), and a stale key turns `ExportHealthy` False naming the X-Ray exporter.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::cluster::{Rig, wait};
use crate::scenarios::{APP, DEMO, Load, events, service_addr};

/// Seconds between rounds, the window, and the stall time the scenario runs the operator with
/// (the chart's defaults are 30, 300 and 120: minutes for a test).
const INTERVAL: &str = "2";
const WINDOW: &str = "20";
const STALL: &str = "8";

pub fn export_health(rig: &Rig) -> Result<(), Failed> {
    rig.set_operator_values(
        &[
            &format!("exportHealth.intervalSeconds={INTERVAL}"),
            &format!("exportHealth.windowSeconds={WINDOW}"),
            &format!("exportHealth.stallSeconds={STALL}"),
        ],
        true,
    );
    let load = Load::start(service_addr(rig, DEMO, APP, 3000), "/", 20);
    let export = || rig.condition(DEMO, APP, "ExportHealthy");
    let message = || {
        rig.jsonpath(
            DEMO,
            &format!("ta/{APP}"),
            "{.status.conditions[?(@.type==\"ExportHealthy\")].message}",
        )
    };

    // Healthy: True, and then no status write while it stays so.
    wait("ExportHealthy=True", Duration::from_secs(120), || {
        export().0 == "True"
    })
    .map_err(|e| format!("{e}: {:?} {}", export(), message()))?;
    let exports = rig.jsonpath(DEMO, &format!("ta/{APP}"), "{.status.exports}");
    assert!(exports.contains("otlp_grpc/jaeger"), "{exports}");
    let table = rig.kubectl_ok(&["get", "ta", APP, "-n", DEMO]);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("EXPORT")),
        "{table}"
    );
    let before = rig.api_writes("tracedapps/status");
    std::thread::sleep(Duration::from_secs(15));
    let written = rig.api_writes("tracedapps/status") - before;
    assert_eq!(written, 0, "status writes in 15 s of healthy export");

    // Jaeger goes away: False, naming its exporter, with a warning Event.
    rig.kubectl_ok(&[
        "scale",
        "-n",
        "observability",
        "deploy/jaeger",
        "--replicas=0",
    ]);
    let failing = wait(
        "ExportHealthy=False naming otlp_grpc/jaeger",
        Duration::from_secs(90),
        || {
            export() == ("False".into(), "ExportFailing".into())
                && message().contains("otlp_grpc/jaeger")
        },
    );
    rig.kubectl_ok(&[
        "scale",
        "-n",
        "observability",
        "deploy/jaeger",
        "--replicas=1",
    ]);
    failing.map_err(|e| format!("{e}: {:?} {}", export(), message()))?;
    eprintln!("export: {}", message());
    wait("an ExportFailing event", Duration::from_secs(30), || {
        events(rig, APP)
            .iter()
            .any(|(reason, note)| reason == "ExportFailing" && note.contains("otlp_grpc/jaeger"))
    })?;

    // Jaeger is back: True again.
    rig.wait_jaeger_rolled_out();
    wait("ExportHealthy=True again", Duration::from_secs(150), || {
        export().0 == "True"
    })
    .map_err(|e| format!("{e}: {:?} {}", export(), message()))?;

    // X-Ray cannot be reached (nothing listens on that port of the pod's own loopback): False
    // naming awsxray.
    patch_app(
        rig,
        r#"{"spec":{"exporters":{"xray":{"protocol":"xray","region":"us-east-1","endpoint":"http://127.0.0.1:1"}}}}"#,
    );
    let xray_failing = wait(
        "ExportHealthy=False naming awsxray",
        Duration::from_secs(180),
        || export().0 == "False" && message().contains("awsxray"),
    )
    .map_err(|e| format!("{e}: {:?} {}", export(), message()));
    eprintln!("export: {}", message());
    let text = message();
    patch_app(rig, r#"{"spec":{"exporters":{"xray":null}}}"#);
    let (answered, _) = load.finish();
    xray_failing?;
    assert!(!text.contains("otlp_grpc/jaeger"), "Jaeger is fine: {text}");
    assert!(answered > 100, "the load ran ({answered} answered)");
    crate::scenarios::rolled_out(rig)?;
    xray_over_otlp(rig, &export, &message)
}

/// The region the stand-in for X-Ray's OTLP endpoint expects signatures for.
const REGION: &str = "eu-west-1";

/// X-Ray over OTLP on real pods: keys from a Secret sign every request, every `/chain` trace
/// arrives whole; then a stale key: `ExportHealthy=False` naming `otlp_http/xray`.
fn xray_over_otlp(
    rig: &Rig,
    export: &dyn Fn() -> (String, String),
    message: &dyn Fn() -> String,
) -> Result<(), Failed> {
    use testkit::xray_otlp::{Key, Options, Verifier};
    let key = Key::new("AKIDNODETEST", "the-node-test-secret");
    let xray = Verifier::start(Options {
        region: REGION.to_owned(),
        keys: vec![key.clone()],
        moto_url: None,
    });
    // Pods reach it on the node's bridge address.
    let on_bridge = testkit::node::netns::expose(xray.addr)?;
    for (name, secret) in [
        ("xray-keys", key.secret_access_key.as_str()),
        ("xray-keys-stale", "a-stale-secret"),
    ] {
        rig.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            DEMO,
            &format!("--from-literal=AWS_ACCESS_KEY_ID={}", key.access_key_id),
            &format!("--from-literal=AWS_SECRET_ACCESS_KEY={secret}"),
        ]);
    }
    let point_at = |secret: &str| {
        patch_app(
            rig,
            &format!(
                r#"{{"spec":{{"exporters":{{"xray":{{"protocol":"otlp","region":"{REGION}","endpoint":"http://{on_bridge}"}}}},"aws":{{"credentialsSecret":{{"name":"{secret}"}}}}}}}}"#
            ),
        )
    };
    point_at("xray-keys");
    crate::scenarios::rolled_out(rig)?;
    // /chain with trace ids of our choosing (the service continues a sampled traceparent).
    let addr = service_addr(rig, DEMO, APP, 3000);
    let ids: Vec<String> = (1..=10u32)
        .map(|i| format!("{:08x}{:024x}", 0x7ace_0000 + i, i))
        .collect();
    for id in &ids {
        let status = get_traced(&addr, "/chain", id)?;
        assert_eq!(status, 200, "/chain with trace {id}");
    }
    let complete = |spans: &[testkit::otlp::Span], id: &str| {
        let mine: Vec<_> = spans.iter().filter(|s| s.trace_id == id).collect();
        let root = mine.iter().find(|s| s.name == "GET /chain");
        let client = root.and_then(|r| mine.iter().find(|s| s.parent_span_id == r.span_id));
        let downstream = client.and_then(|c| {
            mine.iter()
                .find(|s| s.parent_span_id == c.span_id && s.name == "GET /")
        });
        downstream.is_some()
    };
    let mut spans = Vec::new();
    wait(
        "every /chain trace, whole, in X-Ray",
        Duration::from_secs(90),
        || {
            spans = xray.spans();
            ids.iter().all(|id| complete(&spans, id))
        },
    )
    .map_err(|e| {
        // For each trace not whole: the spans of it that did arrive (service, name).
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !complete(&spans, id))
            .map(|id| {
                let got: Vec<String> = spans
                    .iter()
                    .filter(|s| &s.trace_id == id)
                    .map(|s| format!("{}:{}", s.service, s.name))
                    .collect();
                format!("{id} has {got:?}")
            })
            .collect();
        let outcomes = xray.outcomes();
        format!(
            "{e}: {missing:#?}; {} spans received in {} requests, all accepted: {}",
            spans.len(),
            outcomes.len(),
            outcomes.iter().all(|o| o.status == 200)
        )
    })?;
    let outcomes = xray.outcomes();
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == 200 && o.access_key_id.as_deref() == Some("AKIDNODETEST")),
        "signed with the Secret's key: {outcomes:?}"
    );
    eprintln!(
        "xray over otlp: {} traces whole, {} requests signed and accepted",
        ids.len(),
        outcomes.len()
    );

    // A stale key: X-Ray refuses, and the status names the exporter.
    let load = Load::start(addr.clone(), "/", 20);
    point_at("xray-keys-stale");
    let failing = wait(
        "ExportHealthy=False naming otlp_http/xray",
        Duration::from_secs(180),
        || export().0 == "False" && message().contains("otlp_http/xray"),
    )
    .map_err(|e| format!("{e}: {:?} {}", export(), message()));
    eprintln!("export: {}", message());
    let refused = xray.outcomes().iter().filter(|o| o.status == 403).count();
    load.finish();
    patch_app(
        rig,
        r#"{"spec":{"exporters":{"xray":null},"aws":{"credentialsSecret":null}}}"#,
    );
    rig.kubectl_ok(&[
        "delete",
        "secret",
        "-n",
        DEMO,
        "xray-keys",
        "xray-keys-stale",
    ]);
    failing?;
    assert!(refused > 0, "X-Ray refused the stale key's requests");
    crate::scenarios::rolled_out(rig)
}

/// `GET path` to `addr` continuing the sampled trace `trace_id`: the status.
fn get_traced(addr: &str, path: &str, trace_id: &str) -> Result<u16, Failed> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status from {addr}{path}: {answer}").into())
}

/// A merge patch to the scenario's TracedApp.
fn patch_app(rig: &Rig, patch: &str) {
    rig.kubectl_ok(&[
        "patch",
        "-n",
        DEMO,
        &format!("ta/{APP}"),
        "--type=merge",
        "-p",
        patch,
    ]);
}
