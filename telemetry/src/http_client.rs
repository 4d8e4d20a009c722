//! The service's outgoing HTTP clients (the `/chain` call, the OTLP/HTTP exporter): built one
//! way, with the platform's CA certificates when there are any, and errors said with their
//! causes.

/// An error with its causes, `top: cause: root`. HTTP clients' top-level messages say little
/// ("error sending request"); the causes say what happened ("connection refused").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
pub fn http_client(builder: impl Fn() -> reqwest::ClientBuilder, what: &str) -> reqwest::Client {
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
pub fn blocking_http_client(what: &str) -> reqwest::blocking::Client {
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
