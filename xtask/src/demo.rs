//! `cargo xtask demo`: the seed's docker-compose system (the seed is the Flask guide this
//! project rebuilds, see the README), without Docker, on 127.0.0.1, with the AWS half included.
//!
//! Jaeger v2; X-Ray over OTLP (the path AWS recommends, `protocol: otlp`), to a local stand-in
//! for X-Ray's OTLP endpoint that checks every request's SigV4 signature as AWS does (no
//! emulator implements that endpoint); moto standing in for CloudWatch Logs ← the
//! OpenTelemetry Collector running the configuration rendered from
//! `manifests/examples/aws.yaml` (only the Jaeger, X-Ray and CloudWatch endpoints pointed at
//! the local programs, and a demo access key) ← two traced-service processes, `checkout`
//! calling `checkout-backend` on `/chain`. Metrics on the collector's Prometheus exporter and
//! as EMF records in CloudWatch Logs. Stays up until Ctrl-C, then stops everything.
//!
//! On a fresh machine Jaeger builds last, in the background: the first trace is drawn from
//! what X-Ray received, then Jaeger starts and the collector is restarted, so that its Jaeger exporter
//! connects at once (a gRPC connection that failed for minutes waits up to two minutes before
//! trying again). The waits follow what happens — traffic is sent again while waiting, each
//! wait ends on its outcome or a generous deadline — and a failure is one message: what was
//! awaited, the log lines that explain it, and where the whole logs are.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use testkit::collector::{Collector, Options as CollectorOptions};
use testkit::jaeger::Jaeger;
use testkit::moto::Moto;
use testkit::xray_otlp::{Key, Verifier};
use testkit::{Process, TempDir, free_port, wait_until};

use crate::jobs;

/// The example the demo renders.
const EXAMPLE: &str = "manifests/examples/aws.yaml";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Port of the app (`checkout`); its backend gets a free port.
    #[arg(long, default_value_t = 3000)]
    app_port: u16,
    /// Port of the Jaeger UI and query API.
    #[arg(long, default_value_t = 16686)]
    jaeger_port: u16,
    /// Port of the collector's Prometheus exporter (the app's metrics).
    #[arg(long, default_value_t = 8889)]
    prometheus_port: u16,
    /// A Jaeger v2 release binary, with its UI (the one built here from Go modules serves a
    /// placeholder page instead); the demo then prints the UI's link to the trace.
    #[arg(long, env = "TRACEDAPP_JAEGER")]
    jaeger_bin: Option<std::path::PathBuf>,
    /// (For bench/demo-cold.sh) start Jaeger this many seconds after it is ready, as a slower
    /// build would: the late-Jaeger path, on a warm machine too.
    #[arg(long, hide = true, default_value_t = 0)]
    delay_jaeger_secs: u64,
}

/// The longest a trace may take to show up once everything runs: the collector batches for up
/// to 10 s and retries a failed export for up to a minute; traffic is sent again meanwhile.
const TRACE_WAIT: Duration = Duration::from_secs(180);

/// Log lines that explain a failure, from `logs`: errors and warnings, without the noise that
/// buried the cause before (moto's access log, Jaeger warning about its own self-tracing).
fn explain(logs: &[(&str, std::path::PathBuf)]) -> String {
    let mut out = Vec::new();
    for (name, path) in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                (lower.contains("error") || lower.contains("warn") || lower.contains("fail"))
                    && !lower.contains("\"get /")
                    && !lower.contains("\"post /")
                    && !lower.contains("self-tracing")
                    && !lower.contains("jaeger_tracer")
            })
            .collect();
        let shown = &lines[lines.len().saturating_sub(8)..];
        if !shown.is_empty() {
            out.push(format!("  {name}:"));
            out.extend(
                shown
                    .iter()
                    .map(|l| format!("    {}", l.chars().take(300).collect::<String>())),
            );
        }
    }
    out.push("  whole logs:".to_owned());
    out.extend(
        logs.iter()
            .map(|(name, p)| format!("    {name}: {}", p.display())),
    );
    out.join("\n")
}

fn check_free(port: u16, flag: &str) -> Result<()> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!("port {port} on 127.0.0.1 is taken; pick another with {flag} <port>");
    }
    Ok(())
}

/// Starts `cargo build -p traced-service` in the background; [`run`] waits for it.
///
/// The dev profile, like `cargo xtask` itself: the two share most of their compiled crates, so
/// on a fresh machine this takes about 30 s of CPU instead of a release build's 4 minutes. A
/// demo sends a handful of requests; the benchmarks use release builds.
pub fn build_service() -> Result<std::process::Child> {
    eprintln!("demo: building traced-service while the tools are set up ...");
    Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "traced-service"])
        .spawn()
        .context("starting cargo build")
}

impl Options {
    /// Whether the demo needs the Jaeger that `cargo xtask setup` builds (no `--jaeger-bin`).
    pub fn builds_jaeger(&self) -> bool {
        self.jaeger_bin.is_none()
    }
}

/// Fails at once when a port the demo needs is taken (before anything is built).
pub fn check_ports(o: &Options) -> Result<()> {
    check_free(o.app_port, "--app-port")?;
    check_free(o.jaeger_port, "--jaeger-port")?;
    check_free(o.prometheus_port, "--prometheus-port")
}

/// Runs the demo once the service is built (`build`) and moto and the collector are set up.
/// `jaeger_build` is Jaeger's build when it is still going on in the background: then the
/// collector starts exporting to the port Jaeger will listen on, the first trace is drawn from
/// X-Ray, and the demo goes on once Jaeger is up.
pub fn run(
    o: &Options,
    mut build: std::process::Child,
    mut jaeger_build: Option<jobs::Background>,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    if !build.wait()?.success() {
        bail!("building traced-service failed");
    }
    let service_bin = std::env::current_dir()?.join("target/debug/traced-service");
    if let Some(done) = jaeger_build.take_if(|b| b.is_finished()) {
        jobs::join(done)?;
    }
    if let Some(bin) = o.jaeger_bin.as_ref().filter(|b| !b.is_file()) {
        bail!("--jaeger-bin {}: no such file", bin.display());
    }
    // Jaeger's OTLP/gRPC port, chosen now: the collector exports there from its start, whether
    // Jaeger starts now or once its build is done.
    let jaeger_otlp_port = free_port();
    let start_jaeger = || {
        eprintln!("demo: starting Jaeger on :{} ...", o.jaeger_port);
        // Looked up only now: the one built here may have just been finished.
        let bin = o.jaeger_bin.clone().unwrap_or_else(testkit::tools::jaeger);
        Jaeger::start_binary(&bin, Some(o.jaeger_port), Some(jaeger_otlp_port))
    };
    // Jaeger starts now, or late: once its build is done (or after the bench's delay).
    let late = jaeger_build.is_some() || o.delay_jaeger_secs > 0;
    let mut jaeger = (!late).then(start_jaeger);
    eprintln!("demo: starting moto (CloudWatch Logs) and a stand-in for X-Ray's OTLP endpoint ...");
    let aws = Moto::start();

    let mut app = tracedapp_api::load::from_yaml(&std::fs::read_to_string(EXAMPLE)?)
        .map_err(|e| anyhow::anyhow!("{EXAMPLE}: {e}"))?;
    let ex = &mut app.spec.exporters;
    let j = ex
        .jaeger
        .as_mut()
        .context("the example exports to Jaeger")?;
    j.endpoint = format!("127.0.0.1:{jaeger_otlp_port}");
    j.tls.insecure = true;
    let xray_spec = ex.xray.as_mut().context("the example exports to X-Ray")?;
    let region = xray_spec.region.clone().context("an X-Ray region")?;
    let protocol = serde_json::to_value(xray_spec.protocol)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The collector signs with this key; the stand-in knows it, as AWS knows an account's.
    let key = Key::new("AKIDTRACEDAPPDEMO", "demo-secret-known-to-the-stand-in");
    let xray = Verifier::start(testkit::xray_otlp::Options {
        region: region.clone(),
        keys: vec![key.clone()],
        moto_url: None,
    });
    xray_spec.endpoint = Some(xray.endpoint());
    let cw = ex
        .cloudwatch_metrics
        .as_mut()
        .context("the example exports to CloudWatch")?;
    cw.endpoint = Some(aws.url.clone());
    let (namespace, log_group) = (cw.namespace.clone(), cw.log_group.clone());
    eprintln!(
        "demo: starting the collector with the config rendered from {EXAMPLE} (X-Ray over \
         {protocol}) ..."
    );
    let mut collector = Collector::start_for(
        &app.spec,
        &CollectorOptions {
            // moto takes any key for CloudWatch Logs.
            env: key.env(),
            prometheus_port: Some(o.prometheus_port),
            ..Default::default()
        },
    );

    let service = app
        .spec
        .service_name
        .clone()
        .unwrap_or_else(|| "checkout".into());
    let backend = format!("{service}-backend");
    let dir = TempDir::new("demo");
    let backend_port = free_port();
    let start_service = |name: &str, port: u16, downstream: Option<String>| {
        let mut cmd = Command::new(&service_bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .env("OTEL_SERVICE_NAME", name)
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=demo",
            )
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_grpc_url)
            .env("OTEL_METRIC_EXPORT_INTERVAL", "5000")
            .env("LOG_FORMAT", "json");
        if let Some(url) = downstream {
            cmd.env("DOWNSTREAM_URL", url);
        }
        let p = Process::start(name, cmd, dir.path().join(format!("{name}.log")));
        wait_until(
            &format!("{name} to listen"),
            Duration::from_secs(30),
            || testkit::process::listening(port),
        );
        p
    };
    eprintln!(
        "demo: starting {service} (:{}) and {backend} (:{backend_port}) ...",
        o.app_port
    );
    let _backend = start_service(&backend, backend_port, None);
    let _frontend = start_service(
        &service,
        o.app_port,
        Some(format!("http://127.0.0.1:{backend_port}/")),
    );

    let app_url = format!("http://127.0.0.1:{}", o.app_port);
    send_traffic(&app_url);
    let style = traceview::Style {
        color: std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none(),
        ..traceview::Style::default()
    };

    let logs = |collector: &Collector, jaeger: Option<&Jaeger>| {
        let mut l = vec![
            ("collector", collector.log_path()),
            ("moto", aws.log_path()),
            ("checkout", dir.path().join(format!("{service}.log"))),
            (
                "checkout-backend",
                dir.path().join(format!("{backend}.log")),
            ),
        ];
        if let Some(j) = jaeger {
            l.push(("jaeger", j.log_path()));
        }
        l
    };
    if late {
        eprintln!(
            "demo: Jaeger is not up yet; waiting for the first /chain trace in X-Ray (over OTLP) ..."
        );
        let first = wait_for_trace(&app_url, &stop, || {
            chain_trace(&xray.spans(), None).map(Value::String)
        })
        .with_context(|| {
            format!(
                "no /chain trace reached X-Ray's OTLP endpoint (the local stand-in) within {} s; \
                 what the logs say:\n{}",
                TRACE_WAIT.as_secs(),
                explain(&logs(&collector, None))
            )
        })?;
        let Some(Value::String(id)) = first else {
            eprintln!("\ndemo: stopping ...");
            return Ok(());
        };
        println!();
        println!(
            "Your first trace: /chain, through the collector into X-Ray over OTLP (SigV4-signed, \
             checked by the local stand-in). Jaeger is still building; the same kind of trace \
             from Jaeger follows when it is up."
        );
        for line in traceview::draw(&id, &otlp_spans(&xray.spans(), &id), &style) {
            println!("  {line}");
        }
        println!();
        if let Some(pending) = jaeger_build
            && !jobs::join_unless(pending, &stop)?
        {
            eprintln!("\ndemo: stopping ...");
            return Ok(());
        }
        if o.delay_jaeger_secs > 0 {
            eprintln!(
                "demo: starting Jaeger {} s late (--delay-jaeger-secs) ...",
                o.delay_jaeger_secs
            );
            std::thread::sleep(Duration::from_secs(o.delay_jaeger_secs));
        }
        jaeger = Some(start_jaeger());
        // Its Jaeger exporter has been failing to connect since the start: a new collector
        // connects now instead of after its grown back-off (up to two minutes).
        eprintln!("demo: Jaeger is up; restarting the collector so that it connects to it now ...");
        collector.restart();
    }
    let jaeger = jaeger.context("Jaeger was started above")?;
    eprintln!(
        "demo: waiting for a /chain trace in Jaeger (the collector batches for up to 10 s; traffic is sent again meanwhile) ..."
    );
    let jaeger_trace = wait_for_trace(&app_url, &stop, || {
        jaeger.traces(&service, 20).into_iter().find(|t| {
            traceview::jaeger::spans(t)
                .iter()
                .any(|s| s.name == "GET /chain")
                && traceview::jaeger::spans(t).len() >= 3
        })
    })
    .with_context(|| {
        format!(
            "no /chain trace reached Jaeger within {} s of it starting; what the logs say:\n{}",
            TRACE_WAIT.as_secs(),
            explain(&logs(&collector, Some(&jaeger)))
        )
    })?;
    let Some(jaeger_trace) = jaeger_trace else {
        eprintln!("\ndemo: stopping ...");
        return Ok(());
    };
    let trace_id = jaeger_trace["traceID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The same trace in X-Ray: shown if it is there within a minute (Jaeger's is the one the
    // demo waits for).
    let xray_has_it = testkit::process::try_wait_until(Duration::from_secs(60), || {
        chain_trace(&xray.spans(), Some(&trace_id)).is_some()
    });
    let mut emf = Vec::new();
    if let Some(group) = &log_group {
        let _ = testkit::process::try_wait_until(Duration::from_secs(20), || {
            emf = aws.log_events(&region, group);
            emf.iter().any(|(_, m)| m.contains("app.requests"))
        });
    }

    let ui = format!("http://127.0.0.1:{}", o.jaeger_port);
    println!();
    println!("TracedApp demo is running. Ctrl-C stops everything.");
    println!("  app:              {app_url}/   (try /chain, /metrics-test)");
    if o.jaeger_bin.is_some() {
        println!("  Jaeger UI:        {ui}/search?service={service}");
        println!("  a /chain trace:   {ui}/trace/{trace_id}");
    } else {
        println!("  Jaeger traces:    {ui}/api/traces?service={service}");
        println!("  a /chain trace:   {ui}/api/traces/{trace_id}");
        println!(
            "                    drawn: cargo run -p tracedapp-cli -- trace {trace_id} --jaeger {ui}"
        );
        println!(
            "                    (Jaeger's UI: give a release binary with --jaeger-bin; the one built"
        );
        println!("                    here from Go modules serves a placeholder page)");
    }
    println!(
        "  Prometheus:       {}   (app_requests_total, app_request_duration_seconds)",
        collector.prometheus_url
    );
    println!("  collector config: {}", collector.config_file.display());
    let signed = xray.outcomes().iter().filter(|o| o.status == 200).count();
    println!(
        "  X-Ray (OTLP):     {}/v1/traces   region {region}: the path AWS recommends \
         (exporters.xray.protocol: otlp); a local stand-in that checks every request's SigV4 \
         signature ({signed} accepted so far)",
        xray.endpoint()
    );
    println!("  CloudWatch (moto): {}   region {region}", aws.url);
    println!();
    println!("The /chain trace, from Jaeger:");
    for line in traceview::draw(&trace_id, &traceview::jaeger::spans(&jaeger_trace), &style) {
        println!("  {line}");
    }
    if xray_has_it {
        println!();
        println!("The same trace as X-Ray received it (OTLP, signed):");
        for line in traceview::draw(&trace_id, &otlp_spans(&xray.spans(), &trace_id), &style) {
            println!("  {line}");
        }
    }
    if !emf.is_empty() {
        println!();
        println!(
            "CloudWatch metrics (EMF records in {}, namespace {namespace}; the latest interval):",
            log_group.as_deref().unwrap_or_default()
        );
        for line in emf_summary(&emf) {
            println!("  {line}");
        }
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("\ndemo: stopping ...");
    Ok(())
}

/// The id of a whole `/chain` trace (its root and the two spans under it) among `spans`, or
/// of trace `id` if it is one.
fn chain_trace(spans: &[testkit::otlp::Span], id: Option<&str>) -> Option<String> {
    spans
        .iter()
        .filter(|s| s.name == "GET /chain" && id.is_none_or(|id| s.trace_id == id))
        .map(|root| &root.trace_id)
        .find(|t| spans.iter().filter(|s| &s.trace_id == *t).count() >= 3)
        .cloned()
}

/// The spans of trace `id`, as traceview draws them.
fn otlp_spans(spans: &[testkit::otlp::Span], id: &str) -> Vec<traceview::Span> {
    let ids: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s.trace_id == id)
        .map(|s| s.span_id.as_str())
        .collect();
    spans
        .iter()
        .filter(|s| s.trace_id == id)
        .map(|s| traceview::Span {
            id: s.span_id.clone(),
            parent: Some(s.parent_span_id.clone()).filter(|p| ids.contains(p.as_str())),
            service: s.service.clone(),
            name: s.name.clone(),
            start_us: i64::try_from(s.start_unix_nano / 1000).unwrap_or(i64::MAX),
            duration_us: i64::try_from(s.end_unix_nano.saturating_sub(s.start_unix_nano) / 1000)
                .unwrap_or(i64::MAX),
            kind: match s.kind {
                testkit::otlp::KIND_SERVER => "server",
                testkit::otlp::KIND_CLIENT => "client",
                _ => "internal",
            }
            .to_owned(),
            error: s.status == testkit::otlp::STATUS_ERROR,
            http: traceview::http_attributes(|k| s.attrs.get(k).cloned()),
        })
        .collect()
}

/// Waits up to [`TRACE_WAIT`] for `find` to find a trace, sending traffic again every 15 s (a
/// collector that just (re)connected needs new spans); `Ok(None)` on Ctrl-C, `Err` on timeout.
fn wait_for_trace(
    app_url: &str,
    stop: &AtomicBool,
    mut find: impl FnMut() -> Option<Value>,
) -> Result<Option<Value>> {
    let started = std::time::Instant::now();
    let mut last_traffic = started;
    while started.elapsed() < TRACE_WAIT {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        if let Some(trace) = find() {
            return Ok(Some(trace));
        }
        if last_traffic.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "demo: still waiting ({} s); sending traffic again ...",
                started.elapsed().as_secs()
            );
            send_traffic(app_url);
            last_traffic = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("timed out")
}

/// A few requests to the front service: two chains, a 404, the metrics endpoint.
fn send_traffic(app_url: &str) {
    eprintln!("demo: sending traffic ...");
    for path in [
        "/",
        "/health",
        "/chain",
        "/metrics-test",
        "/chain",
        "/no-such-page",
        "/chain",
    ] {
        let status = reqwest::blocking::get(format!("{app_url}{path}"))
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        eprintln!("  GET {path} -> {status}");
    }
}

/// One line per metric and dimension values in EMF records: the latest record's value (EMF
/// carries deltas: what that export interval counted).
fn emf_summary(events: &[(String, String)]) -> Vec<String> {
    let mut latest = std::collections::BTreeMap::new();
    for (_, message) in events {
        let Ok(record) = serde_json::from_str::<Value>(message) else {
            continue;
        };
        for directive in record["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut dims: Vec<String> = directive["Dimensions"][0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|d| format!("{d}={}", record[d].as_str().unwrap_or("?")))
                .collect();
            dims.sort();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let name = metric["Name"].as_str().unwrap_or("?");
                let value = &record[name];
                let shown = if value.is_object() {
                    format!("count {} sum {}", value["Count"], value["Sum"])
                } else {
                    value.to_string()
                };
                latest.insert(format!("{name}{{{}}}", dims.join(",")), shown);
            }
        }
    }
    latest
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect()
}
