//! Every real program the tests and the demo run: its pinned version, and where
//! `cargo xtask setup` puts it. This is the one list; xtask builds from it and the tests find
//! the programs through it, so bumping a version here moves both.
//!
//! A program is found at `$TRACEDAPP_<NAME>` if that is set (your own build), else under
//! `~/.cache/tracedapp/tools/<name>-<version>/` (`TRACEDAPP_CACHE` moves the cache).

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
/// helm, built for [`KUBERNETES_VERSION`].
pub const HELM_VERSION: &str = "3.22.0";
/// kind, whose v1alpha4 config types check `kind-config.yaml`.
pub const KIND_VERSION: &str = "0.33.0";
/// The OpenTelemetry Collector builder; the components are in `tools/otelcol-builder.yaml`.
pub const COLLECTOR_BUILDER_VERSION: &str = "0.161.0";
/// moto, the AWS API emulator (ECS, X-Ray, CloudWatch Logs).
pub const MOTO_VERSION: &str = "5.2.5";

/// The tools cache: `$TRACEDAPP_CACHE/tools` or `~/.cache/tracedapp/tools`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TRACEDAPP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tracedapp")))
        .expect("neither TRACEDAPP_CACHE nor HOME is set")
        .join("tools")
}

/// The path of a tool: the environment variable `var` if set, else `<cache>/<dir>/<rel>`.
/// Panics with the fix if it is missing.
pub fn find(var: &str, dir: &str, rel: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let path = cache_dir().join(dir).join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask setup` (the README's `cargo xtask test` does it)",
        path.display()
    );
    path
}

/// Cache folder of the Kubernetes programs.
pub fn kubernetes_dir_name() -> String {
    format!("kubernetes-{KUBERNETES_VERSION}")
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
    find(
        "TRACEDAPP_ETCD",
        &format!("etcd-{ETCD_VERSION}"),
        "bin/etcd",
    )
}

/// CoreDNS.
pub fn coredns() -> PathBuf {
    find(
        "TRACEDAPP_COREDNS",
        &format!("coredns-{COREDNS_VERSION}"),
        "bin/coredns",
    )
}

/// moto's server.
pub fn moto_server() -> PathBuf {
    find(
        "TRACEDAPP_MOTO_SERVER",
        &format!("moto-{MOTO_VERSION}"),
        "bin/moto_server",
    )
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

/// The source of `kind-config-check`, committed in the repository.
pub fn kind_config_check_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/kind-config-check/main.go")
}

/// Cache directory name of `kind-config-check` built from the current source.
pub fn kind_config_check_dir_name() -> String {
    dir_name_for("kind-config-check", &kind_config_check_source())
}

/// `kind-config-check`: kind's v1alpha4 types, strictly decoded (tools/kind-config-check).
pub fn kind_config_check() -> PathBuf {
    find(
        "TRACEDAPP_KIND_CONFIG_CHECK",
        &kind_config_check_dir_name(),
        "bin/kind-config-check",
    )
}

/// The source of the pod sandbox's `pause` program, committed in the repository.
pub fn pause_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/pause/main.go")
}

/// Cache directory name of `pause` built from the current source.
pub fn pause_dir_name() -> String {
    dir_name_for("pause", &pause_source())
}

/// `pause`: PID 1 of every pod sandbox on the one-node cluster.
pub fn pause() -> PathBuf {
    find("TRACEDAPP_PAUSE", &pause_dir_name(), "bin/pause")
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
    find(
        "TRACEDAPP_JAEGER",
        &format!("jaeger-{JAEGER_VERSION}"),
        "bin/jaeger",
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
