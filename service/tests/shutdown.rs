//! Nothing lost, nothing blocked: shutdown flush, collector outages, bad configuration.

mod common;

use std::time::{Duration, Instant};

use common::{Receiver, Service};
use futures::StreamExt;
use testkit::free_port;
use testkit::otlp::KIND_SERVER;

/// Sends `n` GETs to `url` with `concurrency` in flight; returns how many got a 200.
async fn load(url: &str, n: usize, concurrency: usize) -> usize {
    let client = reqwest::Client::new();
    futures::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

/// N concurrent requests, then SIGTERM: the process exits 0 and exactly N server spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_a_burst_loses_no_span() {
    const N: usize = 2_500;
    let rx = Receiver::grpc().await;
    // A long schedule delay: most spans are still queued when SIGTERM arrives.
    let mut svc = Service::start(&rx.endpoint(), &[("OTEL_BSP_SCHEDULE_DELAY", "60000")], &[]);
    let ok = load(&svc.url("/"), N, 64).await;
    assert_eq!(ok, N, "every request is answered");
    let code = tokio::task::spawn_blocking(move || {
        let code = svc.terminate(Duration::from_secs(20));
        (code, svc)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "clean exit on SIGTERM");
    let server_spans = rx
        .spans()
        .into_iter()
        .filter(|s| s.kind == KIND_SERVER && s.name == "GET /")
        .count();
    assert_eq!(
        server_spans, N,
        "exactly one exported server span per answered request"
    );
}

/// In-flight requests finish after SIGTERM, and their spans are exported too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let rx = Receiver::grpc().await;
    let mut svc = Service::start(&rx.endpoint(), &[], &[]);
    let client = reqwest::Client::new();
    // Open the connection first, so the slow request is on the wire at once.
    client.get(svc.url("/health")).send().await.unwrap();
    let url = svc.url("/metrics-test");
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(40)).await;
    let code = tokio::task::spawn_blocking(move || svc.terminate(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request is answered"
    );
    assert_eq!(code, Some(0));
    assert!(rx.spans().iter().any(|s| s.name == "GET /metrics-test"));
}

/// Collector down at start: requests are served as usual; once it comes up, new spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_then_up_recovers_by_itself() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let svc = Service::start(&endpoint, &[], &[]);

    let started = Instant::now();
    assert_eq!(
        load(&svc.url("/"), 200, 8).await,
        200,
        "served while the collector is down"
    );
    let down_elapsed = started.elapsed();
    assert!(
        down_elapsed < Duration::from_secs(10),
        "requests must not wait on the exporter (took {down_elapsed:?})"
    );

    // Long enough for several export attempts to fail (each retried with back-off).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rx = Receiver::grpc_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    // Keep sending marked requests until one of their spans arrives: export resumed by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(load(&svc.url("/health"), 10, 2).await, 10);
        if rx.spans().iter().any(|s| s.name == "GET /health") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "export did not resume after the collector came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The outage was reported as counted drops, and in a few lines, not one per batch.
    let logs = svc.logs();
    let warnings: Vec<_> = logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spans are being dropped"))
        })
        .collect();
    assert!(
        !warnings.is_empty(),
        "drops while the collector was down are reported"
    );
    assert!(warnings.len() <= 3, "rate-limited: {warnings:#?}");
    assert!(warnings[0]["dropped_total"].as_u64().unwrap() > 0);
}

/// A collector that accepts connections and never answers: requests are served as usual, at
/// most `OTEL_BSP_MAX_QUEUE_SIZE` spans wait (across the export lanes), and every span that
/// never left is counted — the ones refused by the full queue and the ones whose export timed
/// out — in the line the service writes when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_bounds_the_queue_and_every_lost_span_is_counted() {
    const REQUESTS: usize = 300;
    const QUEUE: usize = 100;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.extend(c.ok());
        }
    });
    let queue = QUEUE.to_string();
    let mut svc = Service::start(
        &endpoint,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", queue.as_str()),
            // No batch leaves before the stop: the queue fills and stays full.
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
        &["--telemetry-flush-secs", "5"],
    );
    let started = Instant::now();
    assert_eq!(load(&svc.url("/"), REQUESTS, 8).await, REQUESTS);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "requests do not wait on a silent collector"
    );
    let (code, svc) = tokio::task::spawn_blocking(move || {
        let code = svc.terminate(Duration::from_secs(30));
        (code, svc)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let logs = svc.logs();
    let first = logs
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spans are being dropped"))
        })
        .expect("the full queue is reported");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains(&format!("({QUEUE} spans,")),
        "{first}"
    );
    let summary = logs
        .iter()
        .find(|l| l["message"] == "some spans were dropped during this run")
        .expect("the stop reports the drops");
    assert_eq!(
        summary["queue_full"].as_u64(),
        Some((REQUESTS - QUEUE) as u64),
        "no more than the queue's {QUEUE} spans waited: {summary}"
    );
    assert_eq!(
        summary["export_failed"].as_u64(),
        Some(QUEUE as u64),
        "the queued ones timed out at the stop: {summary}"
    );
    assert_eq!(summary["dropped_spans"].as_u64(), Some(REQUESTS as u64));
}

/// A bad `OTEL_*` value stops the process at start-up with one line naming the variable.
#[test]
fn bad_otel_values_fail_fast_with_one_clear_line() {
    let cases = [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "udp",
            "expected one of grpc, http/protobuf",
        ),
        (
            "OTEL_TRACES_SAMPLER",
            "sometimes",
            "expected one of always_on",
        ),
        ("OTEL_TRACES_SAMPLER_ARG", "2", "between 0 and 1"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "http:// or https://",
        ),
        ("OTEL_PROPAGATORS", "b3", "unknown propagator"),
        ("OTEL_SDK_DISABLED", "maybe", "true or false"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "whole number"),
    ];
    for (var, value, expected) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_traced-service"))
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .env(var, value)
            .env(
                "OTEL_TRACES_SAMPLER",
                if var == "OTEL_TRACES_SAMPLER_ARG" {
                    "traceidratio"
                } else if var == "OTEL_TRACES_SAMPLER" {
                    value
                } else {
                    "always_on"
                },
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{var}={value}: one line, got {stderr}"
        );
        assert!(stderr.contains(&format!("invalid {var}=")), "{stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
    }
}
