//! Stopping a cluster and putting the host back, from the cluster's own handle, from its state
//! file (`cargo xtask cluster down`, or the next start after a crash), or on a signal.
//!
//! Guarantees: only what the rig itself made is removed, found by its own names, never by
//! comparing with a snapshot that may be stale: the network namespace [`netns::NETNS`] (with
//! every link, route, iptables rule and ipset in it), mounts under the node's folder, the
//! cgroups under [`config::CGROUP_ROOT`]. A recorded PID is stopped only if it still runs the
//! recorded program inside the rig's namespace. The state file is untrusted input: its sysctls
//! are restored only for keys the rig may change ([`host::SYSCTLS`]) and plain numeric values.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Stops a cluster started with [`Cluster::detach`] (by its state file) and restores the
/// host; what still differs, if anything.
pub fn down() -> Result<Vec<String>> {
    let dir = node_dir();
    let state = read_state(&dir).ok_or_else(|| format!("no cluster in {}", dir.display()))?;
    Ok(teardown(&dir, &state, false))
}

/// Whether a cluster's state file is there with a live process (`cluster up` ran).
pub fn running() -> bool {
    read_state(&node_dir()).is_some_and(|s| s.processes.iter().any(alive))
}

/// On SIGINT, SIGTERM or SIGHUP: tear the cluster down (from its state file), say what was
/// done, and exit with 130. The cluster's processes run in process groups of their own, so a
/// Ctrl-C at the terminal reaches only this process; without this handler they would outlive
/// it, as root.
pub fn stop_on_signals() {
    let handler = || {
        eprintln!("node: interrupted; stopping the cluster and restoring the host ...");
        match down() {
            Ok(problems) if problems.is_empty() => {
                eprintln!("node: stopped; the host is as it was")
            }
            Ok(problems) => {
                for p in problems {
                    eprintln!("node: host not restored: {p}");
                }
            }
            Err(e) => eprintln!("node: {e}"),
        }
        std::process::exit(130);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!(
            "node: cannot handle Ctrl-C ({e}); stop the cluster with `cargo xtask cluster down`"
        );
    }
}

pub(super) fn read_state(dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the recorded process still runs: the same program under that PID, inside the
/// rig's network namespace while it exists (so a reused PID is never taken for ours).
pub(super) fn alive(p: &Recorded) -> bool {
    let same_program = std::fs::read_link(format!("/proc/{}/exe", p.pid))
        .is_ok_and(|exe| exe == p.exe || exe.ends_with(p.exe.file_name().unwrap_or_default()));
    let ours = if p.in_node {
        match netns::identity() {
            Some(node) => netns::of_process(p.pid) == Some(node),
            // The namespace is gone: whatever runs there now is not in it.
            None => false,
        }
    } else {
        std::fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| {
            c.split(|b| *b == 0)
                .any(|arg| arg == FORWARDER_MARK.as_bytes())
        })
    };
    same_program && ours
}

/// Stops `p` by PID (SIGTERM, then SIGKILL after `grace`), if it is still ours.
fn stop_process(p: &Recorded, grace: Duration) {
    if !alive(p) {
        return;
    }
    let signal = |sig: &str| {
        let _ = Command::new("kill")
            .args([sig, &p.pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let deadline = Instant::now() + grace;
    while alive(p) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(p) {
        signal("-KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The whole teardown (see the module docs); what differs on the host afterwards.
pub(super) fn teardown(dir: &Path, state: &State, keep_logs: bool) -> Vec<String> {
    let kubeconfig = dir.join("admin.kubeconfig");
    let running = |name: &str| state.processes.iter().any(|p| p.name == name && alive(p));
    // Workloads first, while the kubelet can still stop pods properly (CNI DEL, unmounts).
    if running("kube-apiserver") && running("kubelet") {
        delete_workloads(dir, &kubeconfig);
    }
    let order = [
        "coredns",
        "kube-router",
        "kube-proxy",
        "kubelet",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-apiserver",
        "etcd",
    ];
    for name in order {
        for p in state.processes.iter().filter(|p| p.name == name) {
            stop_process(p, Duration::from_secs(10));
        }
    }
    // Containers the kubelet did not stop.
    let sock = dir.join("run/containerd.sock");
    if state
        .processes
        .iter()
        .any(|p| p.name == "containerd" && alive(p))
    {
        for id in ctr_at(&sock, &["tasks", "ls", "-q"])
            .unwrap_or_default()
            .lines()
        {
            let _ = ctr_at(&sock, &["tasks", "kill", "-s", "SIGKILL", id]);
        }
        std::thread::sleep(Duration::from_millis(500));
        for id in ctr_at(&sock, &["tasks", "ls", "-q"])
            .unwrap_or_default()
            .lines()
        {
            let _ = ctr_at(&sock, &["tasks", "delete", "-f", id]);
        }
        for id in ctr_at(&sock, &["containers", "ls", "-q"])
            .unwrap_or_default()
            .lines()
        {
            let _ = ctr_at(&sock, &["containers", "delete", id]);
        }
    }
    for p in state
        .processes
        .iter()
        .filter(|p| !order.contains(&p.name.as_str()))
    {
        stop_process(p, Duration::from_secs(10));
    }
    let mut problems = host::restore(&state.before, dir);
    netns::delete();
    problems.extend(state.before.diff(&host::Snapshot::take()));
    if keep_logs {
        // Keep the logs, drop the bulk (images, snapshots) and the credentials.
        for sub in ["containerd", "kubelet", "etcd", "images", "pki"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
        let _ = std::fs::remove_file(dir.join("state.json"));
        eprintln!("node: logs kept in {}", dir.join("logs").display());
    } else if let Err(e) = std::fs::remove_dir_all(dir) {
        problems.push(format!("removing {}: {e}", dir.display()));
    }
    problems
}

/// Deletes every namespace but the system ones, and the pods in `default`, and waits (up to
/// a minute) until no pod is left. The API server is reached through a forward of this
/// process's own (the one that started the cluster may be gone).
fn delete_workloads(dir: &Path, kubeconfig: &Path) {
    let Ok(forward) = netns::forward(0, ([127, 0, 0, 1], API_PORT).into()) else {
        return;
    };
    // The admin kubeconfig, pointed at this forward.
    let Ok(text) = std::fs::read_to_string(kubeconfig) else {
        return;
    };
    let Some(server_line) = text.lines().find(|l| l.trim_start().starts_with("server:")) else {
        return;
    };
    let local = dir.join("teardown.kubeconfig");
    let rewritten = text.replace(
        server_line,
        &format!("    server: https://{}", forward.local),
    );
    if config::write_private(&local, &rewritten).is_err() {
        return;
    }
    let k = |args: &[&str]| crate::kube::kubectl(&local, args, None);
    let namespaces = String::from_utf8_lossy(&k(&["get", "ns", "-o=name"]).stdout).into_owned();
    for ns in namespaces.lines() {
        let name = ns.trim_start_matches("namespace/");
        if !["default", "kube-system", "kube-public", "kube-node-lease"].contains(&name) {
            let _ = k(&["delete", ns, "--wait=false"]);
        }
    }
    let _ = k(&[
        "delete",
        "deployments,replicasets,pods",
        "--all",
        "-n",
        "default",
        "--wait=false",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let out = k(&["get", "pods", "-A", "-o=name"]);
        if out.status.success() && out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::fs::remove_file(local);
}
