//! Judging one ECS deployment — *ours*, by its id — from what `DescribeServices` shows, purely.
//!
//! The usual waiter ("services stable": one deployment, running == desired) cannot tell a
//! circuit-breaker rollback from success (the rollback also ends with one deployment, running ==
//! desired), nor our deployment from one someone else started meanwhile. Here:
//! - ours present, `rolloutState` COMPLETED, running ≥ desired, still PRIMARY → done;
//! - ours present and FAILED → failed, with ECS's reason, and the deployment it rolled back to
//!   if one is PRIMARY now;
//! - ours gone, or no longer PRIMARY (ECS drops a failed deployment once its rollback is under way, and a replaced one
//!   once the newer is done) → rolled back, when the PRIMARY runs the task definition that ran
//!   before ours and the service's events since our start speak of a rollback or the circuit
//!   breaker; otherwise replaced by someone else's deployment, named;
//! - anything else → still in progress, with a line saying where it stands.

use std::time::SystemTime;

/// One deployment of a service, as `DescribeServices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`.
    pub status: String,
    /// The task definition, `family:revision` (ARNs shortened).
    pub task_definition: String,
    pub desired: i32,
    pub pending: i32,
    pub running: i32,
    pub failed: i32,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED` (empty if ECS gave none).
    pub rollout_state: String,
    pub rollout_reason: String,
    pub created_at: Option<SystemTime>,
}

/// One service event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub created_at: Option<SystemTime>,
    pub message: String,
}

/// What `DescribeServices` said of the service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub deployments: Vec<Deployment>,
    /// Newest first, as ECS lists them.
    pub events: Vec<Event>,
}

/// Where our deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still going: a line for the progress report.
    InProgress(String),
    /// Done: our task definition runs on every desired task.
    Completed,
    /// ECS gave up on it (`reason`), and went back to `rolled_back_to` if that is known.
    Failed {
        reason: String,
        rolled_back_to: Option<Deployment>,
    },
    /// Another deployment took its place that is not a rollback of ours.
    Replaced { by: Deployment },
}

impl Deployment {
    /// `ecs-svc/123 PRIMARY shop:7 IN_PROGRESS: 1 running, 1 pending, 0 failed of 2`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {}: {} running, {} pending, {} failed of {}",
            self.id,
            self.status,
            self.task_definition,
            if self.rollout_state.is_empty() {
                "?"
            } else {
                &self.rollout_state
            },
            self.running,
            self.pending,
            self.failed,
            self.desired
        )
    }
}

/// Judges deployment `ours`. `previous` is the task definition the service ran before our
/// deployment (`None` for a new service); `since` is when we started it (events before are
/// not ours to read).
pub fn judge(s: &Snapshot, ours: &str, previous: Option<&str>, since: SystemTime) -> Verdict {
    let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
    if let Some(d) = s.deployments.iter().find(|d| d.id == ours) {
        match d.rollout_state.as_str() {
            "FAILED" => {
                return Verdict::Failed {
                    reason: non_empty(&d.rollout_reason, "ECS marked the deployment FAILED"),
                    rolled_back_to: primary.filter(|p| p.id != ours).cloned(),
                };
            }
            "COMPLETED" if d.status == "PRIMARY" && d.running >= d.desired => {
                return Verdict::Completed;
            }
            // Still ours to wait for, unless a newer deployment took over (judged below).
            _ if d.status == "PRIMARY" || primary.is_none() => {
                return Verdict::InProgress(d.line());
            }
            _ => {}
        }
    }
    let Some(primary) = primary else {
        return Verdict::InProgress(format!("{ours} is not listed yet"));
    };
    let speaks_of_rollback = s.events.iter().any(|e| {
        e.created_at.is_none_or(|t| t >= since) && {
            let m = e.message.to_ascii_lowercase();
            m.contains("rolling back") || m.contains("circuit breaker") || m.contains("rolled back")
        }
    });
    if speaks_of_rollback && previous.is_some_and(|p| p == primary.task_definition) {
        let reason = s
            .events
            .iter()
            .filter(|e| e.created_at.is_none_or(|t| t >= since))
            .find(|e| {
                let m = e.message.to_ascii_lowercase();
                m.contains("circuit breaker") || m.contains("failed")
            })
            .map_or_else(
                || "ECS rolled the deployment back".to_owned(),
                |e| e.message.clone(),
            );
        return Verdict::Failed {
            reason,
            rolled_back_to: Some(primary.clone()),
        };
    }
    Verdict::Replaced {
        by: primary.clone(),
    }
}

fn non_empty(text: &str, otherwise: &str) -> String {
    if text.trim().is_empty() {
        otherwise.to_owned()
    } else {
        text.to_owned()
    }
}

/// The events that appeared since `since` and are not in `seen`, oldest first; adds them to
/// `seen`.
pub fn new_events(
    s: &Snapshot,
    since: SystemTime,
    seen: &mut std::collections::HashSet<String>,
) -> Vec<Event> {
    let mut out: Vec<Event> = s
        .events
        .iter()
        .filter(|e| e.created_at.is_none_or(|t| t >= since) && seen.insert(e.id.clone()))
        .cloned()
        .collect();
    out.sort_by_key(|e| e.created_at);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn dep(id: &str, status: &str, td: &str, state: &str, running: i32) -> Deployment {
        Deployment {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            desired: 2,
            pending: 2 - running,
            running,
            failed: 0,
            rollout_state: state.into(),
            rollout_reason: String::new(),
            created_at: Some(at(10)),
        }
    }

    fn event(secs: u64, message: &str) -> Event {
        Event {
            id: format!("e{secs}"),
            created_at: Some(at(secs)),
            message: message.into(),
        }
    }

    fn snap(deployments: Vec<Deployment>, events: Vec<Event>) -> Snapshot {
        Snapshot {
            deployments,
            events,
        }
    }

    #[test]
    fn ours_completed_with_every_task_running_is_done() {
        let s = snap(
            vec![dep("ecs-svc/1", "PRIMARY", "shop:7", "COMPLETED", 2)],
            vec![],
        );
        assert_eq!(
            judge(&s, "ecs-svc/1", Some("shop:6"), at(0)),
            Verdict::Completed
        );
    }

    #[test]
    fn in_progress_says_where_it_stands() {
        let s = snap(
            vec![
                dep("ecs-svc/1", "PRIMARY", "shop:7", "IN_PROGRESS", 1),
                dep("ecs-svc/0", "ACTIVE", "shop:6", "COMPLETED", 2),
            ],
            vec![],
        );
        let Verdict::InProgress(line) = judge(&s, "ecs-svc/1", Some("shop:6"), at(0)) else {
            panic!()
        };
        assert_eq!(
            line,
            "ecs-svc/1 PRIMARY shop:7 IN_PROGRESS: 1 running, 1 pending, 0 failed of 2"
        );
    }

    #[test]
    fn a_circuit_breaker_rollback_is_a_failure_not_a_success() {
        // ECS marks ours FAILED and starts a rollback deployment of the previous revision...
        let mut failed = dep("ecs-svc/1", "ACTIVE", "shop:7", "FAILED", 0);
        failed.rollout_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        let rollback = dep("ecs-svc/2", "PRIMARY", "shop:6", "IN_PROGRESS", 1);
        let s = snap(vec![rollback.clone(), failed], vec![]);
        assert_eq!(
            judge(&s, "ecs-svc/1", Some("shop:6"), at(0)),
            Verdict::Failed {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                rolled_back_to: Some(rollback.clone()),
            }
        );
        // ...and once the rollback is done, ours is gone and the service looks "stable".
        let done = dep("ecs-svc/2", "PRIMARY", "shop:6", "COMPLETED", 2);
        let s = snap(
            vec![done.clone()],
            vec![
                event(40, "(service shop) has reached a steady state."),
                event(
                    30,
                    "(service shop) deployment ecs-svc/1 deployment failed: tasks failed to start.",
                ),
                event(31, "(service shop) rolling back to deployment ecs-svc/0."),
            ],
        );
        let Verdict::Failed {
            reason,
            rolled_back_to,
        } = judge(&s, "ecs-svc/1", Some("shop:6"), at(0))
        else {
            panic!()
        };
        assert!(reason.contains("tasks failed to start"), "{reason}");
        assert_eq!(rolled_back_to, Some(done));
    }

    #[test]
    fn someone_elses_deployment_is_named_not_mistaken_for_ours() {
        let theirs = dep("ecs-svc/9", "PRIMARY", "shop:8", "IN_PROGRESS", 0);
        let s = snap(
            vec![
                theirs.clone(),
                dep("ecs-svc/1", "ACTIVE", "shop:7", "IN_PROGRESS", 1),
            ],
            vec![],
        );
        // Ours still listed but no longer PRIMARY: it will not complete; replaced.
        assert_eq!(
            judge(&s, "ecs-svc/1", Some("shop:6"), at(0)),
            Verdict::Replaced { by: theirs.clone() }
        );
        // Ours gone, theirs PRIMARY, no rollback spoken of: replaced.
        let s = snap(
            vec![theirs.clone()],
            vec![event(20, "(service shop) has started 2 tasks")],
        );
        assert_eq!(
            judge(&s, "ecs-svc/1", Some("shop:6"), at(0)),
            Verdict::Replaced { by: theirs }
        );
    }

    #[test]
    fn a_completed_deployment_that_is_no_longer_primary_is_not_done() {
        let s = snap(
            vec![
                dep("ecs-svc/9", "PRIMARY", "shop:8", "IN_PROGRESS", 0),
                dep("ecs-svc/1", "ACTIVE", "shop:7", "COMPLETED", 2),
            ],
            vec![],
        );
        assert!(matches!(
            judge(&s, "ecs-svc/1", Some("shop:6"), at(0)),
            Verdict::Replaced { .. }
        ));
    }

    #[test]
    fn events_are_shown_once_oldest_first_and_only_since_the_start() {
        let s = snap(
            vec![],
            vec![event(30, "c"), event(20, "b"), event(5, "before")],
        );
        let mut seen = Default::default();
        let first: Vec<String> = new_events(&s, at(10), &mut seen)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(first, ["b", "c"]);
        assert!(new_events(&s, at(10), &mut seen).is_empty());
    }
}
