use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use tracedapp_api::TracedApp;
use tracedapp_api::collector::TELEMETRY_PORT;

use super::{Site, child_meta};
use crate::{labels, naming};

/// Keeps the collector's own metrics (its export counters) for the operator: every port of
/// the app's pods stays open to whoever could reach it before, except the collector's
/// telemetry port, which only the operator's pods (in `site.operator_namespace`) may reach.
///
/// NetworkPolicies add up: a namespace's other policies still apply, and one that admits all
/// traffic to these pods admits this port too. Enforced only where the network plugin
/// enforces NetworkPolicies.
pub fn network_policy(app: &TracedApp, site: &Site) -> NetworkPolicy {
    let range = |protocol: &str, from: i32, to: i32| NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(from)),
        end_port: (to > from).then_some(to),
    };
    let everyone_but_telemetry = NetworkPolicyIngressRule {
        from: None,
        ports: Some(vec![
            range("TCP", 1, TELEMETRY_PORT - 1),
            range("TCP", TELEMETRY_PORT + 1, 65535),
            range("UDP", 1, 65535),
            range("SCTP", 1, 65535),
        ]),
    };
    let operator_only = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    site.operator_namespace.clone(),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_owned(),
                    labels::MANAGER.to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![range("TCP", TELEMETRY_PORT, TELEMETRY_PORT)]),
    };
    NetworkPolicy {
        metadata: child_meta(app, naming::workload(app), labels::COMPONENT_APP),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(app)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![everyone_but_telemetry, operator_only]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::app;

    /// Who may reach `port` over `protocol`: `None` for anyone, else the peers' namespaces.
    fn admitted(policy: &NetworkPolicy, protocol: &str, port: i32) -> Vec<Option<String>> {
        let rules = policy.spec.as_ref().unwrap().ingress.clone().unwrap();
        rules
            .iter()
            .filter(|r| {
                r.ports.iter().flatten().any(|p| {
                    let IntOrString::Int(from) = p.port.clone().unwrap() else {
                        return false;
                    };
                    p.protocol.as_deref() == Some(protocol)
                        && (from..=p.end_port.unwrap_or(from)).contains(&port)
                })
            })
            .map(|r| {
                r.from.as_ref().map(|peers| {
                    let ns = peers[0].namespace_selector.as_ref().unwrap();
                    ns.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"].clone()
                })
            })
            .collect()
    }

    #[test]
    fn only_the_operator_reaches_the_collectors_telemetry_and_every_other_port_stays_open() {
        let site = Site {
            operator_namespace: "ops".into(),
        };
        let policy = network_policy(&app(), &site);
        assert_eq!(
            admitted(&policy, "TCP", TELEMETRY_PORT),
            [Some("ops".to_owned())]
        );
        for (protocol, port) in [
            ("TCP", 1),
            ("TCP", 8080),
            ("TCP", 4317),
            ("TCP", 8887),
            ("TCP", 8889),
            ("TCP", 65535),
            ("UDP", 2000),
        ] {
            assert_eq!(
                admitted(&policy, protocol, port),
                [None],
                "{protocol} {port}"
            );
        }
        let selector = policy
            .spec
            .unwrap()
            .pod_selector
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(
            selector,
            labels::selector(&app()),
            "the app's pods, nothing else"
        );
    }
}
