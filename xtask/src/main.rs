//! Project automation: `cargo xtask <command>` (see `--help`).
//!
//! # Layout
//! - `setup.rs`: installs the real programs the tests and the demo run (versions pinned in
//!   `testkit::tools`, cached under `~/.cache/tracedapp/tools/`).
//! - `codegen.rs`: the generated manifests, and the examples' check.
//! - `demo.rs`: the seed's whole system on this machine.
//! - `cluster.rs`: a local one-node Kubernetes with the images loaded (`cluster up|down`).

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

mod cluster;
mod codegen;
mod demo;
mod jobs;
mod setup;

#[derive(Debug, Parser)]
#[command(about = "TracedApp project automation")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Regenerate manifests/crd.yaml, the chart's copy of it and manifests/operator.yaml (the
    /// rendered chart, needs helm: installed if missing); check manifests/examples/*.yaml.
    Codegen {
        /// Change nothing; fail if a generated file is stale or an example is invalid.
        #[arg(long)]
        check: bool,
    },
    /// Install the tools the tests run (skips what is cached). As root, also the Debian
    /// packages of the one-node cluster (containerd, runc, CNI plugins, iptables, conntrack).
    Setup,
    /// The seed's system on this machine: Jaeger, the collector running the config rendered from
    /// manifests/examples/aws.yaml (with moto standing in for X-Ray and CloudWatch), and two chained services; sends a little traffic, prints
    /// where to look, stays up until Ctrl-C. Builds only what it runs.
    Demo(demo::Options),
    /// A local one-node Kubernetes (Linux, as root) with TracedApp's images loaded, for trying
    /// the README's kubectl and Helm commands without Docker.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Set up the tools, then run every test (`cargo test --workspace --locked`).
    Test {
        /// Extra arguments for `cargo test`, after `--`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

/// Runs the command; a failure (an error, or a panic in the test harness it drives) ends as one
/// message, never a backtrace.
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The harness's processes print their logs when a panic unwinds past them (for tests); a
    // command explains its own failures instead.
    testkit::process::quiet_on_panic();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_else(|| "failed".to_owned());
        eprintln!("xtask: {}", traceview::terminal_safe_text(&message));
    }));
    match std::panic::catch_unwind(|| run(args)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!(
                "xtask: {}",
                traceview::terminal_safe_text(&format!("{e:#}"))
            );
            std::process::ExitCode::FAILURE
        }
        // The hook has said why.
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

fn run(args: Args) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root)?;
    match args.command {
        Cmd::Codegen { check } => codegen::codegen(check),
        Cmd::Setup => setup::setup(),
        Cmd::Demo(options) => {
            // The service compiles while the tools build: the cores are shared, the downloads
            // and links overlap.
            demo::check_ports(&options)?;
            let build = demo::build_service()?;
            let jaeger_build = setup::setup_demo(options.builds_jaeger())?;
            demo::run(&options, build, jaeger_build)
        }
        Cmd::Cluster(command) => cluster::run(command),
        Cmd::Test { cargo_args } => {
            setup::setup()?;
            let status = Command::new(env!("CARGO"))
                .args(["test", "--workspace", "--locked"])
                .args(&cargo_args)
                .status()?;
            if !status.success() {
                bail!("tests failed");
            }
            Ok(())
        }
    }
}
