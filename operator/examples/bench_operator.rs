//! Benchmark of the operator on a real kube-apiserver (see BENCHMARKS.md and
//! `bench/operator.sh`, which builds the release binary and runs this).
//!
//! 1. Starts etcd + kube-apiserver (from `cargo xtask setup`), the CRD, and `tracedapp-operator`.
//! 2. Creates N TracedApps at once (concurrent creates) and measures the time until every one
//!    has its five children and `ConfigValid=True` for its generation (the children are
//!    listed only once every app says so, and the apps followed with one watch, to keep the
//!    benchmark's own load off the API server it measures).
//! 3. Plays the Deployment controller (none runs here): every Deployment's status says its pod
//!    was made, then that it is available; waits until every app is `Ready=True`. Reports the
//!    operator's passes and writes (its own /metrics), every request the API server answered
//!    minus the benchmark's own (its `apiserver_request_total`) per app until Ready, and peak
//!    RSS.
//! 4. Steady state: for S seconds, with one metadata-only change to every app at the start
//!    (forcing a pass each), counts writes to children and status, and every request other
//!    than a watch: the target is 0.
//! 5. Export health (unless `EXPORT_HEALTH=off`): each app gets one Pod object, marked Ready
//!    with the IP 127.0.0.1, where a real collector serves its own metrics; the operator reads
//!    them every 5 s (window 20 s). Reported: reads, the operator's CPU seconds over the steady
//!    state, and (with `EXPORT_HEALTH=off` for the baseline) what the reads add.
//!
//! Usage: [EXPORT_HEALTH=off] bench_operator <tracedapp-operator binary> [apps=200] [steady s=60]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher};
use testkit::kube::ControlPlane;
use testkit::{Process, free_port};
use tracedapp_api::TracedApp;

const NS: &str = "bench";

/// Requests kube-apiserver sends itself (`VERB resource`, by their end): not the operator's.
const API_SERVER_OWN: &[&str] = &[" ipaddresses", " endpoints", " leases", " endpointslices"];

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
        testkit::collector::Collector::start_for(
            &bench_app(0).spec,
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

    // The first TracedApp written after the CRD is installed costs kube-apiserver about 2 s
    // (measured without any operator running; later creates take 2-3 ms): a one-time warm-up
    // of a new CRD, paid here in a namespace the operator does not watch, before the clock.
    let t = Instant::now();
    let mut warm_up = bench_app(0);
    warm_up.metadata.namespace = Some("default".into());
    Api::<TracedApp>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &warm_up)
        .await
        .unwrap();
    eprintln!(
        "the API server's first TracedApp create (warm-up, not timed): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // One scrape before and one after: every figure about the API server is a difference of
    // the two.
    let metrics_before = cp.metrics();
    // The benchmark follows the TracedApps with one watch, not repeated lists: a list of
    // 1,000 apps every 100 ms was a load on the API server it measures.
    let api: Api<TracedApp> = Api::namespaced(client.clone(), NS);
    let (apps_seen, writer) = reflector::store::<TracedApp>();
    let watching = tokio::spawn(
        reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .for_each(|_| futures::future::ready(())),
    );
    apps_seen.wait_until_ready().await.unwrap();
    let mut own_requests = 2u64; // the watch's list and the watch
    eprintln!("creating {apps} TracedApps at once...");
    let (apiserver_cpu, etcd_cpu) = cp.cpu_seconds();
    let operator_cpu = testkit::process::cpu_seconds(operator.pid());
    let started = Instant::now();
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
        let (valid, children) = converged(&client, &apps_seen).await;
        own_requests += children.len() as u64; // the child kinds listed
        if valid == apps && !children.is_empty() && children.values().all(|&n| n == apps) {
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
    let (apiserver_mid, etcd_mid) = cp.cpu_seconds();
    let operator_mid = testkit::process::cpu_seconds(operator.pid());

    // Until Ready. No controller-manager runs here, so the benchmark writes each Deployment's
    // status as the Deployment controller would: its pod made but not available, then
    // available. Every request the operator sends for an app, from its creation until
    // `Ready=True`, is then counted.
    eprintln!("playing the Deployment controller: each Deployment made, then available...");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for available in [0, 1] {
        join_all((0..apps).map(|i| {
            let deployments = deployments.clone();
            async move {
                let status = serde_json::json!({"status": {
                    "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                    "availableReplicas": available, "readyReplicas": available,
                    "unavailableReplicas": 1 - available,
                }});
                deployments
                    .patch_status(
                        &format!("app-{i:03}"),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await
                    .unwrap();
            }
        }))
        .await;
        own_requests += apps as u64;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    testkit::wait_until("every app Ready=True", Duration::from_secs(300), || {
        apps_seen.state().iter().all(|a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
    });
    let ready_in = started.elapsed();
    watching.abort();
    let (apiserver_now, etcd_now) = cp.cpu_seconds();
    let cpu = (
        apiserver_mid - apiserver_cpu,
        etcd_mid - etcd_cpu,
        operator_mid - operator_cpu,
    );
    let cpu_to_ready = (
        apiserver_now - apiserver_cpu,
        etcd_now - etcd_cpu,
        testkit::process::cpu_seconds(operator.pid()) - operator_cpu,
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // passes triggered by our own writes
    let m = metrics(port).unwrap();
    let passes = testkit::prom::sum(&m, "tracedapp_reconciles_total");
    let writes = testkit::prom::sum(&m, "tracedapp_api_writes_total");
    let metrics_after = cp.metrics();
    // The API server's requests to itself: a Service's IP allocated as an object, the
    // `kubernetes` Service's endpoints, its identity lease.
    let internal = |m: &str| -> u64 {
        apiserver_requests_by_kind(m)
            .iter()
            .filter(|(k, _)| API_SERVER_OWN.iter().any(|own| k.ends_with(own)))
            .map(|(_, n)| n)
            .sum()
    };
    let apiserver = apiserver_requests(&metrics_after)
        - apiserver_requests(&metrics_before)
        - own_requests
        - (internal(&metrics_after) - internal(&metrics_before));

    println!("apps: {apps}");
    println!("created (concurrent POSTs): {:.2} s", created.as_secs_f64());
    println!(
        "all converged (children + ConfigValid=True): {:.2} s",
        converged_in.as_secs_f64()
    );
    println!(
        "CPU until converged: kube-apiserver {:.2} s, etcd {:.2} s, operator {:.2} s",
        cpu.0, cpu.1, cpu.2
    );
    println!(
        "until every app Ready=True (the benchmark's Deployment statuses included): {:.2} s; \
         CPU kube-apiserver {:.2} s ({:.1} ms per app), etcd {:.2} s, operator {:.2} s",
        ready_in.as_secs_f64(),
        cpu_to_ready.0,
        1000.0 * cpu_to_ready.0 / apps as f64,
        cpu_to_ready.1,
        cpu_to_ready.2
    );
    println!(
        "operator passes: {passes} ({:.2} per app), {:.0} ms each on average",
        passes / apps as f64,
        1000.0 * testkit::prom::sum(&m, "tracedapp_reconcile_duration_seconds_sum") / passes
    );
    println!(
        "operator writes: {writes} ({:.2} per app, {:.2} per pass)",
        writes / apps as f64,
        writes / passes
    );
    println!(
        "API requests by the operator until Ready (API server count minus the benchmark's and \
         its own): \
         {apiserver} ({:.2} per app, {:.2} per pass)",
        apiserver as f64 / apps as f64,
        apiserver as f64 / passes
    );
    let by_kind_before = apiserver_requests_by_kind(&metrics_before);
    let mut by_kind: Vec<(String, u64)> = apiserver_requests_by_kind(&metrics_after)
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
        "API server mean time per request (ms; WATCH left out): {}",
        apiserver_latency_ms(&metrics_before, &metrics_after)
            .iter()
            .take(12)
            .map(|(k, n, ms)| format!("{k} {ms:.1} (x{n})"))
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
    let requests_before = apiserver_requests_by_kind(&cp.metrics());
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
    // Requests other than watches in the steady state, the benchmark's patches left out.
    let requests_after = apiserver_requests_by_kind(&cp.metrics());
    let others: BTreeMap<&String, u64> = requests_after
        .iter()
        .filter(|(k, _)| !k.starts_with("WATCH"))
        .map(|(k, n)| (k, n - requests_before.get(k).copied().unwrap_or(0)))
        .filter(|(k, n)| {
            *n > 0
                && k.as_str() != "PATCH tracedapps"
                && !k.ends_with(' ')
                && !API_SERVER_OWN.iter().any(|own| k.ends_with(own))
        })
        .collect();
    println!(
        "steady state {steady} s: API requests other than watches, the benchmark's own left \
         out: {others:?}"
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
async fn converged(
    client: &kube::Client,
    apps: &reflector::Store<TracedApp>,
) -> (usize, BTreeMap<&'static str, usize>) {
    let apps = apps.state();
    let valid = apps
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
    if valid < apps.len() || apps.is_empty() {
        // Children are applied before the status says ConfigValid: count them only then, so
        // that the benchmark's own lists do not load the API server it measures.
        return (valid, BTreeMap::new());
    }
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
fn apiserver_requests(metrics: &str) -> u64 {
    testkit::prom::sum(metrics, "apiserver_request_total") as u64
}

/// The API server's request counts by `VERB resource[/subresource]`.
fn apiserver_requests_by_kind(metrics: &str) -> BTreeMap<String, u64> {
    by_kind(metrics, "apiserver_request_total")
        .into_iter()
        .map(|(k, n)| (k, n as u64))
        .collect()
}

/// The samples of one API server metric family summed by "VERB resource[/subresource]".
fn by_kind(text: &str, family: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for (set, n) in testkit::prom::series(text, family) {
        let label = |k| testkit::prom::label(set, k).unwrap_or("");
        let sub = label("subresource");
        let key = format!(
            "{} {}{}{sub}",
            label("verb"),
            label("resource"),
            if sub.is_empty() { "" } else { "/" }
        );
        *counts.entry(key).or_insert(0.0) += n;
    }
    counts
}

/// The API server's mean time per request (ms) by "VERB resource" since `before` (its
/// metrics text then), slowest first.
fn apiserver_latency_ms(before: &str, after: &str) -> Vec<(String, f64, f64)> {
    let family = "apiserver_request_duration_seconds";
    let delta = |suffix: &str| {
        let (b, a) = (
            by_kind(before, &format!("{family}_{suffix}")),
            by_kind(after, &format!("{family}_{suffix}")),
        );
        a.into_iter()
            .map(|(k, v)| {
                let d = v - b.get(&k).copied().unwrap_or(0.0);
                (k, d)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (sums, counts) = (delta("sum"), delta("count"));
    let mut out: Vec<(String, f64, f64)> = counts
        .into_iter()
        .filter(|(k, n)| *n > 0.0 && !k.starts_with("WATCH"))
        .map(|(k, n)| {
            let ms = 1000.0 * sums.get(&k).copied().unwrap_or(0.0) / n;
            (k, n, ms)
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
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
