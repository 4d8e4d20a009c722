//! Our OTLP span exporter: each batch is encoded by [`TraceEncoder`] straight from the SDK's
//! spans, then sent over gRPC (tonic) or HTTP (reqwest), retried as the OTLP spec says.
//!
//! The batch processor calls [`OtlpSpanExporter::export`] on a thread of its own; the request
//! itself runs as a task on the service's Tokio runtime, so both transports work the same way
//! and the timeout covers every attempt.
//!
//! Guarantees: no request is larger than [`MAX_REQUEST_BYTES`] (a bigger batch is split, and
//! split again if a receiver still refuses it as too large), so a batch of large spans is not
//! refused whole; what cannot be sent is counted. The receiver's answer is read up to
//! [`MAX_RESPONSE_BYTES`]. A wait the receiver asks for (HTTP `Retry-After`, in seconds or as a
//! date; gRPC `RetryInfo`) is honoured within the timeout.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf as _, BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::export::DropCounter;
use super::wire::TraceEncoder;
use crate::config::{Protocol, SignalExport};
use crate::http_client::{error_chain, http_client};

/// The gRPC method every OTLP trace receiver serves.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Retries after the first attempt, and their backoff (the OTLP exporters' recommended policy).
const MAX_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_JITTER_NANOS: u32 = 100_000_000;
/// The largest request body we send (before compression): below the collector's default gRPC
/// message limit (4 MiB) and HTTP body limit (20 MiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// The most of a receiver's answer we read (an OTLP answer is a few bytes: a partial success).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The longest wait a receiver may ask for before a retry (it is still bounded by the timeout).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "gRPC export over TLS (https://) is not built in; use http:// to the sidecar, or http/protobuf"
    )]
    GrpcTls,
    #[error("not a valid gRPC endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error("must be built inside a Tokio runtime")]
    NoRuntime,
}

/// One export lane's exporter. Besides sending, it gives the lane's queue room back as each
/// batch ends, and counts every span that was not delivered (failed batch or refused by the
/// receiver) in the lane's [`DropCounter`].
pub(crate) struct OtlpSpanExporter {
    encoder: TraceEncoder,
    transport: Transport,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    drops: Arc<DropCounter>,
    /// The lane's count of spans not yet exported.
    in_flight: Arc<AtomicUsize>,
    /// The estimated bytes of every lane's spans not yet exported (see `export::span_size`).
    queued_bytes: Arc<AtomicUsize>,
    endpoint: String,
}

#[derive(Clone)]
enum Transport {
    Grpc {
        client: tonic::client::Grpc<tonic::transport::Channel>,
        metadata: tonic::metadata::MetadataMap,
        /// Where `client` connects, kept to give another lane a connection of its own.
        endpoint: Box<tonic::transport::Endpoint>,
        gzip: bool,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: http::HeaderMap,
        /// Bodies are gzipped before the first attempt (tonic compresses gRPC messages itself).
        gzip: bool,
    },
}

impl fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSpanExporter")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OtlpSpanExporter {
    /// Builds the exporter; the connection is made at the first export, so an unreachable
    /// collector is not an error here. Must run inside a Tokio runtime.
    pub(crate) fn new(
        export: &SignalExport,
        drops: Arc<DropCounter>,
        in_flight: Arc<AtomicUsize>,
        queued_bytes: Arc<AtomicUsize>,
    ) -> Result<Self, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let headers = export.headers.to_header_map();
        let transport = match export.protocol {
            Protocol::Grpc => {
                if export.endpoint.starts_with("https://") {
                    return Err(BuildError::GrpcTls);
                }
                let endpoint = tonic::transport::Endpoint::from_shared(export.endpoint.clone())?
                    .connect_timeout(export.timeout);
                Transport::Grpc {
                    client: grpc_client(&endpoint, export.gzip),
                    metadata: tonic::metadata::MetadataMap::from_headers(headers),
                    endpoint: Box::new(endpoint),
                    gzip: export.gzip,
                }
            }
            Protocol::HttpProtobuf => Transport::Http {
                // Redirects are not followed: spans go to the endpoint configured, nowhere else.
                client: http_client(
                    || reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
                    "span export",
                ),
                url: export.endpoint.clone(),
                headers,
                gzip: export.gzip,
            },
        };
        Ok(Self {
            encoder: TraceEncoder::default(),
            transport,
            timeout: export.timeout,
            runtime,
            drops,
            in_flight,
            queued_bytes,
            endpoint: export.endpoint.clone(),
        })
    }

    /// The exporter for another lane, with the same settings. An HTTP client is shared (it
    /// pools its connections, and its CA certificates are loaded once); a gRPC lane gets a
    /// connection of its own, so each lane's batch in flight has its own.
    pub(crate) fn another_lane(&self, in_flight: Arc<AtomicUsize>) -> Self {
        let transport = match &self.transport {
            Transport::Grpc {
                metadata,
                endpoint,
                gzip,
                ..
            } => Transport::Grpc {
                client: grpc_client(endpoint, *gzip),
                metadata: metadata.clone(),
                endpoint: endpoint.clone(),
                gzip: *gzip,
            },
            http @ Transport::Http { .. } => http.clone(),
        };
        Self {
            encoder: self.encoder.clone(),
            transport,
            timeout: self.timeout,
            runtime: self.runtime.clone(),
            drops: self.drops.clone(),
            in_flight,
            queued_bytes: self.queued_bytes.clone(),
            endpoint: self.endpoint.clone(),
        }
    }

    /// Encodes and sends one batch, in requests of at most [`MAX_REQUEST_BYTES`], all within
    /// the timeout: what the receiver refused and what could not be sent.
    async fn send(&self, batch: &[SpanData]) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut outcome = Outcome::default();
        let mut pending = vec![batch];
        while let Some(chunk) = pending.pop() {
            let body = self.encoder.encode(chunk);
            if body.len() > MAX_REQUEST_BYTES {
                match halves(chunk) {
                    Some((a, b)) => pending.extend([b, a]),
                    None => outcome.failed(
                        1,
                        format!(
                            "a span of {} bytes is larger than a request may be ({MAX_REQUEST_BYTES} bytes)",
                            body.len()
                        ),
                    ),
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                outcome.failed(chunk.len(), format!("no answer within {:?}", self.timeout));
                continue;
            }
            let body = match self.transport {
                Transport::Http { gzip: true, .. } => Bytes::from(gzip(&body)),
                _ => Bytes::from(body),
            };
            let transport = self.transport.clone();
            let task = self
                .runtime
                .spawn(async move { with_retries(left, || transport.send(body.clone())).await });
            let result = task.await.unwrap_or_else(|join| {
                Err(Failed {
                    message: join.to_string(),
                    too_large: false,
                })
            });
            match result {
                Ok(None) => {}
                Ok(Some((count, message))) => outcome.refused(count, message),
                Err(failed) if failed.too_large && chunk.len() > 1 => {
                    let (a, b) = halves(chunk).expect("more than one span");
                    pending.extend([b, a]);
                }
                Err(failed) => outcome.failed(chunk.len(), failed.message),
            }
        }
        outcome
    }
}

/// `spans` cut in two, if it has more than one.
fn halves(spans: &[SpanData]) -> Option<(&[SpanData], &[SpanData])> {
    (spans.len() > 1).then(|| spans.split_at(spans.len() / 2))
}

/// What became of one batch.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    /// Spans the receiver accepted the request for but refused (partial success), and why.
    refused: Option<(u64, String)>,
    /// Spans that could not be delivered, and the last reason.
    failed: Option<(u64, String)>,
}

impl Outcome {
    fn refused(&mut self, count: u64, message: String) {
        let total = self.refused.take().map_or(0, |(n, _)| n);
        self.refused = Some((total + count, message));
    }

    fn failed(&mut self, count: usize, message: String) {
        let total = self.failed.take().map_or(0, |(n, _)| n);
        self.failed = Some((total + count as u64, message));
    }
}

impl opentelemetry_sdk::trace::SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let bytes: usize = batch.iter().map(super::export::span_size).sum();
        let outcome = self.send(&batch).await;
        drop(batch);
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        if let Some((count, message)) = outcome.refused {
            self.drops.dropped("export_failed", count, &|| {
                format!("{} refused {count} spans: {message}", self.endpoint)
            });
        }
        match outcome.failed {
            None => Ok(()),
            Some((count, message)) => {
                self.drops.dropped("export_failed", count, &|| {
                    format!("export to {} failed: {message}", self.endpoint)
                });
                Err(OTelSdkError::InternalFailure(message))
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.encoder = TraceEncoder::new(resource);
    }
}

/// Spans the receiver accepted the request but refused (OTLP partial success), and why.
type Rejected = Option<(u64, String)>;

/// One failed attempt.
struct Failure {
    retryable: bool,
    /// How long the server asked us to wait (HTTP `Retry-After`, gRPC `RetryInfo`).
    retry_after: Option<Duration>,
    /// The receiver refused the request as too large (HTTP 413, gRPC `RESOURCE_EXHAUSTED`
    /// without `RetryInfo`): a smaller one may pass.
    too_large: bool,
    message: String,
}

/// Why a request was given up.
#[derive(Debug, PartialEq)]
struct Failed {
    message: String,
    too_large: bool,
}

impl Transport {
    async fn send(&self, body: Bytes) -> Result<Rejected, Failure> {
        match self {
            Transport::Grpc {
                client, metadata, ..
            } => {
                let mut client = client.clone();
                client.ready().await.map_err(|e| Failure {
                    retryable: true,
                    retry_after: None,
                    too_large: false,
                    message: error_chain(&e),
                })?;
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                let path = http::uri::PathAndQuery::from_static(GRPC_EXPORT_PATH);
                match client.unary(request, path, RawCodec).await {
                    Ok(response) => Ok(partial_success(response.into_inner())),
                    Err(status) => Err(grpc_failure(&status)),
                }
            }
            Transport::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let mut request = client
                    .post(url)
                    .headers(headers.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                if *gzip {
                    request = request.header(http::header::CONTENT_ENCODING, "gzip");
                }
                let mut response = request.body(body).send().await.map_err(|e| Failure {
                    retryable: true,
                    retry_after: None,
                    too_large: false,
                    message: error_chain(&e),
                })?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| retry_after(v.to_str().ok()?, SystemTime::now()));
                if status.is_success() {
                    // An answer past the cap is not an OTLP answer: the request was accepted.
                    let answer = read_capped(&mut response, MAX_RESPONSE_BYTES).await;
                    Ok(answer.map(partial_success).unwrap_or_default())
                } else {
                    Err(Failure {
                        retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
                        retry_after,
                        too_large: status.as_u16() == 413,
                        message: format!("HTTP {status}"),
                    })
                }
            }
        }
    }
}

/// At most `cap` bytes of a response's body; `None` if it is longer (or breaks off).
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Option<Bytes> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > cap {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(Bytes::from(body))
}

/// An HTTP `Retry-After` value, seconds or an HTTP date, as a wait from `now` (at most
/// [`MAX_RETRY_AFTER`]).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A client on a connection of its own (made at the first export); it reads answers of at
/// most [`MAX_RESPONSE_BYTES`].
fn grpc_client(
    endpoint: &tonic::transport::Endpoint,
    gzip: bool,
) -> tonic::client::Grpc<tonic::transport::Channel> {
    let client = tonic::client::Grpc::new(endpoint.connect_lazy())
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    if gzip {
        client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
    } else {
        client
    }
}

/// Tries `send` until it succeeds, fails for good, or `timeout` runs out.
async fn with_retries<F, Fut>(timeout: Duration, mut send: F) -> Result<Rejected, Failed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Rejected, Failure>>,
{
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(left, send()).await {
            Ok(Ok(rejected)) => return Ok(rejected),
            Ok(Err(failure)) => failure,
            Err(_) => {
                return Err(Failed {
                    message: format!("no answer within {timeout:?}"),
                    too_large: false,
                });
            }
        };
        let wait = failure.retry_after.unwrap_or(backoff + jitter());
        let left = deadline.saturating_duration_since(Instant::now());
        if !failure.retryable || attempt == MAX_RETRIES || wait >= left {
            let tries = match attempt {
                0 => "1 attempt".to_owned(),
                n => format!("{} attempts", n + 1),
            };
            return Err(Failed {
                message: format!("{} ({tries})", failure.message),
                too_large: failure.too_large,
            });
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    Duration::from_nanos(u64::from(nanos % MAX_JITTER_NANOS))
}

/// gRPC codes the OTLP spec says to retry: the transient ones, and `RESOURCE_EXHAUSTED` when
/// the server says when to come back (`RetryInfo`); without it, that code means the request
/// was too large (or the server is out of memory) and a smaller one may pass. The status
/// message is left out: a server may echo a request's credentials in it.
fn grpc_failure(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let code = status.code();
    let local = std::error::Error::source(status).map(|s| format!(": {}", error_chain(s)));
    let retry_info = retry_info(status.details());
    Failure {
        retryable: matches!(
            code,
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        ) || (code == Code::ResourceExhausted && retry_info.is_some()),
        retry_after: retry_info.map(|d| d.min(MAX_RETRY_AFTER)),
        too_large: code == Code::ResourceExhausted && retry_info.is_none(),
        message: format!("gRPC status {code:?}{}", local.unwrap_or_default()),
    }
}

/// `google.rpc.Status`, as much of it as we read.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}
/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}
/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}
/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The `google.rpc.RetryInfo` delay in a gRPC status's details (`grpc-status-details-bin`, a
/// `google.rpc.Status`), if there is one.
fn retry_info(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .filter(|any| any.type_url.ends_with("/google.rpc.RetryInfo"))
        .find_map(|any| {
            let delay = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
            let seconds = u64::try_from(delay.seconds).ok()?;
            let nanos = u32::try_from(delay.nanos).ok()?.min(999_999_999);
            Some(Duration::new(seconds, nanos))
        })
}

fn partial_success(answer: Bytes) -> Rejected {
    let partial = ExportTraceServiceResponse::decode(answer)
        .ok()?
        .partial_success?;
    (partial.rejected_spans > 0).then(|| {
        (
            u64::try_from(partial.rejected_spans).unwrap_or(0),
            partial.error_message,
        )
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Passes already-encoded protobuf through tonic unchanged.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    use super::*;

    fn failure(retryable: bool) -> Failure {
        Failure {
            retryable,
            retry_after: Some(Duration::from_millis(1)),
            too_large: false,
            message: "refused".to_owned(),
        }
    }

    fn failed(message: &str) -> Result<Rejected, Failed> {
        Err(Failed {
            message: message.to_owned(),
            too_large: false,
        })
    }

    #[tokio::test]
    async fn retryable_failures_are_tried_again_until_one_succeeds() {
        let calls = Cell::new(0);
        let result = with_retries(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(failure(true)) } else { Ok(None) } }
        })
        .await;
        assert_eq!(result, Ok(None));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn retries_stop_at_a_permanent_failure_or_after_three() {
        let calls = Cell::new(0);
        let result = with_retries(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            async { Err(failure(false)) }
        })
        .await;
        assert_eq!(result, failed("refused (1 attempt)"));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let result = with_retries(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            async { Err(failure(true)) }
        })
        .await;
        assert_eq!(result, failed("refused (4 attempts)"));
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_covers_every_attempt() {
        let result = with_retries(Duration::from_millis(300), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(None)
        })
        .await;
        assert_eq!(result, failed("no answer within 300ms"));

        // A wait the server asks for that would outlast the timeout ends the export at once.
        let result = with_retries(Duration::from_millis(300), || async {
            Err(Failure {
                retry_after: Some(Duration::from_secs(30)),
                ..failure(true)
            })
        })
        .await;
        assert_eq!(result, failed("refused (1 attempt)"));
    }

    #[test]
    fn refused_spans_in_a_partial_success_are_reported() {
        let answer = |rejected_spans: i64, error_message: &str| {
            Bytes::from(
                ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans,
                        error_message: error_message.to_owned(),
                    }),
                }
                .encode_to_vec(),
            )
        };
        assert_eq!(
            partial_success(answer(7, "too old")),
            Some((7, "too old".to_owned()))
        );
        assert_eq!(partial_success(answer(0, "a warning only")), None);
        assert_eq!(
            partial_success(Bytes::new()),
            None,
            "an empty answer is success"
        );
        assert_eq!(partial_success(Bytes::from_static(b"\xff\xff")), None);
    }

    #[test]
    fn only_transient_grpc_codes_are_retried() {
        use tonic::Code;
        for (code, retry) in [
            (Code::Unavailable, true),
            (Code::DeadlineExceeded, true),
            (Code::Aborted, true),
            (Code::ResourceExhausted, false),
            (Code::Internal, false),
            (Code::InvalidArgument, false),
            (Code::Unauthenticated, false),
            (Code::PermissionDenied, false),
        ] {
            let f = grpc_failure(&tonic::Status::new(code, "Bearer s3cret echoed back"));
            assert_eq!(f.retryable, retry, "{code:?}");
            assert!(!f.message.contains("s3cret"), "{}", f.message);
        }
    }

    /// `google.rpc.Status` details carrying a `RetryInfo` of `seconds`.
    fn retry_details(seconds: i64) -> Bytes {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
        };
        let status = RpcStatus {
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".to_owned(),
                value: info.encode_to_vec(),
            }],
        };
        Bytes::from(status.encode_to_vec())
    }

    /// RESOURCE_EXHAUSTED is retried after the delay the server names in `RetryInfo`; without
    /// one it means "too large", and the request is split rather than retried.
    #[test]
    fn resource_exhausted_is_retried_only_when_the_server_says_when() {
        use tonic::Code;
        let with_info =
            tonic::Status::with_details(Code::ResourceExhausted, "slow down", retry_details(2));
        let f = grpc_failure(&with_info);
        assert!(f.retryable && !f.too_large);
        assert_eq!(f.retry_after, Some(Duration::from_secs(2)));
        let f = grpc_failure(&tonic::Status::new(Code::ResourceExhausted, "too big"));
        assert!(!f.retryable && f.too_large);
        // Unavailable with a RetryInfo: retried after that delay, capped.
        let f = grpc_failure(&tonic::Status::with_details(
            Code::Unavailable,
            "",
            retry_details(3600),
        ));
        assert_eq!(f.retry_after, Some(MAX_RETRY_AFTER));
        assert_eq!(retry_info(b"\xff\x01garbage"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry at once"
        );
        assert_eq!(retry_after("120000", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn a_receivers_answer_is_read_up_to_the_cap() {
        let response = |len: usize| {
            reqwest::Response::from(http::Response::new(reqwest::Body::from(vec![b'x'; len])))
        };
        assert_eq!(
            read_capped(&mut response(10), MAX_RESPONSE_BYTES)
                .await
                .map(|b| b.len()),
            Some(10)
        );
        assert_eq!(
            read_capped(&mut response(MAX_RESPONSE_BYTES + 1), MAX_RESPONSE_BYTES).await,
            None
        );
    }

    #[test]
    fn outcomes_add_up_over_the_requests_of_a_batch() {
        let mut o = Outcome::default();
        o.refused(2, "old".into());
        o.refused(3, "older".into());
        o.failed(4, "down".into());
        o.failed(1, "still down".into());
        assert_eq!(o.refused, Some((5, "older".to_owned())));
        assert_eq!(o.failed, Some((5, "still down".to_owned())));
    }
}
