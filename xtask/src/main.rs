//! Project automation: `cargo xtask <command>` (see `--help`).
//!
//! - `codegen [--check]`: writes `manifests/crd.yaml` from the Rust types and checks every
//!   example in `manifests/examples/`; with `--check`, fails if anything is stale instead.
//! - `setup`: installs the test tools (pinned, cached under `~/.cache/tracedapp/tools/`).
//! - `test`: `setup`, then the whole test suite: the README's test command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// moto (AWS API emulator) version installed for the tests.
const MOTO_VERSION: &str = "5.2.5";

#[derive(Debug, Parser)]
#[command(about = "TracedApp project automation")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Regenerate manifests/crd.yaml and check manifests/examples/*.yaml.
    Codegen {
        /// Change nothing; fail if a generated file is stale or an example is invalid.
        #[arg(long)]
        check: bool,
    },
    /// Install the tools the tests run (skips what is cached).
    Setup,
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
        Cmd::Test { cargo_args } => {
            let tools = setup()?;
            let status = Command::new(env!("CARGO"))
                .args(["test", "--workspace", "--locked"])
                .args(&cargo_args)
                .env("TRACEDAPP_MOTO_SERVER", tools.moto_server)
                .status()?;
            if !status.success() {
                bail!("tests failed");
            }
            Ok(())
        }
    }
}

fn codegen(check: bool) -> Result<()> {
    let crd_path = Path::new("manifests/crd.yaml");
    let crd = tracedapp_operator::crd_yaml();
    let current = std::fs::read_to_string(crd_path).unwrap_or_default();
    if current != crd {
        if check {
            bail!("{} is stale: run `cargo xtask codegen`", crd_path.display());
        }
        std::fs::create_dir_all("manifests")?;
        std::fs::write(crd_path, &crd)?;
        println!("wrote {}", crd_path.display());
    } else {
        println!("{} is up to date", crd_path.display());
    }
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
    let moto = tools.join(format!("moto-{MOTO_VERSION}"));
    let moto_server = moto.join("bin/moto_server");
    // Written last: a directory without it is an interrupted install, redone from scratch.
    let complete = moto.join(".complete");
    if complete.exists() {
        println!("setup: moto {MOTO_VERSION} cached at {}", moto.display());
    } else {
        let started = Instant::now();
        println!(
            "setup: installing moto[server] {MOTO_VERSION} into {} ...",
            moto.display()
        );
        let _ = std::fs::remove_dir_all(&moto);
        std::fs::create_dir_all(&tools)?;
        run(Command::new("python3").args(["-m", "venv"]).arg(&moto))?;
        // moto's X-Ray backend imports aws-xray-sdk.
        run(Command::new(moto.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("moto[server]=={MOTO_VERSION}"))
            .arg("aws-xray-sdk"))?;
        if !moto_server.exists() {
            bail!("moto installed but {} is missing", moto_server.display());
        }
        std::fs::write(&complete, MOTO_VERSION)?;
        println!("setup: moto ready in {:.0?}", started.elapsed());
    }
    Ok(Tools { moto_server })
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
