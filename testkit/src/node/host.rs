//! The host state a one-node cluster changes, and putting it back.
//!
//! Expected flow: [`Snapshot::take`] before anything changes → the cluster runs (the bridge
//! and route we add, the sysctls the kubelet, kube-proxy and the CNI bridge plugin set, the
//! iptables chains of the kubelet and kube-proxy, network namespaces, mounts and cgroups of
//! pods) → [`restore`] undoes all of it → [`Snapshot::take`] again and [`Snapshot::diff`]
//! says what, if anything, is still different.
//!
//! Guarantees: only what did not exist in the first snapshot is removed (chains, network
//! namespaces, cgroups, mounts under the node's folder), and sysctls get their old values back.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Sysctls that the node's components may change: the CNI bridge plugin (forwarding),
/// the kubelet (its kernel defaults), kube-proxy (conntrack, localnet) and we (bridge
/// netfilter, so that Service traffic between pods on the bridge is translated).
pub const SYSCTLS: [&str; 14] = [
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

/// Tables whose chains we look at.
const TABLES: [&str; 4] = ["filter", "nat", "mangle", "raw"];

/// What the host looked like: compared before and after a cluster's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `(name, value)` of each of [`SYSCTLS`] that exists.
    pub sysctls: Vec<(String, String)>,
    /// Network interfaces.
    pub links: BTreeSet<String>,
    /// Routing table lines.
    pub routes: BTreeSet<String>,
    /// `iptables`/`ip6tables` rules and chains, normalized (no counters; tables holding only
    /// empty built-in chains left out, since iptables creates those on first use).
    pub iptables: BTreeSet<String>,
    /// Named network namespaces (`/var/run/netns`).
    pub netns: BTreeSet<String>,
    /// Mount points.
    pub mounts: BTreeSet<String>,
    /// cgroup folders named `kubepods` (the kubelet's), per hierarchy.
    pub kubepods_cgroups: BTreeSet<String>,
    /// Whether `/run/containerd` exists (containerd's shims put sockets there).
    pub run_containerd: bool,
}

impl Snapshot {
    pub fn take() -> Self {
        Self {
            sysctls: SYSCTLS
                .iter()
                .filter_map(|k| {
                    let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).ok()?;
                    Some(((*k).to_owned(), v.trim().to_owned()))
                })
                .collect(),
            links: lines(&["ip", "-o", "link", "show"])
                .into_iter()
                .filter_map(|l| {
                    let name = l.split(": ").nth(1)?;
                    Some(name.split('@').next()?.to_owned())
                })
                .collect(),
            routes: lines(&["ip", "route", "show"]).into_iter().collect(),
            iptables: iptables_rules(),
            netns: std::fs::read_dir("/var/run/netns")
                .map(|d| {
                    d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            mounts: mount_points().into_iter().collect(),
            kubepods_cgroups: kubepods_cgroups().into_iter().collect(),
            run_containerd: Path::new("/run/containerd").exists(),
        }
    }

    /// What differs in `after`, one line each (empty when the host is as it was).
    pub fn diff(&self, after: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let sets =
            |what: &str, a: &BTreeSet<String>, b: &BTreeSet<String>, out: &mut Vec<String>| {
                for x in b.difference(a) {
                    out.push(format!("{what} added: {x}"));
                }
                for x in a.difference(b) {
                    out.push(format!("{what} removed: {x}"));
                }
            };
        for (k, v) in &self.sysctls {
            if let Some((_, now)) = after.sysctls.iter().find(|(n, _)| n == k)
                && now != v
            {
                out.push(format!("sysctl {k}: {v} → {now}"));
            }
        }
        sets("link", &self.links, &after.links, &mut out);
        sets("route", &self.routes, &after.routes, &mut out);
        sets("iptables", &self.iptables, &after.iptables, &mut out);
        sets("netns", &self.netns, &after.netns, &mut out);
        sets("mount", &self.mounts, &after.mounts, &mut out);
        sets(
            "cgroup",
            &self.kubepods_cgroups,
            &after.kubepods_cgroups,
            &mut out,
        );
        if self.run_containerd != after.run_containerd {
            out.push("/run/containerd created".to_owned());
        }
        out
    }
}

fn lines(cmd: &[&str]) -> Vec<String> {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule and chain, as `<family> <table> <line of -S>`, without tables that hold only
/// empty built-in chains.
fn iptables_rules() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for family in ["iptables", "ip6tables"] {
        for table in TABLES {
            let rules = lines(&[family, "-w", "-t", table, "-S"]);
            let trivial = rules
                .iter()
                .all(|r| r.starts_with("-P ") && r.ends_with(" ACCEPT"));
            if !trivial {
                out.extend(rules.into_iter().map(|r| format!("{family} {table} {r}")));
            }
        }
    }
    out
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

fn kubepods_cgroups() -> Vec<String> {
    let mut out = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    if root.join("kubepods").exists() {
        out.push("/sys/fs/cgroup/kubepods".to_owned());
    }
    if let Ok(dirs) = std::fs::read_dir(root) {
        for d in dirs.flatten() {
            let p = d.path().join("kubepods");
            if p.exists() {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Writes a sysctl (`net/ipv4/ip_forward`, `1`).
pub fn set_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new("/proc/sys").join(key), value)
}

/// Runs a command for its effect, ignoring failure (cleanup of what may already be gone).
fn quietly(cmd: &[&str]) {
    let _ = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Undoes what a cluster living in `dir` changed, relative to `before`. Processes must be
/// stopped already. Returns what could not be undone (best effort: everything is tried).
pub fn restore(before: &Snapshot, dir: &Path, bridge: &str, service_cidr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // Network namespaces of pods (deleting one deletes its veth pair too).
    let now = Snapshot::take();
    for ns in now.netns.difference(&before.netns) {
        quietly(&["ip", "netns", "delete", ns]);
    }
    // Mounts under the node's folder (pod volumes, container root filesystems, shm), deepest
    // first; and what containerd's shims left under /run/containerd.
    let dir = dir.to_string_lossy().into_owned();
    let mut mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| {
            !before.mounts.contains(m)
                && (m.starts_with(&dir)
                    || m.starts_with("/run/containerd")
                    || m.starts_with("/var/run/netns"))
        })
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if Command::new("umount")
            .arg(&m)
            .stderr(std::process::Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            quietly(&["umount", "-l", &m]);
        }
    }
    // Chains the kubelet, kube-proxy and CNI plugins added, and the rules that jump to them.
    remove_new_chains(before);
    // The route and the bridge.
    quietly(&["ip", "route", "del", service_cidr, "dev", bridge]);
    quietly(&["ip", "link", "del", bridge]);
    // Sysctls.
    for (k, v) in &before.sysctls {
        if let Err(e) = set_sysctl(k, v) {
            problems.push(format!("sysctl {k}={v}: {e}"));
        }
    }
    // The kubelet's cgroups (empty once every container is gone), deepest first.
    for root in kubepods_cgroups() {
        if before.kubepods_cgroups.contains(&root) {
            continue;
        }
        for _ in 0..20 {
            remove_cgroup_tree(Path::new(&root));
            if !Path::new(&root).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    if !before.run_containerd {
        let _ = std::fs::remove_dir_all("/run/containerd");
    }
    if before.netns.is_empty() {
        let _ = std::fs::remove_dir("/var/run/netns");
    }
    problems
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for c in children.flatten() {
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&c.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Deletes every chain that was not in `before` (after removing the rules that reference it),
/// in both families and every table.
fn remove_new_chains(before: &Snapshot) {
    for family in ["iptables", "ip6tables"] {
        for table in TABLES {
            let rules = lines(&[family, "-w", "-t", table, "-S"]);
            let existed = |line: &str| {
                before
                    .iptables
                    .contains(&format!("{family} {table} {line}"))
            };
            let new_chains: Vec<String> = rules
                .iter()
                .filter(|r| r.starts_with("-N ") && !existed(r))
                .map(|r| r[3..].to_owned())
                .collect();
            if new_chains.is_empty() {
                continue;
            }
            // Rules in any chain that jump to a new chain, e.g. `-A INPUT -j KUBE-FIREWALL`.
            for r in rules.iter().filter(|r| r.starts_with("-A ") && !existed(r)) {
                let targets_new = new_chains
                    .iter()
                    .any(|c| r.contains(&format!("-j {c}")) || r.contains(&format!("-g {c}")));
                if targets_new {
                    let spec = words(&r[3..]);
                    let mut cmd = vec![family, "-w", "-t", table, "-D"];
                    cmd.extend(spec.iter().map(String::as_str));
                    quietly(&cmd);
                }
            }
            for c in &new_chains {
                quietly(&[family, "-w", "-t", table, "-F", c]);
            }
            for c in &new_chains {
                quietly(&[family, "-w", "-t", table, "-X", c]);
            }
        }
    }
}

/// Splits an `iptables -S` line into arguments: whitespace separates, double quotes group
/// (`--comment "kubernetes service portals"` is one argument).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_lines_split_like_a_shell() {
        assert_eq!(
            words(r#"OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#),
            [
                "OUTPUT",
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES"
            ]
        );
    }
}
