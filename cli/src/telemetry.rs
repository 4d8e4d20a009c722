//! Export health on ECS: the collectors' own counters, which each task's collector sends to
//! CloudWatch Logs as EMF (`tracedapp_api::collector::ecs_config`), read back and judged with
//! the operator's own rules and words (`ExportHealthy` on Kubernetes): per exporter, what was
//! sent and what failed in the window, failing at 5 % failed or when nothing was delivered
//! while batches waited.
//!
//! The records hold deltas (the EMF exporter turns cumulative counters into differences
//! between its pushes); per collector (`service.instance.id`) they are added up again in time
//! order, from zero, into the cumulative reads the operator's history expects.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracedapp_api::TracedApp;
use tracedapp_api::health::Rules;
use tracedapp_api::health::counters::{self, Counters};
use tracedapp_api::health::window::{History, Verdict, words};

use crate::aws_call::{Caller, Service};

/// What the counters say, in `ExportHealthy`'s words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `Some(true)`: every exporter delivered; `Some(false)`: one is failing; `None`: nothing
    /// to judge (no collector reported, or nothing was exported).
    pub healthy: Option<bool>,
    /// `ExportHealthy=<status> (<reason>): <message>`.
    pub line: String,
    /// Per exporter: `otlp_http/xray: 120 spans sent, 0 failed`.
    pub exporters: Vec<String>,
    /// Per exporter, spans it sent in the window.
    pub sent_spans: BTreeMap<String, i64>,
}

/// One EMF record's counters: (collector instance, when, exporter, counters).
fn record(
    message: &str,
    fallback_instance: &str,
    fallback_ms: i64,
) -> Option<(String, i64, String, Counters)> {
    let v: Value = serde_json::from_str(message).ok()?;
    let exporter = v["exporter"].as_str()?.to_owned();
    let instance = v["service.instance.id"]
        .as_str()
        .unwrap_or(fallback_instance)
        .to_owned();
    let at = v["_aws"]["Timestamp"].as_i64().unwrap_or(fallback_ms);
    let mut c = Counters::default();
    let mut any = false;
    for (key, value) in v.as_object()? {
        if let Some(n) = value.as_f64() {
            any |= counters::add(&mut c, key, n);
        }
    }
    any.then_some((instance, at, exporter, c))
}

/// Judges `records` (`(instance, epoch ms, exporter, delta counters)`) for the exporters the
/// app's configuration renders, as of `now`.
pub fn judge(
    records: &[(String, i64, String, Counters)],
    expected: &[String],
    now: SystemTime,
) -> Health {
    let rules = Rules::default();
    let window = words(rules.window);
    let clock = Instant::now();
    let instant = |ms: i64| {
        let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        clock
            .checked_sub(now.duration_since(at).unwrap_or_default())
            .unwrap_or(clock)
    };
    // Per instance, per time: the deltas of each exporter.
    let mut by_instance: BTreeMap<&str, BTreeMap<i64, BTreeMap<String, Counters>>> =
        BTreeMap::new();
    for (instance, at, exporter, c) in records {
        if !expected.contains(exporter) {
            continue;
        }
        by_instance
            .entry(instance)
            .or_default()
            .entry(*at)
            .or_default()
            .entry(exporter.clone())
            .or_default()
            .add(c);
    }
    let mut history = History::default();
    for (instance, times) in &by_instance {
        let mut total: BTreeMap<String, Counters> = BTreeMap::new();
        if let Some(first) = times.keys().next() {
            // From zero: what the first record counted is counted too.
            let zero = expected
                .iter()
                .map(|e| (e.clone(), Counters::default()))
                .collect();
            history.record(instance, instant(first - 1), zero);
        }
        for (at, deltas) in times {
            for (exporter, d) in deltas {
                let t = total.entry(exporter.clone()).or_default();
                let queued = d.queued;
                t.add(&Counters { queued: 0, ..*d });
                t.queued = queued;
            }
            history.record(instance, instant(*at), total.clone());
        }
    }
    let verdict = history.verdict(clock, &rules);
    let (healthy, line, totals) = match verdict {
        Verdict::NoData => (
            None,
            format!(
                "ExportHealthy=Unknown (NoData): no collector of this service reported in the last {window}"
            ),
            Vec::new(),
        ),
        Verdict::Quiet => (
            None,
            format!("ExportHealthy=Unknown (NoTraffic): nothing was exported in the last {window}"),
            Vec::new(),
        ),
        Verdict::Judged { failing, totals } if failing.is_empty() => (
            Some(true),
            format!(
                "ExportHealthy=True (Exporting): every exporter delivered what it was given in the last {window}"
            ),
            totals,
        ),
        Verdict::Judged { failing, totals } => (
            Some(false),
            format!(
                "ExportHealthy=False (ExportFailing): {}",
                failing.join("; ")
            ),
            totals,
        ),
    };
    Health {
        healthy,
        line,
        exporters: totals
            .iter()
            .map(|t| {
                format!(
                    "{}: {} spans sent, {} failed; {} metric points sent, {} failed",
                    t.exporter,
                    t.sent_spans,
                    t.failed_spans,
                    t.sent_metric_points,
                    t.failed_metric_points
                )
            })
            .collect(),
        sent_spans: totals
            .iter()
            .map(|t| (t.exporter.clone(), t.sent_spans))
            .collect(),
    }
}

/// Reads the window's records of `app`'s ECS collectors (family `family`), only those from
/// `since` on if given (the tasks of a deployment that just completed), and judges them.
pub async fn read_since(
    caller: &Caller,
    app: &TracedApp,
    family: &str,
    since: Option<SystemTime>,
) -> Result<Health, String> {
    let rules = Rules::default();
    let group = tracedapp_api::collector::self_telemetry_log_group(family);
    let now = SystemTime::now();
    let now_ms = i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let window_start = now_ms - i64::try_from(rules.window.as_millis()).unwrap_or(0) - 60_000;
    let start = since.map_or(window_start, |s| {
        i64::try_from(s.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(0)
            .max(window_start)
    });
    let mut records = Vec::new();
    let mut token: Option<String> = None;
    // At most 20 pages (of up to 10,000 events): a window of a few collectors fits in one.
    for _ in 0..20 {
        let mut body = json!({"logGroupName": group, "startTime": start, "limit": 10000});
        if let Some(t) = &token {
            body["nextToken"] = t.clone().into();
        }
        let answer = match caller
            .json(Service::Logs, "Logs_20140328.FilterLogEvents", &body)
            .await
        {
            Ok(a) => a,
            Err(e) if e.starts_with("ResourceNotFoundException") => break,
            Err(e) => return Err(format!("reading {group}: {e}")),
        };
        for event in answer["events"].as_array().into_iter().flatten() {
            let stream = event["logStreamName"].as_str().unwrap_or_default();
            let at = event["timestamp"].as_i64().unwrap_or(0);
            if let Some(r) = event["message"]
                .as_str()
                .and_then(|m| record(m, stream, at))
            {
                records.push(r);
            }
        }
        token = answer["nextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = tracedapp_api::collector::render(&app.spec)
        .exporters
        .into_keys()
        .collect();
    Ok(judge(&records, &expected, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sent: u64, failed: u64, queued: u64) -> Counters {
        Counters {
            sent_spans: sent,
            failed_spans: failed,
            queued,
            ..Counters::default()
        }
    }

    fn at(now: SystemTime, secs_ago: u64) -> i64 {
        i64::try_from(
            (now - Duration::from_secs(secs_ago))
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }

    #[test]
    fn emf_records_are_read_by_exporter_and_collector() {
        let message = r#"{"_aws":{"Timestamp":1800000000000,"CloudWatchMetrics":[]},"exporter":"otlp_http/xray","service.instance.id":"abc","otelcol_exporter_sent_spans":12,"otelcol_exporter_send_failed_spans":3,"otelcol_exporter_queue_size":1}"#;
        let (instance, when, exporter, counters) = record(message, "stream", 0).unwrap();
        assert_eq!(
            (instance.as_str(), when, exporter.as_str()),
            ("abc", 1_800_000_000_000, "otlp_http/xray")
        );
        assert_eq!(counters, c(12, 3, 1));
        assert!(record(r#"{"exporter":"x","other_metric":1}"#, "s", 0).is_none());
    }

    #[test]
    fn deltas_of_several_collectors_are_judged_with_the_operators_words() {
        let now = SystemTime::now();
        let xray = "otlp_http/xray".to_owned();
        let expected = vec![xray.clone()];
        let healthy = vec![
            ("a".to_owned(), at(now, 60), xray.clone(), c(50, 0, 0)),
            ("a".to_owned(), at(now, 30), xray.clone(), c(50, 0, 0)),
            ("b".to_owned(), at(now, 30), xray.clone(), c(20, 0, 0)),
        ];
        let h = judge(&healthy, &expected, now);
        assert_eq!(h.healthy, Some(true), "{h:?}");
        assert!(
            h.line
                .contains("every exporter delivered what it was given in the last 5 min")
        );
        assert_eq!(
            h.sent_spans[&xray], 120,
            "every record counted, the first too"
        );

        let failing = vec![
            ("a".to_owned(), at(now, 60), xray.clone(), c(10, 40, 0)),
            ("a".to_owned(), at(now, 30), xray.clone(), c(0, 50, 0)),
        ];
        let h = judge(&failing, &expected, now);
        assert_eq!(h.healthy, Some(false));
        assert!(
            h.line
                .contains("otlp_http/xray: 90 of 100 spans failed in the last 5 min"),
            "{}",
            h.line
        );

        let old = vec![("a".to_owned(), at(now, 900), xray.clone(), c(10, 0, 0))];
        assert_eq!(
            judge(&old, &expected, now).healthy,
            None,
            "outside the window"
        );
        let other = vec![("a".to_owned(), at(now, 30), "debug".to_owned(), c(0, 99, 0))];
        assert_eq!(
            judge(&other, &expected, now).healthy,
            None,
            "not an exporter it renders"
        );
    }
}
