use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tracedapp_api::TracedApp;

use tracedapp_api::sidecar::{APP_PORT_NAME, METRICS_PORT_NAME};

use super::child_meta;
use crate::{labels, naming};

/// A ClusterIP Service for the app port, plus the collector's Prometheus port (the app's
/// metrics, scraped from `otel-metrics`).
pub fn service(app: &TracedApp) -> Service {
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata: child_meta(app, naming::workload(app), labels::COMPONENT_APP),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(app)),
            ports: Some(vec![
                port(APP_PORT_NAME, app.spec.app.port),
                port(METRICS_PORT_NAME, app.spec.exporters.prometheus.port),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
