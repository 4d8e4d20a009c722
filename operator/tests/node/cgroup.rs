//! The memory accounting of a container's or a pod's cgroup (v1 or v2): what the kernel
//! charges it now, and how many of its processes the OOM killer took.

use std::path::{Path, PathBuf};

use libtest_mimic::Failed;

/// One cgroup's memory files.
pub struct MemoryCgroup {
    /// Memory charged now.
    usage: PathBuf,
    /// The file holding the `oom_kill` count.
    events: PathBuf,
}

impl MemoryCgroup {
    /// The cgroup of process `pid` (its container), from `/proc/<pid>/cgroup`: the v1 `memory`
    /// controller's line, else the v2 line.
    pub fn of_process(pid: u32) -> Result<Self, Failed> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        let line = |prefix: &str| {
            text.lines()
                .find_map(|l| l.split_once(prefix).map(|(_, p)| p.trim_start_matches('/')))
        };
        let found = if let Some(path) = line(":memory:") {
            Self::v1(&Path::new("/sys/fs/cgroup/memory").join(path))
        } else {
            Self::v2(&Path::new("/sys/fs/cgroup").join(line("0::").ok_or("no cgroup")?))
        };
        if !found.usage.exists() {
            return Err(format!("no {}", found.usage.display()).into());
        }
        Ok(found)
    }

    /// The cgroup of the pod with this uid (every QoS class, either cgroup driver's spelling
    /// of the uid), if the kubelet made one.
    pub fn of_pod(uid: &str) -> Option<Self> {
        let underscores = uid.replace('-', "_");
        let dashes = uid.replace('_', "-");
        for qos in ["", "/burstable", "/besteffort"] {
            for id in [&underscores, &dashes] {
                // Under the node's cgroup root (the kubelet's `cgroupRoot`).
                let root = testkit::node::CGROUP_ROOT;
                let v1 = Self::v1(Path::new(&format!(
                    "/sys/fs/cgroup/memory/{root}/kubepods{qos}/pod{id}"
                )));
                let v2 = Self::v2(Path::new(&format!(
                    "/sys/fs/cgroup/{root}/kubepods{qos}/pod{id}"
                )));
                if let Some(found) = [v1, v2].into_iter().find(|c| c.usage.exists()) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn v1(dir: &Path) -> Self {
        Self {
            usage: dir.join("memory.usage_in_bytes"),
            events: dir.join("memory.oom_control"),
        }
    }

    fn v2(dir: &Path) -> Self {
        Self {
            usage: dir.join("memory.current"),
            events: dir.join("memory.events"),
        }
    }

    pub fn usage_mib(&self) -> f64 {
        std::fs::read_to_string(&self.usage)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
            / 1024.0
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }
}
