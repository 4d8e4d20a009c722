//! What a TracedApp opens and what it holds, on real pods with NetworkPolicies enforced
//! (kube-router's policy controller): the operator's policy only narrows, an operator upgrade
//! moves Deployments to the current selector without a restart, and one tenant's hostile
//! collector cannot stall the operator for another.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;
use testkit::node::images::HOSTILE_COLLECTOR_IMAGE;
use testkit::node::netns;

use crate::cluster::{Rig, wait};
use crate::scenarios::{
    APP, DEMO, Load, OPERATOR_NS, assert_spans_arrive, jaeger, rolled_out, service_addr,
};

/// A restricted pod (the API server enforces the standard) running `image` in `ns`.
fn pod_yaml(ns: &str, name: &str, image: &str, labels: &str, port: Option<u16>) -> String {
    let ports = port.map_or(String::new(), |p| {
        format!("\n      ports: [{{containerPort: {p}}}]\n      readinessProbe: {{tcpSocket: {{port: {p}}}, periodSeconds: 1}}")
    });
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {labels}
spec:
  securityContext: {{runAsNonRoot: true, runAsUser: 65534, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
    - name: main
      image: {image}
      env: [{{name: OTEL_SDK_DISABLED, value: "true"}}]
      securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}, readOnlyRootFilesystem: true}}{ports}
"#
    )
}

/// The network namespace of a running pod (its first container's process).
fn pod_netns(rig: &Rig, ns: &str, pod: &str, container: &str) -> std::path::PathBuf {
    let pid = rig.container_pid(ns, pod, container);
    format!("/proc/{pid}/ns/net").into()
}

/// Whether a connection from `from` (a pod's network namespace) to `to` succeeds within 2 s.
fn connects(from: &std::path::Path, to: SocketAddr) -> bool {
    netns::connect_from(from, to, Duration::from_secs(2)).is_ok()
}

/// Waits until `connects(from, to) == open` holds three times in a row (policies take a moment
/// to be programmed); the error says what was expected.
fn settles(from: &std::path::Path, to: SocketAddr, open: bool, what: &str) -> Result<(), String> {
    let mut in_a_row = 0;
    wait(what, Duration::from_secs(60), || {
        if connects(from, to) == open {
            in_a_row += 1;
        } else {
            in_a_row = 0;
        }
        in_a_row >= 3
    })
}

/// The collector's own telemetry port (export health reads it).
const TELEMETRY: u16 = tracedapp_api::collector::TELEMETRY_PORT as u16;

fn pod_ip(rig: &Rig, ns: &str, pod: &str) -> String {
    rig.jsonpath(ns, &format!("pod/{pod}"), "{.status.podIP}")
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().expect("an address")
}

/// In a namespace that denies ingress by default: another namespace's pod cannot reach the
/// app before or after the TracedApp exists, nor a Helm release's pods that wear the same
/// `app.kubernetes.io/*` labels; the operator reads the collector's telemetry port (export
/// health turns True) and the app reaches its collector (its spans arrive). Naming the
/// outsider's namespace in `spec.networkPolicy.appFrom` opens the app's port to it, and only
/// that port of only the app. The service name's `$(...)` stays text on the way.
pub fn network_policy(rig: &Rig) -> Result<(), Failed> {
    const LOCKED: &str = "locked";
    const OUTSIDER: &str = "outsider";
    const NAME: &str = "np";
    let images = testkit::node::images::Names::shipped()?;
    for ns in [LOCKED, OUTSIDER] {
        rig.kubectl_ok(&["create", "namespace", ns]);
    }
    rig.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: {LOCKED}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n"
        ),
    );
    // A Helm release of the same name: the labels the operator once selected by.
    rig.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml(
            LOCKED,
            "np-helm",
            &images.service,
            &format!("{{app.kubernetes.io/name: {NAME}, app.kubernetes.io/instance: {NAME}}}"),
            Some(3000),
        ),
    );
    rig.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml(
            OUTSIDER,
            "client",
            testkit::node::PAUSE_IMAGE,
            "{role: client}",
            None,
        ),
    );
    for (ns, pod) in [(LOCKED, "np-helm"), (OUTSIDER, "client")] {
        rig.kubectl_ok(&[
            "wait",
            "-n",
            ns,
            &format!("pod/{pod}"),
            "--for=condition=Ready",
            "--timeout=120s",
        ]);
    }
    let client = pod_netns(rig, OUTSIDER, "client", "main");
    let helm = addr(&pod_ip(rig, LOCKED, "np-helm"), 3000);
    settles(
        &client,
        helm,
        false,
        "the default deny to hold before any TracedApp",
    )?;

    rig.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: {NAME}, namespace: {LOCKED}}}
spec:
  app: {{image: "{}", replicas: 1}}
  serviceName: "np-$(K8S_NAMESPACE_NAME)"
  exporters:
    jaeger: {{endpoint: "jaeger-collector.observability:4317", tls: {{insecure: true}}}}
"#,
            images.service
        ),
    );
    wait("np READY", Duration::from_secs(120), || {
        rig.condition(LOCKED, NAME, "Ready").0 == "True"
    })?;
    let np_pod = rig.pods(LOCKED, &format!("tracedapp.dev/name={NAME}"))[0].clone();
    let np_ip = pod_ip(rig, LOCKED, &np_pod);
    settles(
        &client,
        addr(&np_ip, 3000),
        false,
        "the app closed to another namespace",
    )?;
    settles(&client, helm, false, "the look-alike pods still closed")?;
    settles(
        &client,
        addr(&np_ip, TELEMETRY),
        false,
        "the telemetry port closed to another namespace",
    )?;
    // The operator reaches the telemetry port: from its pod, and through export health.
    let operator = rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator")[0].clone();
    let from_operator = pod_netns(rig, OPERATOR_NS, &operator, "operator");
    settles(
        &from_operator,
        addr(&np_ip, TELEMETRY),
        true,
        "the operator reaching the collector's telemetry port",
    )?;
    // Traffic from the node (the kubelet's probes, this forward) is the node's own; the app's
    // spans go to its collector and on to Jaeger, under the service name as written.
    let through_node = crate::cluster::in_node(&np_ip, 3000);
    for _ in 0..5 {
        crate::cluster::get(&through_node, "/")?;
    }
    let jaeger = jaeger();
    wait("the app's spans in Jaeger", Duration::from_secs(60), || {
        !jaeger.traces("np-$(K8S_NAMESPACE_NAME)", 1).is_empty()
    })?;

    // Opened to the outsider's namespace: the app's port only.
    rig.kubectl_ok(&[
        "patch",
        "-n",
        LOCKED,
        &format!("ta/{NAME}"),
        "--type=merge",
        "-p",
        &format!(
            r#"{{"spec":{{"networkPolicy":{{"appFrom":[{{"namespaceSelector":{{"matchLabels":{{"kubernetes.io/metadata.name":"{OUTSIDER}"}}}}}}]}}}}}}"#
        ),
    ]);
    settles(
        &client,
        addr(&np_ip, 3000),
        true,
        "the app open to the named namespace",
    )?;
    settles(&client, helm, false, "the look-alike pods still closed")?;
    settles(
        &client,
        addr(&np_ip, TELEMETRY),
        false,
        "the telemetry port still closed",
    )?;
    for ns in [LOCKED, OUTSIDER] {
        rig.kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
    }
    Ok(())
}

/// Upgrading from an operator that selected pods by the recommended labels: with that
/// operator's Deployment in place (its selector `app.kubernetes.io/name`/`instance`), the
/// current operator moves it to its own selector — orphaning, recreating, adopting — while
/// steady traffic goes through the Service: every request answered, every answer's span in
/// Jaeger, the same pods throughout (no restart).
pub fn selector_upgrade(rig: &Rig) -> Result<(), Failed> {
    let jaeger = jaeger();
    let pods_before = rig.pods(DEMO, &format!("tracedapp.dev/name={APP}"));
    let restarts = || {
        rig.jsonpath(
            DEMO,
            "pods",
            "{.items[*].status.containerStatuses[*].restartCount}",
        )
    };
    let restarts_before = restarts();
    let replicas = rig.jsonpath(OPERATOR_NS, "deploy/tracedapp-operator", "{.spec.replicas}");
    let start = crate::cluster::now_us();
    let load = Load::start(service_addr(rig, DEMO, APP, 3000), "/", 20);
    std::thread::sleep(Duration::from_secs(2));

    // What the older operator left: its Deployment, with the older selector.
    rig.kubectl_ok(&[
        "scale",
        "-n",
        OPERATOR_NS,
        "deploy/tracedapp-operator",
        "--replicas=0",
    ]);
    wait("the operator to stop", Duration::from_secs(60), || {
        rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator")
            .is_empty()
    })?;
    rig.kubectl_ok(&[
        "delete",
        "-n",
        DEMO,
        &format!("deploy/{APP}"),
        "--cascade=orphan",
    ]);
    wait("the Deployment gone", Duration::from_secs(60), || {
        !rig.kubectl(&["get", "-n", DEMO, &format!("deploy/{APP}")])
            .status
            .success()
    })?;
    let app: tracedapp_api::TracedApp =
        serde_json::from_value(rig.json(&["get", "-n", DEMO, &format!("ta/{APP}")]))?;
    let site = tracedapp_k8s::manifests::Site {
        operator_namespace: OPERATOR_NS.to_owned(),
        ..tracedapp_k8s::manifests::Site::default()
    };
    let mut old = tracedapp_k8s::manifests::build_at(&app, &site).deployment;
    old.spec.as_mut().expect("a spec").selector.match_labels = Some(
        [
            ("app.kubernetes.io/name", APP),
            ("app.kubernetes.io/instance", APP),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let mut doc = serde_json::to_value(&old)?;
    doc["apiVersion"] = "apps/v1".into();
    doc["kind"] = "Deployment".into();
    rig.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=tracedapp-operator",
            "-f",
            "-",
        ],
        &doc.to_string(),
    );
    let owner_of_replica_sets = || {
        rig.jsonpath(
            DEMO,
            "replicasets",
            "{.items[*].metadata.ownerReferences[0].uid}",
        )
    };
    let old_uid = rig.jsonpath(DEMO, &format!("deploy/{APP}"), "{.metadata.uid}");
    wait(
        "the old Deployment adopting the ReplicaSet",
        Duration::from_secs(60),
        || {
            owner_of_replica_sets()
                .split_whitespace()
                .any(|u| u == old_uid)
        },
    )?;

    // The current operator comes back and moves it.
    rig.kubectl_ok(&[
        "scale",
        "-n",
        OPERATOR_NS,
        "deploy/tracedapp-operator",
        &format!("--replicas={replicas}"),
    ]);
    wait(
        "the Deployment on the operator's own selector",
        Duration::from_secs(120),
        || {
            rig.jsonpath(
                DEMO,
                &format!("deploy/{APP}"),
                "{.spec.selector.matchLabels}",
            )
            .contains("tracedapp.dev/name")
        },
    )?;
    let new_uid = rig.jsonpath(DEMO, &format!("deploy/{APP}"), "{.metadata.uid}");
    wait(
        "the new Deployment adopting the ReplicaSet",
        Duration::from_secs(60),
        || {
            owner_of_replica_sets()
                .split_whitespace()
                .any(|u| u == new_uid)
        },
    )?;
    rolled_out(rig)?;
    std::thread::sleep(Duration::from_secs(2));
    let (answered, failed) = load.finish();
    let end = crate::cluster::now_us();
    eprintln!(
        "selector upgrade: {answered} answered, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "requests failed during the upgrade: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert!(answered > 50, "the load ran ({answered})");
    let pods_after = rig.pods(DEMO, &format!("tracedapp.dev/name={APP}"));
    assert_eq!(pods_after, pods_before, "the same pods: none replaced");
    assert_eq!(restarts(), restarts_before, "no container restarted");
    assert_spans_arrive(&jaeger, start, end, answered)
}

/// Tenant A picks a collector image whose `/metrics` is hostile (about 1 MiB of invented
/// exporters with huge counters, every third reply trickling for 30 s; two pods, read every
/// 2 s). Next to it: the operator's `/healthz` answers within a second throughout, its memory
/// stays small, tenant B's new TracedApp gets its Deployment within seconds, and A's status
/// names no invented exporter.
pub fn hostile_tenant(rig: &Rig) -> Result<(), Failed> {
    rig.set_operator_values(
        &[
            "exportHealth.intervalSeconds=2",
            "exportHealth.windowSeconds=20",
        ],
        true,
    );
    let images = testkit::node::images::Names::shipped()?;
    for ns in ["tenant-a", "tenant-b"] {
        rig.kubectl_ok(&["create", "namespace", ns]);
    }
    let app = |ns: &str, name: &str, collector: &str| {
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: {name}, namespace: {ns}}}
spec:
  app: {{image: "{}", replicas: 2}}
  collector: {{{collector}}}
  exporters:
    jaeger: {{endpoint: "jaeger-collector.observability:4317", tls: {{insecure: true}}}}
"#,
            images.service
        )
    };
    rig.kubectl_stdin(
        &["apply", "-f", "-"],
        &app(
            "tenant-a",
            "a",
            &format!("image: \"{HOSTILE_COLLECTOR_IMAGE}\""),
        ),
    );
    wait("A's hostile pods ready", Duration::from_secs(120), || {
        rig.condition("tenant-a", "a", "Ready").0 == "True"
    })?;
    let operator = rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator")[0].clone();
    let operator_pid = rig.container_pid(OPERATOR_NS, &operator, "operator");
    let healthz = crate::cluster::in_node(&pod_ip(rig, OPERATOR_NS, &operator), 8080);
    let restarts = || {
        rig.jsonpath(
            OPERATOR_NS,
            &format!("pod/{operator}"),
            "{.status.containerStatuses[0].restartCount}",
        )
    };
    let restarts_before = restarts();

    // 30 s of hostile rounds (15 of them), /healthz probed all along; B is created midway.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut b_deployment = None;
    let mut b_created = None;
    while started.elapsed() < Duration::from_secs(30) {
        let probe = Instant::now();
        let code = crate::cluster::get(&healthz, "/healthz").map(|r| r.0);
        slowest = slowest.max(probe.elapsed());
        assert_eq!(code, Ok(200), "/healthz after {:?}", started.elapsed());
        if b_created.is_none() && started.elapsed() > Duration::from_secs(10) {
            rig.kubectl_stdin(&["apply", "-f", "-"], &app("tenant-b", "b", ""));
            b_created = Some(Instant::now());
        }
        if let (Some(created), None) = (b_created, b_deployment)
            && rig
                .kubectl(&["get", "-n", "tenant-b", "deploy/b"])
                .status
                .success()
        {
            b_deployment = Some(created.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let b_deployment = b_deployment.ok_or("B got no Deployment in 20 s")?;
    let status = std::fs::read_to_string(format!("/proc/{operator_pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let (rss, peak) = (kib("VmRSS:") / 1024, kib("VmHWM:") / 1024);
    let exports: Value = rig.json(&["get", "-n", "tenant-a", "ta/a"])["status"]["exports"].clone();
    eprintln!(
        "hostile tenant: /healthz slowest {slowest:?}; B's Deployment after {b_deployment:?}; operator RSS {rss} MiB (peak {peak} MiB); A's exports {exports}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    assert!(
        b_deployment < Duration::from_secs(10),
        "B's Deployment after {b_deployment:?}"
    );
    assert!(peak < 128, "operator peak RSS {peak} MiB");
    assert_eq!(restarts(), restarts_before, "the operator did not restart");
    let names: Vec<&str> = exports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["exporter"].as_str())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("invented")),
        "{names:?}"
    );
    assert!(names.len() <= 3, "{names:?}");
    for ns in ["tenant-a", "tenant-b"] {
        rig.kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
    }
    Ok(())
}
