use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use tracedapp_api::TracedApp;
use tracedapp_api::collector::TELEMETRY_PORT;
use tracedapp_api::spec::Peer;

use super::{Site, child_meta};
use crate::{labels, naming};

/// The TracedApp's pods, narrowed: the policy selects them (by labels only the operator
/// sets) and admits only what the TracedApp needs — the operator's pods to the collector's
/// telemetry port (export health) — plus the peers `spec.networkPolicy` names for the app's
/// port and the Prometheus exporter's.
///
/// NetworkPolicies add up: selecting a pod isolates it for ingress, and it then admits what any
/// policy selecting it admits. So this policy never grants what the namespace's own policies
/// deny — in a namespace that denies ingress by default, the app's port stays closed unless
/// `spec.networkPolicy.appFrom` (or a policy of the namespace) opens it. In a namespace with
/// no policy at all, the app's pods become reachable only as this policy says. Enforced only
/// where the network plugin enforces NetworkPolicies.
pub fn network_policy(app: &TracedApp, site: &Site) -> NetworkPolicy {
    let tcp = |port: i32| NetworkPolicyPort {
        protocol: Some("TCP".to_owned()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    };
    let operator = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(labels_selector(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                site.operator_namespace.clone(),
            )]))),
            pod_selector: Some(labels_selector(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                labels::MANAGER.to_owned(),
            )]))),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![tcp(TELEMETRY_PORT)]),
    };
    let mut ingress = vec![operator];
    let wanted = &app.spec.network_policy;
    for (peers, port) in [
        (&wanted.app_from, app.spec.app.port),
        (&wanted.metrics_from, app.spec.exporters.prometheus.port),
    ] {
        if !peers.is_empty() {
            ingress.push(NetworkPolicyIngressRule {
                from: Some(peers.iter().map(peer).collect()),
                ports: Some(vec![tcp(port)]),
            });
        }
    }
    NetworkPolicy {
        metadata: child_meta(app, naming::workload(app), labels::COMPONENT_APP),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(labels_selector(labels::selector(app))),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

fn labels_selector(match_labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(match_labels),
        ..LabelSelector::default()
    }
}

/// A peer of the spec as a NetworkPolicy peer.
fn peer(p: &Peer) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: p
            .pod_selector
            .as_ref()
            .map(|s| labels_selector(s.match_labels.clone())),
        namespace_selector: p
            .namespace_selector
            .as_ref()
            .map(|s| labels_selector(s.match_labels.clone())),
        ip_block: p.ip_block.as_ref().map(|b| IPBlock {
            cidr: b.cidr.clone(),
            except: (!b.except.is_empty()).then(|| b.except.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracedapp_api::fixtures::{Fixture, app};

    /// The ports of each rule, and who it admits (`None`: anyone).
    fn rules(policy: &NetworkPolicy) -> Vec<(Vec<i32>, Option<Vec<NetworkPolicyPeer>>)> {
        policy
            .spec
            .clone()
            .unwrap()
            .ingress
            .unwrap()
            .into_iter()
            .map(|r| {
                let ports = r
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| match p.port {
                        Some(IntOrString::Int(n)) => n,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                (ports, r.from)
            })
            .collect()
    }

    /// By default the policy admits the operator to the telemetry port and nothing else: it
    /// narrows, never widens. It selects the app's pods by labels only the operator sets.
    #[test]
    fn by_default_only_the_operator_reaches_the_telemetry_port() {
        let site = Site {
            operator_namespace: "ops".into(),
            ..Site::default()
        };
        let policy = network_policy(&app(), &site);
        let rules = rules(&policy);
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(rules[0].0, [TELEMETRY_PORT]);
        let from = rules[0].1.clone().expect("never 'from anyone'");
        let ns = from[0]
            .namespace_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(ns["kubernetes.io/metadata.name"], "ops");
        let selector = policy
            .spec
            .unwrap()
            .pod_selector
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(selector, labels::selector(&app()));
        assert!(
            !selector.contains_key("app.kubernetes.io/name"),
            "a label other tools set too: {selector:?}"
        );
    }

    /// `spec.networkPolicy` opens the app's port and the metrics port to the peers it names,
    /// and only those ports.
    #[test]
    fn named_peers_reach_the_app_and_metrics_ports_only() {
        let app = app().edit(|a| {
            a.spec.network_policy = serde_json::from_value(serde_json::json!({
                "appFrom": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}, "podSelector": {"matchLabels": {"app": "prometheus"}}}],
            }))
            .unwrap();
        });
        let rules = rules(&network_policy(&app, &Site::default()));
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1].0, [app.spec.app.port]);
        let from = rules[1].1.clone().unwrap();
        assert_eq!(
            from[0].namespace_selector.clone().unwrap().match_labels,
            Some(BTreeMap::new())
        );
        assert_eq!(
            from[1].ip_block.clone().unwrap().except.unwrap(),
            ["10.0.0.0/8"]
        );
        assert_eq!(rules[2].0, [app.spec.exporters.prometheus.port]);
        let from = rules[2].1.clone().unwrap();
        assert_eq!(
            from[0].pod_selector.clone().unwrap().match_labels.unwrap()["app"],
            "prometheus"
        );
    }
}
