//! The function as Lambda runs it, with real programs on 127.0.0.1: `bootstrap` under the AWS
//! Lambda Runtime Interface Emulator (the real Runtime API), the environment `tracedapp render
//! lambda` gives it, and the collector running the rendered layer configuration
//! (`manifests/examples/lambda.yaml`) → Jaeger v2, and X-Ray over OTLP to the SigV4-checking
//! stand-in of `testkit::xray_otlp`.
//!
//! The collector is the rig's (contrib components, same release train), run with a
//! configuration that holds only components the Lambda layer ships (`layer_can_run` checks
//! it); the layer itself is not served by the Go module proxy here, so its build, and the
//! `decouple` processor it adds after `batch`, are not exercised (see the README).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use testkit::collector::{Collector, Options};
use testkit::jaeger::Jaeger;
use testkit::lambda::{Rie, signal};
use testkit::otlp::{KIND_SERVER, STATUS_ERROR, Span};
use testkit::wait_until;
use testkit::xray_otlp::{self, Key, Verifier};
use tracedapp_api::TracedApp;

const REGION: &str = "eu-west-1";
const FUNCTION: &str = "orders";

fn example() -> TracedApp {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/lambda.yaml"
    );
    tracedapp_api::load::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example's layer configuration with Jaeger at `jaeger` and X-Ray at `xray`.
fn layer_config(jaeger: &Jaeger, xray: &Verifier) -> String {
    let mut app = example();
    let ex = &mut app.spec.exporters;
    ex.jaeger.as_mut().unwrap().endpoint = jaeger.otlp_grpc.clone();
    ex.xray.as_mut().unwrap().endpoint = Some(xray.endpoint());
    let rendered = tracedapp_api::lambda::render(&app.spec, FUNCTION).unwrap();
    tracedapp_api::lambda::layer_can_run(&rendered.collector).unwrap();
    rendered.collector.to_yaml()
}

/// The layer as the function's neighbour: the rendered configuration, signing with `key`.
fn layer(jaeger: &Jaeger, xray: &Verifier, key: &Key) -> Collector {
    Collector::start_with(
        &layer_config(jaeger, xray),
        &Options {
            env: key.env(),
            lambda_layer: true,
            ..Options::default()
        },
    )
}

/// The function under the emulator with the rendered environment, its OTLP endpoint moved to
/// `otlp_endpoint` (the test's collector port), plus `extra`.
fn function(otlp_endpoint: &str, extra: &[(&str, &str)]) -> Rie {
    let env = tracedapp_api::lambda::render(&example().spec, FUNCTION)
        .unwrap()
        .environment;
    let mut vars: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| *k != "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_REGION", REGION),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "5"),
    ]);
    vars.extend_from_slice(extra);
    Rie::start(env!("CARGO_BIN_EXE_bootstrap").as_ref(), &vars)
}

fn verifier(key: &Key) -> Verifier {
    Verifier::start(xray_otlp::Options {
        region: REGION.to_owned(),
        keys: vec![key.clone()],
        moto_url: None,
    })
}

fn invocation_spans(spans: &[Span]) -> Vec<&Span> {
    spans
        .iter()
        .filter(|s| s.service == FUNCTION && s.kind == KIND_SERVER)
        .collect()
}

/// N invocations, the function frozen (SIGSTOP) as soon as each returns, as Lambda freezes
/// the environment: all N traces are in Jaeger and X-Ray while it is frozen, each a trace of
/// its own; the one given an X-Ray header is that trace's child; only the first is a cold
/// start; the failing one carries the error.
#[test]
fn every_invocation_is_exported_before_it_returns_and_survives_the_freeze() {
    let key = Key::new("AKIDLAMBDA", "lambda-secret");
    let (jaeger, xray) = (Jaeger::start(), verifier(&key));
    let collector = layer(&jaeger, &xray, &key);
    let rie = function(&collector.otlp_grpc_url, &[]);

    const N: usize = 5;
    let header_root = "1-6751a1b2-0123456789abcdef01234567";
    let header_parent = "53995c3f42cd8ad8";
    let mut trace_ids = Vec::new();
    for i in 0..N {
        let header = format!("Root={header_root};Parent={header_parent};Sampled=1");
        let event = if i == 3 {
            json!({"fail": "out of stock"})
        } else {
            json!({"order": i})
        };
        let answer = rie.invoke(&event, (i == 1).then_some(header.as_str()));
        assert_eq!(answer.status, 200, "invocation {i}: {:?}", answer.body);
        let pid = rie.function_pid().expect("the function runs");
        signal(pid, "STOP");
        // Frozen: nothing more can leave the function. Its spans must already be out.
        let want = trace_ids.len() + usize::from(i != 3);
        if i != 3 {
            let id = answer.body["traceId"].as_str().unwrap().to_owned();
            trace_ids.push(id);
        }
        wait_until(
            &format!("invocation {i}'s spans at X-Ray while the function is frozen"),
            Duration::from_secs(20),
            || invocation_spans(&xray.spans()).len() > i,
        );
        assert!(want <= trace_ids.len() + 1);
        signal(pid, "CONT");
    }

    let spans = xray.spans();
    let invocations = invocation_spans(&spans);
    assert_eq!(invocations.len(), N, "one invocation span each");
    let traces: BTreeSet<&str> = invocations.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), N, "each invocation is a trace of its own");
    for id in &trace_ids {
        assert!(traces.contains(id.as_str()), "the answer's trace id {id}");
    }
    let cold: Vec<&str> = invocations
        .iter()
        .map(|s| s.attrs["faas.coldstart"].as_str())
        .collect();
    assert_eq!(cold, ["true", "false", "false", "false", "false"]);
    for s in &invocations {
        assert_eq!(s.name, FUNCTION);
        assert!(!s.attrs["faas.invocation_id"].is_empty());
        assert_eq!(s.resource["faas.name"], FUNCTION);
        assert_eq!(s.resource["cloud.platform"], "aws_lambda");
        assert_eq!(s.resource["cloud.region"], REGION);
        assert_eq!(s.resource["faas.max_memory"], "134217728");
        assert_eq!(s.resource["deployment.environment.name"], "prod");
    }
    // The X-Ray header's trace, and its segment as the parent.
    let child = invocations[1];
    assert_eq!(
        child.trace_id,
        header_root.replace("1-", "").replace('-', "")
    );
    assert_eq!(child.parent_span_id, header_parent);
    assert!(
        invocations[0].parent_span_id.is_empty(),
        "no header: a root"
    );
    assert_eq!(
        invocations[3].status, STATUS_ERROR,
        "the failing invocation"
    );
    // The handler's own span, a child of each invocation's.
    for s in &invocations {
        assert!(
            spans.iter().any(|c| c.name == "lambda_function"
                && c.trace_id == s.trace_id
                && c.parent_span_id == s.span_id),
            "the handler's span under {}",
            s.trace_id
        );
    }

    wait_until(
        "Jaeger to hold every trace",
        Duration::from_secs(20),
        || jaeger.traces(FUNCTION, 20).len() == N,
    );
    assert!(
        xray.outcomes().iter().all(|o| o.status == 200),
        "every X-Ray request signed and accepted: {:?}",
        xray.outcomes()
    );
}

/// With the collector layer dead, invocations still answer, each within its deadline: the
/// flush gives up after its timeout, the failure is counted and logged, the handler is fine.
#[test]
fn a_dead_collector_costs_the_flush_timeout_not_the_invocation() {
    let dead = format!("http://127.0.0.1:{}", testkit::free_port());
    let rie = function(&dead, &[("TRACEDAPP_FLUSH_TIMEOUT_MS", "300")]);
    for i in 0..3 {
        let answer = rie.invoke(&json!({"order": i}), None);
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["statusCode"], 200, "{:?}", answer.body);
    }
    wait_until(
        "the third flush failure to be logged",
        Duration::from_secs(10),
        || rie.log().contains("\"flush_failures\":3"),
    );
    let log = rie.log();
    assert!(
        log.contains("spans not exported before the invocation returned"),
        "{log}"
    );
}
