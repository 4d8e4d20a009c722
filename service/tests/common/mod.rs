//! Test rig: an in-process OTLP receiver (gRPC or HTTP/protobuf) on 127.0.0.1 that records what
//! the real `traced-service` process exports, and a handle on that process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the rig"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::otlp::{Recorder, Server};

/// An OTLP receiver that records everything (see [`Recorder`]); stops when dropped.
pub struct Receiver {
    server: Server,
    recorder: Arc<Recorder>,
}

impl Receiver {
    /// OTLP/gRPC on a free port.
    pub async fn grpc() -> Self {
        Self::grpc_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// OTLP/gRPC on the given address (to bring a "collector" up on a port chosen earlier).
    pub async fn grpc_on(addr: SocketAddr) -> Self {
        let recorder = Arc::new(Recorder::default());
        let server = Server::grpc(addr, recorder.clone()).await;
        Self { server, recorder }
    }

    /// OTLP/HTTP with protobuf bodies on a free port.
    pub async fn http() -> Self {
        let recorder = Arc::new(Recorder::default());
        let server = Server::http(recorder.clone()).await;
        Self { server, recorder }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The headers of every trace request so far (see [`Server::trace_request_headers`]).
    pub fn trace_request_headers(&self) -> Vec<http::HeaderMap> {
        self.server.trace_request_headers()
    }

    /// The headers of every metrics request so far.
    pub fn metric_request_headers(&self) -> Vec<http::HeaderMap> {
        self.server.metric_request_headers()
    }

    /// Refuses the next `n` trace requests as unavailable (see [`Server::refuse_traces`]).
    pub fn refuse_traces(&self, n: usize) {
        self.server.refuse_traces(n);
    }

    /// Refuses trace requests longer than `bytes` (see [`Server::limit_trace_bodies`]).
    pub fn limit_trace_bodies(&self, bytes: usize) {
        self.server.limit_trace_bodies(bytes);
    }

    pub fn too_large_refusals(&self) -> usize {
        self.server.too_large_refusals()
    }

    /// The largest `sum` seen for a histogram's data point with this `endpoint` (cumulative).
    pub fn recorded_histogram_sum(&self, metric: &str, endpoint: &str) -> f64 {
        self.points()
            .iter()
            .filter(|p| {
                p.metric == metric && p.attrs.get("endpoint").map(String::as_str) == Some(endpoint)
            })
            .filter_map(|p| p.sum)
            .fold(0.0, f64::max)
    }
}

impl Deref for Receiver {
    type Target = Recorder;

    fn deref(&self) -> &Recorder {
        &self.recorder
    }
}

/// A running `traced-service` process; killed when dropped, its log printed if the test failed.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts the service on a free port with these extra environment variables and arguments,
    /// exporting to `otlp` (an endpoint URL), and waits until it listens.
    pub fn start(otlp: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_under(&[], otlp, env, args)
    }

    /// [`Service::start`] run by `wrapper` (e.g. `prlimit --nofile=128`).
    pub fn start_under(wrapper: &[&str], otlp: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_traced-service");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["--port", "0", "--bind", "127.0.0.1"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,traced_service=debug")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            // Export soon after spans end, so tests need not wait the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start traced-service");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(v["address"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("traced-service did not start: {:#?}", logs.lock().unwrap())
            })
            .parse()
            .unwrap();
        Self { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines (JSON) written so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("traced-service did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- traced-service log ({}) ---", self.addr);
            for line in self.logs.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}
