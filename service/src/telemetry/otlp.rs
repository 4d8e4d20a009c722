//! Our OTLP span exporter: each batch is encoded by [`TraceEncoder`] straight from the SDK's
//! spans, then sent over gRPC (tonic) or HTTP (reqwest), retried as the OTLP spec says.
//!
//! The batch processor calls [`OtlpSpanExporter::export`] on a thread of its own; the request
//! itself runs as a task on the service's Tokio runtime, so both transports work the same way
//! and the timeout covers every attempt.

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
use crate::{error_chain, http_client};

/// The gRPC method every OTLP trace receiver serves.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Retries after the first attempt, and their backoff (the OTLP exporters' recommended policy).
const MAX_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_JITTER_NANOS: u32 = 100_000_000;

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
            endpoint: self.endpoint.clone(),
        }
    }

    /// Encodes and sends one batch: the spans the receiver refused, or why it failed.
    async fn send(&self, batch: Vec<SpanData>) -> Result<Rejected, String> {
        let mut body = self.encoder.encode(&batch);
        drop(batch);
        if let Transport::Http { gzip: true, .. } = self.transport {
            body = gzip(&body);
        }
        let body = Bytes::from(body);
        let transport = self.transport.clone();
        let timeout = self.timeout;
        let task = self
            .runtime
            .spawn(async move { with_retries(timeout, || transport.send(body.clone())).await });
        task.await.unwrap_or_else(|join| Err(join.to_string()))
    }
}

impl opentelemetry_sdk::trace::SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.send(batch).await;
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        match result {
            Ok(None) => Ok(()),
            Ok(Some((count, message))) => {
                self.drops.dropped("export_failed", count, &|| {
                    format!("{} refused {count} spans: {message}", self.endpoint)
                });
                Ok(())
            }
            Err(message) => {
                self.drops.dropped("export_failed", n as u64, &|| {
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
    /// How long the server asked us to wait (HTTP `Retry-After`).
    retry_after: Option<Duration>,
    message: String,
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
                let response = request.body(body).send().await.map_err(|e| Failure {
                    retryable: true,
                    retry_after: None,
                    message: error_chain(&e),
                })?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(60)));
                let answer = response.bytes().await.unwrap_or_default();
                if status.is_success() {
                    Ok(partial_success(answer))
                } else {
                    Err(Failure {
                        retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
                        retry_after,
                        message: format!("HTTP {status}"),
                    })
                }
            }
        }
    }
}

/// A client on a connection of its own (made at the first export).
fn grpc_client(
    endpoint: &tonic::transport::Endpoint,
    gzip: bool,
) -> tonic::client::Grpc<tonic::transport::Channel> {
    let client = tonic::client::Grpc::new(endpoint.connect_lazy());
    if gzip {
        client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
    } else {
        client
    }
}

/// Tries `send` until it succeeds, fails for good, or `timeout` runs out.
async fn with_retries<F, Fut>(timeout: Duration, mut send: F) -> Result<Rejected, String>
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
            Err(_) => return Err(format!("no answer within {timeout:?}")),
        };
        let wait = failure.retry_after.unwrap_or(backoff + jitter());
        let left = deadline.saturating_duration_since(Instant::now());
        if !failure.retryable || attempt == MAX_RETRIES || wait >= left {
            let tries = match attempt {
                0 => "1 attempt".to_owned(),
                n => format!("{} attempts", n + 1),
            };
            return Err(format!("{} ({tries})", failure.message));
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

/// gRPC codes the OTLP spec says to retry. The status message is left out: a server may echo
/// a request's credentials in it.
fn grpc_failure(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let code = status.code();
    let local = std::error::Error::source(status).map(|s| format!(": {}", error_chain(s)));
    Failure {
        retryable: matches!(
            code,
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        ),
        retry_after: None,
        message: format!("gRPC status {code:?}{}", local.unwrap_or_default()),
    }
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
            message: "refused".to_owned(),
        }
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
        assert_eq!(result, Err("refused (1 attempt)".to_owned()));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let result = with_retries(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            async { Err(failure(true)) }
        })
        .await;
        assert_eq!(result, Err("refused (4 attempts)".to_owned()));
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_covers_every_attempt() {
        let result = with_retries(Duration::from_millis(300), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(None)
        })
        .await;
        assert_eq!(result, Err("no answer within 300ms".to_owned()));

        // A wait the server asks for that would outlast the timeout ends the export at once.
        let result = with_retries(Duration::from_millis(300), || async {
            Err(Failure {
                retry_after: Some(Duration::from_secs(30)),
                ..failure(true)
            })
        })
        .await;
        assert_eq!(result, Err("refused (1 attempt)".to_owned()));
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
            (Code::InvalidArgument, false),
            (Code::Unauthenticated, false),
            (Code::PermissionDenied, false),
        ] {
            let f = grpc_failure(&tonic::Status::new(code, "Bearer s3cret echoed back"));
            assert_eq!(f.retryable, retry, "{code:?}");
            assert!(!f.message.contains("s3cret"), "{}", f.message);
        }
    }
}
