//! What the status of a TracedApp says, computed from the spec and the live Deployment, and
//! which transitions deserve a Kubernetes Event. Pure functions: the reconcile writes the
//! result, the tests call them directly.
//!
//! Conditions (the shape of `metav1.Condition`):
//! - `ConfigValid`: our validation of the spec (the Rust twin of the CRD rules).
//! - `Progressing`: True while the Deployment rolls out the current spec; False when done
//!   (`RolloutComplete`) or stuck (`ProgressDeadlineExceeded`).
//! - `Ready`: the Deployment has as many available pods as the spec wants (real availability,
//!   not "we applied it").
//! - `Degraded`: True with a reason when something needs a human: an invalid spec, a rollout
//!   past its deadline, pods that cannot be created.

use super::conditions::{ConditionType, condition};
use super::health::ExportNews;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use tracedapp_api::spec::{Condition, TracedApp, TracedAppStatus};

use super::pods::Problem;

/// `Ready=False` while a new app's first pods are on their way: not a problem, and no Event
/// (the status tells a first rollout; Events are for what changes in a running app).
const WAITING: &str = "Waiting";
/// `Ready=False` for an app that was Ready and lost pods, with no pod problem to name.
const UNAVAILABLE: &str = "Unavailable";

/// The status of an app whose spec passed validation.
/// `problem` is what keeps the pods from being ready, if their status says
/// ([`super::pods::problem`]); it becomes `Ready`'s reason.
/// `export` is the export-health verdict, if there is news (see [`super::health`]).
pub fn observed(
    app: &TracedApp,
    deployment: Option<&Deployment>,
    problem: Option<&Problem>,
    config_hash: &str,
    export: &ExportNews,
) -> TracedAppStatus {
    let wanted = app.spec.app.replicas;
    let status = deployment.and_then(|d| d.status.as_ref());
    let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
        status.and_then(f).unwrap_or(0)
    };
    let available = count(|s| s.available_replicas);
    let updated = count(|s| s.updated_replicas);
    let total = count(|s| s.replicas);
    let seen_generation = status.and_then(|s| s.observed_generation);
    let generation = deployment.and_then(|d| d.metadata.generation);
    let deployment_condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
    };

    let stuck = deployment_condition("Progressing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    let replica_failure = deployment_condition("ReplicaFailure").filter(|c| c.status == "True");
    let rolled_out = deployment.is_some()
        && seen_generation >= generation
        && updated >= wanted
        && total == updated
        && available >= wanted;
    let ready = available >= wanted;

    let progressing = if let Some(c) = stuck {
        condition(
            app,
            ConditionType::Progressing,
            false,
            "ProgressDeadlineExceeded",
            c.message.as_deref().unwrap_or_default(),
        )
    } else if rolled_out {
        condition(
            app,
            ConditionType::Progressing,
            false,
            "RolloutComplete",
            &format!("{updated} pods run the current spec"),
        )
    } else {
        // The message leaves out the updated count: each of its steps would be a status write
        // of its own, and the Deployment shows it.
        condition(
            app,
            ConditionType::Progressing,
            true,
            "RollingOut",
            &format!("rolling out the current spec: {available}/{wanted} pods available"),
        )
    };
    let degraded = match (stuck, replica_failure) {
        (Some(c), _) => condition(
            app,
            ConditionType::Degraded,
            true,
            "ProgressDeadlineExceeded",
            c.message.as_deref().unwrap_or_default(),
        ),
        (None, Some(c)) => condition(
            app,
            ConditionType::Degraded,
            true,
            "ReplicaFailure",
            c.message.as_deref().unwrap_or_default(),
        ),
        (None, None) => condition(
            app,
            ConditionType::Degraded,
            false,
            "AsExpected",
            "no problem seen",
        ),
    };
    let (export_condition, exports) = super::health::condition(app, export).unzip();
    TracedAppStatus {
        observed_generation: app.metadata.generation,
        conditions: vec![
            config_valid(app),
            progressing,
            match problem.filter(|_| !ready) {
                None => condition(
                    app,
                    ConditionType::Ready,
                    ready,
                    if ready {
                        "Available"
                    } else if was_ready(app) {
                        UNAVAILABLE
                    } else {
                        WAITING
                    },
                    &format!("{available}/{wanted} pods available"),
                ),
                Some(p) => condition(
                    app,
                    ConditionType::Ready,
                    false,
                    &p.reason,
                    &format!("{available}/{wanted} pods available; {}", p.message),
                ),
            },
            degraded,
        ]
        .into_iter()
        .chain(export_condition)
        .collect(),
        exports: exports.unwrap_or_default(),
        replicas: Some(wanted),
        ready_replicas: Some(available),
        replicas_summary: Some(format!("{available}/{wanted}")),
        exporters: Some(tracedapp_api::collector::exporters_summary(&app.spec)),
        collector_config_hash: Some(config_hash.to_owned()),
    }
}

/// Whether `app` has been Ready since its pods last stopped being on their way (Ready now, or
/// not Ready for a reason other than a first rollout's).
fn was_ready(app: &TracedApp) -> bool {
    app.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True" || c.reason == UNAVAILABLE)
}

/// The status of an app whose spec our validation rejected: nothing is applied.
pub fn invalid(app: &TracedApp, message: &str) -> TracedAppStatus {
    TracedAppStatus {
        observed_generation: app.metadata.generation,
        conditions: vec![
            condition(
                app,
                ConditionType::ConfigValid,
                false,
                "InvalidSpec",
                message,
            ),
            condition(
                app,
                ConditionType::Degraded,
                true,
                "InvalidSpec",
                "fix the spec: see ConfigValid",
            ),
        ],
        ..TracedAppStatus::default()
    }
}

/// `ConfigValid=True`: the spec passed validation.
fn config_valid(app: &TracedApp) -> Condition {
    condition(
        app,
        ConditionType::ConfigValid,
        true,
        "Valid",
        "the spec passed validation",
    )
}

/// The status of an app some of whose children's names are taken by objects that are not its
/// own: nothing is applied, so nothing of theirs is taken over.
pub fn conflict(app: &TracedApp, message: &str) -> TracedAppStatus {
    TracedAppStatus {
        observed_generation: app.metadata.generation,
        conditions: vec![
            config_valid(app),
            condition(app, ConditionType::Ready, false, "ChildConflict", message),
            condition(app, ConditionType::Degraded, true, "ChildConflict", message),
        ],
        ..TracedAppStatus::default()
    }
}

/// The kind of a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// A Kubernetes Event to publish about a TracedApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: EventKind,
    /// CamelCase, shown by `kubectl describe` and `kubectl events`.
    pub reason: &'static str,
    pub message: String,
}

/// The events that the change from `before` to `after` deserves (none when nothing that a
/// user cares about changed, so a steady state publishes nothing).
pub fn transitions(before: Option<&TracedAppStatus>, after: &TracedAppStatus) -> Vec<Note> {
    let find = |s: Option<&TracedAppStatus>, kind: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == kind).cloned())
    };
    let changed = |kind: &str| {
        let (was, now) = (find(before, kind), find(Some(after), kind));
        match (&was, &now) {
            (Some(w), Some(n)) if w.status == n.status && w.reason == n.reason => None,
            (_, Some(n)) => Some(n.clone()),
            _ => None,
        }
    };
    let mut notes = Vec::new();
    if let Some(c) = changed("ConfigValid").filter(|c| c.status == "False") {
        notes.push(Note {
            kind: EventKind::Warning,
            reason: "InvalidSpec",
            message: c.message,
        });
    }
    let old_hash = before.and_then(|s| s.collector_config_hash.as_deref());
    // A new app's first apply and first Ready publish nothing: its status says both (with
    // their times), and two Events per new app would be two more requests to the API server.
    if let (Some(old), Some(new)) = (old_hash, after.collector_config_hash.as_deref())
        && old != new
    {
        notes.push(Note {
            kind: EventKind::Normal,
            reason: "ConfigChanged",
            message: format!("collector config {old} → {new}; the pods roll"),
        });
    }
    if let Some(c) = changed("Ready") {
        let before_ready = find(before, "Ready");
        let was_ready = before_ready.as_ref().is_some_and(|c| c.status == "True");
        let first_rollout = before_ready.is_none_or(|c| c.reason == WAITING);
        if c.status == "True" && !first_rollout {
            // Back after a NotReady warning.
            notes.push(Note {
                kind: EventKind::Normal,
                reason: "Ready",
                message: c.message,
            });
        } else if c.status == "True" {
            // A first rollout done: the status says so.
        } else if was_ready || c.reason != WAITING {
            // Lost readiness, or pods that will not get there by themselves: say why.
            notes.push(Note {
                kind: EventKind::Warning,
                reason: "NotReady",
                message: format!("{}: {}", c.reason, c.message),
            });
        }
    }
    if let Some(c) = changed("ExportHealthy") {
        let existed = find(before, "ExportHealthy").is_some();
        match c.status.as_str() {
            "False" => notes.push(Note {
                kind: EventKind::Warning,
                reason: "ExportFailing",
                message: c.message,
            }),
            "True" => notes.push(Note {
                kind: EventKind::Normal,
                reason: "ExportHealthy",
                message: c.message,
            }),
            // A new app starts Unknown: no news.
            _ if existed => notes.push(Note {
                kind: EventKind::Normal,
                reason: "ExportUnknown",
                message: c.message,
            }),
            _ => {}
        }
    }
    if let Some(c) = changed("Degraded").filter(|c| c.status == "True" && c.reason != "InvalidSpec")
    {
        notes.push(Note {
            kind: EventKind::Warning,
            reason: "Degraded",
            message: format!("{}: {}", c.reason, c.message),
        });
    }
    notes
}

/// `namespace/name`, for logs and metrics.
pub fn key(app: &TracedApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    fn app(replicas: i32) -> TracedApp {
        let mut app = tracedapp_api::fixtures::app();
        app.spec.app.replicas = replicas;
        app.metadata.generation = Some(3);
        app
    }

    fn deployment(replicas: i32, updated: i32, available: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(4);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(4),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        d
    }

    fn get<'a>(s: &'a TracedAppStatus, kind: &str) -> (&'a str, &'a str) {
        let c = s.conditions.iter().find(|c| c.type_ == kind).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_finished_rollout_is_ready_and_not_progressing() {
        let s = observed(
            &app(2),
            Some(&deployment(2, 2, 2)),
            None,
            "abc",
            &ExportNews::Off,
        );
        assert_eq!(get(&s, "Ready"), ("True", "Available"));
        assert_eq!(get(&s, "Progressing"), ("False", "RolloutComplete"));
        assert_eq!(get(&s, "Degraded"), ("False", "AsExpected"));
        assert_eq!(s.replicas_summary.as_deref(), Some("2/2"));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn a_rollout_with_old_pods_left_is_progressing() {
        // 3 pods: 2 updated, 1 old still serving.
        let s = observed(
            &app(2),
            Some(&deployment(3, 2, 2)),
            None,
            "abc",
            &ExportNews::Off,
        );
        assert_eq!(get(&s, "Progressing"), ("True", "RollingOut"));
        assert_eq!(get(&s, "Ready"), ("True", "Available"));
        let none = observed(&app(2), None, None, "abc", &ExportNews::Off);
        assert_eq!(get(&none, "Ready"), ("False", "Waiting"));
        assert_eq!(get(&none, "Progressing"), ("True", "RollingOut"));
    }

    #[test]
    fn a_stuck_rollout_is_degraded_with_the_deployments_message() {
        let mut d = deployment(1, 1, 0);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"shop-1\" has timed out progressing.".into()),
            ..DeploymentCondition::default()
        }]);
        let s = observed(&app(1), Some(&d), None, "abc", &ExportNews::Off);
        assert_eq!(get(&s, "Degraded"), ("True", "ProgressDeadlineExceeded"));
        assert_eq!(
            get(&s, "Progressing"),
            ("False", "ProgressDeadlineExceeded")
        );
        let notes = transitions(None, &s);
        assert!(
            notes.iter().any(|n| n.kind == EventKind::Warning
                && n.reason == "Degraded"
                && n.message.contains("timed out")),
            "{notes:?}"
        );
    }

    #[test]
    fn events_only_on_transitions() {
        let first = observed(
            &app(1),
            Some(&deployment(1, 0, 0)),
            None,
            "abc",
            &ExportNews::Off,
        );
        let reasons = |n: Vec<Note>| n.into_iter().map(|n| n.reason).collect::<Vec<_>>();
        assert_eq!(
            reasons(transitions(None, &first)),
            Vec::<&str>::new(),
            "a new app: its status tells it"
        );
        assert_eq!(
            reasons(transitions(Some(&first), &first)),
            Vec::<&str>::new(),
            "steady state: no events"
        );
        // The pod made but not yet available: the same status, so no write.
        let made = observed(
            &app(1),
            Some(&deployment(1, 1, 0)),
            None,
            "abc",
            &ExportNews::Off,
        );
        assert_eq!(made, first);

        let ready = observed(
            &app(1),
            Some(&deployment(1, 1, 1)),
            None,
            "abc",
            &ExportNews::Off,
        );
        assert_eq!(
            reasons(transitions(Some(&first), &ready)),
            Vec::<&str>::new(),
            "a first rollout done: the status says so"
        );
        let changed = observed(
            &app(1),
            Some(&deployment(1, 1, 1)),
            None,
            "def",
            &ExportNews::Off,
        );
        assert_eq!(
            reasons(transitions(Some(&ready), &changed)),
            ["ConfigChanged"]
        );
        let mut running = app(1);
        running.status = Some(changed.clone());
        let lost = observed(
            &running,
            Some(&deployment(1, 1, 0)),
            None,
            "def",
            &ExportNews::Off,
        );
        assert_eq!(
            lost.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .reason,
            "Unavailable"
        );
        assert_eq!(reasons(transitions(Some(&changed), &lost)), ["NotReady"]);
        running.status = Some(lost.clone());
        let back = observed(
            &running,
            Some(&deployment(1, 1, 1)),
            None,
            "def",
            &ExportNews::Off,
        );
        assert_eq!(reasons(transitions(Some(&lost), &back)), ["Ready"]);
        let bad = invalid(&app(1), "spec.app.port: must be 1-65535");
        let notes = transitions(Some(&lost), &bad);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].kind == EventKind::Warning && notes[0].message.contains("spec.app.port"));
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let mut a = app(1);
        a.status = Some(TracedAppStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "Waiting".into(),
                message: String::new(),
                last_transition_time: "2026-01-01T00:00:00Z".into(),
                observed_generation: Some(1),
            }],
            ..TracedAppStatus::default()
        });
        assert_eq!(
            condition(&a, ConditionType::Ready, false, "Waiting", "0/1").last_transition_time,
            "2026-01-01T00:00:00Z"
        );
        assert_ne!(
            condition(&a, ConditionType::Ready, true, "Available", "1/1").last_transition_time,
            "2026-01-01T00:00:00Z"
        );
    }
}

#[cfg(test)]
mod problem_tests {
    use super::*;

    /// Pods that fail their readiness probe: Ready=False with that reason, and a warning
    /// Event once, not on every pass.
    #[test]
    fn a_pod_problem_is_the_ready_reason_and_warned_once() {
        let mut app = tracedapp_api::fixtures::app();
        app.metadata.generation = Some(1);
        let problem = Problem {
            reason: "ReadinessProbeFailing".into(),
            message: "container app runs but fails its readiness probe (GET /nope on port 3000)"
                .into(),
        };
        let first = observed(&app, None, None, "abc", &ExportNews::Off);
        let failing = observed(&app, None, Some(&problem), "abc", &ExportNews::Off);
        let ready = failing
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ReadinessProbeFailing")
        );
        assert!(ready.message.contains("GET /nope"), "{}", ready.message);
        let notes = transitions(Some(&first), &failing);
        assert!(
            notes.iter().any(|n| n.kind == EventKind::Warning
                && n.reason == "NotReady"
                && n.message.contains("/nope")),
            "{notes:?}"
        );
        assert!(transitions(Some(&failing), &failing).is_empty());
    }
}
