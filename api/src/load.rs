//! Reading a `TracedApp` from YAML (a file given to the CLI), with errors that name the field.

use crate::spec::TracedApp;
use crate::validate::{FieldError, ValidationErrors, validate};

/// Why a document is not a usable TracedApp.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not YAML at all.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// YAML, but not the shape of a TracedApp (wrong type, missing field, unknown field).
    #[error("{0}")]
    Shape(ValidationErrors),
    /// The shape is right but the values break a rule.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// Parses and validates one TracedApp document.
pub fn from_yaml(text: &str) -> Result<TracedApp, LoadError> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| LoadError::Yaml(first_line(&e.to_string())))?;
    let app = from_value(&value)?;
    validate(&app).map_err(LoadError::Invalid)?;
    Ok(app)
}

/// Converts a parsed document, reporting the first type error and every unknown field by path.
pub fn from_value(value: &serde_json::Value) -> Result<TracedApp, LoadError> {
    let shape = |path: String, message: String| {
        LoadError::Shape(ValidationErrors(vec![FieldError { path, message }]))
    };
    if value.get("kind").and_then(|k| k.as_str()) != Some("TracedApp") {
        return Err(shape("kind".into(), "must be TracedApp".into()));
    }
    if value.get("apiVersion").and_then(|k| k.as_str()) != Some("tracedapp.dev/v1alpha1") {
        return Err(shape(
            "apiVersion".into(),
            "must be tracedapp.dev/v1alpha1".into(),
        ));
    }
    let app: TracedApp = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let (path, message) = plain_words(&path, &e.into_inner().to_string());
        shape(path, message)
    })?;
    let mut unknown = Vec::new();
    let _: Result<TracedApp, _> = serde_ignored::deserialize(value, |path| {
        let path = path.to_string();
        // `apiVersion`/`kind` were checked above; `status` is the operator's; `metadata` holds
        // many fields we do not model.
        let ours = ["apiVersion", "kind"].contains(&path.as_str());
        if !ours && !path.starts_with("status") && !path.starts_with("metadata") {
            unknown.push(FieldError {
                path,
                message: "unknown field (check the spelling; `tracedapp crd` prints the schema)"
                    .into(),
            });
        }
    });
    if !unknown.is_empty() {
        return Err(LoadError::Shape(ValidationErrors(unknown)));
    }
    Ok(app)
}

/// serde speaks Rust (`expected i32`, ``missing field `image` ``); say it in the user's words.
fn plain_words(path: &str, message: &str) -> (String, String) {
    let path = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        let full = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return (full, "is required".to_owned());
    }
    let mut message = message.to_owned();
    for (rust, words) in [
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        message = message.replace(rust, words);
    }
    let path = if path.is_empty() {
        "(document)".to_owned()
    } else {
        path.to_owned()
    };
    (path, message)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
