//! The Lambda target: what a function needs from a TracedApp — the configuration of the
//! OpenTelemetry Lambda collector layer, and the function's environment.
//!
//! The layer (`open-telemetry/opentelemetry-lambda`, `collector/`) is a collector built with a
//! short list of components ([`LAYER_COMPONENTS`]): an OTLP receiver, OTLP exporters, `sigv4auth`,
//! a few processors and `decouple`. It has no `awsxray` and no `awsemf`, so X-Ray is reached
//! over OTLP signed with SigV4 (the renderer of [`crate::collector`]) and Jaeger over OTLP;
//! what the layer cannot run is refused with the field that asks for it.
//!
//! The pipeline is `memory_limiter` alone (and the sampler when the spec asks), with no `batch`
//! and every OTLP exporter's `sending_queue` off (the layer turns those off anyway): the
//! function sends each invocation's spans as one request, and the collector exports them before
//! it answers, so when the function's flush returns, the spans are at Jaeger and X-Ray — a
//! freeze right after cannot strand them in a batch or a queue. The cost is the export's round
//! trip inside the invocation (bounded by the function's flush timeout). With `batch`, the
//! layer would add its `decouple` processor and the response would not wait, but spans would
//! wait in the batch, frozen with the environment, until a later invocation or the shutdown.
//!
//! Metrics: the layer ships no exporter a TracedApp's metrics could use (`prometheus` needs a
//! scrape target, `awsemf` is absent), so the function exports traces only; Lambda's own
//! CloudWatch metrics count invocations, errors, duration and throttles.

use std::collections::BTreeMap;

use serde_json::json;

use crate::collector::{self, CollectorConfig, TelemetryMetrics};
use crate::rules::errors::{FieldError, ValidationErrors};
use crate::spec::{TracedAppSpec, XrayProtocol};

/// Where the function package puts the collector configuration (`/var/task` is the unpacked
/// zip), and the variable the layer reads it from.
pub const CONFIG_PATH: &str = "/var/task/collector.yaml";
/// The variable the layer reads its configuration location from.
pub const CONFIG_URI_VAR: &str = "OPENTELEMETRY_COLLECTOR_CONFIG_URI";

/// The component types the Lambda collector layer is built with
/// (`collector/lambdacomponents/default.go`), by section. The OTLP exporters are listed under
/// both their current names (`otlp_grpc`, `otlp_http`) and the older aliases the layer's
/// collector release still accepts.
pub const LAYER_COMPONENTS: LayerComponents = LayerComponents {
    receivers: &["otlp", "telemetryapi"],
    processors: &[
        "attributes",
        "filter",
        "memory_limiter",
        "probabilistic_sampler",
        "resource",
        "span",
        "transform",
        "coldstart",
        "decouple",
        "batch",
    ],
    exporters: &[
        "debug",
        "otlp",
        "otlp_grpc",
        "otlphttp",
        "otlp_http",
        "prometheusremotewrite",
    ],
    extensions: &["sigv4auth", "basicauth"],
};

/// See [`LAYER_COMPONENTS`].
#[derive(Debug, Clone, Copy)]
pub struct LayerComponents {
    pub receivers: &'static [&'static str],
    pub processors: &'static [&'static str],
    pub exporters: &'static [&'static str],
    pub extensions: &'static [&'static str],
}

/// Variables Lambda sets itself and refuses in a function's configuration.
pub const RESERVED_ENV: [&str; 18] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// What `tracedapp render lambda` produces.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaRender {
    /// The layer's configuration (ship it as [`CONFIG_PATH`]).
    pub collector: CollectorConfig,
    /// The function's environment variables.
    pub environment: BTreeMap<String, String>,
}

/// Renders the Lambda target of a (validated) spec, or says which fields the layer cannot run.
pub fn render(spec: &TracedAppSpec, function_name: &str) -> Result<LambdaRender, ValidationErrors> {
    refuse_what_the_layer_lacks(spec)?;
    let collector = collector_config(spec);
    if let Err(unknown) = layer_can_run(&collector) {
        // The checks above refuse every spec field that would need these; reaching here is
        // a renderer bug, said plainly rather than shipped.
        panic!("the Lambda render produced components the layer lacks: {unknown:?}");
    }
    Ok(LambdaRender {
        collector,
        environment: environment(spec, function_name),
    })
}

fn refuse_what_the_layer_lacks(spec: &TracedAppSpec) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let mut refuse = |path: String, message: &str| {
        errors.push(FieldError {
            path,
            message: message.to_owned(),
        })
    };
    let ex = &spec.exporters;
    let xray = ex.xray.as_ref().filter(|x| x.enabled);
    if xray.is_some_and(|x| x.protocol == XrayProtocol::Xray) {
        refuse(
            "spec.exporters.xray.protocol".into(),
            "the Lambda collector layer has no awsxray exporter; use protocol: otlp (X-Ray's \
             OTLP endpoint, which needs CloudWatch Transaction Search in the account)",
        );
    }
    if ex.cloudwatch_metrics.is_some() {
        refuse(
            "spec.exporters.cloudwatchMetrics".into(),
            "the Lambda collector layer has no awsemf exporter; remove it for the Lambda target \
             (Lambda's own CloudWatch metrics count invocations, errors and duration)",
        );
    }
    if spec.collector.xray_receiver {
        refuse(
            "spec.collector.xrayReceiver".into(),
            "the Lambda collector layer has no awsxray receiver; X-Ray SDK segments cannot be \
             taken in on Lambda (use OpenTelemetry in the function)",
        );
    }
    for (i, var) in spec.app.env.iter().enumerate() {
        if RESERVED_ENV.contains(&var.name.as_str()) || var.name == CONFIG_URI_VAR {
            refuse(
                format!("spec.app.env[{i}].name"),
                &format!(
                    "{} is set by Lambda (or by tracedapp) for the function",
                    var.name
                ),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// The layer's configuration: the pipeline of [`collector::render`] without what a function
/// cannot use (the health check, the Prometheus metrics pipeline), without `batch`, queues off
/// (see the module documentation), and the collector's own metrics off (nothing could scrape
/// them).
fn collector_config(spec: &TracedAppSpec) -> CollectorConfig {
    let mut c = collector::render(spec);
    c.processors.remove("batch");
    for pipeline in c.service.pipelines.values_mut() {
        pipeline.processors.retain(|p| p != "batch");
    }
    c.extensions.remove("health_check");
    c.service.extensions.retain(|e| e != "health_check");
    c.exporters.remove("prometheus");
    c.service.pipelines.remove("metrics");
    for exporter in c.exporters.values_mut() {
        exporter["sending_queue"] = json!({"enabled": false});
    }
    c.service.telemetry.metrics = TelemetryMetrics {
        level: "none".to_owned(),
        readers: Vec::new(),
    };
    c
}

/// `Err` with every component of `config` whose type the layer does not ship.
pub fn layer_can_run(config: &CollectorConfig) -> Result<(), Vec<String>> {
    let kind = |name: &str| name.split('/').next().unwrap_or(name).to_owned();
    let mut unknown = Vec::new();
    for (section, names, allowed) in [
        ("receivers", &config.receivers, LAYER_COMPONENTS.receivers),
        (
            "processors",
            &config.processors,
            LAYER_COMPONENTS.processors,
        ),
        ("exporters", &config.exporters, LAYER_COMPONENTS.exporters),
        (
            "extensions",
            &config.extensions,
            LAYER_COMPONENTS.extensions,
        ),
    ] {
        for name in names.keys() {
            if !allowed.contains(&kind(name).as_str()) {
                unknown.push(format!("{section}.{name}"));
            }
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unknown)
    }
}

/// The function's environment: the app's `OTEL_*` (as on the other targets, without `PORT`),
/// the layer's configuration location, and the X-Ray propagator (Lambda hands the function
/// its trace context as an X-Ray header).
fn environment(spec: &TracedAppSpec, function_name: &str) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = crate::app_env::app_env(
        spec,
        function_name,
        &[
            "cloud.provider=aws".to_owned(),
            "cloud.platform=aws_lambda".to_owned(),
        ],
        crate::app_env::verbatim,
    )
    .into_iter()
    .filter(|(name, _)| name != "PORT")
    .collect();
    env.insert(CONFIG_URI_VAR.to_owned(), CONFIG_PATH.to_owned());
    env.entry("OTEL_PROPAGATORS".to_owned())
        .or_insert_with(|| "tracecontext,baggage,xray".to_owned());
    env
}

/// What of the spec a function does not use (said on stderr by `render lambda`).
pub fn ignored_fields(spec: &TracedAppSpec) -> Vec<String> {
    let mut out = vec![
        "spec.app.image is not used: a function is the `bootstrap` binary in a zip (README, Lambda)"
            .to_owned(),
        "spec.exporters.prometheus is not used: a function has no scrape target, and exports \
         traces only"
            .to_owned(),
    ];
    let app = &spec.app;
    if app.replicas != 1 {
        out.push("spec.app.replicas is not used: Lambda scales a function by itself".to_owned());
    }
    if spec.collector.batch != crate::spec::Batch::default() {
        out.push(
            "spec.collector.batch is not used: on Lambda each invocation's spans are exported \
             as one request before it returns"
                .to_owned(),
        );
    }
    let sized = |r: &crate::spec::Resources| r.requests.is_some() || r.limits.is_some();
    if sized(&app.resources) || sized(&spec.collector.resources) {
        out.push(
            "spec.app.resources and spec.collector.resources are not used: a function is sized \
             by its memory setting"
                .to_owned(),
        );
    }
    if spec.collector.image.is_some() {
        out.push(
            "spec.collector.image is not used: the collector is the OpenTelemetry Lambda layer"
                .to_owned(),
        );
    }
    if spec.aws.credentials_secret.is_some() || spec.aws.iam_role_arn.is_some() {
        out.push(
            "spec.aws is not used: the function's execution role gives the layer its AWS \
             identity (grant it the X-Ray write permissions of AWSXrayWriteOnlyAccess)"
                .to_owned(),
        );
    }
    if spec.ecs.is_some() {
        out.push("spec.ecs is for the ECS target".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{Fixture, app};

    fn yaml(r: &LambdaRender) -> serde_json::Value {
        serde_saphyr::from_str(&r.collector.to_yaml()).unwrap()
    }

    #[test]
    fn jaeger_and_xray_go_over_otlp_with_only_the_layers_components() {
        let a = app().with_xray();
        let r = render(&a.spec, "shop").unwrap();
        let y = yaml(&r);
        assert_eq!(
            y["service"]["pipelines"]["traces"]["exporters"],
            json!(["otlp_grpc/jaeger", "otlp_http/xray"])
        );
        assert_eq!(
            y["service"]["pipelines"]["traces"]["processors"],
            json!(["memory_limiter"])
        );
        assert_eq!(y["service"]["extensions"], json!(["sigv4auth/xray"]));
        assert_eq!(y["extensions"]["sigv4auth/xray"]["service"], "xray");
        assert_eq!(
            y["exporters"]["otlp_http/xray"]["traces_endpoint"],
            "https://xray.us-east-1.amazonaws.com/v1/traces"
        );
        for e in ["otlp_grpc/jaeger", "otlp_http/xray"] {
            assert_eq!(y["exporters"][e]["sending_queue"]["enabled"], false, "{e}");
        }
        assert!(y["service"]["pipelines"].get("metrics").is_none());
        assert_eq!(y["service"]["telemetry"]["metrics"]["level"], "none");
        layer_can_run(&r.collector).unwrap();
    }

    #[test]
    fn what_the_layer_cannot_run_is_refused_with_its_field() {
        let a = crate::load::from_yaml(
            r#"
apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {name: shop}
spec:
  app:
    image: "i:1"
    env: [{name: AWS_REGION, value: x}, {name: OK, value: "yes"}, {name: OPENTELEMETRY_COLLECTOR_CONFIG_URI, value: z}]
  collector: {xrayReceiver: true}
  exporters:
    xray: {region: eu-west-1, protocol: xray}
    cloudwatchMetrics: {namespace: Shop}
"#,
        )
        .unwrap();
        let errors = render(&a.spec, "shop").unwrap_err();
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.exporters.xray.protocol",
                "spec.exporters.cloudwatchMetrics",
                "spec.collector.xrayReceiver",
                "spec.app.env[0].name",
                "spec.app.env[2].name",
            ]
        );
    }

    #[test]
    fn the_environment_points_the_function_at_the_layer() {
        let a = app().edit(|a| a.spec.service_name = Some("checkout".into()));
        let env = render(&a.spec, "shop").unwrap().environment;
        assert_eq!(env[CONFIG_URI_VAR], CONFIG_PATH);
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"],
            format!("http://localhost:{}", crate::sidecar::OTLP_GRPC_PORT)
        );
        assert_eq!(env["OTEL_SERVICE_NAME"], "checkout");
        assert_eq!(env["OTEL_PROPAGATORS"], "tracecontext,baggage,xray");
        assert!(env["OTEL_RESOURCE_ATTRIBUTES"].contains("cloud.platform=aws_lambda"));
        assert!(!env.contains_key("PORT"));
    }

    #[test]
    fn a_component_outside_the_layer_is_named() {
        let a = app();
        let k8s = collector::render(&a.spec);
        let unknown = layer_can_run(&k8s).unwrap_err();
        assert_eq!(unknown, ["exporters.prometheus", "extensions.health_check"]);
    }

    #[test]
    fn user_text_stays_data_in_the_layers_configuration() {
        let a = app().edit(|a| {
            a.spec.exporters.jaeger.as_mut().unwrap().endpoint =
                "${env:AWS_SECRET_ACCESS_KEY}:4317".into()
        });
        let r = render(&a.spec, "shop").unwrap();
        assert!(
            r.collector
                .to_yaml()
                .contains("$${env:AWS_SECRET_ACCESS_KEY}:4317")
        );
    }
}
