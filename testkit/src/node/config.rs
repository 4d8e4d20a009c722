//! The files a one-node cluster runs from: certificates, tokens, kubeconfigs, and the
//! configuration of containerd, the CNI bridge, the kubelet, CoreDNS, kube-router and admission.
//! Pure text (plus `openssl` for keys and `/dev/urandom` for tokens); [`super::Cluster`]
//! writes them into its folder.
//!
//! Credentials are the cluster's own: a new CA, certificates and random bearer tokens for every
//! start, in files only their owner can read (0600, in a 0700 folder). Nothing is fixed or
//! published; etcd takes only clients with a certificate from that CA.

use std::path::Path;
use std::process::Command;

use super::{API_PORT, BRIDGE, CLUSTER_DOMAIN, NODE_IP, POD_CIDR, SERVICE_CIDR};

/// The first address of the Service range: the `kubernetes` Service.
pub const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";

/// Bearer-token users: `(component, user, groups)`; each gets a random token per cluster.
pub const USERS: [(&str, &str, &str); 7] = [
    ("admin", "admin", "system:masters"),
    (
        "kube-controller-manager",
        "system:kube-controller-manager",
        "",
    ),
    ("kube-scheduler", "system:kube-scheduler", ""),
    ("kubelet", "system:node:tracedapp-node", "system:nodes"),
    ("kube-proxy", "system:kube-proxy", ""),
    ("coredns", "tracedapp:coredns", ""),
    ("kube-router", "tracedapp:kube-router", ""),
];

/// Writes `text` to `path`, readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// 32 random bytes as hex, from the kernel.
fn random_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl: {e} (install the openssl package)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA, the API server's serving certificate (valid for every name and address pods and
/// the host use), the API server's client certificates towards the kubelet and etcd, etcd's
/// serving certificate, the service-account key pair, and the token file. Into `pki`, owner
/// only.
pub fn pki(pki: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(pki)
        .map_err(|e| e.to_string())?;
    // Keys are written 0600 whatever the umask.
    let umask_like = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pki.join(name), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{name}: {e}"))
    };
    let days = "3650";
    openssl(
        pki,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            days,
            "-subj",
            "/CN=tracedapp-node-ca",
        ],
    )?;
    let sans = format!(
        "subjectAltName=IP:127.0.0.1,IP:{KUBERNETES_SERVICE_IP},IP:{NODE_IP},DNS:localhost,\
         DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
         DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}\nextendedKeyUsage=serverAuth\n"
    );
    std::fs::write(pki.join("apiserver.ext"), sans).map_err(|e| e.to_string())?;
    std::fs::write(pki.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(
        pki.join("etcd.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .map_err(|e| e.to_string())?;
    for (name, subject, ext) in [
        ("apiserver", "/CN=kube-apiserver", "apiserver.ext"),
        (
            "kubelet-client",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "client.ext",
        ),
        ("etcd", "/CN=etcd", "etcd.ext"),
        (
            "apiserver-etcd-client",
            "/CN=kube-apiserver-etcd-client",
            "client.ext",
        ),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            pki,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                subject,
            ],
        )?;
        openssl(
            pki,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                days,
                "-extfile",
                ext,
            ],
        )?;
    }
    openssl(pki, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(pki, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    for key in [
        "ca.key",
        "apiserver.key",
        "kubelet-client.key",
        "etcd.key",
        "apiserver-etcd-client.key",
        "sa.key",
    ] {
        umask_like(key)?;
    }
    let mut tokens = String::new();
    for (_, user, groups) in USERS {
        let groups = if groups.is_empty() {
            String::new()
        } else {
            format!(",\"{groups}\"")
        };
        tokens.push_str(&format!("{},{user},{user}{groups}\n", random_token()?));
    }
    write_private(&pki.join("tokens.csv"), &tokens)
}

/// The bearer token of a component of [`USERS`], from this cluster's token file.
pub fn token(pki: &Path, component: &str) -> Result<String, String> {
    let user = USERS
        .iter()
        .find(|u| u.0 == component)
        .ok_or_else(|| format!("no user {component}"))?
        .1;
    std::fs::read_to_string(pki.join("tokens.csv"))
        .map_err(|e| e.to_string())?
        .lines()
        .find_map(|l| {
            let mut f = l.split(',');
            let token = f.next()?;
            (f.next()? == user).then(|| token.to_owned())
        })
        .ok_or_else(|| format!("no token for {user}"))
}

/// The API server's URL inside the node (on the bridge: pods reach it through the
/// `kubernetes` Service, the node's components directly).
pub fn api_url() -> String {
    format!("https://{NODE_IP}:{API_PORT}")
}

/// A kubeconfig for `component` of [`USERS`] talking to `server`, trusting our CA.
pub fn kubeconfig(pki: &Path, component: &str, server: &str) -> Result<String, String> {
    use base64::Engine;
    let ca = std::fs::read(pki.join("ca.crt")).map_err(|e| e.to_string())?;
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tracedapp-node\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {component}\n  user:\n    token: {}\ncontexts:\n- name: tracedapp-node\n  context: {{cluster: tracedapp-node, user: {component}, namespace: default}}\ncurrent-context: tracedapp-node\n",
        base64::engine::general_purpose::STANDARD.encode(ca),
        token(pki, component)?
    ))
}

/// containerd 1.6 with its own socket, root and state under `dir`, the CRI plugin, runc with
/// its own root, and the CNI configuration in `dir/cni`.
pub fn containerd(dir: &Path, sandbox_image: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"

[grpc]
  address = "{d}/run/containerd.sock"
[ttrpc]
  address = "{d}/run/containerd.sock.ttrpc"
[debug]
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # Pods' network namespaces under the state folder: the rig's own, by path.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  # This VM's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "{d}/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"#
    )
}

/// The CNI network: our bridge (whose address is the node IP and the pods' gateway),
/// host-local addresses from [`POD_CIDR`], no masquerade: pods reach only the bridge.
pub fn cni(dir: &Path) -> String {
    let (net, _) = POD_CIDR.split_once('/').expect("CIDR");
    let prefix = net.rsplit_once('.').expect("IPv4").0;
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "tracedapp",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_CIDR}", "rangeStart": "{prefix}.10", "rangeEnd": "{prefix}.250", "gateway": "{NODE_IP}"}}]],
        "routes": [{{"dst": "{POD_CIDR}"}}, {{"dst": "{SERVICE_CIDR}"}}],
        "dataDir": "{}/cni-ipam"
      }}
    }},
    {{"type": "loopback"}}
  ]
}}
"#,
        dir.display()
    )
}

/// The kubelet: cgroupfs (Debian's containerd 1.6 has no CRI RuntimeConfig call), cgroup v1
/// allowed, x509 + webhook authentication, cluster DNS on the bridge, pod logs in `dir`, no
/// image garbage collection (the imported images cannot be pulled again).
pub fn kubelet(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzPort: 0
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{d}/run/containerd.sock
imageServiceEndpoint: unix://{d}/run/containerd.sock
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {d}/pki/ca.crt}}
authorization: {{mode: Webhook}}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{NODE_IP}]
resolvConf: ""
podLogsDir: {d}/pod-logs
rotateCertificates: false
serializeImagePulls: true
registerNode: true
maxPods: 60
podPidsLimit: 1024
evictionHard: {{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enforceNodeAllocatable: ["pods"]
# The pods' cgroups under a root of the rig's own name, so teardown removes only those.
cgroupRoot: /{CGROUP_ROOT}
"#
    )
}

/// CoreDNS answering for the cluster domain (and its reverse zones) from the API server, on
/// the bridge address only. Nothing else is forwarded: no query leaves this machine.
pub fn corefile(dir: &Path, health_port: u16, ready_port: u16) -> String {
    format!(
        r#"{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {}/coredns.kubeconfig tracedapp-node
        pods insecure
    }}
    cache 5
}}
"#,
        dir.display()
    )
}

/// The cgroup (in every hierarchy) the kubelet puts the pods under.
pub const CGROUP_ROOT: &str = "tracedapp-node";

/// What kube-router's NetworkPolicy controller reads (it starts informers for all of these),
/// granted to its user.
pub const KUBE_ROUTER_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "tracedapp:kube-router"}
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, endpoints, nodes]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "tracedapp:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "tracedapp:kube-router"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "tracedapp:kube-router"}
"#;

/// What CoreDNS's kubernetes plugin reads, granted to its user.
pub const COREDNS_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "tracedapp:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "tracedapp:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "tracedapp:coredns"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "tracedapp:coredns"}
"#;

/// Pod Security admission enforcing `restricted` in every namespace but `kube-system`: a pod
/// that is not restricted is refused, so every pod that runs here is proof it is.
pub const ADMISSION: &str = r#"apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: restricted
        enforce-version: latest
        audit: restricted
        audit-version: latest
        warn: restricted
        warn-version: latest
      exemptions:
        namespaces: [kube-system]
"#;

#[cfg(test)]
mod tests {
    use super::super::NODE_NAME;
    use super::*;

    #[test]
    fn the_kubelet_user_is_the_node_user() {
        let kubelet = USERS.iter().find(|u| u.0 == "kubelet").unwrap();
        assert_eq!(kubelet.1, format!("system:node:{NODE_NAME}"));
    }
}
