//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager), so that two or
//! more replicas of the operator run with exactly one reconciling.
//!
//! The leader renews the Lease every `duration - grace` seconds. A follower takes over when the
//! Lease expires (the leader died) or is released (the leader stopped gracefully, which
//! [`Leadership::release`] does). A leader that loses the Lease stops reconciling and exits.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the Lease lives and how long it holds.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    /// How long a Lease holds without renewal: the longest fail-over after a crash.
    pub duration: Duration,
}

/// This replica's part in the election.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Joins the election, creating the Lease if it does not exist (the chart creates it, and
    /// its Role lets the operator read and patch that Lease only).
    pub async fn start(
        client: Client,
        options: &LeaseOptions,
        identity: &str,
    ) -> anyhow::Result<Self> {
        let duration = options.duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client, &options.name)
            .with_namespace(&options.namespace)
            .with_identity(identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .with_field_manager(format!("{}-lease", tracedapp_k8s::labels::MANAGER))
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot use the Lease {}/{}: {e} (the Helm chart creates it and grants \
                     access to it alone; `helm upgrade` puts it back if it was deleted)",
                    options.namespace,
                    options.name
                )
            })?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    /// Waits until this replica leads; `false` if the election stopped first.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Resolves when this replica stops leading.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut leading = self.leading.clone();
        async move {
            let _ = leading.wait_for(|leading| !*leading).await;
            tracing::error!("lost the lease");
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow() && !self.task.is_finished()
    }

    /// Gives the Lease up (if held) so that a follower takes over at once.
    pub async fn release(self) {
        let Self { leading, task } = self;
        drop(leading);
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("lease released"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the lease task failed"),
            Err(_) => tracing::warn!("releasing the lease timed out; it expires by itself"),
        }
    }
}
