//! Project automation: `cargo xtask <command>` (see `--help`).
//!
//! - `codegen [--check]`: writes `manifests/crd.yaml` from the Rust types and checks every
//!   example in `manifests/examples/`; with `--check`, fails if anything is stale instead.
//! - `setup`: installs the test tools (pinned, cached under `~/.cache/tracedapp/tools/`).
//! - `test`: `setup`, then the whole test suite: the README's test command.
//! - `demo`: the seed's whole system running locally (see `demo.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod demo;

/// The namespace `manifests/operator.yaml` installs into.
const OPERATOR_NAMESPACE: &str = "tracedapp-system";
/// moto (AWS API emulator) version installed for the tests.
const MOTO_VERSION: &str = "5.2.5";
/// Kubernetes version of the API server in tests; matches k8s-openapi's `v1_35` feature.
const KUBE_VERSION: &str = "1.35.4";
/// etcd for that API server (Debian's 3.4 is too old).
const ETCD_VERSION: &str = "3.6.16";
/// Jaeger v2 (module github.com/jaegertracing/jaeger: v1.76.0 is the v2.13.0 commit).
const JAEGER_VERSION: &str = "1.76.0";
/// helm, built for the API server's Kubernetes version.
const HELM_VERSION: &str = "3.22.0";
/// kind, whose v1alpha4 config types check kind-config.yaml.
const KIND_VERSION: &str = "0.33.0";
/// The OpenTelemetry Collector builder; the components are in tools/otelcol-builder.yaml.
const BUILDER_VERSION: &str = "0.161.0";

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
    /// Install the tools the tests run (skips what is cached).
    Setup,
    /// The seed's system on this machine: Jaeger, the collector running the config rendered from
    /// manifests/examples/shop.yaml, and two chained services; sends a little traffic, prints
    /// where to look, stays up until Ctrl-C.
    Demo(demo::Options),
    /// Set up the tools, then run every test (`cargo test --workspace --locked`).
    Test {
        /// Extra arguments for `cargo test`, after `--`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root)?;
    match args.command {
        Cmd::Codegen { check } => codegen(check),
        Cmd::Setup => setup().map(|_| ()),
        Cmd::Demo(options) => {
            setup()?;
            demo::run(&options)
        }
        Cmd::Test { cargo_args } => {
            let tools = setup()?;
            let status = Command::new(env!("CARGO"))
                .args(["test", "--workspace", "--locked"])
                .args(&cargo_args)
                .env("TRACEDAPP_MOTO_SERVER", tools.moto_server)
                .env("TRACEDAPP_KUBE_APISERVER", tools.kube_apiserver)
                .env(
                    "TRACEDAPP_KUBE_CONTROLLER_MANAGER",
                    tools.kube_controller_manager,
                )
                .env("TRACEDAPP_ETCD", tools.etcd)
                .env("TRACEDAPP_OTELCOL", tools.otelcol)
                .env("TRACEDAPP_JAEGER", tools.jaeger)
                .env("TRACEDAPP_HELM", tools.helm)
                .env("TRACEDAPP_KIND_CONFIG_CHECK", tools.kind_config_check)
                .status()?;
            if !status.success() {
                bail!("tests failed");
            }
            Ok(())
        }
    }
}

/// Writes `content` to `path`, or with `check` fails if the file differs.
fn generated(path: &str, content: &str, check: bool) -> Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current == content {
        println!("{path} is up to date");
    } else if check {
        bail!("{path} is stale: run `cargo xtask codegen`");
    } else {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, content)?;
        println!("wrote {path}");
    }
    Ok(())
}

fn codegen(check: bool) -> Result<()> {
    let crd = tracedapp_operator::crd_yaml();
    generated("manifests/crd.yaml", &crd, check)?;
    generated("charts/tracedapp-operator/files/crd.yaml", &crd, check)?;
    // The chart rendered with its defaults: `kubectl apply` instead of `helm install`.
    let helm = install_helm(&cache_dir()?)?.join("bin/helm");
    let out = Command::new(&helm)
        .args([
            "template",
            "tracedapp-operator",
            "charts/tracedapp-operator",
            "--namespace",
            OPERATOR_NAMESPACE,
        ])
        .output()
        .context("running helm template")?;
    if !out.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rendered = format!(
        "# Generated by `cargo xtask codegen`: `helm template tracedapp-operator \\\n\
         #   charts/tracedapp-operator --namespace {OPERATOR_NAMESPACE}`. Do not edit.\n\
         # Install: kubectl create namespace {OPERATOR_NAMESPACE}\n\
         #          kubectl apply --server-side -f manifests/operator.yaml\n{}",
        String::from_utf8(out.stdout)?
    );
    generated("manifests/operator.yaml", &rendered, check)?;
    let mut examples: Vec<PathBuf> = std::fs::read_dir("manifests/examples")
        .context("reading manifests/examples")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    examples.sort();
    let mut bad = Vec::new();
    for path in examples
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        match tracedapp_operator::cli::read_app(path) {
            Ok(_) => println!("{} is a valid TracedApp", path.display()),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if !bad.is_empty() {
        bail!("invalid examples:\n{}", bad.join("\n"));
    }
    Ok(())
}

/// Where the installed tools are.
struct Tools {
    moto_server: PathBuf,
    kube_apiserver: PathBuf,
    kube_controller_manager: PathBuf,
    etcd: PathBuf,
    otelcol: PathBuf,
    jaeger: PathBuf,
    helm: PathBuf,
    kind_config_check: PathBuf,
}

fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("TRACEDAPP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tracedapp")))
        .context("neither TRACEDAPP_CACHE nor HOME is set")?;
    Ok(base.join("tools"))
}

fn setup() -> Result<Tools> {
    let tools = cache_dir()?;
    std::fs::create_dir_all(&tools)?;
    let started = Instant::now();
    let moto = cached(&tools, "moto", MOTO_VERSION, |dir| {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
        // moto's X-Ray backend imports aws-xray-sdk.
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("moto[server]=={MOTO_VERSION}"))
            .arg("aws-xray-sdk"))
    })?;
    let etcd = cached(&tools, "etcd", ETCD_VERSION, build_etcd)?;
    let kube = cached(&tools, "kube", KUBE_VERSION, |dir| {
        build_kube(dir, "kube-apiserver")
    })?;
    // Its garbage collector deletes a TracedApp's children when the TracedApp goes.
    let kcm = cached(&tools, "kube-controller-manager", KUBE_VERSION, |dir| {
        build_kube(dir, "kube-controller-manager")
    })?;
    let builder = cached(&tools, "ocb", BUILDER_VERSION, |dir| {
        run(Command::new("go")
            .args([
                "install",
                &format!("go.opentelemetry.io/collector/cmd/builder@v{BUILDER_VERSION}"),
            ])
            .env("GOBIN", dir.join("bin")))
    })?;
    let otelcol_name = testkit::tools::otelcol_dir_name();
    let (name, hash) = otelcol_name.split_once('-').context("otelcol dir name")?;
    let otelcol = cached(&tools, name, hash, |dir| {
        println!("setup:   otelcol: building tools/otelcol-builder.yaml (about 2 minutes)");
        run(Command::new(builder.join("bin/builder"))
            .arg(format!(
                "--config={}",
                testkit::tools::otelcol_manifest().display()
            ))
            .arg(format!("--output-path={}", dir.display()))
            .env("CGO_ENABLED", "0"))
    })?;
    let jaeger = cached(&tools, "jaeger", JAEGER_VERSION, build_jaeger)?;
    let helm = install_helm(&tools)?;
    let kind_check_name = testkit::tools::kind_config_check_dir_name();
    let (name, hash) = kind_check_name
        .rsplit_once('-')
        .context("kind-config-check dir name")?;
    let kind_check = cached(&tools, name, hash, |dir| {
        let src = go_module(dir, "kind-config-check")?;
        std::fs::copy(
            testkit::tools::kind_config_check_source(),
            src.join("main.go"),
        )?;
        go(
            &src,
            &[
                "mod",
                "edit",
                &format!("-require=sigs.k8s.io/kind@v{KIND_VERSION}"),
            ],
        )?;
        go(&src, &["mod", "tidy"])?;
        let out = dir.join("bin/kind-config-check");
        go(
            &src,
            &["build", "-o", out.to_str().context("UTF-8 path")?, "."],
        )?;
        std::fs::remove_dir_all(&src)?;
        Ok(())
    })?;
    println!("setup: all tools ready ({:.0?})", started.elapsed());
    Ok(Tools {
        moto_server: moto.join("bin/moto_server"),
        kube_apiserver: kube.join("bin/kube-apiserver"),
        kube_controller_manager: kcm.join("bin/kube-controller-manager"),
        etcd: etcd.join("bin/etcd"),
        otelcol: otelcol.join("otelcol-tracedapp"),
        jaeger: jaeger.join("bin/jaeger"),
        helm: helm.join("bin/helm"),
        kind_config_check: kind_check.join("bin/kind-config-check"),
    })
}

/// helm, built for [`KUBE_VERSION`] (codegen renders the chart with it).
fn install_helm(tools: &Path) -> Result<PathBuf> {
    cached(tools, "helm", HELM_VERSION, |dir| {
        let minor = KUBE_VERSION.split('.').nth(1).context("version")?;
        println!("setup:   helm: compiling (about 1 minute)");
        run(Command::new("go")
            .args(["install", "-trimpath"])
            .arg(format!(
                "-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION} \
                 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
                 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}"
            ))
            .arg(format!("helm.sh/helm/v3/cmd/helm@v{HELM_VERSION}"))
            .env("GOBIN", dir.join("bin"))
            .env("CGO_ENABLED", "0"))
    })
}

/// `<tools>/<name>-<version>`, installed by `install` unless a finished install is there.
/// A `.complete` file is written last, so an interrupted install is redone from scratch.
fn cached(
    tools: &Path,
    name: &str,
    version: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = tools.join(format!("{name}-{version}"));
    let complete = dir.join(".complete");
    if complete.exists() {
        println!("setup: {name} {version} cached at {}", dir.display());
        return Ok(dir);
    }
    let started = Instant::now();
    println!(
        "setup: installing {name} {version} into {} ...",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    install(&dir).with_context(|| format!("installing {name} {version}"))?;
    std::fs::write(&complete, version)?;
    println!("setup: {name} {version} ready in {:.0?}", started.elapsed());
    Ok(dir)
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
    run(Command::new("go")
        .args(args)
        .current_dir(src)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-trimpath"))
}

/// etcd's server as a program: a wrapper `main` calling `etcdmain.Main`.
fn build_etcd(dir: &Path) -> Result<()> {
    let src = go_module(dir, "etcd")?;
    go(
        &src,
        &[
            "mod",
            "edit",
            &format!("-require=go.etcd.io/etcd/server/v3@v{ETCD_VERSION}"),
        ],
    )?;
    std::fs::write(
        src.join("main.go"),
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n",
    )?;
    println!("setup:   etcd: resolving modules");
    go(&src, &["mod", "tidy"])?;
    println!("setup:   etcd: compiling");
    let out = dir.join("bin/etcd");
    go(
        &src,
        &["build", "-ldflags=-s -w", "-o", out.to_str().unwrap(), "."],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// Jaeger v2 (all-in-one) from a wrapper module; Jaeger's go.mod replaces sarama, which a
/// dependent module must repeat.
fn build_jaeger(dir: &Path) -> Result<()> {
    let src = go_module(dir, "jaeger")?;
    go(
        &src,
        &[
            "mod",
            "edit",
            &format!("-require=github.com/jaegertracing/jaeger@v{JAEGER_VERSION}"),
            "-replace=github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0",
        ],
    )?;
    std::fs::write(
        src.join("tools.go"),
        "//go:build tools\n\npackage tools\n\nimport _ \"github.com/jaegertracing/jaeger/cmd/jaeger\"\n",
    )?;
    println!("setup:   jaeger: resolving modules");
    go(&src, &["mod", "tidy"])?;
    println!("setup:   jaeger: compiling (about 4 minutes on 2 cores)");
    let out = dir.join("bin/jaeger");
    go(
        &src,
        &[
            "build",
            "-ldflags=-s -w",
            "-o",
            out.to_str().unwrap(),
            "github.com/jaegertracing/jaeger/cmd/jaeger",
        ],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

/// kube-apiserver from `k8s.io/kubernetes`, which cannot be `go install`ed: its go.mod replaces
/// the staging modules with `./staging/...`. A wrapper module requires it and replaces each
/// staging module (listed in that go.mod) with its published `v0.Y.Z`.
fn build_kube(dir: &Path, command: &str) -> Result<()> {
    let src = go_module(dir, command)?;
    let module = format!("k8s.io/kubernetes@v{KUBE_VERSION}");
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
    let staging_version = format!("v0.{}", KUBE_VERSION.split_once('.').context("version")?.1);
    let mut replaced = 0;
    for line in gomod.lines() {
        if let Some((from, to)) = line.trim().split_once("=>")
            && to.trim().starts_with("./staging/")
        {
            let from = from.trim();
            go(
                &src,
                &[
                    "mod",
                    "edit",
                    &format!("-replace={from}={from}@{staging_version}"),
                ],
            )?;
            replaced += 1;
        }
    }
    println!("setup:   kube: {replaced} staging modules replaced by {staging_version}");
    std::fs::write(
        src.join("tools.go"),
        format!(
            "//go:build tools\n\npackage tools\n\nimport _ \"k8s.io/kubernetes/cmd/{command}\"\n"
        ),
    )?;
    println!("setup:   kube: resolving modules");
    go(&src, &["mod", "tidy"])?;
    let minor = KUBE_VERSION.split('.').nth(1).context("version")?;
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion=v{KUBE_VERSION} \
         -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor={minor} \
         -X k8s.io/component-base/version.gitTreeState=clean"
    );
    println!("setup:   kube: compiling {command} (about 4 minutes on 2 cores)");
    let out = dir.join("bin").join(command);
    go(
        &src,
        &[
            "build",
            &format!("-ldflags={ldflags}"),
            "-o",
            out.to_str().unwrap(),
            &format!("k8s.io/kubernetes/cmd/{command}"),
        ],
    )?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
