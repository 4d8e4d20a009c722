//! `tracedapp trace`: a trace from Jaeger's query API, drawn as a waterfall (see `traceview`).

use std::io::IsTerminal;

use clap::ValueEnum;
use serde_json::Value;

use crate::CliError;

/// Whether to colour the drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    Always,
    Never,
}

/// What to draw, and from where.
#[derive(Debug, Clone)]
pub struct Request {
    /// Jaeger's query base URL, e.g. `http://localhost:16686`.
    pub jaeger: String,
    pub trace_id: Option<String>,
    pub service: Option<String>,
    pub color: Color,
    /// Columns of the time axis.
    pub width: usize,
}

/// How far back "the latest trace of a service" looks.
const LOOKBACK: &str = "1h";

/// The most of Jaeger's answer read (a trace of tens of thousands of spans fits).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Fetches the trace and returns its drawing.
pub async fn trace(request: &Request) -> Result<String, CliError> {
    let base = request.jaeger.trim_end_matches('/');
    let trace = match (&request.trace_id, &request.service) {
        (Some(id), _) => {
            let id = id.trim().to_ascii_lowercase();
            if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(CliError::BadInput(format!(
                    "{id:?} is not a trace id (up to 32 hex digits)"
                )));
            }
            let answer = get(&format!("{base}/api/traces/{id}"), base).await?;
            traceview::jaeger::traces(&answer)
                .into_iter()
                .next()
                .ok_or_else(|| CliError::Api(format!("Jaeger at {base} has no trace {id}")))?
        }
        (None, Some(service)) => {
            let url = format!(
                "{base}/api/traces?service={}&limit=20&lookback={LOOKBACK}",
                encode(service)
            );
            let answer = get(&url, base).await?;
            traceview::jaeger::traces(&answer)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    CliError::Api(format!(
                        "Jaeger at {base} has no trace of service {service:?} in the last \
                         {LOOKBACK} (services it knows: `curl {base}/api/services`)"
                    ))
                })?
        }
        (None, None) => {
            return Err(CliError::BadInput(
                "give a trace id, or --service NAME for its latest trace".into(),
            ));
        }
    };
    let id = trace["traceID"].as_str().unwrap_or("?").to_owned();
    let style = traceview::Style {
        color: match request.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        },
        bar: request.width,
        ..traceview::Style::default()
    };
    let mut lines = traceview::draw(&id, &traceview::jaeger::spans(&trace), &style);
    lines.push(String::new());
    Ok(lines.join("\n"))
}

async fn get(url: &str, base: &str) -> Result<Value, CliError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| CliError::Api(e.to_string()))?;
    let mut response =
        client.get(url).send().await.map_err(|e| {
            CliError::Api(format!("cannot reach Jaeger's query API at {base}: {e}"))
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Value::Null);
    }
    if !status.is_success() {
        return Err(CliError::Api(format!("Jaeger answered {status} for {url}")));
    }
    let too_large = || {
        CliError::Api(format!(
            "Jaeger's answer to {url} is larger than {} MiB; ask for one trace by its id",
            MAX_ANSWER_BYTES / (1024 * 1024)
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::Api(format!("reading Jaeger's answer to {url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| CliError::Api(format!("Jaeger's answer to {url} is not JSON: {e}")))
}

/// Percent-encoding for a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
