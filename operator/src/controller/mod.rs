//! The TracedApp controller (`tracedapp run`): reconcile = validate → build (pure) → apply
//! what differs → status.
//!
//! One pass over one TracedApp:
//! 1. Validate the spec with the Rust twin of the CRD rules. Invalid: status
//!    `ConfigValid=False` with the field paths, nothing applied, no retry until the spec changes.
//! 2. Build every child with [`crate::manifests::build`] (owner references included).
//! 3. For each child, compare what we would apply with the cached live object
//!    ([`diff::first_difference`]); server-side apply (one field manager) only what differs.
//!    A drifted child (edited by hand) is restored and an Event says which field.
//! 4. Delete collector ConfigMaps of older hashes beyond the [`KEEP_OLD_CONFIG_MAPS`] newest.
//! 5. Compute the status ([`status::observed`]) from the live Deployment; write it (server-side
//!    apply of the whole status) only if it changed, and publish Events for transitions.
//!
//! A steady state therefore sends no writes at all: reads come from watch caches.
//! Errors are retried with exponential back-off per TracedApp (2 s doubling to 5 min).
//!
//! [`run`] adds the process around it: one controller per watched namespace (or one for all),
//! optional leader election on a Lease, `/healthz`, `/readyz`, `/metrics`, and a graceful stop.

pub mod diff;
pub mod leader;
pub mod metrics;
pub mod ownership;
pub mod pods;
pub mod status;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracedapp_api::spec::{TracedApp, TracedAppStatus};
use tracedapp_api::validate::validate;
use tracing::Instrument;

use crate::labels::{MANAGER, OWNER_LABEL};
use crate::manifests::{self, Children, Rendered};
use metrics::Metrics;

/// What can go wrong in a reconcile (each retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TracedApp has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// How `tracedapp run` runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Hold a Lease before reconciling (for more than one replica).
    pub leader_election: Option<leader::LeaseOptions>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` (none if `None`).
    pub metrics_addr: Option<SocketAddr>,
    /// Who we are in Events and in the Lease (the pod name in a cluster).
    pub identity: String,
}

/// Runs until SIGTERM/SIGINT, then stops reconciling, releases the lease and returns.
/// Returns an error if the metrics port cannot be bound or the lease is lost (the process
/// should then exit so that it restarts as a follower).
pub async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    run_until(
        client,
        options,
        Arc::new(Metrics::default()),
        shutdown_signal(),
    )
    .await
}

/// [`run`] with the stop trigger and the metrics given (tests stop it without a signal).
pub async fn run_until(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = stop.shared();
    let server = match options.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                stop.clone(),
            )))
        }
        None => None,
    };

    let outcome = match &options.leader_election {
        None => {
            metrics.set_leader(true);
            reconcile_all(client, &options, metrics.clone(), stop.clone()).await;
            Ok(())
        }
        Some(lease) => {
            let mut leadership =
                leader::Leadership::start(client.clone(), lease, &options.identity).await?;
            metrics.set_ready(true); // a follower is healthy and ready
            tracing::info!(lease = %lease.name, identity = %options.identity, "waiting to lead");
            let leading = tokio::select! {
                leading = leadership.acquired() => leading,
                () = stop.clone() => false,
            };
            let mut result = Ok(());
            if leading {
                tracing::info!(identity = %options.identity, "leading: reconciling");
                metrics.set_leader(true);
                let lost = leadership.lost();
                let stop_or_lost = {
                    let stop = stop.clone();
                    async move {
                        tokio::select! {
                            () = stop => {}
                            () = lost => {}
                        }
                    }
                }
                .shared();
                reconcile_all(client, &options, metrics.clone(), stop_or_lost).await;
                metrics.set_leader(false);
                if !leadership.is_leader() {
                    result = Err(anyhow::anyhow!(
                        "lost the lease {}: stopping so that another replica leads",
                        lease.name
                    ));
                }
            }
            leadership.release().await;
            result
        }
    };
    if let Some(server) = server {
        let _ = server.await;
    }
    outcome
}

/// One controller per watched namespace (one over all namespaces if none is given), until
/// `stop` resolves.
async fn reconcile_all(
    client: Client,
    options: &Options,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: Some(options.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = scopes.into_iter().map(|scope| {
        one_controller(
            client.clone(),
            scope,
            metrics.clone(),
            recorder.clone(),
            stop.clone(),
        )
    });
    futures::future::join_all(controllers).await;
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch of one kind in `namespace` (all if `None`), cached in a store; `config` selects.
/// The cache counts towards readiness until its first full list has arrived.
fn cached<K>(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let sync = metrics.cache_syncing();
    let stream = watcher(api::<K>(client, namespace), config)
        .backoff(WatchBackoff::default())
        // managedFields is often the largest part of an object and we never read it.
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event {
                sync.done();
            }
        })
        // The watch retries by itself (with the back-off above). Passed on, each error would
        // pause the controller's merged trigger stream for a back-off of its own: after an API
        // server restart every watch fails once ("too old resource version"), and the pauses
        // added up to most of a minute. Logged here, and dropped.
        .filter(|event| {
            if let Err(e) = event {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
            }
            std::future::ready(event.is_ok())
        });
    (reader, stream)
}

/// Retry delays of a failed watch: 0.5 s doubling to [`WATCH_BACKOFF_CAP`], reset by a
/// success. kube's default grows to 30 s (per watch, and again for the controller's merged
/// trigger stream), which left the operator idle for 40 s after an API server restart; 8 s keeps recovery quick and the load on a struggling API
/// server low (one list per kind per 8 s).
#[derive(Debug, Default)]
struct WatchBackoff {
    failures: u32,
}

/// Passes running at once. Enough to keep the API server busy on 2 cores; a bound keeps a
/// burst of new TracedApps from holding hundreds of half-built objects in memory at once.
pub const MAX_CONCURRENT_PASSES: u16 = 16;

/// Longest delay between two attempts to re-establish a watch.
pub const WATCH_BACKOFF_CAP: Duration = Duration::from_secs(8);

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = Duration::from_millis(500)
            .saturating_mul(2u32.saturating_pow(self.failures.min(8)))
            .min(WATCH_BACKOFF_CAP);
        self.failures = self.failures.saturating_add(1);
        Some(delay)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

async fn one_controller(
    client: Client,
    namespace: Option<String>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = namespace.as_deref();
    let children = || watcher::Config::default().labels(OWNER_LABEL);
    let (apps, app_events) = cached::<TracedApp>(&client, ns, watcher::Config::default(), &metrics);
    let (config_maps, cm_events) = cached::<ConfigMap>(&client, ns, children(), &metrics);
    let (accounts, sa_events) = cached::<ServiceAccount>(&client, ns, children(), &metrics);
    let (deployments, deploy_events) = cached::<Deployment>(&client, ns, children(), &metrics);
    let (services, svc_events) = cached::<Service>(&client, ns, children(), &metrics);
    // The app's pods carry the owner label too; their status says why they are not ready.
    let (pods, pod_events) = cached::<Pod>(&client, ns, children(), &metrics);
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: metrics.clone(),
        recorder,
        config_maps,
        accounts,
        deployments,
        services,
        pods,
        failures: Mutex::default(),
        last_writes: Mutex::default(),
    });
    let controller = Controller::for_stream(app_events.applied_objects(), apps)
        .owns_stream(cm_events.touched_objects())
        .owns_stream(sa_events.touched_objects())
        .owns_stream(deploy_events.touched_objects())
        .owns_stream(svc_events.touched_objects())
        .watches_stream(pod_events.touched_objects(), |pod: Pod| {
            let app = pod.labels().get(OWNER_LABEL)?.clone();
            Some(ObjectRef::<TracedApp>::new(&app).within(&pod.namespace()?))
        })
        // The controller pauses all its watches after an error; by default up to 30 s.
        .trigger_backoff(WatchBackoff::default())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(MAX_CONCURRENT_PASSES),
        )
        .graceful_shutdown_on(stop);
    tracing::info!(namespace = ns_label(ns), "controller started");
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            use kube::runtime::controller::Error as E;
            match result {
                // Logged with its back-off by the error policy.
                Ok(_) | Err(E::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "controller stream error"),
            }
        })
        .await;
    tracing::info!(namespace = ns_label(ns), "controller stopped");
}

fn ns_label(ns: Option<&str>) -> &str {
    ns.unwrap_or("(all)")
}

/// Shared by every reconcile of one controller.
pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    config_maps: Store<ConfigMap>,
    accounts: Store<ServiceAccount>,
    deployments: Store<Deployment>,
    services: Store<Service>,
    pods: Store<Pod>,
    /// Consecutive failures per TracedApp (namespace/name), for the back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// Per child (`Kind/ns/name`): the resourceVersion our last apply returned and a hash of
    /// what we applied. A cache older than our own write is not mistaken for drift.
    last_writes: Mutex<HashMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// What [`Context::ensure`] did for one child.
enum Ensured<K> {
    /// The live object already held what we apply; nothing sent.
    Unchanged(K),
    Created(K),
    /// It differed at this path; applied.
    Updated(K, String),
}

impl<K> Ensured<K> {
    /// Where the live object differed from what we applied, if it existed.
    fn drift(&self) -> Option<&str> {
        match self {
            Ensured::Updated(_, path) => Some(path),
            _ => None,
        }
    }

    fn object(self) -> K {
        match self {
            Ensured::Unchanged(k) | Ensured::Created(k) | Ensured::Updated(k, _) => k,
        }
    }
}

impl Context {
    /// Applies `desired` unless the cached live object already holds it.
    async fn ensure<K>(&self, store: &Store<K>, ns: &str, desired: &K) -> Result<Ensured<K>, Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let kind = <K as k8s_openapi::Resource>::KIND;
        let name = desired.meta().name.clone().unwrap_or_default();
        let key = format!("{kind}/{ns}/{name}");
        let want = serde_json::to_value(desired).expect("k8s objects serialise");
        let want_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            want.to_string().hash(&mut h);
            h.finish()
        };
        let live = store.get(&ObjectRef::new(&name).within(ns));
        let mut drift = None;
        if let Some(live) = &live {
            let ours = self
                .last_writes
                .lock()
                .ok()
                .and_then(|m| m.get(&key).copied());
            let cache_is_older = matches!(ours, Some((rv, h)) if h == want_hash && resource_version(live.as_ref()) < rv);
            if cache_is_older {
                return Ok(Ensured::Unchanged(live.as_ref().clone()));
            }
            let have = serde_json::to_value(live.as_ref()).expect("k8s objects serialise");
            match diff::first_difference(&have, &want) {
                None => return Ok(Ensured::Unchanged(live.as_ref().clone())),
                Some(path) => drift = Some(path),
            }
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let params = PatchParams::apply(MANAGER).force();
        let span = tracing::info_span!("apply", kind, name = %name, drift = drift.as_deref());
        let applied = api
            .patch(&name, &params, &Patch::Apply(desired))
            .instrument(span)
            .await?;
        self.metrics.wrote("apply", kind);
        if let Ok(mut m) = self.last_writes.lock() {
            m.insert(key, (resource_version(&applied), want_hash));
            // Forget children that are gone (deleted apps), now and then.
            let cached = self.config_maps.len()
                + self.accounts.len()
                + self.deployments.len()
                + self.services.len();
            if m.len() > 64 + 2 * cached {
                m.retain(|key, _| self.in_cache(key));
            }
        }
        Ok(match drift {
            None => Ensured::Created(applied),
            Some(path) => Ensured::Updated(applied, path),
        })
    }

    /// Whether the child `Kind/namespace/name` is in its watch cache.
    fn in_cache(&self, key: &str) -> bool {
        let mut parts = key.splitn(3, '/');
        let (Some(kind), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        match kind {
            "ConfigMap" => self
                .config_maps
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "ServiceAccount" => self
                .accounts
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "Deployment" => self
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            "Service" => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            _ => false,
        }
    }

    async fn publish(&self, app: &TracedApp, warning: bool, reason: &str, message: String) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
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

fn resource_version<K: Resource>(k: &K) -> u64 {
    k.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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
    let outcome = reconcile_app(&app, &ctx).await;
    let result = match &outcome {
        Ok((_, valid)) if *valid => "ok",
        Ok(_) => "invalid",
        Err(_) => "error",
    };
    tracing::Span::current().record("result", result);
    ctx.metrics
        .reconciled(result, started.elapsed().as_secs_f64());
    if outcome.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&status::key(&app));
    }
    outcome.map(|(action, _)| action)
}

/// The pass itself; `Ok((action, spec_was_valid))`.
async fn reconcile_app(app: &TracedApp, ctx: &Context) -> Result<(Action, bool), Error> {
    let ns = app.namespace().ok_or(Error::NoNamespace)?;
    if let Err(errors) = validate(app) {
        let message = errors.to_string().replace('\n', "; ");
        write_status(ctx, app, status::invalid(app, &message)).await?;
        return Ok((Action::await_change(), false));
    }

    let rendered = Rendered::new(app);
    let Children {
        config_map,
        service_account,
        deployment,
        service,
    } = manifests::build(app);
    // Nothing is applied while a child's name is taken by an object that is not ours.
    let c = &ctx.client;
    let conflicts: Vec<String> = [
        ownership::foreign(c, &ctx.config_maps, &ns, &config_map).await?,
        ownership::foreign(c, &ctx.accounts, &ns, &service_account).await?,
        ownership::foreign(c, &ctx.deployments, &ns, &deployment).await?,
        ownership::foreign(c, &ctx.services, &ns, &service).await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    if !conflicts.is_empty() {
        let message = conflicts.join("; ");
        tracing::warn!(app = %status::key(app), %message, "a child's name is taken");
        write_status(ctx, app, status::conflict(app, &message)).await?;
        return Ok((Action::requeue(CONFLICT_RETRY), true));
    }
    let mut drifted = Vec::new();
    let e = ctx.ensure(&ctx.config_maps, &ns, &config_map).await?;
    drifted.extend(e.drift().map(|p| format!("ConfigMap {p}")));
    let e = ctx.ensure(&ctx.accounts, &ns, &service_account).await?;
    drifted.extend(e.drift().map(|p| format!("ServiceAccount {p}")));
    let live_deployment = ctx.ensure(&ctx.deployments, &ns, &deployment).await?;
    drifted.extend(live_deployment.drift().map(|p| format!("Deployment {p}")));
    let e = ctx.ensure(&ctx.services, &ns, &service).await?;
    drifted.extend(e.drift().map(|p| format!("Service {p}")));
    prune_config_maps(ctx, &ns, app, &rendered.config_hash).await?;

    // Our children changed although the spec did not: someone edited them by hand.
    let spec_unchanged = app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation
            && s.collector_config_hash.as_deref() == Some(rendered.config_hash.as_str())
    });
    if spec_unchanged && !drifted.is_empty() {
        let message = format!("restored what was edited by hand ({})", drifted.join(", "));
        tracing::info!(app = %status::key(app), %message, "drift reverted");
        ctx.publish(app, false, "DriftReverted", message).await;
    }

    let live = live_deployment.object();
    let owner = crate::naming::fit(&app.name_any());
    let app_pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(&ns) && p.labels().get(OWNER_LABEL) == Some(&owner)
        })
        .collect();
    let verdict = pods::verdict(
        app,
        &app_pods.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        k8s_openapi::jiff::Timestamp::now(),
    );
    let new_status = status::observed(
        app,
        Some(&live),
        verdict.problem.as_ref(),
        &rendered.config_hash,
    );
    write_status(ctx, app, new_status).await?;
    let next = verdict.recheck.map_or(RESYNC, |d| d.min(RESYNC));
    Ok((Action::requeue(next), true))
}

/// Writes `new` (server-side apply of the whole status) unless the app already has it, and
/// publishes the Events its transitions deserve.
async fn write_status(ctx: &Context, app: &TracedApp, new: TracedAppStatus) -> Result<(), Error> {
    if app.status.as_ref() == Some(&new) {
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
    apps.patch_status(&app.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    ctx.metrics.wrote("apply", "TracedApp/status");
    for n in status::transitions(app.status.as_ref(), &new) {
        ctx.publish(app, n.warning, n.reason, n.message).await;
    }
    Ok(())
}

/// Collector ConfigMaps of older config hashes kept for rollback (besides the current one).
pub const KEEP_OLD_CONFIG_MAPS: usize = 2;

/// Deletes this TracedApp's collector ConfigMaps beyond the current one and the
/// [`KEEP_OLD_CONFIG_MAPS`] newest older ones (read from the cache: no request unless
/// something is deleted).
async fn prune_config_maps(
    ctx: &Context,
    ns: &str,
    app: &TracedApp,
    current_hash: &str,
) -> Result<(), Error> {
    let owner = crate::naming::fit(&app.name_any());
    let current = crate::naming::collector_config_map(&app.name_any(), current_hash);
    let mut old: Vec<Arc<ConfigMap>> = ctx
        .config_maps
        .state()
        .into_iter()
        .filter(|cm| {
            let labels = cm.labels();
            cm.namespace().as_deref() == Some(ns)
                && labels.get(OWNER_LABEL) == Some(&owner)
                && labels
                    .get("app.kubernetes.io/component")
                    .map(String::as_str)
                    == Some("collector-config")
                && cm.name_any() != current
        })
        .collect();
    // Newest first; names break ties within the same second.
    old.sort_by_key(|cm| {
        std::cmp::Reverse((
            cm.metadata.creation_timestamp.as_ref().map(|t| t.0),
            cm.name_any(),
        ))
    });
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for cm in old.into_iter().skip(KEEP_OLD_CONFIG_MAPS) {
        tracing::info!(config_map = %cm.name_any(), "pruning an old collector config");
        ctx.metrics.wrote("delete", "ConfigMap");
        match api.delete(&cm.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How soon an app whose child names are taken looks again (the other object is not watched:
/// its removal sends no event).
pub const CONFLICT_RETRY: Duration = Duration::from_secs(30);

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
    };
    ctx.metrics.failed(reason.clone());
    let delay = backoff(failures);
    tracing::warn!(%error, %reason, app = %status::key(&app), failures, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("stop signal received: finishing reconciles");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_backoff_doubles_to_its_cap_and_resets() {
        use kube::runtime::utils::Backoff;
        let mut b = WatchBackoff::default();
        let ms: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }

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
