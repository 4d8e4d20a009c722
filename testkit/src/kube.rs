//! etcd + kube-apiserver on loopback, the way controller-runtime's envtest runs them: a
//! self-signed serving certificate, a service-account key pair, a static admin token, and a
//! kubeconfig for `kubectl` and kube-rs clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{Process, TempDir, free_port, listening, wait_until};
use crate::tools;

/// The bearer token of the `admin` user (group `system:masters`).
pub const ADMIN_TOKEN: &str = "tracedapp-test-admin-token";

/// Every resource the operator writes (`resource[/subresource]`, as [`ControlPlane::writes`]
/// takes them), for counting its writes from the API server's side.
pub const OPERATOR_WRITE_RESOURCES: [&str; 7] = [
    "configmaps",
    "serviceaccounts",
    "deployments",
    "services",
    "networkpolicies",
    "tracedapps/status",
    "events",
];

/// A running API server and its etcd; both stopped when dropped.
#[derive(Debug)]
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// A kubeconfig for the admin user.
    pub kubeconfig: PathBuf,
    apiserver: Process,
    etcd: Process,
    etcd_port: u16,
    port: u16,
    controller_manager: Option<Process>,
    dir: TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready (about 5-10 s).
    pub fn start() -> Self {
        let dir = TempDir::new("kube");
        let d = dir.path();

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd = etcd_command(&d.join("etcd"), etcd_port, peer_port);
        let mut etcd = Process::start("etcd", etcd, d.join("etcd.log"));
        wait_until("etcd to listen", Duration::from_secs(30), || {
            etcd.assert_running();
            listening(etcd_port)
        });

        let sa_key = d.join("sa.key");
        let sa_pub = d.join("sa.pub");
        openssl(&["genrsa", "-out", path(&sa_key), "2048"]);
        openssl(&[
            "rsa",
            "-in",
            path(&sa_key),
            "-pubout",
            "-out",
            path(&sa_pub),
        ]);
        let tokens = d.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        )
        .unwrap();

        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let apiserver = start_apiserver(d, etcd_port, port);
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: test\n  context: {{cluster: test, user: admin, namespace: default}}\ncurrent-context: test\n"
            ),
        )
        .unwrap();

        let mut cp = Self {
            url,
            kubeconfig,
            apiserver,
            etcd,
            etcd_port,
            port,
            controller_manager: None,
            dir,
        };
        cp.wait_ready();
        cp
    }

    fn wait_ready(&mut self) {
        wait_until("kube-apiserver /readyz", Duration::from_secs(90), || {
            self.apiserver.assert_running();
            self.kubectl(&["get", "--raw=/readyz"]).status.success()
        });
    }

    /// Stops kube-apiserver (etcd keeps the data); [`Self::start_apiserver`] brings it back.
    pub fn stop_apiserver(&mut self) {
        self.apiserver.stop();
    }

    /// Starts kube-apiserver again on the same port and waits until it is ready.
    pub fn start_apiserver(&mut self) {
        self.apiserver = start_apiserver(self.dir.path(), self.etcd_port, self.port);
        self.wait_ready();
    }

    /// Starts kube-controller-manager with only the garbage collector, the controller that
    /// deletes objects whose owner is gone.
    pub fn start_garbage_collector(&mut self) {
        self.start_controller_manager(&["garbagecollector"]);
    }

    /// Starts kube-controller-manager running `controllers` (e.g. `deployment`,
    /// `replicaset`). No scheduler or kubelet runs: pods are created but stay Pending unless a
    /// test sets their status.
    pub fn start_controller_manager(&mut self, controllers: &[&str]) {
        let d = self.dir.path();
        let mut cmd = Command::new(tools::kube_controller_manager());
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--controllers={}", controllers.join(",")))
            .arg("--leader-elect=false")
            .arg("--secure-port=0")
            .arg("--concurrent-gc-syncs=5");
        self.controller_manager = Some(Process::start(
            "kube-controller-manager",
            cmd,
            d.join("kube-controller-manager.log"),
        ));
    }

    /// Prometheus metrics of the API server.
    pub fn metrics(&self) -> String {
        self.kubectl_ok(&["get", "--raw=/metrics"])
    }

    /// Write requests (POST, PUT, PATCH, DELETE) the API server has answered for `resource`
    /// (`deployments`, `tracedapps/status`, ...), from its `apiserver_request_total` counter.
    pub fn writes(&self, resource: &str) -> u64 {
        api_writes(&self.metrics(), resource)
    }

    /// Runs `kubectl` against this API server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs `kubectl` with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl(&self.kubeconfig, args, stdin)
    }

    /// Runs `kubectl` and panics with its stderr unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_ok(&self.kubeconfig, args)
    }

    /// A fresh API server with our CRD (`manifests/crd.yaml`) established and `namespaces`
    /// created.
    pub fn with_tracedapp_crd(namespaces: &[&str]) -> Self {
        let cp = Self::start();
        let name = tracedapp_api::spec::crd()
            .metadata
            .name
            .expect("the CRD has a name");
        cp.install_crd(&crate::repo_root().join("manifests/crd.yaml"), &name);
        for ns in namespaces {
            cp.kubectl_ok(&["create", "namespace", ns]);
        }
        cp
    }

    /// Applies a CRD file (server-side) and waits until `crd` (e.g.
    /// `tracedapps.tracedapp.dev`) is Established.
    pub fn install_crd(&self, file: &Path, crd: &str) {
        self.kubectl_ok(&["apply", "--server-side", "-f", path(file)]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ]);
    }

    /// CPU seconds used so far by kube-apiserver and by etcd, for benchmarks.
    pub fn cpu_seconds(&self) -> (f64, f64) {
        (
            crate::process::cpu_seconds(self.apiserver.pid()),
            crate::process::cpu_seconds(self.etcd.pid()),
        )
    }

    /// A scratch directory that lives as long as the control plane.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Where this API server (which has no node) allocates Service IPs: large enough for the
/// operator benchmark's 1,000 apps (a /24 ran out at 253), and never routed anywhere: no
/// node, no kube-proxy. The one-node cluster has a range of its own (`node::SERVICE_CIDR`).
const SERVICE_POOL: &str = "10.0.0.0/16";

/// kube-apiserver on `port` over the etcd at `etcd_port`, with envtest's flags.
fn start_apiserver(d: &Path, etcd_port: u16, port: u16) -> Process {
    let url = format!("https://127.0.0.1:{port}");
    let mut api = Command::new(tools::kube_apiserver());
    api.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
        .arg(format!("--cert-dir={}", d.join("certs").display()))
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--service-cluster-ip-range={SERVICE_POOL}"))
        .arg("--allow-privileged=true")
        .arg("--authorization-mode=RBAC")
        .arg(format!(
            "--token-auth-file={}",
            d.join("tokens.csv").display()
        ))
        .arg(format!("--service-account-issuer={url}"))
        .arg(format!(
            "--service-account-key-file={}",
            d.join("sa.pub").display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            d.join("sa.key").display()
        ))
        // Only ServiceAccount needs a controller we do not run; the rest behave as in a cluster.
        .arg("--disable-admission-plugins=ServiceAccount");
    Process::start("kube-apiserver", api, d.join("kube-apiserver.log"))
}

/// Write requests (POST, PUT, PATCH, DELETE) answered for `resource` (`deployments`,
/// `tracedapps/status`, ...), read from an API server's `apiserver_request_total` in `metrics`.
pub fn api_writes(metrics: &str, resource: &str) -> u64 {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let label = |set, key| crate::prom::label(set, key).unwrap_or("");
    crate::prom::series(metrics, "apiserver_request_total")
        .filter(|(set, _)| {
            label(set, "resource") == resource
                && label(set, "subresource") == subresource
                && ["POST", "PUT", "PATCH", "DELETE"].contains(&label(set, "verb"))
        })
        .map(|(_, value)| value)
        .sum::<f64>() as u64
}

/// A single-member etcd on 127.0.0.1 keeping its data in `data_dir`, without fsync (tests
/// throw the data away).
pub fn etcd_command(data_dir: &Path, client_port: u16, peer_port: u16) -> Command {
    let mut etcd = Command::new(tools::etcd());
    etcd.arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
        ))
        .arg(format!(
            "--initial-cluster=default=http://127.0.0.1:{peer_port}"
        ))
        .args(["--unsafe-no-fsync", "--log-level=warn"]);
    etcd
}

/// [`kubectl`] that panics with its stderr unless it succeeds; returns stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args, None);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `kubectl` (the one built with the API server, same version) with `kubeconfig`,
/// feeding it `stdin` if given.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(tools::kubectl())
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        // A kubectl that exits early closes its input; its stderr says why.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    child.wait_with_output().expect("kubectl finishes")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
