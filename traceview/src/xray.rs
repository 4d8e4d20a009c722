//! Spans from X-Ray's `BatchGetTraces` (a trace's `Segments`, each a JSON `Document`, given as
//! text or already parsed, with nested `subsegments`). Times there are seconds since the
//! epoch, as floats. A segment is the work one service did for a request; a subsegment in the
//! `remote` or `aws` namespace is a call to another service. Subsegments may also come as
//! documents of their own (`"type": "subsegment"`, with a `parent_id`), as the collector's
//! `awsxray` exporter sends CLIENT spans.

use std::collections::HashMap;

use serde_json::Value;

use crate::Span;

/// The spans of one trace object (an element of the answer's `Traces`).
pub fn spans(trace: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for segment in trace["Segments"].as_array().into_iter().flatten() {
        let document = match &segment["Document"] {
            Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let is_segment = document["type"] != "subsegment";
        // A subsegment document does not name its service: its parent's, filled in below.
        let service = if is_segment {
            document["name"].as_str().unwrap_or("?")
        } else {
            ""
        };
        walk(
            &document,
            service,
            document["parent_id"].as_str(),
            is_segment,
            &mut out,
        );
    }
    for _ in 0..out.len() {
        let known: HashMap<String, String> = out
            .iter()
            .filter(|s| !s.service.is_empty())
            .map(|s| (s.id.clone(), s.service.clone()))
            .collect();
        let mut missing = false;
        for s in out.iter_mut().filter(|s| s.service.is_empty()) {
            match s.parent.as_ref().and_then(|p| known.get(p)) {
                Some(service) => s.service = service.clone(),
                None => missing = true,
            }
        }
        if !missing {
            break;
        }
    }
    for s in out.iter_mut().filter(|s| s.service.is_empty()) {
        s.service = "?".to_owned();
    }
    out
}

fn walk(doc: &Value, service: &str, parent: Option<&str>, segment: bool, out: &mut Vec<Span>) {
    let micros = |key: &str| (doc[key].as_f64().unwrap_or(0.0) * 1e6).round() as i64;
    let (start, end) = (micros("start_time"), micros("end_time"));
    let request = &doc["http"]["request"];
    let method = request["method"].as_str();
    let url = request["url"].as_str();
    let mut http = Vec::new();
    if let Some(method) = method {
        http.push(("http.request.method".to_owned(), method.to_owned()));
    }
    if let Some(url) = url {
        http.push(("http.route".to_owned(), url.to_owned()));
    }
    if let Some(status) = doc["http"]["response"]["status"].as_i64() {
        http.push(("http.response.status_code".to_owned(), status.to_string()));
    }
    let id = doc["id"].as_str().unwrap_or_default();
    let kind = match doc["namespace"].as_str() {
        _ if segment => "server",
        Some("remote") | Some("aws") => "client",
        _ => "internal",
    };
    // A segment's name is its service's; what it did is in its request.
    let name = match (segment, method, url) {
        (true, Some(method), Some(url)) => format!("{method} {}", path(url)),
        _ => doc["name"].as_str().unwrap_or_default().to_owned(),
    };
    out.push(Span {
        id: id.to_owned(),
        parent: parent.map(str::to_owned),
        service: service.to_owned(),
        name,
        start_us: start,
        duration_us: (end - start).max(0),
        kind: kind.to_owned(),
        error: doc["fault"].as_bool() == Some(true) || doc["error"].as_bool() == Some(true),
        http,
    });
    for sub in doc["subsegments"].as_array().into_iter().flatten() {
        walk(sub, service, Some(id), false, out);
    }
}

/// The path of a URL (`http://host:3000/chain?x` → `/chain`).
fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn segments_subsegment_documents_and_nested_subsegments_become_one_tree() {
        let trace = json!({"Segments": [
            {"Document": json!({"id": "a", "name": "shop", "start_time": 1.0, "end_time": 1.02,
                "http": {"request": {"method": "GET", "url": "http://h:3000/chain?x=1"},
                         "response": {"status": 200}},
                "subsegments": [{"id": "n", "name": "work", "start_time": 1.001, "end_time": 1.002}]}).to_string()},
            {"Document": {"id": "b", "type": "subsegment", "parent_id": "a", "name": "backend",
                "namespace": "remote", "start_time": 1.002, "end_time": 1.018}},
            {"Document": {"id": "c", "name": "backend", "parent_id": "b", "start_time": 1.005,
                "end_time": 1.015, "fault": true}},
        ]});
        let s = spans(&trace);
        let by = |id: &str| s.iter().find(|x| x.id == id).unwrap();
        assert_eq!(
            (by("a").name.as_str(), by("a").kind.as_str()),
            ("GET /chain", "server")
        );
        assert_eq!(by("a").duration_us, 20_000);
        assert_eq!(
            (by("b").service.as_str(), by("b").kind.as_str()),
            ("shop", "client")
        );
        assert_eq!(by("n").parent.as_deref(), Some("a"));
        assert_eq!(by("n").kind, "internal");
        assert!(by("c").error);
        assert_eq!(by("c").service, "backend");
    }

    #[test]
    fn paths() {
        assert_eq!(path("http://h:3000/chain?x=1"), "/chain");
        assert_eq!(path("http://h"), "/");
        assert_eq!(path("/a#b"), "/a");
    }
}
