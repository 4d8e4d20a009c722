//! OTLP span load at a fixed rate, for sizing a collector: requests of server spans shaped like
//! traced-service's (the same attribute keys), sent over OTLP/gRPC as the service sends them.
//! The host benchmark (`bench/collector.sh`) and the real-pod benchmark (the node tests) both
//! use it, so that their numbers describe the same load.

use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use tonic::transport::{Channel, Endpoint};

/// Spans per request: what the service's batch exporter sends under load is larger (512), but
/// smaller requests give the rate control a finer grain.
pub const SPANS_PER_REQUEST: u64 = 100;

/// A client sending span requests to one collector.
#[derive(Debug)]
pub struct Load {
    client: TraceServiceClient<Channel>,
    /// Requests sent so far (each request's spans get ids of their own).
    requests: u64,
}

/// What one run offered and what came back refused.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub offered: u64,
    pub refused: u64,
    pub elapsed: Duration,
}

impl Sent {
    pub fn per_second(&self) -> f64 {
        self.offered as f64 / self.elapsed.as_secs_f64()
    }

    pub fn accepted(&self) -> u64 {
        self.offered - self.refused
    }
}

impl Load {
    /// A client of the OTLP/gRPC receiver at `url` (`http://127.0.0.1:4317`).
    pub async fn connect(url: String) -> Result<Self, String> {
        let client = TraceServiceClient::connect(url.clone())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            client,
            requests: 0,
        })
    }

    /// A client of the OTLP/gRPC receiver at `addr` as seen from inside another network
    /// namespace (`ns`: a pod's, `/proc/<pid>/ns/net`): how the app in that pod reaches its
    /// sidecar on `127.0.0.1`. The connection is made once, from a thread that joins the
    /// namespace, and stays there.
    pub async fn connect_in(ns: &Path, addr: std::net::SocketAddr) -> Result<Self, String> {
        let shown = ns.display().to_string();
        let ns = ns.to_owned();
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let ns = ns.clone();
                async move {
                    let stream =
                        crate::node::netns::connect_from(&ns, addr, Duration::from_secs(5))?;
                    stream.set_nodelay(true)?;
                    stream.set_nonblocking(true)?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::TcpStream::from_std(stream)?,
                    ))
                }
            }))
            .await
            .map_err(|e| format!("{addr} inside {shown}: {e}"))?;
        Ok(Self {
            client: TraceServiceClient::new(channel),
            requests: 0,
        })
    }

    /// Sends requests at `rate` spans/s (`None`: as fast as they are answered) for `length`,
    /// calling `tick` about every 200 ms (to sample what the run does to the collector).
    pub async fn run(
        &mut self,
        rate: Option<u64>,
        length: Duration,
        mut tick: impl FnMut(),
    ) -> Sent {
        let started = Instant::now();
        let (mut offered, mut refused) = (0u64, 0u64);
        let mut last_tick = Instant::now();
        tick();
        while started.elapsed() < length {
            if let Some(rate) = rate {
                // Where the schedule says we should be; sleep until the next request is due.
                let due = Duration::from_secs_f64(offered as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            self.requests += 1;
            offered += SPANS_PER_REQUEST;
            match self.client.export(request(self.requests)).await {
                Ok(answer) => {
                    if let Some(partial) = answer.into_inner().partial_success {
                        refused += partial.rejected_spans as u64;
                    }
                }
                Err(_) => refused += SPANS_PER_REQUEST,
            }
            if last_tick.elapsed() >= Duration::from_millis(200) {
                tick();
                last_tick = Instant::now();
            }
        }
        Sent {
            offered,
            refused,
            elapsed: started.elapsed(),
        }
    }
}

/// Request number `n`: [`SPANS_PER_REQUEST`] server spans shaped like traced-service's.
pub fn request(n: u64) -> ExportTraceServiceRequest {
    let text = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let int = |k: &str, v: i64| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let id = n * SPANS_PER_REQUEST + i + 1;
            // Ids as random as real ones (they are most of what gzip cannot shrink), but the
            // same for the same `n`: splitmix64 of the span's number.
            let (a, b) = (mix(id), mix(id ^ 0x5851_f42d_4c95_7f2d));
            // Durations between 0.1 and 10 ms, as a real service's vary.
            let duration = 100_000 + a % 9_900_000;
            Span {
                // X-Ray's shape: the first 4 bytes are the epoch second (its exporter drops
                // spans whose trace id does not start with a recent time).
                trace_id: [
                    &((now / 1_000_000_000) as u32).to_be_bytes()[..],
                    &a.to_be_bytes(),
                    &(b as u32).to_be_bytes(),
                ]
                .concat(),
                span_id: b.to_be_bytes().to_vec(),
                name: "GET /chain".into(),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: now - duration,
                end_time_unix_nano: now,
                attributes: vec![
                    text("http.request.method", "GET"),
                    text("http.route", "/chain"),
                    text("url.path", "/chain"),
                    text("url.scheme", "http"),
                    text("server.address", "shop.demo.svc"),
                    int("server.port", 8080),
                    text(
                        "client.address",
                        &format!("10.88.{}.{}", a % 4, b % 250 + 2),
                    ),
                    text("user_agent.original", "curl/8.5.0"),
                    int("http.response.status_code", 200),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "shop"),
                    text("service.version", "0.1.0"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// splitmix64: a well-mixed 64-bit value from a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
