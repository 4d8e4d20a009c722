//! OTLP trace encoding straight from the SDK's [`SpanData`], with no protobuf structs between.
//!
//! The usual path (`opentelemetry-proto`'s conversion, then `prost`) copies every span into
//! owned protobuf structs, grouping them in a hash map, encodes those, and frees them: a
//! quarter of the service's CPU at 100 % sampling (BENCHMARKS.md). Here each message is written
//! once into one buffer of the exact size.
//!
//! Every message is a [`Message`]: one `write` method, run twice per nesting level, first
//! into a [`Len`] that only adds up sizes (protobuf puts a message's length before it), then
//! into the buffer. The tests decode the bytes with the generated `prost` types and compare
//! them with `opentelemetry-proto`'s own conversion of the same spans.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{WireType, encode_varint, encoded_len_varint};

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the next bit is meaningful.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent (or linked) span is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes batches of spans as `ExportTraceServiceRequest` messages for one resource.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceEncoder {
    /// `ResourceSpans.resource` (field 1 with its key and length), encoded once.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    schema_url: String,
}

impl TraceEncoder {
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut encoded = Vec::new();
        encoded.message(1, &ResourceMsg(resource));
        Self {
            resource: encoded,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }

    /// One `ExportTraceServiceRequest`: one `ResourceSpans`, the spans grouped by their
    /// instrumentation scope in order of first appearance.
    pub(crate) fn encode(&self, spans: &[SpanData]) -> Vec<u8> {
        let mut scopes: Vec<(&InstrumentationScope, Vec<&SpanData>)> = Vec::new();
        for span in spans {
            match scopes
                .iter_mut()
                .find(|(scope, _)| **scope == span.instrumentation_scope)
            {
                Some((_, group)) => group.push(span),
                None => scopes.push((&span.instrumentation_scope, vec![span])),
            }
        }
        let request = RequestMsg(ResourceSpansMsg {
            encoder: self,
            scopes: &scopes,
        });
        let mut out = Vec::with_capacity(request.encoded_len());
        request.write(&mut out);
        out
    }
}

/// Where a message is written: a byte buffer, or [`Len`], which only counts.
trait Out {
    fn raw(&mut self, bytes: &[u8]);
    fn varint(&mut self, value: u64);
    /// A nested message's body, `len` bytes long.
    fn body<M: Message>(&mut self, len: usize, message: &M);

    fn key(&mut self, tag: u32, wire_type: WireType) {
        self.varint(u64::from(tag << 3 | wire_type as u32));
    }

    /// A message field: written even when empty (the field is present).
    fn message<M: Message>(&mut self, tag: u32, message: &M) {
        let len = message.encoded_len();
        self.key(tag, WireType::LengthDelimited);
        self.varint(len as u64);
        self.body(len, message);
    }

    /// A string or bytes field, left out when empty (proto3).
    fn bytes(&mut self, tag: u32, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.bytes_always(tag, bytes);
        }
    }

    fn bytes_always(&mut self, tag: u32, bytes: &[u8]) {
        self.key(tag, WireType::LengthDelimited);
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }

    /// A `uint32`, `uint64` or enum field, left out when zero.
    fn uint(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::Varint);
            self.varint(value);
        }
    }

    fn fixed64(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::SixtyFourBit);
            self.raw(&value.to_le_bytes());
        }
    }

    fn fixed32(&mut self, tag: u32, value: u32) {
        if value != 0 {
            self.key(tag, WireType::ThirtyTwoBit);
            self.raw(&value.to_le_bytes());
        }
    }

    fn attributes<'a>(&mut self, tag: u32, attributes: impl IntoIterator<Item = &'a KeyValue>) {
        for kv in attributes {
            self.message(tag, &KeyValueMsg(&kv.key, &kv.value));
        }
    }
}

impl Out for Vec<u8> {
    fn raw(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn varint(&mut self, value: u64) {
        encode_varint(value, self);
    }
    fn body<M: Message>(&mut self, _len: usize, message: &M) {
        message.write(self);
    }
}

/// Counts the bytes a message takes.
struct Len(usize);

impl Out for Len {
    fn raw(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn varint(&mut self, value: u64) {
        self.0 += encoded_len_varint(value);
    }
    fn body<M: Message>(&mut self, len: usize, _message: &M) {
        self.0 += len;
    }
}

trait Message {
    fn write<O: Out>(&self, out: &mut O);

    fn encoded_len(&self) -> usize {
        let mut len = Len(0);
        self.write(&mut len);
        len.0
    }
}

/// `ExportTraceServiceRequest`.
struct RequestMsg<'a>(ResourceSpansMsg<'a>);

impl Message for RequestMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.message(1, &self.0);
    }
}

/// `ResourceSpans`.
struct ResourceSpansMsg<'a> {
    encoder: &'a TraceEncoder,
    scopes: &'a [(&'a InstrumentationScope, Vec<&'a SpanData>)],
}

impl Message for ResourceSpansMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.raw(&self.encoder.resource);
        for (scope, spans) in self.scopes {
            out.message(2, &ScopeSpansMsg(scope, spans));
        }
        out.bytes(3, self.encoder.schema_url.as_bytes());
    }
}

/// `Resource`.
struct ResourceMsg<'a>(&'a Resource);

impl Message for ResourceMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        for (key, value) in self.0.iter() {
            out.message(1, &KeyValueMsg(key, value));
        }
    }
}

/// `ScopeSpans`.
struct ScopeSpansMsg<'a>(&'a InstrumentationScope, &'a [&'a SpanData]);

impl Message for ScopeSpansMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.message(1, &ScopeMsg(self.0));
        for span in self.1 {
            out.message(2, &SpanMsg(span));
        }
        out.bytes(3, self.0.schema_url().unwrap_or_default().as_bytes());
    }
}

/// `InstrumentationScope`.
struct ScopeMsg<'a>(&'a InstrumentationScope);

impl Message for ScopeMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.bytes(1, self.0.name().as_bytes());
        out.bytes(2, self.0.version().unwrap_or_default().as_bytes());
        out.attributes(3, self.0.attributes());
    }
}

/// `Span`.
struct SpanMsg<'a>(&'a SpanData);

impl Message for SpanMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        let span = self.0;
        let context = &span.span_context;
        out.bytes(1, &context.trace_id().to_bytes());
        out.bytes(2, &context.span_id().to_bytes());
        trace_state(out, 3, context);
        if span.parent_span_id != SpanId::INVALID {
            out.bytes(4, &span.parent_span_id.to_bytes());
        }
        out.bytes(5, span.name.as_bytes());
        out.uint(6, span_kind(&span.span_kind));
        out.fixed64(7, unix_nanos(span.start_time));
        out.fixed64(8, unix_nanos(span.end_time));
        out.attributes(9, &span.attributes);
        out.uint(10, u64::from(span.dropped_attributes_count));
        for event in &span.events.events {
            out.message(11, &EventMsg(event));
        }
        out.uint(12, u64::from(span.events.dropped_count));
        for link in &span.links.links {
            out.message(13, &LinkMsg(link));
        }
        out.uint(14, u64::from(span.links.dropped_count));
        out.message(15, &StatusMsg(&span.status));
        out.fixed32(16, flags(context, span.parent_span_is_remote));
    }
}

/// `Span.Event`.
struct EventMsg<'a>(&'a opentelemetry::trace::Event);

impl Message for EventMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.fixed64(1, unix_nanos(self.0.timestamp));
        out.bytes(2, self.0.name.as_bytes());
        out.attributes(3, &self.0.attributes);
        out.uint(4, u64::from(self.0.dropped_attributes_count));
    }
}

/// `Span.Link`.
struct LinkMsg<'a>(&'a opentelemetry::trace::Link);

impl Message for LinkMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        let context = &self.0.span_context;
        out.bytes(1, &context.trace_id().to_bytes());
        out.bytes(2, &context.span_id().to_bytes());
        trace_state(out, 3, context);
        out.attributes(4, &self.0.attributes);
        out.uint(5, u64::from(self.0.dropped_attributes_count));
        out.fixed32(6, flags(context, context.is_remote()));
    }
}

/// `Status`.
struct StatusMsg<'a>(&'a Status);

impl Message for StatusMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        let code = match self.0 {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { description } => {
                out.bytes(2, description.as_bytes());
                2
            }
        };
        out.uint(3, code);
    }
}

/// `KeyValue`.
struct KeyValueMsg<'a>(&'a Key, &'a Value);

impl Message for KeyValueMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        out.bytes(1, self.0.as_str().as_bytes());
        out.message(2, &AnyValueMsg::of(self.1));
    }
}

/// `AnyValue`: a `oneof`, so its one field is written even when it holds a default value.
enum AnyValueMsg<'a> {
    Str(&'a str),
    Bool(bool),
    I64(i64),
    F64(f64),
    Array(&'a Array),
    /// A kind of value newer than this encoder: sent as its text.
    Other(String),
}

impl<'a> AnyValueMsg<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s.as_str()),
            Value::Bool(b) => Self::Bool(*b),
            Value::I64(i) => Self::I64(*i),
            Value::F64(f) => Self::F64(*f),
            Value::Array(a) => Self::Array(a),
            other => Self::Other(other.as_str().into_owned()),
        }
    }
}

impl Message for AnyValueMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        match self {
            Self::Str(s) => out.bytes_always(1, s.as_bytes()),
            Self::Other(s) => out.bytes_always(1, s.as_bytes()),
            Self::Bool(b) => {
                out.key(2, WireType::Varint);
                out.varint(u64::from(*b));
            }
            Self::I64(i) => {
                out.key(3, WireType::Varint);
                out.varint(*i as u64);
            }
            Self::F64(f) => {
                out.key(4, WireType::SixtyFourBit);
                out.raw(&f.to_bits().to_le_bytes());
            }
            Self::Array(a) => out.message(5, &ArrayMsg(a)),
        }
    }
}

/// `ArrayValue`.
struct ArrayMsg<'a>(&'a Array);

impl Message for ArrayMsg<'_> {
    fn write<O: Out>(&self, out: &mut O) {
        match self.0 {
            Array::Bool(v) => v
                .iter()
                .for_each(|b| out.message(1, &AnyValueMsg::Bool(*b))),
            Array::I64(v) => v.iter().for_each(|i| out.message(1, &AnyValueMsg::I64(*i))),
            Array::F64(v) => v.iter().for_each(|f| out.message(1, &AnyValueMsg::F64(*f))),
            Array::String(v) => v
                .iter()
                .for_each(|s| out.message(1, &AnyValueMsg::Str(s.as_str()))),
            other => out.message(1, &AnyValueMsg::Other(other.to_string())),
        }
    }
}

fn trace_state<O: Out>(out: &mut O, tag: u32, context: &SpanContext) {
    out.bytes(tag, context.trace_state().header().as_bytes());
}

/// `Span.flags`: the W3C trace flags, and whether the parent (or linked span) is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(context.trace_flags().to_u8()) | FLAG_HAS_IS_REMOTE;
    if remote {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// `Span.SpanKind`.
fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state.parse::<TraceState>().unwrap(),
        )
    }

    /// Every kind of value, including the defaults a `oneof` must still carry.
    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("s", "text ✓"),
            KeyValue::new("empty", ""),
            KeyValue::new("t", true),
            KeyValue::new("f", false),
            KeyValue::new("i", -42_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("x", 2.5_f64),
            KeyValue::new("max", f64::MAX),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, i64::MAX]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, -0.0]))),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec![StringValue::from("a"), "".into()])),
            ),
            KeyValue::new("no.items", Value::Array(Array::I64(vec![]))),
        ]
    }

    fn span(scope: &InstrumentationScope, n: u64) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789 + n);
        SpanData {
            span_context: context(
                0x0123_4567_89ab_cdef_0011_2233_4455_6677 + u128::from(n),
                n + 1,
                false,
                "",
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: Cow::Owned(format!("GET /items/{n}")),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![KeyValue::new("http.response.status_code", 200_i64)],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    /// The same spans through `opentelemetry-proto`'s conversion (what `opentelemetry-otlp` sends).
    fn reference(spans: Vec<SpanData>, resource: &Resource) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
        let bytes = TraceEncoder::new(resource).encode(spans);
        ExportTraceServiceRequest::decode(bytes.as_slice()).expect("our bytes decode")
    }

    #[test]
    fn spans_encode_as_the_reference_conversion_does() {
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "shop"),
                KeyValue::new("service.instance.id", "pod-1"),
            ])
            .with_schema_url(
                [KeyValue::new("deployment.environment.name", "dev")],
                "https://opentelemetry.io/schemas/1.36.0",
            )
            .build();
        let app = InstrumentationScope::builder("traced-service")
            .with_version("0.1.0")
            .build();
        let library = InstrumentationScope::builder("a-library")
            .with_schema_url("https://example.com/schema")
            .with_attributes([KeyValue::new("scope.attr", 7_i64)])
            .build();

        // Every field set, on a child of a remote parent with a trace state.
        let mut full = span(&library, 9);
        full.span_context = context(u128::MAX, u64::MAX, true, "vendor=value,other=x");
        full.parent_span_id = SpanId::from(0x1122_3344_5566_7788);
        full.parent_span_is_remote = true;
        full.span_kind = SpanKind::Consumer;
        full.attributes = every_value();
        full.dropped_attributes_count = 3;
        full.events.events = vec![
            Event::new(
                "exception",
                UNIX_EPOCH + Duration::from_secs(5),
                every_value(),
                1,
            ),
            Event::with_name("bare"),
        ];
        full.events.dropped_count = 2;
        full.links.links = vec![
            Link::new(
                context(5, 6, true, "k=v"),
                vec![KeyValue::new("l", 1_i64)],
                4,
            ),
            Link::with_context(context(7, 8, false, "")),
        ];
        full.links.dropped_count = 5;
        full.status = Status::error("upstream said no");

        let mut ok = span(&app, 2);
        ok.status = Status::Ok;
        ok.span_kind = SpanKind::Client;
        let mut internal = span(&app, 3);
        internal.span_kind = SpanKind::Internal;
        internal.attributes.clear();
        let mut producer = span(&library, 4);
        producer.span_kind = SpanKind::Producer;
        producer.status = Status::error("");
        let mut before_epoch = span(&app, 5);
        before_epoch.start_time = UNIX_EPOCH - Duration::from_secs(1);

        let spans = vec![span(&app, 1), full, ok, internal, producer, before_epoch];
        let bytes = TraceEncoder::new(&resource).encode(&spans);
        let expected = reference(spans.clone(), &resource);
        assert_eq!(ours(&spans, &resource), expected);
        assert_eq!(
            bytes,
            expected.encode_to_vec(),
            "byte for byte what prost writes"
        );
    }

    #[test]
    fn an_empty_resource_and_a_single_span_encode_as_the_reference_does() {
        let resource = Resource::builder_empty().build();
        let scope = InstrumentationScope::builder("").build();
        let spans = vec![span(&scope, 0)];
        assert_eq!(ours(&spans, &resource), reference(spans, &resource));
    }

    #[test]
    fn scopes_keep_the_order_they_first_appear_in() {
        let resource = Resource::builder_empty().build();
        let a = InstrumentationScope::builder("a").build();
        let b = InstrumentationScope::builder("b").build();
        let spans = vec![span(&b, 1), span(&a, 2), span(&b, 3)];
        let decoded = ours(&spans, &resource);
        let scopes = &decoded.resource_spans[0].scope_spans;
        let names: Vec<_> = scopes
            .iter()
            .map(|s| (s.scope.as_ref().unwrap().name.as_str(), s.spans.len()))
            .collect();
        assert_eq!(names, [("b", 2), ("a", 1)]);
        assert_eq!(decoded, reference(spans, &resource));
    }

    #[test]
    fn the_buffer_is_exactly_the_encoded_size() {
        let resource = Resource::builder().build();
        let scope = InstrumentationScope::builder("s").build();
        let spans: Vec<_> = (0..512).map(|n| span(&scope, n)).collect();
        let bytes = TraceEncoder::new(&resource).encode(&spans);
        assert_eq!(bytes.len(), bytes.capacity());
        assert_eq!(bytes, reference(spans, &resource).encode_to_vec());
    }
}
