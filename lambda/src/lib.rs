//! `tracedapp-lambda`: the traced Lambda function, the guide's handler done right.
//!
//! The guide's function hands its spans to a batch processor and returns; Lambda freezes the
//! execution environment as soon as the invocation ends, so the batch often leaves only at the
//! next thaw, or never. Here every invocation:
//! - starts a SERVER span named after the function, a child of the X-Ray trace Lambda gives it
//!   (when that trace is sampled), with the FaaS attributes (`faas.invocation_id`,
//!   `faas.coldstart` — true on an environment's first invocation only —, `faas.trigger`,
//!   `cloud.resource_id`, `cloud.account.id`); the function's own attributes (`faas.name`,
//!   `faas.version`, `faas.instance`, `faas.max_memory`, `cloud.*`) are on the resource
//!   ([`describe_function`]);
//! - ends the span, then **exports it before returning** ([`Function::invoke`]): the response
//!   reaches Lambda only after the collector layer has the spans, so a freeze cannot strand
//!   them. The wait is bounded ([`FlushPolicy`]): a dead collector costs at most the flush
//!   timeout, never the function's own deadline; a failed or late flush is counted, logged and
//!   never fails the invocation.
//!
//! Spans are exported by `tracedapp-telemetry`, the service's exporter: bounded queue,
//! counted drops, `OTEL_*` configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context as LambdaContext, Error, LambdaEvent};
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::XrayPropagator;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracedapp_telemetry::{SpanFlusher, Telemetry};

/// How long an invocation may wait for its spans to be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// At most this long (`TRACEDAPP_FLUSH_TIMEOUT_MS`, default [`DEFAULT_FLUSH_TIMEOUT`]).
    pub timeout: Duration,
    /// And never closer than this to the invocation's deadline
    /// (`TRACEDAPP_FLUSH_RESERVE_MS`, default [`DEFAULT_FLUSH_RESERVE`]), so the response is
    /// sent in time.
    pub reserve: Duration,
}

/// The collector layer is on loopback and answers in about a millisecond; a second is a
/// collector that is not coming.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(1000);
/// Time kept for the response after the flush.
pub const DEFAULT_FLUSH_RESERVE: Duration = Duration::from_millis(200);

impl FlushPolicy {
    /// From the environment; an invalid value is an error naming the variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, String> {
        let millis = |name: &str, default: Duration| -> Result<Duration, String> {
            match vars.get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        format!("{name}: expected a whole number of milliseconds, got {v:?}")
                    }),
            }
        };
        Ok(Self {
            timeout: millis("TRACEDAPP_FLUSH_TIMEOUT_MS", DEFAULT_FLUSH_TIMEOUT)?,
            reserve: millis("TRACEDAPP_FLUSH_RESERVE_MS", DEFAULT_FLUSH_RESERVE)?,
        })
    }

    /// The wait allowed when `remaining` is left before the invocation's deadline.
    pub fn budget(&self, remaining: Duration) -> Duration {
        self.timeout.min(remaining.saturating_sub(self.reserve))
    }
}

/// The function's resource attributes, from the variables Lambda sets: `cloud.provider`,
/// `cloud.platform`, `cloud.region`, `faas.name`, `faas.version`, `faas.instance` (the log
/// stream, one per execution environment), `faas.max_memory` (bytes).
pub fn function_resource(vars: &HashMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("cloud.provider".to_owned(), "aws".to_owned()),
        ("cloud.platform".to_owned(), "aws_lambda".to_owned()),
    ]);
    for (attribute, var) in [
        ("cloud.region", "AWS_REGION"),
        ("faas.name", "AWS_LAMBDA_FUNCTION_NAME"),
        ("faas.version", "AWS_LAMBDA_FUNCTION_VERSION"),
        ("faas.instance", "AWS_LAMBDA_LOG_STREAM_NAME"),
    ] {
        if let Some(v) = vars.get(var).filter(|v| !v.is_empty()) {
            out.insert(attribute.to_owned(), v.clone());
        }
    }
    if let Some(mib) = vars
        .get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .and_then(|v| v.parse::<u64>().ok())
    {
        out.insert(
            "faas.max_memory".to_owned(),
            (mib * 1024 * 1024).to_string(),
        );
    }
    out
}

/// Adds [`function_resource`] to a telemetry configuration, keeping what the user set
/// (`OTEL_RESOURCE_ATTRIBUTES` wins); the service name is the function's unless
/// `OTEL_SERVICE_NAME` or `service.name` gives one.
pub fn describe_function(
    config: &mut tracedapp_telemetry::config::TelemetryConfig,
    vars: &HashMap<String, String>,
) {
    let resource = function_resource(vars);
    let named = vars.contains_key("OTEL_SERVICE_NAME")
        || vars
            .get("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.contains("service.name="));
    if !named && let Some(name) = resource.get("faas.name") {
        config.service_name = name.clone();
    }
    for (k, v) in resource {
        config.resource_attributes.entry(k).or_insert(v);
    }
}

/// The parent Lambda gives an invocation: its X-Ray trace header
/// (`Root=1-…;Parent=…;Sampled=1`), when it is valid and sampled. An unsampled header (what
/// Lambda passes when active tracing is off and no caller traced) would make the whole
/// invocation unsampled; the invocation starts a trace of its own instead.
pub fn xray_parent(header: Option<&str>) -> Context {
    let Some(header) = header else {
        return Context::new();
    };
    let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), header.to_owned())]);
    let cx = XrayPropagator::default().extract(&carrier);
    if cx.span().span_context().is_sampled() {
        cx
    } else {
        Context::new()
    }
}

/// The handler with its telemetry: see the crate documentation.
#[derive(Debug)]
pub struct Function {
    telemetry: Telemetry,
    flusher: Option<SpanFlusher>,
    policy: FlushPolicy,
    first: AtomicBool,
    /// A flush still waiting on the collector, from an earlier invocation: the next one waits
    /// on it instead of piling up another.
    in_flight: Mutex<Option<JoinHandle<Result<(), String>>>>,
    flush_failures: AtomicU64,
}

/// What one flush came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flushed {
    /// Every span of the invocation reached the collector.
    Done(Duration),
    /// The collector failed or was late; the spans stay queued (exported later, or counted as
    /// dropped).
    Failed { reason: String, failures: u64 },
    /// Telemetry is off.
    Off,
}

impl Function {
    pub fn new(telemetry: Telemetry, policy: FlushPolicy) -> Self {
        Self {
            flusher: telemetry.span_flusher(),
            telemetry,
            policy,
            first: AtomicBool::new(true),
            in_flight: Mutex::new(None),
            flush_failures: AtomicU64::new(0),
        }
    }

    /// Flushes that failed or ran out of time so far.
    pub fn flush_failures(&self) -> u64 {
        self.flush_failures.load(Ordering::Relaxed)
    }

    /// One invocation: the span, the work, the flush, then the result.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let (payload, lambda) = event.into_parts();
        let cold = self.first.swap(false, Ordering::Relaxed);
        let tracer = global::tracer("tracedapp-lambda");
        let parent = xray_parent(lambda.xray_trace_id.as_deref());
        let span = tracer
            .span_builder(lambda.env_config.function_name.clone())
            .with_kind(SpanKind::Server)
            .with_attributes(invocation_attributes(&lambda, cold))
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);

        let result = work(&tracer, &cx, payload);
        if let Err(e) = &result {
            cx.span().set_status(Status::error(e.to_string()));
        }
        cx.span().end();

        match self.flush(remaining(&lambda)).await {
            Flushed::Failed { reason, failures } => tracing::warn!(
                request_id = %lambda.request_id,
                flush_failures = failures,
                dropped_spans = self.telemetry.dropped_spans(),
                reason = %reason,
                "spans not exported before the invocation returned"
            ),
            Flushed::Done(took) => tracing::debug!(flush_ms = took.as_secs_f64() * 1e3, "flushed"),
            Flushed::Off => {}
        }
        result
    }

    /// Exports what has ended, within [`FlushPolicy::budget`] of `remaining`.
    pub async fn flush(&self, remaining: Duration) -> Flushed {
        let Some(flusher) = &self.flusher else {
            return Flushed::Off;
        };
        let started = Instant::now();
        let budget = self.policy.budget(remaining);
        let mut slot = self.in_flight.lock().await;
        let outcome = loop {
            // An earlier flush still under way is waited for first; ours follows it.
            let (mut handle, ours) = match slot.take() {
                Some(earlier) => (earlier, false),
                None => {
                    let flusher = flusher.clone();
                    (tokio::task::spawn_blocking(move || flusher.flush()), true)
                }
            };
            let left = budget.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, &mut handle).await {
                Ok(Ok(Ok(()))) if ours => break Ok(()),
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => break Err(e),
                Ok(Err(join)) => break Err(format!("the flush task failed: {join}")),
                Err(_) => {
                    *slot = Some(handle);
                    break Err(format!(
                        "the collector did not take the spans within {} ms",
                        budget.as_millis()
                    ));
                }
            }
        };
        match outcome {
            Ok(()) => Flushed::Done(started.elapsed()),
            Err(reason) => Flushed::Failed {
                reason,
                failures: self.flush_failures.fetch_add(1, Ordering::Relaxed) + 1,
            },
        }
    }

    /// Exports what is left and stops the exporters (at most `timeout`).
    pub fn shutdown(self, timeout: Duration) {
        self.telemetry.shutdown(timeout);
    }
}

/// Time left before the invocation's deadline.
fn remaining(lambda: &LambdaContext) -> Duration {
    let deadline = UNIX_EPOCH + Duration::from_millis(lambda.deadline);
    deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The invocation's attributes (semantic conventions, FaaS server spans).
fn invocation_attributes(lambda: &LambdaContext, cold: bool) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("faas.invocation_id", lambda.request_id.clone()),
        KeyValue::new("faas.coldstart", cold),
        KeyValue::new("faas.trigger", "other"),
    ];
    let arn = &lambda.invoked_function_arn;
    if !arn.is_empty() {
        attributes.push(KeyValue::new("cloud.resource_id", arn.clone()));
        if let Some(account) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
            attributes.push(KeyValue::new("cloud.account.id", account.to_owned()));
        }
    }
    attributes
}

/// The guide's handler: a span of its own, and an API Gateway-style answer carrying the trace
/// id. An event `{"fail": "why"}` fails the invocation (the span records the error).
fn work(tracer: &BoxedTracer, cx: &Context, payload: Value) -> Result<Value, Error> {
    let span = tracer.start_with_context("lambda_function", cx);
    let cx = cx.with_span(span);
    let trace_id = cx.span().span_context().trace_id().to_string();
    let result = match payload.get("fail") {
        Some(why) => Err(Error::from(format!(
            "asked to fail: {}",
            why.as_str().unwrap_or("no reason given")
        ))),
        None => Ok(json!({
            "statusCode": 200,
            "body": json!({"message": "Success"}).to_string(),
            "traceId": trace_id,
        })),
    };
    if let Err(e) = &result {
        cx.span().set_status(Status::error(e.to_string()));
    }
    cx.span().end();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_sampled_xray_header_is_the_parent_and_an_unsampled_one_is_not() {
        let sampled = xray_parent(Some(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ));
        let sc = sampled.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(sc.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(sc.is_remote());
        for header in [
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"),
            Some("garbage"),
            Some(""),
            None,
        ] {
            assert!(
                !xray_parent(header).span().span_context().is_valid(),
                "{header:?}"
            );
        }
    }

    #[test]
    fn the_flush_budget_never_eats_the_deadline() {
        let p = FlushPolicy {
            timeout: Duration::from_millis(1000),
            reserve: Duration::from_millis(200),
        };
        assert_eq!(
            p.budget(Duration::from_secs(30)),
            Duration::from_millis(1000)
        );
        assert_eq!(
            p.budget(Duration::from_millis(700)),
            Duration::from_millis(500)
        );
        assert_eq!(p.budget(Duration::from_millis(100)), Duration::ZERO);
        let err =
            FlushPolicy::from_vars(&vars(&[("TRACEDAPP_FLUSH_TIMEOUT_MS", "1s")])).unwrap_err();
        assert!(err.starts_with("TRACEDAPP_FLUSH_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn the_function_describes_itself_unless_the_user_did() {
        let lambda = vars(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "shop"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ]);
        let mut config = tracedapp_telemetry::config::TelemetryConfig::from_vars(&lambda).unwrap();
        describe_function(&mut config, &lambda);
        assert_eq!(config.service_name, "shop");
        assert_eq!(config.resource_attributes["faas.max_memory"], "134217728");
        assert_eq!(config.resource_attributes["cloud.region"], "eu-west-1");

        let mut user = lambda.clone();
        user.insert("OTEL_SERVICE_NAME".into(), "checkout".into());
        user.insert(
            "OTEL_RESOURCE_ATTRIBUTES".into(),
            "cloud.region=mine".into(),
        );
        let mut config = tracedapp_telemetry::config::TelemetryConfig::from_vars(&user).unwrap();
        describe_function(&mut config, &user);
        assert_eq!(config.service_name, "checkout");
        assert_eq!(config.resource_attributes["cloud.region"], "mine");
    }
}
