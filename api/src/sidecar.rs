//! The layout both targets share: the app's container beside the collector's, in one network
//! namespace (a pod, or an `awsvpc` task). The Kubernetes builders and the ECS builder read it
//! from here, so the two cannot drift apart.

use crate::collector::{HEALTH_PORT, OTLP_GRPC_PORT, OTLP_HTTP_PORT, XRAY_UDP_PORT};
use crate::spec::TracedAppSpec;

/// The app's container.
pub const APP_CONTAINER: &str = "app";
/// The collector's container.
pub const COLLECTOR_CONTAINER: &str = "otel-collector";
/// UID and GID both containers run as (the upstream collector images use 10001 too).
pub const RUN_AS: i64 = 10001;
/// The writable scratch volume (both root filesystems are read-only), and where it is mounted.
pub const TMP_VOLUME: &str = "tmp";
/// Where [`TMP_VOLUME`] is mounted.
pub const TMP_PATH: &str = "/tmp";
/// Name of the app's port.
pub const APP_PORT_NAME: &str = "http";
/// Name of the collector's Prometheus port (the app's metrics).
pub const METRICS_PORT_NAME: &str = "otel-metrics";
/// Name of the collector's health-check port.
pub const HEALTH_PORT_NAME: &str = "otel-health";

/// A port the collector container declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub number: i32,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
}

/// The collector container's ports: OTLP, the app's metrics, health, and X-Ray segments when
/// `collector.xrayReceiver` is on.
pub fn collector_ports(spec: &TracedAppSpec) -> Vec<Port> {
    let tcp = |name, number| Port {
        name,
        number,
        protocol: "TCP",
    };
    let mut ports = vec![
        tcp("otlp-grpc", OTLP_GRPC_PORT),
        tcp("otlp-http", OTLP_HTTP_PORT),
        tcp(METRICS_PORT_NAME, spec.exporters.prometheus.port),
        tcp(HEALTH_PORT_NAME, HEALTH_PORT),
    ];
    if spec.collector.xray_receiver {
        ports.push(Port {
            name: "xray-udp",
            number: XRAY_UDP_PORT,
            protocol: "UDP",
        });
    }
    ports
}
