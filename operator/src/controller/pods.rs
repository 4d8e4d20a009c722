//! Why a TracedApp's pods are not ready, read from their status: what `Ready=False` says
//! instead of only "0/2 pods available".
//!
//! The reasons, most serious first (the first one found across the pods is reported):
//! `Unschedulable`; a container that cannot start (`ImagePullBackOff`, `ErrImagePull`,
//! `CreateContainerConfigError` — e.g. a missing Secret —, `CrashLoopBackOff`, ...);
//! `OOMKilled` (its last exit); `ReadinessProbeFailing` (running, but not ready: the readiness
//! probe is what keeps a running container unready). Messages name the container and the
//! probe, never a pod name or a count, so a status written for a stuck app stays the same
//! while the pods keep failing the same way.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tracedapp_api::TracedApp;
use tracedapp_api::collector::HEALTH_PORT;

use crate::naming;

/// A reason and a message for `Ready=False`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

/// Waiting reasons that mean a container cannot start by itself.
const STUCK: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// The most serious problem among `pods` (those of `app` that are not being deleted).
pub fn problem(app: &TracedApp, pods: &[&Pod]) -> Option<Problem> {
    let live: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let statuses = |p: &Pod| -> Vec<ContainerStatus> {
        let s = p.status.clone().unwrap_or_default();
        let mut all = s.init_container_statuses.unwrap_or_default();
        all.extend(s.container_statuses.unwrap_or_default());
        all
    };
    let found = |reason: &str, message: String| {
        Some(Problem {
            reason: reason.to_owned(),
            message,
        })
    };
    for p in &live {
        let unschedulable = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            });
        if let Some(c) = unschedulable {
            return found(
                "Unschedulable",
                c.message.clone().unwrap_or_else(|| "no node fits".into()),
            );
        }
    }
    for p in &live {
        for c in statuses(p) {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(w) = waiting
                && let Some(reason) = w.reason.as_deref().filter(|r| STUCK.contains(r))
            {
                let detail = match reason {
                    // Its message carries a changing back-off time; the last exit says more.
                    "CrashLoopBackOff" => {
                        last_exit(&c).unwrap_or_else(|| "it keeps exiting".into())
                    }
                    _ => w.message.clone().unwrap_or_default(),
                };
                return found(reason, format!("container {}: {detail}", c.name));
            }
        }
    }
    for p in &live {
        for c in statuses(p) {
            let oom = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
            if oom {
                return found(
                    "OOMKilled",
                    format!(
                        "container {} was killed for using more memory than its limit",
                        c.name
                    ),
                );
            }
        }
    }
    for p in &live {
        for c in statuses(p) {
            let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
            if running && !c.ready {
                return found(
                    "ReadinessProbeFailing",
                    format!(
                        "container {} runs but fails its readiness probe ({})",
                        c.name,
                        probe(app, &c.name)
                    ),
                );
            }
        }
    }
    None
}

/// What the readiness probe of container `name` checks.
fn probe(app: &TracedApp, name: &str) -> String {
    if name == naming::COLLECTOR_CONTAINER {
        format!("the collector's health check on port {HEALTH_PORT}")
    } else {
        format!(
            "GET {} on port {}",
            app.spec.app.health_path, app.spec.app.port
        )
    }
}

fn last_exit(c: &ContainerStatus) -> Option<String> {
    let t = c.last_state.as_ref()?.terminated.as_ref()?;
    Some(format!(
        "it keeps exiting (last: {}, exit code {})",
        t.reason.as_deref().unwrap_or("terminated"),
        t.exit_code
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::app;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn a_running_container_that_is_not_ready_fails_its_probe() {
        let p = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}]}));
        let found = problem(&app(), &[&p]).unwrap();
        assert_eq!(found.reason, "ReadinessProbeFailing");
        assert_eq!(
            found.message,
            "container app runs but fails its readiness probe (GET /health on port 3000)"
        );
    }

    #[test]
    fn a_container_that_cannot_start_outranks_a_probe() {
        let probe = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}]}));
        let pull = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x:1\""}}}]}));
        let found = problem(&app(), &[&probe, &pull]).unwrap();
        assert_eq!(found.reason, "ImagePullBackOff");
        assert!(found.message.contains("x:1"), "{found:?}");
    }

    #[test]
    fn healthy_or_starting_pods_are_no_problem() {
        let ready = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}]}));
        let starting = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(problem(&app(), &[&ready, &starting]), None);
    }
}
