//! `traced-service`: the reference traced app that TracedApp deploys.
//!
//! An Axum service (`/`, `/health`, `/metrics-test`, `/chain`) that exports traces and metrics
//! over OTLP, configured by the standard `OTEL_*` environment variables, and that loses no span
//! when it stops.
//!
//! # Layout
//! - [`app`]: the routes and `fn app(state) -> Router`; start here.
//! - [`observe`]: the middleware that makes each request a SERVER span and metric points.
//! - [`downstream`]: the `/chain` call, a CLIENT span with the trace context injected.
//! - [`config`]: `OTEL_*` variables parsed and checked up front.
//! - [`telemetry`]: providers, propagators, our span exporter, bounded export with counted
//!   drops, JSON logs.
//! - [`server`]: serving with a graceful, bounded shutdown.

pub mod app;
pub mod config;
pub mod downstream;
pub mod observe;
pub mod server;
pub mod telemetry;

pub use app::{AppState, app};

/// An error with its causes, `top: cause: root`. HTTP clients' top-level messages say little
/// ("error sending request"); the causes say what happened ("connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A client from `builder`, even on a system without CA certificates (a minimal image): then
/// plain HTTP still works and HTTPS fails with a certificate error, which a warning naming
/// `what` says once, at start. (`reqwest` refuses to build a client with no roots at all.)
pub(crate) fn http_client(
    builder: impl Fn() -> reqwest::ClientBuilder,
    what: &str,
) -> reqwest::Client {
    let (client, missing) = build_or_without_roots(|no_roots| {
        let builder = builder();
        (if no_roots {
            builder.tls_certs_only([])
        } else {
            builder
        })
        .build()
    });
    warn_if_no_ca_certificates(missing, what);
    client
}

/// [`http_client`] for a blocking client (what `opentelemetry-otlp`'s HTTP exporters call),
/// redirects not followed. It starts a runtime of its own, so it is built on a thread outside
/// ours; the warning is given here, where the caller's log subscriber is.
pub(crate) fn blocking_http_client(what: &str) -> reqwest::blocking::Client {
    let (client, missing) = std::thread::spawn(|| {
        build_or_without_roots(|no_roots| {
            let builder =
                reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none());
            (if no_roots {
                builder.tls_certs_only([])
            } else {
                builder
            })
            .build()
        })
    })
    .join()
    .expect("building an HTTP client does not panic");
    warn_if_no_ca_certificates(missing, what);
    client
}

/// `build(false)` (the system's CA certificates), or if that fails `build(true)` (none), with
/// the first failure.
fn build_or_without_roots<C>(
    build: impl Fn(bool) -> reqwest::Result<C>,
) -> (C, Option<reqwest::Error>) {
    match build(false) {
        Ok(client) => (client, None),
        Err(e) => {
            let client = build(true).expect("a client with an empty root store always builds");
            (client, Some(e))
        }
    }
}

fn warn_if_no_ca_certificates(missing: Option<reqwest::Error>, what: &str) {
    if let Some(error) = missing {
        tracing::warn!(
            error = error_chain(&error),
            "no CA certificates on this system: {what} over https cannot be verified"
        );
    }
}
