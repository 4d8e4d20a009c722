//! The service under hostile clients (real processes on 127.0.0.1): clients that never finish a
//! request head, hundreds of them under a small file-descriptor limit, made-up HTTP methods, and
//! downstreams that redirect or answer without end.

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
