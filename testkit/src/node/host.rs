//! The host state a one-node cluster changes, and putting it back.
//!
//! Expected flow: [`Snapshot::take`] before anything changes → the cluster runs (its network
//! namespace, and in it the bridge, routes, iptables rules and ipsets; the global sysctls the
//! kubelet sets; mounts and cgroups of pods) → [`restore`] undoes what is the rig's by name →
//! [`Snapshot::take`] again and [`Snapshot::diff`] says what, if anything, is still different.
//!
//! Guarantees: [`restore`] removes only the rig's own: mounts under the node's folder, cgroups
//! under [`super::config::CGROUP_ROOT`], shim sockets nobody listens on; it never removes
//! anything because a snapshot lacks it (a snapshot may be stale after a crash). Sysctls get
//! their old values back only for keys in [`SYSCTLS`] and plain numeric values (the snapshot
//! comes from a file).

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

/// cgroup folders a kubelet makes: `kubepods` at a hierarchy's top (a kubelet without a
/// cgroup root) and the rig's own root.
fn kubepods_cgroups() -> Vec<String> {
    let mut out = cgroups_named("kubepods");
    out.extend(cgroups_named(super::config::CGROUP_ROOT));
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

/// Whether a sysctl read back from a state file may be written: a key the rig changes, a
/// plain numeric value (a file an attacker wrote could otherwise name any path under /proc/sys).
pub fn safe_sysctl(key: &str, value: &str) -> bool {
    SYSCTLS.contains(&key)
        && !value.is_empty()
        && value.len() <= 64
        && value.split_whitespace().all(|w| {
            w.trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
                && !w.is_empty()
        })
}

/// Undoes what a cluster living in `dir` changed (see the module docs). Processes must be
/// stopped already. Returns what could not be undone (best effort: everything is tried).
pub fn restore(before: &Snapshot, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    // Mounts under the node's folder (pod volumes and network namespaces, container root
    // filesystems, shm), deepest first.
    let dir = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    let mut mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&dir))
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
    // The global sysctls the kubelet sets (the network ones live in the node's namespace).
    for (k, v) in &before.sysctls {
        if !safe_sysctl(k, v) {
            problems.push(format!(
                "sysctl {k:?}={v:?} in the state file: not restored"
            ));
            continue;
        }
        if std::fs::read_to_string(Path::new("/proc/sys").join(k)).is_ok_and(|now| now.trim() == v)
        {
            continue;
        }
        if let Err(e) = set_sysctl(k, v) {
            problems.push(format!("sysctl {k}={v}: {e}"));
        }
    }
    // The pods' cgroups, under the rig's own root in every hierarchy, deepest first (empty
    // once every container is gone).
    for root in rig_cgroups() {
        for _ in 0..20 {
            remove_cgroup_tree(Path::new(&root));
            if !Path::new(&root).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    remove_dead_shim_sockets(before.run_containerd);
    if before.netns.is_empty() {
        // `ip netns add` made the folder; it goes if nothing else is in it.
        let _ = std::fs::remove_dir("/var/run/netns");
    }
    problems
}

/// The cgroup folders named after the rig (`<hierarchy>/tracedapp-node`).
fn rig_cgroups() -> Vec<String> {
    cgroups_named(super::config::CGROUP_ROOT)
}

/// `/sys/fs/cgroup/<name>` (cgroup v2) and `/sys/fs/cgroup/<hierarchy>/<name>` (v1), where
/// they exist.
fn cgroups_named(name: &str) -> Vec<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = Vec::new();
    if root.join(name).exists() {
        out.push(root.join(name).to_string_lossy().into_owned());
    }
    if let Ok(dirs) = std::fs::read_dir(root) {
        for d in dirs.flatten() {
            let p = d.path().join(name);
            if p.exists() {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// containerd's shims listen on sockets in `/run/containerd/s` (a fixed place in 1.6). Those
/// nobody listens on any more are removed (another containerd's live shims are left alone),
/// then the folders, if empty and if they were not there before.
fn remove_dead_shim_sockets(existed_before: bool) {
    let dir = Path::new("/run/containerd/s");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if std::os::unix::net::UnixStream::connect(&path).is_err() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if !existed_before {
        let _ = std::fs::remove_dir(dir);
        let _ = std::fs::remove_dir("/run/containerd");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file is untrusted: only known keys with numeric values are written back.
    #[test]
    fn only_known_numeric_sysctls_are_restored() {
        assert!(safe_sysctl("vm/overcommit_memory", "0"));
        assert!(safe_sysctl("kernel/panic", "-1"));
        assert!(safe_sysctl("net/ipv4/ip_forward", "1"));
        assert!(
            !safe_sysctl("../../etc/passwd", "0"),
            "not a key the rig changes"
        );
        assert!(
            !safe_sysctl("kernel/core_pattern", "|/tmp/x"),
            "not in the list"
        );
        assert!(
            !safe_sysctl("vm/overcommit_memory", "1; rm"),
            "not a number"
        );
        assert!(!safe_sysctl("vm/overcommit_memory", ""));
    }
}
