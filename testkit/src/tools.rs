//! Every real program the tests and the demo run: its pinned version, and where
//! `cargo xtask setup` puts it. This is the one list; xtask builds from it and the tests find
//! the programs through it, so bumping a version here moves both.
//!
//! A program is found at `$TRACEDAPP_<NAME>` if that is set (your own build), else under
//! `~/.cache/tracedapp/tools/<name>-<version>/` (`TRACEDAPP_CACHE` moves the cache).
//!
//! As root (the real-pod tests, `cargo xtask cluster up`), a program is run only if nobody
//! but root could have replaced it: it and every folder above it must belong to root and be
//! writable by no one else ([`check_trusted`]); otherwise the run stops and says which path.

use std::path::PathBuf;

/// Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
/// kubectl), built from the `k8s.io/kubernetes` module. Matches k8s-openapi's `v1_35` feature;
/// 1.35 is also the last release that supports containerd 1.x (Debian 12 ships 1.6).
pub const KUBERNETES_VERSION: &str = "1.35.4";
/// The Kubernetes programs built from that module, all into one folder.
pub const KUBERNETES_COMMANDS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];
/// etcd for that API server (Debian's 3.4 is too old).
pub const ETCD_VERSION: &str = "3.6.16";
/// CoreDNS with its kubernetes plugin: cluster DNS of the one-node cluster.
pub const COREDNS_VERSION: &str = "1.15.0";
/// Jaeger v2: module `github.com/jaegertracing/jaeger` v1.75.0 is the v2.12.0 release (the approved
/// release here; v1.76.0 is served but not approved).
pub const JAEGER_VERSION: &str = "1.75.0";
/// The Jaeger release that module version is (image tag in `manifests/jaeger.yaml`).
pub const JAEGER_RELEASE: &str = "2.12.0";
/// kube-router, run with its NetworkPolicy controller alone on the one-node cluster (its
/// routing and service proxy, where its reported flaws are, stay off). The only served
/// release: Calico's policy engine cannot be built from served modules (its API module is not
/// served), and kube-network-policies needs the nf_tables `queue` expression, which this
/// kernel lacks.
pub const KUBE_ROUTER_VERSION: &str = "2.1.0";
/// helm, built for [`KUBERNETES_VERSION`].
pub const HELM_VERSION: &str = "3.22.0";
/// kind, whose v1alpha4 config types check `kind-config.yaml`.
pub const KIND_VERSION: &str = "0.33.0";
/// The OpenTelemetry Collector builder; the components are in `tools/otelcol-builder.yaml`.
pub const COLLECTOR_BUILDER_VERSION: &str = "0.161.0";
/// moto, the AWS API emulator (ECS, X-Ray, CloudWatch Logs).
pub const MOTO_VERSION: &str = "5.2.5";
/// AWS Lambda Runtime Interface Emulator: the Go proxy serves it only at this pseudo-version
/// (the repository's commit of 2026-10-30; tag v1.23.0 is not served).
pub const LAMBDA_RIE_VERSION: &str = "0.0.0-20261030222936-bef5c4ba774d";

/// The tools cache: `$TRACEDAPP_CACHE/tools` or `~/.cache/tracedapp/tools`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TRACEDAPP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tracedapp")))
        .expect("neither TRACEDAPP_CACHE nor HOME is set")
        .join("tools")
}

/// The path of a tool: the environment variable `var` if set, else `<cache>/<dir>/<rel>`.
/// Panics with the fix if it is missing, or (as root) if someone else could have replaced it.
pub fn find(var: &str, dir: &str, rel: &str) -> PathBuf {
    let path = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => {
            let path = cache_dir().join(dir).join(rel);
            assert!(
                path.exists(),
                "{} is missing: run `cargo xtask setup` (the README's `cargo xtask test` does it)",
                path.display()
            );
            path
        }
    };
    if crate::node::is_root()
        && let Err(e) = check_trusted(&path)
    {
        panic!("refusing to run {} as root: {e}", path.display());
    }
    path
}

/// Whether a program is safe for root to run: the file and every folder above it belong to
/// root and are writable by no one else (a user who could write any of them could swap the
/// program for their own).
pub fn check_trusted(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for p in path.ancestors() {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.uid() != 0 {
            return Err(format!(
                "{} belongs to uid {}, not root",
                p.display(),
                meta.uid()
            ));
        }
        // Writable by group or others, unless it is a sticky folder like /tmp.
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !(meta.is_dir() && sticky) {
            return Err(format!(
                "{} is writable by others (mode {:o})",
                p.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// A program built from a Go module committed in the repository (`tools/...`): its `go.mod`
/// requires the pinned version and its `go.sum` holds the checksum of every module the build
/// reads, so `go build` verifies all of them (it refuses a module whose checksum is missing).
#[derive(Debug, Clone, Copy)]
pub struct GoTool {
    pub name: &'static str,
    /// The module's folder, relative to the repository root.
    pub dir: &'static str,
    /// The pinned version (what `go.mod` requires; a test checks they agree).
    pub version: &'static str,
}

impl GoTool {
    /// The module's folder in the repository.
    pub fn source(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(self.dir)
    }

    /// The cache folder: `<name>-<version>-<hash of the module's files>`, so any change to
    /// the module (a version, a replace, a checksum) is a new build.
    pub fn cache_name(&self) -> String {
        let files: Vec<PathBuf> = ["go.mod", "go.sum", "main.go", "tools.go"]
            .iter()
            .map(|f| self.source().join(f))
            .filter(|p| p.exists())
            .collect();
        format!("{}-{}", self.name, hash_of(&files, self.version))
    }
}

/// The Kubernetes programs ([`KUBERNETES_COMMANDS`]).
pub const KUBERNETES: GoTool = GoTool {
    name: "kubernetes",
    dir: "tools/go/kubernetes",
    version: KUBERNETES_VERSION,
};
/// etcd (a `main` calling `etcdmain.Main`).
pub const ETCD: GoTool = GoTool {
    name: "etcd",
    dir: "tools/go/etcd",
    version: ETCD_VERSION,
};
/// Jaeger v2 all-in-one.
pub const JAEGER: GoTool = GoTool {
    name: "jaeger",
    dir: "tools/go/jaeger",
    version: JAEGER_VERSION,
};
/// kube-router.
pub const KUBE_ROUTER: GoTool = GoTool {
    name: "kube-router",
    dir: "tools/go/kube-router",
    version: KUBE_ROUTER_VERSION,
};
/// `pause`: PID 1 of every pod sandbox.
pub const PAUSE: GoTool = GoTool {
    name: "pause",
    dir: "tools/pause",
    version: "1",
};
/// `kind-config-check`: kind's v1alpha4 types, strictly decoded.
pub const KIND_CONFIG_CHECK: GoTool = GoTool {
    name: "kind-config-check",
    dir: "tools/kind-config-check",
    version: KIND_VERSION,
};
/// `hostile-collector`: a collector image a tenant chose, built to hurt export health's reads
/// (fault injection for the real-pod tests, never shipped).
pub const HOSTILE_COLLECTOR: GoTool = GoTool {
    name: "hostile-collector",
    dir: "tools/hostile-collector",
    version: "1",
};
/// The AWS Lambda Runtime Interface Emulator (`aws-lambda-rie`): the Runtime API the function
/// polls, invoked over HTTP.
pub const LAMBDA_RIE: GoTool = GoTool {
    name: "lambda-rie",
    dir: "tools/go/lambda-rie",
    version: LAMBDA_RIE_VERSION,
};
/// Every tool built from a committed Go module.
pub const GO_TOOLS: [GoTool; 8] = [
    KUBERNETES,
    ETCD,
    JAEGER,
    KUBE_ROUTER,
    PAUSE,
    KIND_CONFIG_CHECK,
    HOSTILE_COLLECTOR,
    LAMBDA_RIE,
];

/// moto's requirements, every dependency pinned with its hashes (`pip install --require-hashes`).
pub fn moto_requirements() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/moto-requirements.txt")
}

/// moto's cache folder: keyed by its version and the requirements' hash.
pub fn moto_dir_name() -> String {
    format!("moto-{}", hash_of(&[moto_requirements()], MOTO_VERSION))
}

/// `<version>-<short hash of the files>`.
fn hash_of(files: &[PathBuf], version: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for f in files {
        digest.update(std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display())));
    }
    let hex: String = digest
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{version}-{hex}")
}

/// Cache folder of the Kubernetes programs.
pub fn kubernetes_dir_name() -> String {
    KUBERNETES.cache_name()
}

/// One of [`KUBERNETES_COMMANDS`], e.g. `kubelet` (`$TRACEDAPP_KUBELET` overrides).
pub fn kubernetes(command: &str) -> PathBuf {
    assert!(
        KUBERNETES_COMMANDS.contains(&command),
        "{command} is not built"
    );
    let var = format!("TRACEDAPP_{}", command.replace('-', "_").to_uppercase());
    find(&var, &kubernetes_dir_name(), &format!("bin/{command}"))
}

/// kube-apiserver.
pub fn kube_apiserver() -> PathBuf {
    kubernetes("kube-apiserver")
}

/// kube-controller-manager (the tests run its garbage collector and workload controllers).
pub fn kube_controller_manager() -> PathBuf {
    kubernetes("kube-controller-manager")
}

/// kubectl of the same Kubernetes version as the API server.
pub fn kubectl() -> PathBuf {
    kubernetes("kubectl")
}

/// etcd.
pub fn etcd() -> PathBuf {
    find("TRACEDAPP_ETCD", &ETCD.cache_name(), "bin/etcd")
}

/// CoreDNS.
pub fn coredns() -> PathBuf {
    find(
        "TRACEDAPP_COREDNS",
        &format!("coredns-{COREDNS_VERSION}"),
        "bin/coredns",
    )
}

/// `aws-lambda-rie`.
pub fn lambda_rie() -> PathBuf {
    find(
        "TRACEDAPP_LAMBDA_RIE",
        &LAMBDA_RIE.cache_name(),
        "bin/lambda-rie",
    )
}

/// moto's server.
pub fn moto_server() -> PathBuf {
    find("TRACEDAPP_MOTO_SERVER", &moto_dir_name(), "bin/moto_server")
}

/// The Python of moto's environment, which has `aws-xray-sdk` (a legacy X-Ray client).
pub fn moto_python() -> PathBuf {
    moto_server().with_file_name("python")
}

/// The collector builder manifest, committed in the repository.
pub fn otelcol_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/otelcol-builder.yaml")
}

/// Cache directory name of the collector built from the current manifest: a change to the
/// manifest is a new build.
pub fn otelcol_dir_name() -> String {
    dir_name_for("otelcol", &otelcol_manifest())
}

/// `<name>-<short hash of the file>`: a cache key that changes with the file.
fn dir_name_for(name: &str, file: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let content = std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let digest = Sha256::digest(&content);
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// `kind-config-check`: kind's v1alpha4 types, strictly decoded (tools/kind-config-check).
pub fn kind_config_check() -> PathBuf {
    find(
        "TRACEDAPP_KIND_CONFIG_CHECK",
        &KIND_CONFIG_CHECK.cache_name(),
        "bin/kind-config-check",
    )
}

/// `hostile-collector` (see [`HOSTILE_COLLECTOR`]).
pub fn hostile_collector() -> PathBuf {
    find(
        "TRACEDAPP_HOSTILE_COLLECTOR",
        &HOSTILE_COLLECTOR.cache_name(),
        "bin/hostile-collector",
    )
}

/// `pause`: PID 1 of every pod sandbox on the one-node cluster.
pub fn pause() -> PathBuf {
    find("TRACEDAPP_PAUSE", &PAUSE.cache_name(), "bin/pause")
}

/// The OpenTelemetry Collector built from `tools/otelcol-builder.yaml`.
pub fn otelcol() -> PathBuf {
    find(
        "TRACEDAPP_OTELCOL",
        &otelcol_dir_name(),
        "otelcol-tracedapp",
    )
}

/// Jaeger v2 all-in-one.
pub fn jaeger() -> PathBuf {
    find("TRACEDAPP_JAEGER", &JAEGER.cache_name(), "bin/jaeger")
}

/// kube-router (its NetworkPolicy controller).
pub fn kube_router() -> PathBuf {
    find(
        "TRACEDAPP_KUBE_ROUTER",
        &KUBE_ROUTER.cache_name(),
        "bin/kube-router",
    )
}

/// helm.
pub fn helm() -> PathBuf {
    find(
        "TRACEDAPP_HELM",
        &format!("helm-{HELM_VERSION}"),
        "bin/helm",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program someone else could have replaced is refused: one writable by others, or in a
    /// folder writable by others (as root, every path here belongs to root).
    #[test]
    fn programs_others_could_replace_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        if !crate::node::is_root() {
            return; // ownership is only checked for root
        }
        let dir = crate::TempDir::new("trust");
        let program = dir.path().join("tool");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        let set = |p: &std::path::Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set(dir.path(), 0o755);
        set(&program, 0o755);
        assert_eq!(check_trusted(&program), Ok(()));
        set(&program, 0o777);
        assert!(
            check_trusted(&program)
                .unwrap_err()
                .contains("writable by others")
        );
        set(&program, 0o755);
        set(dir.path(), 0o777);
        assert!(
            check_trusted(&program)
                .unwrap_err()
                .contains("writable by others")
        );
        set(dir.path(), 0o755);
    }

    /// The collector distribution's Dockerfile builds the manifest the tests build, with the
    /// builder they use, and runs the binary the manifest names.
    #[test]
    fn the_collector_dockerfile_builds_what_the_tests_run() {
        let dockerfile = otelcol_manifest().with_file_name("otelcol.Dockerfile");
        let text = std::fs::read_to_string(&dockerfile).unwrap();
        assert!(
            text.contains(&format!(
                "ARG BUILDER_VERSION={COLLECTOR_BUILDER_VERSION}\n"
            )),
            "{} builds with builder {COLLECTOR_BUILDER_VERSION}",
            dockerfile.display()
        );
        assert!(text.contains("COPY tools/otelcol-builder.yaml ."));
        let manifest = std::fs::read_to_string(otelcol_manifest()).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("name: "))
            .expect("dist.name in the manifest");
        assert!(
            text.contains(&format!("/build/out/{name} /{name}\n"))
                && text.contains(&format!("ENTRYPOINT [\"/{name}\"]")),
            "the image runs the manifest's {name}"
        );
    }

    /// Each committed Go module requires the version this file pins (one fact, one place:
    /// a bump here without the module, or the other way round, fails).
    #[test]
    fn go_modules_require_the_pinned_versions() {
        for (tool, module) in [
            (KUBERNETES, "k8s.io/kubernetes"),
            (ETCD, "go.etcd.io/etcd/server/v3"),
            (JAEGER, "github.com/jaegertracing/jaeger"),
            (KUBE_ROUTER, "github.com/cloudnativelabs/kube-router/v2"),
            (KIND_CONFIG_CHECK, "sigs.k8s.io/kind"),
            (
                LAMBDA_RIE,
                "github.com/aws/aws-lambda-runtime-interface-emulator",
            ),
        ] {
            let go_mod = std::fs::read_to_string(tool.source().join("go.mod")).unwrap();
            let wanted = format!("{module} v{}", tool.version);
            assert!(
                go_mod.contains(&wanted),
                "{}: go.mod lacks {wanted}",
                tool.dir
            );
            assert!(tool.source().join("go.sum").exists() || tool.name == "pause");
        }
        let moto = std::fs::read_to_string(moto_requirements()).unwrap();
        assert!(moto.contains(&format!("moto=={MOTO_VERSION} ")));
        assert!(
            moto.matches("--hash=sha256:").count() > 50,
            "every pin has its hashes"
        );
    }
}
