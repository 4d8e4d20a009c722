//! The operator (`tracedapp-operator`, the real binary) against a real kube-apiserver (etcd +
//! kube-apiserver, and kube-controller-manager's garbage collector where a test needs it, from
//! `cargo xtask setup`). No scheduler or kubelet runs, so Deployments never get pods: `Ready`
//! stays False, which the tests check too.

mod common;

use std::time::Duration;

use common::{
    Operator, apply_app, apply_shop, cluster, condition, event_reasons, http_get, jsonpath,
};
use testkit::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// Create → children with owner references, status and an Event; spec change → new ConfigMap
/// and a rolled pod template; old ConfigMaps pruned; drift → reverted with an Event; and a
/// pass over a converged app sends no write at all (counted by the API server itself).
#[test]
fn reconciles_children_status_changes_drift_and_writes_nothing_when_converged() {
    let cp = cluster();
    let op = Operator::start(&cp, "operator", &[]);

    apply_shop(&cp);
    wait_until("status.observedGeneration 1", WAIT, || {
        jsonpath(&cp, "ta/shop", "{.status.observedGeneration}") == "1"
    });
    let uid = jsonpath(&cp, "ta/shop", "{.metadata.uid}");
    for child in ["deployment/shop", "service/shop", "serviceaccount/shop"] {
        assert_eq!(
            jsonpath(&cp, child, "{.metadata.ownerReferences[0].uid}"),
            uid,
            "{child}"
        );
    }
    let hash = jsonpath(&cp, "ta/shop", "{.status.collectorConfigHash}");
    assert_eq!(hash.len(), 10);
    let cm = format!("configmap/shop-collector-{hash}");
    assert_eq!(
        jsonpath(&cp, &cm, "{.metadata.ownerReferences[0].uid}"),
        uid
    );
    assert_eq!(
        jsonpath(
            &cp,
            "deployment/shop",
            "{.spec.template.metadata.annotations.tracedapp\\.dev/collector-config-hash}"
        ),
        hash
    );
    assert_eq!(condition(&cp, "shop", "ConfigValid"), "True");
    // No pods can start here: Ready reflects the Deployment, not "we applied it".
    assert_eq!(condition(&cp, "shop", "Ready"), "False");
    assert_eq!(condition(&cp, "shop", "Progressing"), "True");
    assert_eq!(condition(&cp, "shop", "Degraded"), "False");
    assert_eq!(
        jsonpath(&cp, "ta/shop", "{.status.exporters}"),
        "jaeger,xray,prometheus"
    );
    let table = cp.kubectl_ok(&["get", "ta", "-n", "demo"]);
    assert!(table.contains("False") && table.contains("0/2"), "{table}");

    // Converged: a pass triggered by a metadata-only change sends no write.
    let kinds = testkit::kube::OPERATOR_WRITE_RESOURCES;
    let writes = |cp: &testkit::kube::ControlPlane| kinds.map(|k| cp.writes(k));
    let passes = || op.metric("tracedapp_reconciles_total{result=\"ok\"}");
    std::thread::sleep(Duration::from_secs(2)); // let the passes our own writes caused finish
    assert_eq!(
        event_reasons(&cp, "shop"),
        Vec::<String>::new(),
        "a first rollout publishes no Event: the status tells it"
    );
    let (before, passes_before, op_writes_before) = (writes(&cp), passes(), op.writes());
    cp.kubectl_ok(&["annotate", "-n", "demo", "ta/shop", "touched=1"]);
    wait_until("a pass after the annotation", WAIT, || {
        passes() > passes_before
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        writes(&cp),
        before,
        "writes to {kinds:?} during a converged pass"
    );
    assert_eq!(
        op.writes(),
        op_writes_before,
        "the operator's own count agrees"
    );

    // Spec change: a new collector config → a new ConfigMap and a new pod-template hash.
    cp.kubectl_ok(&[
        "patch",
        "-n",
        "demo",
        "ta/shop",
        "--type=merge",
        "-p",
        r#"{"spec":{"collector":{"batch":{"sendBatchSize":128}}}}"#,
    ]);
    wait_until("status.observedGeneration 2", WAIT, || {
        jsonpath(&cp, "ta/shop", "{.status.observedGeneration}") == "2"
    });
    let new_hash = jsonpath(&cp, "ta/shop", "{.status.collectorConfigHash}");
    assert_ne!(new_hash, hash);
    assert!(
        cp.kubectl(&[
            "get",
            "-n",
            "demo",
            &format!("configmap/shop-collector-{new_hash}")
        ])
        .status
        .success()
    );
    assert_eq!(
        jsonpath(
            &cp,
            "deployment/shop",
            "{.spec.template.metadata.annotations.tracedapp\\.dev/collector-config-hash}"
        ),
        new_hash
    );
    wait_until("a ConfigChanged event", WAIT, || {
        event_reasons(&cp, "shop").contains(&"ConfigChanged".to_owned())
    });

    // Someone else's ConfigMap wearing our labels (the oldest of all): never pruned, since
    // the TracedApp does not own it.
    let created = cp.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: look-alike\n  namespace: demo\n  \
             labels: {tracedapp.dev/name: shop, app.kubernetes.io/component: collector-config, \
             app.kubernetes.io/managed-by: tracedapp-operator}\ndata: {keep: me}\n",
        ),
    );
    assert!(created.status.success(), "{created:?}");

    // Old configs: the current one and the two before it are kept for rollback, older ones go.
    common::change_collector_config(&cp, "shop", &[100, 101, 102]);
    wait_until(
        "old ConfigMaps pruned to 2 + current (+ the look-alike)",
        WAIT,
        || {
            jsonpath(&cp, "ta/shop", "{.status.observedGeneration}") == "5"
                && common::config_maps(&cp, "shop") == 4
        },
    );
    assert!(
        cp.kubectl(&["get", "-n", "demo", "configmap/look-alike"])
            .status
            .success(),
        "a ConfigMap the TracedApp does not own is never deleted"
    );
    assert!(
        !cp.kubectl(&[
            "get",
            "-n",
            "demo",
            &format!("configmap/shop-collector-{hash}")
        ])
        .status
        .success(),
        "the first config (4 changes ago) is pruned"
    );

    // Drift: someone scales the Deployment by hand; the next pass restores the spec's 2.
    cp.kubectl_ok(&["scale", "-n", "demo", "deployment/shop", "--replicas=5"]);
    wait_until("replicas restored to 2", WAIT, || {
        jsonpath(&cp, "deployment/shop", "{.spec.replicas}") == "2"
    });
    wait_until("a DriftReverted event", WAIT, || {
        event_reasons(&cp, "shop").contains(&"DriftReverted".to_owned())
    });
    let message = cp.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        "demo",
        "--field-selector=reason=DriftReverted",
        "-o=jsonpath={.items[0].note}",
    ]);
    assert!(message.contains("Deployment spec.replicas"), "{message}");
    assert_eq!(op.metric("tracedapp_reconcile_errors_total"), 0.0);
}

/// A TracedApp stored under an older, laxer CRD that the current rules reject (a dotted name
/// cannot name a Service; the API server keeps stored objects through a CRD upgrade):
/// `ConfigValid=False` with the field path, `Degraded`, a Warning event, nothing applied.
#[test]
fn invalid_spec_gets_a_condition_an_event_and_no_children() {
    let cp = cluster();
    // The CRD without its rule on metadata.name, as an older release might have had it.
    let crd_path = testkit::repo_root().join("manifests/crd.yaml");
    let mut lax: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&crd_path).unwrap()).unwrap();
    let root = &mut lax["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    root.as_object_mut()
        .unwrap()
        .remove("metadata")
        .expect("the schema has the name rule");
    cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&lax.to_string()),
    );
    let spec = r#"
apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {name: shop.v2, namespace: demo}
spec:
  app: {image: "app:1"}
  exporters: {jaeger: {endpoint: "jaeger:4317"}}
"#;
    let out = cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(spec));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Today's CRD refuses such a name, and keeps the stored object.
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crd_path.to_str().unwrap(),
    ]);
    let refused = cp.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&spec.replace("shop.v2", "shop.v3")),
    );
    assert!(!refused.status.success(), "a new dotted name is refused");
    let op = Operator::start(&cp, "operator", &[]);
    wait_until("ConfigValid=False", WAIT, || {
        condition(&cp, "shop.v2", "ConfigValid") == "False"
    });
    assert_eq!(condition(&cp, "shop.v2", "Degraded"), "True");
    let message = jsonpath(
        &cp,
        "ta/shop.v2",
        "{.status.conditions[?(@.type==\"ConfigValid\")].message}",
    );
    assert!(
        message.starts_with("metadata.name: must be a DNS label"),
        "{message}"
    );
    wait_until("an InvalidSpec event", WAIT, || {
        event_reasons(&cp, "shop.v2") == ["InvalidSpec"]
    });
    let children = cp.kubectl_ok(&[
        "get",
        "configmaps,deployments,services,serviceaccounts",
        "-n",
        "demo",
        "-l",
        "tracedapp.dev/name",
        "-o=name",
    ]);
    assert!(children.trim().is_empty(), "nothing applied: {children}");
    // No hot loop: a pass for the spec and one for our own status write, then it waits for a
    // spec change.
    let passes = || op.metric("tracedapp_reconciles_total{result=\"invalid\"}");
    std::thread::sleep(Duration::from_secs(2));
    let settled = passes();
    std::thread::sleep(Duration::from_secs(3));
    assert!(settled <= 2.0, "{settled} passes");
    assert_eq!(passes(), settled, "no further passes");
}

/// Deleting a TracedApp deletes its children (owner references + the garbage collector).
#[test]
fn deleted_app_children_are_garbage_collected() {
    let mut cp = cluster();
    cp.start_garbage_collector();
    let _op = Operator::start(&cp, "operator", &[]);
    apply_app(&cp, "gone");
    let children = |cp: &testkit::kube::ControlPlane| {
        cp.kubectl_ok(&[
            "get",
            "configmaps,deployments,services,serviceaccounts",
            "-n",
            "demo",
            "-l",
            "tracedapp.dev/name=gone",
            "-o=name",
        ])
        .lines()
        .count()
    };
    wait_until("4 children", WAIT, || children(&cp) == 4);
    cp.kubectl_ok(&["delete", "-n", "demo", "ta/gone", "--wait=false"]);
    wait_until(
        "children garbage-collected",
        Duration::from_secs(60),
        || children(&cp) == 0,
    );
}

/// The API server goes away for a while and comes back: the operator stays alive and healthy,
/// and reconciles what was created after the restart, by itself.
#[test]
fn recovers_after_the_api_server_restarts() {
    let mut cp = cluster();
    let mut op = Operator::start(&cp, "operator", &[]);
    apply_app(&cp, "before");
    wait_until("before reconciled", WAIT, || {
        condition(&cp, "before", "ConfigValid") == "True"
    });
    cp.stop_apiserver();
    std::thread::sleep(Duration::from_secs(5));
    op.process.assert_running();
    assert_eq!(http_get(op.port, "/healthz").map(|r| r.0), Some(200));
    cp.start_apiserver();
    apply_app(&cp, "after");
    wait_until("after reconciled", Duration::from_secs(60), || {
        condition(&cp, "after", "ConfigValid") == "True"
            && jsonpath(&cp, "deployment/after", "{.metadata.name}") == "after"
    });
    op.process.assert_running();
}

/// Two replicas with `--leader-elect`: exactly one writes; when it stops (SIGTERM, exit 0,
/// lease released) the other takes over and reconciles.
#[test]
fn two_replicas_one_leader_and_fail_over() {
    let cp = cluster();
    let lease = ["--leader-elect", "--lease-duration=4"];
    let mut first = Operator::start(&cp, "first", &lease);
    wait_until("first leads", WAIT, || {
        first.metric("tracedapp_leader") == 1.0
    });
    let second = Operator::start(&cp, "second", &lease);
    apply_app(&cp, "ha");
    wait_until("ha reconciled", WAIT, || {
        condition(&cp, "ha", "ConfigValid") == "True"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(first.writes() > 0.0, "the leader wrote");
    assert_eq!(second.writes(), 0.0, "the follower wrote nothing");
    assert_eq!(second.metric("tracedapp_leader"), 0.0);
    assert_eq!(
        jsonpath(&cp, "lease/tracedapp-operator", "{.spec.holderIdentity}").len(),
        0,
        "the lease lives in the operator's namespace, not in demo"
    );
    let holder = cp.kubectl_ok(&[
        "get",
        "lease/tracedapp-operator",
        "-n",
        tracedapp_k8s::manifests::DEFAULT_OPERATOR_NAMESPACE,
        "-o=jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "first");

    let status = first.process.terminate(Duration::from_secs(15));
    assert!(status.success(), "graceful stop exits 0: {status}");
    wait_until("second leads", Duration::from_secs(20), || {
        second.metric("tracedapp_leader") == 1.0
    });
    cp.kubectl_ok(&[
        "patch",
        "-n",
        "demo",
        "ta/ha",
        "--type=merge",
        "-p",
        r#"{"spec":{"app":{"replicas":3}}}"#,
    ]);
    wait_until("the new leader reconciles", WAIT, || {
        jsonpath(&cp, "deployment/ha", "{.spec.replicas}") == "3"
    });
    assert!(second.writes() > 0.0);
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the operator's passes reach a real Jaeger as traces:
/// a `reconcile` span naming the TracedApp, with one `apply` child per write; a SIGTERM
/// flushes them before the exit.
#[test]
fn exports_its_own_traces_over_otlp() {
    let cp = cluster();
    let jaeger = testkit::jaeger::Jaeger::start();
    let endpoint = format!("http://{}", jaeger.otlp_grpc);
    let mut op = Operator::start_with_env(
        &cp,
        &cp.kubeconfig,
        "operator",
        &["--namespace=demo"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    apply_app(&cp, "traced");
    wait_until("traced reconciled", WAIT, || {
        condition(&cp, "traced", "ConfigValid") == "True"
    });
    assert!(op.process.terminate(Duration::from_secs(15)).success());
    // The export is flushed before the exit; Jaeger indexes it asynchronously.
    let mut applies = Vec::new();
    wait_until("the operator's spans in Jaeger", WAIT, || {
        applies = pass_writes(&jaeger);
        applies.len() >= 4
    });
    for kind in ["ConfigMap", "ServiceAccount", "Deployment", "Service"] {
        assert!(applies.contains(&kind.into()), "{kind} not in {applies:?}");
    }
}

/// The `kind` of every `apply` span under the `reconcile` span (of `demo/traced`) that has the
/// most of them.
fn pass_writes(jaeger: &testkit::jaeger::Jaeger) -> Vec<serde_json::Value> {
    let traces = jaeger.traces("tracedapp-operator", 50);
    let spans: Vec<&serde_json::Value> = traces
        .iter()
        .flat_map(|t| t["spans"].as_array().unwrap())
        .collect();
    let tag = |s: &serde_json::Value, key: &str| {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| t["value"].clone())
    };
    let passes: Vec<&&serde_json::Value> = spans
        .iter()
        .filter(|s| {
            s["operationName"] == "reconcile"
                && tag(s, "app") == Some("demo/traced".into())
                && tag(s, "result") == Some("ok".into())
        })
        .collect();
    // The pass that created the children: its writes are its child spans.
    passes
        .iter()
        .map(|pass| {
            spans
                .iter()
                .filter(|s| s["traceID"] == pass["traceID"] && s["operationName"] == "apply")
                .filter(|s| s["references"][0]["spanID"] == pass["spanID"])
                .filter_map(|s| tag(s, "kind"))
                .collect::<Vec<_>>()
        })
        .max_by_key(Vec::len)
        .unwrap_or_default()
}

/// With kube-controller-manager's Deployment and ReplicaSet controllers, the app's pods are
/// created; once they report Ready (set by the test: no kubelet runs here), the Deployment is
/// available and the TracedApp follows: `Ready=True`, `Progressing=False/RolloutComplete`,
/// `1/1`, and a `Ready` event.
#[test]
fn ready_follows_the_deployments_real_availability() {
    let mut cp = cluster();
    cp.start_controller_manager(&["deployment", "replicaset", "garbagecollector"]);
    let _op = Operator::start(&cp, "operator", &[]);
    apply_app(&cp, "web");
    let pods = |cp: &testkit::kube::ControlPlane| {
        cp.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "demo",
            "-l",
            "app.kubernetes.io/name=web",
            "-o=name",
        ])
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    wait_until(
        "the ReplicaSet creates the pod",
        Duration::from_secs(60),
        || pods(&cp).len() == 1,
    );
    assert_eq!(condition(&cp, "web", "Ready"), "False");
    assert_eq!(condition(&cp, "web", "Progressing"), "True");
    // No kubelet here: the pods' status is written as one would write it.
    let set_ready = |ready: &str| {
        for pod in pods(&cp) {
            let patch = format!(
                r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"{ready}","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}}}"#
            );
            cp.kubectl_ok(&[
                "patch",
                "-n",
                "demo",
                &pod,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ]);
        }
    };
    set_ready("True");
    wait_until("Ready=True", Duration::from_secs(60), || {
        condition(&cp, "web", "Ready") == "True"
    });
    assert_eq!(jsonpath(&cp, "ta/web", "{.status.replicasSummary}"), "1/1");
    wait_until("Progressing=False (RolloutComplete)", WAIT, || {
        jsonpath(
            &cp,
            "ta/web",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "RolloutComplete"
    });
    assert!(
        !event_reasons(&cp, "web").contains(&"Ready".to_owned()),
        "a first Ready is in the status, not an Event"
    );

    // Lost, then back: a warning, then a Ready event.
    set_ready("False");
    wait_until("Ready=False (Unavailable)", Duration::from_secs(60), || {
        jsonpath(
            &cp,
            "ta/web",
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        ) == "Unavailable"
    });
    wait_until("a NotReady event", WAIT, || {
        event_reasons(&cp, "web").contains(&"NotReady".to_owned())
    });
    set_ready("True");
    wait_until("a Ready event", Duration::from_secs(60), || {
        event_reasons(&cp, "web").contains(&"Ready".to_owned())
    });
}

/// A TracedApp named like a Deployment it does not own takes nothing: `Degraded` with
/// `ChildConflict` and an Event, no child applied, the Deployment untouched, and deleting the
/// TracedApp leaves it there.
#[test]
fn an_object_that_is_not_ours_is_never_taken_over() {
    let mut cp = cluster();
    cp.start_garbage_collector();
    cp.kubectl_ok(&[
        "create",
        "deployment",
        "taken",
        "-n",
        "demo",
        "--image=someone/else:1",
    ]);
    let before = jsonpath(&cp, "deployment/taken", "{.metadata.resourceVersion}");
    let _op = Operator::start(&cp, "operator", &[]);
    apply_app(&cp, "taken");
    wait_until("Degraded=True with ChildConflict", WAIT, || {
        jsonpath(
            &cp,
            "ta/taken",
            "{.status.conditions[?(@.type==\"Degraded\")].reason}",
        ) == "ChildConflict"
    });
    let message = jsonpath(
        &cp,
        "ta/taken",
        "{.status.conditions[?(@.type==\"Degraded\")].message}",
    );
    assert!(message.contains("Deployment taken exists"), "{message}");
    wait_until("a Degraded event", WAIT, || {
        event_reasons(&cp, "taken").contains(&"Degraded".to_owned())
    });
    assert_eq!(
        jsonpath(&cp, "deployment/taken", "{.metadata.resourceVersion}"),
        before,
        "the Deployment is untouched"
    );
    let ours = cp.kubectl_ok(&[
        "get",
        "configmaps,serviceaccounts,services",
        "-n",
        "demo",
        "-l",
        "tracedapp.dev/name=taken",
        "-o=name",
    ]);
    assert!(
        ours.trim().is_empty(),
        "nothing applied while a name is taken: {ours}"
    );
    cp.kubectl_ok(&["delete", "ta", "taken", "-n", "demo", "--wait=true"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        jsonpath(&cp, "deployment/taken", "{.metadata.name}"),
        "taken",
        "still there after the TracedApp is gone"
    );
}

/// An operator upgrade moves a Deployment made with the older selector (the recommended
/// `app.kubernetes.io/name`/`instance` labels, which a Helm release also sets) to the current
/// one (`tracedapp.dev/name` + `managed-by`): the Deployment is deleted with its ReplicaSet and
/// pods orphaned, recreated with the new selector, and adopts them — the same ReplicaSet and
/// the same pods (uids), none created or deleted. (On real pods, with traffic: the node tests.)
#[test]
fn an_older_selector_is_moved_without_replacing_a_pod() {
    let mut cp = cluster();
    cp.start_controller_manager(&["deployment", "replicaset", "garbagecollector"]);
    // What an older operator left: the TracedApp and its Deployment with the old selector.
    apply_shop(&cp);
    let app: tracedapp_api::TracedApp =
        serde_json::from_str(&cp.kubectl_ok(&["get", "-n", "demo", "ta/shop", "-o=json"])).unwrap();
    let mut old = tracedapp_k8s::manifests::build(&app).deployment;
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    old.spec.as_mut().unwrap().selector.match_labels = Some(labels(&[
        ("app.kubernetes.io/name", "shop"),
        ("app.kubernetes.io/instance", "shop"),
    ]));
    let mut doc = serde_json::to_value(&old).unwrap();
    doc["apiVersion"] = "apps/v1".into();
    doc["kind"] = "Deployment".into();
    let out = cp.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=tracedapp-operator",
            "-f",
            "-",
        ],
        Some(&doc.to_string()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = || -> Vec<String> {
        let mut uids: Vec<String> = jsonpath(&cp, "pods", "{.items[*].metadata.uid}")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        uids.sort();
        uids
    };
    wait_until("the old Deployment's 2 pods", WAIT, || pods().len() == 2);
    let (rs_before, pods_before) = (
        jsonpath(&cp, "replicasets", "{.items[*].metadata.uid}"),
        pods(),
    );
    assert_eq!(rs_before.split_whitespace().count(), 1);

    let _op = Operator::start(&cp, "operator", &[]);
    wait_until("the Deployment on the new selector", WAIT, || {
        jsonpath(&cp, "deployment/shop", "{.spec.selector.matchLabels}")
            .contains("tracedapp.dev/name")
    });
    let deployment_uid = jsonpath(&cp, "deployment/shop", "{.metadata.uid}");
    wait_until("the ReplicaSet adopted by the new Deployment", WAIT, || {
        jsonpath(
            &cp,
            "replicasets",
            "{.items[*].metadata.ownerReferences[0].uid}",
        ) == deployment_uid
    });
    // Give the Deployment controller time to act on anything it would change.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        jsonpath(&cp, "replicasets", "{.items[*].metadata.uid}"),
        rs_before,
        "the same ReplicaSet, no new one"
    );
    assert_eq!(pods(), pods_before, "the same pods: none replaced");
    assert_eq!(
        jsonpath(&cp, "service/shop", "{.spec.selector}"),
        r#"{"app.kubernetes.io/managed-by":"tracedapp-operator","tracedapp.dev/name":"shop"}"#
    );
}
