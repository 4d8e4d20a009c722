//! Why a TracedApp's pods are not ready, read from their status: what `Ready=False` says
//! instead of only "0/2 pods available".
//!
//! The reasons, most serious first (the first one found across the pods is reported):
//! `Unschedulable`; a container that cannot start (`ImagePullBackOff`, `ErrImagePull`,
//! `CreateContainerConfigError` — e.g. a missing Secret —, `CrashLoopBackOff`, ...);
//! `OOMKilled` (its last exit); `ReadinessProbeFailing` (running, but still not ready after
//! the probe's own budget — initial delay + period × failure threshold — since it started: the
//! readiness probe is what keeps a running container unready). Before that budget is spent a
//! container is only starting; [`Verdict::recheck`] says when to look again, since nothing in
//! the pod changes when the budget runs out. Messages name the container and the probe,
//! never a pod name or a count, so a status written for a stuck app stays the same while the
//! pods keep failing the same way.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, Probe};
use k8s_openapi::jiff::Timestamp;
use tracedapp_api::TracedApp;
use tracedapp_api::collector::HEALTH_PORT;

use tracedapp_k8s::naming;

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

/// What the pods say, at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The most serious problem, if any.
    pub problem: Option<Problem>,
    /// When a starting container's readiness budget runs out, if one is starting.
    pub recheck: Option<Duration>,
}

/// The most serious problem among `pods` (those of `app` that are not being deleted), as of
/// `now`.
pub fn verdict(app: &TracedApp, pods: &[&Pod], now: Timestamp) -> Verdict {
    let mut recheck: Option<Duration> = None;
    let problem = find(app, pods, now, &mut recheck);
    Verdict { problem, recheck }
}

fn find(
    app: &TracedApp,
    pods: &[&Pod],
    now: Timestamp,
    recheck: &mut Option<Duration>,
) -> Option<Problem> {
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
                    "CrashLoopBackOff" => crash_loop(app, &c),
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
            let started = c
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .map(|r| r.started_at.as_ref().map_or(now, |t| t.0));
            let Some(started) = started.filter(|_| !c.ready) else {
                continue;
            };
            let budget = readiness_budget(p, &c.name);
            let running_for = Duration::try_from(now.duration_since(started)).unwrap_or_default();
            if running_for < budget {
                let left = budget - running_for;
                *recheck = Some(recheck.map_or(left, |r| r.min(left)));
            } else {
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

/// How long container `name` of `pod` may run unready before its readiness probe has failed
/// for certain: initial delay + period × failure threshold (Kubernetes' defaults where unset),
/// plus a second for the kubelet to report.
fn readiness_budget(pod: &Pod, name: &str) -> Duration {
    let spec = pod.spec.as_ref();
    let container: Option<&Container> = spec.and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == name)
    });
    let probe: Option<&Probe> = container.and_then(|c| c.readiness_probe.as_ref());
    let secs = |v: Option<i32>, default: i32| u64::try_from(v.unwrap_or(default)).unwrap_or(0);
    let (delay, period, failures) = probe.map_or((0, 10, 3), |p| {
        (
            secs(p.initial_delay_seconds, 0),
            secs(p.period_seconds, 10),
            secs(p.failure_threshold, 3),
        )
    });
    Duration::from_secs(delay + period * failures + 1)
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

/// A container the kubelet keeps restarting: its last exit, and the liveness probe, which
/// restarts a container that does not crash by itself.
fn crash_loop(app: &TracedApp, c: &ContainerStatus) -> String {
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                " (last exit: {}, code {})",
                t.reason.as_deref().unwrap_or("terminated"),
                t.exit_code
            )
        })
        .unwrap_or_default();
    format!(
        "restarted again and again{last}; if it does not crash by itself, its liveness probe \
         fails ({})",
        probe(app, &c.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracedapp_api::fixtures::app;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    /// A minute after the containers started: every readiness budget is spent.
    fn later() -> Timestamp {
        "2026-01-01T00:01:00Z".parse().unwrap()
    }

    fn problem(app: &TracedApp, pods: &[&Pod]) -> Option<Problem> {
        verdict(app, pods, later()).problem
    }

    #[test]
    fn a_running_container_that_is_not_ready_fails_its_probe() {
        let p = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}));
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

    /// A container that just started and is not ready yet is starting, not failing; the
    /// verdict says when its probe's budget runs out (10 s × 3 + 1 s by default).
    #[test]
    fn a_container_within_its_probe_budget_is_only_starting() {
        let p = pod(serde_json::json!({"containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {"startedAt": "2026-01-01T00:00:50Z"}}}]}));
        let v = verdict(&app(), &[&p], later());
        assert_eq!(v.problem, None);
        assert_eq!(v.recheck, Some(Duration::from_secs(21)));
    }
}
