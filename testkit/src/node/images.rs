//! TracedApp's images for the one-node cluster, named as the shipped files name them, so that
//! the chart, `manifests/jaeger.yaml` and `manifests/examples/` run unedited:
//! - the service and the operator: our binaries, with the entrypoint, arguments and user of
//!   their Dockerfiles (`service/Dockerfile`, `operator/Dockerfile`);
//! - the collector: the test collector built from `tools/otelcol-builder.yaml`, under the
//!   default contrib image name a TracedApp deploys, laid out like the upstream image;
//! - Jaeger: the one built from Go modules, under the name in `manifests/jaeger.yaml`, laid
//!   out like the upstream image (`JAEGER_LISTEN_HOST=0.0.0.0`, user 10001);
//! - the pod sandbox's `pause`;
//! - [`HOSTILE_COLLECTOR_IMAGE`]: a collector image a tenant chose, whose `/metrics` is built
//!   to hurt its reader (tests of export health; never shipped).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PAUSE_IMAGE;
use crate::image::Image;
use crate::{repo_root, tools};

type Result<T, E = String> = std::result::Result<T, E>;

/// Where Debian (and distroless) keep the CA certificates.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The hostile stand-in for a tenant's collector image (`tools/hostile-collector`).
pub const HOSTILE_COLLECTOR_IMAGE: &str = "localhost/tracedapp/hostile-collector:1";

/// Our two programs, as built by cargo (debug for tests, release for `cluster up`).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub service: PathBuf,
    pub operator: PathBuf,
}

/// The image names the shipped files use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `spec.app.image` of `manifests/examples/kind.yaml`.
    pub service: String,
    /// The chart's `image.repository` and its tag (default: the chart's `appVersion`).
    pub operator: String,
    /// The default collector image of a TracedApp.
    pub collector: String,
    /// The image of `manifests/jaeger.yaml`.
    pub jaeger: String,
}

impl Names {
    /// Reads them from the repository.
    pub fn shipped() -> Result<Self> {
        let root = repo_root();
        let example = documents(&root.join("manifests/examples/kind.yaml"))?;
        let service = example
            .iter()
            .find(|d| d["kind"] == "TracedApp")
            .and_then(|d| d["spec"]["app"]["image"].as_str())
            .ok_or("manifests/examples/kind.yaml has no TracedApp with spec.app.image")?
            .to_owned();
        let values = documents(&root.join("charts/tracedapp-operator/values.yaml"))?;
        let chart = documents(&root.join("charts/tracedapp-operator/Chart.yaml"))?;
        let repository = values[0]["image"]["repository"]
            .as_str()
            .ok_or("the chart's values have no image.repository")?;
        let tag = match values[0]["image"]["tag"].as_str() {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => chart[0]["appVersion"]
                .as_str()
                .ok_or("Chart.yaml has no appVersion")?
                .to_owned(),
        };
        let jaeger = documents(&root.join("manifests/jaeger.yaml"))?
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
            .ok_or("manifests/jaeger.yaml has no Deployment image")?
            .to_owned();
        Ok(Self {
            service,
            operator: format!("{repository}:{tag}"),
            collector: tracedapp_api::collector::CONTRIB_IMAGE.to_owned(),
            jaeger,
        })
    }
}

/// Writes every image archive into `out` and returns their paths.
pub fn build(out: &Path, binaries: &Binaries) -> Result<Vec<PathBuf>> {
    let names = Names::shipped()?;
    let root = repo_root();
    let images = [
        from_dockerfile(
            &names.service,
            &root.join("service/Dockerfile"),
            &binaries.service,
        )?,
        from_dockerfile(
            &names.operator,
            &root.join("operator/Dockerfile"),
            &binaries.operator,
        )?,
        // Like otel/opentelemetry-collector-contrib: /otelcol-contrib as user 10001.
        Image::new(&names.collector, &["/otelcol-contrib"])
            .cmd(&["--config", "/etc/otelcol-contrib/config.yaml"])
            .user("10001:10001")
            .program(&tools::otelcol(), "/otelcol-contrib"),
        // Like jaegertracing/jaeger (cmd/jaeger/Dockerfile): listens on every address.
        Image::new(&names.jaeger, &["/cmd/jaeger/jaeger-linux"])
            .user("10001:10001")
            .env("JAEGER_LISTEN_HOST=0.0.0.0")
            .program(&tools::jaeger(), "/cmd/jaeger/jaeger-linux"),
        Image::new(PAUSE_IMAGE, &["/pause"]).program(&tools::pause(), "/pause"),
        Image::new(HOSTILE_COLLECTOR_IMAGE, &["/hostile-collector"])
            .user("10001:10001")
            .program(&tools::hostile_collector(), "/hostile-collector"),
    ];
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    images
        .iter()
        .map(|image| {
            let file = out.join(format!("{}.tar", image.name.replace(['/', ':'], "_")));
            image
                .write(&file)
                .map_err(|e| format!("writing image {}: {e}", image.name))?;
            Ok(file)
        })
        .collect()
}

/// An image of `binary` as `dockerfile` runs it: its `ENTRYPOINT` (the binary's path in the
/// image), `CMD` and `USER`.
fn from_dockerfile(name: &str, dockerfile: &Path, binary: &Path) -> Result<Image> {
    let text = std::fs::read_to_string(dockerfile)
        .map_err(|e| format!("reading {}: {e}", dockerfile.display()))?;
    // Only the final stage counts.
    let last = text
        .rsplit_once("\nFROM ")
        .map_or(text.as_str(), |(_, l)| l);
    let instruction = |word: &str| {
        last.lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(word)?.strip_prefix(' '))
            .map(str::trim)
    };
    let array = |word: &str| -> Result<Vec<String>> {
        match instruction(word) {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format!("{}: {word} is not a JSON array: {e}", dockerfile.display())),
        }
    };
    let entrypoint = array("ENTRYPOINT")?;
    let program = entrypoint
        .first()
        .ok_or_else(|| format!("{} has no ENTRYPOINT", dockerfile.display()))?;
    let cmd = array("CMD")?;
    let mut image = Image::new(
        name,
        &entrypoint.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .cmd(&cmd.iter().map(String::as_str).collect::<Vec<_>>())
    .program(binary, program);
    // The distroless base of our Dockerfiles carries the CA bundle.
    let bundle = Path::new(CA_BUNDLE);
    if bundle.exists() {
        image = image.file(bundle, CA_BUNDLE, 0o644);
    }
    if let Some(user) = instruction("USER") {
        image = image.user(user);
    }
    Ok(image)
}

/// Every YAML document of a file, as JSON values.
fn documents(file: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names come from the shipped files, as a user would deploy them.
    #[test]
    fn names_are_the_shipped_ones() {
        let names = Names::shipped().unwrap();
        assert!(
            names.service.starts_with("tracedapp/traced-service:"),
            "{names:?}"
        );
        assert!(
            names.operator.starts_with("tracedapp/operator:"),
            "{names:?}"
        );
        assert!(
            names.jaeger.starts_with("jaegertracing/jaeger:"),
            "{names:?}"
        );
        assert!(names.collector.contains("opentelemetry-collector-contrib"));
    }
}
