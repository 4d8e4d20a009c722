//! A trace drawn in the terminal as a waterfall: one row per span, indented by parentage, with
//! the service and span name, a bar placed and sized by start time and duration, the duration,
//! and the status and key HTTP attributes.
//!
//! Flow: a trace as Jaeger's query API returns it ([`jaeger::spans`]) or as X-Ray's
//! `BatchGetTraces` returns it ([`xray::spans`]) → [`Span`]s → [`draw`] → lines of text,
//! coloured when [`Style::color`] is on.

mod draw;
pub mod jaeger;
mod safe;
pub mod xray;

pub use draw::{Style, draw};
pub use safe::{terminal_safe, terminal_safe_text};

/// Where the end-to-end tests record real traces (`RECORD_TRACES=1`), and where the drawing's
/// golden outputs live: `testdata/traces/` at the repository root.
pub fn recorded_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces")
}

/// Saves `trace` as `<name>` in [`recorded_dir`] when `RECORD_TRACES` is set (an end-to-end
/// test's real trace becomes a golden case of the drawing).
pub fn record(name: &str, trace: &serde_json::Value) {
    if std::env::var_os("RECORD_TRACES").is_some() {
        let dir = recorded_dir();
        std::fs::create_dir_all(&dir).expect("create testdata/traces");
        let text = serde_json::to_string_pretty(trace).expect("JSON");
        std::fs::write(dir.join(name), text + "\n").expect("write the recorded trace");
    }
}

/// One span, whatever store it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub id: String,
    /// The parent's id, if the parent is in the trace.
    pub parent: Option<String>,
    pub service: String,
    pub name: String,
    /// Start, in microseconds since the Unix epoch.
    pub start_us: i64,
    pub duration_us: i64,
    /// `server`, `client`, `internal`, ... (empty if unknown).
    pub kind: String,
    /// Whether the span says it failed.
    pub error: bool,
    /// The key HTTP attributes, in the order shown: method, route or path, status code.
    pub http: Vec<(String, String)>,
}

/// The key HTTP attributes of a span whose attributes `get` reads, as [`Span::http`] holds
/// them (for spans from other sources, e.g. OTLP).
pub fn http_attributes(get: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    HTTP_KEYS
        .iter()
        .filter_map(|names| {
            names
                .iter()
                .find_map(|n| get(n).map(|v| (names[0].to_owned(), v)))
        })
        .collect()
}

/// The HTTP attributes shown, each with the older names some stores use.
pub(crate) const HTTP_KEYS: &[&[&str]] = &[
    &["http.request.method", "http.method"],
    &[
        "http.route",
        "url.path",
        "http.target",
        "http.url",
        "url.full",
    ],
    &["http.response.status_code", "http.status_code"],
];
