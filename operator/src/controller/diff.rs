//! Does the object on the server already say what we would apply?
//!
//! Server-side apply of an unchanged object writes nothing to etcd, but it is still a PATCH
//! request. To send zero writes on a no-op pass we compare what we would apply with the cached
//! object first: every field we set must be present with the same value. Fields the server or
//! other managers add (defaults, status, annotations) are allowed; list lengths must match,
//! because an extra or missing container or port is a real difference.

use serde_json::Value;

/// The first place where `live` does not hold what `desired` sets, as a dotted path
/// (`spec.replicas`, `spec.template.spec.containers[1].image`), or `None` if it holds it all.
pub fn first_difference(live: &Value, desired: &Value) -> Option<String> {
    diff_at(live, desired, String::new())
}

fn diff_at(live: &Value, desired: &Value, path: String) -> Option<String> {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d.iter().find_map(|(key, want)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match l.get(key) {
                Some(have) => diff_at(have, want, here),
                // An empty object or list we set is the same as one the server dropped.
                None if is_empty(want) => None,
                None => Some(here),
            }
        }),
        (Value::Array(l), Value::Array(d)) => {
            if l.len() != d.len() {
                return Some(format!("{path} (length {} ≠ {})", l.len(), d.len()));
            }
            l.iter()
                .zip(d)
                .enumerate()
                .find_map(|(i, (have, want))| diff_at(have, want, format!("{path}[{i}]")))
        }
        (Value::Number(l), Value::Number(d)) if l.as_f64() == d.as_f64() => None,
        (l, d) if l == d => None,
        // The server drops empty values we send (`{}`, `[]`).
        (Value::Null, d) if is_empty(d) => None,
        _ => Some(if path.is_empty() {
            "(root)".into()
        } else {
            path
        }),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_added_by_the_server_are_not_a_difference() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "1"}}}}});
        let live = json!({
            "metadata": {"resourceVersion": "7", "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"a": "1", "pod-template-hash": "x"}}}},
            "status": {"replicas": 0}
        });
        assert_eq!(first_difference(&live, &desired), None);
    }

    #[test]
    fn a_changed_or_missing_field_is_named_by_its_path() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "c", "image": "c:1"}]}}}});
        let scaled = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "c", "image": "c:1"}]}}}});
        assert_eq!(
            first_difference(&scaled, &desired).as_deref(),
            Some("spec.replicas")
        );
        let new_image = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "c", "image": "c:2"}]}}}});
        assert_eq!(
            first_difference(&new_image, &desired).as_deref(),
            Some("spec.template.spec.containers[1].image")
        );
        let missing = json!({"spec": {"template": {"spec": {"containers": []}}}});
        assert_eq!(
            first_difference(&missing, &desired).as_deref(),
            Some("spec.replicas")
        );
    }

    #[test]
    fn list_lengths_must_match() {
        let desired = json!({"ports": [{"port": 80}]});
        let extra = json!({"ports": [{"port": 80}, {"port": 81}]});
        assert_eq!(
            first_difference(&extra, &desired).as_deref(),
            Some("ports (length 2 ≠ 1)")
        );
    }

    #[test]
    fn empty_values_the_server_drops_are_equal() {
        let desired = json!({"emptyDir": {}, "args": [], "labels": {"a": "1"}});
        let live = json!({"labels": {"a": "1"}});
        assert_eq!(first_difference(&live, &desired), None);
        assert_eq!(
            first_difference(&json!({"n": 1.0}), &json!({"n": 1})),
            None,
            "numbers compare by value"
        );
    }
}
