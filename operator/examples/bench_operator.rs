//! Benchmark of the operator on a real kube-apiserver (see BENCHMARKS.md and
//! `bench/operator.sh`, which builds the release binary and runs this).
//!
//! 1. Starts etcd + kube-apiserver (from `cargo xtask setup`), the CRD, and `tracedapp-operator`.
//! 2. Creates N TracedApps at once (concurrent creates) and measures the time until every one
//!    has its four children and `ConfigValid=True` for its generation.
//! 3. Reports the operator's passes and writes (its own /metrics), every request the API server
//!    answered minus the benchmark's own (its `apiserver_request_total`), and peak RSS.
//! 4. Steady state: for S seconds, with one metadata-only change to every app at the start
//!    (forcing a pass each), counts writes to children and status: the target is 0.
//! 5. Export health (unless `EXPORT_HEALTH=off`): each app gets one Pod object, marked Ready
//!    with the IP 127.0.0.1, where a real collector serves its own metrics; the operator reads
//!    them every 5 s (window 20 s). Reported: reads, the operator's CPU seconds over the steady
//!    state, and (with `EXPORT_HEALTH=off` for the baseline) what the reads add.
//!
//! Usage: [EXPORT_HEALTH=off] bench_operator <tracedapp-operator binary> [apps=200] [steady s=60]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use testkit::kube::ControlPlane;
use testkit::{Process, free_port};
use tracedapp_api::TracedApp;

const NS: &str = "bench";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .expect("usage: bench_operator <tracedapp binary> [apps] [steady s]");
    let apps: usize = args.get(2).map_or(200, |a| a.parse().expect("apps"));
    let steady: u64 = args.get(3).map_or(60, |a| a.parse().expect("seconds"));

    eprintln!("starting etcd + kube-apiserver...");
    let cp = ControlPlane::with_tracedapp_crd(&[NS]);
    let client = client(&cp).await;

    let export = std::env::var("EXPORT_HEALTH").as_deref() != Ok("off");
    // A real collector serving its own metrics where every bench pod says it is.
    let _collector = export.then(|| {
        let config = tracedapp_api::collector::render(&bench_app(0).spec).to_yaml();
        testkit::collector::Collector::start_with(
            &config,
            &testkit::collector::Options {
                flags: vec!["--config=yaml:service::telemetry::metrics::level: normal".into()],
                ..Default::default()
            },
        )
    });
    let port = free_port();
    let mut cmd = std::process::Command::new(binary);
    cmd.args(["--namespace", NS])
        .arg(format!("--metrics-bind=127.0.0.1:{port}"))
        .arg(format!("--export-health={export}"))
        .args(["--export-interval-seconds=5", "--export-window-seconds=20"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("RUST_LOG", "warn");
    let operator = Process::start("tracedapp", cmd, cp.dir().join("operator.log"));
    testkit::wait_until("operator /readyz", Duration::from_secs(30), || {
        metrics(port).is_some()
    });

    let requests_before = apiserver_requests(&cp);
    let by_kind_before = apiserver_requests_by_kind(&cp);
    let mut own_requests = 0u64;
    eprintln!("creating {apps} TracedApps at once...");
    let started = Instant::now();
    let api: Api<TracedApp> = Api::namespaced(client.clone(), NS);
    let creates = (0..apps).map(|i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &bench_app(i))
                .await
                .unwrap();
        }
    });
    join_all(creates).await;
    own_requests += apps as u64;
    let created = started.elapsed();

    let mut last_print = Instant::now();
    loop {
        let (valid, children) = converged(&client).await;
        own_requests += 6; // the TracedApps and five child kinds listed
        if valid == apps && children.values().all(|&n| n == apps) {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "  {:>5.1} s: {valid}/{apps} ConfigValid, children {children:?}",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not converged in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await; // passes triggered by our own writes
    let m = metrics(port).unwrap();
    let passes = testkit::prom::sum(&m, "tracedapp_reconciles_total");
    let writes = testkit::prom::sum(&m, "tracedapp_api_writes_total");
    let apiserver = apiserver_requests(&cp) - requests_before - own_requests;

    println!("apps: {apps}");
    println!("created (concurrent POSTs): {:.2} s", created.as_secs_f64());
    println!(
        "all converged (children + ConfigValid=True): {:.2} s",
        converged_in.as_secs_f64()
    );
    println!(
        "operator passes: {passes} ({:.2} per app)",
        passes / apps as f64
    );
    println!(
        "operator writes: {writes} ({:.2} per app, {:.2} per pass)",
        writes / apps as f64,
        writes / passes
    );
    println!(
        "API requests by the operator (API server count minus the benchmark's): {apiserver} ({:.2} per pass)",
        apiserver as f64 / passes
    );
    let mut by_kind: Vec<(String, u64)> = apiserver_requests_by_kind(&cp)
        .into_iter()
        .map(|(k, n)| (k.clone(), n - by_kind_before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    by_kind.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!(
        "API server requests by verb and resource (the benchmark's included): {}",
        by_kind
            .iter()
            .take(12)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "operator peak RSS after convergence: {:.1} MiB",
        testkit::process::memory_mib(operator.pid(), "VmHWM")
    );

    if export {
        eprintln!("export health: one Ready pod per app at 127.0.0.1...");
        ready_pods(&client, apps).await;
        // Past the operator's warm-up (one window) before the steady state is measured.
        tokio::time::sleep(Duration::from_secs(25)).await;
    }
    eprintln!("steady state: {steady} s, one metadata-only change to every app at the start...");
    let cpu_before = testkit::process::cpu_seconds(operator.pid());
    let reads_before = testkit::prom::sum(&metrics(port).unwrap(), "tracedapp_export_reads_total");
    let kinds = testkit::kube::OPERATOR_WRITE_RESOURCES;
    let writes_before: Vec<u64> = kinds.iter().map(|k| cp.writes(k)).collect();
    let passes_before = passes;
    let op_writes_before = writes;
    let patch =
        Patch::Merge(serde_json::json!({"metadata": {"annotations": {"bench/touched": "1"}}}));
    join_all((0..apps).map(|i| {
        let api = api.clone();
        let patch = patch.clone();
        async move {
            api.patch(&format!("app-{i:03}"), &PatchParams::default(), &patch)
                .await
                .unwrap();
        }
    }))
    .await;
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let m = metrics(port).unwrap();
    let writes_after: Vec<u64> = kinds.iter().map(|k| cp.writes(k)).collect();
    let delta: BTreeMap<&str, u64> = kinds
        .iter()
        .zip(writes_before.iter().zip(&writes_after))
        .map(|(k, (b, a))| (*k, a - b))
        .collect();
    println!(
        "steady state {steady} s: {} passes, operator writes {}, API server writes by resource {delta:?}",
        testkit::prom::sum(&m, "tracedapp_reconciles_total") - passes_before,
        testkit::prom::sum(&m, "tracedapp_api_writes_total") - op_writes_before,
    );
    let reads = testkit::prom::sum(&m, "tracedapp_export_reads_total") - reads_before;
    let failed =
        testkit::prom::sum_where(&m, "tracedapp_export_reads_total", &[("result", "error")]) as u64;
    let cpu = testkit::process::cpu_seconds(operator.pid()) - cpu_before;
    println!(
        "export health {}: {reads} collector reads in {steady} s ({failed} failed in the run), operator CPU {cpu:.2} s ({:.1} ms per read)",
        if export { "on" } else { "off" },
        if reads > 0.0 {
            cpu * 1000.0 / reads
        } else {
            0.0
        }
    );
    println!(
        "operator peak RSS (whole run): {:.1} MiB",
        testkit::process::memory_mib(operator.pid(), "VmHWM")
    );
    drop(operator);
}

async fn client(cp: &ControlPlane) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// TracedApps with `ConfigValid=True` for their generation, and children counts by kind.
async fn converged(client: &kube::Client) -> (usize, BTreeMap<&'static str, usize>) {
    let lp = ListParams::default();
    let apps = Api::<TracedApp>::namespaced(client.clone(), NS)
        .list(&lp)
        .await
        .unwrap();
    let valid = apps
        .items
        .iter()
        .filter(|a| {
            a.status.as_ref().is_some_and(|s| {
                s.observed_generation == a.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "ConfigValid" && c.status == "True")
            })
        })
        .count();
    let counts = BTreeMap::from([
        ("configmaps", count::<ConfigMap>(client).await),
        ("serviceaccounts", count::<ServiceAccount>(client).await),
        ("deployments", count::<Deployment>(client).await),
        ("services", count::<Service>(client).await),
        ("networkpolicies", count::<NetworkPolicy>(client).await),
    ]);
    (valid, counts)
}

/// How many objects of kind `K` in the benchmark namespace carry our owner label.
async fn count<K>(client: &kube::Client) -> usize
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let children = ListParams::default().labels("tracedapp.dev/name");
    Api::<K>::namespaced(client.clone(), NS)
        .list(&children)
        .await
        .unwrap()
        .items
        .len()
}

/// The operator's /metrics text, if it answers.
fn metrics(port: u16) -> Option<String> {
    testkit::http::get(&format!("http://127.0.0.1:{port}/metrics"))
        .ok()
        .map(|(_, body)| body)
}

/// Every request the API server has answered (all verbs, all resources).
fn apiserver_requests(cp: &ControlPlane) -> u64 {
    testkit::prom::sum(&cp.metrics(), "apiserver_request_total") as u64
}

/// The API server's request counts by `VERB resource[/subresource]`.
fn apiserver_requests_by_kind(cp: &ControlPlane) -> BTreeMap<String, u64> {
    let text = cp.metrics();
    let mut counts = BTreeMap::new();
    for (set, n) in testkit::prom::series(&text, "apiserver_request_total") {
        let label = |k| testkit::prom::label(set, k).unwrap_or("");
        let sub = label("subresource");
        let key = format!(
            "{} {}{}{sub}",
            label("verb"),
            label("resource"),
            if sub.is_empty() { "" } else { "/" }
        );
        *counts.entry(key).or_insert(0) += n as u64;
    }
    counts
}

/// TracedApp number `i` of the benchmark.
fn bench_app(i: usize) -> TracedApp {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "metadata": {"name": format!("app-{i:03}"), "namespace": NS},
        "spec": {
            "app": {"image": "tracedapp/traced-service:0.1.0"},
            "exporters": {"jaeger": {"endpoint": "jaeger-collector.observability:4317", "tls": {"insecure": true}}}
        }
    }))
    .unwrap()
}

/// One Pod object per app, labelled as its Deployment's pods are, with a status saying Ready
/// at 127.0.0.1 (no kubelet runs here: the status is written as one would write it).
async fn ready_pods(client: &kube::Client, apps: usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    join_all((0..apps).map(|i| {
        let pods = pods.clone();
        async move {
            let name = format!("app-{i:03}-pod");
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"tracedapp.dev/name": format!("app-{i:03}")}},
                "spec": {"containers": [{"name": "app", "image": "tracedapp/traced-service:0.1.0"}]},
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
            let status = serde_json::json!({"status": {
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    }))
    .await;
}
