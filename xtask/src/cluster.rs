//! `cargo xtask cluster up|down`: the tests' one-node Kubernetes, for people.
//!
//! `up` builds the service and the operator (release), packs TracedApp's images, starts the
//! cluster in the background (`testkit::node`, in a network namespace of its own) and prints
//! the `export` lines that point `kubectl` and `helm` at it. As kind does, the host reaches it
//! on 127.0.0.1 only: the API server on :6443, the app's NodePort on :3000 and Jaeger's on
//! :16686 (`kind-config.yaml`'s mappings), forwarded by a small process of its own that the
//! teardown stops. `down` stops it and restores the host. Linux, as root; Ctrl-C during `up`
//! stops what was started.

use anyhow::{Context, Result, bail};
use testkit::node::{self, images};
use testkit::tools;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the cluster in the background with the images loaded; prints `export` lines for
    /// KUBECONFIG and PATH (kubectl and helm of the right versions). `eval` them or paste them.
    Up,
    /// Stop the cluster and restore the host (its network namespace, mounts, cgroups, sysctls).
    Down,
    /// (Internal) forward `port=ip:port` pairs from 127.0.0.1 into the node; started by `up`.
    #[command(name = "__forward", hide = true)]
    Forward { pairs: Vec<String> },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Up => up(),
        Command::Down => down(),
        Command::Forward { pairs } => forward(&pairs),
    }
}

/// The host ports `up` forwards into the node: the API server, then kind-config.yaml's
/// mappings (the app's NodePort and Jaeger's).
const API_HOST_PORT: u16 = 6443;

fn forward(pairs: &[String]) -> Result<()> {
    let pairs: Vec<(u16, std::net::SocketAddr)> = pairs
        .iter()
        .map(|p| {
            let (port, target) = p.split_once('=').context("port=ip:port")?;
            Ok((port.parse()?, target.parse()?))
        })
        .collect::<Result<_>>()?;
    node::netns::serve_forever(&pairs).map_err(anyhow::Error::msg)
}

fn up() -> Result<()> {
    if node::running() {
        bail!("a cluster is already running: `cargo xtask cluster down` stops it");
    }
    let mut host_ports = vec![(API_HOST_PORT, 0)];
    host_ports.extend(node::kind_port_mappings().map_err(anyhow::Error::msg)?);
    for (port, _) in &host_ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            bail!(
                "127.0.0.1:{port} is taken; the cluster forwards it (as kind maps it): free it first"
            );
        }
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
    eprintln!("cluster: starting (about 30 s) ...");
    node::stop_on_signals();
    let mut cluster = node::Cluster::start(&archives).map_err(anyhow::Error::msg)?;
    let _ = std::fs::remove_dir_all(&dir);
    // The forwards outlive this command: a process of their own, recorded with the cluster.
    let mut pairs = vec![format!("{API_HOST_PORT}=127.0.0.1:{}", node::API_PORT)];
    pairs.extend(
        host_ports[1..]
            .iter()
            .map(|(host, node_port)| format!("{host}={}:{node_port}", node::NODE_IP)),
    );
    let exe = std::env::current_exe()?;
    let forwarder = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&exe)
            .args(["cluster", node::FORWARDER_MARK])
            .args(&pairs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(
                cluster.dir().join("logs/forward.log"),
            )?)
            .process_group(0)
            .spawn()?
    };
    cluster
        .record_host_process("forward", forwarder.id(), exe)
        .map_err(anyhow::Error::msg)?;
    cluster
        .point_admin_at(API_HOST_PORT)
        .map_err(anyhow::Error::msg)?;
    let kubeconfig = cluster.kubeconfig.clone();
    cluster.detach();
    let bin = tools::kubectl();
    let kube_bin = bin.parent().context("kubectl's folder")?;
    let helm_bin = tools::helm();
    let helm_bin = helm_bin.parent().context("helm's folder")?;
    eprintln!(
        "cluster: up. Node {} (its own network namespace: {} on {}, pods on {}, Services on \
         {}).\ncluster: paste or `eval` these lines, then follow the README's walk-through \
         (skip `kind create cluster`, `docker build` and `kind load`):",
        node::NODE_NAME,
        node::NODE_IP,
        node::BRIDGE,
        node::POD_CIDR,
        node::SERVICE_CIDR
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "export PATH={}:{}:\"$PATH\"",
        kube_bin.display(),
        helm_bin.display()
    );
    let mapped: Vec<String> = host_ports[1..]
        .iter()
        .map(|(host, node_port)| format!("localhost:{host} → NodePort {node_port}"))
        .collect();
    eprintln!(
        "cluster: as with kind: {}; the API server on localhost:{API_HOST_PORT}. \
         `cargo xtask cluster down` stops it.",
        mapped.join(", ")
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
