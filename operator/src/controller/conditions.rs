//! The conditions of a TracedApp's status, and how one is written (its transition time kept
//! while its status stays): a leaf the status and export-health modules both use.

use k8s_openapi::jiff;
use tracedapp_api::spec::{Condition, TracedApp};

/// The conditions a TracedApp's status holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    ConfigValid,
    Progressing,
    Ready,
    Degraded,
    /// Whether the app's collectors deliver what they export (see the `health` module).
    ExportHealthy,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::ConfigValid => "ConfigValid",
            ConditionType::Progressing => "Progressing",
            ConditionType::Ready => "Ready",
            ConditionType::Degraded => "Degraded",
            ConditionType::ExportHealthy => "ExportHealthy",
        }
    }
}

/// A condition, keeping its transition time when its status did not change.
pub fn condition(
    app: &TracedApp,
    kind: ConditionType,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    condition_with(
        app,
        kind,
        if ok { "True" } else { "False" },
        reason,
        message,
    )
}

/// [`condition`] with any status: `True`, `False` or `Unknown`.
pub fn condition_with(
    app: &TracedApp,
    kind: ConditionType,
    status: &str,
    reason: &str,
    message: &str,
) -> Condition {
    let kind = kind.as_str();
    let previous = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind));
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    };
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time,
        observed_generation: app.metadata.generation,
    }
}
