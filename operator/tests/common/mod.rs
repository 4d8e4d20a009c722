//! Shared by the tests that run the operator against a real kube-apiserver: the
//! `tracedapp-operator` binary as a process, and small readers of its metrics and of objects.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::process::Command;
use std::time::Duration;

use testkit::kube::ControlPlane;
use testkit::{Process, free_port, repo_root, wait_until};

/// An API server with the CRD installed and the `demo` namespace.
pub fn cluster() -> ControlPlane {
    // The operator's own namespace holds its Lease.
    ControlPlane::with_tracedapp_crd(&[
        "demo",
        tracedapp_k8s::manifests::DEFAULT_OPERATOR_NAMESPACE,
    ])
}

/// `tracedapp-operator` as a process, with its metrics port.
#[derive(Debug)]
pub struct Operator {
    pub process: Process,
    pub port: u16,
}

impl Operator {
    /// Runs `tracedapp-operator --namespace=demo <extra>` with the admin kubeconfig and waits for
    /// `/readyz`.
    pub fn start(cp: &ControlPlane, name: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--namespace=demo"];
        args.extend_from_slice(extra);
        Self::start_with_kubeconfig(cp, &cp.kubeconfig, name, &args)
    }

    /// Runs `tracedapp-operator <args>` (plus its metrics port and `--identity=<name>`) with
    /// `kubeconfig`, and waits for `/readyz`.
    pub fn start_with_kubeconfig(
        cp: &ControlPlane,
        kubeconfig: &std::path::Path,
        name: &str,
        args: &[&str],
    ) -> Self {
        Self::start_with_env(cp, kubeconfig, name, args, &[])
    }

    /// [`Self::start_with_kubeconfig`] with extra environment variables.
    pub fn start_with_env(
        cp: &ControlPlane,
        kubeconfig: &std::path::Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracedapp-operator"));
        cmd.arg(format!("--metrics-bind=127.0.0.1:{port}"))
            .arg(format!("--identity={name}"))
            .args(args)
            .envs(env.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or("info,kube_lease_manager=warn".into()),
            );
        let process = Process::start(name, cmd, cp.dir().join(format!("{name}.log")));
        let mut op = Self { process, port };
        wait_until(&format!("{name} /readyz"), Duration::from_secs(30), || {
            op.process.assert_running();
            http_get(port, "/readyz").is_some_and(|(code, _)| code == 200)
        });
        op
    }

    /// The value of one sample of `/metrics`, e.g. `tracedapp_leader` or
    /// `tracedapp_reconciles_total{result="ok"}`; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        testkit::prom::sample(&self.metrics(), sample).unwrap_or(0.0)
    }

    /// Sum of every `tracedapp_api_writes_total` sample: the writes this replica sent.
    pub fn writes(&self) -> f64 {
        testkit::prom::sum(&self.metrics(), "tracedapp_api_writes_total")
    }

    fn metrics(&self) -> String {
        let (_, body) = http_get(self.port, "/metrics").expect("metrics answer");
        body
    }
}

/// `GET http://127.0.0.1:<port><path>`: `(status, body)`, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    testkit::http::get(&format!("http://127.0.0.1:{port}{path}")).ok()
}

/// `kubectl get -n demo <what> -o jsonpath=<path>` (empty if absent).
pub fn jsonpath(cp: &ControlPlane, what: &str, path: &str) -> String {
    let out = cp.kubectl(&["get", "-n", "demo", what, &format!("-o=jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status of condition `kind` of TracedApp `name`.
pub fn condition(cp: &ControlPlane, name: &str, kind: &str) -> String {
    jsonpath(
        cp,
        &format!("ta/{name}"),
        &format!("{{.status.conditions[?(@.type==\"{kind}\")].status}}"),
    )
}

/// Applies the example `manifests/examples/shop.yaml` into `demo`.
pub fn apply_shop(cp: &ControlPlane) {
    let example = repo_root().join("manifests/examples/shop.yaml");
    cp.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap()]);
}

/// A minimal valid TracedApp `name` in `demo`.
pub fn apply_app(cp: &ControlPlane, name: &str) {
    let spec = format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: {name}, namespace: demo}}\n\
         spec:\n  app: {{image: \"app:1\"}}\n  exporters: {{jaeger: {{endpoint: \"jaeger:4317\"}}}}\n"
    );
    let out = cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&spec));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reasons of the Events about TracedApp `name`, oldest first.
pub fn event_reasons(cp: &ControlPlane, name: &str) -> Vec<String> {
    cp.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        "demo",
        &format!("--field-selector=regarding.name={name}"),
        "--sort-by=.metadata.creationTimestamp",
        "-o=jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// One spec change per batch size (each a new collector config, so a new ConfigMap).
pub fn change_collector_config(cp: &ControlPlane, app: &str, batch_sizes: &[u32]) {
    for size in batch_sizes {
        cp.kubectl_ok(&[
            "patch",
            "-n",
            "demo",
            &format!("ta/{app}"),
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"collector":{{"batch":{{"sendBatchSize":{size}}}}}}}}}"#),
        ]);
    }
}

/// How many collector ConfigMaps TracedApp `app` has.
pub fn config_maps(cp: &ControlPlane, app: &str) -> usize {
    cp.kubectl_ok(&[
        "get",
        "configmaps",
        "-n",
        "demo",
        "-l",
        &format!("tracedapp.dev/name={app}"),
        "-o=name",
    ])
    .lines()
    .count()
}
