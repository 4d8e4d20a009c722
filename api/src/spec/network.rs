//! Who may reach the app's pods (Kubernetes only): the peers a TracedApp's NetworkPolicy
//! admits beyond the operator. Nothing by default: the policy the operator writes only ever
//! narrows what the namespace's own policies allow.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns::*;

/// Who may reach the app's pods besides the operator (which alone reads the collector's own
/// metrics). Each list is in the form of a NetworkPolicy's `from`. Kubernetes only: ECS and
/// Lambda ignore it (security groups decide there).
///
/// The TracedApp's NetworkPolicy selects its own pods, so they admit only what some policy
/// admits: with both lists empty (the default) that is the operator to the collector's
/// telemetry port, plus whatever the namespace's other policies grant.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Peers admitted to the app's port, e.g. `[{namespaceSelector: {}}]` for every pod of the
    /// cluster, `[{podSelector: {matchLabels: {role: gateway}}}]` for some pods of the
    /// namespace, `[{ipBlock: {cidr: 0.0.0.0/0}}]` for addresses outside the cluster
    /// (NodePort, load balancers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub app_from: Vec<Peer>,
    /// Peers admitted to the collector's Prometheus exporter (the app's metrics), e.g. the
    /// namespace of your Prometheus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub metrics_from: Vec<Peer>,
}

/// One source of traffic, as in a NetworkPolicy: pods (by their labels and their namespace's
/// labels), or a block of addresses.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ipBlock) ? !has(self.podSelector) && !has(self.namespaceSelector) : (has(self.podSelector) || has(self.namespaceSelector))").message("a peer is either an ipBlock, or pods by podSelector and/or namespaceSelector"))]
pub struct Peer {
    /// Pods with these labels (in the TracedApp's namespace, unless `namespaceSelector` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<Selector>,
    /// Namespaces with these labels (`{}`: every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<Selector>,
    /// Addresses in this CIDR, but not in `except`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// Labels that must all match (`{}` matches everything).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// `key: value` pairs, each a Kubernetes label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(r#"self.all(k, k.size() <= 317 && k.matches("^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"))"#).message("label keys are an optional DNS-subdomain prefix and '/', then up to 63 letters, digits, '-', '_' and '.'"))]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}))]
    pub match_labels: BTreeMap<String, String>,
}

/// A block of addresses.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct IpBlock {
    /// e.g. `10.0.0.0/8` or `0.0.0.0/0`.
    #[schemars(regex(pattern = CIDR), length(max = 43))]
    pub cidr: String,
    /// Blocks inside `cidr` left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = CIDR), length(max = 43)))]
    pub except: Vec<String>,
}
