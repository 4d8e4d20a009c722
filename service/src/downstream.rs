//! The `/chain` call: a CLIENT span around one HTTP GET, with the trace context injected.

use std::time::Duration;

use opentelemetry_http::HeaderInjector;
use reqwest::Url;
use serde_json::Value;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Another HTTP service that `/chain` calls (often another instance of this one).
#[derive(Debug, Clone)]
pub struct Downstream {
    url: Url,
    client: reqwest::Client,
}

/// What the downstream answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The body as JSON, or as a string when it is not JSON.
    pub body: Value,
}

/// Why the downstream call failed; the message is safe to return to a client.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("downstream {url} did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("downstream {url} answered {status}")]
    Status { url: String, status: u16 },
}

impl Downstream {
    pub fn new(url: Url, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a reqwest client with only a timeout set always builds");
        Self { url, client }
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// GETs the downstream inside a CLIENT span whose context travels in the request headers.
    pub async fn call(&self) -> Result<Reply, DownstreamError> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let span = tracing::info_span!(
            "downstream",
            otel.name = "GET",
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = "GET",
            url.full = self.url.as_str(),
            server.address = host,
            server.port = self.url.port_or_known_default(),
            http.response.status_code = Empty,
            "error.type" = Empty,
        );
        let mut headers = http::HeaderMap::new();
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(&mut headers));
        });
        let result = self.send(headers).instrument(span.clone()).await;
        match &result {
            Ok(reply) => {
                span.record("http.response.status_code", reply.status);
            }
            Err(e) => {
                if let DownstreamError::Status { status, .. } = e {
                    span.record("http.response.status_code", status);
                    span.record("error.type", status.to_string());
                } else {
                    span.record("error.type", "connect_or_timeout");
                }
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    async fn send(&self, headers: http::HeaderMap) -> Result<Reply, DownstreamError> {
        let unreachable = |e: reqwest::Error| DownstreamError::Unreachable {
            url: self.url.to_string(),
            reason: error_chain(&e),
        };
        let res = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status().as_u16();
        if res.status().is_server_error() {
            return Err(DownstreamError::Status {
                url: self.url.to_string(),
                status,
            });
        }
        let bytes = res.bytes().await.map_err(unreachable)?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Reply { status, body })
    }
}

/// `reqwest`'s top-level message hides the cause ("error sending request"); show the chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
