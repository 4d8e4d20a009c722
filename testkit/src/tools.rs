//! Where `cargo xtask setup` installed each program: `TRACEDAPP_<NAME>` if set, else the cache.

use std::path::PathBuf;

/// The path of a tool: the environment variable `var` if set, else
/// `~/.cache/tracedapp/tools/<dir>/<rel>`. Panics with the fix if it is missing.
pub fn find(var: &str, dir: &str, rel: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let base = std::env::var_os("TRACEDAPP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tracedapp")))
        .expect("HOME is not set");
    let path = base.join("tools").join(dir).join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask setup` (the README's `cargo xtask test` does it)",
        path.display()
    );
    path
}

/// kube-apiserver.
pub fn kube_apiserver() -> PathBuf {
    find(
        "TRACEDAPP_KUBE_APISERVER",
        "kube-1.35.4",
        "bin/kube-apiserver",
    )
}

/// kube-controller-manager (the tests run its garbage collector).
pub fn kube_controller_manager() -> PathBuf {
    find(
        "TRACEDAPP_KUBE_CONTROLLER_MANAGER",
        "kube-controller-manager-1.35.4",
        "bin/kube-controller-manager",
    )
}

/// etcd.
pub fn etcd() -> PathBuf {
    find("TRACEDAPP_ETCD", "etcd-3.6.16", "bin/etcd")
}

/// moto's server.
pub fn moto_server() -> PathBuf {
    find("TRACEDAPP_MOTO_SERVER", "moto-5.2.5", "bin/moto_server")
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
    find("TRACEDAPP_JAEGER", "jaeger-1.76.0", "bin/jaeger")
}

/// helm.
pub fn helm() -> PathBuf {
    find("TRACEDAPP_HELM", "helm-3.22.0", "bin/helm")
}
