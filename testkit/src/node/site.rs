//! Where the node lives and how the host reaches it: the node's folder, 127.0.0.1 forwards
//! into its namespace, kind's port mappings, whether we are root.

use std::path::{Path, PathBuf};

use super::{Result, netns};
use crate::tools;

/// A 127.0.0.1 address on the host that reaches `target` (a pod, a Service, a NodePort on the
/// node's IP: `10.88.0.1:30300`) inside the node's network namespace; one forward per target
/// for the life of this process.
pub fn reach(target: &str) -> String {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Mutex, OnceLock};
    static FORWARDS: OnceLock<Mutex<HashMap<SocketAddr, SocketAddr>>> = OnceLock::new();
    let target: SocketAddr = target
        .parse()
        .unwrap_or_else(|e| panic!("{target}: not an address: {e}"));
    let mut forwards = FORWARDS
        .get_or_init(Mutex::default)
        .lock()
        .expect("the forwards lock");
    if let Some(local) = forwards.get(&target) {
        return local.to_string();
    }
    let forward = netns::forward(0, target)
        .unwrap_or_else(|e| panic!("forwarding to {target} in the node: {e}"));
    forwards.insert(target, forward.local);
    forward.local.to_string()
}

/// `kind-config.yaml`'s port mappings as `(host port, node port)`: what the walk-through's
/// `localhost:<port>` reaches, on kind and on this node alike.
pub fn kind_port_mappings() -> Result<Vec<(u16, u16)>> {
    let file = crate::repo_root().join("kind-config.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let config: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(config["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| {
            n["extraPortMappings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| {
            Some((
                u16::try_from(m["hostPort"].as_u64()?).ok()?,
                u16::try_from(m["containerPort"].as_u64()?).ok()?,
            ))
        })
        .collect())
}

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

/// The node's folder, created owner-only (it holds the cluster's keys and tokens).
pub(super) fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))
}
