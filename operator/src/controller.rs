//! The TracedApp controller: reconcile = validate → build (pure) → apply → status.
//!
//! Expected flow for one TracedApp:
//! 1. Validate the spec with the Rust twin of the CRD rules. Invalid: status `ConfigValid=False`
//!    with the field paths, nothing applied, no retry until the spec changes.
//! 2. Build every child with [`crate::manifests::build`] (owner references included).
//! 3. Server-side apply each child under one field manager (a no-op apply writes nothing).
//! 4. Write the whole status with server-side apply: `observedGeneration`, `ConfigValid`,
//!    `Ready` from the Deployment's real availability, replicas, config hash.
//!
//! 5. Prune collector ConfigMaps of older hashes (a few kept for rollback).
//!
//! Errors: retried with exponential back-off per TracedApp (2 s doubling to 5 min), reset on
//! success.
//!
//! Not yet here (issue 5 continues): Events, `Progressing`/`Degraded`, zero-write no-op passes,
//! leader election, metrics and health endpoints.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracedapp_api::spec::{Condition, TracedApp, TracedAppStatus};
use tracedapp_api::validate::validate;

use crate::labels::MANAGER;
use crate::manifests::{self, Children, Rendered};

/// What can go wrong in a reconcile (each retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TracedApp has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Shared by every reconcile.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// Consecutive failures per TracedApp (namespace/name), for the back-off.
    failures: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

impl Context {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            failures: Arc::default(),
        }
    }

    fn key(app: &TracedApp) -> String {
        format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Runs the controller over TracedApps in `namespace` (all namespaces if `None`) until the
/// process receives SIGTERM/SIGINT.
pub async fn run(client: Client, namespace: Option<&str>) {
    let apps: Api<TracedApp> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let owned = |c: &Client| -> (
        Api<ConfigMap>,
        Api<Deployment>,
        Api<Service>,
        Api<ServiceAccount>,
    ) {
        match namespace {
            Some(ns) => (
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
            ),
            None => (
                Api::all(c.clone()),
                Api::all(c.clone()),
                Api::all(c.clone()),
                Api::all(c.clone()),
            ),
        }
    };
    let (cms, deployments, services, accounts) = owned(&client);
    let children = watcher::Config::default().labels(crate::labels::OWNER_LABEL);
    Controller::new(apps, watcher::Config::default())
        .owns(cms, children.clone())
        .owns(deployments, children.clone())
        .owns(services, children.clone())
        .owns(accounts, children)
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::new(Context::new(client)))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

/// One pass over one TracedApp (see the module docs for the flow).
pub async fn reconcile(app: Arc<TracedApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = app.namespace().ok_or(Error::NoNamespace)?;
    let apps: Api<TracedApp> = Api::namespaced(ctx.client.clone(), &ns);
    if let Err(errors) = validate(&app) {
        let message = errors.to_string().replace('\n', "; ");
        let status = TracedAppStatus {
            observed_generation: app.metadata.generation,
            conditions: vec![condition(
                &app,
                "ConfigValid",
                false,
                "InvalidSpec",
                &message,
            )],
            ..TracedAppStatus::default()
        };
        write_status(&apps, &app, status).await?;
        return Ok(Action::await_change());
    }

    let rendered = Rendered::new(&app);
    let Children {
        config_map,
        service_account,
        deployment,
        service,
    } = manifests::build(&app);
    apply(&ctx.client, &ns, &config_map).await?;
    apply(&ctx.client, &ns, &service_account).await?;
    let deployment: Deployment = apply(&ctx.client, &ns, &deployment).await?;
    apply(&ctx.client, &ns, &service).await?;
    prune_config_maps(&ctx.client, &ns, &app, &rendered.config_hash).await?;

    let wanted = app.spec.app.replicas;
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let ready = available >= wanted;
    let status = TracedAppStatus {
        observed_generation: app.metadata.generation,
        conditions: vec![
            condition(
                &app,
                "ConfigValid",
                true,
                "Valid",
                "the spec passed validation",
            ),
            condition(
                &app,
                "Ready",
                ready,
                if ready { "Available" } else { "Waiting" },
                &format!("{available}/{wanted} pods available"),
            ),
        ],
        replicas: Some(wanted),
        ready_replicas: Some(available),
        replicas_summary: Some(format!("{available}/{wanted}")),
        exporters: Some(tracedapp_api::collector::exporters_summary(&app.spec)),
        collector_config_hash: Some(rendered.config_hash),
    };
    write_status(&apps, &app, status).await?;
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&Context::key(&app));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Collector ConfigMaps of older config hashes kept for rollback (besides the current one).
pub const KEEP_OLD_CONFIG_MAPS: usize = 2;

/// Deletes this TracedApp's collector ConfigMaps beyond the current one and the
/// [`KEEP_OLD_CONFIG_MAPS`] newest older ones.
async fn prune_config_maps(
    client: &Client,
    ns: &str,
    app: &TracedApp,
    current_hash: &str,
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = crate::naming::fit(&app.name_any());
    let selector = format!(
        "{}={name},app.kubernetes.io/component=collector-config",
        crate::labels::OWNER_LABEL
    );
    let current = crate::naming::collector_config_map(&app.name_any(), current_hash);
    let mut old: Vec<ConfigMap> = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|cm| cm.metadata.name.as_deref() != Some(current.as_str()))
        .collect();
    // Newest first; names break ties within the same second.
    old.sort_by(|a, b| {
        (
            b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            b.name_any(),
        )
            .cmp(&(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                a.name_any(),
            ))
    });
    for cm in old.into_iter().skip(KEEP_OLD_CONFIG_MAPS) {
        tracing::info!(config_map = %cm.name_any(), "pruning an old collector config");
        match api.delete(&cm.name_any(), &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

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
            let n = map.entry(Context::key(&app)).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    };
    let delay = backoff(failures);
    tracing::warn!(%error, app = %Context::key(&app), failures, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Server-side apply of one child under our field manager; returns what the server holds.
async fn apply<K>(client: &Client, ns: &str, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(object)).await?)
}

/// Writes the whole status (server-side apply on the status subresource).
async fn write_status(
    apps: &Api<TracedApp>,
    app: &TracedApp,
    status: TracedAppStatus,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "status": status,
    });
    let params = PatchParams::apply(MANAGER).force();
    apps.patch_status(&app.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// A condition, keeping its transition time when the status did not change.
fn condition(app: &TracedApp, kind: &str, ok: bool, reason: &str, message: &str) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind));
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => k8s_openapi::jiff::Timestamp::now()
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
