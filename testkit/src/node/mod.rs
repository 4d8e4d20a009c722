//! A one-node Kubernetes cluster on this machine, with real pods: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, containerd + runc + the CNI bridge, the kubelet,
//! kube-proxy and CoreDNS. Needs root (and Linux). Images come from OCI archives
//! ([`crate::image`]), imported into containerd: nothing is pulled.
//!
//! Expected flow: [`Cluster::start`] → tests use [`Cluster::kubectl`], [`Cluster::reach`] (a
//! 127.0.0.1 forward to a pod, Service or NodePort address), images → [`Cluster::stop`] (or
//! drop, or a signal: [`stop_on_signals`]) deletes the workloads, stops every process it started
//! (by PID, only if it is still ours) and removes what the rig made, by its own names: the
//! node's network namespace, mounts under its folder, its cgroups, the global sysctls the
//! kubelet set. [`Cluster::stop`] then compares the host with a snapshot taken before the start
//! and reports any difference.
//!
//! Network: the node has a network namespace of its own ([`netns`], as kind's node
//! containers have). Inside it, pods live on our bridge [`BRIDGE`] ([`POD_CIDR`]; its address
//! [`NODE_IP`] is the node's IP, the pods' gateway, where the API server and CoreDNS listen),
//! the Service range [`SERVICE_CIDR`] is routed into the bridge, and kube-proxy's and
//! kube-router's rules live. The host reaches it only through 127.0.0.1 forwards; its own
//! namespace never sees a destination outside 127.0.0.0/8. NetworkPolicies are enforced by
//! kube-router's policy controller (its routing and service proxy off).
//!
//! Security: the cluster's credentials are its own (a new CA, client certificates and random
//! tokens per start, readable by their owner only); etcd takes only clients with a certificate
//! and listens on the namespace's loopback; the API server refuses anonymous requests and is
//! reachable from the host through the forward only with the admin kubeconfig (0600).
//!
//! One cluster at a time: its folder ([`node_dir`]) holds `state.json`, which
//! `cargo xtask cluster down`, and the next start after a crash, use to clean up. The file is
//! read as untrusted: a process is stopped only if it still runs one of the recorded programs
//! in the rig's namespace, and a sysctl is restored only if it is one the rig may change.

mod components;
mod config;
pub mod host;
pub mod images;
pub mod netns;
mod site;
mod state;
mod teardown;

use site::private_dir;
pub use site::{is_root, kind_port_mappings, node_dir, reach};
use state::{Recorded, State};

pub use config::CGROUP_ROOT;
use teardown::{alive, read_state, teardown};
pub use teardown::{down, running, stop_on_signals};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tools;

/// The bridge the pods are on.
pub const BRIDGE: &str = "tracedapp0";
/// The node's IP: the bridge's address.
pub const NODE_IP: &str = "10.88.0.1";
/// Pod addresses (on the bridge).
pub const POD_CIDR: &str = "10.88.0.0/24";
/// Service addresses (routed into the bridge, translated by kube-proxy).
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The API server's port on [`NODE_IP`].
pub const API_PORT: u16 = 6443;
/// The node's name.
pub const NODE_NAME: &str = "tracedapp-node";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The pause image every pod sandbox runs.
pub const PAUSE_IMAGE: &str = "localhost/tracedapp/pause:1";

type Result<T, E = String> = std::result::Result<T, E>;

/// The argument that marks the forwarder process of `cargo xtask cluster up`.
pub const FORWARDER_MARK: &str = "__forward";

/// A running one-node cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    /// A kubeconfig for the admin user (`system:masters`), through the 127.0.0.1 forward to
    /// the API server; readable by its owner only.
    pub kubeconfig: PathBuf,
    state: State,
    children: Vec<Child>,
    /// The host's 127.0.0.1 port forwarded to the API server (0: any free one).
    api_port: u16,
    stopped: bool,
    detached: bool,
}

impl Cluster {
    /// Starts every component, imports `images` (OCI archives) and waits until the node is
    /// Ready, kube-proxy and CoreDNS answer, and the `default` ServiceAccount exists.
    /// A cluster left behind by a crashed run is cleaned up first; a running one is an error.
    pub fn start(images: &[PathBuf]) -> Result<Self> {
        Self::start_on(images, 0)
    }

    /// [`Cluster::start`] with the API server forwarded from `127.0.0.1:<api_port>` (0: any
    /// free port).
    pub fn start_on(images: &[PathBuf], api_port: u16) -> Result<Self> {
        let started = Instant::now();
        preflight()?;
        let dir = node_dir();
        if let Some(old) = read_state(&dir) {
            if old.processes.iter().any(alive) {
                return Err(format!(
                    "a cluster is already running from {} (`cargo xtask cluster up`?); \
                     stop it with `cargo xtask cluster down`",
                    dir.display()
                ));
            }
            eprintln!(
                "node: cleaning up a cluster left behind in {}",
                dir.display()
            );
            let problems = teardown(&dir, &old, false);
            for p in problems {
                eprintln!("node: {p}");
            }
        }
        if netns::exists() {
            // Left by a run that crashed before it wrote its state: nothing of it runs.
            netns::delete();
        }
        let _ = std::fs::remove_dir_all(&dir);
        private_dir(&dir)?;
        for sub in ["logs", "run", "cni", "pki", "pod-logs", "images"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let mut cluster = Cluster {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            state: State {
                before: host::Snapshot::take(),
                processes: Vec::new(),
            },
            children: Vec::new(),
            api_port,
            stopped: false,
            detached: false,
        };
        cluster.save()?;
        // From here on, a failure tears down what was started (Drop).
        netns::create()?;
        cluster.write_config()?;
        cluster.start_components(images)?;
        cluster.log(&format!("ready in {:.1?}", started.elapsed()));
        Ok(cluster)
    }

    fn log(&self, what: &str) {
        eprintln!("node: {what}");
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.state).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join("state.json"), json).map_err(|e| e.to_string())
    }

    fn write_config(&self) -> Result<()> {
        let d = &self.dir;
        let write = |name: &str, text: &str| {
            std::fs::write(d.join(name), text).map_err(|e| format!("writing {name}: {e}"))
        };
        config::pki(&d.join("pki"))?;
        for (component, ..) in config::USERS {
            // The admin's is written once the API server's forward exists.
            if component != "admin" {
                config::write_private(
                    &d.join(format!("{component}.kubeconfig")),
                    &config::kubeconfig(&d.join("pki"), component, &config::api_url())?,
                )?;
            }
        }
        write("containerd.toml", &config::containerd(d, PAUSE_IMAGE))?;
        write("cni/10-tracedapp.conflist", &config::cni(d))?;
        write("kubelet.yaml", &config::kubelet(d))?;
        write("admission.yaml", config::ADMISSION)?;
        write("coredns-rbac.yaml", config::COREDNS_RBAC)
    }

    /// The admin kubeconfig, for the API server's forward at `server` (owner only).
    fn write_admin_kubeconfig(&self, server: &str) -> Result<()> {
        config::write_private(
            &self.kubeconfig,
            &config::kubeconfig(&self.dir.join("pki"), "admin", server)?,
        )
    }

    /// A 127.0.0.1 address on the host that reaches `target` (see [`reach`]).
    pub fn reach(&self, target: &str) -> String {
        reach(target)
    }

    /// Starts `cmd` (made by [`netns::command`], running `exe` inside the node's network
    /// namespace) as `name`, logging to `logs/<name>.log`, in its own process group (a Ctrl-C
    /// meant for the tests must not kill it before the teardown has run: the tests' signal
    /// handler does that).
    fn spawn(&mut self, name: &str, exe: PathBuf, mut cmd: Command) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.dir.join("logs").join(format!("{name}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", exe.display()))?;
        self.state.processes.push(Recorded {
            name: name.to_owned(),
            pid: child.id(),
            exe,
            in_node: true,
        });
        self.children.push(child);
        self.save()
    }

    /// Fails with the component's log if it has exited.
    fn check_running(&mut self, name: &str) -> Result<()> {
        let i = self
            .state
            .processes
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| format!("{name} was never started"))?;
        if let Ok(Some(status)) = self.children[i].try_wait() {
            return Err(format!(
                "{name} exited ({status}); last log lines:\n{}",
                self.log_tail(name, 30)
            ));
        }
        Ok(())
    }

    /// Waits (polling) until `ready`, while `component` keeps running.
    fn wait(
        &mut self,
        what: &str,
        component: &str,
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(self) {
                return Ok(());
            }
            self.check_running(component)?;
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; last lines of {component}'s log:\n{}",
                    self.log_tail(component, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `(component, pid)` of every process the cluster runs (containerd, the kubelet, ...).
    pub fn components(&self) -> Vec<(String, u32)> {
        self.state
            .processes
            .iter()
            .map(|p| (p.name.clone(), p.pid))
            .collect()
    }

    /// The cluster's folder (logs in `logs/`, pod logs in `pod-logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://<node IP>:<port>`.
    pub fn api_url(&self) -> String {
        config::api_url()
    }

    /// The last `lines` lines of a component's log (`kubelet`, `containerd`, ...).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("logs").join(format!("{component}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Prints the end of every component's log (for a failing test).
    pub fn print_logs(&self, lines: usize) {
        for p in &self.state.processes {
            eprintln!(
                "--- {} ({}) ---\n{}",
                p.name,
                self.dir
                    .join("logs")
                    .join(format!("{}.log", p.name))
                    .display(),
                self.log_tail(&p.name, lines)
            );
        }
    }

    /// `ctr` against our containerd, in the Kubernetes namespace.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        ctr_at(&self.dir.join("run/containerd.sock"), args)
    }

    /// Runs `kubectl` (the built one, of the API server's version) as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        crate::kube::kubectl(&self.kubeconfig, args, None)
    }

    /// Runs `kubectl` and panics with its stderr unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        crate::kube::kubectl_ok(&self.kubeconfig, args)
    }

    /// Runs `kubectl` with `stdin`; stdout, or the error with stderr.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<String> {
        let out = crate::kube::kubectl(&self.kubeconfig, args, Some(stdin));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Points the admin kubeconfig at the API server's forward on `127.0.0.1:<port>` (a
    /// forwarder that outlives this process: `cargo xtask cluster up`).
    pub fn point_admin_at(&self, port: u16) -> Result<()> {
        self.write_admin_kubeconfig(&format!("https://127.0.0.1:{port}"))
    }

    /// Records a process started on the host for the cluster (the forwarder of `cargo xtask
    /// cluster up`, whose arguments carry [`FORWARDER_MARK`]) so that the teardown stops it.
    pub fn record_host_process(&mut self, name: &str, pid: u32, exe: PathBuf) -> Result<()> {
        self.state.processes.push(Recorded {
            name: name.to_owned(),
            pid,
            exe,
            in_node: false,
        });
        self.save()
    }

    /// Leaves the cluster running when this value goes away (`cargo xtask cluster up`);
    /// `cargo xtask cluster down` ([`down`]) stops it.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Deletes the workloads, stops every component, restores the host, and removes the
    /// cluster's folder (kept, with its logs, if `keep_logs`). Returns what differs on the
    /// host from before the start: empty when everything was put back.
    pub fn stop(mut self, keep_logs: bool) -> Vec<String> {
        self.stopped = true;
        for mut child in std::mem::take(&mut self.children) {
            // The teardown stops them by PID; reap them here so none is left a zombie.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        teardown(&self.dir, &self.state, keep_logs)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stopped || self.detached {
            return;
        }
        let panicking = std::thread::panicking();
        if panicking {
            self.print_logs(40);
        }
        for p in teardown(&self.dir, &self.state, panicking) {
            eprintln!("node: host not restored: {p}");
        }
    }
}

fn ctr_at(sock: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .map_err(|e| format!("ctr: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whether `GET http://127.0.0.1:<port><path>` inside the node's namespace answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    netns::http_status(([127, 0, 0, 1], port).into(), path) == Some(200)
}

/// Root, Linux, and the Debian packages and built tools the cluster runs.
fn preflight() -> Result<()> {
    if !is_root() {
        return Err(
            "the one-node cluster needs root (it adds a network namespace, mounts and \
                    cgroups)"
                .to_owned(),
        );
    }
    let missing: Vec<&str> = [
        ("containerd", "/usr/bin/containerd"),
        ("ctr", "/usr/bin/ctr"),
        ("runc", "/usr/sbin/runc"),
        ("CNI plugins", "/usr/lib/cni/bridge"),
        ("iptables", "/usr/sbin/iptables"),
        ("ipset", "/usr/sbin/ipset"),
        ("nsenter", "/usr/bin/nsenter"),
    ]
    .into_iter()
    .filter(|(_, p)| !Path::new(p).exists())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {}: `cargo xtask setup` installs them as root (apt-get install -y \
             containerd runc containernetworking-plugins iptables ipset conntrack)",
            missing.join(", ")
        ));
    }
    Ok(())
}
