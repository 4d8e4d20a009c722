//! Starting the components in order, each inside the node's network namespace and waited for:
//! containerd, etcd, kube-apiserver (and its 127.0.0.1 forward for the host), the
//! kube-controller-manager, kube-scheduler, the kubelet, kube-proxy, kube-router (NetworkPolicy
//! only), CoreDNS; the images are imported meanwhile.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

impl Cluster {
    pub(super) fn start_components(&mut self, images: &[PathBuf]) -> Result<()> {
        let d = self.dir.clone();
        let p = |f: &str| d.join(f).display().to_string();
        let t0 = Instant::now();

        let mut containerd = netns::command("/usr/bin/containerd");
        containerd.arg(format!("--config={}", p("containerd.toml")));
        self.spawn("containerd", "/usr/bin/containerd".into(), containerd)?;
        self.wait("containerd", "containerd", Duration::from_secs(30), |c| {
            c.ctr(&["version"]).is_ok()
        })?;
        // Import while the control plane starts.
        let import = {
            let sock = d.join("run/containerd.sock");
            let images = images.to_vec();
            std::thread::spawn(move || -> Result<()> {
                for image in &images {
                    ctr_at(
                        &sock,
                        &["images", "import", "--all-platforms", &path(image)],
                    )
                    .map_err(|e| format!("importing {}: {e}", image.display()))?;
                }
                Ok(())
            })
        };

        // etcd on the namespace's loopback, for clients with a certificate from our CA only.
        let (etcd_port, peer_port) = (ETCD_PORT, ETCD_PORT + 1);
        let pki = |f: &str| d.join("pki").join(f).display().to_string();
        let mut etcd = netns::command(tools::etcd());
        let client_url = format!("https://127.0.0.1:{etcd_port}");
        etcd.arg(format!("--data-dir={}", p("etcd")))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!("--cert-file={}", pki("etcd.crt")))
            .arg(format!("--key-file={}", pki("etcd.key")))
            .arg(format!("--trusted-ca-file={}", pki("ca.crt")))
            .arg("--client-cert-auth")
            .args(["--unsafe-no-fsync", "--log-level=warn"]);
        self.spawn("etcd", tools::etcd(), etcd)?;
        self.wait("etcd", "etcd", Duration::from_secs(30), |_| {
            netns::dial(([127, 0, 0, 1], etcd_port).into()).is_ok()
        })?;

        let mut api = netns::command(tools::kube_apiserver());
        api.arg(format!("--etcd-servers={client_url}"))
            .arg(format!("--etcd-cafile={}", pki("ca.crt")))
            .arg(format!(
                "--etcd-certfile={}",
                pki("apiserver-etcd-client.crt")
            ))
            .arg(format!(
                "--etcd-keyfile={}",
                pki("apiserver-etcd-client.key")
            ))
            // The node's IP (pods, components) and its loopback (the host's forward).
            .arg("--bind-address=0.0.0.0")
            .arg(format!("--advertise-address={NODE_IP}"))
            .arg("--anonymous-auth=false")
            .arg(format!("--secure-port={API_PORT}"))
            .arg(format!("--tls-cert-file={}", pki("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", pki("apiserver.key")))
            .arg(format!("--client-ca-file={}", pki("ca.crt")))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--authorization-mode=Node,RBAC")
            .arg("--enable-admission-plugins=NodeRestriction")
            .arg(format!(
                "--admission-control-config-file={}",
                p("admission.yaml")
            ))
            .arg(format!("--token-auth-file={}", pki("tokens.csv")))
            .arg(format!(
                "--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}"
            ))
            .arg(format!("--service-account-key-file={}", pki("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki("sa.key")
            ))
            .arg(format!(
                "--kubelet-client-certificate={}",
                pki("kubelet-client.crt")
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                pki("kubelet-client.key")
            ))
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg("--allow-privileged=false");
        self.spawn("kube-apiserver", tools::kube_apiserver(), api)?;
        // The host reaches the API server only through this forward, and only with the
        // admin kubeconfig (0600), whose server it is.
        let forward = netns::forward(self.api_port, ([127, 0, 0, 1], API_PORT).into())
            .map_err(|e| format!("forwarding the API server: {e}"))?;
        self.write_admin_kubeconfig(&format!("https://{}", forward.local))?;
        self.wait(
            "kube-apiserver /readyz",
            "kube-apiserver",
            Duration::from_secs(90),
            |c| c.kubectl(&["get", "--raw=/readyz"]).status.success(),
        )?;
        self.log(&format!("control plane up ({:.1?})", t0.elapsed()));

        let mut kcm = netns::command(tools::kube_controller_manager());
        let kc = |c: &str| p(&format!("{c}.kubeconfig"));
        kcm.arg(format!("--kubeconfig={}", kc("kube-controller-manager")))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kc("kube-controller-manager")
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kc("kube-controller-manager")
            ))
            .args(["--leader-elect=false", "--secure-port=0"])
            .arg("--use-service-account-credentials=true")
            .arg(format!("--root-ca-file={}", pki("ca.crt")))
            .arg(format!(
                "--service-account-private-key-file={}",
                pki("sa.key")
            ))
            .arg("--concurrent-gc-syncs=5");
        self.spawn(
            "kube-controller-manager",
            tools::kube_controller_manager(),
            kcm,
        )?;
        let mut scheduler = netns::command(tools::kubernetes("kube-scheduler"));
        scheduler
            .arg(format!("--kubeconfig={}", kc("kube-scheduler")))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kc("kube-scheduler")
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kc("kube-scheduler")
            ))
            .args(["--leader-elect=false", "--secure-port=0"]);
        self.spawn(
            "kube-scheduler",
            tools::kubernetes("kube-scheduler"),
            scheduler,
        )?;

        import
            .join()
            .map_err(|_| "the image import panicked".to_owned())??;
        self.log(&format!(
            "{} images imported ({:.1?})",
            images.len(),
            t0.elapsed()
        ));

        make_cgroup_root()?;
        let mut kubelet = netns::command(tools::kubernetes("kubelet"));
        kubelet
            .arg(format!("--config={}", p("kubelet.yaml")))
            .arg(format!("--kubeconfig={}", kc("kubelet")))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={NODE_IP}"))
            .arg(format!("--root-dir={}", p("kubelet")))
            .arg(format!("--cert-dir={}", p("kubelet/pki")));
        self.spawn("kubelet", tools::kubernetes("kubelet"), kubelet)?;
        self.wait(
            "the node to be Ready",
            "kubelet",
            Duration::from_secs(90),
            |c| {
                c.kubectl(&[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o=jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .stdout
                    == b"True"
            },
        )?;
        self.log(&format!("node Ready ({:.1?})", t0.elapsed()));

        let (metrics, health) = (free_port_in_node(), free_port_in_node());
        let mut proxy = netns::command(tools::kubernetes("kube-proxy"));
        proxy
            .arg(format!("--kubeconfig={}", kc("kube-proxy")))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--cluster-cidr={POD_CIDR}"))
            .arg("--proxy-mode=iptables")
            // 0: leave the host's conntrack settings alone.
            .args([
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
            ])
            .arg(format!("--nodeport-addresses={NODE_IP}/32"))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics}"))
            .arg(format!("--healthz-bind-address=127.0.0.1:{health}"));
        self.spawn("kube-proxy", tools::kubernetes("kube-proxy"), proxy)?;
        self.wait(
            "kube-proxy /healthz",
            "kube-proxy",
            Duration::from_secs(60),
            |_| http_ok(health, "/healthz"),
        )?;

        // NetworkPolicy: kube-router's policy controller alone (no routing, no service proxy:
        // kube-proxy does that), with iptables and ipset in the node's namespace.
        self.kubectl_stdin(&["apply", "-f", "-"], config::KUBE_ROUTER_RBAC)?;
        let router_health = free_port_in_node();
        let mut router = netns::command(tools::kube_router());
        router
            .arg(format!("--kubeconfig={}", kc("kube-router")))
            .args([
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--metrics-port=0",
            ])
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg(format!("--health-port={router_health}"));
        self.spawn("kube-router", tools::kube_router(), router)?;
        self.wait(
            "kube-router /healthz",
            "kube-router",
            Duration::from_secs(60),
            |_| http_ok(router_health, "/healthz"),
        )?;

        self.kubectl_stdin(&["apply", "-f", "-"], config::COREDNS_RBAC)?;
        let (dns_health, dns_ready) = (free_port_in_node(), free_port_in_node());
        std::fs::write(
            d.join("Corefile"),
            config::corefile(&d, dns_health, dns_ready),
        )
        .map_err(|e| e.to_string())?;
        let mut coredns = netns::command(tools::coredns());
        coredns.arg("-conf").arg(d.join("Corefile"));
        self.spawn("coredns", tools::coredns(), coredns)?;
        self.wait("CoreDNS /ready", "coredns", Duration::from_secs(60), |_| {
            http_ok(dns_ready, "/ready")
        })?;
        self.wait(
            "the default ServiceAccount",
            "kube-controller-manager",
            Duration::from_secs(60),
            |c| {
                c.kubectl(&["get", "serviceaccount", "default"])
                    .status
                    .success()
            },
        )?;
        Ok(())
    }
}

/// etcd's client port on the node's loopback (its peer port is the next one). The node's
/// namespace is the rig's own: no other program there takes these.
const ETCD_PORT: u16 = 2379;

/// A port for a component's health or metrics endpoint on the node's loopback: free, since
/// the namespace holds only the rig's components (a counter avoids repeats).
fn free_port_in_node() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(20_000);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The pods' cgroup root ([`config::CGROUP_ROOT`]) in every hierarchy: the kubelet wants it
/// to exist. In cgroup v1, a new cpuset starts with no CPUs or memory nodes: it gets its
/// parent's.
fn make_cgroup_root() -> Result<()> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut hierarchies: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect();
    if root.join("cgroup.controllers").exists() {
        // cgroup v2: one unified hierarchy.
        hierarchies = vec![root.to_path_buf()];
    }
    for h in hierarchies {
        let dir = h.join(config::CGROUP_ROOT);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(parent) = std::fs::read_to_string(h.join(file)) {
                std::fs::write(dir.join(file), parent.trim())
                    .map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}
