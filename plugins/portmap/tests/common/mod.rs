//! A node in a sandbox for the portmap tests, and small TCP/UDP servers that
//! tell each client the source address they saw.
#![allow(dead_code)]

use std::path::Path;

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

    /// `nft -j list table inet cni_portmap` in the host namespace; None only
    /// when the table does not exist. Any other failure of `nft` (not
    /// installed, no permission, a bad command) panics, so "nothing
    /// installed" is never concluded from a listing that did not happen.
    pub fn nft_list(&self) -> Option<Value> {
        let out = self
            .host()
            .command("nft")
            .args(["-j", "list", "table", "inet", "cni_portmap"])
            .output()
            .expect("run nft");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("No such file or directory"),
                "nft list failed ({}): {err}",
                out.status
            );
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

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
