//! Checks ECS itself makes but emulators such as moto skip, so a task definition that passes
//! here is not rejected later by the real API.

use tracedapp_api::fargate;

use crate::model::TaskDefinition;

/// One reason ECS would refuse the task definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Rejection {
    pub field: String,
    pub message: String,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every rule ECS applies to the parts we generate.
pub fn check(td: &TaskDefinition) -> Result<(), Vec<Rejection>> {
    let mut out = Vec::new();
    let mut reject = |field: String, message: String| out.push(Rejection { field, message });
    if !is_name(&td.family) {
        reject(
            "family".into(),
            format!(
                "must be 1 to 255 letters, digits, '-' or '_', got {:?}",
                td.family
            ),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in td.container_definitions.iter().enumerate() {
        if !is_name(&c.name) {
            reject(
                format!("containerDefinitions[{i}].name"),
                format!(
                    "must be 1 to 255 letters, digits, '-' or '_', got {:?}",
                    c.name
                ),
            );
        }
        if !names.insert(&c.name) {
            reject(
                format!("containerDefinitions[{i}].name"),
                format!("{} is used twice", c.name),
            );
        }
    }
    if td.requires_compatibilities.iter().any(|c| c == "FARGATE") {
        if td.network_mode != "awsvpc" {
            reject("networkMode".into(), "Fargate requires awsvpc".into());
        }
        if td.execution_role_arn.is_none() {
            reject(
                "executionRoleArn".into(),
                "required on FARGATE: ECS writes the containers' awslogs with it; set \
                 spec.ecs.executionRoleArn"
                    .into(),
            );
        }
        if !fargate::is_valid(&td.cpu, &td.memory) {
            reject(
                "cpu/memory".into(),
                format!(
                    "{}/{} is not a Fargate task size (cpu units: memory MiB; {})",
                    td.cpu,
                    td.memory,
                    fargate::table()
                ),
            );
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}
