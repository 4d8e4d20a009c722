//! The layout both targets share: the app's container beside the collector's, in one network
//! namespace (a pod, or an `awsvpc` task). The Kubernetes builders and the ECS builder read it
//! from here, so the two cannot drift apart.

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

/// Where the app sends OTLP (inside the pod/task).
pub const OTLP_GRPC_PORT: i32 = 4317;
/// OTLP over HTTP.
pub const OTLP_HTTP_PORT: i32 = 4318;
/// `health_check` extension port.
pub const HEALTH_PORT: i32 = 13133;
/// Legacy X-Ray SDK segments (UDP).
pub const XRAY_UDP_PORT: i32 = 2000;
/// The collector's own telemetry (Prometheus).
pub const TELEMETRY_PORT: i32 = 8888;
/// On ECS, where no operator reads port 8888: the collector pushes its own telemetry to itself
/// on this loopback port (OTLP/HTTP), and on to CloudWatch (`collector::ecs_config`).
pub const SELF_TELEMETRY_PORT: i32 = 4320;

/// Every port the collector opens in the pod or task besides its Prometheus exporter's, which
/// the app's port and the Prometheus port must avoid: `(port, what, only with xrayReceiver)`.
pub const COLLECTOR_PORTS: [(i32, &str, bool); 6] = [
    (OTLP_GRPC_PORT, "OTLP/gRPC receiver", false),
    (OTLP_HTTP_PORT, "OTLP/HTTP receiver", false),
    (TELEMETRY_PORT, "collector's own telemetry", false),
    (
        SELF_TELEMETRY_PORT,
        "collector's own telemetry on ECS",
        false,
    ),
    (HEALTH_PORT, "health check", false),
    (
        XRAY_UDP_PORT,
        "X-Ray segments, with collector.xrayReceiver",
        true,
    ),
];

/// The CRD rule that `field` (a port of the spec, e.g. `app.port`) is none of
/// [`COLLECTOR_PORTS`].
pub fn port_rule(field: &str) -> kube::core::Rule {
    let always: Vec<String> = COLLECTOR_PORTS
        .iter()
        .filter(|p| !p.2)
        .map(|p| p.0.to_string())
        .collect();
    let mut expression = format!("!(self.{field} in [{}])", always.join(", "));
    for (port, _, _) in COLLECTOR_PORTS.iter().filter(|p| p.2) {
        expression.push_str(&format!(
            " && !(self.collector.xrayReceiver && self.{field} == {port})"
        ));
    }
    let listed: Vec<String> = COLLECTOR_PORTS
        .iter()
        .map(|(port, what, _)| format!("{port} ({what})"))
        .collect();
    kube::core::Rule::new(expression)
        .message(kube::core::Message::Message(format!(
            "{field} must not be a port the collector opens in the same pod/task: {}",
            listed.join(", ")
        )))
        .field_path(format!(".{field}"))
}

/// A port the collector container declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub number: i32,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
}

/// The collector container's ports: OTLP, the app's metrics (on `prometheus_port`), health,
/// and X-Ray segments when `xray_receiver` (`collector.xrayReceiver`) is on.
pub fn collector_ports(prometheus_port: i32, xray_receiver: bool) -> Vec<Port> {
    let tcp = |name, number| Port {
        name,
        number,
        protocol: "TCP",
    };
    let mut ports = vec![
        tcp("otlp-grpc", OTLP_GRPC_PORT),
        tcp("otlp-http", OTLP_HTTP_PORT),
        tcp(METRICS_PORT_NAME, prometheus_port),
        tcp(HEALTH_PORT_NAME, HEALTH_PORT),
    ];
    if xray_receiver {
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

    #[test]
    fn port_names_are_valid_kubernetes_port_names_and_unique() {
        let ports = collector_ports(8889, true);
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
        let udp = |xray| {
            collector_ports(8889, xray)
                .iter()
                .filter(|p| p.protocol == "UDP")
                .count()
        };
        assert_eq!(udp(true), 1);
        assert_eq!(udp(false), 0);
    }
}
