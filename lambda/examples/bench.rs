//! The function's telemetry cost, under the Runtime Interface Emulator with the rendered layer
//! configuration (collector → Jaeger, all real, on 127.0.0.1): `bench/lambda.sh` runs it.
//!
//! In paired, alternating rounds — telemetry on, then off (`OTEL_SDK_DISABLED=true`), then
//! on… — each round starts a fresh emulator and function:
//! - cold start: the first invocation's round trip (the emulator starts the function, which
//!   initialises its telemetry, then handles the event), and the `init_ms` the function logs;
//! - warm invocations: the round trip of `INVOKES` invocations, p50 and p99. With telemetry on
//!   each one ends with the flush: its spans go to the collector, which exports them to Jaeger
//!   before it answers (the Lambda pipeline has no batch), so the difference is the whole cost
//!   of a span that is safe before the invocation returns.
//!
//! Usage: `bench <bootstrap> [rounds=6] [invokes=300]`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use testkit::collector::{Collector, Options};
use testkit::jaeger::Jaeger;
use testkit::lambda::Rie;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{min:.2}–{max:.2}")
}

#[derive(Default)]
struct Series {
    cold_ms: Vec<f64>,
    init_ms: Vec<f64>,
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = PathBuf::from(
        args.get(1)
            .expect("usage: bench <bootstrap> [rounds] [invokes]"),
    );
    let rounds: usize = args.get(2).map_or(6, |v| v.parse().unwrap());
    let invokes: usize = args.get(3).map_or(300, |v| v.parse().unwrap());

    let jaeger = Jaeger::start();
    let mut app = tracedapp_api::load::from_yaml(
        &std::fs::read_to_string(testkit::repo_root().join("manifests/examples/lambda.yaml"))
            .unwrap(),
    )
    .unwrap();
    app.spec.exporters.jaeger.as_mut().unwrap().endpoint = jaeger.otlp_grpc.clone();
    app.spec.exporters.xray = None;
    let rendered = tracedapp_api::lambda::render(&app.spec, "orders").unwrap();
    let collector = Collector::start_with(
        &rendered.collector.to_yaml(),
        &Options {
            lambda_layer: true,
            ..Options::default()
        },
    );

    let (mut on, mut off) = (Series::default(), Series::default());
    for round in 0..rounds {
        for telemetry in [true, false] {
            let mut env: Vec<(&str, &str)> = rendered
                .environment
                .iter()
                .filter(|(k, _)| *k != "OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_grpc_url));
            env.push(("AWS_LAMBDA_FUNCTION_NAME", "orders"));
            if !telemetry {
                env.push(("OTEL_SDK_DISABLED", "true"));
            }
            let rie = Rie::start(&bootstrap, &env);
            let cold = rie.invoke(&json!({"order": 0}), None);
            assert_eq!(cold.status, 200, "{:?}", cold.body);
            let mut warm: Vec<f64> = (1..=invokes)
                .map(|i| {
                    let a = rie.invoke(&json!({"order": i}), None);
                    assert_eq!(a.status, 200);
                    a.took.as_secs_f64() * 1e3
                })
                .collect();
            warm.sort_by(|a, b| a.total_cmp(b));
            let init = rie
                .log()
                .lines()
                .find_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    v["init_ms"].as_f64()
                })
                .unwrap_or(f64::NAN);
            let s = if telemetry { &mut on } else { &mut off };
            s.cold_ms.push(cold.took.as_secs_f64() * 1e3);
            s.init_ms.push(init);
            s.p50_ms.push(percentile(&warm, 0.5));
            s.p99_ms.push(percentile(&warm, 0.99));
            eprintln!(
                "round {round} telemetry {}: cold {:.1} ms (init {init:.2} ms), warm p50 {:.3} ms p99 {:.3} ms",
                if telemetry { "on " } else { "off" },
                cold.took.as_secs_f64() * 1e3,
                percentile(&warm, 0.5),
                percentile(&warm, 0.99)
            );
            drop(rie);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let traces = jaeger.traces("orders", 1);
    assert!(!traces.is_empty(), "the telemetry-on rounds reached Jaeger");

    println!(
        "lambda: {rounds} paired rounds (on, off alternating), {invokes} warm invocations each"
    );
    println!("                        median (range) telemetry on | off");
    for (what, a, b) in [
        ("cold first invoke ms", &on.cold_ms, &off.cold_ms),
        ("  of which init ms", &on.init_ms, &off.init_ms),
        ("warm p50 ms", &on.p50_ms, &off.p50_ms),
        ("warm p99 ms", &on.p99_ms, &off.p99_ms),
    ] {
        println!(
            "  {what:<22} {:.3} ({}) | {:.3} ({})",
            median(a.clone()),
            range(a),
            median(b.clone()),
            range(b)
        );
    }
}
