//! What the cluster records in `<node dir>/state.json` so that another process (`cargo xtask
//! cluster down`, the next start after a crash) can tear it down: read as untrusted.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::host;

/// A process of the cluster, recorded so that another process can stop it too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Recorded {
    pub(super) name: String,
    pub(super) pid: u32,
    /// The program, to tell our process from a later one with the same PID.
    pub(super) exe: PathBuf,
    /// Whether it runs inside the node's network namespace (every component does; the host's
    /// forwarder of `cargo xtask cluster up` does not).
    #[serde(default = "inside")]
    pub(super) in_node: bool,
}

fn inside() -> bool {
    true
}

/// Everything needed to tear the cluster down, kept in `<dir>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    /// The host before the cluster started.
    pub(super) before: host::Snapshot,
    pub(super) processes: Vec<Recorded>,
}
