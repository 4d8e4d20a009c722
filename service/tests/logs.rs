//! The service's log as an operator reads it, from the real process: one access line per
//! request carrying the trace id, JSON answers for a wrong method, no colour codes in a log
//! that is not a terminal, and a start line that claims no endpoint when telemetry is off.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Receiver, Service};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_one_access_line_with_its_trace_id() {
    let receiver = Receiver::grpc().await;
    let service = Service::start(&receiver.endpoint(), &[], &[]);
    let client = reqwest::Client::new();
    client
        .get(service.url("/"))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    let post = client.post(service.url("/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(
        post.headers()["content-type"],
        "application/json",
        "a wrong method answers JSON like every other answer"
    );
    let body: serde_json::Value = post.json().await.unwrap();
    assert_eq!(body["error"], "method not allowed");
    client
        .get(service.url("/no/such/path?token=secret"))
        .send()
        .await
        .unwrap();

    let access_lines = || -> Vec<serde_json::Value> {
        service
            .logs()
            .into_iter()
            .filter(|l| l["message"] == "request")
            .collect()
    };
    testkit::wait_until("three access lines", Duration::from_secs(10), || {
        access_lines().len() == 3
    });
    let lines = access_lines();
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_owned(),
                l["route"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".to_owned(), "/".to_owned(), 200),
            ("POST".to_owned(), "/".to_owned(), 405),
            ("GET".to_owned(), "(unmatched)".to_owned(), 404),
        ]
    );
    assert_eq!(lines[0]["trace_id"], TRACE, "the caller's trace");
    assert!(lines.iter().all(|l| l["duration_ms"].as_f64().is_some()));
    assert!(
        !service
            .logs()
            .iter()
            .any(|l| l.to_string().contains("secret")),
        "a client's path is not written to the log"
    );
}

/// Text logs to a pipe: no colour codes (a log file or collector would keep them as garbage);
/// telemetry off: the start line names no endpoint; `ACCESS_LOG=false`: no request lines.
#[test]
fn a_text_log_off_a_terminal_has_no_colour_and_claims_nothing_off() {
    let port = testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_traced-service"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "text")
        .env("OTEL_SDK_DISABLED", "true")
        .env("ACCESS_LOG", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let _ = reqwest::blocking::get(format!("http://127.0.0.1:{port}/")).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    for line in stderr.lines().map_while(Result::ok) {
        rest.push_str(&line);
        rest.push('\n');
    }
    let _ = child.wait();
    assert!(first.contains("listening"), "{first}");
    assert!(first.contains("telemetry=\"disabled\""), "{first}");
    assert!(!first.contains("traces_endpoint"), "{first}");
    let all = format!("{first}{rest}");
    assert!(!all.contains('\u{1b}'), "no ANSI escapes: {all:?}");
    assert!(!all.contains(" request "), "ACCESS_LOG=false: {all}");
}
