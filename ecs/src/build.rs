//! The task definition of a TracedApp: the app container and the collector container, sharing
//! the task's network (`awsvpc`), so the app sends OTLP to `localhost:4317` as on Kubernetes.

use std::collections::BTreeMap;

use tracedapp_api::app_env::{app_env, verbatim};
use tracedapp_api::collector;
use tracedapp_api::sidecar::{self, APP_CONTAINER, APP_PORT_NAME, COLLECTOR_CONTAINER, RUN_AS};
use tracedapp_api::sidecar::{TMP_PATH, TMP_VOLUME};
use tracedapp_api::spec::{Distribution, EcsSpec, LaunchType};
use tracedapp_api::{TracedApp, TracedAppSpec};

use crate::model::{
    ContainerDefinition, ContainerDependency, HealthCheck, KeyValuePair, LogConfiguration,
    MountPoint, PortMapping, RuntimePlatform, TaskDefinition, Volume,
};

/// Environment variable that carries the collector's YAML (`--config=env:...`).
pub const CONFIG_ENV: &str = "TRACEDAPP_COLLECTOR_CONFIG";

/// The region a task is registered in, and so where its logs go: the `--region` given, else
/// `spec.ecs.region` (whose default is us-east-1). The one place this is decided.
pub fn region(spec: &TracedAppSpec, flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .unwrap_or_else(|| spec.ecs.clone().unwrap_or_else(default_ecs).region)
}

/// Builds the task definition for a validated TracedApp (the `ecs` section may be absent: its
/// defaults apply), in the spec's own region.
pub fn task_definition(app: &TracedApp) -> TaskDefinition {
    task_definition_in(app, &region(&app.spec, None))
}

/// [`task_definition`] for a task registered in `region` (see [`region`]).
pub fn task_definition_in(app: &TracedApp, region: &str) -> TaskDefinition {
    let spec = &app.spec;
    let name = app.metadata.name.clone().unwrap_or_default();
    let ecs = spec.ecs.clone().unwrap_or_else(default_ecs);
    let family = ecs.family.clone().unwrap_or_else(|| name.clone());
    let log_group = ecs
        .log_group
        .clone()
        .unwrap_or_else(|| format!("/ecs/{family}"));
    let logs = |prefix: &str| LogConfiguration {
        log_driver: "awslogs".to_owned(),
        options: BTreeMap::from([
            ("awslogs-group".to_owned(), log_group.clone()),
            ("awslogs-region".to_owned(), region.to_owned()),
            ("awslogs-stream-prefix".to_owned(), prefix.to_owned()),
            ("awslogs-create-group".to_owned(), "true".to_owned()),
        ]),
    };
    let tmp = MountPoint {
        source_volume: TMP_VOLUME.to_owned(),
        container_path: TMP_PATH.to_owned(),
        read_only: false,
    };

    let yaml = collector::ecs_config(spec, &family, region).to_yaml();
    let adot = spec.collector.distribution == Distribution::Adot;
    let collector_ports =
        sidecar::collector_ports(spec.exporters.prometheus.port, spec.collector.xray_receiver)
            .into_iter()
            .map(|port| PortMapping {
                container_port: port.number,
                // ECS spells protocols in lower case.
                protocol: port.protocol.to_ascii_lowercase(),
                name: Some(port.name.to_owned()),
            })
            .collect();
    let collector = ContainerDefinition {
        name: COLLECTOR_CONTAINER.to_owned(),
        image: collector::image(spec),
        essential: true,
        command: std::iter::once(format!("--config=env:{CONFIG_ENV}"))
            .chain(collector::command_flags(spec))
            .collect(),
        port_mappings: collector_ports,
        environment: vec![KeyValuePair {
            name: CONFIG_ENV.to_owned(),
            value: yaml,
        }],
        depends_on: Vec::new(),
        // The upstream contrib image has no shell or health-check binary; ADOT ships one.
        health_check: adot.then(|| HealthCheck {
            command: vec!["/healthcheck".to_owned()],
            interval: 5,
            timeout: 3,
            retries: 5,
            start_period: 10,
        }),
        mount_points: Vec::new(),
        readonly_root_filesystem: true,
        user: Some(RUN_AS.to_string()),
        log_configuration: logs("collector"),
    };

    let platform = [
        "cloud.provider=aws".to_owned(),
        "cloud.platform=aws_ecs".to_owned(),
    ];
    let app_container = ContainerDefinition {
        name: APP_CONTAINER.to_owned(),
        image: spec.app.image.clone(),
        essential: true,
        command: Vec::new(),
        port_mappings: vec![PortMapping {
            container_port: spec.app.port,
            protocol: "tcp".to_owned(),
            name: Some(APP_PORT_NAME.to_owned()),
        }],
        environment: app_env(spec, &name, &platform, verbatim)
            .into_iter()
            .map(|(name, value)| KeyValuePair { name, value })
            .collect(),
        // Start the app only once the collector is up, so its first spans are not lost.
        depends_on: vec![ContainerDependency {
            container_name: COLLECTOR_CONTAINER.to_owned(),
            condition: if adot { "HEALTHY" } else { "START" }.to_owned(),
        }],
        health_check: None,
        mount_points: vec![tmp],
        readonly_root_filesystem: true,
        user: Some(RUN_AS.to_string()),
        log_configuration: logs("app"),
    };

    let task_role = ecs
        .task_role_arn
        .clone()
        .or_else(|| spec.aws.iam_role_arn.clone());
    TaskDefinition {
        family,
        task_role_arn: task_role,
        execution_role_arn: ecs.execution_role_arn.clone(),
        network_mode: "awsvpc".to_owned(),
        // The collector first: ECS stops containers in reverse dependency order, so the app
        // stops before the collector that flushes its spans.
        container_definitions: vec![collector, app_container],
        volumes: vec![Volume {
            name: TMP_VOLUME.to_owned(),
        }],
        requires_compatibilities: vec![
            match ecs.launch_type {
                LaunchType::Fargate => "FARGATE",
                LaunchType::Ec2 => "EC2",
            }
            .to_owned(),
        ],
        cpu: ecs.cpu.clone(),
        memory: ecs.memory.clone(),
        runtime_platform: Some(RuntimePlatform {
            cpu_architecture: "X86_64".to_owned(),
            operating_system_family: "LINUX".to_owned(),
        }),
    }
}

fn default_ecs() -> EcsSpec {
    serde_json::from_value(serde_json::json!({})).expect("every EcsSpec field has a default")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(extra: &str) -> TracedApp {
        tracedapp_api::fixtures::with_spec(&format!(
            "  exporters: {{xray: {{region: us-east-1}}}}\n  \
             aws: {{iamRoleArn: \"arn:aws:iam::123456789012:role/shop\"}}\n{extra}"
        ))
    }

    fn container<'a>(td: &'a TaskDefinition, name: &str) -> &'a ContainerDefinition {
        td.container_definitions
            .iter()
            .find(|c| c.name == name)
            .unwrap()
    }

    #[test]
    fn contrib_collector_is_waited_for_by_start_adot_by_health() {
        let td = task_definition(&app(""));
        let dep = &container(&td, APP_CONTAINER).depends_on[0];
        assert_eq!(
            (dep.container_name.as_str(), dep.condition.as_str()),
            (COLLECTOR_CONTAINER, "START")
        );
        assert!(
            container(&td, COLLECTOR_CONTAINER).health_check.is_none(),
            "contrib has no shell"
        );

        let td = task_definition(&app("  collector: {distribution: adot}"));
        assert_eq!(
            container(&td, APP_CONTAINER).depends_on[0].condition,
            "HEALTHY"
        );
        let hc = container(&td, COLLECTOR_CONTAINER)
            .health_check
            .clone()
            .unwrap();
        assert_eq!(hc.command, ["/healthcheck"]);
    }

    #[test]
    fn collector_gets_the_kubernetes_config_plus_its_own_counters() {
        let a = app("");
        let td = task_definition(&a);
        let c = container(&td, COLLECTOR_CONTAINER);
        let mut command = vec![format!("--config=env:{CONFIG_ENV}")];
        command.extend(collector::command_flags(&a.spec));
        assert_eq!(
            c.command, command,
            "the same flags as the Kubernetes sidecar"
        );
        let env = c.environment.iter().find(|e| e.name == CONFIG_ENV).unwrap();
        assert_eq!(
            env.value,
            collector::ecs_config(&a.spec, &td.family, &region(&a.spec, None)).to_yaml()
        );
        // Everything the Kubernetes sidecar runs is in it, unchanged.
        let k8s = collector::render(&a.spec);
        let ecs = collector::ecs_config(&a.spec, &td.family, "us-east-1");
        for (name, exporter) in &k8s.exporters {
            assert_eq!(ecs.exporters.get(name), Some(exporter), "{name}");
        }
        for (name, pipeline) in &k8s.service.pipelines {
            assert_eq!(ecs.service.pipelines.get(name), Some(pipeline), "{name}");
        }
        assert_eq!(
            ecs.service.pipelines[collector::SELF_TELEMETRY_PIPELINE].exporters,
            ["awsemf/collector"]
        );
    }

    #[test]
    fn defaults_fargate_awsvpc_roles_and_logs() {
        let td = task_definition(&app(
            "  ecs: {executionRoleArn: \"arn:aws:iam::123456789012:role/exec\"}",
        ));
        assert_eq!(td.family, "shop");
        assert_eq!(td.network_mode, "awsvpc");
        assert_eq!(td.requires_compatibilities, ["FARGATE"]);
        assert_eq!((td.cpu.as_str(), td.memory.as_str()), ("256", "512"));
        assert_eq!(
            td.task_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/shop")
        );
        for c in &td.container_definitions {
            assert!(
                c.readonly_root_filesystem
                    && c.user.as_deref() == Some(RUN_AS.to_string().as_str()),
                "{}",
                c.name
            );
            assert_eq!(c.log_configuration.options["awslogs-group"], "/ecs/shop");
        }
        assert!(crate::check::check(&td).is_ok());
        // Without an execution role ECS could not write the awslogs: the check says so.
        let errs = crate::check::check(&task_definition(&app(""))).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("executionRoleArn: required on FARGATE")
        );
    }

    #[test]
    fn check_rejects_what_ecs_would() {
        let mut td = task_definition(&app(""));
        td.family = "shop.v2".into();
        td.container_definitions[1].name = "app container".into();
        td.memory = "4096".into();
        let errs: Vec<String> = crate::check::check(&td)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("family:"));
        assert!(errs[1].starts_with("containerDefinitions[1].name:"));
        assert!(errs[2].starts_with("executionRoleArn:"));
        assert!(errs[3].contains("not a Fargate task size"));
    }
}
