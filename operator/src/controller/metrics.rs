//! The operator's own signals: `/healthz`, `/readyz` and Prometheus `/metrics` on one port.
//!
//! Metrics (all prefixed `tracedapp_`):
//! - `reconciles_total{result="ok|invalid|error"}`: finished passes.
//! - `reconcile_errors_total{reason}`: failed passes by the API's reason (`Conflict`,
//!   `Forbidden`, ...) or `Transport` when the API server could not be reached.
//! - `reconcile_duration_seconds`: a histogram of pass durations.
//! - `api_writes_total{verb,kind}`: every write we send (apply, delete, event); a steady state
//!   adds none.
//! - `leader`: 1 while this replica reconciles (always 1 without `--leader-elect`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: &'static str,
    kind: &'static str,
}

/// Counters shared by every reconcile, and the health flags the probes read.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<ReasonLabel, Counter>,
    duration: Histogram,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    export_reads: Family<ResultLabel, Counter>,
    export_rounds: Histogram,
    /// Set once this replica can do its job: caches synced (leader) or waiting for the lease.
    ready: AtomicBool,
    /// Watch caches whose first list has not arrived yet.
    syncing: Arc<AtomicUsize>,
}

/// One watch cache on its way to its first full list; see [`Metrics::cache_syncing`].
#[derive(Debug)]
pub struct CacheSync {
    done: AtomicBool,
    syncing: Arc<AtomicUsize>,
    metrics_ready: Arc<Metrics>,
}

impl CacheSync {
    /// The first full list arrived (later re-lists change nothing).
    pub fn done(&self) {
        if !self.done.swap(true, Ordering::Relaxed)
            && self.syncing.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.metrics_ready.set_ready(true);
            tracing::info!("watch caches synced: ready");
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tracedapp");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        // 1 ms to ~16 s.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let writes = Family::<WriteLabels, Counter>::default();
        let leader = Gauge::default();
        let export_reads = Family::<ResultLabel, Counter>::default();
        // 1 ms to ~16 s.
        let export_rounds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "reconciles",
            "Reconcile passes by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile pass",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the Kubernetes API, by verb and kind",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease and reconciles",
            leader.clone(),
        );
        registry.register(
            "export_reads",
            "Reads of collectors' own metrics for export health, by result (ok, error)",
            export_reads.clone(),
        );
        registry.register(
            "export_round_duration_seconds",
            "Duration of one round of export-health reads",
            export_rounds.clone(),
        );
        Self {
            registry,
            export_reads,
            export_rounds,
            reconciles,
            errors,
            duration,
            writes,
            leader,
            ready: AtomicBool::new(false),
            syncing: Arc::default(),
        }
    }
}

impl Metrics {
    /// A finished pass: `result` is `ok`, `invalid` or `error`.
    pub fn reconciled(&self, result: &'static str, seconds: f64) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.duration.observe(seconds);
    }

    pub fn failed(&self, reason: String) {
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// One read of a collector's metrics.
    pub fn export_read(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.export_reads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One round of export-health reads took `seconds`.
    pub fn export_round(&self, seconds: f64) {
        self.export_rounds.observe(seconds);
    }

    pub fn wrote(&self, verb: &'static str, kind: &'static str) {
        self.writes.get_or_create(&WriteLabels { verb, kind }).inc();
    }

    /// Registers a watch cache: `/readyz` answers 503 until every registered cache has
    /// called [`CacheSync::done`].
    pub fn cache_syncing(self: &Arc<Self>) -> CacheSync {
        self.syncing.fetch_add(1, Ordering::AcqRel);
        CacheSync {
            done: AtomicBool::new(false),
            syncing: self.syncing.clone(),
            metrics_ready: self.clone(),
        }
    }

    /// Whether every watch cache has had its first full list.
    pub fn caches_synced(&self) -> bool {
        self.syncing.load(Ordering::Acquire) == 0
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

/// The reason label for a failed pass.
pub fn reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.reason.is_empty() => status.reason.clone(),
        kube::Error::Api(status) => format!("Http{}", status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "Transport".into(),
        _ => "Other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.reconciled("ok", 0.003);
        m.reconciled("ok", 0.5);
        m.failed("Conflict".into());
        m.wrote("apply", "Deployment");
        m.set_leader(true);
        let text = m.render();
        for line in [
            "tracedapp_reconciles_total{result=\"ok\"} 2",
            "tracedapp_reconcile_errors_total{reason=\"Conflict\"} 1",
            "tracedapp_reconcile_duration_seconds_count 2",
            "tracedapp_api_writes_total{verb=\"apply\",kind=\"Deployment\"} 1",
            "tracedapp_leader 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
