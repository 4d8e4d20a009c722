//! The `/chain` call: a CLIENT span around one HTTP GET, with the trace context injected.

use std::time::Duration;

use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::HeaderInjector;
use reqwest::Url;
use serde_json::Value;

use crate::{error_chain, http_client};

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
    #[error("downstream {url} answered {status}, a redirect, which /chain does not follow")]
    Redirect { url: String, status: u16 },
    #[error("downstream {url} answered more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
}

/// The most of a downstream's answer `/chain` reads: a bigger one is a 502, not a memory spike.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl Downstream {
    /// A client for `url`. Without the system's CA certificates (an image that lacks them),
    /// plain-HTTP downstreams still work and HTTPS ones fail with a certificate error, said
    /// once at start: /chain must not take the service down.
    pub fn new(url: Url, timeout: Duration) -> Self {
        // Redirects are not followed: a downstream must not turn /chain into a proxy to
        // whatever address it names.
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
        };
        let client = http_client(builder, "a downstream");
        Self { url, client }
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// GETs the downstream inside a CLIENT span (child of the current context) whose context
    /// travels in the request headers.
    pub async fn call(&self) -> Result<Reply, DownstreamError> {
        let tracer = global::tracer("traced-service");
        let mut attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", self.url.to_string()),
            KeyValue::new(
                "server.address",
                self.url.host_str().unwrap_or_default().to_owned(),
            ),
        ];
        if let Some(port) = self.url.port_or_known_default() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = tracer
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start(&tracer);
        let cx = Context::current_with_span(span);
        let mut headers = http::HeaderMap::new();
        global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(&mut headers));
        });
        let result = self.send(headers).with_context(cx.clone()).await;
        let span = cx.span();
        match &result {
            Ok(reply) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(reply.status),
                ));
            }
            Err(e) => {
                if let DownstreamError::Status { status, .. }
                | DownstreamError::Redirect { status, .. } = e
                {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(*status),
                    ));
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                } else if let DownstreamError::TooLarge { .. } = e {
                    span.set_attribute(KeyValue::new("error.type", "response_too_large"));
                } else {
                    span.set_attribute(KeyValue::new("error.type", "connect_or_timeout"));
                }
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
        result
    }

    async fn send(&self, headers: http::HeaderMap) -> Result<Reply, DownstreamError> {
        let unreachable = |e: reqwest::Error| DownstreamError::Unreachable {
            url: self.url.to_string(),
            reason: error_chain(&e),
        };
        let mut res = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status().as_u16();
        let url = self.url.to_string();
        if res.status().is_server_error() {
            return Err(DownstreamError::Status { url, status });
        }
        if res.status().is_redirection() {
            return Err(DownstreamError::Redirect { url, status });
        }
        let too_large = |url: String| DownstreamError::TooLarge {
            url,
            limit: MAX_BODY_BYTES,
        };
        if res
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large(url));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large(url));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Reply { status, body })
    }
}
