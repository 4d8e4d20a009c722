//! The OpenTelemetry Collector (built by `cargo xtask setup`) running a given configuration.

use std::process::Command;
use std::time::Duration;

use crate::process::{Process, TempDir, free_port, listening, start_on_free_ports};
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
    /// The `awsxray` receiver's UDP address (`127.0.0.1:<port>`), if the config has one.
    pub xray_udp: Option<String>,
    process: Process,
    /// How it was started (the same ports on a restart).
    command: (Vec<String>, Vec<(String, String)>),
    ports: (u16, u16),
    /// Ready when the OTLP receiver listens (no `health_check`): see [`Options::lambda_layer`].
    lambda_layer: bool,
    restarts: u32,
    dir: TempDir,
}

/// How to start a [`Collector`]: the config, extra command-line flags, environment.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Flags after `--config` (e.g. `tracedapp_api::collector::command_flags`).
    pub flags: Vec<String>,
    /// Environment variables (e.g. AWS credentials for an emulator).
    pub env: Vec<(String, String)>,
    /// Port of the Prometheus exporter (free if `None`).
    pub prometheus_port: Option<u16>,
    /// Keep the collector's own telemetry on (served on a free port, and pushed to its own
    /// `otlp/collector` receiver, moved to a free port too, when the configuration has one:
    /// the ECS configuration's self-reporting); otherwise it is off.
    pub own_telemetry: bool,
    /// The configuration is the Lambda layer's (`tracedapp_api::lambda`): it has no
    /// `health_check` or `prometheus` to move, and is ready when its OTLP receiver listens.
    pub lambda_layer: bool,
}

impl Collector {
    /// Runs `config` (YAML) with its listening addresses moved to free loopback ports:
    /// the OTLP receivers, `health_check`, the `prometheus` exporter and the `awsxray`
    /// receiver and its proxy; its own telemetry off. The file itself is run unchanged; the
    /// moves are `--config=yaml:` overrides.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, &Options::default())
    }

    /// As [`Collector::start`], with the Prometheus exporter on `prometheus_port`.
    pub fn start_with_prometheus_port(config: &str, prometheus_port: Option<u16>) -> Self {
        Self::start_with(
            config,
            &Options {
                prometheus_port,
                ..Options::default()
            },
        )
    }

    /// Runs the collector as a TracedApp's pod runs it: the config rendered from `spec`, the
    /// flags it needs (`command_flags`) and `GOMEMLIMIT` as the Deployment sets it; `options`
    /// adds flags and environment (e.g. moto's [`crate::moto::credentials`]).
    pub fn start_for(spec: &tracedapp_api::spec::TracedAppSpec, options: &Options) -> Self {
        let mut flags = tracedapp_api::collector::command_flags(spec);
        flags.extend(options.flags.iter().cloned());
        let mut env = vec![(
            "GOMEMLIMIT".to_owned(),
            tracedapp_api::resources::collector_gomemlimit(spec.collector.memory_limit_mib),
        )];
        env.extend(options.env.iter().cloned());
        Self::start_with(
            &tracedapp_api::collector::render(spec).to_yaml(),
            &Options {
                flags,
                env,
                prometheus_port: options.prometheus_port,
                own_telemetry: options.own_telemetry,
                lambda_layer: false,
            },
        )
    }

    /// As [`Collector::start`], with `options`.
    pub fn start_with(config: &str, options: &Options) -> Self {
        let dir = TempDir::new("otelcol");
        let file = dir.path().join("collector.yaml");
        std::fs::write(&file, config).unwrap();
        let parsed = serde_saphyr::from_str::<serde_json::Value>(config).unwrap_or_default();
        let has_xray_receiver = parsed["receivers"]["awsxray"].is_object();
        let reports_itself = parsed["receivers"]["otlp/collector"].is_object();
        let launch = || {
            let [
                grpc,
                http,
                health,
                free_prom,
                xray_udp,
                xray_proxy,
                own,
                own_push,
            ] = [(); 8].map(|_| free_port());
            let prom = options.prometheus_port.unwrap_or(free_prom);
            let mut overrides = vec![
                format!("receivers::otlp::protocols::grpc::endpoint: 127.0.0.1:{grpc}"),
                format!("receivers::otlp::protocols::http::endpoint: 127.0.0.1:{http}"),
            ];
            if !options.lambda_layer {
                overrides.push(format!(
                    "extensions::health_check::endpoint: 127.0.0.1:{health}"
                ));
                overrides.push(format!("exporters::prometheus::endpoint: 127.0.0.1:{prom}"));
            }
            if !options.own_telemetry {
                overrides.push("service::telemetry::metrics::level: none".to_owned());
            } else {
                let mut readers = format!(
                    "{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {own}}}}}}}}}"
                );
                if reports_itself {
                    overrides.push(format!(
                        "receivers::otlp/collector::protocols::http::endpoint: 127.0.0.1:{own_push}"
                    ));
                    readers.push_str(&format!(
                        ", {{periodic: {{interval: 2000, exporter: {{otlp: {{protocol: http/protobuf, \
                         endpoint: 'http://127.0.0.1:{own_push}'}}}}}}}}"
                    ));
                }
                overrides.push(format!("service::telemetry::metrics::readers: [{readers}]"));
            }
            if has_xray_receiver {
                overrides.push(format!(
                    "receivers::awsxray::endpoint: 127.0.0.1:{xray_udp}"
                ));
                overrides.push(format!(
                    "receivers::awsxray::proxy_server::endpoint: 127.0.0.1:{xray_proxy}"
                ));
            }
            let mut cmd = Command::new(tools::otelcol());
            cmd.arg(format!("--config=file:{}", file.display()));
            for o in &overrides {
                cmd.arg(format!("--config=yaml:{o}"));
            }
            cmd.args(&options.flags);
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
            for (k, v) in &options.env {
                cmd.env(k, v);
            }
            let args: Vec<String> = cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let process = Process::start("otelcol", cmd, dir.path().join("otelcol.log"));
            (process, (grpc, health, prom, xray_udp, args))
        };
        let (process, (grpc, health, prom, xray_udp, args)) = start_on_free_ports(
            "the collector to listen",
            Duration::from_secs(60),
            launch,
            |(grpc, health, ..)| listening(*grpc) && (options.lambda_layer || listening(*health)),
        );
        let mut env = vec![("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned())];
        env.extend(options.env.iter().cloned());
        Self {
            config_file: file,
            otlp_grpc_url: format!("http://127.0.0.1:{grpc}"),
            prometheus_url: format!("http://127.0.0.1:{prom}/metrics"),
            xray_udp: has_xray_receiver.then(|| format!("127.0.0.1:{xray_udp}")),
            process,
            command: (args, env),
            ports: (grpc, health),
            lambda_layer: options.lambda_layer,
            restarts: 0,
            dir,
        }
    }

    /// Stops the collector and starts it again, same config, same ports (its exporters start
    /// over: new connections, no back-off carried from failed attempts). Waits until it listens.
    pub fn restart(&mut self) {
        self.process.stop();
        self.restarts += 1;
        let mut cmd = Command::new(tools::otelcol());
        cmd.args(&self.command.0);
        for (k, v) in &self.command.1 {
            cmd.env(k, v);
        }
        let log = self
            .dir
            .path()
            .join(format!("otelcol.{}.log", self.restarts));
        self.process = Process::start("otelcol", cmd, log);
        let (grpc, health) = self.ports;
        crate::wait_until(
            "the restarted collector to listen",
            Duration::from_secs(60),
            || listening(grpc) && (self.lambda_layer || listening(health)),
        );
    }

    /// Where its log is written.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.process.log_path()
    }

    /// The Prometheus exporter's current text exposition.
    pub fn scrape(&self) -> String {
        reqwest::blocking::get(&self.prometheus_url)
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.prometheus_url))
    }

    /// The collector's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The collector's process id (for its memory and CPU in benchmarks).
    pub fn pid(&self) -> u32 {
        self.process.pid()
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

/// Runs the collector's `validate` on the configuration file `config` with `flags`, as a pod
/// would start it, and every AWS API at `aws_endpoint` (`sigv4auth` fetches credentials while
/// it checks its configuration, and assumes its role through STS then): static test keys, no
/// instance metadata. `(passed, what it printed)`.
pub fn validate(config: &std::path::Path, flags: &[String], aws_endpoint: &str) -> (bool, String) {
    let out = Command::new(tools::otelcol())
        .arg("validate")
        .arg(format!("--config=file:{}", config.display()))
        .args(flags)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", aws_endpoint)
        .envs(crate::moto::CREDENTIALS)
        .output()
        .expect("run the collector");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
