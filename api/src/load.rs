//! Reading a `TracedApp` from YAML (a file given to the CLI), with errors that name the field.
//!
//! Expected flow: YAML text → documents ([`documents`]: parsed as `kubectl` parses them,
//! [`crate::yaml`], so `010`, `yes` and `1_000` mean what they mean to the API server) → the
//! TracedApp among them → JSON as Kubernetes would see it (numbers that are whole become
//! integers, as the API server's JSON decoding makes them; NaN and infinity, which JSON cannot
//! carry, are an error at their path; a plain date, which kubectl would rewrite, must be quoted)
//! → every rule of the CRD ([`crate::rules`], which drops nulls the API server drops) → the
//! typed resource.

use serde_json::Value;

use crate::spec::TracedApp;
use crate::validate::{FieldError, ValidationErrors};
use crate::yaml::Raw;

/// The API version a TracedApp file must name.
pub const API_VERSION: &str = "tracedapp.dev/v1alpha1";
/// The kind.
pub const KIND: &str = "TracedApp";

/// Why a document is not a usable TracedApp.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not YAML at all.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// YAML, but not the shape of a TracedApp, or its values break a rule.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

fn invalid(path: &str, message: impl Into<String>) -> LoadError {
    LoadError::Invalid(ValidationErrors(vec![FieldError {
        path: path.to_owned(),
        message: message.into(),
    }]))
}

/// As JSON, the way the API server receives it; a value JSON cannot hold is an error at its
/// path.
fn to_json(raw: &Raw, path: &str) -> Result<Value, FieldError> {
    {
        let at = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        Ok(match raw {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Int(i) => match i64::try_from(*i) {
                Ok(i) => Value::from(i),
                Err(_) => {
                    return Err(FieldError {
                        path: path.to_owned(),
                        message: format!("{i} is too large a number"),
                    });
                }
            },
            Raw::Float(f) if !f.is_finite() => {
                return Err(FieldError {
                    path: path.to_owned(),
                    message: format!(
                        "{} is not a number this field can hold (NaN and infinity are not allowed)",
                        if f.is_nan() {
                            ".nan"
                        } else if *f > 0.0 {
                            ".inf"
                        } else {
                            "-.inf"
                        }
                    ),
                });
            }
            // Kubernetes' JSON decoding turns a whole float into an integer: `3000.0` is 3000.
            Raw::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(*f as i64),
            Raw::Float(f) => Value::from(*f),
            Raw::Text(s) => Value::String(s.clone()),
            Raw::Timestamp(s) => {
                return Err(FieldError {
                    path: path.to_owned(),
                    message: format!(
                        "kubectl reads {s} as a date and sends it rewritten (as a time of \
                         day in UTC); quote it: \"{s}\""
                    ),
                });
            }
            Raw::List(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| to_json(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Raw::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match k {
                        Raw::Text(s) | Raw::Timestamp(s) => s.clone(),
                        // As kubectl's YAML-to-JSON conversion writes scalar keys.
                        Raw::Bool(b) => b.to_string(),
                        Raw::Int(i) => i.to_string(),
                        Raw::Float(f) => f.to_string(),
                        Raw::Null => "null".to_owned(),
                        Raw::List(_) | Raw::Map(_) => {
                            return Err(FieldError {
                                path: path.to_owned(),
                                message: "a key must be text, not a list or a mapping".to_owned(),
                            });
                        }
                    };
                    let value = to_json(v, &at(&key))?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(FieldError {
                            path: at(&key),
                            message: "is given twice".to_owned(),
                        });
                    }
                }
                Value::Object(map)
            }
        })
    }
}

/// Every document of a YAML stream, as JSON values, read as kubectl reads them.
pub fn documents(text: &str) -> Result<Vec<Value>, LoadError> {
    // Non-finite floats reach `Raw`, which reports them by field path (the parser alone knows
    // only the line); a key given twice is an error.
    let raws = crate::yaml::documents(text).map_err(|e| LoadError::Yaml(e.to_string()))?;
    raws.iter()
        .filter(|r| !matches!(r, Raw::Null))
        .map(|r| to_json(r, "").map_err(|e| LoadError::Invalid(ValidationErrors(vec![e]))))
        .collect()
}

/// The one TracedApp of a YAML stream (files may carry other objects too, e.g. a Service next
/// to the TracedApp), checked and typed.
pub fn from_yaml(text: &str) -> Result<TracedApp, LoadError> {
    the_app(&documents(text)?)
}

/// The one TracedApp among `docs` (see [`from_yaml`]).
fn the_app(docs: &[Value]) -> Result<TracedApp, LoadError> {
    let apps: Vec<&Value> = docs.iter().filter(|d| d["kind"] == KIND).collect();
    match apps.as_slice() {
        [one] => from_value(one),
        [] => match docs {
            // One document that is not a TracedApp: say what is wrong with it.
            [one] => from_value(one),
            [] => Err(invalid("(document)", "the file is empty")),
            _ => Err(invalid(
                "(document)",
                format!("none of the {} documents is a {KIND}", docs.len()),
            )),
        },
        many => Err(invalid(
            "(document)",
            format!(
                "holds {} TracedApps; give them one file at a time",
                many.len()
            ),
        )),
    }
}

/// Checks a parsed document against every rule of the CRD and types it.
pub fn from_value(value: &Value) -> Result<TracedApp, LoadError> {
    if !value.is_object() {
        return Err(invalid(
            "(document)",
            "must be a mapping with apiVersion, kind, metadata and spec",
        ));
    }
    if value["kind"] != KIND {
        return Err(invalid("kind", format!("must be {KIND}")));
    }
    if value["apiVersion"] != API_VERSION {
        return Err(invalid("apiVersion", format!("must be {API_VERSION}")));
    }
    crate::rules::check(value).map_err(LoadError::Invalid)?;
    let defaulted = crate::rules::defaulted(value);
    serde_path_to_error::deserialize(&defaulted).map_err(|e| {
        // The rules passed, so this is a gap between the schema and the types: still say where.
        invalid(&e.path().to_string(), e.into_inner().to_string())
    })
}

/// The largest TracedApp file read (a TracedApp is a few KiB; this stops `/dev/zero` or a
/// wrong file from filling memory).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// How messages name a file given as `path`: `<stdin>` for `-`.
pub fn source_name(path: &std::path::Path) -> String {
    if path == std::path::Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads and checks the TracedApp in `path` (`-`: standard input). The error names the file
/// and every bad field, one per line, ready to print.
pub fn read(path: &std::path::Path) -> Result<TracedApp, String> {
    let text = read_text(path)?;
    from_yaml(&text).map_err(|e| describe(&source_name(path), e))
}

/// Every TracedApp in `path`, as kubectl's `-f` reads: a file (`-`: standard input) with one
/// or more documents (other kinds beside them are left alone), or a directory, whose
/// `*.yaml`, `*.yml` and `*.json` files are read in name order (a file there without a
/// TracedApp is skipped, as kubectl would apply it as something else).
pub fn read_all(path: &std::path::Path) -> Result<Vec<TracedApp>, String> {
    if path.is_dir() {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        let mut apps = Vec::new();
        for file in files {
            let name = file.display().to_string();
            let docs = documents(&read_text(&file)?).map_err(|e| describe(&name, e))?;
            if docs.iter().any(|d| d["kind"] == KIND) {
                apps.extend(apps_from_documents(&docs).map_err(|e| describe(&name, e))?);
            }
        }
        if apps.is_empty() {
            return Err(format!(
                "{}: no {KIND} in any *.yaml, *.yml or *.json file",
                path.display()
            ));
        }
        return Ok(apps);
    }
    let text = read_text(path)?;
    apps_from_yaml(&text).map_err(|e| describe(&source_name(path), e))
}

/// Every TracedApp of a YAML stream, each checked; an error names the document
/// (`(document 2)`) when the stream holds several.
pub fn apps_from_yaml(text: &str) -> Result<Vec<TracedApp>, LoadError> {
    apps_from_documents(&documents(text)?)
}

/// [`apps_from_yaml`] of documents already read.
fn apps_from_documents(docs: &[Value]) -> Result<Vec<TracedApp>, LoadError> {
    let apps: Vec<(usize, &Value)> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| d["kind"] == KIND)
        .collect();
    if apps.len() <= 1 {
        return the_app(docs).map(|a| vec![a]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, doc) in apps {
        match from_value(doc) {
            Ok(app) => out.push(app),
            Err(LoadError::Invalid(e)) => errors.extend(e.0.into_iter().map(|mut f| {
                f.path = format!("(document {}) {}", i + 1, f.path);
                f
            })),
            Err(other) => return Err(other),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(LoadError::Invalid(ValidationErrors(errors)))
    }
}

/// A load error as the CLI prints it, under the source's name.
fn describe(name: &str, e: LoadError) -> String {
    let lines: Vec<String> = match e {
        LoadError::Yaml(m) => vec![format!("  not valid YAML: {m}")],
        LoadError::Invalid(errors) => errors.0.iter().map(|e| format!("  {e}")).collect(),
    };
    format!("{name}: invalid TracedApp:\n{}", lines.join("\n"))
}

/// The text of `path` (`-`: standard input), bounded by [`MAX_FILE_BYTES`].
fn read_text(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let stdin = path == std::path::Path::new("-");
    let name = source_name(path);
    let mut bytes = Vec::new();
    let source: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?)
    };
    source
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{name}: larger than {} KiB; a TracedApp file is a few KiB",
            MAX_FILE_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: a, namespace: demo}\nspec:\n  app: {image: \"app:1\"}\n  exporters: {jaeger: {endpoint: \"j:4317\"}}\n";

    fn error(text: &str) -> String {
        match from_yaml(text) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_tracedapp_is_found_by_parsing_not_by_text() {
        let file = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n--- # the app\n{}",
            APP.replace("kind: TracedApp", "kind: \"TracedApp\"")
        );
        assert_eq!(
            from_yaml(&file).unwrap().metadata.name.as_deref(),
            Some("a")
        );
        let json = r#"{"apiVersion": "tracedapp.dev/v1alpha1", "kind": "TracedApp", "metadata": {"name": "j"}, "spec": {"app": {"image": "i:1"}, "exporters": {"jaeger": {"endpoint": "j:4317"}}}}"#;
        assert_eq!(from_yaml(json).unwrap().metadata.name.as_deref(), Some("j"));
        assert!(error(&format!("{APP}---\n{APP}")).contains("holds 2 TracedApps"));
    }

    #[test]
    fn nan_and_infinity_are_named_at_their_path() {
        let text = format!("{APP}  sampling: {{ratio: .nan}}\n");
        assert_eq!(
            error(&text),
            "spec.sampling.ratio: .nan is not a number this field can hold (NaN and infinity are not allowed)"
        );
        let text = format!("{APP}  sampling: {{collectorPercentage: -.inf}}\n");
        assert!(error(&text).starts_with("spec.sampling.collectorPercentage: -.inf"));
    }

    #[test]
    fn wrong_types_and_typos_speak_the_users_words() {
        let text = APP.replace("image: \"app:1\"", "image: \"app:1\", replicas: three");
        assert_eq!(
            error(&text),
            "spec.app.replicas: must be a whole number, got \"three\""
        );
        let text = APP.replace("exporters:", "exportrs:");
        let e = error(&text);
        assert!(
            e.contains("spec.exportrs: unknown field; did you mean `exporters`?"),
            "{e}"
        );
        // A whole float is an integer, as the API server reads it.
        let text = APP.replace("image: \"app:1\"", "image: \"app:1\", port: 3001.0");
        assert_eq!(from_yaml(&text).unwrap().spec.app.port, 3001);
    }
}
