//! Jaeger v2 (in-memory storage) on free loopback ports, and its query API.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Process, TempDir, free_port, listening, start_on_free_ports};
use crate::tools;

/// A running Jaeger; stopped when dropped.
#[derive(Debug)]
pub struct Jaeger {
    /// OTLP/gRPC receiver, `127.0.0.1:<port>` (no scheme: what an OTLP exporter `endpoint` takes).
    pub otlp_grpc: String,
    /// OTLP/HTTP receiver, `http://127.0.0.1:<port>` (append `/v1/traces`).
    pub otlp_http: String,
    /// Query API and UI, `http://127.0.0.1:<port>`.
    pub query_url: String,
    process: Process,
    _dir: TempDir,
}

impl Jaeger {
    /// Jaeger on free ports.
    pub fn start() -> Self {
        Self::start_with_ui_port(None)
    }

    /// Jaeger with its query API/UI on `ui_port` (free ports for the rest).
    pub fn start_with_ui_port(ui_port: Option<u16>) -> Self {
        Self::start_binary(&tools::jaeger(), ui_port, None)
    }

    /// [`Jaeger::start_with_ui_port`] running `binary` (e.g. a Jaeger release, with its UI),
    /// its OTLP/gRPC receiver on `otlp_grpc_port` if given (a collector started earlier may
    /// already be exporting there).
    pub fn start_binary(
        binary: &std::path::Path,
        ui_port: Option<u16>,
        otlp_grpc_port: Option<u16>,
    ) -> Self {
        let dir = TempDir::new("jaeger");
        let launch = || {
            let [free_grpc, http, free_query, query_grpc, health] = [(); 5].map(|_| free_port());
            let query = ui_port.unwrap_or(free_query);
            let grpc = otlp_grpc_port.unwrap_or(free_grpc);
            // The all-in-one configuration, trimmed to what we use and with every port ours
            // (its own telemetry off: its default 8888 would clash with a collector's).
            let config = format!(
                r#"service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
processors:
  batch: {{}}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
            );
            let file = dir.path().join("jaeger.yaml");
            std::fs::write(&file, config).unwrap();
            let mut cmd = Command::new(binary);
            cmd.arg(format!("--config=file:{}", file.display()));
            let process = Process::start("jaeger", cmd, dir.path().join("jaeger.log"));
            (process, (grpc, http, query))
        };
        let (process, (grpc, http, query)) = start_on_free_ports(
            "jaeger to listen",
            Duration::from_secs(60),
            launch,
            |&(grpc, _, query)| listening(grpc) && listening(query),
        );
        Self {
            otlp_grpc: format!("127.0.0.1:{grpc}"),
            otlp_http: format!("http://127.0.0.1:{http}"),
            query_url: format!("http://127.0.0.1:{query}"),
            process,
            _dir: dir,
        }
    }

    /// `GET /api/traces?service=...&limit=...`: the traces Jaeger holds for a service.
    pub fn traces(&self, service: &str, limit: usize) -> Vec<Value> {
        let url = format!(
            "{}/api/traces?service={service}&limit={limit}&lookback=1h",
            self.query_url
        );
        let body: Value = reqwest::blocking::get(&url)
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// Service names Jaeger has seen.
    pub fn services(&self) -> Vec<String> {
        let url = format!("{}/api/services", self.query_url);
        let body: Value = reqwest::blocking::get(&url)
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where its log is written.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.process.log_path()
    }

    /// Panics with Jaeger's log if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}
