//! The AWS side: the collector's identity and the ECS task settings.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns::*;

use crate::fargate;

/// The AWS identity of the collector. Prefer an IAM role (IRSA on EKS, the task role on ECS);
/// a Secret with access keys is the fallback for clusters outside AWS.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AwsIdentity {
    /// IAM role for the pod's ServiceAccount (IRSA, `eks.amazonaws.com/role-arn`) and the default
    /// ECS task role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub iam_role_arn: Option<String>,
    /// Kubernetes Secret holding access keys, injected into the collector as environment
    /// variables (never copied into a ConfigMap or this spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
}

/// A Secret with AWS access keys, in the TracedApp's namespace.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub secret_access_key_key: String,
}

/// ECS launch type.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LaunchType {
    /// Serverless: task cpu/memory must be a Fargate combination.
    #[default]
    #[serde(rename = "FARGATE")]
    Fargate,
    /// Your own EC2 container instances.
    #[serde(rename = "EC2")]
    Ec2,
}

/// AWS ECS task-definition settings.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = fargate::cel_rule())]
pub struct EcsSpec {
    /// Task-definition family. Defaults to the TracedApp's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ECS_FAMILY))]
    pub family: Option<String>,
    /// `FARGATE` (default) or `EC2`.
    #[serde(default)]
    pub launch_type: LaunchType,
    /// Task CPU units (`256` = 0.25 vCPU), a whole number or its text.
    #[serde(
        default = "default_ecs_cpu",
        deserialize_with = "super::int_or_string_text"
    )]
    #[schemars(schema_with = "ecs_cpu_schema")]
    pub cpu: String,
    /// Task memory in MiB, a whole number or its text.
    #[serde(
        default = "default_ecs_memory",
        deserialize_with = "super::int_or_string_text"
    )]
    #[schemars(schema_with = "ecs_memory_schema")]
    pub memory: String,
    /// Role ECS uses to pull images and write logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub execution_role_arn: Option<String>,
    /// Role the containers run as (X-Ray and CloudWatch calls). Defaults to `aws.iamRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub task_role_arn: Option<String>,
    /// CloudWatch Logs group for both containers. Defaults to `/ecs/<family>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LOG_GROUP))]
    pub log_group: Option<String>,
    /// AWS region of the task (and of its logs).
    #[serde(default = "default_region")]
    #[schemars(regex(pattern = REGION))]
    pub region: String,
    /// The ECS service that runs the task (used by `tracedapp ecs deploy`, `diff`, `status`,
    /// `rollback`, `verify`). Kubernetes ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<EcsService>,
}

/// An ECS service running the TracedApp's task definition (rolling updates by ECS).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.healthCheckGracePeriodSeconds) || has(self.loadBalancer)").message("healthCheckGracePeriodSeconds applies only with a loadBalancer").field_path(".healthCheckGracePeriodSeconds"))]
pub struct EcsService {
    /// Service name. Defaults to the task-definition family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ECS_FAMILY))]
    pub name: Option<String>,
    /// Cluster name or ARN.
    #[serde(default = "default_cluster")]
    #[schemars(regex(pattern = ECS_CLUSTER), length(max = 2048))]
    pub cluster: String,
    /// Tasks to keep running. Defaults to `app.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5000))]
    pub desired_count: Option<i32>,
    /// The tasks' network (`awsvpc`): where they run and who may reach them.
    pub network: EcsNetwork,
    /// Capacity providers to place tasks with (e.g. `FARGATE_SPOT`), instead of `launchType`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d.capacityProvider == c.capacityProvider))").message("each capacity provider at most once"))]
    #[x_kube(validation = Rule::new("self.size() == 0 || self.exists(c, c.weight > 0)").message("at least one capacity provider needs a weight above 0"))]
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// A load balancer target group that sends traffic to the app container's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<EcsLoadBalancer>,
    /// Seconds ECS ignores the load balancer's failing health checks after a task starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub health_check_grace_period_seconds: Option<i32>,
    /// How ECS replaces tasks on a deployment.
    #[serde(default)]
    pub deployment: EcsDeployment,
    /// Allow `aws ecs execute-command` into the containers.
    #[serde(default)]
    pub enable_execute_command: bool,
}

/// `awsvpc` network configuration of the service's tasks.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EcsNetwork {
    /// Subnets the tasks run in (one VPC).
    #[schemars(length(min = 1, max = 16), inner(regex(pattern = SUBNET_ID), length(max = 24)))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t == s))").message("subnets must be unique"))]
    pub subnets: Vec<String>,
    /// Security groups of the tasks (the VPC's default group when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(regex(pattern = SECURITY_GROUP_ID), length(max = 20)))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t == s))").message("security groups must be unique"))]
    pub security_groups: Vec<String>,
    /// Give each task a public IP (needed in a public subnet without a NAT gateway, to pull
    /// images and reach AWS).
    #[serde(default)]
    pub assign_public_ip: bool,
}

/// One capacity provider of the strategy.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderItem {
    /// `FARGATE`, `FARGATE_SPOT` or a cluster's own provider.
    #[schemars(regex(pattern = ECS_FAMILY), length(max = 255))]
    pub capacity_provider: String,
    /// Share of the tasks placed beyond the bases.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: i32,
    /// Tasks placed on this provider first.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100000))]
    pub base: i32,
}

/// A target group in front of the app container's port.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EcsLoadBalancer {
    /// The target group (type `ip`, as `awsvpc` tasks need).
    #[schemars(regex(pattern = TARGET_GROUP_ARN))]
    pub target_group_arn: String,
}

/// The rolling update: how many tasks may be down or extra, and the circuit breaker.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.maximumPercent > self.minimumHealthyPercent").message("maximumPercent must be above minimumHealthyPercent, or no task can be replaced"))]
pub struct EcsDeployment {
    /// Tasks that must stay running during a deployment, in percent of the desired count.
    #[serde(default = "default_min_healthy")]
    #[schemars(range(min = 0, max = 100))]
    pub minimum_healthy_percent: i32,
    /// Tasks that may run during a deployment, in percent of the desired count.
    #[serde(default = "default_max_percent")]
    #[schemars(range(min = 100, max = 400))]
    pub maximum_percent: i32,
    /// Stop a deployment whose tasks keep failing to start, and go back to the last one that
    /// worked (ECS's deployment circuit breaker). On by default.
    #[serde(default = "default_true")]
    pub rollback_on_failure: bool,
}

impl Default for EcsDeployment {
    fn default() -> Self {
        Self {
            minimum_healthy_percent: default_min_healthy(),
            maximum_percent: default_max_percent(),
            rollback_on_failure: true,
        }
    }
}

fn default_cluster() -> String {
    "default".into()
}

fn default_min_healthy() -> i32 {
    100
}

fn default_max_percent() -> i32 {
    200
}

fn default_true() -> bool {
    true
}

fn default_access_key_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}

fn default_secret_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

fn default_ecs_cpu() -> String {
    "256".into()
}

fn default_ecs_memory() -> String {
    "512".into()
}

fn ecs_cpu_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    super::int_or_string_schema("Task CPU units (`256` = 0.25 vCPU).", ECS_CPU, None)
}

fn ecs_memory_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    super::int_or_string_schema("Task memory in MiB.", ECS_MEMORY, None)
}

fn default_region() -> String {
    "us-east-1".into()
}
