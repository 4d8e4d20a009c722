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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(xray_receiver: bool) -> TracedAppSpec {
        crate::fixtures::with_spec(&format!(
            "  exporters: {{xray: {{region: us-east-1}}}}\n  collector: {{xrayReceiver: {xray_receiver}}}"
        ))
        .spec
    }

    #[test]
    fn port_names_are_valid_kubernetes_port_names_and_unique() {
        let ports = collector_ports(&spec(true));
        let mut names: Vec<&str> = ports.iter().map(|p| p.name).collect();
        names.push(APP_PORT_NAME);
        for name in &names {
            // IANA_SVC_NAME: at most 15 lowercase letters, digits and '-', with a letter.
            assert!(name.len() <= 15, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "unique");
    }

    #[test]
    fn the_udp_port_is_there_only_with_the_xray_receiver() {
        let udp = |s| {
            collector_ports(&s)
                .iter()
                .filter(|p| p.protocol == "UDP")
                .count()
        };
        assert_eq!(udp(spec(true)), 1);
        assert_eq!(udp(spec(false)), 0);
    }
}
