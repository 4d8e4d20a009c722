//! The TracedApp's rules, written once: in the CRD.
//!
//! The rules live where Kubernetes enforces them — the CRD's OpenAPI schema (types, bounds,
//! patterns, lengths, list sizes, generated from the attributes in [`crate::spec`]) and its
//! CEL rules (`x-kubernetes-validations`, also in [`crate::spec`]). Paths that never meet an API
//! server (the CLI, ECS registration) and the operator's own check evaluate that same generated
//! schema here: the OpenAPI part with [`structural`], the CEL part with kube-cel, which carries
//! Kubernetes' CEL libraries (`quantity()` among them). A rule written twice had drifted in both
//! directions (the README promised "identically" and it was not); a rule written once cannot.
//!
//! Why not a table that feeds both the schema attributes and Rust checks (the other way we
//! considered): each rule would still need a Rust implementation next to its CEL text, and the
//! CEL text is what Kubernetes runs. Evaluating the CEL itself removes the second copy. What is
//! left to differ is two engines reading the same text (Go's RE2 and CEL, Rust's `regex` and
//! kube-cel), which `operator/tests/rule_parity.rs` checks on a real kube-apiserver with a
//! generated corpus of specs on and past every boundary. Patterns therefore use only syntax the
//! two regex engines read alike (ASCII classes, `[[:space:]]` rather than `\s`).
//!
//! Expected flow ([`check`]): schema defaults applied (as the API server defaults before it
//! validates) → the OpenAPI walk → if the shape is right, the CEL rules → `metadata` as the API
//! server checks it for a namespaced custom resource.

pub mod errors;
pub mod structural;

use std::sync::OnceLock;

use serde_json::Value;

use crate::spec::NAME_MAX;
use errors::{FieldError, ValidationErrors};

/// The CRD's `openAPIV3Schema`, generated once.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = crate::spec::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a derived CRD has a schema");
        serde_json::to_value(schema).expect("a schema serialises")
    })
}

/// The object with the schema's defaults filled in, as the API server stores it.
pub fn defaulted(object: &Value) -> Value {
    kube_cel::apply_defaults(schema(), &without_nulls(schema(), object))
}

/// `value` without the `null`s the API server drops before defaulting: a field written as
/// `null` that has a default and is not `nullable` counts as absent, and its default applies
/// (measured against kube-apiserver 1.35 in `operator/tests/rule_parity.rs`). Other nulls stay:
/// a `nullable` field's null is "not set", any other is refused by the type check.
pub fn without_nulls(schema: &Value, value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let field = schema["properties"]
                    .get(k)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                match field {
                    Some(field)
                        if v.is_null()
                            && field["nullable"] != true
                            && field.get("default").is_some() => {}
                    Some(field) => {
                        out.insert(k.clone(), without_nulls(field, v));
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| without_nulls(&schema["items"], i))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks a whole TracedApp object (as JSON) against every rule of the CRD.
pub fn check(object: &Value) -> Result<(), ValidationErrors> {
    let object = defaulted(object);
    let mut errors = metadata(&object["metadata"]);
    let shape = structural::check(schema(), &object, "");
    let shape_ok = shape.is_empty();
    errors.extend(shape);
    if shape_ok {
        // A nullable field set to null is not set: its rules are not run, and `has()` says
        // false, as in the API server.
        errors.extend(cel(&without_nullable_nulls(&object)));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// `value` without any null map value (the shape check has passed: the nulls left are those of
/// `nullable` fields, which mean "not set").
fn without_nullable_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nullable_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nullable_nulls).collect()),
        other => other.clone(),
    }
}

/// The CEL rules (`x-kubernetes-validations`) of the schema, evaluated on `object`.
fn cel(object: &Value) -> Vec<FieldError> {
    thread_local! {
        static COMPILED: kube_cel::CompiledSchema = kube_cel::compile_schema(schema());
        static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
    }
    let outcome = COMPILED.with(|compiled| {
        VALIDATOR.with(|validator| validator.validate_compiled(compiled, object, None))
    });
    match outcome {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| FieldError {
                path: if e.field_path.is_empty() {
                    "(document)".to_owned()
                } else {
                    e.field_path
                },
                message: e.message,
            })
            .collect(),
    }
}

/// What the API server checks of a namespaced custom resource's `metadata`: a name that is a
/// DNS label (the API server's DNS subdomain, narrowed by the CRD's schema), a namespace that
/// is a DNS label.
fn metadata(meta: &Value) -> Vec<FieldError> {
    let error = |path: &str, message: String| FieldError {
        path: path.to_owned(),
        message,
    };
    let mut errors = Vec::new();
    match meta["name"].as_str() {
        None | Some("") if meta["generateName"].is_null() => {
            errors.push(error("metadata.name", "is required".into()));
        }
        // The API server checks a DNS subdomain (≤ 253, dots allowed) and then the CRD's
        // stricter rule; only the stricter one can be met, so it is the one said, once.
        Some(name) if !name.is_empty() && !is_dns_label(name) => errors.push(error(
            "metadata.name",
            format!(
                "must be a DNS label, since it names the app's Deployment and Service: \
                 lowercase letters, digits and '-', starting and ending with a letter or digit, \
                 at most {NAME_MAX} characters; got {}{}",
                structural::shown(&Value::from(name)),
                if name.len() as u64 > NAME_MAX {
                    format!(" ({} characters)", name.chars().count())
                } else {
                    String::new()
                }
            ),
        )),
        _ => {}
    }
    if let Some(ns) = meta.get("namespace").filter(|n| !n.is_null()) {
        match ns.as_str() {
            Some(ns) if is_dns_label(ns) => {}
            _ => errors.push(error(
                "metadata.namespace",
                format!(
                    "must be a namespace name (lowercase letters, digits and '-', at most 63), \
                     got {}",
                    structural::shown(ns)
                ),
            )),
        }
    }
    errors
}

/// RFC 1123 label: lowercase alphanumerics and '-', at most 63, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pattern of the schema says what it means in an error, not as a regex.
    #[test]
    fn every_pattern_has_a_meaning() {
        fn patterns(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(p)) = m.get("pattern") {
                        out.push(p.clone());
                    }
                    m.values().for_each(|v| patterns(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| patterns(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        patterns(schema(), &mut all);
        assert!(all.len() > 15, "{all:?}");
        for p in all {
            assert!(
                crate::spec::PATTERN_MEANINGS.iter().any(|(q, _)| *q == p),
                "no meaning for {p}"
            );
        }
    }
}
