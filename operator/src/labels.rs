//! Every label set, in one place (the `app.kubernetes.io/*` recommended labels).

use std::collections::BTreeMap;

use tracedapp_api::TracedApp;

/// Field manager and `managed-by` value.
pub const MANAGER: &str = "tracedapp-operator";
/// Pod-template annotation carrying the collector config hash: a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "tracedapp.dev/collector-config-hash";
/// Label on every child naming its TracedApp (for listing and pruning).
pub const OWNER_LABEL: &str = "tracedapp.dev/name";

/// `app.kubernetes.io/component` of the app's objects (Deployment, pods, Service).
pub const COMPONENT_APP: &str = "app";
/// `app.kubernetes.io/component` of a collector ConfigMap.
pub const COMPONENT_CONFIG: &str = "collector-config";
/// `app.kubernetes.io/component` of the ServiceAccount.
pub const COMPONENT_IDENTITY: &str = "identity";

/// Labels that select the app's pods (stable for the life of the Deployment).
pub fn selector(app: &TracedApp) -> BTreeMap<String, String> {
    // Label values share the 63-character limit of names.
    let value = crate::naming::owner(app);
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), value.clone()),
        ("app.kubernetes.io/instance".to_owned(), value),
    ])
}

/// Labels on every generated object.
pub fn common(app: &TracedApp, component: &str) -> BTreeMap<String, String> {
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
    labels.insert(OWNER_LABEL.to_owned(), crate::naming::owner(app));
    labels
}
