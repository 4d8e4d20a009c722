//! The node's own network namespace, as a kind node container has: the bridge, the pod and
//! Service ranges, the node IP, every iptables rule and ipset of kube-proxy and kube-router
//! exist only inside it. The host's namespace never sees an address outside 127.0.0.0/8: the
//! host reaches the API server, NodePorts and pods only through 127.0.0.1 forwards
//! ([`forward`]), whose other end is opened inside the namespace.
//!
//! Expected flow: [`create`] → components started with [`command`] (`nsenter --net`, which
//! changes nothing but the network namespace: they share the host's mounts, so the kubelet's
//! volume mounts are containerd's too) → [`dial`] / [`forward`] for readiness checks and tests
//! → [`delete`], which takes the bridge, routes, rules and sets with it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{BRIDGE, NODE_IP, POD_CIDR, SERVICE_CIDR};

/// The namespace's name (`ip netns`): the rig's own, so teardown knows what is its to remove.
pub const NETNS: &str = "tracedapp-node";

/// Its handle (a bind mount made by `ip netns add`).
pub fn path() -> PathBuf {
    PathBuf::from("/run/netns").join(NETNS)
}

/// Whether it exists.
pub fn exists() -> bool {
    path().exists()
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the namespace with its loopback up, the bridge (whose address is the node IP), the
/// Service range routed into the bridge, and the sysctls the pod network needs — all inside
/// the namespace (these sysctls are per namespace).
pub fn create() -> Result<(), String> {
    ip(&["netns", "add", NETNS])?;
    let inside = |args: &[&str]| {
        let mut all = vec!["-n", NETNS];
        all.extend_from_slice(args);
        ip(&all)
    };
    inside(&["link", "set", "lo", "up"])?;
    inside(&["link", "add", BRIDGE, "type", "bridge"])?;
    let prefix = POD_CIDR.split_once('/').expect("CIDR").1;
    inside(&["addr", "add", &format!("{NODE_IP}/{prefix}"), "dev", BRIDGE])?;
    inside(&["link", "set", BRIDGE, "up"])?;
    inside(&["route", "add", SERVICE_CIDR, "dev", BRIDGE])?;
    // Pods reach Services on the same bridge only if bridged traffic passes iptables (and
    // kube-router's NetworkPolicy rules see it).
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ] {
        let out = command("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")])
            .output()
            .map_err(|e| format!("sysctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sysctl {key}={value} in {NETNS}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Deletes the namespace (once no process is left in it, everything in it is gone: links,
/// routes, iptables rules, ipsets, conntrack entries).
pub fn delete() {
    if exists() {
        let _ = ip(&["netns", "delete", NETNS]);
    }
}

/// `program` run inside the namespace. `nsenter` execs it in place: the PID is the program's.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path().display()))
        .arg("--")
        .arg(program);
    cmd
}

/// The network-namespace identity of a process (`/proc/<pid>/ns/net`'s inode), if readable.
pub fn of_process(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The namespace's identity (the inode behind its handle), while it exists.
pub fn identity() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path()).ok().map(|m| m.ino())
}

/// A connection request for the dialer thread.
type Dial = (SocketAddr, Sender<std::io::Result<TcpStream>>);

/// The thread that opens connections inside the namespace: it joins the namespace once
/// (`setns` affects the calling thread only) and connects on request. A socket keeps the
/// namespace it was made in, so the stream it hands back works from any thread.
fn dialer() -> Result<Sender<Dial>, String> {
    static DIALER: OnceLock<Mutex<Option<Sender<Dial>>>> = OnceLock::new();
    let slot = DIALER.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().map_err(|_| "the dialer lock".to_owned())?;
    if let Some(tx) = slot.as_ref() {
        return Ok(tx.clone());
    }
    let handle = std::fs::File::open(path()).map_err(|e| format!("{}: {e}", path().display()))?;
    let (tx, rx) = channel::<Dial>();
    let (ready_tx, ready_rx) = channel();
    std::thread::Builder::new()
        .name("netns-dialer".into())
        .spawn(move || {
            let joined = nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET);
            let _ = ready_tx.send(joined.map_err(|e| e.to_string()));
            if joined.is_err() {
                return;
            }
            for (addr, reply) in rx {
                let _ = reply.send(TcpStream::connect_timeout(&addr, Duration::from_secs(5)));
            }
        })
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("joining {NETNS}: {e}"))?;
    *slot = Some(tx.clone());
    Ok(tx)
}

/// A TCP connection to `addr` inside the namespace.
pub fn dial(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let tx = dialer().map_err(std::io::Error::other)?;
    let (reply_tx, reply_rx) = channel();
    tx.send((addr, reply_tx))
        .map_err(|_| std::io::Error::other("the dialer stopped"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the dialer stopped"))?
}

/// `GET path` over plain HTTP to `addr` inside the namespace: the status, if it answered.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = dial(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A listener on the host's 127.0.0.1 whose connections are forwarded to a target inside the
/// namespace; it serves until the process ends.
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    /// Where the host connects (127.0.0.1).
    pub local: SocketAddr,
    /// Where that lands, inside the namespace.
    pub target: SocketAddr,
}

/// Forwards `127.0.0.1:<local_port>` (0: a free port) to `target` inside the namespace.
pub fn forward(local_port: u16, target: SocketAddr) -> std::io::Result<Forward> {
    dialer().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", local_port))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name(format!("forward-{}", local.port()))
        .spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Ok(upstream) = dial(target) {
                        splice(client, upstream);
                    }
                });
            }
        })?;
    Ok(Forward { local, target })
}

/// Copies both ways until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let (mut a, mut b) = (a, b);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// A listener inside the namespace on the node IP (a free port) whose connections are
/// forwarded to `target` on the host's loopback: how pods reach a program a test runs on
/// 127.0.0.1 (a stand-in for an AWS endpoint). It serves until the process ends.
pub fn expose(target: SocketAddr) -> std::io::Result<SocketAddr> {
    let handle = std::fs::File::open(path())?;
    let listener = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::other)?;
            TcpListener::bind((super::NODE_IP, 0))
        })
        .join()
        .map_err(|_| std::io::Error::other("the binding thread panicked"))?
    })?;
    let inside = listener.local_addr()?;
    std::thread::Builder::new()
        .name(format!("expose-{}", inside.port()))
        .spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Ok(upstream) =
                        TcpStream::connect_timeout(&target, Duration::from_secs(5))
                    {
                        splice(client, upstream);
                    }
                });
            }
        })?;
    Ok(inside)
}

/// Serves `pairs` of `(local port, target)` forever (the body of a detached forwarder
/// process, for `cargo xtask cluster up`).
pub fn serve_forever(pairs: &[(u16, SocketAddr)]) -> Result<(), String> {
    for (port, target) in pairs {
        forward(*port, *target).map_err(|e| format!("127.0.0.1:{port} → {target}: {e}"))?;
    }
    loop {
        std::thread::park();
    }
}

/// A TCP connection to `addr` from inside another network namespace (`ns`: a pod's, e.g.
/// `/proc/<pid>/ns/net`), within `timeout`: what that pod would get.
pub fn connect_from(
    ns: &std::path::Path,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let handle = std::fs::File::open(ns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::other)?;
            TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
    })
}

/// `GET path` over plain HTTP to `addr` from inside another network namespace (`ns`, as in
/// [`connect_from`]): the body, if it answered 200.
pub fn http_get_from(
    ns: &std::path::Path,
    addr: SocketAddr,
    path: &str,
) -> std::io::Result<String> {
    let mut s = connect_from(ns, addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    if head.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "{addr}{path}: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_owned())
}
