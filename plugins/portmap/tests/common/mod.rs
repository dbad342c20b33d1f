//! A node in a sandbox for the portmap tests, and small TCP/UDP servers that
//! tell each client the source address they saw.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cni_harness::{require_tool, Netns, Sandbox};
use serde_json::{json, Value};

pub fn sysctl(ns: &Netns, key: &str, value: &str) {
    let handle = netlink::Netns::open(ns.path()).expect("open netns");
    netlink::Sysctl::write(&handle, key, value).expect("write sysctl");
}

pub fn read_sysctl(ns: &Netns, key: &str) -> String {
    let handle = netlink::Netns::open(ns.path()).expect("open netns");
    netlink::Sysctl::read(&handle, key).expect("read sysctl")
}

/// A veth pair: `host_end` in `host`, `peer` (named `peer_name`) in `other`,
/// both up, `other`'s lo up too.
pub fn veth(host: &Netns, host_end: &str, other: &Netns, peer_name: &str) {
    host.veth_to(host_end, other, peer_name);
}

/// The sandbox laid out as a small node:
///
/// ```text
///  client (container 1)            host (sandbox host netns)           containers 0 and 2
///  eth0 192.0.2.2/24   <-veth->  up0 192.0.2.1/24, 192.0.2.3/24
///       fd99::2/64                   fd99::1/64
///                                br0 10.88.0.1/24 fd88::1/64  <-veth vh0-> ctr  eth0 10.88.0.5/24 fd88::5/64
///                                                             <-veth vh2-> peer eth0 10.88.0.6/24 fd88::6/64
/// ```
/// Forwarding is on in the host; the client has no route to 10.88.0.0/24, so
/// it can only reach the containers through DNAT. The container ports are in
/// hairpin mode.
pub struct Node {
    pub sb: Sandbox,
}

pub const CTR: usize = 0;
pub const CLIENT: usize = 1;
pub const PEER: usize = 2;

impl Node {
    pub fn new(tag: &str) -> Node {
        require_tool("nft", "nftables");
        let mut sb = Sandbox::new(tag);
        for _ in 0..3 {
            sb.add_container();
        }
        let host = sb.host();
        host.ip(&["link", "add", "br0", "type", "bridge"]);
        host.ip(&["addr", "add", "10.88.0.1/24", "dev", "br0"]);
        host.ip(&["addr", "add", "fd88::1/64", "dev", "br0", "nodad"]);
        host.ip(&["link", "set", "br0", "up"]);
        for (i, n) in [(CTR, 5), (PEER, 6)] {
            let c = sb.container(i);
            let hv = format!("vh{i}");
            veth(host, &hv, c, "eth0");
            host.ip(&["link", "set", &hv, "master", "br0"]);
            // As the bridge plugin's `hairpinMode`: with br_netfilter the
            // DNATed hairpin packet is bridged back out of the port it came
            // in on, which the bridge only does in hairpin mode.
            host.ip(&["link", "set", &hv, "type", "bridge_slave", "hairpin", "on"]);
            c.ip(&["addr", "add", &format!("10.88.0.{n}/24"), "dev", "eth0"]);
            c.ip(&[
                "addr",
                "add",
                &format!("fd88::{n}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            c.ip(&["route", "add", "default", "via", "10.88.0.1"]);
            c.ip(&["-6", "route", "add", "default", "via", "fd88::1"]);
        }
        let client = sb.container(CLIENT);
        veth(host, "up0", client, "eth0");
        host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
        host.ip(&["addr", "add", "192.0.2.3/24", "dev", "up0"]);
        host.ip(&["addr", "add", "fd99::1/64", "dev", "up0", "nodad"]);
        client.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        client.ip(&["addr", "add", "fd99::2/64", "dev", "eth0", "nodad"]);
        client.ip(&["route", "add", "default", "via", "192.0.2.1"]);
        client.ip(&["-6", "route", "add", "default", "via", "fd99::1"]);
        sysctl(host, "net.ipv4.ip_forward", "1");
        sysctl(host, "net.ipv6.conf.all.forwarding", "1");
        Node { sb }
    }

    pub fn host(&self) -> &Netns {
        self.sb.host()
    }
    pub fn ctr(&self) -> &Netns {
        self.sb.container(CTR)
    }
    pub fn client(&self) -> &Netns {
        self.sb.container(CLIENT)
    }
    pub fn peer(&self) -> &Netns {
        self.sb.container(PEER)
    }

    /// The bridge plugin's result for container `i` (0: .5, 2: .6), v4 only
    /// or dual-stack.
    pub fn prev_result(&self, i: usize, dual_stack: bool) -> Value {
        let n = if i == CTR { 5 } else { 6 };
        let mut ips = vec![
            json!({"interface": 2, "address": format!("10.88.0.{n}/24"), "gateway": "10.88.0.1"}),
        ];
        if dual_stack {
            ips.push(
                json!({"interface": 2, "address": format!("fd88::{n}/64"), "gateway": "fd88::1"}),
            );
        }
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "br0", "mac": "0a:58:0a:58:00:01"},
                {"name": format!("vh{i}"), "mac": "0a:58:0a:58:00:02"},
                {"name": "eth0", "mac": "0a:58:0a:58:00:03", "sandbox": self.sb.container(i).path()}
            ],
            "ips": ips,
            "dns": {}
        })
    }

    pub fn nft_list(&self) -> Option<Value> {
        let out = self
            .host()
            .command("nft")
            .args(["-j", "list", "table", "inet", "cni_portmap"])
            .output()
            .expect("run nft");
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("nft JSON"))
    }

    /// Runs `nft <args>` in the host namespace (to tamper with our rules).
    pub fn nft(&self, args: &[&str]) {
        let out = self
            .host()
            .command("nft")
            .args(args)
            .output()
            .expect("run nft");
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    netlink::Netns::open(ns.path())
        .expect("open netns")
        .run_in(f)
        .expect("enter netns")
}

/// A server in a namespace answering every client with the source address it
/// saw (TCP: written then closed; UDP: sent back). Stopped on drop.
pub struct PeerServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    pub fn tcp(ns: &Netns, bind: &str) -> PeerServer {
        let bind: SocketAddr = bind.parse().expect("bind address");
        let listener =
            in_ns(ns, || TcpListener::bind(bind)).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        PeerServer::spawn(addr, move |stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    }

    pub fn udp(ns: &Netns, bind: &str) -> PeerServer {
        let bind: SocketAddr = bind.parse().expect("bind address");
        let sock =
            in_ns(ns, || UdpSocket::bind(bind)).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        PeerServer::spawn(addr, move |stop| {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        })
    }

    fn spawn(addr: SocketAddr, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> PeerServer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || body(flag));
        PeerServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TCP exchange from inside `ns`: the source address the server saw, or
/// why it failed.
pub fn tcp_ask(ns: &Netns, to: &str) -> Result<String, String> {
    let to: SocketAddr = to.parse().expect("address");
    in_ns(ns, || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(1500))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(|e| format!("read from {to}: {e}"))?;
        Ok(out)
    })
}

/// `tcp_ask`, retried for up to 5 s (neighbour discovery on fresh links).
pub fn tcp_ask_eventually(ns: &Netns, to: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tcp_ask(ns, to) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One UDP request/answer from inside `ns`, retried a few times.
pub fn udp_ask(ns: &Netns, to: &str) -> Result<String, String> {
    let to: SocketAddr = to.parse().expect("address");
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    in_ns(ns, || {
        let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        for _ in 0..6 {
            sock.send_to(b"?", to)
                .map_err(|e| format!("send to {to}: {e}"))?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err(format!("no UDP answer from {to}"))
    })
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
