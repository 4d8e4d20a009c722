//! The service under hostile clients (real processes on 127.0.0.1): clients that never finish a
//! request head, sockets that send nothing, HTTP/2 clients that stall, thousands of them against
//! a small connection cap, made-up HTTP methods, and downstreams that redirect or answer without
//! end.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Receiver, Service};
use testkit::http::get;

/// A request head that never completes is cut off after the header-read timeout.
#[test]
fn a_stalled_request_head_is_closed() {
    let service = Service::start(
        "http://127.0.0.1:1",
        &[("HEADER_READ_TIMEOUT_SECS", "1")],
        &[],
    );
    let mut slow = TcpStream::connect(service.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    // Closed (EOF), possibly after a 408: either way not left open.
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// 300 clients that stall their request heads, against a service limited to 128 file
/// descriptors: `/health` still answers within seconds, and the service keeps running.
#[test]
fn slow_clients_do_not_starve_liveness() {
    let service = Service::start_under(
        &["prlimit", "--nofile=128:128", "--"],
        "http://127.0.0.1:1",
        &[("HEADER_READ_TIMEOUT_SECS", "2")],
        &[],
    );
    let mut slow = Vec::new();
    for _ in 0..300 {
        // The kernel's backlog takes connections the service has not accepted yet.
        if let Ok(mut s) = TcpStream::connect_timeout(&service.addr, Duration::from_millis(500)) {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            slow.push(s);
        }
    }
    assert!(slow.len() > 200, "the load ran: {} connections", slow.len());
    let started = Instant::now();
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok((200, _)) = get(&service.url("/health")) {
            answered = Some(started.elapsed());
            break;
        }
    }
    let answered = answered.expect("/health answered while 300 slow clients held on");
    assert!(answered < Duration::from_secs(10), "{answered:?}");
    drop(slow);
    assert_eq!(get(&service.url("/health")).map(|r| r.0), Ok(200));
}

/// Reads from `s` until the server closes it (EOF or reset); how long that took. Fails if it
/// is still open after `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
        assert!(
            started.elapsed() < within,
            "the connection is still open after {within:?}"
        );
    }
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An HTTP/2 HEADERS frame (END_STREAM | END_HEADERS) on `stream` for `GET /health`, encoded
/// with HPACK's static table (`:method GET`, `:scheme http`) and literal `:path`, `:authority`.
fn h2_get_health(stream: u8) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    block.extend([0x44, 7]);
    block.extend(b"/health");
    block.extend([0x41, 1, b'x']);
    let len = block.len();
    let mut frame = vec![0, 0, len as u8, 0x01, 0x05, 0, 0, 0, stream];
    frame.extend(block);
    frame
}

/// HTTP/2 frames from `s` (type, flags) until the server closes the connection, answering
/// its PINGs as a live client does.
fn h2_frames_until_closed(s: &mut TcpStream, within: Duration) -> Vec<(u8, u8)> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut data = Vec::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return frames,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return frames,
        }
        while data.len() >= 9 {
            let len =
                (usize::from(data[0]) << 16) | (usize::from(data[1]) << 8) | usize::from(data[2]);
            if data.len() < 9 + len {
                break;
            }
            let (kind, flags) = (data[3], data[4]);
            if kind == 0x06 && flags & 1 == 0 {
                let mut ack = vec![0, 0, 8, 0x06, 0x01, 0, 0, 0, 0];
                ack.extend_from_slice(&data[9..17]);
                let _ = s.write_all(&ack);
            }
            frames.push((kind, flags));
            data.drain(..9 + len);
        }
        assert!(
            started.elapsed() < within,
            "the HTTP/2 connection is still open after {within:?}: {frames:?}"
        );
    }
}

/// Sockets that send nothing, a partial HTTP/2 preface, and an HTTP/2 handshake that never
/// sends a request are all closed once the first-request deadline passes.
#[test]
fn connections_that_never_send_a_request_are_closed() {
    let service = Service::start(
        "http://127.0.0.1:1",
        &[("HEADER_READ_TIMEOUT_SECS", "1")],
        &[],
    );
    let mut silent = TcpStream::connect(service.addr).unwrap();
    let mut partial_preface = TcpStream::connect(service.addr).unwrap();
    partial_preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let mut h2_no_request = TcpStream::connect(service.addr).unwrap();
    h2_no_request.write_all(H2_PREFACE).unwrap();
    for (what, s) in [
        ("a silent socket", &mut silent),
        ("a partial HTTP/2 preface", &mut partial_preface),
        ("an HTTP/2 handshake without a request", &mut h2_no_request),
    ] {
        let took = closed_within(s, Duration::from_secs(5));
        assert!(
            took < Duration::from_secs(4),
            "{what}: closed after {took:?}"
        );
    }
}

/// An HTTP/2 client that made one request and then says nothing gets GOAWAY after the idle
/// timeout and the connection is closed; an idle HTTP/1 keep-alive connection is closed too.
#[test]
fn idle_connections_are_closed_in_both_protocols() {
    let service = Service::start("http://127.0.0.1:1", &[("IDLE_TIMEOUT_SECS", "1")], &[]);
    let mut h2 = TcpStream::connect(service.addr).unwrap();
    h2.write_all(H2_PREFACE).unwrap();
    h2.write_all(&h2_get_health(1)).unwrap();
    let started = Instant::now();
    let frames = h2_frames_until_closed(&mut h2, Duration::from_secs(10));
    let took = started.elapsed();
    assert!(
        frames.iter().any(|(t, _)| *t == 0x01),
        "the request was answered (a HEADERS frame): {frames:?}"
    );
    assert!(
        frames.iter().any(|(t, _)| *t == 0x07),
        "a GOAWAY before the close: {frames:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );

    let mut h1 = TcpStream::connect(service.addr).unwrap();
    h1.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let took = closed_within(&mut h1, Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}

/// Thousands of connections that send nothing (plain sockets and stalled HTTP/2 handshakes)
/// against a cap of 100: `/health` answers throughout, each probe on a new connection well
/// before the first-request deadline (10 s: without eviction a probe would wait for it), and
/// every silent socket is closed, evicted or at that deadline.
#[test]
fn silent_connections_cannot_hold_the_connection_cap() {
    let service = Service::start(
        "http://127.0.0.1:1",
        &[
            ("HEADER_READ_TIMEOUT_SECS", "10"),
            ("MAX_CONNECTIONS", "100"),
        ],
        &[],
    );
    let addr = service.addr;
    let flood = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..3000 {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                if i % 3 == 0 {
                    let _ = s.write_all(H2_PREFACE);
                }
                held.push(s);
            }
        }
        held
    });
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while !flood.is_finished() || probes < 10 {
        let started = Instant::now();
        let answered = get(&service.url("/health")).map(|r| r.0);
        let took = started.elapsed();
        assert_eq!(answered, Ok(200), "probe {probes} after {took:?}");
        slowest = slowest.max(took);
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    // Generous for a loaded 2-core machine, and still far below the deadline.
    assert!(
        slowest < Duration::from_secs(3),
        "slowest probe {slowest:?}"
    );
    let mut held = flood.join().unwrap();
    assert!(
        held.len() > 2500,
        "the flood ran: {} connections",
        held.len()
    );
    // Every one of them is closed: evicted to make room, or at its deadline.
    for s in held.iter_mut().step_by(97) {
        closed_within(s, Duration::from_secs(15));
    }
    assert_eq!(get(&service.url("/health")).map(|r| r.0), Ok(200));
}

/// Made-up methods are `_OTHER` in spans and metrics (the original stays on the span only):
/// a hundred different ones add no metric series.
#[tokio::test]
async fn made_up_methods_do_not_grow_metric_cardinality() {
    let rx = Receiver::grpc().await;
    let service = Service::start(&rx.endpoint(), &[], &[]);
    let addr = service.addr;
    tokio::task::spawn_blocking(move || {
        for i in 0..100 {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "BREW{i} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
        }
    })
    .await
    .unwrap();
    let spans = rx
        .wait_spans(Duration::from_secs(20), |s| s.len() >= 100)
        .await;
    let brew = spans
        .iter()
        .find(|s| {
            s.attrs
                .get("http.request.method_original")
                .is_some_and(|m| m == "BREW7")
        })
        .expect("the original method on the span");
    assert_eq!(brew.attrs["http.request.method"], "_OTHER");
    assert_eq!(brew.name, "HTTP /");
    let points = rx
        .wait_points(Duration::from_secs(20), |p| {
            p.iter().any(|p| p.metric == "http.server.request.duration")
        })
        .await;
    let methods: std::collections::BTreeSet<&str> = points
        .iter()
        .filter(|p| p.metric == "http.server.request.duration")
        .filter_map(|p| p.attrs.get("http.request.method").map(String::as_str))
        .collect();
    assert_eq!(
        methods,
        std::collections::BTreeSet::from(["_OTHER"]),
        "{methods:?}"
    );
}

/// A one-shot HTTP server on 127.0.0.1 answering every request with `response`; returns its
/// address and a counter of requests.
fn fixed_server(response: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(&response);
        }
    });
    (addr, hits)
}

/// A downstream's redirect is not followed (it could name any internal address), and an answer
/// past the size cap is refused: `/chain` answers 502 with a JSON error either way.
#[test]
fn chain_follows_no_redirect_and_caps_what_it_reads() {
    let (secret, secret_hits) =
        fixed_server(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret".to_vec());
    let redirect =
        format!("HTTP/1.1 302 Found\r\nLocation: http://{secret}/\r\nContent-Length: 0\r\n\r\n");
    let (redirecting, _) = fixed_server(redirect.into_bytes());
    let service = Service::start(
        "http://127.0.0.1:1",
        &[],
        &["--downstream-url", &format!("http://{redirecting}/")],
    );
    let (status, body) = get(&service.url("/chain")).unwrap();
    assert_eq!(status, 502, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(error.to_string().contains("redirect"), "{body}");
    assert_eq!(
        secret_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never called"
    );

    // 2 MiB with no Content-Length (read until close): past the 1 MiB cap.
    let mut huge = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let (big, _) = fixed_server(huge);
    let service = Service::start(
        "http://127.0.0.1:1",
        &[],
        &["--downstream-url", &format!("http://{big}/")],
    );
    let (status, body) = get(&service.url("/chain")).unwrap();
    assert_eq!(status, 502, "{}", &body[..body.len().min(200)]);
    assert!(body.contains("more than 1048576 bytes"), "{body}");
}

/// `GET /` with a `User-Agent` of `len` bytes, on a connection of its own; the status.
fn get_with_user_agent(addr: std::net::SocketAddr, len: usize) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let agent = "u".repeat(len);
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// Spans of 250 KiB each (huge user agents kept whole by a raised attribute limit) while the
/// collector answers nothing: the queue's byte bound (4 MiB here) refuses what would not fit and
/// counts it, so the process stays small instead of holding 100 MiB of spans.
#[test]
fn the_span_queue_is_bounded_in_bytes() {
    const REQUESTS: usize = 400;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.extend(c.ok());
        }
    });
    let mut service = Service::start(
        &endpoint,
        &[
            ("SPAN_QUEUE_MAX_BYTES", "4194304"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "300000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
        &[],
    );
    for _ in 0..REQUESTS {
        assert_eq!(get_with_user_agent(service.addr, 250 * 1024), 200);
    }
    let peak = peak_rss_mib(service.pid());
    assert!(peak < 80, "peak RSS {peak} MiB");
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    let summary = service
        .logs()
        .into_iter()
        .find(|l| l["message"] == "some spans were dropped during this run")
        .expect("the stop reports the drops");
    let refused = summary["queue_full"].as_u64().unwrap();
    assert!(
        refused >= (REQUESTS - 20) as u64,
        "at most 4 MiB of 250 KiB spans admitted: {summary}"
    );
}

/// By default an attribute value is cut to 4,096 bytes: a 60 KiB path is recorded as its first
/// 4,096 bytes.
#[tokio::test]
async fn long_attribute_values_are_cut() {
    let rx = Receiver::grpc().await;
    let service = Service::start(&rx.endpoint(), &[], &[]);
    let url = service.url(&format!("/{}", "p".repeat(60 * 1024)));
    let status = tokio::task::spawn_blocking(move || testkit::http::status(&url))
        .await
        .unwrap();
    assert_eq!(status, 404);
    let spans = rx
        .wait_spans(Duration::from_secs(20), |s| !s.is_empty())
        .await;
    assert_eq!(spans[0].attrs["url.path"].len(), 4096);
    assert!(spans[0].attrs["url.path"].starts_with("/ppp"));
}

/// A batch far larger than the receiver takes (40 spans of 150 KiB against a 1 MiB limit on
/// request bodies) is split until each request passes: every span arrives, none is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_for_the_receiver_is_split_and_delivered() {
    const REQUESTS: usize = 40;
    let rx = Receiver::http().await;
    rx.limit_trace_bodies(1024 * 1024);
    let service = Service::start(
        &rx.endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200000"),
            // One batch for all of them.
            ("OTEL_BSP_SCHEDULE_DELAY", "3000"),
        ],
        &[],
    );
    let addr = service.addr;
    tokio::task::spawn_blocking(move || {
        for _ in 0..REQUESTS {
            assert_eq!(get_with_user_agent(addr, 150 * 1024), 200);
        }
    })
    .await
    .unwrap();
    let spans = rx
        .wait_spans(Duration::from_secs(30), |s| s.len() >= REQUESTS)
        .await;
    assert_eq!(spans.len(), REQUESTS);
    assert!(
        spans
            .iter()
            .all(|s| s.attrs["user_agent.original"].len() == 150 * 1024)
    );
    assert!(rx.too_large_refusals() > 0, "the receiver refused some");
    let dropped = service.logs().into_iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("spans are being dropped"))
    });
    assert!(!dropped, "nothing dropped");
}

/// A downstream URL with credentials in it is refused at start without repeating them; the
/// secrets of a signed URL's query are redacted in /chain's answer and in `url.full`.
#[tokio::test]
async fn downstream_credentials_never_reach_an_answer_or_a_span() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_traced-service"))
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .env("DOWNSTREAM_URL", "http://user:s3cret@127.0.0.1:1/")
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DOWNSTREAM_URL"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let rx = Receiver::grpc().await;
    let service = Service::start(
        &rx.endpoint(),
        &[(
            "DOWNSTREAM_URL",
            "http://127.0.0.1:1/x?Signature=abc123&keep=1",
        )],
        &[],
    );
    let url = service.url("/chain");
    let (status, body) = tokio::task::spawn_blocking(move || get(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("abc123"), "{body}");
    assert!(body.contains("Signature=REDACTED"), "{body}");
    let spans = rx
        .wait_spans(Duration::from_secs(20), |s| {
            s.iter().any(|s| s.attrs.contains_key("url.full"))
        })
        .await;
    let full = &spans
        .iter()
        .find(|s| s.attrs.contains_key("url.full"))
        .unwrap()
        .attrs["url.full"];
    assert_eq!(full, "http://127.0.0.1:1/x?Signature=REDACTED&keep=1");
}
