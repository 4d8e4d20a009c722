//! The bounded export: a span is admitted to the SDK's batch queue only while fewer than the
//! configured number wait for export, and their estimated size stays under the configured
//! bytes, so recording a span never waits on the network and a collector outage cannot grow
//! the process without bound, however large each span is. Attribute values longer than the
//! limit are cut before a span is admitted. A span that is not admitted, or whose batch fails,
//! is counted by [`DropCounter`], which also warns at most once every [`DROP_LOG_INTERVAL`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::{Array, Context, KeyValue, StringValue, Value, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};

/// At most one "spans dropped" warning per this interval.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts spans that never reach the collector and reports them without flooding the log.
#[derive(Debug, Default)]
pub(crate) struct DropCounter {
    queue_full: AtomicU64,
    export_failed: AtomicU64,
    /// `queue_full + export_failed` at the time of the last warning.
    reported: AtomicU64,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

impl DropCounter {
    pub(crate) fn total(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed) + self.export_failed.load(Ordering::Relaxed)
    }

    /// `(refused by the full queue, lost in a failed export)`.
    pub(crate) fn by_reason(&self) -> (u64, u64) {
        (
            self.queue_full.load(Ordering::Relaxed),
            self.export_failed.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn dropped(&self, reason: &'static str, n: u64, hint: &dyn Fn() -> String) {
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
    pub(crate) fn register_metric(self: &Arc<Self>) {
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

/// One export lane: a batch processor, and how many of its spans are not yet exported (its
/// exporter, an [`OtlpSpanExporter`](super::otlp::OtlpSpanExporter), gives them back).
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) processor: BatchSpanProcessor,
    pub(crate) in_flight: Arc<AtomicUsize>,
}

/// Admits a span to a lane's batch processor only while fewer than the lane's share of
/// `capacity` spans wait there and all waiting spans weigh less than `max_bytes` (as
/// [`span_size`] estimates them), so that a full queue is a counted drop here rather than a
/// silent one inside the SDK (whose queue is sized to the share, plus a batch), and memory is
/// bounded whatever the spans carry. String attribute values are first cut to
/// `value_limit` bytes.
///
/// Spans are dealt round-robin to the lanes, each a batch processor with an exporter of its
/// own: the SDK's processor exports one batch at a time, so its rate is a batch per round trip,
/// and on a busy machine a round trip is slow (measured: one lane dropped spans at 60k spans/s
/// on 2 cores). Lanes keep several batches in flight.
#[derive(Debug)]
pub(crate) struct BoundedProcessor {
    lanes: Vec<Lane>,
    next: AtomicUsize,
    capacity: usize,
    /// Estimated bytes of the spans waiting in every lane (the exporters give them back).
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    value_limit: usize,
    drops: Arc<DropCounter>,
}

/// How a [`BoundedProcessor`] bounds what it holds.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// Spans waiting at most, over all lanes.
    pub(crate) capacity: usize,
    /// Their estimated bytes at most, and the count of them now (shared with the exporters).
    pub(crate) max_bytes: usize,
    pub(crate) queued_bytes: Arc<AtomicUsize>,
    /// Longest string attribute value kept, in bytes.
    pub(crate) value_limit: usize,
}

/// Each lane's share of a queue of `capacity` spans.
pub(crate) fn lane_share(capacity: usize, lanes: usize) -> usize {
    capacity.div_ceil(lanes.max(1))
}

impl BoundedProcessor {
    pub(crate) fn new(lanes: Vec<Lane>, bounds: Bounds, drops: Arc<DropCounter>) -> Self {
        assert!(!lanes.is_empty(), "at least one export lane");
        Self {
            lanes,
            next: AtomicUsize::new(0),
            capacity: bounds.capacity,
            queued_bytes: bounds.queued_bytes,
            max_bytes: bounds.max_bytes,
            value_limit: bounds.value_limit,
            drops,
        }
    }

    /// Takes `size` bytes of the byte budget, if they fit.
    fn reserve_bytes(&self, size: usize) -> bool {
        let max = self.max_bytes;
        self.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_add(size).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// The next lane in turn with room for a span (a slow lane is passed over), if any.
    fn admit(&self) -> Option<&Lane> {
        let share = lane_share(self.capacity, self.lanes.len());
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.lanes.len())
            .map(|k| &self.lanes[(start + k) % self.lanes.len()])
            .find(|lane| {
                lane.in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < share).then_some(n + 1)
                    })
                    .is_ok()
            })
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {
        // The batch processor does nothing at start.
    }

    fn on_end(&self, mut span: SpanData) {
        limit_values(&mut span, self.value_limit);
        let size = span_size(&span);
        if self.reserve_bytes(size) {
            if let Some(lane) = self.admit() {
                lane.processor.on_end(span);
                return;
            }
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        }
        let (capacity, max_bytes) = (self.capacity, self.max_bytes);
        self.drops.dropped("queue_full", 1, &|| {
            format!(
                "the export queue ({capacity} spans, {} MiB) is full; is the collector slow or \
                 down?",
                max_bytes / (1024 * 1024)
            )
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        let results: Vec<OTelSdkResult> = self
            .lanes
            .iter()
            .map(|l| l.processor.force_flush())
            .collect();
        results.into_iter().collect()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // The lanes flush side by side, each within the whole timeout.
        let results: Vec<OTelSdkResult> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .lanes
                .iter()
                .map(|l| s.spawn(move || l.processor.shutdown_with_timeout(timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                            "an export lane panicked at shutdown".into(),
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }

    fn set_resource(&mut self, resource: &Resource) {
        for l in &mut self.lanes {
            l.processor.set_resource(resource);
        }
    }
}

/// A span's size as the exporter will encode it, roughly (every string and a fixed allowance
/// per field): what the byte bound on the queue counts. The exporter computes the same for the
/// spans it gives back.
pub(crate) fn span_size(span: &SpanData) -> usize {
    const SPAN: usize = 96;
    const ENTRY: usize = 8;
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.as_str().len(),
            Value::Array(Array::String(a)) => a.iter().map(|s| s.as_str().len() + 2).sum(),
            Value::Array(Array::Bool(a)) => a.len() * 2,
            Value::Array(Array::I64(a)) => a.len() * 10,
            Value::Array(Array::F64(a)) => a.len() * 9,
            _ => 10,
        }
    }
    fn attributes(a: &[KeyValue]) -> usize {
        a.iter()
            .map(|kv| kv.key.as_str().len() + value(&kv.value) + ENTRY)
            .sum()
    }
    SPAN + span.name.len()
        + attributes(&span.attributes)
        + span
            .events
            .events
            .iter()
            .map(|e| SPAN / 4 + e.name.len() + attributes(&e.attributes))
            .sum::<usize>()
        + span
            .links
            .links
            .iter()
            .map(|l| {
                SPAN / 2 + l.span_context.trace_state().header().len() + attributes(&l.attributes)
            })
            .sum::<usize>()
}

/// Cuts every string attribute value of `span` (its own, its events' and its links') to at
/// most `limit` bytes, at a character boundary.
pub(crate) fn limit_values(span: &mut SpanData, limit: usize) {
    fn cut(s: &StringValue, limit: usize) -> Option<StringValue> {
        let text = s.as_str();
        if text.len() <= limit {
            return None;
        }
        let end = (0..=limit)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        Some(StringValue::from(text[..end].to_owned()))
    }
    fn attributes(a: &mut [KeyValue], limit: usize) {
        for kv in a {
            match &mut kv.value {
                Value::String(s) => {
                    if let Some(shorter) = cut(s, limit) {
                        *s = shorter;
                    }
                }
                Value::Array(Array::String(values)) => {
                    for s in values {
                        if let Some(shorter) = cut(s, limit) {
                            *s = shorter;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    attributes(&mut span.attributes, limit);
    for e in span.events.events.iter_mut() {
        attributes(&mut e.attributes, limit);
    }
    for l in span.links.links.iter_mut() {
        attributes(&mut l.attributes, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "exception",
            std::time::SystemTime::UNIX_EPOCH,
            attributes.clone(),
            0,
        ));
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    /// Long string values are cut at a character boundary, in the span and its events; other
    /// values are left alone; the size estimate follows.
    #[test]
    fn attribute_values_are_cut_to_the_limit() {
        let long = "é".repeat(3000); // 6,000 bytes
        let mut s = span(vec![
            KeyValue::new("user_agent.original", long.clone()),
            KeyValue::new("short", "ok"),
            KeyValue::new("n", 7_i64),
            KeyValue::new(
                "list",
                Value::Array(Array::String(vec![StringValue::from(long.clone())])),
            ),
        ]);
        let before = span_size(&s);
        assert!(before > 3 * 6000, "{before}");
        limit_values(&mut s, 4095);
        let text = |v: &Value| match v {
            Value::String(s) => s.as_str().to_owned(),
            Value::Array(Array::String(a)) => a[0].as_str().to_owned(),
            other => other.to_string(),
        };
        assert_eq!(
            text(&s.attributes[0].value).len(),
            4094,
            "cut before a split 'é'"
        );
        assert_eq!(text(&s.attributes[1].value), "ok");
        assert_eq!(text(&s.attributes[2].value), "7");
        assert_eq!(text(&s.attributes[3].value).len(), 4094);
        assert_eq!(text(&s.events.events[0].attributes[0].value).len(), 4094);
        let after = span_size(&s);
        // Four values of 4,094 bytes (two in the span, two in its event), and the rest.
        assert!(after > 4 * 4094 && after < 4 * 4094 + 1024, "{after}");
    }

    /// A span that does not fit the byte budget is refused and counted; the budget frees up as
    /// exporters give bytes back.
    #[test]
    fn the_byte_budget_bounds_what_waits() {
        let bounds = Bounds {
            capacity: 100,
            max_bytes: 10_000,
            queued_bytes: Arc::default(),
            value_limit: 100_000,
        };
        let drops = Arc::new(DropCounter::default());
        let p = BoundedProcessor {
            lanes: Vec::new(),
            next: AtomicUsize::new(0),
            capacity: bounds.capacity,
            queued_bytes: bounds.queued_bytes.clone(),
            max_bytes: bounds.max_bytes,
            value_limit: bounds.value_limit,
            drops,
        };
        assert!(p.reserve_bytes(6_000));
        assert!(!p.reserve_bytes(6_000), "over the budget");
        assert!(p.reserve_bytes(4_000), "exactly to the budget");
        bounds.queued_bytes.fetch_sub(6_000, Ordering::AcqRel);
        assert!(p.reserve_bytes(6_000));
        assert!(!p.reserve_bytes(usize::MAX), "no overflow");
    }
}
