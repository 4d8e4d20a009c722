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
    /// Task CPU units (`256` = 0.25 vCPU).
    #[serde(default = "default_ecs_cpu")]
    #[schemars(regex(pattern = ECS_CPU))]
    pub cpu: String,
    /// Task memory in MiB.
    #[serde(default = "default_ecs_memory")]
    #[schemars(regex(pattern = ECS_MEMORY))]
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

fn default_region() -> String {
    "us-east-1".into()
}
