//! Container images without a registry or a daemon: single-layer OCI image archives
//! (`oci-layout` tars, what `ctr images import` reads), built from our own binaries.
//!
//! A dynamically linked program (our Rust binaries link glibc) gets the shared libraries `ldd`
//! names, at the paths the binary asks for; Go programs are static. Every image has
//! `/etc/passwd` and `/etc/group` with the `nonroot` user 65532 and a writable `/tmp`, like the
//! distroless `nonroot` images our Dockerfiles use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// The user our images run as (distroless `nonroot`).
pub const NONROOT: u32 = 65532;

/// An image to write: its name, what it runs, and its files.
#[derive(Debug, Clone)]
pub struct Image {
    /// `repository:tag` as a pod spec names it, e.g. `tracedapp/traced-service:0.1.0`.
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `uid:gid`.
    pub user: String,
    pub env: Vec<String>,
    /// `(file on this machine, path in the image, mode)`.
    files: Vec<(PathBuf, String, u32)>,
}

impl Image {
    /// An image running `entrypoint` as [`NONROOT`].
    pub fn new(name: &str, entrypoint: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: Vec::new(),
            user: format!("{NONROOT}:{NONROOT}"),
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_owned()],
            files: Vec::new(),
        }
    }

    /// Default arguments after the entrypoint.
    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = cmd.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Runs as `user` (`uid:gid`).
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_owned();
        self
    }

    /// An environment variable (`NAME=value`).
    pub fn env(mut self, var: &str) -> Self {
        self.env.push(var.to_owned());
        self
    }

    /// `program` at `dest` (executable), with the shared libraries it links.
    pub fn program(mut self, program: &Path, dest: &str) -> Self {
        self.files
            .push((program.to_owned(), dest.to_owned(), 0o755));
        for lib in shared_libraries(program) {
            let dest = lib.to_string_lossy().into_owned();
            if !self.files.iter().any(|(_, d, _)| *d == dest) {
                self.files.push((lib, dest, 0o755));
            }
        }
        self
    }

    /// A plain file at `dest`.
    pub fn file(mut self, src: &Path, dest: &str, mode: u32) -> Self {
        self.files.push((src.to_owned(), dest.to_owned(), mode));
        self
    }

    /// The name containerd stores it under (`docker.io/` and `library/` filled in, as the
    /// kubelet asks for it).
    pub fn stored_name(&self) -> String {
        normalize(&self.name)
    }

    /// Writes the image as an OCI archive at `out`.
    pub fn write(&self, out: &Path) -> std::io::Result<()> {
        let layer = self.layer()?;
        let diff_id = digest(&layer);
        let mut config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Entrypoint": self.entrypoint,
                "Env": self.env,
                "User": self.user,
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "testkit::image"}],
        });
        if !self.cmd.is_empty() {
            config["config"]["Cmd"] = json!(self.cmd);
        }
        let config = serde_json::to_vec(&config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&config), "size": config.len()},
            // Uncompressed: the archive only crosses the local disk, and gzip of a debug build
            // would cost more than it saves.
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": diff_id, "size": layer.len()}],
        }))?;
        let stored = self.stored_name();
        let tag = stored.rsplit_once(':').map_or("latest", |(_, t)| t);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(&manifest),
                "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": stored,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        }))?;
        let mut archive = tar::Builder::new(std::fs::File::create(out)?);
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            archive.append_data(&mut h, name, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        for blob in [&layer, &config, &manifest] {
            let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
            add(&name, blob)?;
        }
        archive.into_inner()?.flush()
    }

    /// The one layer: the files, their parent directories, `/etc/passwd`, `/etc/group`, `/tmp`.
    fn layer(&self) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirs = std::collections::BTreeSet::new();
        let mut dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
            if dirs.insert(path.to_owned()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                h.set_mtime(0);
                h.set_size(0);
                h.set_cksum();
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
            } else {
                Ok(())
            }
        };
        let parents = |path: &str| -> Vec<String> {
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            (1..parts.len()).map(|i| parts[..i].join("/")).collect()
        };
        dir(&mut tar, "tmp", 0o1777)?;
        dir(&mut tar, "etc", 0o755)?;
        let mut entries: Vec<(Vec<u8>, String, u32)> = vec![
            (
                format!("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n").into_bytes(),
                "etc/passwd".to_owned(),
                0o644,
            ),
            (
                format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes(),
                "etc/group".to_owned(),
                0o644,
            ),
        ];
        for (src, dest, mode) in &self.files {
            let data = std::fs::read(src).map_err(|e| {
                std::io::Error::new(e.kind(), format!("reading {}: {e}", src.display()))
            })?;
            entries.push((data, dest.trim_start_matches('/').to_owned(), *mode));
        }
        for (data, path, mode) in entries {
            for p in parents(&path) {
                dir(&mut tar, &p, 0o755)?;
            }
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, &path, data.as_slice())?;
        }
        tar.into_inner()
    }
}

/// `sha256:<hex>`.
fn digest(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The shared libraries `program` loads (the dynamic loader included), by the paths it asks
/// for; none for a static program.
pub fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(program).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A reference as containerd stores it: `jaegertracing/jaeger:2.13.0` →
/// `docker.io/jaegertracing/jaeger:2.13.0`, `busybox:1` → `docker.io/library/busybox:1`.
pub fn normalize(name: &str) -> String {
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_domain {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_the_kubelet_asks() {
        assert_eq!(
            normalize("jaegertracing/jaeger:2.13.0"),
            "docker.io/jaegertracing/jaeger:2.13.0"
        );
        assert_eq!(normalize("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(normalize("localhost/x/pause:1"), "localhost/x/pause:1");
        assert_eq!(normalize("public.ecr.aws/a/b:v1"), "public.ecr.aws/a/b:v1");
    }
}
