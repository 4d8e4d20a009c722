//! The collector's own export counters, read from its Prometheus text (`/metrics` on its
//! telemetry port): per exporter, what it sent and what it failed to send or could not queue,
//! for spans and for metric points, and how many batches wait in its queue.
//!
//! The text comes from a container the tenant chose (the collector image is theirs to pick), so
//! it is read as hostile: only the exporters the TracedApp's own configuration renders are
//! counted (a reply naming a million invented exporters costs one pass over its lines and
//! nothing kept), and every sum saturates.

use std::collections::BTreeMap;

/// One exporter's counters (cumulative since the collector started, except `queued`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent_spans: u64,
    /// Send failed after retries, or refused by a full queue.
    pub failed_spans: u64,
    pub sent_points: u64,
    pub failed_points: u64,
    /// Batches waiting in the sending queue (a gauge).
    pub queued: u64,
}

impl Counters {
    /// What happened between `earlier` and `self`. A counter that went down means the
    /// collector restarted: everything it counted since is new.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
        Counters {
            sent_spans: d(self.sent_spans, earlier.sent_spans),
            failed_spans: d(self.failed_spans, earlier.failed_spans),
            sent_points: d(self.sent_points, earlier.sent_points),
            failed_points: d(self.failed_points, earlier.failed_points),
            queued: self.queued,
        }
    }

    /// `self + other`, field by field, saturating (`queued` too: a gauge per series).
    pub fn add(&mut self, other: &Counters) {
        self.sent_spans = self.sent_spans.saturating_add(other.sent_spans);
        self.failed_spans = self.failed_spans.saturating_add(other.failed_spans);
        self.sent_points = self.sent_points.saturating_add(other.sent_points);
        self.failed_points = self.failed_points.saturating_add(other.failed_points);
        self.queued = self.queued.saturating_add(other.queued);
    }
}

/// Per exporter name (`otlp_grpc/jaeger`, `awsxray`, ...), from the collector's metrics text,
/// for the exporters in `expected` only (the ones the app's configuration renders). Series of
/// one exporter are added up (one per server address); other lines are ignored.
pub fn parse(text: &str, expected: &[String]) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((family, labels)) = series.split_once('{') else {
            continue;
        };
        let Some(exporter) = label(labels, "exporter") else {
            continue;
        };
        let Some(exporter) = expected.iter().find(|e| e.as_str() == exporter) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        add(out.entry(exporter.clone()).or_default(), family, value);
    }
    out
}

/// Adds `value` of the series `family` (a collector metric name, with or without `_total`) to
/// the counter it feeds; false for a family that feeds none. The one list of which metric is
/// which counter: the Prometheus text here, the EMF records `tracedapp ecs status` reads.
pub fn add(c: &mut Counters, family: &str, value: f64) -> bool {
    let family = family.strip_suffix("_total").unwrap_or(family);
    let field = match family {
        "otelcol_exporter_sent_spans" => &mut c.sent_spans,
        "otelcol_exporter_send_failed_spans" | "otelcol_exporter_enqueue_failed_spans" => {
            &mut c.failed_spans
        }
        "otelcol_exporter_sent_metric_points" => &mut c.sent_points,
        "otelcol_exporter_send_failed_metric_points"
        | "otelcol_exporter_enqueue_failed_metric_points" => &mut c.failed_points,
        "otelcol_exporter_queue_size" => &mut c.queued,
        _ => return false,
    };
    // `as` saturates: NaN is 0, a huge value is u64::MAX.
    *field = field.saturating_add(value.max(0.0) as u64);
    true
}

/// Every exporter a text names (for tests: the sampler counts the expected ones alone).
pub fn parse_any_exporter(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| label(l.split_once('{')?.1, "exporter"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `key="value"` in a label set.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As collector v0.161.0 serves it (recorded from the test collector).
    const TEXT: &str = r#"# HELP otelcol_exporter_sent_spans Number of spans successfully sent to destination.
# TYPE otelcol_exporter_sent_spans counter
otelcol_exporter_in_flight_requests{data_type="traces",exporter="otlp_grpc/jaeger"} 0
otelcol_exporter_queue_capacity{data_type="traces",exporter="otlp_grpc/jaeger"} 1000
otelcol_exporter_queue_size{data_type="traces",exporter="otlp_grpc/jaeger"} 3
otelcol_exporter_send_failed_spans{exporter="otlp_grpc/jaeger",server_address="127.0.0.1",server_port="1"} 20
otelcol_exporter_sent_spans{exporter="otlp_grpc/jaeger",server_address="127.0.0.1",server_port="1"} 0
otelcol_exporter_sent_spans_total{exporter="awsxray"} 1310
otelcol_exporter_enqueue_failed_spans_total{exporter="awsxray"} 4
otelcol_exporter_sent_metric_points{exporter="awsemf"} 52
otelcol_process_uptime{service_instance_id="x"} 12.5
"#;

    fn expected() -> Vec<String> {
        ["otlp_grpc/jaeger", "awsxray", "awsemf"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn reads_each_exporters_counters() {
        let c = parse(TEXT, &expected());
        assert_eq!(
            c["otlp_grpc/jaeger"],
            Counters {
                failed_spans: 20,
                queued: 3,
                ..Counters::default()
            }
        );
        assert_eq!(c["awsxray"].sent_spans, 1310);
        assert_eq!(c["awsxray"].failed_spans, 4);
        assert_eq!(c["awsemf"].sent_points, 52);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_restarted_collector_counts_from_zero() {
        let before = Counters {
            sent_spans: 100,
            ..Counters::default()
        };
        let after = Counters {
            sent_spans: 7,
            ..Counters::default()
        };
        assert_eq!(after.since(&before).sent_spans, 7);
        assert_eq!(before.since(&after).sent_spans, 93);
    }

    #[test]
    fn garbage_is_ignored() {
        let all = ["a".to_owned()];
        assert!(parse("not metrics\n{}\nx{exporter=\"a\"} NaNx\n", &all).is_empty());
    }

    /// A hostile reply: a million invented exporters are not kept, and counters near the top
    /// of the range add up without overflowing.
    #[test]
    fn invented_exporters_are_not_counted_and_sums_saturate() {
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!(
                "otelcol_exporter_sent_spans{{exporter=\"fake{i}\"}} 1\n"
            ));
        }
        for server in 0..3 {
            text.push_str(&format!(
                "otelcol_exporter_sent_spans{{exporter=\"awsxray\",server=\"{server}\"}} 1e300\n"
            ));
        }
        let c = parse(&text, &expected());
        assert_eq!(c.len(), 1, "{:?}", c.keys().take(3).collect::<Vec<_>>());
        assert_eq!(c["awsxray"].sent_spans, u64::MAX);
        let mut sum = c["awsxray"];
        sum.add(&c["awsxray"]);
        assert_eq!(sum.sent_spans, u64::MAX);
    }
}
