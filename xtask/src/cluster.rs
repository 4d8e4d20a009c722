//! `cargo xtask cluster up|down`: the tests' one-node Kubernetes, for people.
//!
//! `up` builds the service and the operator (release), packs TracedApp's images, starts the
//! cluster in the background (`testkit::node`) and prints the `export` lines that point
//! `kubectl` and `helm` at it. `down` stops it and restores the host. Linux, as root.

use anyhow::{Context, Result, bail};
use testkit::node::{self, images};
use testkit::tools;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the cluster in the background with the images loaded; prints `export` lines for
    /// KUBECONFIG and PATH (kubectl and helm of the right versions). `eval` them or paste them.
    Up,
    /// Stop the cluster and restore the host (bridge, routes, iptables, sysctls, mounts).
    Down,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Up => up(),
        Command::Down => down(),
    }
}

fn up() -> Result<()> {
    if node::running() {
        bail!("a cluster is already running: `cargo xtask cluster down` stops it");
    }
    crate::setup::setup()?;
    eprintln!("cluster: building traced-service and the operator (release) ...");
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "-p",
            "traced-service",
            "-p",
            "tracedapp-operator",
            "-p",
            "tracedapp-cli",
        ])
        .status()?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let target = std::env::current_dir()?.join("target/release");
    let binaries = images::Binaries {
        service: target.join("traced-service"),
        operator: target.join("tracedapp-operator"),
    };
    let dir = std::env::temp_dir().join(format!("tracedapp-images-{}", std::process::id()));
    eprintln!("cluster: packing images ...");
    let archives = images::build(&dir, &binaries).map_err(anyhow::Error::msg)?;
    eprintln!("cluster: starting (about 20 s) ...");
    let cluster = node::Cluster::start(&archives).map_err(anyhow::Error::msg)?;
    let _ = std::fs::remove_dir_all(&dir);
    let kubeconfig = cluster.kubeconfig.clone();
    cluster.detach();
    let bin = tools::kubectl();
    let kube_bin = bin.parent().context("kubectl's folder")?;
    let helm_bin = tools::helm();
    let helm_bin = helm_bin.parent().context("helm's folder")?;
    eprintln!(
        "cluster: up. Node {} at {}, pods on {}, Services on {}.\n\
         cluster: paste or `eval` these lines, then follow the README's walk-through \
         (skip `kind create cluster`, `docker build` and `kind load`):",
        node::NODE_NAME,
        node::NODE_IP,
        node::POD_CIDR,
        node::SERVICE_CIDR
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "export PATH={}:{}:\"$PATH\"",
        kube_bin.display(),
        helm_bin.display()
    );
    eprintln!(
        "cluster: NodePorts answer on {}: the app on :30300, Jaeger on :30686. \
         `cargo xtask cluster down` stops it.",
        node::NODE_IP
    );
    Ok(())
}

fn down() -> Result<()> {
    let problems = node::down().map_err(anyhow::Error::msg)?;
    if problems.is_empty() {
        eprintln!("cluster: stopped; the host is as it was");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("cluster: not restored: {p}");
        }
        bail!("{} host changes could not be undone", problems.len())
    }
}
