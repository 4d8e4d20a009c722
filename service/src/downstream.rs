//! The `/chain` call: a CLIENT span around one HTTP GET, with the trace context injected.

use std::time::Duration;

use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::HeaderInjector;
use reqwest::Url;
use serde_json::Value;

use tracedapp_telemetry::http_client::{error_chain, http_client};

/// Another HTTP service that `/chain` calls (often another instance of this one).
#[derive(Debug, Clone)]
pub struct Downstream {
    url: Url,
    /// `url` as it may be shown: in answers, logs and the span's `url.full`.
    shown: String,
    client: reqwest::Client,
}

/// Why a downstream URL is refused at start.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "DOWNSTREAM_URL (not shown: it holds credentials): credentials do not belong in the \
         URL, which is shown in /chain's answers, logs and spans; /chain sends none"
    )]
    Credentials,
    #[error("DOWNSTREAM_URL={0}: expected an http:// or https:// URL")]
    Scheme(String),
}

/// Whether `url` may be a downstream: HTTP(S), without credentials in it (it is shown in
/// answers, logs and spans). Checked at start, before anything else runs.
pub fn check_url(url: &Url) -> Result<(), UrlError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(shown(url)));
    }
    Ok(())
}

/// Query parameters whose values are secrets (signed URLs), replaced by `REDACTED` wherever a
/// URL is shown, as the OpenTelemetry semantic conventions for `url.full` ask.
const SECRET_QUERY_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// `url` with the values of [`SECRET_QUERY_KEYS`] replaced by `REDACTED` (it has no
/// credentials: [`Downstream::new`] refuses those).
pub fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if SECRET_QUERY_KEYS.contains(&k.as_ref()) {
                    "REDACTED".into()
                } else {
                    v
                };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
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
    /// Refuses a URL with credentials in it (it would be shown) or that is not HTTP(S).
    pub fn new(url: Url, timeout: Duration) -> Result<Self, UrlError> {
        check_url(&url)?;
        // Redirects are not followed: a downstream must not turn /chain into a proxy to
        // whatever address it names.
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
        };
        let client = http_client(builder, "a downstream");
        let shown = shown(&url);
        Ok(Self { url, shown, client })
    }

    /// The URL as it may be shown (secrets in its query redacted).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// GETs the downstream inside a CLIENT span (child of the current context) whose context
    /// travels in the request headers.
    pub async fn call(&self) -> Result<Reply, DownstreamError> {
        let tracer = global::tracer("traced-service");
        let mut attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", self.shown.clone()),
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
        // reqwest's errors name the URL; ours is shown instead.
        let unreachable = |e: reqwest::Error| DownstreamError::Unreachable {
            url: self.shown.clone(),
            reason: error_chain(&e.without_url()),
        };
        let mut res = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status().as_u16();
        let url = self.shown.clone();
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
