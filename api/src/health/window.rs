//! One TracedApp's recent export counters, and the verdict they support.
//!
//! Each read of a pod's collector is compared with the previous read of the same pod; the
//! difference (what was sent and what failed in between) is kept for the window. A verdict
//! adds those up per exporter over the window:
//! - an exporter fails when its failed share of spans or of metric points reaches the
//!   threshold, or when it is stalled: batches wait in its queue and nothing was delivered
//!   across its recent reads (the exporter is still retrying; failures are counted only when it
//!   gives up, minutes later);
//! - with no read at all in the window there is no verdict ([`Verdict::NoData`]); with reads
//!   but nothing exported, nothing to judge ([`Verdict::Quiet`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::spec::ExportTotals;

use super::counters::Counters;

/// How verdicts are reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// How far back a verdict looks.
    pub window: Duration,
    /// Failed share (0 to 1) at which an exporter counts as failing.
    pub threshold: f64,
    /// An exporter whose queue holds batches and that delivered nothing for this long is
    /// stalled.
    pub stall_after: Duration,
}

/// What the counters say about an app's export.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No collector was read in the window.
    NoData,
    /// Collectors were read, but nothing was exported or failed: nothing to judge.
    Quiet,
    /// Per exporter, what happened in the window; `failing` describes the failing ones (empty
    /// when all delivered).
    Judged {
        failing: Vec<String>,
        totals: Vec<ExportTotals>,
    },
}

/// A read of one pod's collector, compared with the read before it.
#[derive(Debug, Clone)]
struct Delta {
    at: Instant,
    exporter: String,
    counters: Counters,
}

/// Pods whose last read one app keeps (the sampler reads a few per round; pods come and go).
pub const MAX_PODS: usize = 16;
/// Deltas one app keeps, oldest dropped first: a window of reads of a few pods and a few
/// exporters, whatever a reply or the settings say.
pub const MAX_DELTAS: usize = 2048;

/// One app's reads.
#[derive(Debug, Default)]
pub struct History {
    /// The last read of each pod.
    last: HashMap<String, (Instant, BTreeMap<String, Counters>)>,
    deltas: VecDeque<Delta>,
}

impl History {
    /// A read of `pod`'s collector at `at`. The first read of a pod is the baseline.
    pub fn record(&mut self, pod: &str, at: Instant, read: BTreeMap<String, Counters>) {
        if let Some((_, before)) = self.last.get(pod) {
            for (exporter, now) in &read {
                let counters = match before.get(exporter) {
                    Some(then) => now.since(then),
                    // An exporter that appeared (new config): everything it counted is new.
                    None => *now,
                };
                self.deltas.push_back(Delta {
                    at,
                    exporter: exporter.clone(),
                    counters,
                });
            }
            while self.deltas.len() > MAX_DELTAS {
                self.deltas.pop_front();
            }
        }
        if !self.last.contains_key(pod) && self.last.len() >= MAX_PODS {
            // The pod read longest ago makes room.
            if let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(p, _)| p.clone())
            {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(pod.to_owned(), (at, read));
    }

    /// Drops what is older than `window` before `now`, and the pods not read since then.
    pub fn expire(&mut self, now: Instant, window: Duration) {
        let recent = |at: &Instant| now.saturating_duration_since(*at) <= window;
        while self.deltas.front().is_some_and(|d| !recent(&d.at)) {
            self.deltas.pop_front();
        }
        self.last.retain(|_, (at, _)| recent(at));
    }

    /// Whether nothing is left to remember.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty() && self.deltas.is_empty()
    }

    /// The verdict at `now` (see the module docs).
    pub fn verdict(&self, now: Instant, rules: &Rules) -> Verdict {
        let in_window = |at: &Instant| now.saturating_duration_since(*at) <= rules.window;
        if !self.last.values().any(|(at, _)| in_window(at)) {
            return Verdict::NoData;
        }
        let mut sums: BTreeMap<&str, Counters> = BTreeMap::new();
        for d in self.deltas.iter().filter(|d| in_window(&d.at)) {
            let s = sums.entry(d.exporter.as_str()).or_default();
            s.add(&Counters {
                queued: 0,
                ..d.counters
            });
        }
        let mut failing = Vec::new();
        for (exporter, s) in &sums {
            let window = words(rules.window);
            for (failed, sent, what) in [
                (s.failed_spans, s.sent_spans, "spans"),
                (s.failed_points, s.sent_points, "metric points"),
            ] {
                let total = failed.saturating_add(sent);
                if failed > 0 && failed as f64 >= rules.threshold * total as f64 {
                    failing.push(format!(
                        "{exporter}: {} of {} {what} failed in the last {window}",
                        thousands(failed),
                        thousands(total)
                    ));
                }
            }
            if let Some(queued) = self.stalled(exporter, now, rules) {
                let batches = if queued == 1 { "batch" } else { "batches" };
                failing.push(format!(
                    "{exporter}: nothing delivered in the last {}, {queued} {batches} waiting \
                     to be retried",
                    words(rules.stall_after)
                ));
            }
        }
        let active = sums.values().any(|s| {
            s.sent_spans > 0 || s.failed_spans > 0 || s.sent_points > 0 || s.failed_points > 0
        });
        if failing.is_empty() && !active {
            return Verdict::Quiet;
        }
        let totals = sums
            .iter()
            .take(MAX_EXPORTS)
            .map(|(exporter, s)| {
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                ExportTotals {
                    exporter: (*exporter).to_owned(),
                    sent_spans: n(s.sent_spans),
                    failed_spans: n(s.failed_spans),
                    sent_metric_points: n(s.sent_points),
                    failed_metric_points: n(s.failed_points),
                }
            })
            .collect();
        failing.truncate(MAX_EXPORTS);
        Verdict::Judged { failing, totals }
    }

    /// The batches queued at the last read if `exporter` delivered nothing, with batches
    /// waiting, across every read of the last `rules.stall_after` (at least two).
    fn stalled(&self, exporter: &str, now: Instant, rules: &Rules) -> Option<u64> {
        let recent: Vec<&Delta> = self
            .deltas
            .iter()
            .filter(|d| d.exporter == exporter)
            .filter(|d| now.saturating_duration_since(d.at) <= rules.stall_after)
            .collect();
        let stalled = recent.len() >= 2
            && recent.iter().all(|d| {
                d.counters.queued > 0 && d.counters.sent_spans == 0 && d.counters.sent_points == 0
            });
        stalled.then(|| recent.last().map_or(0, |d| d.counters.queued))
    }
}

/// Exporters in a verdict and in `status.exports` at most (a TracedApp renders a handful).
pub const MAX_EXPORTS: usize = 8;

/// `1204` → `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `300 s` → `5 min`, `45 s` → `45 s`.
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        window: Duration::from_secs(300),
        threshold: 0.05,
        stall_after: Duration::from_secs(60),
    };

    fn read(exporter: &str, sent: u64, failed: u64, queued: u64) -> BTreeMap<String, Counters> {
        BTreeMap::from([(
            exporter.to_owned(),
            Counters {
                sent_spans: sent,
                failed_spans: failed,
                queued,
                ..Counters::default()
            },
        )])
    }

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn no_read_no_verdict_and_a_baseline_alone_says_nothing() {
        let t0 = Instant::now();
        let mut h = History::default();
        assert_eq!(h.verdict(t0, &RULES), Verdict::NoData);
        h.record("p", t0, read("awsxray", 100, 0, 0));
        assert_eq!(h.verdict(at(t0, 1), &RULES), Verdict::Quiet);
        assert_eq!(h.verdict(at(t0, 400), &RULES), Verdict::NoData, "too old");
    }

    #[test]
    fn failures_at_the_threshold_fail_with_counts_in_words() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("p", t0, read("awsxray", 0, 0, 0));
        h.record("p", at(t0, 30), read("awsxray", 106, 1204, 0));
        let Verdict::Judged { failing, totals } = h.verdict(at(t0, 31), &RULES) else {
            panic!()
        };
        assert_eq!(
            failing,
            ["awsxray: 1,204 of 1,310 spans failed in the last 5 min"]
        );
        assert_eq!((totals[0].sent_spans, totals[0].failed_spans), (106, 1204));
    }

    #[test]
    fn a_few_failures_below_the_threshold_are_healthy() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("p", t0, read("j", 0, 0, 0));
        h.record("p", at(t0, 30), read("j", 1000, 49, 0));
        assert!(
            matches!(h.verdict(at(t0, 31), &RULES), Verdict::Judged { failing, .. } if failing.is_empty())
        );
    }

    #[test]
    fn a_queue_that_does_not_drain_is_a_stall_before_any_failure_is_counted() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("p", t0, read("otlp_grpc/jaeger", 500, 0, 0));
        h.record("p", at(t0, 10), read("otlp_grpc/jaeger", 500, 0, 4));
        // One read with a queue: not yet (a burst may be draining).
        assert_eq!(h.verdict(at(t0, 11), &RULES), Verdict::Quiet);
        h.record("p", at(t0, 20), read("otlp_grpc/jaeger", 500, 0, 9));
        let Verdict::Judged { failing, .. } = h.verdict(at(t0, 21), &RULES) else {
            panic!()
        };
        assert_eq!(
            failing,
            [
                "otlp_grpc/jaeger: nothing delivered in the last 1 min, 9 batches waiting to be retried"
            ]
        );
        // Delivered again: healthy.
        h.record("p", at(t0, 80), read("otlp_grpc/jaeger", 900, 0, 0));
        h.record("p", at(t0, 90), read("otlp_grpc/jaeger", 950, 0, 0));
        assert!(
            matches!(h.verdict(at(t0, 91), &RULES), Verdict::Judged { failing, .. } if failing.is_empty())
        );
    }

    #[test]
    fn pods_add_up_and_a_restarted_collector_is_not_a_negative_count() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("a", t0, read("j", 100, 0, 0));
        h.record("b", t0, read("j", 5000, 0, 0));
        h.record("a", at(t0, 30), read("j", 150, 0, 0));
        h.record("b", at(t0, 30), read("j", 20, 0, 0));
        let Verdict::Judged { totals, .. } = h.verdict(at(t0, 31), &RULES) else {
            panic!()
        };
        assert_eq!(totals[0].sent_spans, 50 + 20);
    }

    #[test]
    fn expiry_forgets_old_reads_and_gone_pods() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("a", t0, read("j", 1, 0, 0));
        h.record("a", at(t0, 10), read("j", 2, 0, 0));
        h.expire(at(t0, 400), RULES.window);
        assert!(h.is_empty());
    }

    #[test]
    fn numbers_in_words() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(words(Duration::from_secs(300)), "5 min");
        assert_eq!(words(Duration::from_secs(45)), "45 s");
    }
}
