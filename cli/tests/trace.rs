//! `tracedapp trace` against a real Jaeger (v2, in memory): spans sent over OTLP/HTTP, then
//! drawn; and what a user sees when the trace, the service or Jaeger is not there.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use testkit::jaeger::Jaeger;

fn tracedapp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args(args)
        .env_remove("JAEGER_URL")
        .output()
        .expect("tracedapp runs")
}

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

/// A server span of `shop` with a client child, and the backend's server span under it.
fn send_trace(jaeger: &Jaeger) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let span = |id: &str,
                parent: &str,
                name: &str,
                kind: u8,
                from_ms: u64,
                to_ms: u64,
                attrs: serde_json::Value| {
        json!({
            "traceId": TRACE, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
            "startTimeUnixNano": (now + from_ms * 1_000_000).to_string(),
            "endTimeUnixNano": (now + to_ms * 1_000_000).to_string(),
            "attributes": attrs,
        })
    };
    let attr = |k: &str, v: serde_json::Value| json!({"key": k, "value": v});
    let resource = |service: &str, spans: Vec<serde_json::Value>| {
        json!({
            "resource": {"attributes": [attr("service.name", json!({"stringValue": service}))]},
            "scopeSpans": [{"spans": spans}],
        })
    };
    let body = json!({"resourceSpans": [
        resource("shop", vec![
            span("eee19b7ec3c1b174", "", "GET /chain", 2, 0, 20, json!([
                attr("http.request.method", json!({"stringValue": "GET"})),
                attr("http.route", json!({"stringValue": "/chain"})),
                attr("http.response.status_code", json!({"intValue": "200"})),
            ])),
            span("eee19b7ec3c1b175", "eee19b7ec3c1b174", "GET", 3, 2, 18, json!([])),
        ]),
        resource("backend", vec![
            span("eee19b7ec3c1b176", "eee19b7ec3c1b175", "GET /", 2, 5, 15, json!([])),
        ]),
    ]});
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/traces", jaeger.otlp_http))
        .json(&body)
        .send()
        .expect("Jaeger takes OTLP/HTTP");
    assert!(response.status().is_success(), "{:?}", response.text());
}

#[test]
fn a_trace_is_drawn_by_id_and_as_a_services_latest() {
    let jaeger = Jaeger::start();
    send_trace(&jaeger);
    testkit::wait_until("the trace in Jaeger", Duration::from_secs(30), || {
        !jaeger.traces("shop", 5).is_empty()
    });
    let by_id = tracedapp(&[
        "trace",
        TRACE,
        "--jaeger",
        &jaeger.query_url,
        "--color",
        "never",
    ]);
    assert!(
        by_id.status.success(),
        "{}",
        String::from_utf8_lossy(&by_id.stderr)
    );
    let text = String::from_utf8(by_id.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("trace {TRACE} · 3 spans · 2 services · 20.0 ms")),
        "{text}"
    );
    assert!(lines[1].starts_with("shop: GET /chain "), "{text}");
    assert!(lines[1].ends_with("server GET /chain 200"), "{text}");
    assert!(lines[2].starts_with("  shop: GET "), "{text}");
    assert!(lines[3].starts_with("    backend: GET / "), "{text}");
    assert!(!text.contains('\x1b'), "no colour when asked");

    let latest = tracedapp(&[
        "trace",
        "--service",
        "backend",
        "--jaeger",
        &jaeger.query_url,
    ]);
    assert!(latest.status.success());
    assert_eq!(
        String::from_utf8(latest.stdout).unwrap(),
        text,
        "not a terminal: no colour by default either"
    );
}

#[test]
fn missing_traces_bad_ids_and_an_absent_jaeger_say_so() {
    let jaeger = Jaeger::start();
    let missing = tracedapp(&["trace", "0123456789abcdef", "--jaeger", &jaeger.query_url]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no trace 0123456789abcdef"));

    let none = tracedapp(&["trace", "-s", "nobody", "--jaeger", &jaeger.query_url]);
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no trace of service \"nobody\""));

    let bad = tracedapp(&["trace", "not-hex", "--jaeger", &jaeger.query_url]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a trace id"));

    let down = tracedapp(&["trace", TRACE, "--jaeger", "http://127.0.0.1:1"]);
    assert_eq!(down.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach Jaeger's query API"));
}
