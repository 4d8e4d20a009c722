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
