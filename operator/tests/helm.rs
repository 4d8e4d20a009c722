//! The Helm chart `charts/tracedapp-operator`: lint, rendered goldens, the values schema, and
//! an install into a real kube-apiserver followed by the operator running with exactly the
//! chart's arguments and the chart's ServiceAccount token, so a missing RBAC rule fails here.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Operator, apply_shop, condition, jsonpath};
use serde_json::Value;
use testkit::kube::ControlPlane;
use testkit::{repo_root, wait_until};

const CHART: &str = "charts/tracedapp-operator";
const NS: &str = "tracedapp-system";

fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut cmd = Command::new(testkit::tools::helm());
    cmd.current_dir(repo_root()).args(args);
    if let Some(k) = kubeconfig {
        cmd.arg(format!("--kubeconfig={}", k.display()));
    }
    cmd.output().expect("helm runs")
}

fn helm_ok(args: &[&str], kubeconfig: Option<&Path>) -> String {
    let out = helm(args, kubeconfig);
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn template(sets: &[&str]) -> String {
    let mut args = vec!["template", "tracedapp-operator", CHART, "--namespace", NS];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm_ok(&args, None)
}

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

#[test]
fn chart_lints_strictly() {
    let out = helm_ok(&["lint", "--strict", CHART], None);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// `helm template` for each case equals `testdata/helm/<case>.yaml`
/// (`UPDATE_GOLDENS=1` rewrites them after a deliberate change).
#[test]
fn rendered_chart_matches_goldens() {
    let cases: [(&str, &[&str]); 3] = [
        ("default", &[]),
        (
            "namespaced",
            &[
                "watchNamespaces={team-a,team-b}",
                "crds.install=false",
                "replicaCount=2",
                "collectorImage=registry.example.com/platform/otelcol-tracedapp:0.161.0",
            ],
        ),
        (
            "no-leader-election",
            &[
                "leaderElection.enabled=false",
                "metrics.service.enabled=false",
                "otlpEndpoint=http://jaeger-collector:4317",
                "crds.keep=false",
            ],
        ),
    ];
    let mut stale = Vec::new();
    for (case, sets) in cases {
        let got = template(sets);
        let path = repo_root().join(format!("testdata/helm/{case}.yaml"));
        if std::env::var_os("UPDATE_GOLDENS").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            let diff = similar::TextDiff::from_lines(&want, &got)
                .unified_diff()
                .header("golden", "rendered")
                .to_string();
            stale.push(format!("{case}:\n{diff}"));
        }
    }
    assert!(
        stale.is_empty(),
        "rendered chart differs (UPDATE_GOLDENS=1 to accept):\n{}",
        stale.join("\n")
    );
}

/// Least privilege and a restricted pod, whatever the values.
#[test]
fn rbac_has_no_wildcards_and_the_pod_is_restricted() {
    for sets in [&[][..], &["watchNamespaces={team-a}"][..]] {
        let objects = docs(&template(sets));
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        if sets.is_empty() {
            assert!(kinds.contains(&"ClusterRole"), "{kinds:?}");
        } else {
            assert!(!kinds.contains(&"ClusterRole"), "namespaced: {kinds:?}");
            assert!(kinds.contains(&"Role"), "{kinds:?}");
        }
        for o in &objects {
            for rule in o["rules"].as_array().into_iter().flatten() {
                for field in ["verbs", "resources", "apiGroups"] {
                    let values = rule[field].as_array().unwrap();
                    assert!(
                        values.iter().all(|v| v != "*"),
                        "wildcard in {field} of {}",
                        o["metadata"]["name"]
                    );
                }
                let verbs = rule["verbs"].as_array().unwrap();
                assert!(
                    !verbs
                        .iter()
                        .any(|v| v == "update" || v == "deletecollection"),
                    "{rule}"
                );
            }
        }
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(c["resources"]["limits"]["memory"].is_string());
    }
}

/// A typo or a bad value fails the install with a message that names it.
#[test]
fn values_schema_rejects_typos_and_bad_values() {
    for (set, expect) in [
        ("imagee.tag=1", "imagee"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("replicaCount=-1", "replicaCount"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        (
            "leaderElection.leaseDurationSeconds=1",
            "leaseDurationSeconds",
        ),
        ("otlpEndpoint=jaeger:4317", "otlpEndpoint"),
        ("collectorImage=Registry/Otelcol:1", "collectorImage"),
        ("collectorImage=otelcol:1 --config=x", "collectorImage"),
    ] {
        let out = helm(
            &["template", "x", CHART, "--namespace", NS, "--set", set],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(expect), "{set}: {stderr}");
    }
}

/// The values schema checks `collectorImage` with the CRD's own image pattern (one rule, two
/// places it is read: the chart and the operator's `--collector-image`).
#[test]
fn the_collector_image_value_uses_the_crds_image_pattern() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join(CHART).join("values.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema["properties"]["collectorImage"]["pattern"],
        format!("^$|{}", tracedapp_api::spec::IMAGE_PATTERN)
    );
}

/// A kubeconfig that authenticates as the chart's ServiceAccount (a TokenRequest token).
fn service_account_kubeconfig(cp: &ControlPlane, sa: &str) -> std::path::PathBuf {
    let token = cp.kubectl_ok(&["create", "token", sa, "-n", NS, "--duration=1h"]);
    let path = cp.dir().join(format!("{sa}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: test\n  context: {{cluster: test, user: sa, namespace: {NS}}}\ncurrent-context: test\n",
            cp.url,
            token.trim()
        ),
    )
    .unwrap();
    path
}

/// The arguments of the chart's operator container, without `--metrics-bind` (the test picks
/// a free port).
fn chart_args(cp: &ControlPlane) -> Vec<String> {
    let json = cp.kubectl_ok(&[
        "get",
        "deployment/tracedapp-operator",
        "-n",
        NS,
        "-o=jsonpath={.spec.template.spec.containers[0].args}",
    ]);
    let args: Vec<String> = serde_json::from_str(&json).unwrap();
    args.into_iter()
        .filter(|a| !a.starts_with("--metrics-bind"))
        .collect()
}

fn install_and_reconcile(sets: &[&str]) {
    let cp = ControlPlane::start();
    for ns in [NS, "demo"] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }
    let mut args = vec!["install", "tracedapp-operator", CHART, "--namespace", NS];
    for s in sets {
        args.extend(["--set", s]);
    }
    let notes = helm_ok(&args, Some(&cp.kubeconfig));
    assert!(
        notes.contains("kubectl apply -f manifests/examples/shop.yaml"),
        "{notes}"
    );
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/tracedapps.tracedapp.dev",
    ]);

    // The leader-election Role reaches the chart's Lease and no other, and creates none.
    let sa = format!("--as=system:serviceaccount:{NS}:tracedapp-operator");
    let can = |verb: &str, what: &str| {
        cp.kubectl(&["auth", "can-i", verb, what, "-n", NS, &sa])
            .status
            .success()
    };
    assert!(can("patch", "leases/tracedapp-operator"));
    assert!(can("get", "leases/tracedapp-operator"));
    assert!(!can("patch", "leases/someone-elses"), "another Lease");
    assert!(!can("create", "leases"), "creating Leases");
    assert!(!can("delete", "leases/tracedapp-operator"));

    // No kubelet runs the chart's pod here: run the same binary with the same arguments and
    // the chart's ServiceAccount identity.
    let kubeconfig = service_account_kubeconfig(&cp, "tracedapp-operator");
    let mut args = chart_args(&cp);
    // In the pod, POD_NAMESPACE comes from the downward API.
    args.push(format!("--lease-namespace={NS}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start_with_kubeconfig(&cp, &kubeconfig, "chart-operator", &args);
    apply_shop(&cp);
    wait_until("shop reconciled", Duration::from_secs(30), || {
        condition(&cp, "shop", "ConfigValid") == "True"
            && jsonpath(&cp, "deployment/shop", "{.metadata.name}") == "shop"
    });
    // The chart's collectorImage reaches the sidecar of an app whose spec names none.
    let collector_image = sets
        .iter()
        .find_map(|s| s.strip_prefix("collectorImage="))
        .unwrap_or(tracedapp_api::collector::CONTRIB_IMAGE);
    assert_eq!(
        jsonpath(
            &cp,
            "deployment/shop",
            "{.spec.template.spec.initContainers[?(@.name==\"otel-collector\")].image}"
        ),
        collector_image
    );
    // A drift repair (and its Event: a first rollout publishes none) and a prune exercise the
    // rest of the rules.
    cp.kubectl_ok(&["scale", "-n", "demo", "deployment/shop", "--replicas=4"]);
    wait_until("drift reverted", Duration::from_secs(30), || {
        jsonpath(&cp, "deployment/shop", "{.spec.replicas}") == "2"
    });
    wait_until("an event published", Duration::from_secs(30), || {
        common::event_reasons(&cp, "shop").contains(&"DriftReverted".to_owned())
    });
    common::change_collector_config(&cp, "shop", &[100, 101, 102]);
    wait_until("old ConfigMaps pruned", Duration::from_secs(30), || {
        jsonpath(&cp, "ta/shop", "{.status.observedGeneration}") == "4"
            && common::config_maps(&cp, "shop") == 3
    });
    assert_eq!(
        op.metric("tracedapp_reconcile_errors_total{reason=\"Forbidden\"}"),
        0.0
    );
    assert_eq!(
        op.metric("tracedapp_leader"),
        1.0,
        "it leads on the chart's Lease"
    );
    assert!(
        !op.process.log().contains("Forbidden"),
        "{}",
        op.process.log_tail(20)
    );

    // Uninstall keeps the CRD and so the TracedApps.
    helm_ok(
        &["uninstall", "tracedapp-operator", "--namespace", NS],
        Some(&cp.kubeconfig),
    );
    assert!(
        cp.kubectl(&["get", "crd/tracedapps.tracedapp.dev"])
            .status
            .success()
    );
    assert!(
        cp.kubectl(&["get", "-n", "demo", "ta/shop"])
            .status
            .success()
    );
}

#[test]
fn helm_install_cluster_wide_then_the_operator_works_with_the_charts_rbac() {
    install_and_reconcile(&[]);
}

#[test]
fn helm_install_namespaced_then_the_operator_works_with_only_a_role() {
    install_and_reconcile(&[
        "watchNamespaces={demo}",
        "collectorImage=registry.example.com/platform/otelcol-tracedapp:0.161.0",
    ]);
}

/// Every manifest a user applies is accepted by a real API server (server-side dry run).
#[test]
fn every_manifest_passes_a_server_side_dry_run() {
    let cp = ControlPlane::start();
    // A dry run creates nothing, so the namespaces the files use must exist already.
    for ns in [NS, "demo", "observability"] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }
    let root = repo_root();
    cp.install_crd(&root.join("manifests/crd.yaml"), "tracedapps.tracedapp.dev");
    let mut files = vec![
        root.join("manifests/operator.yaml"),
        root.join("manifests/jaeger.yaml"),
    ];
    files.extend(testkit::files_ending(
        &root.join("manifests/examples"),
        ".yaml",
    ));
    for file in &files {
        let out = cp.kubectl(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `kind-config.yaml` decodes strictly into kind's own v1alpha4 types, and the checker does
/// reject what kind rejects (so the pass above means something).
#[test]
fn kind_config_is_a_valid_kind_v1alpha4_cluster() {
    let check = |file: &Path| {
        Command::new(testkit::tools::kind_config_check())
            .arg(file)
            .output()
            .expect("kind-config-check runs")
    };
    let out = check(&repo_root().join("kind-config.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(repo_root().join("kind-config.yaml")).unwrap();
    assert!(config.contains("hostPort: 16686") && config.contains("containerPort: 30686"));
    let jaeger = std::fs::read_to_string(repo_root().join("manifests/jaeger.yaml")).unwrap();
    assert!(
        jaeger.contains("nodePort: 30686"),
        "the UI mapping reaches Jaeger"
    );

    let dir = testkit::TempDir::new("kind");
    for (name, broken, expect) in [
        (
            "typo",
            config.replace("extraPortMappings", "extraPortMapings"),
            "unknown field",
        ),
        ("role", config.replace("control-plane", "master"), "role"),
        (
            "port",
            config.replace("hostPort: 3000", "hostPort: 70000"),
            "ports",
        ),
    ] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, broken).unwrap();
        let out = check(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(stderr.contains(expect), "{name}: {stderr}");
    }
}
