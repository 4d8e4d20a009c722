use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tracedapp_api::TracedApp;

use super::{app_name, child_meta, workload_name};
use crate::labels;

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
        metadata: child_meta(app, workload_name(app), "app"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(&app_name(app))),
            ports: Some(vec![
                port("http", app.spec.app.port),
                port("otel-metrics", app.spec.exporters.prometheus.port),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
