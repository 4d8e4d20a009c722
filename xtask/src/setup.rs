//! `cargo xtask setup`: installs the real programs the tests and the demo run, pinned (versions
//! in `testkit::tools`) and cached under `~/.cache/tracedapp/tools/<name>-<version>/`.
//!
//! Everything comes from the Go module proxy, PyPI and Debian's packages; nothing is
//! downloaded from elsewhere. Independent installs run side by side (`jobs.rs`), each logging
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
            cached(
                tools,
                "kubernetes",
                t::KUBERNETES_VERSION,
                "9 min",
                build_kubernetes,
            )
            .map(drop)
        }),
        job("etcd, CoreDNS, helm, small tools", || {
            cached(tools, "etcd", t::ETCD_VERSION, "40 s", build_etcd)?;
            cached(tools, "coredns", t::COREDNS_VERSION, "2 min", |dir| {
                go_install(
                    dir,
                    &format!("github.com/coredns/coredns@v{}", t::COREDNS_VERSION),
                )
            })?;
            install_helm(tools)?;
            install_hashed(tools, &t::kind_config_check_dir_name(), "10 s", |dir| {
                build_main(
                    dir,
                    "kind-config-check",
                    &t::kind_config_check_source(),
                    &[&format!("sigs.k8s.io/kind@v{}", t::KIND_VERSION)],
                )
            })?;
            install_hashed(tools, &t::pause_dir_name(), "5 s", |dir| {
                build_main(dir, "pause", &t::pause_source(), &[])
            })
            .map(drop)
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
    let background = if !jaeger || is_cached(&tools, "jaeger", t::JAEGER_VERSION) {
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
    cached(tools, "jaeger", t::JAEGER_VERSION, JAEGER_USUALLY, |dir| {
        build_jaeger(dir, priority)
    })
}

/// Jaeger's cold build time on 2 cores when it has them to itself (3.1 min measured).
const JAEGER_USUALLY: &str = "3 min";

fn install_moto(tools: &Path) -> Result<()> {
    cached(tools, "moto", t::MOTO_VERSION, "1 min", |dir| {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
        // moto's X-Ray backend imports aws-xray-sdk; the legacy-SDK test sends with it too.
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("moto[server]=={}", t::MOTO_VERSION))
            .arg("aws-xray-sdk"))
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

/// The collector manifest replaces contrib's `internal/aws/*` v0.161.0 modules, which the Go
/// proxy here refuses, with older served ones. Say so when v0.161.0 is served after all.
fn report_aws_stand_ins() {
    let module = format!(
        "github.com/open-telemetry/opentelemetry-collector-contrib/internal/aws/awsutil@v{}",
        t::COLLECTOR_BUILDER_VERSION
    );
    let served = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .env("GOFLAGS", "-mod=mod")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if served {
        eprintln!(
            "setup: note: {module} is now served: the `replaces:` in tools/otelcol-builder.yaml \
             can be removed"
        );
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

/// A throw-away Go module in `<dir>/src` that requires what we build.
fn go_module(dir: &Path, name: &str) -> Result<PathBuf> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    run(Command::new("go")
        .args(["mod", "init", &format!("tracedapp.dev/tools/{name}")])
        .current_dir(&src))?;
    Ok(src)
}

fn go(src: &Path, args: &[&str]) -> Result<()> {
    go_at(Priority::Normal, src, args)
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

/// A committed `main.go` built as `<dir>/bin/<name>`, with `requires` in its module.
fn build_main(dir: &Path, name: &str, source: &Path, requires: &[&str]) -> Result<()> {
    let src = go_module(dir, name)?;
    std::fs::copy(source, src.join("main.go"))?;
    for r in requires {
        go(&src, &["mod", "edit", &format!("-require={r}")])?;
    }
    go(&src, &["mod", "tidy"])?;
    let out = dir.join("bin").join(name);
    go(
        &src,
        &["build", "-ldflags=-s -w", "-o", path_str(&out)?, "."],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// etcd's server as a program: a wrapper `main` calling `etcdmain.Main`.
fn build_etcd(dir: &Path) -> Result<()> {
    let src = go_module(dir, "etcd")?;
    go(
        &src,
        &[
            "mod",
            "edit",
            &format!("-require=go.etcd.io/etcd/server/v3@v{}", t::ETCD_VERSION),
        ],
    )?;
    std::fs::write(
        src.join("main.go"),
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n",
    )?;
    go(&src, &["mod", "tidy"])?;
    let out = dir.join("bin/etcd");
    go(
        &src,
        &["build", "-ldflags=-s -w", "-o", path_str(&out)?, "."],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// Jaeger v2 (all-in-one) from a wrapper module; Jaeger's go.mod replaces sarama, which a
/// dependent module must repeat.
fn build_jaeger(dir: &Path, priority: Priority) -> Result<()> {
    let go = |src: &Path, args: &[&str]| go_at(priority, src, args);
    let src = go_module(dir, "jaeger")?;
    go(
        &src,
        &[
            "mod",
            "edit",
            &format!(
                "-require=github.com/jaegertracing/jaeger@v{}",
                t::JAEGER_VERSION
            ),
            "-replace=github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0",
        ],
    )?;
    std::fs::write(
        src.join("tools.go"),
        "//go:build tools\n\npackage tools\n\nimport _ \"github.com/jaegertracing/jaeger/cmd/jaeger\"\n",
    )?;
    go(&src, &["mod", "tidy"])?;
    let out = dir.join("bin/jaeger");
    go(
        &src,
        &[
            "build",
            "-ldflags=-s -w",
            "-o",
            path_str(&out)?,
            "github.com/jaegertracing/jaeger/cmd/jaeger",
        ],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// Every Kubernetes program we run, in one `go build` (they share most packages), from
/// `k8s.io/kubernetes`, which cannot be `go install`ed: its go.mod replaces the staging
/// modules with `./staging/...`. A wrapper module requires it and replaces each staging module
/// (listed in that go.mod) with its published `v0.Y.Z`.
fn build_kubernetes(dir: &Path) -> Result<()> {
    let version = t::KUBERNETES_VERSION;
    let src = go_module(dir, "kubernetes")?;
    let module = format!("k8s.io/kubernetes@v{version}");
    go(
        &src,
        &["mod", "edit", "-go=1.25", &format!("-require={module}")],
    )?;
    let info = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .output()?;
    let info: serde_json::Value = serde_json::from_slice(&info.stdout)
        .with_context(|| format!("go mod download {module}"))?;
    let gomod = std::fs::read_to_string(info["GoMod"].as_str().context("no GoMod path")?)?;
    let staging_version = format!("v0.{}", version.split_once('.').context("version")?.1);
    let mut replaces = vec!["mod".to_owned(), "edit".to_owned()];
    for line in gomod.lines() {
        if let Some((from, to)) = line.trim().split_once("=>")
            && to.trim().starts_with("./staging/")
        {
            let from = from.trim();
            replaces.push(format!("-replace={from}={from}@{staging_version}"));
        }
    }
    eprintln!(
        "setup:   kubernetes: {} staging modules replaced by {staging_version}",
        replaces.len() - 2
    );
    go(
        &src,
        &replaces.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let imports: String = t::KUBERNETES_COMMANDS
        .iter()
        .map(|c| format!("import _ \"k8s.io/kubernetes/cmd/{c}\"\n"))
        .collect();
    std::fs::write(
        src.join("tools.go"),
        format!("//go:build tools\n\npackage tools\n\n{imports}"),
    )?;
    eprintln!("setup:   kubernetes: resolving modules");
    go(&src, &["mod", "tidy"])?;
    let minor = version.split('.').nth(1).context("version")?;
    let ldflags = format!(
        "-ldflags=-s -w -X k8s.io/component-base/version.gitVersion=v{version} \
         -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor={minor} \
         -X k8s.io/component-base/version.gitTreeState=clean"
    );
    eprintln!(
        "setup:   kubernetes: compiling {} (about 9 minutes on 2 cores)",
        t::KUBERNETES_COMMANDS.join(", ")
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let out = format!("{}/", path_str(&bin)?);
    let packages: Vec<String> = t::KUBERNETES_COMMANDS
        .iter()
        .map(|c| format!("k8s.io/kubernetes/cmd/{c}"))
        .collect();
    let mut args = vec!["build", &ldflags, "-o", &out];
    args.extend(packages.iter().map(String::as_str));
    go(&src, &args)?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// What the one-node cluster needs from Debian: `(program to look for, package)`.
pub const NODE_PACKAGES: [(&str, &str); 6] = [
    ("/usr/bin/containerd", "containerd"),
    ("/usr/bin/ctr", "containerd"),
    ("/usr/sbin/runc", "runc"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/sbin/iptables", "iptables"),
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
        eprintln!("setup: containerd, runc, CNI plugins, iptables and conntrack installed");
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
