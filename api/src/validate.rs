//! Validating a TracedApp: the CRD's own rules ([`crate::rules`]), for the paths that never
//! meet an API server (the CLI, ECS) and for the operator's check of what it reconciles.
//! Errors name the field, e.g. `spec.exporters.xray.region: region is required when X-Ray
//! export is enabled`.

use crate::spec::TracedApp;

pub use crate::rules::errors::{FieldError, ValidationErrors};
pub use crate::rules::is_dns_label;

/// Checks a whole resource (name included) against every rule of the CRD.
pub fn validate(app: &TracedApp) -> Result<(), ValidationErrors> {
    let object = serde_json::to_value(app).expect("a TracedApp serialises");
    crate::rules::check(&object)
}

/// Checks an image reference as the CRD checks `spec.collector.image` (the same schema), for
/// the settings that fill that field from outside a spec: the operator's and the CLI's
/// `--collector-image`. The error is the CRD's own message.
pub fn collector_image(image: &str) -> Result<(), String> {
    let object = serde_json::json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "metadata": {"name": "image", "namespace": "image"},
        "spec": {
            "app": {"image": "app"},
            "exporters": {"jaeger": {"endpoint": "jaeger:4317"}},
            "collector": {"image": image},
        },
    });
    crate::rules::check(&object).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(spec: &str) -> TracedApp {
        crate::fixtures::unvalidated(spec)
    }

    #[test]
    fn a_valid_spec_passes() {
        assert_eq!(
            validate(&app(
                "{app: {image: x}, exporters: {jaeger: {endpoint: 'j:4317'}}}"
            )),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_reported_one_per_line_with_its_path() {
        let errors = validate(&app(
            "{app: {image: x, replicas: -1}, exporters: {xray: {region: 'Moon-1'}}}",
        ))
        .unwrap_err();
        let text = errors.to_string();
        assert!(errors.0.len() >= 2, "{text}");
        assert_eq!(text.lines().count(), errors.0.len());
        assert!(text.contains("spec.app.replicas"), "{text}");
        assert!(text.contains("spec.exporters.xray.region"), "{text}");
    }

    #[test]
    fn a_collector_image_outside_a_spec_meets_the_same_rule() {
        for good in [
            "registry.example.com:5000/platform/otelcol-tracedapp:0.161.0",
            "otelcol-tracedapp",
        ] {
            assert_eq!(collector_image(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Registry/Otelcol:1",
            "otelcol tracedapp",
            "otelcol:1 --config=x",
        ] {
            let error = collector_image(bad).unwrap_err();
            assert!(!error.is_empty(), "{bad:?} refused with a message");
        }
    }

    #[test]
    fn the_name_is_checked_too() {
        let mut a = app("{app: {image: x}, exporters: {jaeger: {endpoint: 'j:4317'}}}");
        a.metadata.name = Some("Shop_1".into());
        let errors = validate(&a).unwrap_err();
        assert!(
            errors.0.iter().any(|e| e.path == "metadata.name"),
            "{errors}"
        );
    }
}
