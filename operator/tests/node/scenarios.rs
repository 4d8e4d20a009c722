//! The scenarios, in the order they run. Each one says what a user would see, and fails if
//! they would not see it.

use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value;

use crate::cluster::{
    Jaeger, Rig, Scenario, get, in_node, node_port, now_us, repo_file, tag, wait,
};

/// Every scenario, in order.
pub const ALL: &[(&str, Scenario)] = &[
    ("readme_kind_walkthrough_runs_on_real_pods", walkthrough),
    (
        "collector_sidecar_starts_first_and_runs_restricted",
        sidecar,
    ),
    ("rollout_and_pod_deletion_lose_no_span", rollout),
    (
        "killed_collector_restarts_and_spans_resume",
        collector_crash,
    ),
    (
        "replaced_operator_takes_over_without_writes",
        operator_replaced,
    ),
    (
        "second_operator_leads_when_the_leader_goes",
        leader_election,
    ),
    ("failing_probe_and_stuck_rollout_are_reported", failures),
    (
        "network_policy_narrows_and_is_enforced",
        crate::policy::network_policy,
    ),
    (
        "operator_upgrade_moves_the_selector_without_a_restart",
        crate::policy::selector_upgrade,
    ),
    (
        "hostile_collector_metrics_do_not_stall_the_operator",
        crate::policy::hostile_tenant,
    ),
    (
        "export_health_follows_jaeger_and_xray",
        crate::export::export_health,
    ),
    (
        "collector_burst_at_default_limits_is_refused_not_oom_killed",
        crate::burst::burst_at_default_limits,
    ),
    (
        "deleting_the_tracedapp_removes_its_pods_and_children",
        deletion,
    ),
];

pub(crate) const DEMO: &str = "demo";
pub(crate) const APP: &str = "hello";
pub(crate) const OPERATOR_NS: &str = "tracedapp-system";

/// The commands of the README's kind walk-through (the ```sh block under "A local cluster
/// with kind"), continuation lines joined and comments dropped.
fn readme_walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README.md");
    let section = readme
        .split_once("### A local cluster with kind")
        .expect("the README has the kind walk-through")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the walk-through has a sh block")
        .0;
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line
            .split_once("  #")
            .map_or(line, |(code, _)| code)
            .trim_end();
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let command = current.split_whitespace().collect::<Vec<_>>().join(" ");
                if !command.is_empty() {
                    commands.push(command);
                }
                current.clear();
            }
        }
    }
    commands
}

/// `localhost:<port>` → the node's address for the NodePort kind maps it to.
fn through_kind_mapping(url: &str) -> (String, String) {
    let rest = url
        .trim_start_matches("http://")
        .strip_prefix("localhost:")
        .unwrap_or_else(|| panic!("{url}: the walk-through only calls localhost"));
    let (port, path) = rest
        .split_once('/')
        .map_or((rest, ""), |(p, path)| (p, path));
    let port: u16 = port.parse().expect("a port");
    let (_, node) = testkit::node::kind_port_mappings()
        .expect("kind-config.yaml")
        .into_iter()
        .find(|(host, _)| *host == port)
        .unwrap_or_else(|| panic!("kind-config.yaml maps no localhost:{port}"));
    (node_port(node), format!("/{path}"))
}

pub(crate) fn jaeger() -> Jaeger {
    let (addr, _) = through_kind_mapping("http://localhost:16686");
    Jaeger { addr }
}

/// The README's kind walk-through, command for command. The rig stands in for
/// `kind create cluster`, `docker build` and `kind load` (the cluster runs, the images are
/// imported); `kubectl get ta -w` is watched until READY True, 2/2; `localhost:<port>` is
/// the node port kind-config.yaml maps it to. Then: the operator pod is Ready by its own
/// probes and uses the chart's ServiceAccount, and `/chain` through the app's NodePort makes
/// a two-hop trace in the in-cluster Jaeger with the right parentage.
fn walkthrough(rig: &Rig) -> Result<(), Failed> {
    let mut chain_answer = None;
    for command in readme_walkthrough() {
        let words: Vec<&str> = command.split(' ').collect();
        eprintln!("walk-through: {command}");
        match words[0] {
            "kind" | "docker" => {
                assert!(
                    command.starts_with("kind create cluster")
                        || command.starts_with("docker build")
                        || command.starts_with("kind load"),
                    "the rig cannot stand in for `{command}`"
                );
            }
            "helm" => {
                rig.helm_ok(&words[1..]);
            }
            "kubectl" if command.contains(" -w") => {
                let args: Vec<&str> = words[1..].iter().copied().filter(|w| *w != "-w").collect();
                let mut table = String::new();
                wait(
                    "kubectl get ta to show READY True and 2/2",
                    Duration::from_secs(180),
                    || {
                        table = rig.kubectl_ok(&args);
                        table.lines().any(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            f.first() == Some(&APP)
                                && f.get(1) == Some(&"True")
                                && f.get(2) == Some(&"2/2")
                        })
                    },
                )
                .map_err(|e| format!("{e}; last table:\n{table}"))?;
                eprintln!("{table}");
            }
            "kubectl" => {
                rig.kubectl_ok(&words[1..]);
            }
            "curl" => {
                let (addr, path) = through_kind_mapping(words[1]);
                let mut last = Err(String::new());
                wait(
                    &format!("GET {addr}{path}"),
                    Duration::from_secs(60),
                    || {
                        last = get(&addr, &path);
                        matches!(last, Ok((200, _)))
                    },
                )
                .map_err(|e| format!("{e}: {last:?}"))?;
                chain_answer = last.ok();
            }
            "open" => {
                let (addr, _) = through_kind_mapping(words[1]);
                wait(
                    "Jaeger's UI port to answer",
                    Duration::from_secs(60),
                    || get(&addr, "/api/services").is_ok_and(|(code, _)| code == 200),
                )?;
            }
            other => {
                return Err(format!(
                    "the walk-through runs `{other}`, which the rig does not know"
                )
                .into());
            }
        }
    }

    // The operator: Running, Ready by its own probes, the chart's ServiceAccount, in-cluster.
    let operators = rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator");
    assert_eq!(operators.len(), 1, "{operators:?}");
    let pod = rig.json(&["get", "pod", "-n", OPERATOR_NS, &operators[0]]);
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "the operator pod is Ready"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "tracedapp-operator");
    assert!(pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz");

    // /chain: a trace through two hops (hello → its Service → hello), parentage right.
    let (_, body) = chain_answer.ok_or("the walk-through never called /chain")?;
    let answer: Value = serde_json::from_str(&body)?;
    assert!(
        answer.get("downstream").is_some(),
        "/chain nests the downstream's answer: {body}"
    );
    let jaeger = jaeger();
    let mut chain = None;
    wait(
        "the /chain trace in Jaeger",
        Duration::from_secs(60),
        || {
            chain = jaeger.traces(APP, 50).into_iter().find(|t| {
                spans(t).iter().any(|s| s["operationName"] == "GET /chain") && spans(t).len() >= 3
            });
            chain.is_some()
        },
    )?;
    let trace = chain.expect("found");
    let spans = spans(&trace);
    let find = |pred: &dyn Fn(&Value) -> bool| spans.iter().find(|s| pred(s)).cloned();
    let root = find(&|s| s["operationName"] == "GET /chain").expect("server span of /chain");
    assert!(parent(&root).is_none(), "GET /chain is the root");
    let client = find(&|s| tag(s, "span.kind") == Some(&Value::from("client")))
        .ok_or("a CLIENT span for the downstream call")?;
    assert_eq!(
        parent(&client),
        root["spanID"].as_str(),
        "the call is a child of /chain"
    );
    let downstream =
        find(&|s| s["operationName"] == "GET /").ok_or("the downstream's server span")?;
    assert_eq!(
        parent(&downstream),
        client["spanID"].as_str(),
        "the downstream's span is a child of the call"
    );
    Ok(())
}

/// The spans of a Jaeger trace.
fn spans(trace: &Value) -> Vec<Value> {
    trace["spans"].as_array().cloned().unwrap_or_default()
}

/// The parent span id of a Jaeger span (its CHILD_OF reference).
fn parent(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
}

/// The collector is a native sidecar: it starts (and logs) before the app, and the app's OTLP
/// export reaches it on localhost (the spans above arrived through it). Both containers run
/// with what the kernel says is a restricted context: not root, no new privileges, no
/// capabilities, seccomp filtering, a read-only root filesystem.
fn sidecar(rig: &Rig) -> Result<(), Failed> {
    let pods = rig.pods(DEMO, &format!("app.kubernetes.io/instance={APP}"));
    assert_eq!(pods.len(), 2, "{pods:?}");
    for pod in &pods {
        let first_line_time = |container: &str| {
            rig.kubectl_ok(&["logs", "-n", DEMO, pod, "-c", container, "--timestamps"])
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let (collector, app) = (first_line_time("otel-collector"), first_line_time("app"));
        assert!(
            !collector.is_empty() && !app.is_empty() && collector < app,
            "{pod}: the collector logs first ({collector}) before the app ({app})"
        );
        for container in ["otel-collector", "app"] {
            let pid = rig.container_pid(DEMO, pod, container);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let what = format!("{pod}/{container} (pid {pid})");
            assert!(
                !field("Uid:").starts_with("0\t") && !field("Uid:").starts_with("0 "),
                "{what}: not root: {}",
                field("Uid:")
            );
            assert_eq!(field("NoNewPrivs:"), "1", "{what}: no privilege escalation");
            assert_eq!(
                field("CapEff:"),
                "0000000000000000",
                "{what}: no capabilities"
            );
            assert_eq!(
                field("CapBnd:"),
                "0000000000000000",
                "{what}: none to gain either"
            );
            assert_eq!(
                field("Seccomp:"),
                "2",
                "{what}: seccomp filter (RuntimeDefault)"
            );
            let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
            let root = mountinfo
                .lines()
                .find(|l| l.split(' ').nth(4) == Some("/"))
                .ok_or("no root mount")?;
            let options = root.split(' ').nth(5).unwrap_or_default();
            assert!(
                options.split(',').any(|o| o == "ro"),
                "{what}: read-only root filesystem ({options})"
            );
        }
    }
    Ok(())
}

/// Requests sent to one address from a thread until stopped: answered (200) and failed.
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Load {
    /// About `per_second` GETs of `path` on `addr` per second.
    pub(crate) fn start(addr: String, path: &'static str, per_second: u64) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut answered, mut failed) = (0, Vec::new());
            let gap = Duration::from_millis(1000 / per_second.max(1));
            while !flag.load(Ordering::SeqCst) {
                match get(&addr, path) {
                    Ok((200, _)) => answered += 1,
                    Ok((code, body)) => failed.push(format!("{code} {body}")),
                    Err(e) => failed.push(e),
                }
                std::thread::sleep(gap);
            }
            (answered, failed)
        });
        Self { stop, thread }
    }

    /// Stops; `(answered, failures)`.
    pub(crate) fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the load thread")
    }
}

/// SERVER spans of `GET /` by `service` that started in `[start, end]` (µs).
fn server_spans(jaeger: &Jaeger, service: &str, start: u128, end: u128) -> Vec<Value> {
    jaeger
        .traces_between(service, "GET /", start, end)
        .iter()
        .flat_map(spans)
        .filter(|s| {
            s["operationName"] == "GET /" && tag(s, "span.kind") == Some(&Value::from("server"))
        })
        .filter(|s| {
            s["startTime"]
                .as_u64()
                .is_some_and(|t| u128::from(t) >= start && u128::from(t) <= end)
        })
        .collect()
}

/// Waits until Jaeger holds `expected` server spans for the window, then compares.
pub(crate) fn assert_spans_arrive(
    jaeger: &Jaeger,
    start: u128,
    end: u128,
    expected: u64,
) -> Result<(), Failed> {
    let mut seen = 0;
    let _ = wait("every span in Jaeger", Duration::from_secs(60), || {
        seen = server_spans(jaeger, APP, start, end).len() as u64;
        seen >= expected
    });
    if seen == expected {
        Ok(())
    } else {
        Err(format!("{expected} requests answered, {seen} server spans in Jaeger").into())
    }
}

/// Where the host reaches a Service's `port` (its ClusterIP, inside the node).
pub(crate) fn service_addr(rig: &Rig, ns: &str, service: &str, port: u16) -> String {
    in_node(
        &rig.jsonpath(ns, &format!("svc/{service}"), "{.spec.clusterIP}"),
        port,
    )
}

pub(crate) fn rolled_out(rig: &Rig) -> Result<(), Failed> {
    // First the operator's pass over the latest spec: until it has applied the Deployment,
    // `rollout status` and the conditions still describe the previous spec's pods (a patch
    // followed at once by this wait raced the operator, and traffic reached the old pods).
    wait(
        "the operator to apply the TracedApp's latest spec",
        Duration::from_secs(60),
        || {
            let ta = format!("ta/{APP}");
            let generation = rig.jsonpath(DEMO, &ta, "{.metadata.generation}");
            !generation.is_empty()
                && rig.jsonpath(DEMO, &ta, "{.status.observedGeneration}") == generation
        },
    )?;
    rig.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        DEMO,
        &format!("deploy/{APP}"),
        "--timeout=180s",
    ]);
    wait(
        "the TracedApp Ready with every pod updated",
        Duration::from_secs(60),
        || {
            rig.condition(DEMO, APP, "Ready").0 == "True"
                && rig.condition(DEMO, APP, "Progressing").1 == "RolloutComplete"
        },
    )?;
    // And the previous pods gone, not only replaced: a terminating pod still answers on the
    // connections it holds (a `/chain` downstream call, a client's keep-alive), with the
    // previous spec's exporters.
    wait(
        "the previous pods to be gone",
        Duration::from_secs(90),
        || {
            let deleting = rig.kubectl(&[
                "get",
                "pods",
                "-n",
                DEMO,
                "-l",
                &format!("tracedapp.dev/name={APP}"),
                "-o=jsonpath={range .items[*]}{.metadata.deletionTimestamp}{end}",
            ]);
            deleting.status.success() && deleting.stdout.is_empty()
        },
    )?;
    Ok(())
}

/// Steady traffic through the app's Service while (a) a spec change rolls every pod (a new
/// collector config hash) and (b) a pod is deleted: every request is answered, and every
/// answered request's server span reaches Jaeger.
fn rollout(rig: &Rig) -> Result<(), Failed> {
    let jaeger = jaeger();
    let addr = service_addr(rig, DEMO, APP, 3000);
    let start = now_us();
    let load = Load::start(addr, "/", 40);
    std::thread::sleep(Duration::from_secs(2));
    let hash = rig.jsonpath(DEMO, &format!("ta/{APP}"), "{.status.collectorConfigHash}");
    rig.kubectl_ok(&[
        "patch",
        "-n",
        DEMO,
        &format!("ta/{APP}"),
        "--type=merge",
        "-p",
        r#"{"spec":{"collector":{"batch":{"sendBatchSize":200}}}}"#,
    ]);
    wait("a new collector config", Duration::from_secs(30), || {
        let now = rig.jsonpath(DEMO, &format!("ta/{APP}"), "{.status.collectorConfigHash}");
        !now.is_empty() && now != hash
    })?;
    rolled_out(rig)?;
    let victim = rig.pods(DEMO, &format!("app.kubernetes.io/instance={APP}"))[0].clone();
    rig.kubectl_ok(&["delete", "pod", "-n", DEMO, &victim]);
    rolled_out(rig)?;
    std::thread::sleep(Duration::from_secs(2));
    let (answered, failed) = load.finish();
    let end = now_us();
    eprintln!("rollout: {answered} answered, {} failed", failed.len());
    assert!(answered > 100, "the load ran ({answered} answered)");
    assert!(
        failed.is_empty(),
        "{} requests failed during the rollout, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_spans_arrive(&jaeger, start, end, answered)
}

/// Kill the collector process in a pod: the kubelet restarts the sidecar, the app keeps
/// answering meanwhile, and its spans reach Jaeger again.
fn collector_crash(rig: &Rig) -> Result<(), Failed> {
    let jaeger = jaeger();
    let pod = rig.pods(DEMO, &format!("app.kubernetes.io/instance={APP}"))[0].clone();
    let ip = rig.jsonpath(DEMO, &format!("pod/{pod}"), "{.status.podIP}");
    let restarts = || {
        rig.jsonpath(
            DEMO,
            &format!("pod/{pod}"),
            "{.status.initContainerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .unwrap_or(0)
    };
    let before = restarts();
    let pid = rig.container_pid(DEMO, &pod, "otel-collector");
    let load = Load::start(in_node(&ip, 3000), "/health", 20);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    assert!(killed.success());
    wait(
        "the kubelet to restart the collector",
        Duration::from_secs(60),
        || restarts() > before,
    )?;
    wait(
        "the restarted collector to be ready",
        Duration::from_secs(60),
        || {
            rig.jsonpath(
                DEMO,
                &format!("pod/{pod}"),
                "{.status.initContainerStatuses[0].ready}",
            ) == "true"
        },
    )?;
    let (answered, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "the app stopped answering while its collector was down: {failed:?}"
    );
    assert!(answered > 10, "{answered}");
    // Spans resume: requests now are all in Jaeger.
    let start = now_us();
    for _ in 0..20 {
        assert!(matches!(get(&in_node(&ip, 3000), "/"), Ok((200, _))));
    }
    let end = now_us();
    assert_spans_arrive(&jaeger, start, end, 20)
}

/// The operator pods of the chart.
fn operator_pods(rig: &Rig) -> Vec<String> {
    rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator")
}

/// A sample of the operator's `/metrics` in pod `pod` (`family{labels}`), or the sum of a
/// family (`family`); 0 when absent.
fn operator_metric(rig: &Rig, pod: &str, sample: &str) -> f64 {
    let ip = rig.jsonpath(OPERATOR_NS, &format!("pod/{pod}"), "{.status.podIP}");
    let Ok((200, body)) = get(&in_node(&ip, 8080), "/metrics") else {
        return 0.0;
    };
    if sample.contains('{') {
        testkit::prom::sample(&body, sample).unwrap_or(0.0)
    } else {
        testkit::prom::sum(&body, sample)
    }
}

/// Writes to what only the operator writes: children and TracedApp status (Events aside:
/// others write those too).
pub(crate) fn child_writes(rig: &Rig) -> u64 {
    testkit::kube::OPERATOR_WRITE_RESOURCES
        .iter()
        .filter(|r| **r != "events")
        .map(|r| rig.api_writes(r))
        .sum()
}

fn wait_operator_ready(rig: &Rig, count: usize) -> Result<Vec<String>, Failed> {
    let mut pods = Vec::new();
    wait(
        &format!("{count} operator pod(s) Ready"),
        Duration::from_secs(120),
        || {
            pods = operator_pods(rig);
            pods.len() == count
                && pods.iter().all(|p| {
                    rig.jsonpath(
                        OPERATOR_NS,
                        &format!("pod/{p}"),
                        "{.status.conditions[?(@.type==\"Ready\")].status}",
                    ) == "True"
                })
        },
    )?;
    Ok(pods)
}

/// Delete the operator pod: its replacement leads, reconciles the converged app without a
/// single write, and there is still exactly one of each child.
fn operator_replaced(rig: &Rig) -> Result<(), Failed> {
    let old = wait_operator_ready(rig, 1)?;
    std::thread::sleep(Duration::from_secs(3));
    let writes = child_writes(rig);
    rig.kubectl_ok(&["delete", "pod", "-n", OPERATOR_NS, &old[0]]);
    let new = wait_operator_ready(rig, 1)?;
    assert_ne!(new, old);
    wait(
        "the new operator to lead and reconcile",
        Duration::from_secs(60),
        || {
            operator_metric(rig, &new[0], "tracedapp_leader") == 1.0
                && operator_metric(rig, &new[0], "tracedapp_reconciles_total{result=\"ok\"}") >= 1.0
        },
    )?;
    std::thread::sleep(Duration::from_secs(3));
    let own = operator_metric(rig, &new[0], "tracedapp_api_writes_total");
    if own != 0.0 {
        let ip = rig.jsonpath(OPERATOR_NS, &format!("pod/{}", new[0]), "{.status.podIP}");
        let metrics = get(&in_node(&ip, 8080), "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let writes: Vec<&str> = metrics.lines().filter(|l| l.contains("writes")).collect();
        let logs = rig.kubectl_ok(&["logs", "-n", OPERATOR_NS, &new[0]]);
        return Err(format!("the new operator wrote: {writes:#?}\nits log:\n{logs}").into());
    }
    assert_eq!(
        child_writes(rig),
        writes,
        "writes to children and status, counted by the API server"
    );
    for (kind, most) in [
        ("deployments", 1),
        ("services", 1),
        ("serviceaccounts", 1),
        ("configmaps", 3),
    ] {
        let n = rig
            .kubectl_ok(&[
                "get",
                kind,
                "-n",
                DEMO,
                "-l",
                &format!("tracedapp.dev/name={APP}"),
                "-o=name",
            ])
            .lines()
            .count();
        assert!(n >= 1 && n <= most, "{n} {kind} for {APP}");
    }
    Ok(())
}

/// Two replicas (the chart's replicaCount): one holds the Lease. Delete the leader's pod, and
/// another replica leads within the lease duration; kill the new leader's process outright,
/// and within the lease duration exactly one replica leads again.
fn leader_election(rig: &Rig) -> Result<(), Failed> {
    rig.set_operator_values(&["replicaCount=2"], false);
    let pods = wait_operator_ready(rig, 2)?;
    let lease_duration: u64 = rig
        .jsonpath(
            OPERATOR_NS,
            "lease/tracedapp-operator",
            "{.spec.leaseDurationSeconds}",
        )
        .parse()?;
    let holder = || {
        rig.jsonpath(
            OPERATOR_NS,
            "lease/tracedapp-operator",
            "{.spec.holderIdentity}",
        )
    };
    let mut leader = String::new();
    wait(
        "one replica to hold the lease",
        Duration::from_secs(30),
        || {
            leader = holder();
            pods.contains(&leader)
        },
    )?;
    let leaders: Vec<f64> = pods
        .iter()
        .map(|p| operator_metric(rig, p, "tracedapp_leader"))
        .collect();
    assert_eq!(
        leaders.iter().sum::<f64>(),
        1.0,
        "exactly one leads: {leaders:?}"
    );

    let started = std::time::Instant::now();
    rig.kubectl_ok(&["delete", "pod", "-n", OPERATOR_NS, &leader, "--wait=false"]);
    let mut next = String::new();
    wait(
        "another replica to lead",
        Duration::from_secs(lease_duration + 5),
        || {
            next = holder();
            !next.is_empty() && next != leader
        },
    )?;
    let took = started.elapsed();
    // The follower, or the pod that replaces the deleted one (a new process tries the freed
    // Lease at once, and may win): either way another replica leads.
    eprintln!("leader: {leader} deleted, {next} leads after {took:.1?}");
    assert!(
        took.as_secs() <= lease_duration,
        "took {took:?}, lease {lease_duration} s"
    );

    // A crash: the container restarts under the same pod name (so possibly the same Lease
    // identity); within the lease duration some replica must lead again, and only one.
    let pid = rig.container_pid(OPERATOR_NS, &next, "operator");
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    std::thread::sleep(Duration::from_millis(500));
    let mut leading = Vec::new();
    wait(
        "one replica leading again after a crash",
        Duration::from_secs(2 * lease_duration + 10),
        || {
            let pods = operator_pods(rig);
            leading = pods
                .iter()
                .filter(|p| operator_metric(rig, p, "tracedapp_leader") == 1.0)
                .cloned()
                .collect();
            leading.len() == 1 && holder() == leading[0]
        },
    )?;
    let took = started.elapsed();
    eprintln!(
        "leader: {next} killed, {} leads after {took:.1?}",
        leading[0]
    );
    assert!(
        took.as_secs() <= lease_duration + 5,
        "took {took:?}, lease {lease_duration} s"
    );
    rig.set_operator_values(&["replicaCount=1"], false);
    wait_operator_ready(rig, 1)?;
    Ok(())
}

/// Event reasons and messages about TracedApp `name` in `demo`.
pub(crate) fn events(rig: &Rig, name: &str) -> Vec<(String, String)> {
    let list = rig.json(&[
        "get",
        "events.events.k8s.io",
        "-n",
        DEMO,
        &format!("--field-selector=regarding.name={name}"),
    ]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A wrong `healthPath` (the readiness probe fails): `Ready=False` saying so, with a warning
/// Event; with a short progress deadline the stuck rollout makes `Degraded` True with
/// `ProgressDeadlineExceeded`.
fn failures(rig: &Rig) -> Result<(), Failed> {
    let image = rig.jsonpath(DEMO, &format!("ta/{APP}"), "{.spec.app.image}");
    let spec = format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: broken, namespace: {DEMO}}}\n\
         spec:\n  app: {{image: \"{image}\", healthPath: /nope, progressDeadlineSeconds: 15, \
         env: [{{name: LITERAL, value: \"$(K8S_POD_NAME)\"}}]}}\n  \
         exporters: {{jaeger: {{endpoint: \"jaeger-collector.observability:4317\", tls: {{insecure: true}}}}}}\n"
    );
    rig.kubectl_stdin(&["apply", "-f", "-"], &spec);
    wait(
        "Ready=False with ReadinessProbeFailing",
        Duration::from_secs(90),
        || {
            rig.condition(DEMO, "broken", "Ready")
                == ("False".into(), "ReadinessProbeFailing".into())
        },
    )?;
    let message = rig.jsonpath(
        DEMO,
        "ta/broken",
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    );
    assert!(message.contains("GET /nope"), "{message}");
    wait(
        "a NotReady warning event naming the probe",
        Duration::from_secs(30),
        || {
            events(rig, "broken")
                .iter()
                .any(|(r, note)| r == "NotReady" && note.contains("/nope"))
        },
    )?;
    wait(
        "Degraded with ProgressDeadlineExceeded",
        Duration::from_secs(90),
        || {
            rig.condition(DEMO, "broken", "Degraded")
                == ("True".into(), "ProgressDeadlineExceeded".into())
        },
    )?;
    wait("a Degraded event", Duration::from_secs(30), || {
        events(rig, "broken").iter().any(|(r, _)| r == "Degraded")
    })?;
    // A user's `$(NAME)` reaches the process as text, as on ECS (the kernel's view of its
    // environment).
    let pod = rig.pods(DEMO, "app.kubernetes.io/instance=broken")[0].clone();
    let pid = rig.container_pid(DEMO, &pod, "app");
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        vars.iter().any(|v| v == "LITERAL=$(K8S_POD_NAME)"),
        "not expanded: {vars:?}"
    );
    rig.kubectl_ok(&["delete", "ta", "broken", "-n", DEMO, "--wait=true"]);
    Ok(())
}

/// Delete the TracedApp: its pods, Deployment, Service, ServiceAccount and ConfigMaps go.
fn deletion(rig: &Rig) -> Result<(), Failed> {
    rig.kubectl_ok(&["delete", "ta", APP, "-n", DEMO]);
    let selector = format!("tracedapp.dev/name={APP}");
    wait(
        "every child and pod of the app to be gone",
        Duration::from_secs(120),
        || {
            rig.kubectl_ok(&[
                "get",
                "deployments,services,serviceaccounts,configmaps,pods",
                "-n",
                DEMO,
                "-l",
                &selector,
                "-o=name",
            ])
            .trim()
            .is_empty()
        },
    )?;
    Ok(())
}
