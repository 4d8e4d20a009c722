//! The rig the scenarios share: the one-node cluster with our images, and what the scenarios
//! ask of it (kubectl, helm, HTTP to pods and Services, Jaeger's query API).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;
use testkit::node::{Cluster, NODE_IP, images};
use testkit::{repo_root, tools};
use tracedapp_k8s::naming::COLLECTOR_CONTAINER;

pub type Scenario = fn(&Rig) -> Result<(), Failed>;

/// The cluster and the facts the scenarios use.
#[derive(Debug)]
pub struct Rig {
    pub cluster: Cluster,
}

/// A TracedApp that reached READY True ([`Rig::apply_until_ready`]).
pub struct ReadyApp {
    /// Its first pod's name.
    pub pod: String,
    /// The host PID of that pod's collector.
    pub collector_pid: u32,
    pub ip: std::net::IpAddr,
    /// The pod as `kubectl get -o json` printed it then.
    pub json: Value,
}

/// The collector's container (a native sidecar: an init container) in a pod's JSON.
pub fn collector_container(pod: &Value) -> Option<&Value> {
    pod.pointer("/spec/initContainers")?
        .as_array()?
        .iter()
        .find(|c| c["name"] == COLLECTOR_CONTAINER)
}

/// Every container status in a pod's JSON, the init containers' first.
pub fn container_statuses(pod: &Value) -> Vec<&Value> {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][*k].as_array())
        .flatten()
        .collect()
}

/// Our binaries, next to each other in cargo's target folder (`cargo test --workspace` builds
/// both; a lone `cargo test -p tracedapp-operator` builds traced-service here).
fn binaries() -> Result<images::Binaries, String> {
    let operator = PathBuf::from(env!("CARGO_BIN_EXE_tracedapp-operator"));
    let service = operator.with_file_name("traced-service");
    if !service.exists() {
        eprintln!("node: building traced-service (cargo build -p traced-service) ...");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "traced-service", "--bin", "traced-service"])
            .current_dir(repo_root())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() || !service.exists() {
            return Err(format!("{} is missing", service.display()));
        }
    }
    Ok(images::Binaries { service, operator })
}

impl Rig {
    pub fn start() -> Result<Self, String> {
        let started = Instant::now();
        let out = std::env::temp_dir().join(format!("tracedapp-images-{}", std::process::id()));
        let archives = images::build(&out, &binaries()?)?;
        eprintln!("node: images packed in {:.1?}", started.elapsed());
        let cluster = Cluster::start(&archives);
        let _ = std::fs::remove_dir_all(&out);
        Ok(Self { cluster: cluster? })
    }

    /// Runs a scenario; on failure prints what helps: pods, events and the logs of pods that
    /// are not well.
    pub fn run_scenario(&self, name: &str, scenario: Scenario) -> Result<(), Failed> {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(self)));
        let result = match result {
            Ok(r) => r,
            Err(panic) => Err(Failed::from(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned()),
            )),
        };
        eprintln!("node: {name} took {:.1?}", started.elapsed());
        if result.is_err() {
            self.diagnose();
        }
        result
    }

    fn diagnose(&self) {
        eprintln!(
            "--- pods ---\n{}",
            self.kubectl_out(&["get", "pods", "-A", "-o=wide"])
        );
        eprintln!(
            "--- events ---\n{}",
            self.kubectl_out(&["get", "events", "-A", "--sort-by=.lastTimestamp"])
        );
        eprintln!(
            "--- tracedapps ---\n{}",
            self.kubectl_out(&["get", "ta", "-A", "-o=yaml"])
        );
        for ns in ["tracedapp-system", "demo"] {
            let pods = self.kubectl_out(&["get", "pods", "-n", ns, "-o=name"]);
            for pod in pods.lines() {
                eprintln!(
                    "--- logs {ns}/{pod} ---\n{}",
                    self.kubectl_out(&["logs", "-n", ns, pod, "--all-containers", "--tail=30"])
                );
            }
        }
        for c in [
            "kubelet",
            "kube-controller-manager",
            "coredns",
            "kube-proxy",
        ] {
            eprintln!("--- {c} ---\n{}", self.cluster.log_tail(c, 15));
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cluster.kubectl(args)
    }

    /// stdout and stderr of a kubectl call, whatever its outcome (for diagnostics).
    fn kubectl_out(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.cluster.kubectl_ok(args)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        self.cluster
            .kubectl_stdin(args, stdin)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubectl get <what> -n <ns> -o jsonpath=<path>` (empty when absent).
    pub fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
        let out = self.kubectl(&["get", "-n", ns, what, &format!("-o=jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("-o=json");
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl prints JSON")
    }

    /// The status of condition `kind` of TracedApp `ns/name`.
    pub fn condition(&self, ns: &str, name: &str, kind: &str) -> (String, String) {
        let get = |field: &str| {
            self.jsonpath(
                ns,
                &format!("ta/{name}"),
                &format!("{{.status.conditions[?(@.type==\"{kind}\")].{field}}}"),
            )
        };
        (get("status"), get("reason"))
    }

    /// Runs helm (the built one) against the cluster, from the repository root.
    pub fn helm(&self, args: &[&str]) -> Output {
        Command::new(tools::helm())
            .args(args)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .current_dir(repo_root())
            .output()
            .expect("helm runs")
    }

    pub fn helm_ok(&self, args: &[&str]) -> String {
        let out = self.helm(args);
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `helm upgrade` of the operator's release (installed by the README's walk-through), its
    /// values kept and `values` (`key=value`) set on top; waits for the rollout when `wait`.
    pub fn set_operator_values(&self, values: &[&str], wait: bool) -> String {
        let mut args = vec![
            "upgrade",
            "tracedapp-operator",
            "charts/tracedapp-operator",
            "--namespace",
            crate::scenarios::OPERATOR_NS,
            "--reuse-values",
        ];
        for v in values {
            args.extend(["--set", v]);
        }
        if wait {
            args.push("--wait");
        }
        self.helm_ok(&args)
    }

    /// Waits until the in-cluster Jaeger (`manifests/jaeger.yaml`) has rolled out.
    pub fn wait_jaeger_rolled_out(&self) {
        self.kubectl_ok(&[
            "rollout",
            "status",
            "-n",
            "observability",
            "deploy/jaeger",
            "--timeout=120s",
        ]);
    }

    /// Names of the pods in `ns` matching `selector`.
    pub fn pods(&self, ns: &str, selector: &str) -> Vec<String> {
        self.kubectl_ok(&["get", "pods", "-n", ns, "-l", selector, "-o=name"])
            .lines()
            .map(|l| l.trim_start_matches("pod/").to_owned())
            .collect()
    }

    /// Applies `spec` (the TracedApp `name` in `ns`), waits up to 3 minutes for READY True,
    /// and finds its first pod and the collector in it.
    pub fn apply_until_ready(&self, ns: &str, name: &str, spec: &str) -> Result<ReadyApp, Failed> {
        self.kubectl_stdin(&["apply", "-f", "-"], spec);
        wait(
            &format!("{name} READY True"),
            Duration::from_secs(180),
            || self.condition(ns, name, "Ready").0 == "True",
        )?;
        let pod = self
            .pods(ns, &format!("app.kubernetes.io/instance={name}"))
            .into_iter()
            .next()
            .ok_or("no pod")?;
        let collector_pid = self.container_pid(ns, &pod, COLLECTOR_CONTAINER);
        let json = self.json(&["get", "pod", "-n", ns, &pod]);
        let ip = json
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok())
            .ok_or("the pod's IP")?;
        Ok(ReadyApp {
            pod,
            collector_pid,
            ip,
            json,
        })
    }

    /// The host PID of a container (`<pod>`/`<container>`), from containerd; waits up to a
    /// minute for the container to run.
    pub fn container_pid(&self, ns: &str, pod: &str, container: &str) -> u32 {
        let mut found = None;
        let waited = wait(
            &format!("{pod}/{container} to run"),
            Duration::from_secs(60),
            || {
                found = self.try_container_pid(ns, pod, container);
                found.is_some()
            },
        );
        found.unwrap_or_else(|| panic!("{}", waited.unwrap_err()))
    }

    fn try_container_pid(&self, ns: &str, pod: &str, container: &str) -> Option<u32> {
        let status = self.json(&["get", "pod", "-n", ns, pod]);
        let statuses = status["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                status["status"]["initContainerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            );
        let id = statuses
            .filter(|s| s["name"] == container && s["state"]["running"].is_object())
            .find_map(|s| s["containerID"].as_str())?
            .trim_start_matches("containerd://")
            .to_owned();
        let tasks = self.cluster.ctr(&["tasks", "ls"]).ok()?;
        tasks.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == id).then(|| f.next()?.parse().ok()).flatten()
        })
    }

    /// Write requests the API server has answered for `resource` (see `testkit::kube`).
    pub fn api_writes(&self, resource: &str) -> u64 {
        testkit::kube::api_writes(&self.kubectl_ok(&["get", "--raw=/metrics"]), resource)
    }

    /// Stops the cluster and restores the host; what differs afterwards.
    pub fn stop(self, failed: bool) -> Vec<String> {
        self.cluster.stop(failed)
    }
}

/// `GET http://<addr><path>`: `(status, body)`, or the error.
pub fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    testkit::http::get(&format!("http://{addr}{path}"))
}

/// Polls `ready` every 250 ms until it holds; fails with `what` after `timeout`.
pub fn wait(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Where the host reaches a NodePort of this node (a 127.0.0.1 forward into the node).
pub fn node_port(port: u16) -> String {
    testkit::node::reach(&format!("{NODE_IP}:{port}"))
}

/// Where the host reaches `ip:port` inside the node (a pod's address).
pub fn in_node(ip: &str, port: u16) -> String {
    testkit::node::reach(&format!("{ip}:{port}"))
}

/// Jaeger's query API, as the in-cluster Jaeger serves it through its NodePort.
#[derive(Debug)]
pub struct Jaeger {
    pub addr: String,
}

impl Jaeger {
    /// Traces of `service` (at most `limit`) whose spans started in the last hour.
    pub fn traces(&self, service: &str, limit: usize) -> Vec<Value> {
        self.query(&format!(
            "/api/traces?service={service}&limit={limit}&lookback=1h"
        ))
    }

    /// Traces of `service` with an `operation` span started between two times (µs since the epoch).
    pub fn traces_between(
        &self,
        service: &str,
        operation: &str,
        start_us: u128,
        end_us: u128,
    ) -> Vec<Value> {
        let op = operation.replace(' ', "%20").replace('/', "%2F");
        self.query(&format!(
            "/api/traces?service={service}&operation={op}&start={start_us}&end={end_us}&limit=100000"
        ))
    }

    fn query(&self, path: &str) -> Vec<Value> {
        match get(&self.addr, path) {
            Ok((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["data"].as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Microseconds since the epoch (Jaeger's time unit).
pub fn now_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}

/// A span's tag value.
pub fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// The file at `path` in the repository.
pub fn repo_file(path: &str) -> PathBuf {
    repo_root().join(path)
}
