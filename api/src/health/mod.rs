//! Export health, judged from the collector's own counters: the one set of rules the operator
//! (`ExportHealthy`, from the sidecars' Prometheus text) and `tracedapp ecs status` (from the
//! EMF records an ECS task's collector sends) apply alike.
//!
//! - [`counters`]: which collector metric feeds which counter, and reading the Prometheus text.
//! - [`window`]: a history of reads, and the verdict over a window, in the words both print.

pub mod counters;
pub mod window;

pub use window::{History, Rules, Verdict};

impl Default for Rules {
    /// A 5-minute window, failing at 5 % failed, stalled after 2 minutes of nothing delivered
    /// while batches wait.
    fn default() -> Self {
        Self {
            window: std::time::Duration::from_secs(300),
            threshold: 0.05,
            stall_after: std::time::Duration::from_secs(120),
        }
    }
}
