//! Idempotent registration with aws-sdk-ecs: the SDK's types appear only in this module.
//!
//! Expected flow: describe the family's latest ACTIVE revision → convert it back into our model,
//! normalising what AWS adds (host ports, empty lists, defaults) → compare with the desired task
//! definition → register only when something differs.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types as sdk;

use crate::model::{
    ContainerDefinition, ContainerDependency, HealthCheck, KeyValuePair, LogConfiguration,
    MountPoint, PortMapping, RuntimePlatform, TaskDefinition, Volume,
};

/// What registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// ARN of the revision that matches the spec.
    pub arn: String,
    /// Its revision number.
    pub revision: i32,
    /// True when a new revision was registered; false when the latest one already matched.
    pub created: bool,
}

/// An AWS call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("describing task definition family {family:?} failed: {message}")]
    Describe { family: String, message: String },
    #[error("registering task definition family {family:?} failed: {message}")]
    Register { family: String, message: String },
    #[error("AWS answered without {0}")]
    Incomplete(&'static str),
}

/// Where to find the ECS API.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Region to call; `None` leaves it to the AWS configuration chain. `tracedapp ecs
    /// register` always sets it, from [`crate::region`].
    pub region: Option<String>,
    /// Override URL (an emulator, a VPC endpoint); `AWS_ENDPOINT_URL(_ECS)` also work.
    pub url: Option<String>,
}

/// An ECS client from the standard AWS configuration chain (env, profile, IMDS, ...).
pub async fn client(endpoint: &Endpoint) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &endpoint.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &endpoint.url {
        loader = loader.endpoint_url(url.clone());
    }
    Client::new(&loader.load().await)
}

/// The latest ACTIVE revision of `family`, in our model, or `None` if the family has none.
pub async fn describe_latest(
    client: &Client,
    family: &str,
) -> Result<Option<(TaskDefinition, String, i32)>, AwsError> {
    let out = match client
        .describe_task_definition()
        .task_definition(family)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            // ECS answers ClientException for a family that was never registered.
            if e.as_service_error()
                .is_some_and(|s| s.is_client_exception())
            {
                return Ok(None);
            }
            return Err(AwsError::Describe {
                family: family.to_owned(),
                message: error_chain(&e),
            });
        }
    };
    let Some(td) = out.task_definition() else {
        return Ok(None);
    };
    if td.status() != Some(&sdk::TaskDefinitionStatus::Active) {
        return Ok(None);
    }
    let arn = td
        .task_definition_arn()
        .ok_or(AwsError::Incomplete("taskDefinitionArn"))?
        .to_owned();
    Ok(Some((from_sdk(td), arn, td.revision())))
}

/// Registers `desired` unless the family's latest ACTIVE revision already matches it.
pub async fn register(client: &Client, desired: &TaskDefinition) -> Result<Outcome, AwsError> {
    if let Some((current, arn, revision)) = describe_latest(client, &desired.family).await?
        && normalise(current) == normalise(desired.clone())
    {
        return Ok(Outcome {
            arn,
            revision,
            created: false,
        });
    }
    let failed = |message: String| AwsError::Register {
        family: desired.family.clone(),
        message,
    };
    let out = to_sdk(client, desired)
        .map_err(|e| failed(e.to_string()))?
        .send()
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    let td = out
        .task_definition()
        .ok_or(AwsError::Incomplete("taskDefinition"))?;
    Ok(Outcome {
        arn: td
            .task_definition_arn()
            .ok_or(AwsError::Incomplete("taskDefinitionArn"))?
            .to_owned(),
        revision: td.revision(),
        created: true,
    })
}

/// Puts both sides in one canonical form: sorted environment, AWS's implied defaults dropped.
pub fn normalise(mut td: TaskDefinition) -> TaskDefinition {
    for c in &mut td.container_definitions {
        c.environment.sort_by(|a, b| a.name.cmp(&b.name));
        for p in &mut c.port_mappings {
            p.protocol = p.protocol.to_ascii_lowercase();
        }
    }
    td.container_definitions.sort_by(|a, b| a.name.cmp(&b.name));
    td.requires_compatibilities.sort();
    td
}

fn to_sdk(
    client: &Client,
    td: &TaskDefinition,
) -> Result<
    aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    aws_sdk_ecs::error::BuildError,
> {
    let mut containers = Vec::new();
    for c in &td.container_definitions {
        let mut b = sdk::ContainerDefinition::builder()
            .name(&c.name)
            .image(&c.image)
            .essential(c.essential)
            .readonly_root_filesystem(c.readonly_root_filesystem)
            .set_user(c.user.clone())
            .log_configuration(
                sdk::LogConfiguration::builder()
                    .log_driver(sdk::LogDriver::from(
                        c.log_configuration.log_driver.as_str(),
                    ))
                    .set_options(Some(
                        c.log_configuration.options.clone().into_iter().collect(),
                    ))
                    .build()?,
            );
        for arg in &c.command {
            b = b.command(arg);
        }
        for p in &c.port_mappings {
            b = b.port_mappings(
                sdk::PortMapping::builder()
                    .container_port(p.container_port)
                    .protocol(sdk::TransportProtocol::from(p.protocol.as_str()))
                    .set_name(p.name.clone())
                    .build(),
            );
        }
        for e in &c.environment {
            b = b.environment(
                sdk::KeyValuePair::builder()
                    .name(&e.name)
                    .value(&e.value)
                    .build(),
            );
        }
        for d in &c.depends_on {
            b = b.depends_on(
                sdk::ContainerDependency::builder()
                    .container_name(&d.container_name)
                    .condition(sdk::ContainerCondition::from(d.condition.as_str()))
                    .build()?,
            );
        }
        if let Some(h) = &c.health_check {
            b = b.health_check(
                sdk::HealthCheck::builder()
                    .set_command(Some(h.command.clone()))
                    .interval(h.interval)
                    .timeout(h.timeout)
                    .retries(h.retries)
                    .start_period(h.start_period)
                    .build()?,
            );
        }
        for m in &c.mount_points {
            b = b.mount_points(
                sdk::MountPoint::builder()
                    .source_volume(&m.source_volume)
                    .container_path(&m.container_path)
                    .read_only(m.read_only)
                    .build(),
            );
        }
        containers.push(b.build());
    }
    let mut req = client
        .register_task_definition()
        .family(&td.family)
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .network_mode(sdk::NetworkMode::from(td.network_mode.as_str()))
        .set_container_definitions(Some(containers))
        .cpu(&td.cpu)
        .memory(&td.memory);
    for v in &td.volumes {
        req = req.volumes(sdk::Volume::builder().name(&v.name).build());
    }
    for c in &td.requires_compatibilities {
        req = req.requires_compatibilities(sdk::Compatibility::from(c.as_str()));
    }
    if let Some(p) = &td.runtime_platform {
        req = req.runtime_platform(
            sdk::RuntimePlatform::builder()
                .cpu_architecture(sdk::CpuArchitecture::from(p.cpu_architecture.as_str()))
                .operating_system_family(sdk::OsFamily::from(p.operating_system_family.as_str()))
                .build(),
        );
    }
    Ok(req)
}

/// Our model of a described task definition (only the fields we set; AWS's extras ignored).
fn from_sdk(td: &sdk::TaskDefinition) -> TaskDefinition {
    TaskDefinition {
        family: td.family().unwrap_or_default().to_owned(),
        task_role_arn: td.task_role_arn().map(str::to_owned),
        execution_role_arn: td.execution_role_arn().map(str::to_owned),
        network_mode: td
            .network_mode()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        container_definitions: td
            .container_definitions()
            .iter()
            .map(container_from_sdk)
            .collect(),
        volumes: td
            .volumes()
            .iter()
            .map(|v| Volume {
                name: v.name().unwrap_or_default().to_owned(),
            })
            .collect(),
        requires_compatibilities: td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        cpu: td.cpu().unwrap_or_default().to_owned(),
        memory: td.memory().unwrap_or_default().to_owned(),
        runtime_platform: td.runtime_platform().map(|p| RuntimePlatform {
            cpu_architecture: p
                .cpu_architecture()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            operating_system_family: p
                .operating_system_family()
                .map(|o| o.as_str().to_owned())
                .unwrap_or_default(),
        }),
    }
}

fn container_from_sdk(c: &sdk::ContainerDefinition) -> ContainerDefinition {
    ContainerDefinition {
        name: c.name().unwrap_or_default().to_owned(),
        image: c.image().unwrap_or_default().to_owned(),
        essential: c.essential().unwrap_or(true),
        command: c.command().to_vec(),
        port_mappings: c
            .port_mappings()
            .iter()
            .map(|p| PortMapping {
                container_port: p.container_port().unwrap_or_default(),
                protocol: p
                    .protocol()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_else(|| "tcp".to_owned()),
                name: p.name().map(str::to_owned),
            })
            .collect(),
        environment: c
            .environment()
            .iter()
            .map(|e| KeyValuePair {
                name: e.name().unwrap_or_default().to_owned(),
                value: e.value().unwrap_or_default().to_owned(),
            })
            .collect(),
        depends_on: c
            .depends_on()
            .iter()
            .map(|d| ContainerDependency {
                container_name: d.container_name().to_owned(),
                condition: d.condition().as_str().to_owned(),
            })
            .collect(),
        health_check: c.health_check().map(|h| HealthCheck {
            command: h.command().to_vec(),
            interval: h.interval().unwrap_or(30),
            timeout: h.timeout().unwrap_or(5),
            retries: h.retries().unwrap_or(3),
            start_period: h.start_period().unwrap_or(0),
        }),
        mount_points: c
            .mount_points()
            .iter()
            .map(|m| MountPoint {
                source_volume: m.source_volume().unwrap_or_default().to_owned(),
                container_path: m.container_path().unwrap_or_default().to_owned(),
                read_only: m.read_only().unwrap_or(false),
            })
            .collect(),
        readonly_root_filesystem: c.readonly_root_filesystem().unwrap_or(false),
        user: c.user().map(str::to_owned),
        log_configuration: c
            .log_configuration()
            .map(|l| LogConfiguration {
                log_driver: l.log_driver().as_str().to_owned(),
                options: l
                    .options()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })
            .unwrap_or(LogConfiguration {
                log_driver: String::new(),
                options: Default::default(),
            }),
    }
}

/// The SDK's top-level error says little ("service error"); show its causes too.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
