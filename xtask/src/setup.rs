//! `cargo xtask setup`: installs the real programs the tests and the demo run, pinned (versions
//! in `testkit::tools`) and cached under `~/.cache/tracedapp/tools/<name>-<version>/`.
//!
//! Everything comes from the Go module proxy, PyPI and Debian's packages; nothing is
//! downloaded from elsewhere. What is built is pinned in the repository: every Go program from
//! a module committed with its `go.sum` (`tools/go/*`, `tools/pause`, `tools/kind-config-check`),
//! so the build verifies each module's checksum; moto from `tools/moto-requirements.txt`, every
//! package with its hashes (`pip install --require-hashes`). Independent installs run side by side (`jobs.rs`), each logging
//! to `install.log` in its directory; progress names what is being built and how long it
//! usually takes. A finished install is marked `.complete`, so an interrupted one is redone
//! from scratch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use testkit::tools::{self as t};

use crate::jobs::{self, job, minutes, run};

/// Installs every tool the tests use (skipping what is cached) and says how long it took.
pub fn setup() -> Result<()> {
    let tools = t::cache_dir();
    std::fs::create_dir_all(&tools)?;
    let started = Instant::now();
    let tools = tools.as_path();
    // Chains of installs that need nothing from each other, each on a thread of its own.
    let chains = vec![
        job("moto", || install_moto(tools)),
        job("collector", || install_collector(tools)),
        job("jaeger", || {
            install_jaeger(tools, Priority::Normal).map(drop)
        }),
        job("kubernetes", || {
            go_tool(tools, &t::KUBERNETES, "9 min", Priority::Normal).map(drop)
        }),
        job("etcd, kube-router, CoreDNS, helm, small tools", || {
            go_tool(tools, &t::ETCD, "40 s", Priority::Normal)?;
            go_tool(tools, &t::KUBE_ROUTER, "2 min", Priority::Normal)?;
            cached(tools, "coredns", t::COREDNS_VERSION, "2 min", |dir| {
                go_install(
                    dir,
                    &format!("github.com/coredns/coredns@v{}", t::COREDNS_VERSION),
                )
            })?;
            install_helm(tools)?;
            go_tool(tools, &t::KIND_CONFIG_CHECK, "10 s", Priority::Normal)?;
            go_tool(tools, &t::PAUSE, "5 s", Priority::Normal)?;
            go_tool(tools, &t::HOSTILE_COLLECTOR, "10 s", Priority::Normal)?;
            go_tool(tools, &t::LAMBDA_RIE, "15 s", Priority::Normal).map(drop)
        }),
    ];
    jobs::run_all(chains)?;
    node_packages()?;
    eprintln!("setup: all tools ready ({:.0?})", started.elapsed());
    Ok(())
}

/// What `cargo xtask demo` runs: moto and the collector, installed before this returns, and
/// Jaeger, unless `jaeger` is false (the demo was given a Jaeger binary).
///
/// Jaeger is the longest build (about 6 minutes of CPU, against 2.5 for the collector) and the
/// demo needs it last: when it is not cached it builds in the background at low priority, so
/// that the collector and the service get the cores first, and the demo draws its first trace
/// from X-Ray meanwhile. The returned job is that build; [`jobs::join`] waits for it.
pub fn setup_demo(jaeger: bool) -> Result<Option<jobs::Background>> {
    let tools = t::cache_dir();
    std::fs::create_dir_all(&tools)?;
    let started = Instant::now();
    let background = if !jaeger
        || tools
            .join(t::JAEGER.cache_name())
            .join(".complete")
            .exists()
    {
        None
    } else {
        let tools = tools.clone();
        Some(jobs::spawn(job("jaeger", move || {
            install_jaeger(&tools, Priority::Low).map(drop)
        })))
    };
    let tools = tools.as_path();
    jobs::run_all(vec![
        job("moto", || install_moto(tools)),
        job("collector", || install_collector(tools)),
    ])?;
    eprintln!(
        "setup: moto and the collector ready ({}){}",
        minutes(started.elapsed()),
        if background.is_some() {
            "; Jaeger goes on building in the background"
        } else {
            ""
        }
    );
    Ok(background)
}

/// Whether a build shares the cores evenly, or takes what the others leave (`nice -n 19`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Normal,
    Low,
}

fn install_jaeger(tools: &Path, priority: Priority) -> Result<PathBuf> {
    go_tool(tools, &t::JAEGER, JAEGER_USUALLY, priority)
}

/// Jaeger's cold build time on 2 cores when it has them to itself (3.1 min measured).
const JAEGER_USUALLY: &str = "3 min";

fn install_moto(tools: &Path) -> Result<()> {
    install_hashed(tools, &t::moto_dir_name(), "1 min", |dir| {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
        // moto and aws-xray-sdk (moto's X-Ray backend imports it; the legacy-SDK test sends
        // with it), every package pinned with its hashes: pip refuses any other file.
        run(Command::new(dir.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "-r",
            ])
            .arg(t::moto_requirements()))
    })?;
    Ok(())
}

/// The collector builder, then the collector from `tools/otelcol-builder.yaml`.
fn install_collector(tools: &Path) -> Result<()> {
    let builder = cached(tools, "ocb", t::COLLECTOR_BUILDER_VERSION, "30 s", |dir| {
        go_install(
            dir,
            &format!(
                "go.opentelemetry.io/collector/cmd/builder@v{}",
                t::COLLECTOR_BUILDER_VERSION
            ),
        )
    })?;
    install_hashed(tools, &t::otelcol_dir_name(), "2 min", |dir| {
        run(Command::new(builder.join("bin/builder"))
            .arg(format!("--config={}", t::otelcol_manifest().display()))
            .arg(format!("--output-path={}", dir.display()))
            .env("CGO_ENABLED", "0"))
    })?;
    report_aws_stand_ins();
    Ok(())
}

/// The collector manifest stands in older served modules for two of this train's that the Go
/// proxy here does not serve: contrib's `internal/aws/*` (`replaces:`) and the
/// `sigv4authextension` (listed at v0.155.0). Say so when the train's own release is served.
fn report_aws_stand_ins() {
    let contrib = "github.com/open-telemetry/opentelemetry-collector-contrib";
    let v = t::COLLECTOR_BUILDER_VERSION;
    for (module, what) in [
        (
            format!("{contrib}/internal/aws/awsutil@v{v}"),
            "the `replaces:` in tools/otelcol-builder.yaml can be removed",
        ),
        (
            format!("{contrib}/extension/sigv4authextension@v{v}"),
            "tools/otelcol-builder.yaml can list it at the train's version",
        ),
    ] {
        let served = Command::new("go")
            .args(["mod", "download", "-json", &module])
            .env("GOFLAGS", "-mod=mod")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if served {
            eprintln!("setup: note: {module} is now served: {what}");
        }
    }
}

fn install_helm(tools: &Path) -> Result<PathBuf> {
    cached(tools, "helm", t::HELM_VERSION, "2 min", |dir| {
        let minor = t::KUBERNETES_VERSION.split('.').nth(1).context("version")?;
        run(Command::new("go")
            .args(["install", "-trimpath"])
            .arg(format!(
                "-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=v{} \
                 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
                 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
                t::HELM_VERSION
            ))
            .arg(format!("helm.sh/helm/v3/cmd/helm@v{}", t::HELM_VERSION))
            .env("GOBIN", dir.join("bin"))
            .env("CGO_ENABLED", "0"))
    })
}

/// helm, installed if missing (codegen renders the chart with it).
pub fn helm() -> Result<PathBuf> {
    let tools = t::cache_dir();
    std::fs::create_dir_all(&tools)?;
    Ok(install_helm(&tools)?.join("bin/helm"))
}

fn is_cached(tools: &Path, name: &str, version: &str) -> bool {
    tools.join(format!("{name}-{version}/.complete")).exists()
}

/// `<tools>/<name>-<version>`, installed by `install` unless a finished install is there.
/// `usually` is the cold time on 2 cores, shown while it runs.
fn cached(
    tools: &Path,
    name: &str,
    version: &str,
    usually: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = tools.join(format!("{name}-{version}"));
    let complete = dir.join(".complete");
    if is_cached(tools, name, version) {
        eprintln!("setup: {name} {version} cached");
        return Ok(dir);
    }
    let started = Instant::now();
    eprintln!(
        "setup: installing {name} {version} into {} (usually {usually} cold) ...",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    jobs::building(name, usually, &dir.join("install.log"), || install(&dir))
        .with_context(|| format!("installing {name} {version}"))?;
    std::fs::write(&complete, version)?;
    eprintln!(
        "setup: {name} {version} ready in {}",
        minutes(started.elapsed())
    );
    Ok(dir)
}

/// [`cached`] for a tool keyed by `<name>-<hash of its source>`.
fn install_hashed(
    tools: &Path,
    dir_name: &str,
    usually: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let (name, hash) = dir_name.rsplit_once('-').context("<name>-<hash>")?;
    cached(tools, name, hash, usually, install)
}

/// `go install <module@version>` into `<dir>/bin`, static.
fn go_install(dir: &Path, module: &str) -> Result<()> {
    run(Command::new("go")
        .args(["install", "-trimpath", "-ldflags=-s -w", module])
        .env("GOBIN", dir.join("bin"))
        .env("CGO_ENABLED", "0"))
}

/// `go <args>` in `src`, static, at `priority` (the compilers it starts inherit it).
fn go_at(priority: Priority, src: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = match priority {
        Priority::Normal => Command::new("go"),
        Priority::Low => {
            let mut nice = Command::new("nice");
            nice.args(["-n", "19", "go"]);
            nice
        }
    };
    run(cmd
        .args(args)
        .current_dir(src)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-trimpath"))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("tool paths must be UTF-8")
}

/// What each committed Go module builds: `(package, output under <dir>/bin)`.
fn go_tool_outputs(tool: &t::GoTool) -> Vec<(String, String)> {
    match tool.name {
        "kubernetes" => t::KUBERNETES_COMMANDS
            .iter()
            .map(|c| (format!("k8s.io/kubernetes/cmd/{c}"), (*c).to_owned()))
            .collect(),
        "jaeger" => vec![(
            "github.com/jaegertracing/jaeger/cmd/jaeger".to_owned(),
            "jaeger".to_owned(),
        )],
        "lambda-rie" => vec![(
            "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie".to_owned(),
            "lambda-rie".to_owned(),
        )],
        "kube-router" => vec![(
            "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router".to_owned(),
            "kube-router".to_owned(),
        )],
        // A `main` package of our own.
        name => vec![(".".to_owned(), name.to_owned())],
    }
}

/// Version flags a program reports itself with.
fn go_tool_ldflags(tool: &t::GoTool) -> Result<String> {
    let mut flags = "-s -w".to_owned();
    if tool.name == "kubernetes" {
        let version = tool.version;
        let minor = version.split('.').nth(1).context("version")?;
        flags.push_str(&format!(
            " -X k8s.io/component-base/version.gitVersion=v{version} \
             -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor={minor} \
             -X k8s.io/component-base/version.gitTreeState=clean"
        ));
    }
    Ok(flags)
}

/// A program from its committed Go module (see the module docs), cached by the module's hash.
/// `go build` runs with `-mod=readonly`: a module whose checksum is not in the committed
/// `go.sum` stops the build.
fn go_tool(tools: &Path, tool: &t::GoTool, usually: &str, priority: Priority) -> Result<PathBuf> {
    install_hashed(tools, &tool.cache_name(), usually, |dir| {
        let src = dir.join("src");
        std::fs::create_dir_all(&src)?;
        for f in ["go.mod", "go.sum", "main.go", "tools.go"] {
            let from = tool.source().join(f);
            if from.exists() {
                std::fs::copy(&from, src.join(f))?;
            }
        }
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin)?;
        let outputs = go_tool_outputs(tool);
        if tool.name == "kubernetes" {
            eprintln!(
                "setup:   kubernetes: compiling {} (about 9 minutes on 2 cores)",
                t::KUBERNETES_COMMANDS.join(", ")
            );
        }
        let ldflags = format!("-ldflags={}", go_tool_ldflags(tool)?);
        let out = if outputs.len() == 1 {
            bin.join(&outputs[0].1)
        } else {
            // Several packages: `-o <folder>/` names each binary after its package.
            PathBuf::from(format!("{}/", path_str(&bin)?))
        };
        let mut args = vec!["build", "-mod=readonly", &ldflags, "-o", path_str(&out)?];
        args.extend(outputs.iter().map(|(pkg, _)| pkg.as_str()));
        go_at(priority, &src, &args)?;
        std::fs::remove_dir_all(&src)?;
        Ok(())
    })
}

/// What the one-node cluster needs from Debian: `(program to look for, package)`.
pub const NODE_PACKAGES: [(&str, &str); 7] = [
    ("/usr/bin/containerd", "containerd"),
    ("/usr/bin/ctr", "containerd"),
    ("/usr/sbin/runc", "runc"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/sbin/iptables", "iptables"),
    ("/usr/sbin/ipset", "ipset"),
    ("/usr/sbin/conntrack", "conntrack"),
];

/// The packages of [`NODE_PACKAGES`] that are missing.
pub fn missing_node_packages() -> Vec<&'static str> {
    let mut missing: Vec<&str> = NODE_PACKAGES
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    missing
}

/// Installs the node's Debian packages when missing and running as root; otherwise one line
/// with the command that would.
fn node_packages() -> Result<()> {
    let missing = missing_node_packages();
    if missing.is_empty() {
        eprintln!("setup: containerd, runc, CNI plugins, iptables, ipset and conntrack installed");
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !testkit::node::is_root() {
        eprintln!(
            "setup: the one-node cluster needs Debian packages; as root run: {command} \
             (its tests need root too)"
        );
        return Ok(());
    }
    eprintln!(
        "setup: installing {} (Debian packages) ...",
        missing.join(", ")
    );
    let install = |update_first: bool| -> Result<bool> {
        if update_first {
            run(Command::new("apt-get").args(["update", "-q"]))?;
        }
        Ok(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success())
    };
    // A fresh machine may have no package lists yet.
    if !install(false)? && !install(true)? {
        bail!("`{command}` failed");
    }
    Ok(())
}
