//! Sizing the collector sidecar: the real collector running the configuration TracedApp renders
//! by default (OTLP receivers, `memory_limiter`, `batch`, traces to a real Jaeger and to X-Ray
//! over OTLP with SigV4, the SigV4-checking stand-in playing AWS), fed OTLP/gRPC span batches
//! at fixed rates. Prints, per phase: spans offered, refused and delivered (the collector's own
//! `otelcol_exporter_sent_spans`), the collector's CPU (cores, and µs per span offered) and
//! peak resident memory.
//!
//! Side by side, same build, same load (`CONFIGS`, comma-separated; default `rendered`):
//! - `rendered`: what TracedApp renders for `manifests/examples/shop.yaml`;
//! - `legacy`: the same with X-Ray through the `awsxray` exporter (`protocol: xray`; moto);
//! - `adot-ecs`: ADOT's default ECS configuration (`bench/collector/adot-ecs.yaml`);
//! - `operator-sidecar`: the OpenTelemetry Operator's sidecar example
//!   (`bench/collector/operator-sidecar.yaml`).
//!
//! A name may end in `+NAME=value`, an environment variable for that run (e.g.
//! `rendered+GOGC=50`), and in `~path: value`, a change to the configuration (a collector
//! `--config=yaml:` override, e.g. `rendered~exporters::otlp_grpc/jaeger::compression: none`).
//!
//! Every configuration gets the same own-telemetry setting (metrics at `normal`, pulled: what
//! the operator reads in a pod). `ROUNDS` repeats the whole set, configurations alternating.
//! After the last round, the rendered configuration takes a burst: Jaeger stopped and spans
//! sent as fast as one client can, to see the `memory_limiter` refuse data before the
//! container's memory limit is reached (`BURST=off` skips it).
//!
//! Usage: `[CONFIGS=rendered,adot-ecs] [ROUNDS=1] [MEMORY_LIMIT_MIB=256] bench/collector.sh
//! [seconds=20] [rates=1000,5000,20000]` (needs `cargo xtask setup`).

use std::time::Duration;

use testkit::collector::{Collector, Options};
use testkit::jaeger::Jaeger;
use testkit::load::Load;
use testkit::moto::{self, Moto};
use testkit::process::{cpu_seconds, free_port, memory_mib};
use testkit::xray_otlp::{Key, Verifier};
use tracedapp_api::resources;
use tracedapp_api::spec::{TracedApp, XrayProtocol};

/// What every configuration runs against.
struct Rig {
    jaeger: Option<Jaeger>,
    aws: Moto,
    xray: Verifier,
    key: Key,
    app: TracedApp,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(20, |s| s.parse().expect("seconds"));
    let rates: Vec<u64> = args.get(2).map_or(vec![1_000, 5_000, 20_000], |s| {
        s.split(',').map(|r| r.parse().expect("rate")).collect()
    });
    let configs: Vec<String> = std::env::var("CONFIGS")
        .unwrap_or_else(|_| "rendered".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);

    let jaeger = Jaeger::start();
    let mut app = tracedapp_api::load::from_yaml(
        &std::fs::read_to_string("manifests/examples/shop.yaml").expect("the example"),
    )
    .expect("a valid example");
    let jaeger_export = app.spec.exporters.jaeger.as_mut().expect("Jaeger export");
    jaeger_export.endpoint = jaeger.otlp_grpc.clone();
    jaeger_export.tls.insecure = true;
    // AWS: the SigV4-checking stand-in for X-Ray's OTLP endpoint, moto for the rest; the
    // collector signs with a static key the stand-in knows (no role to assume here).
    let aws = Moto::start();
    let key = Key::new("AKIDTRACEDAPPBENCH", "bench-secret-known-to-the-stand-in");
    let region = app
        .spec
        .exporters
        .xray
        .as_ref()
        .and_then(|x| x.region.clone());
    let xray = Verifier::start(testkit::xray_otlp::Options {
        region: region.unwrap_or_else(|| "us-east-1".into()),
        keys: vec![key.clone()],
        moto_url: None,
    });
    app.spec.aws.iam_role_arn = None;
    // `MEMORY_LIMIT_MIB=256`: try another memory_limiter limit (spike: a quarter of it).
    if let Some(mib) = std::env::var("MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        app.spec.collector.memory_limit_mib = mib;
        app.spec.collector.spike_limit_mib = mib / 4;
    }
    let spec = &app.spec;
    println!(
        "collector defaults: memory_limiter {} MiB (spike {} MiB), container limit {} MiB, GOMEMLIMIT {} MiB",
        spec.collector.memory_limit_mib,
        spec.collector.spike_limit_mib,
        resources::collector_memory_limit_mib(spec.collector.memory_limit_mib),
        resources::collector_gomemlimit_mib(spec.collector.memory_limit_mib)
    );
    let mut rig = Rig {
        jaeger: Some(jaeger),
        aws,
        xray,
        key,
        app,
    };
    println!(
        "{:<17} {:<20} {:>9} {:>8} {:>10} {:>7} {:>8} {:>10}",
        "config", "phase", "offered/s", "refused", "delivered", "cores", "µs/span", "peak RSS"
    );
    for round in 1..=rounds {
        for config in &configs {
            let (collector, own_port) = start(&rig, config);
            let pid = collector.pid();
            let mut client = Load::connect(collector.otlp_grpc_url.clone())
                .await
                .expect("the collector's OTLP/gRPC receiver");
            tokio::time::sleep(Duration::from_secs(5)).await;
            println!(
                "{config:<17} {:<20} {:>68.1} MiB",
                format!("idle (round {round})"),
                memory_mib(pid, "VmRSS")
            );
            for &rate in &rates {
                let r = run(
                    &mut client,
                    pid,
                    own_port,
                    Some(rate),
                    Duration::from_secs(seconds),
                )
                .await;
                r.print(config, &format!("{rate} spans/s"));
                let xray = rig.xray.received();
                if xray.spans > 0 {
                    println!(
                        "{config:<17} {:<20} the X-Ray hop: {:.0} bytes per span sent, {:.0} uncompressed",
                        "",
                        xray.wire_bytes as f64 / xray.spans as f64,
                        xray.decoded_bytes as f64 / xray.spans as f64,
                    );
                }
                rig.xray.forget();
            }
            if round == rounds
                && config.as_str() == "rendered"
                && std::env::var("BURST").as_deref() != Ok("off")
            {
                // The burst: the exporter's destination gone, everything backs up into the
                // collector.
                drop(rig.jaeger.take());
                let r = run(
                    &mut client,
                    pid,
                    own_port,
                    None,
                    Duration::from_secs(seconds * 2),
                )
                .await;
                r.print(config, "burst, Jaeger down");
                rig.jaeger = Some(Jaeger::start());
            }
            let log = collector.log();
            let errors = log.lines().filter(|l| l.contains("\terror\t")).count();
            if errors > 0 {
                println!("{config:<17} collector log: {errors} error lines");
            }
            rig.xray.forget();
        }
    }
}

/// Starts `config` (see the module docs) with its own metrics pulled on a free port.
fn start(rig: &Rig, config: &str) -> (Collector, u16) {
    let (config, changes) = config.split_once('~').unwrap_or((config, ""));
    let mut parts = config.split('+');
    let config = parts.next().unwrap_or_default();
    let extra_env: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let own = free_port();
    let mut flags = vec![
        "--config=yaml:service::telemetry::metrics::level: normal".to_owned(),
        format!(
            "--config=yaml:service::telemetry::metrics::readers: [{{pull: {{exporter: \
             {{prometheus: {{host: 127.0.0.1, port: {own}}}}}}}}}]"
        ),
    ];
    flags.extend(
        changes
            .split('~')
            .filter(|c| !c.is_empty())
            .map(|c| format!("--config=yaml:{c}")),
    );
    let mut env = rig.key.env();
    env.extend(
        moto::credentials()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET")),
    );
    let jaeger = rig.jaeger.as_ref().expect("Jaeger").otlp_grpc.clone();
    env.push(("JAEGER_ENDPOINT".into(), jaeger.clone()));
    env.push(("XRAY_LEGACY_ENDPOINT".into(), rig.aws.url.clone()));
    env.extend(extra_env);
    let mut spec = rig.app.spec.clone();
    if let Some(j) = spec.exporters.jaeger.as_mut() {
        j.endpoint = jaeger;
    }
    let xray = spec.exporters.xray.as_mut().expect("X-Ray export");
    let collector = match config {
        "rendered" | "legacy" => {
            if config == "legacy" {
                xray.protocol = XrayProtocol::Xray;
                xray.endpoint = Some(rig.aws.url.clone());
            } else {
                xray.endpoint = Some(rig.xray.endpoint());
            }
            Collector::start_for(
                &spec,
                &Options {
                    flags,
                    env,
                    ..Default::default()
                },
            )
        }
        file => {
            let text = std::fs::read_to_string(format!("bench/collector/{file}.yaml"))
                .unwrap_or_else(|e| panic!("bench/collector/{file}.yaml: {e}"));
            Collector::start_with(
                &text,
                &Options {
                    flags,
                    env,
                    ..Default::default()
                },
            )
        }
    };
    (collector, own)
}

struct Phase {
    sent: testkit::load::Sent,
    delivered: f64,
    cpu: f64,
    peak_mib: f64,
}

impl Phase {
    fn print(&self, config: &str, label: &str) {
        let accepted = self.sent.accepted().max(1) as f64;
        println!(
            "{config:<17} {label:<20} {:>9.0} {:>8} {:>10.0} {:>7.3} {:>8.1} {:>6.1} MiB",
            self.sent.per_second(),
            self.sent.refused,
            self.delivered,
            self.cpu / self.sent.elapsed.as_secs_f64(),
            self.cpu * 1e6 / accepted,
            self.peak_mib
        );
    }
}

/// Spans the collector's exporters have sent so far (its own metrics), summed over exporters.
fn sent_spans(own_port: u16) -> f64 {
    testkit::http::get(&format!("http://127.0.0.1:{own_port}/metrics"))
        .map(|(_, body)| testkit::prom::sum(&body, "otelcol_exporter_sent_spans"))
        .unwrap_or(0.0)
}

/// Sends requests at `rate` spans/s (or as fast as answered) for `length`, sampling the
/// collector's memory every 200 ms; then waits a little for what is batched to leave.
async fn run(
    load: &mut Load,
    pid: u32,
    own_port: u16,
    rate: Option<u64>,
    length: Duration,
) -> Phase {
    let cpu_before = cpu_seconds(pid);
    let sent_before = sent_spans(own_port);
    let mut peak: f64 = 0.0;
    let sent = load
        .run(rate, length, || peak = peak.max(memory_mib(pid, "VmRSS")))
        .await;
    let cpu = cpu_seconds(pid) - cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Phase {
        sent,
        delivered: sent_spans(own_port) - sent_before,
        cpu,
        peak_mib: peak.max(memory_mib(pid, "VmRSS")),
    }
}
