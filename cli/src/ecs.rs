//! `tracedapp ecs deploy | diff | rollback | status`: the ECS service of a TracedApp, deployed
//! and watched. What each prints: results on stdout, progress on stderr.

use std::time::Duration;

use tracedapp_ecs::deploy::{self, WaitEnd, WaitOptions};
use tracedapp_ecs::model::{ServiceDefinition, TaskDefinition};
use tracedapp_ecs::register::{self, Endpoint};
use tracedapp_ecs::service::{compare, normalise, service_definition};

use crate::CliError;

/// Where and how `ecs` commands reach ECS.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The TracedApp YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: std::path::PathBuf,
    /// AWS region (default: spec.ecs.region, else us-east-1).
    #[arg(long, value_parser = crate::flags::region)]
    pub region: Option<String>,
    /// ECS API endpoint override, e.g. an emulator at http://127.0.0.1:5000.
    #[arg(long, env = "AWS_ENDPOINT_URL_ECS", value_parser = crate::flags::http_url)]
    pub endpoint_url: Option<String>,
}

/// How `deploy` and `rollback` wait.
#[derive(Debug, Clone, clap::Args)]
pub struct Waiting {
    /// Once the deployment completes, also wait until the new tasks' collectors report that
    /// every trace exporter delivered spans and none is failing (their own counters, read
    /// back from CloudWatch Logs: see `ecs status`).
    #[arg(long, conflicts_with = "no_wait")]
    pub wait_for_telemetry: bool,
    /// Give up waiting after this long (`90s`, `30m`, `1h`); the deployment goes on.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Start the deployment and return at once (`ecs status` shows how it goes).
    #[arg(long)]
    pub no_wait: bool,
    /// Time between looks at the service.
    #[arg(long, default_value = "5s", value_parser = parse_duration, hide = true)]
    pub interval: Duration,
}

/// `90s`, `30m`, `1h` (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?}: a number then s, m or h, like 90s or 30m"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h, like 90s or 30m")),
    };
    Ok(Duration::from_secs(secs))
}

/// The app, its task definition and its service, as the spec says (the service running the
/// family's name until registration says which revision).
struct Plan {
    app: tracedapp_api::TracedApp,
    td: TaskDefinition,
    service: ServiceDefinition,
    endpoint: Endpoint,
}

fn plan(target: &Target) -> Result<Plan, CliError> {
    let app = crate::read_app(&target.file)?;
    crate::warn_ecs(&app, target.region.as_deref());
    let region = tracedapp_ecs::region(&app.spec, target.region.as_deref());
    let td = tracedapp_ecs::build::task_definition_in(&app, &region);
    crate::refuse_what_ecs_would(&tracedapp_api::load::source_name(&target.file), &td)?;
    let Some(service) = service_definition(&app, &td.family) else {
        return Err(CliError::BadInput(format!(
            "{}: spec.ecs.service is not set: a service needs at least its network, e.g.\n  \
             ecs:\n    service:\n      network:\n        subnets: [subnet-0123456789abcdef0]",
            target.file.display()
        )));
    };
    Ok(Plan {
        app,
        td,
        service,
        endpoint: Endpoint {
            region: Some(region),
            url: target.endpoint_url.clone(),
        },
    })
}

fn api(e: impl std::fmt::Display) -> CliError {
    CliError::Api(e.to_string())
}

/// `ecs deploy`.
pub async fn deploy(target: &Target, waiting: &Waiting) -> Result<(), CliError> {
    let Plan {
        app,
        td,
        mut service,
        endpoint,
    } = plan(target)?;
    let client = register::client(&endpoint).await;
    eprintln!("registering task definition family {:?}...", td.family);
    let registered = register::register(&client, &td).await.map_err(api)?;
    service.task_definition = format!("{}:{}", td.family, registered.revision);
    println!(
        "task definition {} ({})",
        service.task_definition,
        if registered.created {
            "new revision"
        } else {
            "unchanged"
        }
    );
    let (cluster, name) = (service.cluster.clone(), service.service_name.clone());
    let live = deploy::describe(&client, &cluster, &name)
        .await
        .map_err(api)?;
    let (ours, previous) = match &live {
        None => {
            eprintln!("creating service {name} in cluster {cluster}...");
            (deploy::create(&client, &service).await.map_err(api)?, None)
        }
        Some(l) if compare(&l.definition, &service).0 => {
            let primary = l
                .snapshot
                .deployments
                .iter()
                .find(|d| d.status == "PRIMARY");
            match primary {
                Some(p) if p.rollout_state == "IN_PROGRESS" => {
                    println!(
                        "service {name} already has what the spec says; its deployment {} is \
                         still in progress: waiting for it",
                        p.id
                    );
                    (p.id.clone(), None)
                }
                _ => {
                    println!(
                        "unchanged: service {name} in cluster {cluster} already runs {} as the \
                         spec says",
                        service.task_definition
                    );
                    return Ok(());
                }
            }
        }
        Some(l) => {
            eprintln!(
                "updating service {name} in cluster {cluster} (it runs {})...",
                l.task_definition
            );
            (
                deploy::update(&client, &service).await.map_err(api)?,
                Some(l.task_definition.clone()),
            )
        }
    };
    let region = endpoint.region.clone().unwrap_or_default();
    let new = Deployed {
        client: &client,
        cluster: &cluster,
        name: &name,
        ours: &ours,
        previous: previous.as_deref(),
        task_definition: &service.task_definition,
    };
    finish(&new, target, waiting).await?;
    if waiting.wait_for_telemetry {
        telemetry_arrives(&app, &td.family, &region, waiting).await?;
    }
    Ok(())
}

/// A deployment just started.
struct Deployed<'a> {
    client: &'a aws_sdk_ecs::Client,
    cluster: &'a str,
    name: &'a str,
    ours: &'a str,
    previous: Option<&'a str>,
    task_definition: &'a str,
}

/// Waits until the collectors that reported since now say every trace exporter delivered
/// spans and none fails; reports what they say as it changes.
async fn telemetry_arrives(
    app: &tracedapp_api::TracedApp,
    family: &str,
    region: &str,
    waiting: &Waiting,
) -> Result<(), CliError> {
    let since = std::time::SystemTime::now();
    let caller = crate::aws_call::Caller::new(region, None).await;
    let config = tracedapp_api::collector::render(&app.spec);
    let trace_exporters: Vec<String> = config
        .service
        .pipelines
        .iter()
        .filter(|(name, _)| name.starts_with("traces"))
        .flat_map(|(_, p)| p.exporters.clone())
        .collect();
    eprintln!(
        "waiting for the new tasks' telemetry: every trace exporter ({}) delivering spans...",
        trace_exporters.join(", ")
    );
    let deadline = std::time::Instant::now() + waiting.timeout;
    let mut last = String::new();
    loop {
        let health = crate::telemetry::read_since(&caller, app, family, Some(since))
            .await
            .map_err(CliError::Api)?;
        if health.line != last {
            eprintln!("  {}", traceview::terminal_safe_text(&health.line));
            last = health.line.clone();
        }
        if health.healthy == Some(false) {
            return Err(CliError::DeployFailed(format!(
                "the deployment completed, but its telemetry is failing: {}",
                health.line
            )));
        }
        let all_sent = trace_exporters
            .iter()
            .all(|e| health.sent_spans.get(e).is_some_and(|n| *n > 0));
        if health.healthy == Some(true) && all_sent {
            println!(
                "telemetry: the new tasks' spans reach every trace exporter ({})",
                trace_exporters.join(", ")
            );
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(CliError::TimedOut(format!(
                "gave up after {} waiting for the new tasks' spans to reach every exporter; \
                 last: {last}",
                human(waiting.timeout)
            )));
        }
        tokio::time::sleep(waiting.interval.max(std::time::Duration::from_secs(2))).await;
    }
}

/// Reports the deployment (started), waits for it unless told not to, and says how it ended,
/// as an exit code.
async fn finish(d: &Deployed<'_>, target: &Target, waiting: &Waiting) -> Result<(), CliError> {
    let Deployed {
        client,
        cluster,
        name,
        ours,
        previous,
        task_definition,
    } = *d;
    let file = target.file.display();
    if waiting.no_wait {
        println!(
            "deployment {ours} of {task_definition} started; not waiting (--no-wait): \
             `tracedapp ecs status -f {file}` shows how it goes"
        );
        return Ok(());
    }
    eprintln!(
        "waiting for deployment {ours} of {task_definition} (up to {}; Ctrl-C stops waiting, not \
         the deployment)...",
        human(waiting.timeout)
    );
    let options = WaitOptions {
        timeout: waiting.timeout,
        interval: waiting.interval,
    };
    let end = deploy::wait(client, cluster, name, ours, previous, &options, |line| {
        eprintln!("  {}", traceview::terminal_safe_text(line));
    })
    .await
    .map_err(api)?;
    match end {
        WaitEnd::Completed => {
            println!(
                "deployed: service {name} runs {task_definition} on every desired task \
                 (deployment {ours} COMPLETED)"
            );
            Ok(())
        }
        WaitEnd::Failed {
            reason,
            rolled_back_to,
            stopped,
            events,
        } => {
            let mut text = format!("deployment {ours} of {task_definition} failed: {reason}");
            if let Some(back) = rolled_back_to {
                text.push_str(&format!(
                    "\nECS rolled the service back to {} (deployment {}, {})",
                    back.task_definition, back.id, back.rollout_state
                ));
            }
            if !stopped.is_empty() {
                text.push_str("\nstopped tasks:");
                for t in &stopped {
                    text.push_str(&format!("\n  {}: {}", t.task, t.reason));
                    for (c, code, why) in &t.containers {
                        let code = code.map_or_else(
                            || "no exit code".to_owned(),
                            |c| format!("exit code {c}"),
                        );
                        text.push_str(&format!(
                            "\n    container {c}: {code}{}",
                            if why.is_empty() {
                                String::new()
                            } else {
                                format!(", {why}")
                            }
                        ));
                    }
                }
            }
            if !events.is_empty() {
                text.push_str("\nlast service events:");
                for e in events {
                    text.push_str(&format!("\n  {e}"));
                }
            }
            Err(CliError::DeployFailed(text))
        }
        WaitEnd::Replaced { by } => Err(CliError::DeployFailed(format!(
            "deployment {ours} of {task_definition} was replaced by deployment {} of {} \
             ({}), which this command did not start; not waiting for it",
            by.id, by.task_definition, by.rollout_state
        ))),
        WaitEnd::TimedOut { last } => Err(CliError::TimedOut(format!(
            "gave up after {} waiting for deployment {ours} of {task_definition} to complete; \
             it goes on. Last seen: {last}\n`tracedapp ecs status -f {file}` shows how it goes",
            human(waiting.timeout)
        ))),
        WaitEnd::Interrupted { last } => Err(CliError::Interrupted(format!(
            "stopped waiting; deployment {ours} goes on (last seen: {last}). `tracedapp ecs \
             status -f {file}` shows how it goes"
        ))),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// `ecs diff`: a unified diff of what deploy would change; `Ok(true)` when something differs.
pub async fn diff(target: &Target) -> Result<bool, CliError> {
    let Plan {
        td,
        mut service,
        endpoint,
        ..
    } = plan(target)?;
    let client = register::client(&endpoint).await;
    let latest = register::describe_latest(&client, &td.family)
        .await
        .map_err(api)?;
    let (current_td, revision) = match &latest {
        Some((current, _, revision)) => {
            (Some(register::normalise(current.clone())), Some(*revision))
        }
        None => (None, None),
    };
    let desired_td = register::normalise(td.clone());
    let td_changes = current_td.as_ref() != Some(&desired_td);
    service.task_definition = match (td_changes, revision) {
        (false, Some(r)) => format!("{}:{r}", td.family),
        _ => format!("{}:(new revision)", td.family),
    };
    let live = deploy::describe(&client, &service.cluster, &service.service_name)
        .await
        .map_err(api)?;
    let current_service = live.map(|l| {
        let mut current = l.definition;
        if compare(&current, &service).1 {
            eprintln!(
                "note: ECS's answer left out the service's deployment configuration; it is not \
                 compared"
            );
            current.deployment_configuration = service.deployment_configuration.clone();
        }
        normalise(current)
    });
    let desired_service = normalise(service);
    let mut changed = false;
    let show = |label: &str, current: Option<String>, desired: String| {
        let current = current.unwrap_or_default();
        if current == desired {
            return false;
        }
        let diff = similar::TextDiff::from_lines(&current, &desired);
        print!(
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&format!("{label} (live)"), &format!("{label} (spec)"))
        );
        true
    };
    changed |= show(
        &format!("task definition {}", td.family),
        current_td.map(|t| pretty(&t)),
        pretty(&desired_td),
    );
    changed |= show(
        &format!("service {}", desired_service.service_name),
        current_service.map(|s| pretty(&s)),
        pretty(&desired_service),
    );
    if !changed {
        eprintln!("no differences: deploy would change nothing");
    }
    Ok(changed)
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("our models serialise");
    s.push('\n');
    s
}

/// `ecs rollback`: the service back to the previous ACTIVE revision (or `to`), waited for like
/// a deploy. Nothing is ever deregistered.
pub async fn rollback(target: &Target, to: Option<i32>, waiting: &Waiting) -> Result<(), CliError> {
    let Plan {
        td,
        service,
        endpoint,
        ..
    } = plan(target)?;
    let client = register::client(&endpoint).await;
    let (cluster, name) = (service.cluster.clone(), service.service_name.clone());
    let Some(live) = deploy::describe(&client, &cluster, &name)
        .await
        .map_err(api)?
    else {
        return Err(CliError::Api(format!(
            "service {name} does not exist in cluster {cluster}: nothing to roll back"
        )));
    };
    let current = live.task_definition.clone();
    let current_rev: Option<i32> = current.rsplit_once(':').and_then(|(_, r)| r.parse().ok());
    let revisions = deploy::revisions(&client, &td.family).await.map_err(api)?;
    let target_rev = match to {
        Some(n) if revisions.contains(&n) => n,
        Some(n) => {
            return Err(CliError::BadInput(format!(
                "{}:{n} is not an ACTIVE revision (ACTIVE: {})",
                td.family,
                list(&revisions)
            )));
        }
        None => *revisions
            .iter()
            .find(|r| current_rev.is_some_and(|c| **r < c))
            .ok_or_else(|| {
                CliError::BadInput(format!(
                    "service {name} runs {current}: no earlier ACTIVE revision of {} to roll \
                     back to (ACTIVE: {})",
                    td.family,
                    list(&revisions)
                ))
            })?,
    };
    let wanted = format!("{}:{target_rev}", td.family);
    if wanted == current {
        println!("service {name} already runs {wanted}: nothing to do");
        return Ok(());
    }
    eprintln!("rolling service {name} back from {current} to {wanted}...");
    let ours = deploy::switch_to(&client, &cluster, &name, &wanted)
        .await
        .map_err(api)?;
    let back = Deployed {
        client: &client,
        cluster: &cluster,
        name: &name,
        ours: &ours,
        previous: Some(&current),
        task_definition: &wanted,
    };
    finish(&back, target, waiting).await
}

fn list(revisions: &[i32]) -> String {
    if revisions.is_empty() {
        return "none".to_owned();
    }
    revisions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ecs status`: the service's deployments, counts and latest events, and what its collectors
/// say of their exports (`ExportHealthy`, as on Kubernetes).
pub async fn status(target: &Target) -> Result<(), CliError> {
    let Plan {
        app,
        td,
        service,
        endpoint,
    } = plan(target)?;
    let client = register::client(&endpoint).await;
    let (cluster, name) = (service.cluster.clone(), service.service_name.clone());
    // The service's state, then the telemetry, even if the service could not be read.
    let described = deploy::describe(&client, &cluster, &name).await;
    match &described {
        Ok(None) => println!(
            "service {name} does not exist in cluster {cluster} (`tracedapp ecs deploy` creates it)"
        ),
        Ok(Some(live)) => print_service(&name, &cluster, live),
        Err(e) => println!(
            "service {name}: {}",
            traceview::terminal_safe_text(&e.to_string())
        ),
    }
    let region = endpoint.region.clone().unwrap_or_default();
    let caller = crate::aws_call::Caller::new(&region, None).await;
    let health = crate::telemetry::read_since(&caller, &app, &td.family, None)
        .await
        .map_err(CliError::Api)?;
    let safe = traceview::terminal_safe_text;
    println!(
        "telemetry (the collectors' own counters, from {}):",
        tracedapp_api::collector::self_telemetry_log_group(&td.family)
    );
    println!("  {}", safe(&health.line));
    for e in &health.exporters {
        println!("  {}", safe(e));
    }
    described.map(|_| ()).map_err(api)
}

fn print_service(name: &str, cluster: &str, live: &deploy::Live) {
    let safe = traceview::terminal_safe_text;
    println!(
        "service {name} in cluster {cluster}: runs {}, desired {}",
        live.task_definition, live.definition.desired_count
    );
    println!("deployments:");
    for d in &live.snapshot.deployments {
        println!("  {}", safe(&d.line()));
        if !d.rollout_reason.is_empty() {
            println!("    {}", safe(&d.rollout_reason));
        }
    }
    let events: Vec<_> = live.snapshot.events.iter().take(5).collect();
    if !events.is_empty() {
        println!("latest events:");
        for e in events.iter().rev() {
            println!("  {}", safe(&e.message));
        }
    }
}
