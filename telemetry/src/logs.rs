//! Log lines on stderr: human-readable, or one JSON object per line carrying the `trace_id`
//! and `span_id` of the span it was written in, so that a log line leads to its trace.

use std::fmt;

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

/// The log output. It is filtered to events only: spans are looked up when an event is written
/// (for `trace_id`/`span_id`), so pre-formatting every span's fields would be wasted work on the
/// request path.
pub(super) fn log_layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
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
            .with_ansi(colour())
            .with_writer(std::io::stderr)
            .with_filter(events_only)
            .boxed()
    }
}

/// Colour only for a person at a terminal: stderr is one, and `NO_COLOR` is unset or empty
/// (no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
        fields.insert("timestamp".into(), now_rfc3339().into());
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

/// The time as RFC 3339 in UTC, written by tracing-subscriber's own timer.
fn now_rfc3339() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut out));
    out
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
        let ts = now_rfc3339();
        assert!(
            ts.starts_with("20") && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
}
