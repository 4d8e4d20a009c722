//! The renderer on its own: which components a spec turns on, and how they are wired.
//! (Whole configurations are pinned by the goldens in `cli/tests/golden.rs`, and every
//! rendered configuration passes the real collector's `validate` in the operator's tests.)

use super::*;

fn spec(extra: &str) -> TracedAppSpec {
    crate::fixtures::with_spec(extra).spec
}

fn jaeger() -> &'static str {
    "  exporters: {jaeger: {endpoint: 'jaeger:4317', tls: {insecure: true}}}"
}

fn pipeline<'a>(c: &'a CollectorConfig, name: &str) -> &'a Pipeline {
    c.service
        .pipelines
        .get(name)
        .unwrap_or_else(|| panic!("no {name} pipeline"))
}

#[test]
fn jaeger_only_uses_no_aws_component_and_no_extra_flag() {
    let s = spec(jaeger());
    let c = render(&s);
    assert_eq!(pipeline(&c, "traces").exporters, ["otlp_grpc/jaeger"]);
    assert_eq!(pipeline(&c, "metrics").exporters, ["prometheus"]);
    assert_eq!(
        pipeline(&c, "traces").processors,
        ["memory_limiter", "batch"],
        "memory_limiter first, batch last"
    );
    assert!(c.receivers.keys().all(|r| r == "otlp"));
    assert!(command_flags(&s).is_empty());
    assert_eq!(exporters_summary(&s), "jaeger,prometheus");
}

#[test]
fn the_jaeger_hop_is_gzip_unless_the_spec_chooses_another_compression() {
    let c = render(&spec(jaeger()));
    assert_eq!(c.exporters["otlp_grpc/jaeger"]["compression"], "gzip");
    for choice in ["zstd", "snappy", "none"] {
        let c = render(&spec(&format!(
            "  exporters: {{jaeger: {{endpoint: 'jaeger:4317', compression: {choice}}}}}"
        )));
        assert_eq!(c.exporters["otlp_grpc/jaeger"]["compression"], choice);
    }
}

#[test]
fn adot_names_the_otlp_exporter_the_old_way() {
    let c = render(&spec(&format!(
        "{}\n  collector: {{distribution: adot}}",
        jaeger()
    )));
    assert_eq!(pipeline(&c, "traces").exporters, ["otlp/jaeger"]);
}

#[test]
fn xray_goes_over_otlp_signed_for_xray_in_its_region_by_default() {
    let s = spec("  exporters: {xray: {region: eu-west-1}}");
    let c = render(&s);
    assert_eq!(pipeline(&c, "traces").exporters, ["otlp_http/xray"]);
    let x = &c.exporters["otlp_http/xray"];
    assert_eq!(
        x["traces_endpoint"],
        "https://xray.eu-west-1.amazonaws.com/v1/traces"
    );
    assert_eq!(x["auth"]["authenticator"], "sigv4auth/xray");
    assert_eq!(x["compression"], "gzip");
    assert_eq!(
        x["compression_params"]["level"], 1,
        "gzip's fastest level: the X-Ray hop's compression is a fifth of the collector's CPU"
    );
    let auth = &c.extensions["sigv4auth/xray"];
    assert_eq!(auth["region"], "eu-west-1");
    assert_eq!(auth["service"], "xray");
    assert!(auth.get("assume_role").is_none(), "no role: {auth}");
    assert_eq!(c.service.extensions, ["health_check", "sigv4auth/xray"]);
    assert!(!c.exporters.contains_key("awsxray"));
    assert!(command_flags(&s).is_empty(), "no awsxray feature gate");
    assert_eq!(exporters_summary(&s), "xray,prometheus");
}

#[test]
fn xray_over_otlp_assumes_the_role_and_takes_the_endpoint_override() {
    let c = render(&spec(
        "  exporters: {xray: {region: us-west-2, roleArn: 'arn:aws:iam::123456789012:role/x', \
         endpoint: 'http://127.0.0.1:4000/'}}\n  collector: {distribution: adot}",
    ));
    let x = &c.exporters["otlphttp/xray"];
    assert_eq!(x["traces_endpoint"], "http://127.0.0.1:4000/v1/traces");
    assert!(
        x.get("compression_params").is_none(),
        "ADOT's image keeps gzip's default level (its version is not tested here): {x}"
    );
    let role = &c.extensions["sigv4auth/xray"]["assume_role"];
    assert_eq!(role["arn"], "arn:aws:iam::123456789012:role/x");
    assert_eq!(role["sts_region"], "us-west-2");
}

#[test]
fn legacy_xray_takes_its_region_role_and_endpoint_and_turns_off_dotted_annotations() {
    let s = spec(
        "  exporters: {xray: {protocol: xray, region: eu-west-1, \
         roleArn: 'arn:aws:iam::123456789012:role/x', endpoint: 'https://xray.example'}}",
    );
    let c = render(&s);
    let x = &c.exporters["awsxray"];
    assert_eq!(x["region"], "eu-west-1");
    assert_eq!(x["role_arn"], "arn:aws:iam::123456789012:role/x");
    assert_eq!(x["endpoint"], "https://xray.example");
    assert_eq!(
        command_flags(&s),
        ["--feature-gates=-exporter.xray.allowDot"]
    );
    assert!(
        c.extensions.keys().all(|e| e == "health_check"),
        "no signer"
    );
}

#[test]
fn the_xray_receiver_gets_its_own_pipeline_when_traces_also_go_elsewhere() {
    let both = "  exporters: {jaeger: {endpoint: 'jaeger:4317'}, \
                xray: {protocol: xray, region: us-east-1}}\n  collector: {xrayReceiver: true}";
    let c = render(&spec(both));
    assert_eq!(pipeline(&c, "traces/xray").exporters, ["awsxray"]);
    assert_eq!(pipeline(&c, "traces").exporters, ["otlp_grpc/jaeger"]);
    assert!(
        pipeline(&c, "traces")
            .receivers
            .contains(&"awsxray".to_owned())
    );

    let alone = "  exporters: {xray: {protocol: xray, region: us-east-1}}\n  collector: {xrayReceiver: true}";
    let c = render(&spec(alone));
    assert!(!c.service.pipelines.contains_key("traces/xray"), "no need");

    // Over OTLP the exporter changes nothing in the data: one pipeline for all.
    let otlp = "  exporters: {jaeger: {endpoint: 'jaeger:4317'}, xray: {region: us-east-1}}\n  \
                collector: {xrayReceiver: true}";
    let c = render(&spec(otlp));
    assert!(!c.service.pipelines.contains_key("traces/xray"));
    assert_eq!(
        pipeline(&c, "traces").exporters,
        ["otlp_grpc/jaeger", "otlp_http/xray"]
    );
}

#[test]
fn collector_sampling_sits_between_the_limiter_and_batch() {
    let c = render(&spec(&format!(
        "{}\n  sampling: {{collectorPercentage: 25}}",
        jaeger()
    )));
    assert_eq!(
        pipeline(&c, "traces").processors,
        ["memory_limiter", "probabilistic_sampler", "batch"]
    );
    assert_eq!(
        c.processors["probabilistic_sampler"]["sampling_percentage"],
        25.0
    );
}

#[test]
fn cloudwatch_defaults_its_log_group_and_names_no_dimension_rollup() {
    let c = render(&spec(
        "  exporters: {xray: {region: us-west-2}, cloudwatchMetrics: {namespace: Shop}}",
    ));
    let emf = &c.exporters["awsemf"];
    assert_eq!(emf["log_group_name"], "/metrics/Shop");
    assert_eq!(emf["region"], "us-west-2", "the X-Ray region by default");
    assert_eq!(emf["dimension_rollup_option"], "NoDimensionRollup");
    assert_eq!(pipeline(&c, "metrics").exporters, ["prometheus", "awsemf"]);
}

#[test]
fn a_dollar_in_user_text_stays_data() {
    let yaml = render(&spec(
        "  exporters: {jaeger: {endpoint: 'jaeger:4317', tls: {caFile: '/${env:SECRET}'}}, \
         xray: {region: us-east-1, endpoint: 'https://x/$HOME'}}",
    ))
    .to_yaml();
    assert!(yaml.contains("https://x/$$HOME"), "{yaml}");
    assert!(yaml.contains("/$${env:SECRET}"), "{yaml}");
}

#[test]
fn the_hash_changes_with_the_config_and_only_with_it() {
    let a = render(&spec(jaeger())).to_yaml();
    let b = render(&spec(&format!(
        "{}\n  sampling: {{collectorPercentage: 50}}",
        jaeger()
    )))
    .to_yaml();
    assert_eq!(
        crate::hash::short_hash(&a),
        crate::hash::short_hash(&a.clone())
    );
    assert_ne!(crate::hash::short_hash(&a), crate::hash::short_hash(&b));
    assert_eq!(crate::hash::short_hash(&a).len(), 10);
}

#[test]
fn a_port_rule_refuses_every_collector_port() {
    let rule = serde_json::to_value(crate::sidecar::port_rule("app.port")).unwrap();
    let cel = rule["rule"].as_str().unwrap();
    for (port, _, _) in COLLECTOR_PORTS {
        assert!(cel.contains(&port.to_string()), "{port} missing in {cel}");
    }
}

#[test]
fn one_region_resolution_an_exporters_own_then_the_tasks() {
    // No exporter names a region: the task's region (ECS `--region`) is the collector's too.
    let s = spec(&format!(
        "{}\n  collector: {{xrayReceiver: true}}",
        jaeger()
    ));
    let c = ecs_config(&s, "shop", "ap-northeast-1");
    assert_eq!(
        c.receivers["awsxray"]["proxy_server"]["region"],
        "ap-northeast-1"
    );
    assert_eq!(c.exporters["awsemf/collector"]["region"], "ap-northeast-1");
    // An exporter's own region wins.
    let s = spec("  exporters: {xray: {region: eu-west-1}}\n  collector: {xrayReceiver: true}");
    let c = ecs_config(&s, "shop", "ap-northeast-1");
    assert_eq!(
        c.receivers["awsxray"]["proxy_server"]["region"],
        "eu-west-1"
    );
    assert_eq!(c.extensions["sigv4auth/xray"]["region"], "eu-west-1");
}
