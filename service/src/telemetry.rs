//! OpenTelemetry set-up: tracer and meter providers exporting over OTLP, propagators, logs.
//!
//! Guarantees:
//! - Recording a span never waits on the network: ended spans go to a bounded queue that a
//!   background worker exports. When the queue is full (collector down or slow) the span is
//!   dropped and counted, never blocked on.
//! - Every dropped span is counted in the `app.telemetry.spans.dropped` counter (by `reason`)
//!   and reported by at most one warning line every [`DROP_LOG_INTERVAL`].
//! - [`Telemetry::shutdown`] exports everything still queued, bounded by a timeout.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, RandomIdGenerator, Sampler, SdkTracerProvider,
    SpanData, SpanProcessor,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{PropagatorChoice, Protocol, SamplerChoice, TelemetryConfig};

/// At most one "spans dropped" warning per this interval.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

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
}

/// Why the set-up failed (exporters are built lazily, so an unreachable collector is not one).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP span exporter for {endpoint}: {source}")]
    SpanExporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
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
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
        let logs = log_layer(options.json_logs);

        if config.disabled {
            Registry::default().with(filter).with(logs).try_init()?;
            return Ok(Self {
                drops,
                ..Self::default()
            });
        }

        let resource = resource(config);
        let tracer_provider = tracer_provider(config, options, resource.clone(), drops.clone())?;
        let meter_provider = meter_provider(config, resource)?;
        global::set_meter_provider(meter_provider.clone());
        drops.register_metric();

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
            .with(filter)
            .with(logs)
            .with(otel)
            .try_init()?;
        global::set_tracer_provider(tracer_provider.clone());

        Ok(Self {
            tracer_provider: Some(tracer_provider),
            meter_provider: Some(meter_provider),
            drops,
        })
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
            tracing::warn!(
                dropped_spans = dropped,
                "some spans were dropped during this run"
            );
        }
    }
}

fn propagator(choices: &[PropagatorChoice]) -> TextMapCompositePropagator {
    let list = choices
        .iter()
        .map(|c| -> Box<dyn TextMapPropagator + Send + Sync> {
            match c {
                PropagatorChoice::TraceContext => Box::new(TraceContextPropagator::new()),
                PropagatorChoice::Baggage => Box::new(BaggagePropagator::new()),
                PropagatorChoice::Xray => Box::new(XrayPropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_service_name(config.service_name.clone())
        .build()
}

fn sampler(choice: SamplerChoice) -> Sampler {
    let parent = |root: Sampler| Sampler::ParentBased(Box::new(root));
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBasedAlwaysOn => parent(Sampler::AlwaysOn),
        SamplerChoice::ParentBasedAlwaysOff => parent(Sampler::AlwaysOff),
        SamplerChoice::ParentBasedTraceIdRatio(r) => parent(Sampler::TraceIdRatioBased(r)),
    }
}

fn tracer_provider(
    config: &TelemetryConfig,
    options: TelemetryOptions,
    resource: Resource,
    drops: Arc<DropCounter>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = config.traces.endpoint.clone();
    let built = match config.traces.protocol {
        Protocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&endpoint)
            .build(),
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&endpoint)
            .build(),
    };
    let exporter = built.map_err(|source| TelemetryError::SpanExporter {
        endpoint: endpoint.clone(),
        source,
    })?;

    // The SDK's queue gets room for one extra batch so that it never drops on its own: our
    // `BoundedProcessor` admits at most `span_queue_size` spans that are not yet exported.
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.span_queue_size + 512)
        .build();
    let inner = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        drops: drops.clone(),
        endpoint,
    })
    .with_batch_config(batch)
    .build();
    let processor = BoundedProcessor {
        inner,
        capacity: config.span_queue_size,
        drops,
    };

    let builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config.sampler))
        .with_resource(resource);
    let builder = if options.xray_trace_ids {
        builder.with_id_generator(XrayIdGenerator::default())
    } else {
        builder.with_id_generator(RandomIdGenerator::default())
    };
    Ok(builder.build())
}

fn meter_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkMeterProvider, TelemetryError> {
    let endpoint = config.metrics.endpoint.clone();
    let built = match config.metrics.protocol {
        Protocol::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_endpoint(&endpoint)
            .build(),
        Protocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&endpoint)
            .build(),
    };
    let exporter = built.map_err(|source| TelemetryError::MetricExporter { endpoint, source })?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.metric_export_interval)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build())
}

/// Counts spans that never reach the collector and reports them without flooding the log.
#[derive(Debug, Default)]
struct DropCounter {
    queue_full: AtomicU64,
    export_failed: AtomicU64,
    /// Spans admitted to the export queue and not yet exported (or failed).
    in_flight: AtomicUsize,
    /// `queue_full + export_failed` at the time of the last warning.
    reported: AtomicU64,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

impl DropCounter {
    fn total(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed) + self.export_failed.load(Ordering::Relaxed)
    }

    fn dropped(&self, reason: &'static str, n: u64, hint: &dyn Fn() -> String) {
        let counter = match reason {
            "queue_full" => &self.queue_full,
            _ => &self.export_failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        let Ok(mut last) = self.last_warning.try_lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < DROP_LOG_INTERVAL) {
            return;
        }
        *last = Some(now);
        let total = self.total();
        let since = total - self.reported.swap(total, Ordering::Relaxed);
        let hint = hint();
        tracing::warn!(
            dropped_spans = since,
            dropped_total = total,
            queue_full = self.queue_full.load(Ordering::Relaxed),
            export_failed = self.export_failed.load(Ordering::Relaxed),
            "spans are being dropped: {hint}"
        );
    }

    /// Publishes the counts as the `app.telemetry.spans.dropped` observable counter.
    fn register_metric(self: &Arc<Self>) {
        let me = self.clone();
        global::meter("traced-service")
            .u64_observable_counter("app.telemetry.spans.dropped")
            .with_description("Spans that were not exported: queue full or export failed")
            .with_unit("{span}")
            .with_callback(move |o| {
                o.observe(
                    me.queue_full.load(Ordering::Relaxed),
                    &[KeyValue::new("reason", "queue_full")],
                );
                o.observe(
                    me.export_failed.load(Ordering::Relaxed),
                    &[KeyValue::new("reason", "export_failed")],
                );
            })
            .build();
    }
}

/// Admits a span to the batch processor only while fewer than `capacity` spans wait for export,
/// so that a full queue is a counted drop here rather than a silent one inside the SDK.
#[derive(Debug)]
struct BoundedProcessor {
    inner: BatchSpanProcessor,
    capacity: usize,
    drops: Arc<DropCounter>,
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .drops
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            let capacity = self.capacity;
            self.drops.dropped("queue_full", 1, &|| {
                format!(
                    "the export queue ({capacity} spans) is full; is the collector slow or down?"
                )
            });
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Wraps the OTLP exporter to release queue room and count failed batches.
struct CountingExporter<E> {
    inner: E,
    drops: Arc<DropCounter>,
    endpoint: String,
}

impl<E> fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingExporter")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for CountingExporter<E>
{
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.drops.in_flight.fetch_sub(n, Ordering::AcqRel);
        if let Err(e) = &result {
            self.drops.dropped("export_failed", n as u64, &|| {
                format!("export to {} failed: {e}", self.endpoint)
            });
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The log output. It is filtered to events only: spans are looked up when an event is written
/// (for `trace_id`/`span_id`), so pre-formatting every span's fields would be wasted work on the
/// request path.
fn log_layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let events_only = tracing_subscriber::filter::filter_fn(|meta| meta.is_event());
    if json {
        tracing_subscriber::fmt::layer()
            .event_format(JsonWithTraceIds)
            .with_writer(std::io::stderr)
            .with_filter(events_only)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_filter(events_only)
            .boxed()
    }
}

/// One JSON object per line: time, level, message, the event's fields, and the `trace_id` and
/// `span_id` of the span the event happened in, so a log line leads to its trace.
struct JsonWithTraceIds;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonWithTraceIds
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut fields = serde_json::Map::new();
        fields.insert("timestamp".into(), humantime_now().into());
        fields.insert("level".into(), event.metadata().level().as_str().into());
        fields.insert("target".into(), event.metadata().target().into());
        event.record(&mut JsonVisitor(&mut fields));
        // The innermost span: a `tracing` span bridged to OpenTelemetry if one is current,
        // else the OpenTelemetry context attached around the request (see `observe`).
        let cx = match ctx.lookup_current() {
            Some(span) => {
                fields.insert("span".into(), span.name().into());
                tracing::dispatcher::get_default(|d| {
                    tracing_opentelemetry::get_otel_context(&span.id(), d)
                })
                .unwrap_or_else(Context::current)
            }
            None => Context::current(),
        };
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            fields.insert("trace_id".into(), sc.trace_id().to_string().into());
            fields.insert("span_id".into(), sc.span_id().to_string().into());
        }
        let line = serde_json::Value::Object(fields).to_string();
        writeln!(writer, "{line}")
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without a date-time dependency.
fn humantime_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let ts = humantime_now();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(
            ts.starts_with("20") && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }

    #[test]
    fn drop_warnings_are_rate_limited_but_every_drop_is_counted() {
        let drops = DropCounter::default();
        let hints = std::sync::atomic::AtomicUsize::new(0);
        let hint = || {
            hints.fetch_add(1, Ordering::Relaxed);
            String::new()
        };
        for _ in 0..1000 {
            drops.dropped("queue_full", 1, &hint);
        }
        drops.dropped("export_failed", 512, &hint);
        assert_eq!(drops.total(), 1512);
        assert_eq!(hints.load(Ordering::Relaxed), 1, "one warning per interval");
    }
}
