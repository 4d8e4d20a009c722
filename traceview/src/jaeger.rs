//! Spans from Jaeger's query API (`GET /api/traces/{id}`, or `/api/traces?service=...`).

use serde_json::Value;

use crate::Span;

/// The spans of one trace object (an element of the answer's `data`).
pub fn spans(trace: &Value) -> Vec<Span> {
    let processes = &trace["processes"];
    let empty = Vec::new();
    trace["spans"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| {
            let tags = s["tags"].as_array().unwrap_or(&empty);
            let tag = |key: &str| {
                tags.iter()
                    .find(|t| t["key"] == key)
                    .map(|t| match &t["value"] {
                        Value::String(v) => v.clone(),
                        other => other.to_string(),
                    })
            };
            let parent = s["references"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .find(|r| r["refType"] == "CHILD_OF")
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_owned);
            let process = s["processID"].as_str().unwrap_or_default();
            Span {
                id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                parent,
                service: processes[process]["serviceName"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                name: s["operationName"].as_str().unwrap_or_default().to_owned(),
                start_us: s["startTime"].as_i64().unwrap_or(0),
                duration_us: s["duration"].as_i64().unwrap_or(0),
                kind: tag("span.kind").unwrap_or_default(),
                error: tag("error").as_deref() == Some("true")
                    || tag("otel.status_code").as_deref() == Some("ERROR"),
                http: crate::http_attributes(tag),
            }
        })
        .collect()
}

/// The trace objects of a query answer (`{"data": [...]}`), newest first by root start time.
pub fn traces(answer: &Value) -> Vec<Value> {
    let mut traces: Vec<Value> = answer["data"].as_array().cloned().unwrap_or_default();
    let start = |t: &Value| spans(t).iter().map(|s| s.start_us).min().unwrap_or(0);
    traces.sort_by_key(|t| std::cmp::Reverse(start(t)));
    traces
}
