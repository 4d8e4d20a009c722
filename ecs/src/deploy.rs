//! `tracedapp ecs deploy` and `rollback` at the edge: aws-sdk-ecs calls that create or update
//! the service, and the wait for *our* deployment ([`crate::watch`] judges each look).
//!
//! Expected flow: [`describe`] the service → [`create`] it if missing, or [`update`] it if it
//! differs (no call when it does not) → the id of the deployment that call started → [`wait`]
//! for that id, reporting progress and new service events, until it completes, fails (with
//! [`stopped_tasks`] saying why) or is replaced, the deadline passes, or the user stops waiting.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types as sdk;

use crate::model::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, DeploymentCircuitBreaker,
    DeploymentConfiguration, LoadBalancer, NetworkConfiguration, ServiceDefinition,
};
use crate::register::error_chain;
use crate::service::last_segment;
use crate::watch::{self, Deployment, Event, Snapshot, Verdict};

/// The service as ECS has it.
#[derive(Debug, Clone)]
pub struct Live {
    /// Its settings, in our model (not yet normalised).
    pub definition: ServiceDefinition,
    pub snapshot: Snapshot,
    /// The task definition the service runs now, `family:revision`.
    pub task_definition: String,
}

/// A failed ECS call, said in words.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {message}")]
pub struct CallError {
    pub what: String,
    pub message: String,
}

fn failed<E: std::error::Error + 'static>(what: impl Into<String>) -> impl FnOnce(E) -> CallError {
    let what = what.into();
    move |e| CallError {
        what,
        message: error_chain(&e),
    }
}

fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<SystemTime> {
    let t = t?;
    let secs = u64::try_from(t.secs()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, t.subsec_nanos()))
}

fn snapshot_of(s: &sdk::Service) -> Snapshot {
    Snapshot {
        deployments: s
            .deployments()
            .iter()
            .map(|d| Deployment {
                id: d.id().unwrap_or_default().to_owned(),
                status: d.status().unwrap_or_default().to_owned(),
                task_definition: last_segment(d.task_definition().unwrap_or_default()),
                desired: d.desired_count(),
                pending: d.pending_count(),
                running: d.running_count(),
                failed: d.failed_tasks(),
                rollout_state: d
                    .rollout_state()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
                rollout_reason: d.rollout_state_reason().unwrap_or_default().to_owned(),
                created_at: time(d.created_at()),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .map(|e| Event {
                id: e.id().unwrap_or_default().to_owned(),
                created_at: time(e.created_at()),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect(),
    }
}

fn definition_of(s: &sdk::Service, cluster: &str) -> ServiceDefinition {
    let vpc = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let d = s.deployment_configuration();
    let breaker = d.and_then(|d| d.deployment_circuit_breaker());
    ServiceDefinition {
        cluster: s
            .cluster_arn()
            .map_or_else(|| cluster.to_owned(), last_segment),
        service_name: s.service_name().unwrap_or_default().to_owned(),
        task_definition: last_segment(s.task_definition().unwrap_or_default()),
        desired_count: s.desired_count(),
        launch_type: s.launch_type().map(|l| l.as_str().to_owned()),
        capacity_provider_strategy: s
            .capacity_provider_strategy()
            .iter()
            .map(|c| CapacityProviderStrategyItem {
                capacity_provider: c.capacity_provider().to_owned(),
                weight: c.weight(),
                base: c.base(),
            })
            .collect(),
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
                security_groups: vpc
                    .map(|v| v.security_groups().to_vec())
                    .unwrap_or_default(),
                assign_public_ip: vpc
                    .and_then(|v| v.assign_public_ip())
                    .map_or("DISABLED", |a| a.as_str())
                    .to_owned(),
            },
        },
        load_balancers: s
            .load_balancers()
            .iter()
            .map(|l| LoadBalancer {
                target_group_arn: l.target_group_arn().unwrap_or_default().to_owned(),
                container_name: l.container_name().unwrap_or_default().to_owned(),
                container_port: l.container_port().unwrap_or_default(),
            })
            .collect(),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds(),
        deployment_configuration: d.map(|d| DeploymentConfiguration {
            minimum_healthy_percent: d.minimum_healthy_percent().unwrap_or(100),
            maximum_percent: d.maximum_percent().unwrap_or(200),
            deployment_circuit_breaker: DeploymentCircuitBreaker {
                enable: breaker.is_some_and(|b| b.enable()),
                rollback: breaker.is_some_and(|b| b.rollback()),
            },
        }),
        enable_execute_command: s.enable_execute_command(),
    }
}

/// The service `name` in `cluster`, if it exists and is not being deleted.
pub async fn describe(
    client: &Client,
    cluster: &str,
    name: &str,
) -> Result<Option<Live>, CallError> {
    let out = client
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .map_err(failed(format!(
            "describing service {name} in cluster {cluster}"
        )))?;
    let Some(s) = out
        .services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE") || s.status() == Some("DRAINING"))
    else {
        return Ok(None);
    };
    if s.status() == Some("DRAINING") {
        return Err(CallError {
            what: format!("service {name} in cluster {cluster}"),
            message: "it is being deleted (DRAINING); wait until it is gone, then deploy".into(),
        });
    }
    Ok(Some(Live {
        definition: definition_of(s, cluster),
        snapshot: snapshot_of(s),
        task_definition: last_segment(s.task_definition().unwrap_or_default()),
    }))
}

fn network(d: &ServiceDefinition) -> Result<sdk::NetworkConfiguration, CallError> {
    let v = &d.network_configuration.awsvpc_configuration;
    let vpc = sdk::AwsVpcConfiguration::builder()
        .set_subnets(Some(v.subnets.clone()))
        .set_security_groups((!v.security_groups.is_empty()).then(|| v.security_groups.clone()))
        .assign_public_ip(sdk::AssignPublicIp::from(v.assign_public_ip.as_str()))
        .build()
        .map_err(failed("building the network configuration"))?;
    Ok(sdk::NetworkConfiguration::builder()
        .awsvpc_configuration(vpc)
        .build())
}

fn deployment_configuration(d: &ServiceDefinition) -> Option<sdk::DeploymentConfiguration> {
    let c = d.deployment_configuration.as_ref()?;
    let breaker = sdk::DeploymentCircuitBreaker::builder()
        .enable(c.deployment_circuit_breaker.enable)
        .rollback(c.deployment_circuit_breaker.rollback)
        .build();
    Some(
        sdk::DeploymentConfiguration::builder()
            .minimum_healthy_percent(c.minimum_healthy_percent)
            .maximum_percent(c.maximum_percent)
            .deployment_circuit_breaker(breaker)
            .build(),
    )
}

fn strategy(d: &ServiceDefinition) -> Result<Vec<sdk::CapacityProviderStrategyItem>, CallError> {
    d.capacity_provider_strategy
        .iter()
        .map(|c| {
            sdk::CapacityProviderStrategyItem::builder()
                .capacity_provider(&c.capacity_provider)
                .weight(c.weight)
                .base(c.base)
                .build()
                .map_err(failed("building the capacity provider strategy"))
        })
        .collect()
}

fn load_balancers(d: &ServiceDefinition) -> Vec<sdk::LoadBalancer> {
    d.load_balancers
        .iter()
        .map(|l| {
            sdk::LoadBalancer::builder()
                .target_group_arn(&l.target_group_arn)
                .container_name(&l.container_name)
                .container_port(l.container_port)
                .build()
        })
        .collect()
}

/// The PRIMARY deployment of a service ECS just answered with: the one our call started.
fn started(s: Option<&sdk::Service>, what: &str) -> Result<String, CallError> {
    s.and_then(|s| {
        s.deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
    })
    .map(str::to_owned)
    .ok_or_else(|| CallError {
        what: what.to_owned(),
        message: "ECS answered without a PRIMARY deployment (is the service's deployment \
                  controller ECS?)"
            .into(),
    })
}

/// Creates the service; the id of its first deployment.
pub async fn create(client: &Client, d: &ServiceDefinition) -> Result<String, CallError> {
    let what = format!(
        "creating service {} in cluster {}",
        d.service_name, d.cluster
    );
    let out = client
        .create_service()
        .cluster(&d.cluster)
        .service_name(&d.service_name)
        .task_definition(&d.task_definition)
        .desired_count(d.desired_count)
        .set_launch_type(d.launch_type.as_deref().map(sdk::LaunchType::from))
        .set_capacity_provider_strategy(Some(strategy(d)?).filter(|s: &Vec<_>| !s.is_empty()))
        .network_configuration(network(d)?)
        .set_load_balancers(Some(load_balancers(d)).filter(|l| !l.is_empty()))
        .set_health_check_grace_period_seconds(d.health_check_grace_period_seconds)
        .set_deployment_configuration(deployment_configuration(d))
        .enable_execute_command(d.enable_execute_command)
        .scheduling_strategy(sdk::SchedulingStrategy::Replica)
        .propagate_tags(sdk::PropagateTags::Service)
        .send()
        .await
        .map_err(failed(what.clone()))?;
    started(out.service(), &what)
}

/// Updates the service to `d`; the id of the PRIMARY deployment afterwards (a new one when the
/// task definition or the network changed).
pub async fn update(client: &Client, d: &ServiceDefinition) -> Result<String, CallError> {
    let what = format!(
        "updating service {} in cluster {}",
        d.service_name, d.cluster
    );
    let out = client
        .update_service()
        .cluster(&d.cluster)
        .service(&d.service_name)
        .task_definition(&d.task_definition)
        .desired_count(d.desired_count)
        .set_capacity_provider_strategy(Some(strategy(d)?).filter(|s: &Vec<_>| !s.is_empty()))
        .network_configuration(network(d)?)
        .set_load_balancers(Some(load_balancers(d)))
        .set_health_check_grace_period_seconds(d.health_check_grace_period_seconds)
        .set_deployment_configuration(deployment_configuration(d))
        .enable_execute_command(d.enable_execute_command)
        .send()
        .await
        .map_err(failed(what.clone()))?;
    started(out.service(), &what)
}

/// A task of our deployment that stopped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedTask {
    pub task: String,
    pub reason: String,
    /// `(container, exit code, reason)` of each container that says something.
    pub containers: Vec<(String, Option<i32>, String)>,
}

/// The stopped tasks ECS started for `deployment` (at most 10, newest first as ECS lists).
pub async fn stopped_tasks(
    client: &Client,
    cluster: &str,
    deployment: &str,
) -> Result<Vec<StoppedTask>, CallError> {
    let arns = client
        .list_tasks()
        .cluster(cluster)
        .started_by(deployment)
        .desired_status(sdk::DesiredStatus::Stopped)
        .max_results(10)
        .send()
        .await
        .map_err(failed("listing the stopped tasks"))?
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let out = client
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .map_err(failed("describing the stopped tasks"))?;
    Ok(out
        .tasks()
        .iter()
        .map(|t| StoppedTask {
            task: last_segment(t.task_arn().unwrap_or_default()),
            reason: t.stopped_reason().unwrap_or_default().to_owned(),
            containers: t
                .containers()
                .iter()
                .filter(|c| c.exit_code().is_some_and(|x| x != 0) || c.reason().is_some())
                .map(|c| {
                    (
                        c.name().unwrap_or_default().to_owned(),
                        c.exit_code(),
                        c.reason().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        })
        .collect())
}

/// How to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up (and say what was awaited) after this long.
    pub timeout: Duration,
    /// Time between looks.
    pub interval: Duration,
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    Completed,
    Failed {
        reason: String,
        rolled_back_to: Option<Deployment>,
        stopped: Vec<StoppedTask>,
        /// The last events, oldest first.
        events: Vec<String>,
    },
    Replaced {
        by: Deployment,
    },
    TimedOut {
        last: String,
    },
    /// The user stopped waiting (Ctrl-C); the deployment goes on.
    Interrupted {
        last: String,
    },
}

/// Waits for deployment `ours` of service `name` (see the module docs); `report` gets each
/// progress line and each new service event as they appear. A look that fails (throttling, a
/// dropped connection) is reported and retried at the next interval, up to five in a row.
pub async fn wait(
    client: &Client,
    cluster: &str,
    name: &str,
    ours: &str,
    previous: Option<&str>,
    options: &WaitOptions,
    mut report: impl FnMut(&str),
) -> Result<WaitEnd, CallError> {
    // Events created from a little before our call on are ours to show (clocks differ).
    let since = SystemTime::now() - Duration::from_secs(5);
    let deadline = Instant::now() + options.timeout;
    let mut seen = HashSet::new();
    let mut last = String::new();
    let mut errors = 0;
    let mut last_said = Instant::now();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let look = client
            .describe_services()
            .cluster(cluster)
            .services(name)
            .send()
            .await;
        match look {
            Err(e) => {
                errors += 1;
                let message = error_chain(&e);
                if errors >= 5 {
                    return Err(CallError {
                        what: format!("describing service {name} ({errors} tries in a row)"),
                        message,
                    });
                }
                report(&format!(
                    "warning: describing the service failed, retrying: {message}"
                ));
            }
            Ok(out) => {
                errors = 0;
                let Some(s) = out.services().first() else {
                    return Err(CallError {
                        what: format!("service {name} in cluster {cluster}"),
                        message: "it disappeared while we waited".into(),
                    });
                };
                let snap = snapshot_of(s);
                for e in watch::new_events(&snap, since, &mut seen) {
                    report(&format!("event: {}", e.message));
                }
                match watch::judge(&snap, ours, previous, since) {
                    Verdict::Completed => return Ok(WaitEnd::Completed),
                    Verdict::Replaced { by } => return Ok(WaitEnd::Replaced { by }),
                    Verdict::Failed {
                        reason,
                        rolled_back_to,
                    } => {
                        let stopped = stopped_tasks(client, cluster, ours)
                            .await
                            .unwrap_or_default();
                        let mut events: Vec<&Event> = snap.events.iter().take(5).collect();
                        events.reverse();
                        return Ok(WaitEnd::Failed {
                            reason,
                            rolled_back_to,
                            stopped,
                            events: events.iter().map(|e| e.message.clone()).collect(),
                        });
                    }
                    Verdict::InProgress(line) => {
                        if line != last || last_said.elapsed() >= Duration::from_secs(30) {
                            report(&line);
                            last_said = Instant::now();
                        }
                        last = line;
                    }
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(WaitEnd::TimedOut { last });
        }
        let nap = options.interval.min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = &mut interrupted => return Ok(WaitEnd::Interrupted { last }),
        }
    }
}

/// The ACTIVE revisions of `family`, newest first.
pub async fn revisions(client: &Client, family: &str) -> Result<Vec<i32>, CallError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_task_definitions()
        .family_prefix(family)
        .status(sdk::TaskDefinitionStatus::Active)
        .sort(sdk::SortOrder::Desc)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(failed(format!("listing the revisions of {family}")))?;
        out.extend(page.task_definition_arns().iter().filter_map(|arn| {
            let (f, rev) = last_segment(arn)
                .rsplit_once(':')
                .map(|(f, r)| (f.to_owned(), r.to_owned()))?;
            (f == family).then(|| rev.parse::<i32>().ok()).flatten()
        }));
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Points the service at `task_definition` (`family:revision`), nothing else changed; the id of
/// the deployment that starts.
pub async fn switch_to(
    client: &Client,
    cluster: &str,
    name: &str,
    task_definition: &str,
) -> Result<String, CallError> {
    let what = format!("pointing service {name} at {task_definition}");
    let out = client
        .update_service()
        .cluster(cluster)
        .service(name)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(failed(what.clone()))?;
    started(out.service(), &what)
}
