//! The process around the passes: one kube-runtime controller per watched namespace (or one
//! for all), each with label-selected watch caches of the children and pods; optional leader
//! election on a Lease; `/healthz`, `/readyz`, `/metrics`; a graceful stop on SIGTERM/SIGINT.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracedapp_api::spec::TracedApp;

use super::metrics::{self, Metrics};
use super::reconcile::{error_policy, reconcile};
use super::{Context, leader};
use tracedapp_k8s::labels::{MANAGER, OWNER_LABEL};

/// How the controller runs (what `tracedapp-operator`'s flags set).
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
    /// Where we run (the children depend on our namespace).
    pub site: tracedapp_k8s::manifests::Site,
    /// How export health is sampled.
    pub export_health: super::health::Settings,
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
            options.site.clone(),
            options.export_health.clone(),
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
    site: tracedapp_k8s::manifests::Site,
    export_health: super::health::Settings,
    stop: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = namespace.as_deref();
    let children = || watcher::Config::default().labels(OWNER_LABEL);
    let (apps, app_events) = cached::<TracedApp>(&client, ns, watcher::Config::default(), &metrics);
    let (config_maps, cm_events) = cached::<ConfigMap>(&client, ns, children(), &metrics);
    let (accounts, sa_events) = cached::<ServiceAccount>(&client, ns, children(), &metrics);
    let (deployments, deploy_events) = cached::<Deployment>(&client, ns, children(), &metrics);
    let (services, svc_events) = cached::<Service>(&client, ns, children(), &metrics);
    let (network_policies, np_events) = cached::<NetworkPolicy>(&client, ns, children(), &metrics);
    // The app's pods carry the owner label too (it narrows the watch; ownership is decided by
    // the owner chain, through the ReplicaSets' metadata); their status says why they are not
    // ready.
    let (pods, pod_events) = cached::<Pod>(&client, ns, children(), &metrics);
    // Metadata only (`PartialObjectMeta`): owners and labels are all that is read.
    let (replica_sets, rs_events) =
        cached::<PartialObjectMeta<ReplicaSet>>(&client, ns, children(), &metrics);
    // Every object of the five child kinds, labelled or not, metadata only: whose a name is
    // (the ownership check before a child is applied) is read here, not asked per new app.
    let all = watcher::Config::default;
    let (cm_names, cm_names_events) =
        cached::<PartialObjectMeta<ConfigMap>>(&client, ns, all(), &metrics);
    let (sa_names, sa_names_events) =
        cached::<PartialObjectMeta<ServiceAccount>>(&client, ns, all(), &metrics);
    let (deploy_names, deploy_names_events) =
        cached::<PartialObjectMeta<Deployment>>(&client, ns, all(), &metrics);
    let (svc_names, svc_names_events) =
        cached::<PartialObjectMeta<Service>>(&client, ns, all(), &metrics);
    let (np_names, np_names_events) =
        cached::<PartialObjectMeta<NetworkPolicy>>(&client, ns, all(), &metrics);
    let names = super::ownership::Names {
        config_maps: cm_names,
        accounts: sa_names,
        deployments: deploy_names,
        services: svc_names,
        network_policies: np_names,
    };
    let chain = super::owned::Chain {
        deployments: deployments.clone(),
        replica_sets,
        pods,
    };
    let export = Arc::new(super::health::ExportHealth::new(export_health));
    let (export_trigger, export_passes) = futures::channel::mpsc::channel(1024);
    let sampler = tokio::spawn(super::health::sampler::run(
        export.clone(),
        apps.clone(),
        chain.clone(),
        metrics.clone(),
        export_trigger,
        stop.clone(),
    ));
    // Their own task: these caches are read, not triggers of passes.
    let read_only = futures::stream::select_all([
        rs_events.map(|_| ()).boxed(),
        cm_names_events.map(|_| ()).boxed(),
        sa_names_events.map(|_| ()).boxed(),
        deploy_names_events.map(|_| ()).boxed(),
        svc_names_events.map(|_| ()).boxed(),
        np_names_events.map(|_| ()).boxed(),
    ]);
    let read_only_watches = tokio::spawn(read_only.for_each(|()| std::future::ready(())));
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: metrics.clone(),
        recorder,
        config_maps,
        accounts,
        deployments,
        services,
        network_policies,
        names,
        chain,
        site,
        export,
        failures: Mutex::default(),
        last_writes: Mutex::default(),
    });
    let controller = Controller::for_stream(app_events.applied_objects(), apps)
        .owns_stream(cm_events.touched_objects())
        .owns_stream(sa_events.touched_objects())
        .owns_stream(deploy_events.touched_objects())
        .owns_stream(svc_events.touched_objects())
        .owns_stream(np_events.touched_objects())
        // Apps whose ExportHealthy condition would change.
        .reconcile_on(export_passes)
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
    sampler.abort();
    read_only_watches.abort();
    tracing::info!(namespace = ns_label(ns), "controller stopped");
}

fn ns_label(ns: Option<&str>) -> &str {
    ns.unwrap_or("(all)")
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
}
