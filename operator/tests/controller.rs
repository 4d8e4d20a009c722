//! The controller against a real kube-apiserver (etcd + kube-apiserver from `cargo xtask setup`).
//! No kube-controller-manager runs here, so Deployments never get pods: `Ready` stays False,
//! which the test checks too.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use testkit::kube::ControlPlane;
use testkit::{repo_root, wait_until};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// An API server with the CRD and the `demo` namespace, and the controller watching `demo`.
async fn cluster_with_controller() -> (ControlPlane, tokio::task::JoinHandle<()>) {
    let cp = ControlPlane::start();
    cp.install_crd(
        &repo_root().join("manifests/crd.yaml"),
        "tracedapps.tracedapp.dev",
    );
    cp.kubectl_ok(&["create", "namespace", "demo"]);
    let controller = tokio::spawn(tracedapp_operator::controller::run(
        client(&cp).await,
        Some("demo"),
    ));
    (cp, controller)
}

fn jsonpath(cp: &ControlPlane, what: &str, path: &str) -> String {
    let out = cp.kubectl(&["get", "-n", "demo", what, &format!("-o=jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Create → children with owner references and status; spec change → new ConfigMap and a
/// rolled pod template; drift → reverted.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn reconciles_children_status_changes_and_drift() {
    let (cp, controller) = cluster_with_controller().await;

    let example = repo_root().join("manifests/examples/shop.yaml");
    cp.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap()]);
    let wait = Duration::from_secs(30);
    wait_until("status.observedGeneration 1", wait, || {
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
    assert_eq!(
        jsonpath(
            &cp,
            "ta/shop",
            "{.status.conditions[?(@.type==\"ConfigValid\")].status}"
        ),
        "True"
    );
    // No controller-manager, so no pods: Ready reflects the Deployment, not "we applied it".
    assert_eq!(
        jsonpath(
            &cp,
            "ta/shop",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    assert_eq!(
        jsonpath(&cp, "ta/shop", "{.status.exporters}"),
        "jaeger,xray,prometheus"
    );
    let table = cp.kubectl_ok(&["get", "ta", "-n", "demo"]);
    assert!(table.contains("False") && table.contains("0/2"), "{table}");

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
    wait_until("status.observedGeneration 2", wait, || {
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

    // Old configs: the current one and the two before it are kept for rollback, older ones go.
    for size in [100, 101, 102] {
        cp.kubectl_ok(&[
            "patch",
            "-n",
            "demo",
            "ta/shop",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"collector":{{"batch":{{"sendBatchSize":{size}}}}}}}}}"#),
        ]);
    }
    let config_maps = || {
        cp.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-l",
            "tracedapp.dev/name=shop",
            "-o=name",
        ])
        .lines()
        .count()
    };
    wait_until("old ConfigMaps pruned to 2 + current", wait, || {
        jsonpath(&cp, "ta/shop", "{.status.observedGeneration}") == "5" && config_maps() == 3
    });
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

    // Drift: someone scales the Deployment by hand; the next reconcile restores the spec's 2.
    cp.kubectl_ok(&["scale", "-n", "demo", "deployment/shop", "--replicas=5"]);
    wait_until("replicas restored to 2", wait, || {
        jsonpath(&cp, "deployment/shop", "{.spec.replicas}") == "2"
    });
    controller.abort();
}

/// A spec the API server accepts but our rules reject (a dotted name cannot name a Service):
/// `ConfigValid=False` with the field path, and nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn invalid_spec_gets_a_condition_and_no_children() {
    let (cp, controller) = cluster_with_controller().await;
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
    wait_until("ConfigValid=False", Duration::from_secs(30), || {
        jsonpath(
            &cp,
            "ta/shop.v2",
            "{.status.conditions[?(@.type==\"ConfigValid\")].status}",
        ) == "False"
    });
    let message = jsonpath(
        &cp,
        "ta/shop.v2",
        "{.status.conditions[?(@.type==\"ConfigValid\")].message}",
    );
    assert!(
        message.starts_with("metadata.name: must be a DNS label"),
        "{message}"
    );
    let children = cp.kubectl_ok(&[
        "get",
        "configmaps,deployments,services",
        "-n",
        "demo",
        "-l",
        "tracedapp.dev/name",
        "-o=name",
    ]);
    assert!(children.trim().is_empty(), "nothing applied: {children}");
    controller.abort();
}
