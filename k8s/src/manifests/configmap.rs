use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use tracedapp_api::TracedApp;

use super::{CONFIG_KEY, Rendered, child_meta};
use crate::{labels, naming};

/// The collector configuration, in a ConfigMap named after its content's hash. It holds no
/// credential: AWS keys reach the collector only as `env.valueFrom.secretKeyRef`.
pub fn config_map(app: &TracedApp, rendered: &Rendered) -> ConfigMap {
    let name = naming::collector_config_map(app, &rendered.config_hash);
    ConfigMap {
        metadata: child_meta(app, name, labels::COMPONENT_CONFIG),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            rendered.collector_yaml.clone(),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}
