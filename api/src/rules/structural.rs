//! The OpenAPI half of the CRD's rules, evaluated the way kube-apiserver evaluates a structural
//! schema: types, required fields, enums, patterns, bounds, lengths (in characters, as
//! Kubernetes counts them), list sizes, and unknown fields (which `kubectl apply` refuses with
//! strict field validation, its default).
//!
//! Expected flow: the object has had its schema defaults applied; [`check`] walks the schema
//! and the object together and returns every violation with its field path.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::Value;

use super::errors::FieldError;

/// Every violation of `schema` in `value`; `path` is where `value` sits (`""` for the root).
pub fn check(schema: &Value, value: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(schema, value, path, &mut errors);
    errors
}

fn fail(errors: &mut Vec<FieldError>, path: &str, message: String) {
    errors.push(FieldError {
        path: if path.is_empty() {
            "(document)".to_owned()
        } else {
            path.to_owned()
        },
        message,
    });
}

/// A value as a user wrote it, for messages (strings quoted, long ones cut).
pub fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    // Kubernetes drops nulls of fields that are not nullable before validating.
    if value.is_null() {
        return;
    }
    if schema["x-kubernetes-preserve-unknown-fields"] == true && schema.get("properties").is_none()
    {
        return;
    }
    // `x-kubernetes-int-or-string` (a quantity): a whole number, or text checked as text.
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    let Some(kind) = schema["type"]
        .as_str()
        .or(int_or_string.then_some("int-or-string"))
    else {
        return;
    };
    let type_ok = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "int-or-string" => value.is_i64() || value.is_u64() || value.is_string(),
        _ => true,
    };
    if !type_ok {
        let what = match kind {
            "object" => "a mapping of fields",
            "array" => "a list",
            "string" => "text",
            "boolean" => "true or false",
            "integer" => "a whole number",
            "number" => "a number",
            "int-or-string" => "a whole number or text",
            other => other,
        };
        // A number or true/false where text is wanted: YAML read it so because it was not
        // quoted; say how to write it.
        let hint = if matches!(kind, "string" | "int-or-string")
            && (value.is_number() || value.is_boolean())
        {
            let key = path.rsplit(['.', ']']).next().unwrap_or("value");
            let key = if key.is_empty() { "value" } else { key };
            format!("; quote it: `{key}: \"{value}\"`")
        } else {
            String::new()
        };
        fail(
            errors,
            path,
            format!("must be {what}, got {}{hint}", shown(value)),
        );
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(shown).collect();
        fail(
            errors,
            path,
            format!("must be one of {}, got {}", names.join(", "), shown(value)),
        );
    }
    match value {
        Value::String(s) => string(schema, s, path, errors),
        Value::Number(n) => number(schema, n.as_f64().unwrap_or(f64::NAN), value, path, errors),
        Value::Array(items) => array(schema, items, path, errors),
        Value::Object(fields) => object(schema, fields, path, errors),
        _ => {}
    }
}

/// `pattern` compiled once per process: compiling is most of a validation's cost (seen in the
/// operator's profile: every pass validates its TracedApp), and the schema's patterns are few.
fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    static CACHE: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Default::default);
    if let Some(re) = CACHE.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(pattern)?;
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(pattern.to_owned(), re.clone());
    }
    Ok(re)
}

fn string(schema: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64()
        && chars < min
    {
        let message = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters, got {chars}")
        };
        fail(errors, path, message);
    }
    if let Some(max) = schema["maxLength"].as_u64()
        && chars > max
    {
        fail(
            errors,
            path,
            format!("must be at most {max} characters, got {chars}"),
        );
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match compiled(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => {
                let meaning = crate::spec::PATTERN_MEANINGS
                    .iter()
                    .find(|(p, _)| *p == pattern)
                    .map_or_else(|| format!("match {pattern}"), |(_, m)| format!("be {m}"));
                fail(
                    errors,
                    path,
                    format!("must {meaning}, got {}", shown(&Value::from(s))),
                );
            }
            Err(e) => fail(
                errors,
                path,
                format!("the schema's pattern does not compile: {e}"),
            ),
        }
    }
}

/// A schema bound as a person writes it: `65535`, not `65535.0`.
fn bound_text(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn number(schema: &Value, n: f64, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let bound = |key: &str| schema[key].as_f64();
    let exclusive = |key: &str| schema[key] == true;
    if let Some(min) = bound("minimum") {
        let below = if exclusive("exclusiveMinimum") {
            n <= min
        } else {
            n < min
        };
        if below {
            fail(
                errors,
                path,
                format!(
                    "must be at least {}, got {}",
                    bound_text(&schema["minimum"]),
                    shown(value)
                ),
            );
        }
    }
    if let Some(max) = bound("maximum") {
        let above = if exclusive("exclusiveMaximum") {
            n >= max
        } else {
            n > max
        };
        if above {
            fail(
                errors,
                path,
                format!(
                    "must be at most {}, got {}",
                    bound_text(&schema["maximum"]),
                    shown(value)
                ),
            );
        }
    }
}

fn array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let len = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64()
        && len > max
    {
        fail(
            errors,
            path,
            format!("must have at most {max} items, got {len}"),
        );
    }
    if let Some(min) = schema["minItems"].as_u64()
        && len < min
    {
        fail(
            errors,
            path,
            format!("must have at least {min} items, got {len}"),
        );
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn object(
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str()
            && fields.get(name).is_none_or(Value::is_null)
        {
            fail(errors, &join(path, name), "is required".to_owned());
        }
    }
    let count = fields.len() as u64;
    if let Some(max) = schema["maxProperties"].as_u64()
        && count > max
    {
        fail(
            errors,
            path,
            format!("must have at most {max} entries, got {count}"),
        );
    }
    let properties = schema["properties"].as_object();
    let additional = schema.get("additionalProperties");
    for (key, v) in fields {
        // What every object has: a CRD's schema leaves them implicit.
        if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
            continue;
        }
        let here = join(path, key);
        if let Some(field_schema) = properties.and_then(|p| p.get(key)) {
            walk(field_schema, v, &here, errors);
        } else if let Some(value_schema) = additional.filter(|a| a.is_object()) {
            walk(value_schema, v, &here, errors);
        } else if additional != Some(&Value::Bool(true))
            && schema["x-kubernetes-preserve-unknown-fields"] != true
        {
            let message = unknown_field(key, &here, properties);
            fail(errors, &here, message);
        }
    }
}

/// What to say of a field the schema does not know at `here`: what Kubernetes users reach
/// for that TracedApp does not take, where the field belongs when it exists elsewhere in the
/// spec, or the known name it is a typo of.
fn unknown_field(key: &str, here: &str, known: Option<&serde_json::Map<String, Value>>) -> String {
    if let Some(instead) = NOT_SUPPORTED
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, instead)| instead)
    {
        return format!("`{key}` is not supported: {instead}");
    }
    let mut elsewhere = Vec::new();
    places(super::schema(), "", key, &mut elsewhere);
    elsewhere.retain(|p| p != here && !p.starts_with("status"));
    if !elsewhere.is_empty() {
        let list: Vec<String> = elsewhere.iter().map(|p| format!("`{p}`")).collect();
        return format!(
            "unknown field here; `{key}` belongs in {}",
            list.join(" or ")
        );
    }
    match known.and_then(|p| nearest(key, p.keys())) {
        Some(name) => format!("unknown field; did you mean `{name}`?"),
        None => "unknown field".to_owned(),
    }
}

/// Fields people bring from Kubernetes manifests that a TracedApp deliberately lacks, and
/// what to use instead.
const NOT_SUPPORTED: [(&str, &str); 3] = [
    (
        "valueFrom",
        "an env value is literal text (for AWS credentials use spec.aws.credentialsSecret; \
         the app's own secrets belong in its image or a secret manager)",
    ),
    (
        "envFrom",
        "list each variable in spec.app.env (AWS credentials: spec.aws.credentialsSecret)",
    ),
    (
        "containers",
        "a TracedApp runs one app container (spec.app) and its collector (spec.collector)",
    ),
];

/// Every path in `schema` (from `path`) where a property named `key` exists; list items as
/// `[]`.
fn places(schema: &Value, path: &str, key: &str, out: &mut Vec<String>) {
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            let here = join(path, name);
            if name == key {
                out.push(here.clone());
            }
            places(sub, &here, key, out);
        }
    }
    if schema["items"].is_object() {
        places(&schema["items"], &format!("{path}[]"), key, out);
    }
}

/// The known name closest to a misspelt one, if it is close enough to be a typo.
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    known
        .map(|k| {
            (
                strsim::jaro_winkler(&key.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, value: Value) -> Vec<String> {
        check(&schema, &value, "spec")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let schema = json!({"type": "string", "maxLength": 3});
        assert!(
            errors(schema.clone(), json!("ééé")).is_empty(),
            "3 characters, 6 bytes"
        );
        assert_eq!(
            errors(schema, json!("éééé")),
            ["spec: must be at most 3 characters, got 4"]
        );
    }

    #[test]
    fn a_misspelt_field_is_named_with_the_nearest_known_one() {
        let schema = json!({"type": "object", "properties": {"exporters": {"type": "object"}, "app": {"type": "object"}}});
        assert_eq!(
            errors(schema, json!({"exportrs": {}})),
            ["spec.exportrs: unknown field; did you mean `exporters`?"]
        );
    }

    #[test]
    fn types_bounds_and_nulls() {
        let schema = json!({"type": "integer", "minimum": 1, "maximum": 65535});
        assert_eq!(
            errors(schema.clone(), json!(65536)),
            ["spec: must be at most 65535, got 65536"]
        );
        assert_eq!(
            errors(schema.clone(), json!("80")),
            ["spec: must be a whole number, got \"80\""]
        );
        assert_eq!(
            errors(schema.clone(), json!(1.5)),
            ["spec: must be a whole number, got 1.5"]
        );
        assert!(
            errors(schema, Value::Null).is_empty(),
            "a null is dropped, as Kubernetes does"
        );
    }
}
