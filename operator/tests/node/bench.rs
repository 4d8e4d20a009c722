//! Measurements on the one-node cluster (printed, never asserted): time from `kubectl apply`
//! of a TracedApp to READY True, what the node itself costs in memory, and what each pod
//! costs. `cargo test -p tracedapp-operator --test node -- --bench` measures 10 apps; a plain
//! test run does 2, as a check that the measurement works.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::cgroup::MemoryCgroup;
use crate::cluster::{Rig, wait};
use crate::scenarios::OPERATOR_NS;

const NS: &str = "bench";

/// Resident memory of a process, in MiB.
fn resident_mib(pid: u32) -> f64 {
    testkit::process::memory_mib(pid, "VmRSS")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Applies `apps` TracedApps one after another (traced-service, 1 replica, traces to the
/// in-cluster Jaeger) and measures each one's time to READY True; then the memory of the
/// node's components and of each pod.
pub fn apply_to_ready(rig: &Rig, apps: usize) -> Result<f64, Failed> {
    ensure_system(rig)?;
    let image = service_image(rig)?;
    rig.kubectl_ok(&["create", "namespace", NS]);
    let mut times = Vec::new();
    for i in 0..apps {
        let name = format!("app-{i}");
        let spec = format!(
            "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: {name}, namespace: {NS}}}\n\
             spec:\n  app: {{image: \"{image}\"}}\n  exporters: {{jaeger: {{endpoint: \"jaeger-collector.observability:4317\", tls: {{insecure: true}}}}}}\n"
        );
        let started = Instant::now();
        rig.kubectl_stdin(&["apply", "-f", "-"], &spec);
        wait(
            &format!("{name} READY True"),
            Duration::from_secs(120),
            || rig.condition(NS, &name, "Ready").0 == "True",
        )?;
        times.push(started.elapsed().as_secs_f64());
    }
    let pods = rig.json(&["get", "pods", "-n", NS]);
    let per_pod: Vec<f64> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str())
        .map(|uid| MemoryCgroup::of_pod(uid).map_or(0.0, |c| c.usage_mib()))
        .collect();
    let components: Vec<(String, f64)> = rig
        .cluster
        .components()
        .into_iter()
        .map(|(name, pid)| (name, resident_mib(pid)))
        .collect();
    let node_total: f64 = components.iter().map(|(_, m)| m).sum();
    let shims: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "containerd-shim")
        })
        .map(resident_mib)
        .sum();
    let all_pods = rig
        .kubectl_ok(&["get", "pods", "-A", "-o=name"])
        .lines()
        .count();
    println!("bench: apply → READY True over {apps} apps (1 replica each, one at a time):");
    println!(
        "bench:   median {:.1} s, min {:.1} s, max {:.1} s",
        median(times.clone()),
        times.iter().copied().fold(f64::MAX, f64::min),
        times.iter().copied().fold(0.0, f64::max)
    );
    println!("bench: node components, resident memory:");
    for (name, mib) in &components {
        println!("bench:   {name:<24} {mib:>7.1} MiB");
    }
    println!("bench:   {:<24} {node_total:>7.1} MiB", "total");
    println!(
        "bench: per TracedApp pod (app + collector sidecar, cgroup memory): median {:.1} MiB; \
         containerd shims {:.1} MiB for {all_pods} pods ({:.1} MiB each)",
        median(per_pod),
        shims,
        shims / all_pods.max(1) as f64
    );
    rig.kubectl_ok(&["delete", "namespace", NS, "--wait=true", "--timeout=120s"]);
    Ok(median(times))
}

/// traced-service's image, imported beside the operator's (same registry and tag).
pub(crate) fn service_image(rig: &Rig) -> Result<String, Failed> {
    Ok(rig
        .json(&["get", "deploy", "-n", OPERATOR_NS, "tracedapp-operator"])
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(|v| v.as_str())
        .map(|s| s.replace("tracedapp/operator", "tracedapp/traced-service"))
        .ok_or("the operator's image")?)
}

/// The operator (the chart with its defaults) and Jaeger, as the walk-through installs them,
/// when the benchmark (or a scenario run on its own) finds them missing.
pub(crate) fn ensure_system(rig: &Rig) -> Result<(), Failed> {
    let installed = rig
        .helm(&["status", "tracedapp-operator", "--namespace", OPERATOR_NS])
        .status
        .success();
    if !installed {
        rig.helm_ok(&[
            "install",
            "tracedapp-operator",
            "charts/tracedapp-operator",
            "--namespace",
            OPERATOR_NS,
            "--create-namespace",
            "--wait",
            "--timeout=120s",
        ]);
    }
    rig.kubectl_ok(&["apply", "-f", "manifests/jaeger.yaml"]);
    rig.wait_jaeger_rolled_out();
    Ok(())
}
