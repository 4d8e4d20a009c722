//! Export health: is each TracedApp's telemetry arriving where it should?
//!
//! Flow: [`sampler::run`] reads the collector sidecar's own metrics from a few Ready pods of
//! each app — its own pods, by owner chain, not by a label anyone can set — now and then
//! ([`Settings`]: an interval with jitter, a cap on reads in flight and per app) → [`counters`]
//! turns each text into per-exporter counts as soon as it arrives, for the exporters the app's
//! configuration renders only → [`window`] keeps what changed over a window → after each round
//! the sampler judges every app and publishes the verdicts → the verdict goes into the
//! `ExportHealthy` condition at the app's next pass; the sampler asks for that pass only when
//! the condition would change, so a healthy steady state writes nothing.
//!
//! Guarantees against a hostile collector (the tenant picks its image): a reply is read up to
//! a size cap and within a timeout, parsed at once and dropped; what is kept per app is bounded
//! (pods, deltas, exporters); sums saturate. A reconcile only reads a published verdict under a
//! short lock: parsing and judging never hold a lock a reconcile takes, so one tenant's pods
//! cannot delay another tenant's pass.

pub use tracedapp_api::health::counters;
pub mod sampler;
pub use tracedapp_api::health::window;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracedapp_api::TracedApp;
use tracedapp_api::spec::{Condition, ExportTotals};

pub use window::{History, Rules, Verdict};

use super::conditions::{ConditionType, condition_with};

/// How export health is sampled and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Off: no pod is read and no `ExportHealthy` condition is written.
    pub enabled: bool,
    /// Time between two rounds of reads (each round is shifted by up to ±20 %).
    pub interval: Duration,
    /// Reads in flight at once, over all apps.
    pub max_in_flight: usize,
    /// Pods read per app in one round.
    pub pods_per_app: usize,
    /// How long one read may take.
    pub timeout: Duration,
    pub rules: Rules,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(30),
            max_in_flight: 8,
            pods_per_app: 2,
            timeout: Duration::from_secs(2),
            rules: Rules::default(),
        }
    }
}

/// The reads and verdicts of every app one controller looks after.
#[derive(Debug)]
pub struct ExportHealth {
    pub settings: Settings,
    /// Reads per app (`namespace/name`): the sampler's alone; a reconcile never takes this lock.
    histories: Mutex<HashMap<String, History>>,
    /// The verdict per app, judged by the sampler after each round: all a reconcile reads.
    verdicts: Mutex<HashMap<String, Verdict>>,
    started: Instant,
}

impl ExportHealth {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            histories: Mutex::default(),
            verdicts: Mutex::default(),
            started: Instant::now(),
        }
    }

    /// Records a read of `pod`'s collector for the app `key` and judges it again (the
    /// sampler's steps, for tests).
    #[cfg(test)]
    pub(crate) fn record(&self, key: &str, pod: &str, at: Instant, text: &str) {
        let expected: Vec<String> = counters::parse_any_exporter(text);
        let mut histories = self.histories.lock().unwrap();
        let history = histories.entry(key.to_owned()).or_default();
        history.record(pod, at, counters::parse(text, &expected));
        let verdict = history.verdict(Instant::now(), &self.settings.rules);
        self.verdicts
            .lock()
            .unwrap()
            .insert(key.to_owned(), verdict);
    }

    /// Publishes `verdicts` (every app's, from one round), replacing the last round's.
    fn publish(&self, verdicts: HashMap<String, Verdict>) {
        if let Ok(mut published) = self.verdicts.lock() {
            *published = verdicts;
        }
    }

    /// What there is to say about the app `key` (`namespace/name`).
    pub fn news(&self, key: &str) -> ExportNews {
        if !self.settings.enabled {
            return ExportNews::Off;
        }
        let now = Instant::now();
        let verdict = match self.verdicts.lock() {
            Ok(verdicts) => verdicts.get(key).cloned().unwrap_or(Verdict::NoData),
            Err(_) => return ExportNews::Unchanged,
        };
        // After a restart the condition written before stands until a window of reads is in.
        let warming_up = now.duration_since(self.started) < self.settings.rules.window;
        match verdict {
            Verdict::NoData if warming_up => ExportNews::Unchanged,
            verdict => ExportNews::Verdict {
                verdict,
                window: self.settings.rules.window,
            },
        }
    }
}

/// What export health has to say about one app at a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportNews {
    /// Sampling is off: no `ExportHealthy` condition.
    Off,
    /// Nothing new: the condition stands (`Unknown` if there is none yet).
    Unchanged,
    Verdict {
        verdict: Verdict,
        window: Duration,
    },
}

/// The `ExportHealthy` condition and per-exporter totals for `app` given `news` (`None` when
/// sampling is off). Totals change with every read; while the condition says the same, the
/// ones written with it stay, so that a steady state writes nothing.
pub fn condition(app: &TracedApp, news: &ExportNews) -> Option<(Condition, Vec<ExportTotals>)> {
    let kind = ConditionType::ExportHealthy;
    let status = app.status.as_ref();
    let previous = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == kind.as_str()));
    let previous_exports = status.map(|s| s.exports.clone()).unwrap_or_default();
    let carry = |reason: &str, message: String| match previous {
        Some(c) => (c.clone(), previous_exports.clone()),
        None => (
            condition_with(app, kind, "Unknown", reason, &message),
            Vec::new(),
        ),
    };
    let (verdict, window) = match news {
        ExportNews::Off => return None,
        ExportNews::Unchanged => {
            return Some(carry(
                "NoData",
                "no collector of this app has been read yet".into(),
            ));
        }
        ExportNews::Verdict { verdict, window } => (verdict, window::words(*window)),
    };
    let (new, totals) = match verdict {
        Verdict::NoData => (
            condition_with(
                app,
                kind,
                "Unknown",
                "NoData",
                &format!("no collector of this app could be read in the last {window}"),
            ),
            Vec::new(),
        ),
        Verdict::Quiet => {
            return Some(carry(
                "NoTraffic",
                format!("nothing was exported in the last {window}"),
            ));
        }
        Verdict::Judged { failing, totals } if failing.is_empty() => (
            condition_with(
                app,
                kind,
                "True",
                "Exporting",
                &format!("every exporter delivered what it was given in the last {window}"),
            ),
            totals.clone(),
        ),
        Verdict::Judged { failing, totals } => (
            condition_with(app, kind, "False", "ExportFailing", &failing.join("; ")),
            totals.clone(),
        ),
    };
    let exports = match previous {
        Some(p) if same(p, &new) => previous_exports,
        _ => totals,
    };
    Some((new, exports))
}

/// Whether a pass would change `app`'s `ExportHealthy` condition.
pub fn changes(app: &TracedApp, news: &ExportNews) -> bool {
    let Some((new, _)) = condition(app, news) else {
        return false;
    };
    let previous = app.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::ExportHealthy.as_str())
    });
    previous.is_none_or(|p| !same(p, &new))
}

fn same(a: &Condition, b: &Condition) -> bool {
    (&a.status, &a.reason, &a.message) == (&b.status, &b.reason, &b.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracedapp_api::fixtures::app;
    use tracedapp_api::spec::TracedAppStatus;

    fn judged(failing: &[&str], sent: i64) -> ExportNews {
        ExportNews::Verdict {
            verdict: Verdict::Judged {
                failing: failing.iter().map(|f| (*f).to_owned()).collect(),
                totals: vec![ExportTotals {
                    exporter: "awsxray".into(),
                    sent_spans: sent,
                    ..ExportTotals::default()
                }],
            },
            window: Duration::from_secs(300),
        }
    }

    fn with(app: TracedApp, c: Condition, exports: Vec<ExportTotals>) -> TracedApp {
        let mut a = app;
        a.status = Some(TracedAppStatus {
            conditions: vec![c],
            exports,
            ..TracedAppStatus::default()
        });
        a
    }

    #[test]
    fn no_news_is_unknown_until_a_verdict_and_off_is_no_condition() {
        let (c, exports) = condition(&app(), &ExportNews::Unchanged).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("Unknown", "NoData")
        );
        assert!(exports.is_empty());
        assert_eq!(condition(&app(), &ExportNews::Off), None);
    }

    #[test]
    fn totals_stay_as_written_while_the_condition_says_the_same() {
        let (first, exports) = condition(&app(), &judged(&[], 100)).unwrap();
        assert_eq!(
            (first.status.as_str(), first.reason.as_str()),
            ("True", "Exporting")
        );
        let a = with(app(), first.clone(), exports.clone());
        // More spans sent since: same condition, so nothing to write.
        let news = judged(&[], 5000);
        assert!(!changes(&a, &news));
        assert_eq!(condition(&a, &news).unwrap().1, exports);
        // Failing: a change, with the new totals and the message naming the exporter.
        let failing = judged(&["awsxray: 9 of 10 spans failed in the last 5 min"], 1);
        assert!(changes(&a, &failing));
        let (c, exports) = condition(&a, &failing).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ExportFailing")
        );
        assert_eq!(c.message, "awsxray: 9 of 10 spans failed in the last 5 min");
        assert_eq!(exports[0].sent_spans, 1);
    }

    #[test]
    fn quiet_keeps_what_was_said() {
        let (ok, exports) = condition(&app(), &judged(&[], 100)).unwrap();
        let a = with(app(), ok.clone(), exports);
        let quiet = ExportNews::Verdict {
            verdict: Verdict::Quiet,
            window: Duration::from_secs(300),
        };
        assert!(!changes(&a, &quiet));
        assert_eq!(condition(&a, &quiet).unwrap().0, ok);
    }

    #[test]
    fn reads_become_news_and_off_reads_nothing() {
        let health = ExportHealth::new(Settings::default());
        let t0 = Instant::now();
        let line = |n: u64| format!("otelcol_exporter_sent_spans{{exporter=\"awsxray\"}} {n}\n");
        health.record("demo/shop", "p", t0, &line(10));
        health.record("demo/shop", "p", t0, &line(30));
        assert!(matches!(
            health.news("demo/shop"),
            ExportNews::Verdict { verdict: Verdict::Judged { ref failing, .. }, .. } if failing.is_empty()
        ));
        // Just started, nothing read for this app: the old condition stands.
        assert_eq!(health.news("demo/other"), ExportNews::Unchanged);
        let off = ExportHealth::new(Settings {
            enabled: false,
            ..Settings::default()
        });
        assert_eq!(off.news("demo/shop"), ExportNews::Off);
    }
}
