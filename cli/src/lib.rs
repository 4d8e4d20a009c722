//! `tracedapp`: the command line of TracedApp — print the CRD, render a TracedApp for
//! Kubernetes, ECS or the collector, register it with ECS, draw a trace from Jaeger. The controller is its own binary,
//! `tracedapp-operator`.
//!
//! Exit codes: 0 success, 2 bad input (unreadable file, invalid spec), 3 AWS or API failure,
//! 4 a check found the account not ready, 1 anything else.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use tracedapp_api::TracedApp;

use tracedapp_k8s::manifests;

pub mod aws;
pub mod aws_call;
pub mod ecs;
pub mod flags;
pub mod lambda;
pub mod telemetry;
pub mod trace;
pub mod verify;

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for an AWS or Kubernetes API failure.
pub const EXIT_API: u8 = 3;
/// Exit code for a check that found the account not ready (`aws check`).
pub const EXIT_NOT_READY: u8 = 4;
/// Exit code for a deployment that failed, was rolled back or was replaced (`ecs deploy`,
/// `ecs rollback`).
pub const EXIT_DEPLOY_FAILED: u8 = 5;
/// Exit code for a wait that gave up (`--timeout`); the deployment goes on.
pub const EXIT_TIMED_OUT: u8 = 6;
/// Exit code when the user stopped waiting (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

const ABOUT: &str = "\
Ship a traced service to Kubernetes, AWS ECS and AWS Lambda from one TracedApp spec.

A TracedApp (tracedapp.dev/v1alpha1) describes an app, the OpenTelemetry Collector that runs
beside it, and where traces (Jaeger, AWS X-Ray) and metrics (Prometheus, CloudWatch) go.";

const EXAMPLES: &str = "\
EXAMPLES:
  tracedapp crd | kubectl apply --server-side -f -       install the CRD
  tracedapp render k8s -f manifests/examples/shop.yaml   Kubernetes objects, as YAML
  tracedapp render collector -f app.yaml                 the collector config alone
  tracedapp render ecs -f app.yaml > td.json             ECS task definition, for
      aws ecs register-task-definition --cli-input-json file://td.json
  tracedapp render lambda -f app.yaml --out-dir build/  the Lambda layer's collector.yaml and
                                                          the function's environment.json
  tracedapp ecs register -f app.yaml --dry-run           what would be registered
  tracedapp ecs register -f app.yaml --region eu-west-1  register (only if changed)
  tracedapp aws check -f app.yaml                        can X-Ray take the spans? (Transaction
                                                          Search, for protocol: otlp)
  tracedapp trace --service shop                         the latest trace of shop, drawn
  tracedapp trace 4bf92f3577b34da6a3ce929d0e0e4736       one trace (JAEGER_URL or --jaeger)

EXIT CODES: 0 ok, 2 bad input (file or spec), 3 AWS/API failure, 4 account not ready, 1 other.";

#[derive(Debug, Parser)]
#[command(name = "tracedapp", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the TracedApp CustomResourceDefinition (YAML), for `kubectl apply`.
    Crd,
    /// Print the version, the commit it was built from, and the TracedApp API version it
    /// reads and writes.
    Version,
    /// Print a shell completion script: `tracedapp completion bash > /etc/bash_completion.d/tracedapp`,
    /// `tracedapp completion zsh > "${fpath[1]}/_tracedapp"`,
    /// `tracedapp completion fish > ~/.config/fish/completions/tracedapp.fish`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Render a TracedApp file into what runs it, without touching a cluster or AWS.
    Render {
        /// What to render.
        #[arg(value_enum)]
        target: RenderTarget,
        /// A TracedApp file (`-` for standard input), as kubectl takes it: repeat `-f`, give a
        /// file of several documents (`---`), or a directory (its `*.yaml`, `*.yml`, `*.json`).
        #[arg(short = 'f', long = "file", required = true, action = clap::ArgAction::Append)]
        file: Vec<PathBuf>,
        /// The namespace of TracedApps that name none (one that names another is refused).
        #[arg(short = 'n', long, value_parser = flags::namespace)]
        namespace: Option<String>,
        /// Output format (default: yaml for k8s and collector, json for ecs). Several
        /// TracedApps: YAML documents one after the other, or one JSON list.
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Format>,
        /// k8s: the namespace the operator runs in; only its pods may read the collector's
        /// own metrics (see the NetworkPolicy).
        #[arg(long, default_value = manifests::DEFAULT_OPERATOR_NAMESPACE, value_parser = flags::namespace)]
        operator_namespace: String,
        /// k8s: the collector image of apps whose spec names none (and keeps the contrib
        /// distribution), as the operator's `--collector-image` sets it: e.g. your build of
        /// `tools/otelcol.Dockerfile`.
        #[arg(long, value_parser = flags::collector_image)]
        collector_image: Option<String>,
        /// lambda: write `collector.yaml` (ship it in the function's zip) and
        /// `environment.json` (for `aws lambda ... --environment file://...`) into this
        /// directory instead of printing both.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// AWS ECS: register the task definition.
    #[command(subcommand)]
    Ecs(EcsCommand),
    /// AWS account checks, before you deploy (EKS or ECS).
    #[command(subcommand)]
    Aws(AwsCommand),
    /// Draw a trace from Jaeger as a waterfall: one row per span, indented by parentage, a
    /// bar placed by start time and sized by duration, status and key HTTP attributes.
    Trace {
        /// The trace id (hex); or give --service for that service's latest trace.
        #[arg(required_unless_present = "service")]
        trace_id: Option<String>,
        /// Draw the latest trace of this service (in the last hour).
        #[arg(short, long, conflicts_with = "trace_id")]
        service: Option<String>,
        /// Jaeger's query API (the UI's address).
        #[arg(long, env = "JAEGER_URL", default_value = "http://localhost:16686", value_parser = flags::http_url)]
        jaeger: String,
        /// Colour: on a terminal (auto, unless NO_COLOR is set), always or never.
        #[arg(long, value_enum, default_value = "auto")]
        color: trace::Color,
        /// Columns of the time axis.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(10..=400))]
        width: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// Register the task definition of a TracedApp, only if it differs from the family's latest
    /// ACTIVE revision. Prints the ARN and whether it is new. AWS credentials come from the
    /// usual chain (environment, profile, SSO, instance/task role).
    Register {
        /// The TracedApp YAML file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Print the task definition that would be registered, and call nothing.
        #[arg(long)]
        dry_run: bool,
        /// AWS region to register in, and so of the task's logs (default: spec.ecs.region,
        /// else us-east-1).
        #[arg(long, value_parser = flags::region)]
        region: Option<String>,
        /// ECS API endpoint override, e.g. an emulator at http://127.0.0.1:5000.
        #[arg(long, env = "AWS_ENDPOINT_URL_ECS", value_parser = flags::http_url)]
        endpoint_url: Option<String>,
    },
    /// Deploy: register the task definition (if it changed), create the service
    /// (`spec.ecs.service`) or update it (if it differs), then wait for the deployment this
    /// started — by its id — until it completes (exit 0), fails or is rolled back by the
    /// circuit breaker (exit 5, with ECS's reason, the stopped tasks' reasons and exit codes,
    /// the last events), is replaced by a deployment someone else started (exit 5), or the
    /// timeout passes (exit 6). Progress and new service events on stderr as they happen.
    Deploy {
        #[command(flatten)]
        target: ecs::Target,
        #[command(flatten)]
        waiting: ecs::Waiting,
    },
    /// What `deploy` would change: the task definition against the family's latest ACTIVE
    /// revision and the service against the live one, as unified diffs of the normalised
    /// documents. Exit 1 when they differ, 0 when not (like `diff`).
    Diff {
        #[command(flatten)]
        target: ecs::Target,
    },
    /// Put the service back on the previous ACTIVE revision of the family (or `--to N`) and
    /// wait for that deployment like `deploy`. Deregisters nothing.
    Rollback {
        #[command(flatten)]
        target: ecs::Target,
        /// The revision to go back to.
        #[arg(long)]
        to: Option<i32>,
        #[command(flatten)]
        waiting: ecs::Waiting,
    },
    /// Check against the account, before deploying, what ECS would otherwise fail on minutes
    /// later: the cluster exists and is ACTIVE; the execution and task roles exist and trust
    /// ecs-tasks.amazonaws.com; the subnets and security groups exist, in one VPC; the app's
    /// image is in ECR (when it is an ECR image); whether the log group exists. One line per
    /// problem, naming the spec field to change; exit 4 when there is any.
    Verify {
        #[command(flatten)]
        target: ecs::Target,
    },
    /// The service's deployments (state, task counts, task definition), its latest events.
    Status {
        #[command(flatten)]
        target: ecs::Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Check that the account can take the TracedApp's traces: under
    /// `exporters.xray.protocol: otlp` (the default) X-Ray's OTLP endpoint needs CloudWatch
    /// Transaction Search on, which X-Ray's GetTraceSegmentDestination tells (destination
    /// `CloudWatchLogs`). Says how to turn it on, or to use `protocol: xray`. Exit code 4 when
    /// the account is not ready. Credentials come from the usual AWS chain; the identity needs
    /// `xray:GetTraceSegmentDestination`.
    Check {
        /// The TracedApp YAML file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// X-Ray API endpoint override, e.g. a VPC endpoint or an emulator.
        #[arg(long, env = "AWS_ENDPOINT_URL_XRAY", value_parser = flags::http_url)]
        endpoint_url: Option<String>,
    },
}

/// What `render` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderTarget {
    /// ConfigMap, ServiceAccount, Deployment, Service, NetworkPolicy.
    K8s,
    /// The ECS task definition (RegisterTaskDefinition input).
    Ecs,
    /// The OpenTelemetry Collector configuration, exactly as the Kubernetes sidecar runs it
    /// (the ConfigMap's content; an ECS task's is in its task definition).
    Collector,
    /// A Lambda function's: the OpenTelemetry Lambda collector layer's configuration and the
    /// function's environment. Fields the layer cannot run are refused.
    Lambda,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

/// A failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    DeployFailed(String),
    /// `ecs diff` found differences (already printed).
    #[error("")]
    Differs,
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => EXIT_BAD_INPUT,
            CliError::Api(_) => EXIT_API,
            CliError::NotReady(_) => EXIT_NOT_READY,
            CliError::DeployFailed(_) => EXIT_DEPLOY_FAILED,
            CliError::Differs => 1,
            CliError::TimedOut(_) => EXIT_TIMED_OUT,
            CliError::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }
}

/// The TracedApps of every `-f`, with `namespace` given to those that name none; two with the
/// same name in one namespace, or one naming another namespace than `-n`, are refused.
pub fn read_apps(files: &[PathBuf], namespace: Option<&str>) -> Result<Vec<TracedApp>, CliError> {
    let mut apps = Vec::new();
    for f in files {
        apps.extend(tracedapp_api::load::read_all(f).map_err(CliError::BadInput)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for app in &mut apps {
        let name = app.metadata.name.clone().unwrap_or_default();
        match (&app.metadata.namespace, namespace) {
            (Some(own), Some(flag)) if own != flag => {
                return Err(CliError::BadInput(format!(
                    "TracedApp {name} names namespace {own}, not {flag} (-n): remove one of them"
                )));
            }
            (None, Some(flag)) => app.metadata.namespace = Some(flag.to_owned()),
            _ => {}
        }
        let ns = app.metadata.namespace.clone().unwrap_or_default();
        if !seen.insert((ns.clone(), name.clone())) {
            return Err(CliError::BadInput(format!(
                "two TracedApps are named {name}{}: names are unique per namespace",
                if ns.is_empty() {
                    String::new()
                } else {
                    format!(" in {ns}")
                }
            )));
        }
    }
    Ok(apps)
}

/// `tracedapp render`: what it prints (or, for `lambda --out-dir`, writes and then says).
pub fn render_command(
    files: &[PathBuf],
    apps: &[TracedApp],
    target: RenderTarget,
    output: Option<Format>,
    site: manifests::Site,
    out_dir: Option<PathBuf>,
) -> Result<String, CliError> {
    if out_dir.is_some() && target != RenderTarget::Lambda {
        return Err(CliError::BadInput(
            "--out-dir is for `render lambda` (the other targets print one document)".to_owned(),
        ));
    }
    if target == RenderTarget::Lambda {
        let [app] = apps else {
            return Err(CliError::BadInput(format!(
                "render lambda takes one TracedApp (a function's two files); got {}",
                apps.len()
            )));
        };
        let rendered = lambda::render(app)?;
        for line in tracedapp_api::lambda::ignored_fields(&app.spec) {
            eprintln!("note: {line}");
        }
        return match out_dir {
            Some(dir) => lambda::write(&rendered, &dir),
            None => Ok(lambda::document(&rendered, output)),
        };
    }
    // ECS: each task definition is built once, checked, and is what is printed.
    let mut task_definitions = Vec::new();
    for app in apps {
        if target == RenderTarget::K8s {
            if app.spec.ecs.as_ref().is_some_and(|e| e.service.is_some()) {
                eprintln!(
                    "note: spec.ecs.service is for `tracedapp ecs deploy`; Kubernetes ignores it"
                );
            }
            for line in kubernetes_escapes(&app.spec) {
                eprintln!("note: {line}");
            }
        }
        if target == RenderTarget::Ecs {
            warn_ecs(app, None);
            let td = tracedapp_ecs::task_definition(app);
            // The same verdict as `ecs register` and `ecs deploy`: what ECS would refuse is
            // refused here, exit 2.
            let source = match (files, apps.len()) {
                ([one], 1) => tracedapp_api::load::source_name(one),
                _ => format!("TracedApp {}", app.metadata.name.as_deref().unwrap_or("")),
            };
            refuse_what_ecs_would(&source, &td)?;
            task_definitions.push(td);
        }
    }
    // Several: YAML documents one after the other, or one JSON list.
    let yaml_documents = |docs: Vec<String>| docs.join("---\n");
    Ok(match (target, output, apps) {
        (RenderTarget::Ecs, _, [_]) => ecs_output(&task_definitions[0], output),
        (_, _, [app]) => render(app, target, output, &site)?,
        (RenderTarget::Ecs, Some(Format::Yaml), _) => {
            yaml_documents(task_definitions.iter().map(yaml).collect())
        }
        (RenderTarget::Ecs, _, _) => json(&task_definitions),
        (RenderTarget::K8s, Some(Format::Json), _) => {
            let items: Vec<_> = apps
                .iter()
                .flat_map(|a| manifests::build_at(a, &site).list())
                .collect();
            json(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))
        }
        (RenderTarget::Collector, Some(Format::Json), _) => {
            let configs: Vec<_> = apps.iter().map(manifests::Rendered::config).collect();
            json(&configs)
        }
        _ => yaml_documents(
            apps.iter()
                .map(|app| render(app, target, output, &site))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// What `tracedapp version` prints.
pub fn version_text() -> String {
    format!(
        "tracedapp {}\ncommit {} ({})\nAPI {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("TRACEDAPP_COMMIT"),
        env!("TRACEDAPP_COMMIT_DATE"),
        tracedapp_api::load::API_VERSION,
    )
}

/// Reads and validates a TracedApp file (the TracedApp document of a multi-document file);
/// errors name the file and every bad field.
pub fn read_app(path: &Path) -> Result<TracedApp, CliError> {
    tracedapp_api::load::read(path).map_err(CliError::BadInput)
}

/// Renders `app` for `target` in `format` (what `tracedapp render` prints).
pub fn render(
    app: &TracedApp,
    target: RenderTarget,
    format: Option<Format>,
    site: &manifests::Site,
) -> Result<String, CliError> {
    let out = match (target, format) {
        // Exactly what the sidecar runs (the ConfigMap's content); the ECS task's is in the
        // task definition (`render ecs`).
        (RenderTarget::Collector, None | Some(Format::Yaml)) => {
            manifests::Rendered::config(app).to_yaml()
        }
        (RenderTarget::Collector, Some(Format::Json)) => json(&manifests::Rendered::config(app)),
        (RenderTarget::K8s, None | Some(Format::Yaml)) => {
            let docs: Vec<String> = manifests::build_at(app, site)
                .list()
                .iter()
                .map(yaml)
                .collect();
            docs.join("---\n")
        }
        (RenderTarget::K8s, Some(Format::Json)) => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": manifests::build_at(app, site).list(),
            });
            json(&list)
        }
        (RenderTarget::Ecs, format) => ecs_output(&tracedapp_ecs::task_definition(app), format),
        (RenderTarget::Lambda, format) => lambda::document(&lambda::render(app)?, format),
    };
    Ok(out)
}

/// A task definition as `render ecs` prints it (JSON unless YAML is asked for).
fn ecs_output(td: &tracedapp_ecs::model::TaskDefinition, format: Option<Format>) -> String {
    match format {
        Some(Format::Yaml) => yaml(td),
        None | Some(Format::Json) => json(td),
    }
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("our models always serialise");
    s.push('\n');
    s
}

pub(crate) fn yaml<T: serde::Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).expect("our models always serialise")
}

/// Runs one command; what it prints goes to stdout, progress and results of `ecs register` too.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd => {
            print!("{}", tracedapp_api::spec::crd_yaml());
            Ok(())
        }
        Command::Version => {
            print!("{}", version_text());
            Ok(())
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tracedapp",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Render {
            target,
            file,
            output,
            operator_namespace,
            collector_image,
            out_dir,
            namespace,
        } => {
            let apps = read_apps(&file, namespace.as_deref())?;
            let site = manifests::Site {
                operator_namespace,
                collector_image,
            };
            print!(
                "{}",
                render_command(&file, &apps, target, output, site, out_dir)?
            );
            Ok(())
        }
        Command::Trace {
            trace_id,
            service,
            jaeger,
            color,
            width,
        } => {
            let request = trace::Request {
                jaeger,
                trace_id,
                service,
                color,
                width: usize::from(width),
            };
            print!("{}", trace::trace(&request).await?);
            Ok(())
        }
        Command::Ecs(EcsCommand::Deploy { target, waiting }) => {
            ecs::deploy(&target, &waiting).await
        }
        Command::Ecs(EcsCommand::Rollback {
            target,
            to,
            waiting,
        }) => ecs::rollback(&target, to, &waiting).await,
        Command::Ecs(EcsCommand::Status { target }) => ecs::status(&target).await,
        Command::Ecs(EcsCommand::Verify { target }) => {
            let findings = verify::verify(&target).await?;
            let mut problems = Vec::new();
            for f in findings {
                match f {
                    // Names and policies come from the account: printed as data.
                    verify::Finding::Ok(t) => {
                        println!("ok       {}", traceview::terminal_safe_text(&t))
                    }
                    verify::Finding::Note(t) => {
                        println!("note     {}", traceview::terminal_safe_text(&t))
                    }
                    verify::Finding::Problem(t) => {
                        println!("problem  {}", traceview::terminal_safe_text(&t));
                        problems.push(t);
                    }
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::NotReady(format!(
                    "{} problem(s): ECS would fail on them; fix the fields named above",
                    problems.len()
                )))
            }
        }
        Command::Ecs(EcsCommand::Diff { target }) => {
            if ecs::diff(&target).await? {
                Err(CliError::Differs)
            } else {
                Ok(())
            }
        }
        Command::Aws(AwsCommand::Check { file, endpoint_url }) => {
            let app = read_app(&file)?;
            let name = app.metadata.name.clone().unwrap_or_default();
            let Some((region, protocol)) = aws::xray_target(&app.spec) else {
                println!("{name}: does not export to X-Ray: nothing to check");
                return Ok(());
            };
            eprintln!("asking X-Ray in {region} where it stores traces...");
            let destination = aws::destination(&region, endpoint_url.as_deref())
                .await
                .map_err(CliError::Api)?;
            match aws::judge(&region, protocol, &destination) {
                aws::Verdict::Ready(text) => {
                    println!("{name}: ok: {text}");
                    Ok(())
                }
                aws::Verdict::Blocked(text) => Err(CliError::NotReady(format!("{name}: {text}"))),
            }
        }
        Command::Ecs(EcsCommand::Register {
            file,
            dry_run,
            region,
            endpoint_url,
        }) => {
            let app = read_app(&file)?;
            warn_ecs(&app, region.as_deref());
            let region = tracedapp_ecs::region(&app.spec, region.as_deref());
            let td = tracedapp_ecs::build::task_definition_in(&app, &region);
            refuse_what_ecs_would(&tracedapp_api::load::source_name(&file), &td)?;
            if dry_run {
                eprintln!(
                    "dry run: would register family {:?} in {region} if it differs from its latest \
                     revision",
                    td.family
                );
                print!("{}", json(&td));
                return Ok(());
            }
            let endpoint = tracedapp_ecs::register::Endpoint {
                region: Some(region),
                url: endpoint_url,
            };
            eprintln!("registering task definition family {:?}...", td.family);
            let client = tracedapp_ecs::register::client(&endpoint).await;
            let outcome = tracedapp_ecs::register::register(&client, &td)
                .await
                .map_err(|e| CliError::Api(e.to_string()))?;
            // The ARN is the account's answer: printed as data, never as terminal commands.
            let arn = traceview::terminal_safe(&outcome.arn);
            if outcome.created {
                println!("registered {arn} (new revision {})", outcome.revision);
            } else {
                println!(
                    "unchanged {arn} (revision {} already matches)",
                    outcome.revision
                );
            }
            Ok(())
        }
    }
}

/// What Kubernetes would have expanded and the render keeps as text (`$(` written `$$(`), per
/// field: said, not done silently.
pub fn kubernetes_escapes(spec: &tracedapp_api::TracedAppSpec) -> Vec<String> {
    let mut out = Vec::new();
    if spec
        .service_name
        .as_deref()
        .is_some_and(|n| n.contains("$("))
    {
        out.push("spec.serviceName: `$(` is kept as text (written `$$(`, which Kubernetes does not expand)".to_owned());
    }
    for (i, e) in spec.app.env.iter().enumerate() {
        if e.value.contains("$(") {
            out.push(format!(
                "spec.app.env[{i}].value: `$(` is kept as text (written `$$(`, which Kubernetes \
                 does not expand); TracedApp values never refer to other variables"
            ));
        }
    }
    out
}

/// Exit 2 (bad input) when ECS would refuse the task definition, naming each reason: one
/// verdict for `render ecs`, `ecs register` and `ecs deploy`.
pub(crate) fn refuse_what_ecs_would(
    source: &str,
    td: &tracedapp_ecs::model::TaskDefinition,
) -> Result<(), CliError> {
    tracedapp_ecs::check::check(td).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        CliError::BadInput(format!(
            "{source}: ECS would refuse this task definition:\n{}",
            lines.join("\n")
        ))
    })
}

/// On stderr: what of the spec an ECS task cannot use, and where its region comes from
/// (`region_flag`: `--region`).
pub(crate) fn warn_ecs(app: &TracedApp, region_flag: Option<&str>) {
    for line in tracedapp_ecs::ignored_fields(&app.spec) {
        eprintln!("warning: {line}");
    }
    eprintln!(
        "note: {}",
        tracedapp_ecs::region_note(&app.spec, region_flag)
    );
}
