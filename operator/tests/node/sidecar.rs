//! The collector sidecar on a real pod at the default limits, at fixed span rates: what it
//! costs in CPU (its container's cgroup), whether its CPU is throttled, its memory (cgroup and
//! resident), and whether every span reaches both destinations (its own counters). The
//! numbers are printed for the sizing table in BENCHMARKS.md; a plain test run sends one short
//! phase at 1,000 spans/s and checks that nothing is lost there.
//!
//! The TracedApp has every default and both exporters of the production shape: Jaeger (the
//! walk-through's, in the cluster) over OTLP/gRPC, and X-Ray over OTLP/HTTP with SigV4 to the
//! signature-checking stand-in for AWS (on the host, reached on the node's bridge; keys from
//! a Secret). The load is `testkit::load`'s, the same as `bench/collector.sh`'s, sent over
//! OTLP/gRPC from inside the pod's network namespace to the sidecar's `127.0.0.1:4317`: where
//! the app sends its spans.
//!
//! `cargo test -p tracedapp-operator --test node -- --bench bench_sidecar_rates` (its ns/iter:
//! the median collector CPU per span over every phase)
//! (`SIDECAR_RATES=1000,5000,20000`, `SIDECAR_SECONDS=20`, `SIDECAR_ROUNDS=3`; and
//! `SIDECAR_JAEGER_COMPRESSION=snappy` to measure another `exporters.jaeger.compression`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::Failed;
use testkit::node::netns;
use testkit::xray_otlp::{Key, Options, Verifier};
use tracedapp_api::sidecar::{OTLP_GRPC_PORT, TELEMETRY_PORT};

use crate::cgroup::{CpuCgroup, MemoryCgroup};
use crate::cluster::{Rig, collector_container, container_statuses, wait};

const NS: &str = "sidecar";
const NAME: &str = "rates";
const REGION: &str = "eu-west-1";
const EXPORTERS: [&str; 2] = ["otlp_grpc/jaeger", "otlp_http/xray"];

/// What a run measures.
pub struct Plan {
    pub rates: Vec<u64>,
    pub seconds: u64,
    pub rounds: usize,
    /// `exporters.jaeger.compression` (empty: the default).
    pub jaeger_compression: String,
}

impl Plan {
    /// `test_mode`: one short phase (a check that the measurement works); otherwise the
    /// `SIDECAR_*` variables or 1k/5k/20k spans/s, 20 s each, 3 rounds.
    pub fn new(test_mode: bool) -> Self {
        if test_mode {
            return Self {
                rates: vec![1_000],
                seconds: 3,
                rounds: 1,
                jaeger_compression: String::new(),
            };
        }
        let var = |name: &str| std::env::var(name).ok();
        Self {
            rates: var("SIDECAR_RATES")
                .map(|r| r.split(',').filter_map(|r| r.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1_000, 5_000, 20_000]),
            seconds: var("SIDECAR_SECONDS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(20),
            rounds: var("SIDECAR_ROUNDS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(3),
            jaeger_compression: var("SIDECAR_JAEGER_COMPRESSION").unwrap_or_default(),
        }
    }
}

/// Runs the plan; the median collector CPU per span over every phase, in ns.
pub fn rates(rig: &Rig, plan: &Plan) -> Result<f64, Failed> {
    crate::bench::ensure_system(rig)?;
    let image = crate::bench::service_image(rig)?;
    rig.kubectl_ok(&["create", "namespace", NS]);
    let result = measure(rig, &image, plan);
    rig.kubectl_ok(&["delete", "namespace", NS, "--wait=true", "--timeout=120s"]);
    result
}

/// The collector's own counters, per exporter and at the receiver.
#[derive(Debug, Clone, Default)]
struct Counters {
    sent: [f64; 2],
    send_failed: f64,
    enqueue_failed: f64,
    refused: f64,
}

impl Counters {
    fn read(ns: &std::path::Path, telemetry: SocketAddr) -> Result<Self, Failed> {
        let text = netns::http_get_from(ns, telemetry, "/metrics")
            .map_err(|e| format!("the collector's metrics: {e}"))?;
        let by_exporter = |e: &str| {
            testkit::prom::sum_where(&text, "otelcol_exporter_sent_spans", &[("exporter", e)])
        };
        Ok(Self {
            sent: EXPORTERS.map(by_exporter),
            send_failed: testkit::prom::sum(&text, "otelcol_exporter_send_failed_spans"),
            enqueue_failed: testkit::prom::sum(&text, "otelcol_exporter_enqueue_failed_spans"),
            refused: testkit::prom::sum(&text, "otelcol_receiver_refused_spans"),
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            sent: [0, 1].map(|i| self.sent[i] - before.sent[i]),
            send_failed: self.send_failed - before.send_failed,
            enqueue_failed: self.enqueue_failed - before.enqueue_failed,
            refused: self.refused - before.refused,
        }
    }
}

fn measure(rig: &Rig, image: &str, plan: &Plan) -> Result<f64, Failed> {
    // X-Ray's stand-in, on the host, reached by pods on the node's bridge.
    let key = Key::new("AKIDSIDECARBENCH", "the-sidecar-bench-secret");
    let xray = Verifier::start(Options {
        region: REGION.to_owned(),
        keys: vec![key.clone()],
        moto_url: None,
    });
    let on_bridge = netns::expose(xray.addr)?;
    rig.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "xray-keys",
        "-n",
        NS,
        &format!("--from-literal=AWS_ACCESS_KEY_ID={}", key.access_key_id),
        &format!(
            "--from-literal=AWS_SECRET_ACCESS_KEY={}",
            key.secret_access_key
        ),
    ]);
    let compression = match plan.jaeger_compression.as_str() {
        "" => String::new(),
        c => format!(", compression: {c}"),
    };
    let spec = format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: {NAME}, namespace: {NS}}}\n\
         spec:\n  app: {{image: \"{image}\"}}\n  aws: {{credentialsSecret: {{name: xray-keys}}}}\n  exporters:\n    \
         jaeger: {{endpoint: \"jaeger-collector.observability:4317\", tls: {{insecure: true}}{compression}}}\n    \
         xray: {{protocol: otlp, region: {REGION}, endpoint: \"http://{on_bridge}\"}}\n"
    );
    let ready = rig.apply_until_ready(NS, NAME, &spec)?;
    let (pod, pid) = (&ready.pod, ready.collector_pid);
    let limits = collector_container(&ready.json)
        .map(|c| c["resources"].to_string())
        .unwrap_or_default();
    let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let telemetry = SocketAddr::new(ready.ip, TELEMETRY_PORT as u16);
    let memory = MemoryCgroup::of_process(pid)?;
    let cpu = CpuCgroup::of_process(pid)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut load = runtime.block_on(testkit::load::Load::connect_in(
        &ns,
        SocketAddr::from(([127, 0, 0, 1], OTLP_GRPC_PORT as u16)),
    ))?;

    std::thread::sleep(Duration::from_secs(5));
    println!(
        "sidecar: a real pod at the default limits ({limits}); both exporters on{}",
        if compression.is_empty() {
            String::new()
        } else {
            format!(" (Jaeger{compression})")
        }
    );
    println!(
        "sidecar: idle: cgroup {:.1} MiB, resident {:.1} MiB",
        memory.usage_mib(),
        testkit::process::memory_mib(pid, "VmRSS")
    );
    println!(
        "sidecar: {:>6} {:>9} {:>9} {:>8} {:>14} {:>8} {:>7} {:>8} {:>10} {:>11} {:>9}",
        "round",
        "asked/s",
        "offered/s",
        "refused",
        "to Jaeger/X-Ray",
        "dropped",
        "cores",
        "µs/span",
        "throttled",
        "cgroup peak",
        "RSS peak"
    );
    let mut lost = Vec::new();
    let mut per_span = Vec::new();
    let generator = std::process::id();
    for round in 1..=plan.rounds {
        for &rate in &plan.rates {
            let before = Counters::read(&ns, telemetry)?;
            let cpu_before = cpu.read();
            let generator_before = testkit::process::cpu_seconds(generator);
            let (mut cgroup_peak, mut rss_peak) = (0f64, 0f64);
            let sent =
                runtime.block_on(load.run(Some(rate), Duration::from_secs(plan.seconds), || {
                    cgroup_peak = cgroup_peak.max(memory.usage_mib());
                    rss_peak = rss_peak.max(testkit::process::memory_mib(pid, "VmRSS"));
                }));
            let used = cpu.read();
            let generator_cores = (testkit::process::cpu_seconds(generator) - generator_before)
                / sent.elapsed.as_secs_f64();
            // What is batched leaves within the batch timeout (and the exporters' retries).
            let mut counted = Counters::default();
            let settled = wait(
                "every accepted span sent by both exporters",
                Duration::from_secs(15),
                || {
                    counted = Counters::read(&ns, telemetry)
                        .unwrap_or_default()
                        .since(&before);
                    counted.sent.iter().all(|&s| s >= sent.accepted() as f64)
                },
            );
            xray.forget();
            let seconds = sent.elapsed.as_secs_f64();
            let cpu_seconds = used.seconds - cpu_before.seconds;
            per_span.push(cpu_seconds * 1e9 / sent.accepted().max(1) as f64);
            println!(
                "sidecar: {round:>6} {rate:>9} {:>9.0} {:>8} {:>7.0}/{:<7.0} {:>8.0} {:>7.3} {:>8.1} {:>4} {:>4.1}s {:>7.1} MiB {:>5.1} MiB",
                sent.per_second(),
                sent.refused + counted.refused as u64,
                counted.sent[0],
                counted.sent[1],
                counted.send_failed + counted.enqueue_failed,
                cpu_seconds / seconds,
                cpu_seconds * 1e6 / sent.accepted().max(1) as f64,
                used.throttled_periods - cpu_before.throttled_periods,
                used.throttled_seconds - cpu_before.throttled_seconds,
                cgroup_peak,
                rss_peak,
            );
            if sent.per_second() < rate as f64 * 0.95 {
                println!(
                    "sidecar:        the generator reached {:.0} of {rate} spans/s, using {generator_cores:.2} \
                     cores of the node's {}",
                    sent.per_second(),
                    std::thread::available_parallelism().map_or(0, usize::from)
                );
            }
            if settled.is_err() || sent.refused > 0 {
                lost.push(format!(
                    "{rate} spans/s, round {round}: {} offered, {} refused, sent {:?}, \
                     failed {}, not queued {}",
                    sent.offered,
                    sent.refused,
                    counted.sent,
                    counted.send_failed,
                    counted.enqueue_failed
                ));
            }
        }
    }
    let pod_now = rig.json(&["get", "pod", "-n", NS, pod]);
    let ended: Vec<String> = container_statuses(&pod_now)
        .into_iter()
        .filter(|s| s["restartCount"].as_u64().unwrap_or(0) > 0)
        .map(|s| format!("{} restarted ({})", s["name"], s["lastState"]))
        .collect();
    println!(
        "sidecar: OOM kills {}, restarts {ended:?}",
        memory.oom_kills()
    );
    assert!(
        memory.oom_kills() == 0 && ended.is_empty(),
        "the sidecar ran through every rate: OOM kills {}, {ended:?}",
        memory.oom_kills()
    );
    assert!(
        lost.is_empty(),
        "at rates the sidecar keeps up with, every span reaches both destinations: {lost:#?}"
    );
    per_span.sort_by(f64::total_cmp);
    Ok(per_span[per_span.len() / 2])
}
