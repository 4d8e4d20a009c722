//! The OpenTelemetry Collector (built by `cargo xtask setup`) running a given configuration.

use std::process::Command;
use std::time::Duration;

use crate::process::{Process, TempDir, free_port, listening, wait_until};
use crate::tools;

/// A running collector; stopped when dropped.
#[derive(Debug)]
pub struct Collector {
    /// The configuration file it runs.
    pub config_file: std::path::PathBuf,
    /// Where apps send OTLP/gRPC: `http://127.0.0.1:<port>`.
    pub otlp_grpc_url: String,
    /// The Prometheus exporter's scrape URL, if the config has one.
    pub prometheus_url: String,
    process: Process,
    _dir: TempDir,
}

impl Collector {
    /// Runs `config` (YAML) with its listening addresses moved to free loopback ports:
    /// the OTLP receivers, `health_check`, the `prometheus` exporter; its own telemetry off.
    /// The file itself is run unchanged; the moves are `--config=yaml:` overrides.
    pub fn start(config: &str) -> Self {
        Self::start_with_prometheus_port(config, None)
    }

    /// As [`Collector::start`], with the Prometheus exporter on `prometheus_port`.
    pub fn start_with_prometheus_port(config: &str, prometheus_port: Option<u16>) -> Self {
        let dir = TempDir::new("otelcol");
        let file = dir.path().join("collector.yaml");
        std::fs::write(&file, config).unwrap();
        let [grpc, http, health, free_prom] = [(); 4].map(|_| free_port());
        let prom = prometheus_port.unwrap_or(free_prom);
        let overrides = [
            format!("receivers::otlp::protocols::grpc::endpoint: 127.0.0.1:{grpc}"),
            format!("receivers::otlp::protocols::http::endpoint: 127.0.0.1:{http}"),
            format!("extensions::health_check::endpoint: 127.0.0.1:{health}"),
            format!("exporters::prometheus::endpoint: 127.0.0.1:{prom}"),
            "service::telemetry::metrics::level: none".to_owned(),
        ];
        let mut cmd = Command::new(tools::otelcol());
        cmd.arg(format!("--config=file:{}", file.display()));
        for o in &overrides {
            cmd.arg(format!("--config=yaml:{o}"));
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        let mut process = Process::start("otelcol", cmd, dir.path().join("otelcol.log"));
        wait_until("the collector to listen", Duration::from_secs(60), || {
            process.assert_running();
            listening(grpc) && listening(health)
        });
        Self {
            config_file: file,
            otlp_grpc_url: format!("http://127.0.0.1:{grpc}"),
            prometheus_url: format!("http://127.0.0.1:{prom}/metrics"),
            process,
            _dir: dir,
        }
    }

    /// The Prometheus exporter's current text exposition.
    pub fn scrape(&self) -> String {
        reqwest::blocking::get(&self.prometheus_url)
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.prometheus_url))
    }

    /// Stops the collector (what SIGTERM does in a pod, without waiting); drops its state.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Panics with the collector's log if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}
