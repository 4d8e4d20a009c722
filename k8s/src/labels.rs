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

/// Labels that select the app's pods (the Deployment's, the Service's and the NetworkPolicy's
/// selector): ones only the operator sets. The recommended `app.kubernetes.io/name` and
/// `instance` are also what a Helm release or another tool of the same name sets, so selecting
/// by them would take in, and open, someone else's pods.
///
/// A Deployment's selector cannot change: one made with an older selector is moved to this
/// one by the operator's `controller::apply` (orphaned, then adopted, without a restart).
pub fn selector(app: &TracedApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            OWNER_LABEL.to_owned(),
            crate::naming::owner_label_value(app),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
    ])
}

/// Labels on every generated object: the recommended `app.kubernetes.io/*` set and the
/// [`selector`].
pub fn common(app: &TracedApp, component: &str) -> BTreeMap<String, String> {
    // Label values share the 63-character limit of names.
    let value = crate::naming::owner_label_value(app);
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), value.clone()),
        ("app.kubernetes.io/instance".to_owned(), value),
    ]);
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
    labels.insert(
        OWNER_LABEL.to_owned(),
        crate::naming::owner_label_value(app),
    );
    labels
}
