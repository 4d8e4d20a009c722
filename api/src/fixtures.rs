//! Test fixtures that read like sentences: `app().with_xray().with_secret_credentials()`, and
//! `with_spec(...)` for a TracedApp written in a few lines of YAML. The one fixture every
//! crate's tests use (feature `fixtures`; always in this crate's own tests).

use crate::TracedApp;

/// A valid TracedApp `shop` in `demo`: one replica of the traced service, traces to Jaeger.
pub fn app() -> TracedApp {
    crate::load::from_yaml(
        r#"
apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {name: shop, namespace: demo}
spec:
  app: {image: "tracedapp/traced-service:0.1.0"}
  exporters:
    jaeger: {endpoint: "jaeger:4317", tls: {insecure: true}}
"#,
    )
    .expect("the base fixture is valid")
}

/// Chainable changes to a fixture.
pub trait Fixture: Sized {
    fn edit(self, f: impl FnOnce(&mut TracedApp)) -> Self;

    /// X-Ray export in us-east-1.
    fn with_xray(self) -> Self {
        self.edit(|a| {
            a.spec.exporters.xray =
                Some(serde_json::from_value(serde_json::json!({"region": "us-east-1"})).unwrap())
        })
    }

    /// AWS access keys from the Secret `aws-keys`.
    fn with_secret_credentials(self) -> Self {
        self.edit(|a| {
            a.spec.aws.credentials_secret =
                Some(serde_json::from_value(serde_json::json!({"name": "aws-keys"})).unwrap())
        })
    }

    /// An IRSA role.
    fn with_role(self, arn: &str) -> Self {
        let arn = arn.to_owned();
        self.edit(|a| a.spec.aws.iam_role_arn = Some(arn))
    }

    /// As read back from the API server: with a uid.
    fn stored(self) -> Self {
        self.edit(|a| a.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into()))
    }
}

impl Fixture for TracedApp {
    fn edit(mut self, f: impl FnOnce(&mut TracedApp)) -> Self {
        f(&mut self);
        self
    }
}

/// A TracedApp `shop` in `demo` whose spec is `app: {image: "app:1"}` plus `extra` (spec keys
/// at two spaces of indentation, e.g. `"  exporters: {xray: {region: eu-west-1}}"`). Panics if
/// it is not valid, naming what is wrong.
pub fn with_spec(extra: &str) -> TracedApp {
    crate::load::from_yaml(&format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: shop, namespace: demo}}\n\
         spec:\n  app: {{image: \"app:1\"}}\n{extra}"
    ))
    .unwrap_or_else(|e| panic!("fixture spec: {e}"))
}

/// A TracedApp `shop` whose whole spec is `spec` (YAML), parsed **without** validation: for
/// tests of what validation reports.
pub fn unvalidated(spec: &str) -> TracedApp {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "tracedapp.dev/v1alpha1",
        "kind": "TracedApp",
        "metadata": {"name": "shop"},
        "spec": serde_saphyr::from_str::<serde_json::Value>(spec).expect("YAML"),
    }))
    .expect("a TracedApp's shape")
}
