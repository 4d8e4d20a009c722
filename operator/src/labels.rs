//! Every label set, in one place (the `app.kubernetes.io/*` recommended labels).

use std::collections::BTreeMap;

/// Field manager and `managed-by` value.
pub const MANAGER: &str = "tracedapp-operator";
/// Pod-template annotation carrying the collector config hash: a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "tracedapp.dev/collector-config-hash";
/// Label on every child naming its TracedApp (for listing and pruning).
pub const OWNER_LABEL: &str = "tracedapp.dev/name";

/// Labels that select the app's pods (stable for the life of the Deployment).
pub fn selector(app: &str) -> BTreeMap<String, String> {
    // Label values share the 63-character limit of names.
    let app = &crate::naming::fit(app);
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), app.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), app.to_owned()),
    ])
}

/// Labels on every generated object.
pub fn common(app: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector(app);
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        component.to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "tracedapp".to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGER.to_owned(),
    );
    labels.insert(OWNER_LABEL.to_owned(), crate::naming::fit(app));
    labels
}
