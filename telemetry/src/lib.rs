//! `tracedapp-telemetry`: OpenTelemetry for a TracedApp process — the reference service and
//! the Lambda function alike. Small surface: configure from the standard `OTEL_*` variables
//! ([`config::TelemetryConfig::from_env`]), [`Telemetry::init`], [`Telemetry::shutdown`] with
//! its report of what was dropped.
//!
//! Tracer and meter providers exporting over OTLP, propagators (W3C, baggage, X-Ray), JSON logs
//! with trace ids.
//!
//! Why spans go through an exporter of our own (`otlp.rs` and `wire.rs`) when
//! `opentelemetry-otlp` also exports them: `opentelemetry-otlp` 0.33 clones every batch,
//! converts each span into owned protobuf structs (every key and value copied) and encodes them
//! with `prost` on a Tokio worker. Ours writes the `ExportTraceServiceRequest` straight from the
//! SDK's `SpanData` into one buffer of the exact size — byte for byte what `prost` writes (a
//! unit test decodes and compares) — and keeps what the SDK's gave (retries of the codes the
//! OTLP spec names, backoff within `OTEL_EXPORTER_OTLP_TIMEOUT`, headers, gzip). Measured on
//! the service (BENCHMARKS.md, "Spans encoded straight from `SpanData`"): all CPU per request
//! 0.90 of before (10 of 12 paired rounds), requests per second 1.07, peak RSS 17–18 MiB
//! against 19–22. It also adds what the SDK's lacked: lanes that never lose a span to an export
//! in flight at shutdown, a queue bounded in bytes, batches split below the receiver's limit,
//! and every drop counted. Metrics stay on `opentelemetry-otlp`.
//!
//! Guarantees:
//! - Recording a span never waits on the network: ended spans go to a bounded queue that a
//!   background worker exports. When the queue is full (collector down or slow) the span is
//!   dropped and counted, never blocked on.
//! - Every dropped span is counted in the `app.telemetry.spans.dropped` counter (by `reason`)
//!   and reported by at most one warning line every [`DROP_LOG_INTERVAL`].
//! - [`Telemetry::shutdown`] exports everything still queued, bounded by a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::TelemetryConfig;

pub mod config;
mod export;
pub mod http_client;
mod logs;
mod otlp;
mod providers;
mod wire;

pub use export::DROP_LOG_INTERVAL;
use export::DropCounter;
use logs::log_layer;
use providers::{meter_provider, propagator, resource, tracer_provider};

/// Log filter used when `RUST_LOG` is unset. The SDK's own per-batch error lines are silenced:
/// drops are reported by our counter and rate-limited warning instead.
const DEFAULT_LOG_FILTER: &str =
    "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,h2=warn,tonic=warn";

/// Running telemetry: keep it alive for the life of the process, then call [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    drops: Arc<DropCounter>,
}

/// Extra choices that are not `OTEL_*` variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct TelemetryOptions {
    /// Make trace ids whose first 4 bytes are the start time, as X-Ray's own SDKs do.
    pub xray_trace_ids: bool,
    /// Write logs as JSON lines (otherwise human-readable).
    pub json_logs: bool,
    /// Export spans only, no metrics (the Lambda function: its collector layer has no
    /// exporter for them).
    pub traces_only: bool,
}

/// A handle that exports every span ended so far: [`SpanFlusher::flush`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpanFlusher {
    provider: SdkTracerProvider,
}

impl SpanFlusher {
    /// Exports every span ended so far and returns when the collector has answered (or the
    /// SDK's 5 s flush limit passed). Blocking: call it from `spawn_blocking`, and bound the
    /// wait yourself.
    pub fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }
}

/// Why the set-up failed (exporters are built lazily, so an unreachable collector is not one).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP span exporter for {endpoint}: {source}")]
    SpanExporter {
        endpoint: String,
        source: otlp::BuildError,
    },
    #[error("cannot build the OTLP metric exporter for {endpoint}: {source}")]
    MetricExporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

impl Telemetry {
    /// Installs the global propagator, tracer and meter providers and the `tracing` subscriber.
    /// Must run inside a Tokio runtime (the gRPC exporter's channel is spawned on it).
    pub fn init(
        config: &TelemetryConfig,
        options: TelemetryOptions,
    ) -> Result<Self, TelemetryError> {
        global::set_text_map_propagator(propagator(&config.propagators));
        let drops = Arc::new(DropCounter::default());
        let filter = || {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
        };
        let logs = || log_layer(options.json_logs);

        if config.disabled {
            Registry::default().with(filter()).with(logs()).try_init()?;
            return Ok(Self {
                drops,
                ..Self::default()
            });
        }

        // The subscriber below needs the tracer the exporters feed; while they are built (and
        // may warn, e.g. of missing CA certificates) a logs-only one speaks for them.
        let building =
            tracing::subscriber::set_default(Registry::default().with(filter()).with(logs()));
        let resource = resource(config);
        let tracer_provider = tracer_provider(config, options, resource.clone(), drops.clone())?;
        let meter_provider = if options.traces_only {
            None
        } else {
            Some(meter_provider(config, resource)?)
        };
        drop(building);
        if let Some(mp) = &meter_provider {
            global::set_meter_provider(mp.clone());
            drops.register_metric();
        }

        let tracer = tracer_provider.tracer("traced-service");
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_level(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            // busy_ns/idle_ns are not semantic-convention attributes.
            .with_tracked_inactivity(false)
            // `tracing` spans at INFO and above (e.g. `#[instrument]` in handlers) become
            // OpenTelemetry spans, children of the request's span.
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        Registry::default()
            .with(filter())
            .with(logs())
            .with(otel)
            .try_init()?;
        global::set_tracer_provider(tracer_provider.clone());

        Ok(Self {
            tracer_provider: Some(tracer_provider),
            meter_provider,
            drops,
        })
    }

    /// The handle that flushes spans on demand (`None` when telemetry is disabled).
    pub fn span_flusher(&self) -> Option<SpanFlusher> {
        self.tracer_provider
            .clone()
            .map(|provider| SpanFlusher { provider })
    }

    /// Spans dropped so far (queue full or export failed).
    pub fn dropped_spans(&self) -> u64 {
        self.drops.total()
    }

    /// Exports what is queued and stops the exporters, giving up after `timeout`.
    /// Blocking: call it from `spawn_blocking` or outside the runtime.
    pub fn shutdown(self, timeout: Duration) {
        let started = Instant::now();
        if let Some(tp) = self.tracer_provider
            && let Err(e) = tp.shutdown_with_timeout(timeout)
        {
            tracing::warn!(error = %e, "trace export did not finish cleanly at shutdown");
        }
        let left = timeout.saturating_sub(started.elapsed());
        if let Some(mp) = self.meter_provider
            && let Err(e) = mp.shutdown_with_timeout(left.max(Duration::from_millis(100)))
        {
            tracing::warn!(error = %e, "metric export did not finish cleanly at shutdown");
        }
        let dropped = self.drops.total();
        if dropped > 0 {
            let (queue_full, export_failed) = self.drops.by_reason();
            tracing::warn!(
                dropped_spans = dropped,
                queue_full,
                export_failed,
                "some spans were dropped during this run"
            );
        }
    }
}
