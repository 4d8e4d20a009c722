//! One pass over one TracedApp: validate → build (pure) → check ownership → apply what
//! differs → prune → status.
//!
//! 1. Validate the spec with the CRD's own rules. Invalid: status `ConfigValid=False` with the
//!    field paths, nothing applied, no retry until the spec changes.
//! 2. Build every child with [`tracedapp_k8s::manifests::build_at`] (owner references included), the
//!    collector configuration rendered once.
//! 3. If a child's name is taken by an object that is not ours: `Degraded`/`ChildConflict`,
//!    nothing applied, a look again later.
//! 4. A Deployment made with an older selector is moved first ([`Context::moving_selector`]:
//!    orphaned, then recreated and adopting its pods). Apply the children that differ from
//!    their cached live objects
//!    ([`Context::apply_all`]); a drifted child (edited by hand) is restored and an Event says
//!    which field. Delete collector ConfigMaps beyond the ones kept for rollback.
//! 5. The status ([`status::observed`]) from the live Deployment, the pods and export health;
//!    written only if it changed, with Events for transitions.
//!
//! Errors are retried with exponential back-off per TracedApp (2 s doubling to 5 min).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracedapp_api::spec::{TracedApp, TracedAppStatus};
use tracedapp_api::validate::validate;

use super::apply::prune_config_maps;
use super::apply::resource_version;
use super::context::json_hash;
use super::status::{self, EventKind};
use super::{Context, Error, metrics, pods};
use tracedapp_k8s::labels::MANAGER;
use tracedapp_k8s::manifests::{self, Children};

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The children are as the spec says; look again after `next` (sooner while a pod's
    /// readiness is still being decided).
    Applied { next: Duration },
    /// The spec breaks a rule: nothing applied, nothing to do until it changes.
    Invalid,
    /// A child's name is taken by an object that is not ours: nothing applied.
    Conflict,
}

impl Outcome {
    /// The `result` label of `tracedapp_reconciles_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Conflict => "conflict",
        }
    }

    fn action(self) -> Action {
        match self {
            Outcome::Applied { next } => Action::requeue(next),
            Outcome::Invalid => Action::await_change(),
            Outcome::Conflict => Action::requeue(CONFLICT_RETRY),
        }
    }
}

/// One pass over one TracedApp, measured and traced (see the module docs for the flow).
#[tracing::instrument(name = "reconcile", skip_all, fields(app = %status::key(&app), generation = app.metadata.generation, result))]
pub async fn reconcile(app: Arc<TracedApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.metrics.caches_synced() {
        // Before its first full list a cache cannot tell "missing" from "not listed yet": a
        // pass now would re-apply every child of every app (seen when a new operator pod takes
        // over). Come back once the lists are in.
        return Ok(Action::requeue(CACHE_SYNC_RETRY));
    }
    let started = Instant::now();
    let outcome = pass(&app, &ctx).await;
    let label = outcome.as_ref().map_or("error", |o| o.label());
    tracing::Span::current().record("result", label);
    ctx.metrics
        .reconciled(label, started.elapsed().as_secs_f64());
    if outcome.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&status::key(&app));
    }
    outcome.map(Outcome::action)
}

/// The pass itself (see the module docs).
async fn pass(app: &TracedApp, ctx: &Context) -> Result<Outcome, Error> {
    let ns = app.namespace().ok_or(Error::NoNamespace)?;
    if let Err(errors) = validate(app) {
        let message = errors.to_string().replace('\n', "; ");
        write_status(ctx, app, status::invalid(app, &message)).await?;
        return Ok(Outcome::Invalid);
    }
    let children = manifests::build_at(app, &ctx.site);
    if let Some(message) = ctx.foreign_children(&ns, &children) {
        return conflict(ctx, app, &message).await;
    }
    if ctx.moving_selector(&ns, &children.deployment).await? {
        return Ok(Outcome::Applied {
            next: SELECTOR_MOVE_RETRY,
        });
    }
    let applied = match ctx.apply_all(&ns, &children).await {
        Err(Error::ChildTaken(message)) => return conflict(ctx, app, &message).await,
        applied => applied?,
    };
    prune_config_maps(ctx, &ns, app, &children.rendered.config_hash).await?;
    report_drift(ctx, app, &children, &applied.drifted).await;
    let verdict = pods_verdict(ctx, app);
    let observed = status::observed(
        app,
        Some(&applied.deployment),
        verdict.problem.as_ref(),
        &children.rendered.config_hash,
        &ctx.export.news(&status::key(app)),
    );
    write_status(ctx, app, observed).await?;
    let mut next = verdict.recheck.map_or(RESYNC, |d| d.min(RESYNC));
    if applied.pending {
        next = next.min(super::apply::CACHE_CATCH_UP);
    }
    Ok(Outcome::Applied { next })
}

/// A child's name is taken by an object that is not ours: nothing more is applied.
async fn conflict(ctx: &Context, app: &TracedApp, message: &str) -> Result<Outcome, Error> {
    tracing::warn!(app = %status::key(app), %message, "a child's name is taken");
    write_status(ctx, app, status::conflict(app, message)).await?;
    Ok(Outcome::Conflict)
}

/// Children changed although the spec did not: someone edited them by hand (now restored).
async fn report_drift(ctx: &Context, app: &TracedApp, children: &Children, drifted: &[String]) {
    let spec_unchanged = app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation
            && s.collector_config_hash.as_deref() == Some(children.rendered.config_hash.as_str())
    });
    if spec_unchanged && !drifted.is_empty() {
        let message = format!("restored what was edited by hand ({})", drifted.join(", "));
        tracing::info!(app = %status::key(app), %message, "drift reverted");
        ctx.publish(app, EventKind::Normal, "DriftReverted", message)
            .await;
    }
}

/// What the app's own pods say about its readiness (from the caches).
fn pods_verdict(ctx: &Context, app: &TracedApp) -> pods::Verdict {
    let app_pods: Vec<Arc<Pod>> = ctx.chain.pods_of(app);
    pods::verdict(
        app,
        &app_pods.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        k8s_openapi::jiff::Timestamp::now(),
    )
}

/// Writes `new` (server-side apply of the whole status) unless the app already has it, and
/// publishes the Events its transitions deserve.
async fn write_status(ctx: &Context, app: &TracedApp, new: TracedAppStatus) -> Result<(), Error> {
    if app.status.as_ref() == Some(&new) {
        return Ok(());
    }
    // A pass that follows our own status write closely can see the app from before it (the
    // watch event is on its way): the same status again is not written twice.
    let key = format!("TracedApp/{}", status::key(app));
    let hash = json_hash(&new);
    if ctx
        .last_write(&key)
        .is_some_and(|w| w.hash == hash && resource_version(app) < w.resource_version)
    {
        return Ok(());
    }
    let apps: Api<TracedApp> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "status": new,
    });
    let params = PatchParams::apply(MANAGER).force();
    let written = apps
        .patch_status(&app.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    ctx.metrics.wrote("apply", "TracedApp/status");
    ctx.remember_write(key, &written, hash);
    for n in status::transitions(app.status.as_ref(), &new) {
        ctx.publish(app, n.kind, n.reason, n.message).await;
    }
    Ok(())
}

impl Context {
    async fn publish(&self, app: &TracedApp, kind: EventKind, reason: &str, message: String) {
        let event = Event {
            type_: match kind {
                EventKind::Warning => EventType::Warning,
                EventKind::Normal => EventType::Normal,
            },
            reason: reason.into(),
            note: Some(message),
            action: "Reconcile".into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &app.object_ref(&())).await {
            Ok(()) => self.metrics.wrote("create", "Event"),
            // An event is a courtesy: never fail a reconcile for one.
            Err(e) => tracing::warn!(error = %e, reason, "cannot publish an event"),
        }
    }
}

/// How soon an app whose child names are taken looks again (the other object is not watched:
/// its removal sends no event).
pub const CONFLICT_RETRY: Duration = Duration::from_secs(30);

/// How soon a pass comes back while a Deployment moves to the current selector (the garbage
/// collector orphans its ReplicaSets, then the Deployment goes; its deletion also triggers a
/// pass).
pub const SELECTOR_MOVE_RETRY: Duration = Duration::from_secs(1);

/// A converged app is looked at again after this long even if nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How soon a pass that found the watch caches still listing comes back.
pub const CACHE_SYNC_RETRY: Duration = Duration::from_millis(250);

/// First retry delay after a failed reconcile.
pub const BACKOFF_START: Duration = Duration::from_secs(2);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Delay before retry number `failures` (1 = first failure): doubling from
/// [`BACKOFF_START`], never above [`BACKOFF_CAP`].
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Retries a failed reconcile with exponential back-off per TracedApp (reset on success).
pub fn error_policy(app: Arc<TracedApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = match ctx.failures.lock() {
        Ok(mut map) => {
            let n = map.entry(status::key(&app)).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    };
    let reason = match error {
        Error::Kube(e) => metrics::reason(e),
        Error::NoNamespace => "NoNamespace".into(),
        Error::ChildTaken(_) => "ChildTaken".into(),
    };
    ctx.metrics.failed(reason.clone());
    let delay = backoff(failures);
    tracing::warn!(%error, %reason, app = %status::key(&app), failures, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(
            backoff(u32::MAX),
            BACKOFF_CAP,
            "no overflow after many failures"
        );
    }
}
