//! TracedApp on real pods: a one-node Kubernetes (containerd, runc, kubelet, kube-proxy,
//! CoreDNS; `testkit::node`) started once for this whole file, with our images imported. The
//! shipped chart, `manifests/jaeger.yaml` and `manifests/examples/kind.yaml` are used as they
//! are. Needs root; as another user every scenario is reported ignored.
//!
//! The scenarios run in order on the same cluster (each builds on the system the README's
//! walk-through set up), with libtest-mimic so that the cluster is torn down, and the host
//! checked, after the last one: `cargo test -p tracedapp-operator --test node`.

mod bench;
mod burst;
mod cgroup;
mod cluster;
mod export;
mod policy;
mod scenarios;
mod sidecar;

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Measurement, Trial};

fn main() {
    let mut args = Arguments::from_args();
    // The README's commands run from the repository root.
    std::env::set_current_dir(testkit::repo_root()).expect("the repository root");
    // One cluster, shared: scenarios run one at a time, in order.
    args.test_threads = Some(1);
    let root = testkit::node::is_root();
    let listing = args.list;
    let cluster = if root && !listing && !filtered_out(&args) {
        // Ctrl-C (or a CI timeout's SIGTERM) tears the cluster down and restores the host:
        // its processes run as root in process groups of their own.
        testkit::node::stop_on_signals();
        match cluster::Rig::start() {
            Ok(rig) => Some(Arc::new(rig)),
            Err(e) => {
                eprintln!("the one-node cluster did not start: {e}");
                std::process::exit(101);
            }
        }
    } else {
        if !root && !listing {
            eprintln!(
                "note: the real-pod tests need root (a bridge, iptables, mounts, cgroups): \
                 they are reported ignored"
            );
        }
        None
    };
    let mut trials: Vec<Trial> = scenarios::ALL
        .iter()
        .map(|&(name, scenario)| {
            let rig = cluster.clone();
            Trial::test(name, move || {
                let rig = rig.ok_or_else(|| Failed::from("no cluster"))?;
                rig.run_scenario(name, scenario)
            })
            .with_ignored_flag(!root)
        })
        .collect();
    // Last: they need the operator and Jaeger, and install them themselves under `--bench`.
    let rig = cluster.clone();
    trials.push(
        Trial::bench(BENCHES[0], move |test_mode| {
            let rig = rig.ok_or_else(|| Failed::from("no cluster"))?;
            let apps = if test_mode { 2 } else { 10 };
            let median = bench::apply_to_ready(&rig, apps)?;
            Ok((!test_mode).then_some(Measurement {
                avg: (median * 1e9) as u64,
                variance: 0,
            }))
        })
        .with_ignored_flag(!root),
    );
    let rig = cluster.clone();
    trials.push(
        Trial::bench(BENCHES[1], move |test_mode| {
            let rig = rig.ok_or_else(|| Failed::from("no cluster"))?;
            let ns_per_span = sidecar::rates(&rig, &sidecar::Plan::new(test_mode))?;
            Ok((!test_mode).then_some(Measurement {
                avg: ns_per_span as u64,
                variance: 0,
            }))
        })
        .with_ignored_flag(!root),
    );
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(rig) = cluster {
        let rig = Arc::try_unwrap(rig).expect("the scenarios are done with the cluster");
        let differences = rig.stop(conclusion.has_failed());
        if !differences.is_empty() {
            eprintln!("the host was not restored:");
            for d in &differences {
                eprintln!("  {d}");
            }
            std::process::exit(101);
        }
        eprintln!("node: stopped; the host is as it was before the tests");
    }
    conclusion.exit();
}

/// The measurements after the scenarios (`--bench` runs them in full).
const BENCHES: [&str; 2] = ["bench_apply_to_ready_and_memory", "bench_sidecar_rates"];

/// Whether a name filter leaves no scenario to run (then no cluster is started).
fn filtered_out(args: &Arguments) -> bool {
    match &args.filter {
        None => false,
        Some(f) => !scenarios::ALL
            .iter()
            .map(|(n, _)| n)
            .chain(BENCHES.iter())
            .any(|name| {
                if args.exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            }),
    }
}
