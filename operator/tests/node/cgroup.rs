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

/// One cgroup's CPU accounting: CPU time used, and how often the CPU limit throttled it.
pub struct CpuCgroup {
    /// v1: `cpuacct.usage` (ns); v2: `cpu.stat`'s `usage_usec`.
    usage: PathBuf,
    /// `cpu.stat`: `nr_throttled`, and `throttled_time` (v1, ns) or `throttled_usec` (v2).
    stat: PathBuf,
    v2: bool,
}

/// A reading of a [`CpuCgroup`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub seconds: f64,
    pub throttled_periods: u64,
    pub throttled_seconds: f64,
}

impl CpuCgroup {
    /// The cgroup of process `pid`: the v1 `cpuacct` and `cpu` controllers' lines (mounted
    /// apart or together), else the v2 line.
    pub fn of_process(pid: u32) -> Result<Self, Failed> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        // `4:cpu,cpuacct:/path` → ("cpu,cpuacct", "path").
        let v1 = |controller: &str| {
            text.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':').skip(1);
                let (list, path) = (parts.next()?, parts.next()?);
                list.split(',').any(|c| c == controller).then(|| {
                    Path::new("/sys/fs/cgroup")
                        .join(list)
                        .join(path.trim_start_matches('/'))
                })
            })
        };
        let found = match (v1("cpuacct"), v1("cpu")) {
            (Some(acct), Some(cpu)) => Self {
                usage: acct.join("cpuacct.usage"),
                stat: cpu.join("cpu.stat"),
                v2: false,
            },
            _ => {
                let path = text
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or("no cgroup")?;
                let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
                Self {
                    usage: dir.join("cpu.stat"),
                    stat: dir.join("cpu.stat"),
                    v2: true,
                }
            }
        };
        if !found.usage.exists() || !found.stat.exists() {
            return Err(format!("no {} or {}", found.usage.display(), found.stat.display()).into());
        }
        Ok(found)
    }

    pub fn read(&self) -> CpuUse {
        let stat = std::fs::read_to_string(&self.stat).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0)
        };
        if self.v2 {
            CpuUse {
                seconds: field("usage_usec") as f64 / 1e6,
                throttled_periods: field("nr_throttled"),
                throttled_seconds: field("throttled_usec") as f64 / 1e6,
            }
        } else {
            let usage = std::fs::read_to_string(&self.usage)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            CpuUse {
                seconds: usage as f64 / 1e9,
                throttled_periods: field("nr_throttled"),
                throttled_seconds: field("throttled_time") as f64 / 1e9,
            }
        }
    }
}
