//! `tracedapp ecs verify`: what ECS would otherwise fail on minutes into a deployment, checked
//! against the account before it starts. Each problem is one line naming the spec field to
//! change; what cannot be known in advance is said as a note.

use serde_json::{Value, json};

use crate::CliError;
use crate::aws_call::{Caller, Service, decode, xml_values};
use crate::ecs::Target;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok(String),
    Note(String),
    /// `field: what is wrong and what to do`.
    Problem(String),
}

/// The principal ECS tasks assume their roles as.
const TASKS_PRINCIPAL: &str = "ecs-tasks.amazonaws.com";

/// Whether a trust policy lets ECS tasks assume the role; the services it names otherwise.
pub fn trusts_ecs_tasks(policy: &Value) -> Result<(), Vec<String>> {
    let statements = match &policy["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut named = Vec::new();
    for s in &statements {
        let services = strings(&s["Principal"]["Service"]);
        named.extend(services.iter().cloned());
        let allows = s["Effect"] == "Allow";
        let assumes = strings(&s["Action"])
            .iter()
            .any(|a| a == "sts:AssumeRole" || a == "sts:*" || a == "*");
        if allows && assumes && services.iter().any(|p| p == TASKS_PRINCIPAL) {
            return Ok(());
        }
    }
    Err(named)
}

/// `arn:aws:iam::123456789012:role/path/name` → `name`.
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// An ECR image reference: `(account, region, repository, tag or digest)`.
pub fn ecr_image(image: &str) -> Option<(String, String, String, String)> {
    let (host, rest) = image.split_once('/')?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?);
    if dkr != "dkr" || ecr != "ecr" || !host.ends_with(".amazonaws.com") {
        return None;
    }
    let (repo, reference) = if let Some((r, digest)) = rest.split_once('@') {
        (r.to_owned(), digest.to_owned())
    } else if let Some((r, tag)) = rest.rsplit_once(':') {
        (r.to_owned(), tag.to_owned())
    } else {
        (rest.to_owned(), "latest".to_owned())
    };
    Some((account.to_owned(), region.to_owned(), repo, reference))
}

/// Runs every check; the findings in order.
pub async fn verify(target: &Target) -> Result<Vec<Finding>, CliError> {
    let app = crate::read_app(&target.file)?;
    let region = tracedapp_ecs::region(&app.spec, target.region.as_deref());
    let td = tracedapp_ecs::build::task_definition_in(&app, &region);
    let service = tracedapp_ecs::service::service_definition(&app, &td.family);
    let endpoint = tracedapp_ecs::register::Endpoint {
        region: Some(region.clone()),
        url: target.endpoint_url.clone(),
    };
    let ecs = tracedapp_ecs::register::client(&endpoint).await;
    let aws = Caller::new(&region, None).await;
    let mut out = Vec::new();

    // The cluster.
    if let Some(s) = &service {
        let answer = ecs
            .describe_clusters()
            .clusters(&s.cluster)
            .send()
            .await
            .map_err(|e| {
                CliError::Api(format!(
                    "describing cluster {}: {}",
                    s.cluster,
                    aws_sdk_ecs::error::DisplayErrorContext(e)
                ))
            })?;
        let status = answer
            .clusters()
            .first()
            .and_then(|c| c.status())
            .unwrap_or("MISSING");
        out.push(if status == "ACTIVE" {
            Finding::Ok(format!("cluster {} is ACTIVE", s.cluster))
        } else {
            Finding::Problem(format!(
                "spec.ecs.service.cluster: cluster {} is {status} in {region}: create it \
                 (`aws ecs create-cluster --cluster-name {}`) or name another",
                s.cluster, s.cluster
            ))
        });
    } else {
        out.push(Finding::Note(
            "spec.ecs.service is not set: only the task definition is checked".into(),
        ));
    }

    // The roles.
    for (field, arn) in [
        (
            "spec.ecs.executionRoleArn",
            td.execution_role_arn.as_deref(),
        ),
        ("spec.ecs.taskRoleArn", td.task_role_arn.as_deref()),
    ] {
        let Some(arn) = arn else { continue };
        let name = role_name(arn);
        match aws
            .query(
                Service::Iam,
                "2010-05-08",
                "GetRole",
                &[("RoleName".into(), name.into())],
            )
            .await
        {
            Err(e) if e.starts_with("NoSuchEntity") => out.push(Finding::Problem(format!(
                "{field}: role {name} does not exist in the account"
            ))),
            Err(e) => return Err(CliError::Api(format!("IAM GetRole {name}: {e}"))),
            Ok(xml) => {
                let document = xml_values(&xml, "AssumeRolePolicyDocument")
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let policy: Value = serde_json::from_str(&decode(&document)).unwrap_or(Value::Null);
                out.push(match trusts_ecs_tasks(&policy) {
                    Ok(()) => Finding::Ok(format!("role {name} trusts {TASKS_PRINCIPAL}")),
                    Err(named) => Finding::Problem(format!(
                        "{field}: role {name} does not let ECS tasks assume it: its trust policy \
                         needs an Allow of sts:AssumeRole for the service {TASKS_PRINCIPAL} \
                         (it names: {})",
                        if named.is_empty() {
                            "no service".to_owned()
                        } else {
                            named.join(", ")
                        }
                    )),
                });
            }
        }
    }

    // The log group.
    let group = td
        .container_definitions
        .first()
        .and_then(|c| c.log_configuration.options.get("awslogs-group"))
        .cloned()
        .unwrap_or_default();
    let answer = aws
        .json(
            Service::Logs,
            "Logs_20140328.DescribeLogGroups",
            &json!({"logGroupNamePrefix": group}),
        )
        .await
        .map_err(|e| CliError::Api(format!("CloudWatch Logs DescribeLogGroups: {e}")))?;
    let exists = answer["logGroups"]
        .as_array()
        .is_some_and(|l| l.iter().any(|g| g["logGroupName"] == group.as_str()));
    out.push(if exists {
        Finding::Ok(format!("log group {group} exists"))
    } else {
        Finding::Note(format!(
            "log group {group} does not exist yet: the first task creates it \
             (awslogs-create-group), which needs logs:CreateLogGroup on the execution role"
        ))
    });

    // The network: every subnet and group exists, all in one VPC.
    if let Some(s) = &service {
        let vpc = &s.network_configuration.awsvpc_configuration;
        let mut vpcs: Vec<(String, String)> = Vec::new();
        for subnet in &vpc.subnets {
            match aws
                .query(
                    Service::Ec2,
                    "2016-11-15",
                    "DescribeSubnets",
                    &[("SubnetId.1".into(), subnet.clone())],
                )
                .await
            {
                Ok(xml) => {
                    let id = xml_values(&xml, "vpcId")
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    vpcs.push((subnet.clone(), id));
                }
                Err(e) if e.contains("NotFound") => out.push(Finding::Problem(format!(
                    "spec.ecs.service.network.subnets: subnet {subnet} does not exist in {region}"
                ))),
                Err(e) => return Err(CliError::Api(format!("EC2 DescribeSubnets: {e}"))),
            }
        }
        for group in &vpc.security_groups {
            match aws
                .query(
                    Service::Ec2,
                    "2016-11-15",
                    "DescribeSecurityGroups",
                    &[("GroupId.1".into(), group.clone())],
                )
                .await
            {
                Ok(xml) => {
                    // The group's own vpcId, not one of its rules'.
                    let own = strip(&strip(&xml, "ipPermissions"), "ipPermissionsEgress");
                    let id = xml_values(&own, "vpcId")
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    vpcs.push((group.clone(), id));
                }
                Err(e) if e.contains("NotFound") => out.push(Finding::Problem(format!(
                    "spec.ecs.service.network.securityGroups: security group {group} does not \
                     exist in {region}"
                ))),
                Err(e) => return Err(CliError::Api(format!("EC2 DescribeSecurityGroups: {e}"))),
            }
        }
        let mut distinct: Vec<&str> = vpcs.iter().map(|(_, v)| v.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        match distinct.as_slice() {
            [] => {}
            [one] => out.push(Finding::Ok(format!(
                "subnets and security groups are in {one}"
            ))),
            _ => {
                let listed: Vec<String> = vpcs
                    .iter()
                    .map(|(what, v)| format!("{what} in {v}"))
                    .collect();
                out.push(Finding::Problem(format!(
                    "spec.ecs.service.network: subnets and security groups must be in one VPC: {}",
                    listed.join(", ")
                )));
            }
        }
    }

    // The app's image, if it is in ECR.
    match ecr_image(&app.spec.app.image) {
        None => out.push(Finding::Note(format!(
            "spec.app.image {} is not in ECR: not checked (ECS pulls it when a task starts)",
            app.spec.app.image
        ))),
        Some((account, image_region, repo, reference)) => {
            let caller = if image_region == region {
                None
            } else {
                Some(Caller::new(&image_region, None).await)
            };
            let id = if reference.starts_with("sha256:") {
                json!({"imageDigest": reference})
            } else {
                json!({"imageTag": reference})
            };
            let answer = caller
                .as_ref()
                .unwrap_or(&aws)
                .json(
                    Service::Ecr,
                    "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
                    &json!({"registryId": account, "repositoryName": repo, "imageIds": [id]}),
                )
                .await;
            out.push(match answer {
                Ok(_) => Finding::Ok(format!("image {repo}:{reference} is in ECR")),
                Err(e) if e.starts_with("RepositoryNotFound") => Finding::Problem(format!(
                    "spec.app.image: ECR repository {repo} does not exist in {image_region}"
                )),
                Err(e) if e.starts_with("ImageNotFound") => Finding::Problem(format!(
                    "spec.app.image: {reference} is not in ECR repository {repo}: push it first"
                )),
                Err(e) => return Err(CliError::Api(format!("ECR DescribeImages: {e}"))),
            });
        }
    }
    Ok(out)
}

/// `xml` without its `<tag>…</tag>` sections.
fn strip(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        out.push_str(&rest[..start]);
        match rest[start..].find(&close) {
            Some(end) => rest = &rest[start + end + close.len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_needs_an_allow_of_assume_role_for_ecs_tasks() {
        let ok = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"]}, "Action": "sts:AssumeRole"}]});
        assert_eq!(trusts_ecs_tasks(&ok), Ok(()));
        let other = json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}});
        assert_eq!(
            trusts_ecs_tasks(&other),
            Err(vec!["ec2.amazonaws.com".to_owned()])
        );
        let denied = json!({"Statement": [{"Effect": "Deny", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(trusts_ecs_tasks(&denied).is_err());
    }

    #[test]
    fn ecr_images_are_recognised() {
        assert_eq!(
            ecr_image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.2"),
            Some((
                "123456789012".into(),
                "eu-west-1".into(),
                "shop".into(),
                "1.2".into()
            ))
        );
        assert_eq!(
            ecr_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/shop@sha256:abc")
                .map(|i| i.3),
            Some("sha256:abc".into())
        );
        assert_eq!(ecr_image("ghcr.io/acme/shop:1"), None);
        assert_eq!(ecr_image("localhost:5000/shop"), None);
    }

    #[test]
    fn a_groups_own_vpc_is_read_past_its_rules() {
        let xml = "<item><groupId>sg-1</groupId><ipPermissions><item><groups><item><vpcId>vpc-peer</vpcId></item></groups></item></ipPermissions><vpcId>vpc-own</vpcId></item>";
        let own = strip(xml, "ipPermissions");
        assert_eq!(xml_values(&own, "vpcId"), ["vpc-own"]);
    }
}
