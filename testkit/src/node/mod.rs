//! A one-node Kubernetes cluster on this machine, with real pods: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, containerd + runc + the CNI bridge, the kubelet,
//! kube-proxy and CoreDNS. Needs root (and Linux). Images come from OCI archives
//! ([`crate::image`]), imported into containerd: nothing is pulled.
//!
//! Expected flow: [`Cluster::start`] → tests use [`Cluster::kubectl`], pod and Service
//! addresses, images → [`Cluster::stop`] (or drop) deletes the workloads, stops every process
//! it started (by PID) and restores the host: network namespaces, mounts, iptables chains,
//! the bridge and route, sysctls, cgroups. [`Cluster::stop`] then compares the host with a
//! snapshot taken before the start and reports any difference.
//!
//! Network: pods live on our bridge [`BRIDGE`] ([`POD_CIDR`]; its address [`NODE_IP`] is
//! the node's IP, the pods' gateway, where the API server and CoreDNS listen). The Service
//! range [`SERVICE_CIDR`] is routed into the bridge. Nothing is masqueraded out or routed
//! anywhere else, so traffic stays between the host and the bridge.
//!
//! One cluster at a time: its folder ([`node_dir`]) holds `state.json`, which
//! `cargo xtask cluster down`, and the next start after a crash, use to clean up.

mod components;
mod config;
pub mod host;
pub mod images;
mod teardown;

use teardown::{alive, read_state, teardown};
pub use teardown::{down, running};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

/// Whether this process runs as root (the cluster needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Where the cluster lives: `$TRACEDAPP_CACHE/node` (`~/.cache/tracedapp/node`).
pub fn node_dir() -> PathBuf {
    tools::cache_dir()
        .parent()
        .expect("the tools cache has a parent")
        .join("node")
}

/// A process of the cluster, recorded so that another process can stop it too.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    name: String,
    pid: u32,
    /// The program, to tell our process from a later one with the same PID.
    exe: PathBuf,
}

/// Everything needed to tear the cluster down, kept in `<dir>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The host before the cluster started.
    before: host::Snapshot,
    processes: Vec<Recorded>,
}

/// A running one-node cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    /// A kubeconfig for the admin user (`system:masters`).
    pub kubeconfig: PathBuf,
    state: State,
    children: Vec<Child>,
    stopped: bool,
    detached: bool,
}

impl Cluster {
    /// Starts every component, imports `images` (OCI archives) and waits until the node is
    /// Ready, kube-proxy and CoreDNS answer, and the `default` ServiceAccount exists.
    /// A cluster left behind by a crashed run is cleaned up first; a running one is an error.
    pub fn start(images: &[PathBuf]) -> Result<Self> {
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
        for r in [POD_CIDR, SERVICE_CIDR] {
            let routes = Command::new("ip").args(["route", "show", r]).output();
            if routes.is_ok_and(|o| !o.stdout.is_empty()) {
                return Err(format!(
                    "{r} is already routed on this machine; the cluster needs it for itself"
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
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
            stopped: false,
            detached: false,
        };
        cluster.save()?;
        // From here on, a failure tears down what was started (Drop).
        cluster.prepare_host()?;
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

    /// The bridge (its address is the node IP), the Service route into it, and the sysctls
    /// the pods' network needs.
    fn prepare_host(&mut self) -> Result<()> {
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{NODE_IP}/{}", POD_CIDR.split_once('/').expect("CIDR").1),
            "dev",
            BRIDGE,
        ])?;
        run(&["ip", "link", "set", BRIDGE, "up"])?;
        run(&["ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE])?;
        // Pods reach Services on the same bridge only if bridged traffic passes iptables.
        for (k, v) in [
            ("net/ipv4/ip_forward", "1"),
            ("net/bridge/bridge-nf-call-iptables", "1"),
        ] {
            host::set_sysctl(k, v).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
        }
        Ok(())
    }

    fn write_config(&self) -> Result<()> {
        let d = &self.dir;
        let write = |name: &str, text: &str| {
            std::fs::write(d.join(name), text).map_err(|e| format!("writing {name}: {e}"))
        };
        config::pki(&d.join("pki"))?;
        for (component, ..) in config::USERS {
            write(
                &format!("{component}.kubeconfig"),
                &config::kubeconfig(&d.join("pki"), component)?,
            )?;
        }
        write("containerd.toml", &config::containerd(d, PAUSE_IMAGE))?;
        write("cni/10-tracedapp.conflist", &config::cni(d))?;
        write("kubelet.yaml", &config::kubelet(d))?;
        write("admission.yaml", config::ADMISSION)?;
        write("coredns-rbac.yaml", config::COREDNS_RBAC)
    }

    /// Starts `cmd` as `name`, logging to `logs/<name>.log`, in its own process group (a
    /// Ctrl-C meant for the tests must not kill it before the teardown has run).
    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.dir.join("logs").join(format!("{name}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let exe = PathBuf::from(cmd.get_program());
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

fn run(cmd: &[&str]) -> Result<()> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{}: {e}", cmd[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whether `GET http://127.0.0.1:<port><path>` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    crate::http::get(&format!("http://127.0.0.1:{port}{path}")).is_ok_and(|(code, _)| code == 200)
}

/// Root, Linux, and the Debian packages and built tools the cluster runs.
fn preflight() -> Result<()> {
    if !is_root() {
        return Err(
            "the one-node cluster needs root (it adds a bridge, iptables rules, \
                    mounts and cgroups)"
                .to_owned(),
        );
    }
    let missing: Vec<&str> = [
        ("containerd", "/usr/bin/containerd"),
        ("ctr", "/usr/bin/ctr"),
        ("runc", "/usr/sbin/runc"),
        ("CNI plugins", "/usr/lib/cni/bridge"),
        ("iptables", "/usr/sbin/iptables"),
    ]
    .into_iter()
    .filter(|(_, p)| !Path::new(p).exists())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {}: `cargo xtask setup` installs them as root (apt-get install -y \
             containerd runc containernetworking-plugins iptables conntrack)",
            missing.join(", ")
        ));
    }
    Ok(())
}
