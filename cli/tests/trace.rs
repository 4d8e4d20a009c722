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

/// Span and service names, attributes and the trace id come from whoever sent the spans:
/// escape sequences in them (screen clear, clipboard write, line overwrite) and newlines are
/// printed as text, never obeyed; a query API answering without end is cut off at 32 MiB.
#[test]
fn what_a_trace_carries_cannot_drive_the_terminal_and_answers_are_capped() {
    let jaeger = Jaeger::start();
    let hostile = "7b8efff798038103d269b633813fc60c";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "evil\u{1b}]52;c;ZXZpbA==\u{7}")]},
        "scopeSpans": [{"spans": [{
            "traceId": hostile, "spanId": "0000000000000001", "name": "GET /\u{1b}[2J\nfake row\r",
            "kind": 2,
            "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 1_000_000).to_string(),
            "attributes": [attr("http.route", "/x\u{1b}[1A\u{9b}31m\u{202e}")],
        }]}],
    }]});
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/traces", jaeger.otlp_http))
        .json(&body)
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let mut out = None;
    for _ in 0..50 {
        let o = tracedapp(&[
            "trace",
            hostile,
            "--jaeger",
            &jaeger.query_url,
            "--color",
            "always",
        ]);
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = out.expect("the trace is drawn");
    let text = String::from_utf8(out.stdout).unwrap();
    // Only our own colour codes remain: ESC followed by '[' and digits and 'm'.
    let stripped = text.split('\x1b').skip(1).all(|rest| {
        rest.starts_with('[')
            && rest[1..]
                .split_once('m')
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit() || c == ';'))
    });
    assert!(stripped, "an escape that is not our colour: {text:?}");
    assert!(
        !text.contains('\x07')
            && !text.contains('\r')
            && !text.contains('\u{9b}')
            && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(
        text.contains("\\x1b]52;c;ZXZpbA=="),
        "shown, not obeyed: {text}"
    );
    assert_eq!(text.lines().count(), 2, "no row injected: {text}");

    // A "Jaeger" that answers 40 MiB.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"data\":[\"");
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..40 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    });
    let big = tracedapp(&["trace", TRACE, "--jaeger", &format!("http://{addr}")]);
    let stderr = String::from_utf8_lossy(&big.stderr);
    assert_eq!(big.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("larger than 32 MiB"), "{stderr}");
}
