//! The ECS service of a TracedApp (`spec.ecs.service`): what `ecs deploy` creates or updates,
//! built purely from the spec, and the canonical form both sides are compared in.

use tracedapp_api::TracedApp;
use tracedapp_api::sidecar::APP_CONTAINER;
use tracedapp_api::spec::{EcsService, LaunchType};

use crate::model::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, DeploymentCircuitBreaker,
    DeploymentConfiguration, LoadBalancer, NetworkConfiguration, ServiceDefinition,
};

/// The service of `app` running `task_definition` (`family` or `family:revision`), or `None`
/// when the spec has no `ecs.service`.
pub fn service_definition(app: &TracedApp, task_definition: &str) -> Option<ServiceDefinition> {
    let ecs = app.spec.ecs.as_ref()?;
    let s: &EcsService = ecs.service.as_ref()?;
    let family = crate::task_definition(app).family;
    let launch_type = s.capacity_provider_strategy.is_empty().then(|| {
        match ecs.launch_type {
            LaunchType::Fargate => "FARGATE",
            LaunchType::Ec2 => "EC2",
        }
        .to_owned()
    });
    Some(ServiceDefinition {
        cluster: s.cluster.clone(),
        service_name: s.name.clone().unwrap_or(family),
        task_definition: task_definition.to_owned(),
        desired_count: s.desired_count.unwrap_or(app.spec.app.replicas),
        launch_type,
        capacity_provider_strategy: s
            .capacity_provider_strategy
            .iter()
            .map(|c| CapacityProviderStrategyItem {
                capacity_provider: c.capacity_provider.clone(),
                weight: c.weight,
                base: c.base,
            })
            .collect(),
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: s.network.subnets.clone(),
                security_groups: s.network.security_groups.clone(),
                assign_public_ip: if s.network.assign_public_ip {
                    "ENABLED"
                } else {
                    "DISABLED"
                }
                .to_owned(),
            },
        },
        load_balancers: s
            .load_balancer
            .iter()
            .map(|lb| LoadBalancer {
                target_group_arn: lb.target_group_arn.clone(),
                container_name: APP_CONTAINER.to_owned(),
                container_port: app.spec.app.port,
            })
            .collect(),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds,
        deployment_configuration: Some(DeploymentConfiguration {
            minimum_healthy_percent: s.deployment.minimum_healthy_percent,
            maximum_percent: s.deployment.maximum_percent,
            deployment_circuit_breaker: DeploymentCircuitBreaker {
                enable: s.deployment.rollback_on_failure,
                rollback: s.deployment.rollback_on_failure,
            },
        }),
        enable_execute_command: s.enable_execute_command,
    })
}

/// Both sides in one canonical form: lists AWS may reorder sorted, the cluster and the task
/// definition by name (AWS answers ARNs: `arn:…:cluster/name` → `name`,
/// `arn:…:task-definition/family:7` → `family:7`).
pub fn normalise(mut s: ServiceDefinition) -> ServiceDefinition {
    s.cluster = last_segment(&s.cluster);
    s.task_definition = last_segment(&s.task_definition);
    let vpc = &mut s.network_configuration.awsvpc_configuration;
    vpc.subnets.sort();
    vpc.security_groups.sort();
    s.capacity_provider_strategy
        .sort_by(|a, b| a.capacity_provider.cmp(&b.capacity_provider));
    s.load_balancers
        .sort_by(|a, b| a.target_group_arn.cmp(&b.target_group_arn));
    s
}

/// `live` and `desired` compared in canonical form. A deployment configuration ECS's answer
/// left out (an emulator's gap: ECS itself always reports it) is not counted as a difference;
/// the second value says whether that happened.
pub fn compare(live: &ServiceDefinition, desired: &ServiceDefinition) -> (bool, bool) {
    let mut live = live.clone();
    let unknown = live.deployment_configuration.is_none();
    if unknown {
        live.deployment_configuration = desired.deployment_configuration.clone();
    }
    (normalise(live) == normalise(desired.clone()), unknown)
}

/// What follows the last `/` of an ARN (the whole text if none).
pub fn last_segment(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(service: &str) -> TracedApp {
        let mut app = tracedapp_api::fixtures::with_spec(&format!(
            "  exporters: {{jaeger: {{endpoint: \"j:4317\"}}}}\n  ecs:\n    \
             executionRoleArn: arn:aws:iam::123456789012:role/exec\n    {service}\n"
        ));
        app.spec.app.port = 8080;
        app.spec.app.replicas = 3;
        app
    }

    #[test]
    fn defaults_are_the_apps_replicas_a_rolling_update_with_rollback_and_no_public_ip() {
        let s = service_definition(
            &app("service: {network: {subnets: [subnet-0123456789abcdef0]}}"),
            "shop",
        )
        .unwrap();
        assert_eq!(s.service_name, "shop");
        assert_eq!(s.cluster, "default");
        assert_eq!(s.desired_count, 3);
        assert_eq!(s.launch_type.as_deref(), Some("FARGATE"));
        let d = s.deployment_configuration.as_ref().unwrap();
        assert_eq!((d.minimum_healthy_percent, d.maximum_percent), (100, 200));
        assert!(d.deployment_circuit_breaker.enable && d.deployment_circuit_breaker.rollback);
        assert_eq!(
            s.network_configuration
                .awsvpc_configuration
                .assign_public_ip,
            "DISABLED"
        );
        assert!(!s.enable_execute_command);
    }

    #[test]
    fn a_load_balancer_targets_the_app_port_and_capacity_providers_replace_the_launch_type() {
        let s = service_definition(
            &app(
                "service: {network: {subnets: [subnet-0123456789abcdef0]}, \
                 loadBalancer: {targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef'}, \
                 capacityProviderStrategy: [{capacityProvider: FARGATE_SPOT, weight: 1}]}",
            ),
            "shop:4",
        )
        .unwrap();
        assert_eq!(s.load_balancers[0].container_name, "app");
        assert_eq!(s.load_balancers[0].container_port, 8080);
        assert_eq!(s.launch_type, None);
        assert_eq!(
            s.capacity_provider_strategy[0].capacity_provider,
            "FARGATE_SPOT"
        );
    }

    #[test]
    fn no_service_section_no_service() {
        assert!(service_definition(&app("cpu: '256'"), "shop").is_none());
    }

    #[test]
    fn arns_and_order_do_not_count_as_differences() {
        let a = service_definition(
            &app("service: {network: {subnets: [subnet-0123456789abcdef1, subnet-0123456789abcdef0]}}"),
            "shop:2",
        )
        .unwrap();
        let mut b = a.clone();
        b.cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/default".into();
        b.task_definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:2".into();
        b.network_configuration
            .awsvpc_configuration
            .subnets
            .reverse();
        assert_eq!(normalise(a), normalise(b));
    }
}
