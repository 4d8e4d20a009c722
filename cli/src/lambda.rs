//! `tracedapp render lambda`: the Lambda target of a TracedApp, printed or written as the two
//! files a function needs.

use std::path::Path;

use serde_json::json;
use tracedapp_api::TracedApp;
use tracedapp_api::lambda::{CONFIG_PATH, LambdaRender};

use crate::{CliError, Format};

/// File names `--out-dir` writes.
pub const COLLECTOR_FILE: &str = "collector.yaml";
pub const ENVIRONMENT_FILE: &str = "environment.json";

/// The Lambda render of `app` (the function is named after the TracedApp), or the fields the
/// layer cannot run, each with its path.
pub fn render(app: &TracedApp) -> Result<LambdaRender, CliError> {
    let name = app.metadata.name.as_deref().unwrap_or("function");
    tracedapp_api::lambda::render(&app.spec, name).map_err(|errors| {
        CliError::BadInput(format!(
            "the Lambda collector layer cannot run this TracedApp:\n{errors}"
        ))
    })
}

/// Both parts as one document: `collector` (what the layer runs) and `environment` (in the
/// AWS CLI's `--environment` shape).
pub fn document(rendered: &LambdaRender, format: Option<Format>) -> String {
    let collector: serde_json::Value =
        serde_saphyr::from_str(&rendered.collector.to_yaml()).expect("our YAML reads back");
    let doc = json!({
        "collectorConfigFile": CONFIG_PATH,
        "collector": collector,
        "environment": {"Variables": rendered.environment},
    });
    match format {
        Some(Format::Json) => crate::json(&doc),
        None | Some(Format::Yaml) => crate::yaml(&doc),
    }
}

/// Writes [`COLLECTOR_FILE`] and [`ENVIRONMENT_FILE`] into `dir` (created if missing); returns
/// what to tell the user.
pub fn write(rendered: &LambdaRender, dir: &Path) -> Result<String, CliError> {
    let io = |what: &Path, e: std::io::Error| {
        CliError::BadInput(format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let collector = dir.join(COLLECTOR_FILE);
    std::fs::write(&collector, rendered.collector.to_yaml()).map_err(|e| io(&collector, e))?;
    let environment = dir.join(ENVIRONMENT_FILE);
    let env = crate::json(&json!({"Variables": rendered.environment}));
    std::fs::write(&environment, env).map_err(|e| io(&environment, e))?;
    Ok(format!(
        "wrote {} (zip it beside bootstrap: the layer reads {CONFIG_PATH})\n\
         wrote {} (aws lambda update-function-configuration --environment file://{})\n",
        collector.display(),
        environment.display(),
        environment.display()
    ))
}
