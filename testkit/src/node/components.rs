//! Starting the components in order, each waited for: containerd, etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, the kubelet, kube-proxy, CoreDNS; then the images.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

impl Cluster {
    pub(super) fn start_components(&mut self, images: &[PathBuf]) -> Result<()> {
        let d = self.dir.clone();
        let p = |f: &str| d.join(f).display().to_string();
        let t0 = Instant::now();

        let mut containerd = Command::new("containerd");
        containerd.arg(format!("--config={}", p("containerd.toml")));
        self.spawn("containerd", containerd)?;
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

        let etcd_port = crate::free_port();
        let peer_port = crate::free_port();
        let etcd = crate::kube::etcd_command(&d.join("etcd"), etcd_port, peer_port);
        self.spawn("etcd", etcd)?;
        self.wait("etcd", "etcd", Duration::from_secs(30), |_| {
            crate::process::listening(etcd_port)
        })?;

        let pki = |f: &str| d.join("pki").join(f).display().to_string();
        let mut api = Command::new(tools::kube_apiserver());
        api.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--bind-address={NODE_IP}"))
            .arg(format!("--advertise-address={NODE_IP}"))
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
        self.spawn("kube-apiserver", api)?;
        self.wait(
            "kube-apiserver /readyz",
            "kube-apiserver",
            Duration::from_secs(90),
            |c| c.kubectl(&["get", "--raw=/readyz"]).status.success(),
        )?;
        self.log(&format!("control plane up ({:.1?})", t0.elapsed()));

        let mut kcm = Command::new(tools::kube_controller_manager());
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
        self.spawn("kube-controller-manager", kcm)?;
        let mut scheduler = Command::new(tools::kubernetes("kube-scheduler"));
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
        self.spawn("kube-scheduler", scheduler)?;

        import
            .join()
            .map_err(|_| "the image import panicked".to_owned())??;
        self.log(&format!(
            "{} images imported ({:.1?})",
            images.len(),
            t0.elapsed()
        ));

        let mut kubelet = Command::new(tools::kubernetes("kubelet"));
        kubelet
            .arg(format!("--config={}", p("kubelet.yaml")))
            .arg(format!("--kubeconfig={}", kc("kubelet")))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={NODE_IP}"))
            .arg(format!("--root-dir={}", p("kubelet")))
            .arg(format!("--cert-dir={}", p("kubelet/pki")));
        self.spawn("kubelet", kubelet)?;
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

        let (metrics, health) = (crate::free_port(), crate::free_port());
        let mut proxy = Command::new(tools::kubernetes("kube-proxy"));
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
        self.spawn("kube-proxy", proxy)?;
        self.wait(
            "kube-proxy /healthz",
            "kube-proxy",
            Duration::from_secs(60),
            |_| http_ok(health, "/healthz"),
        )?;

        self.kubectl_stdin(&["apply", "-f", "-"], config::COREDNS_RBAC)?;
        let (dns_health, dns_ready) = (crate::free_port(), crate::free_port());
        std::fs::write(
            d.join("Corefile"),
            config::corefile(&d, dns_health, dns_ready),
        )
        .map_err(|e| e.to_string())?;
        let mut coredns = Command::new(tools::coredns());
        coredns.arg("-conf").arg(d.join("Corefile"));
        self.spawn("coredns", coredns)?;
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
