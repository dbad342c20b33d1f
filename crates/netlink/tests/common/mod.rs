//! Helpers shared by the integration tests. Every kernel change happens in a
//! `cni_harness::Sandbox` namespace; the machine's own namespace is only read.
#![allow(dead_code)]

use cni_harness::Netns as SandboxNs;
use netlink::{Netlink, Netns};

/// Opens the sandbox namespace and a netlink socket inside it.
pub fn connect(ns: &SandboxNs) -> (Netns, Netlink) {
    let handle = Netns::open(ns.path()).expect("open sandbox netns");
    let nl = Netlink::connect(&handle).expect("connect to sandbox netns");
    (handle, nl)
}

/// `ip -n <ns> -d -j link show dev <name>`, the one entry.
pub fn ip_link(ns: &SandboxNs, name: &str) -> serde_json::Value {
    let v = ns.ip_json(&["-d", "link", "show", "dev", name]);
    v.get(0)
        .cloned()
        .unwrap_or_else(|| panic!("no link {name} in {}: {v}", ns.name()))
}

/// Names of all links in the namespace, as `ip` sees them.
pub fn ip_link_names(ns: &SandboxNs) -> Vec<String> {
    ns.ip_json(&["link", "show"])
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_string())
        .collect()
}

pub fn mac(s: &str) -> [u8; 6] {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex"))
        .collect();
    parts.try_into().expect("6 bytes")
}

pub fn net(s: &str) -> netlink::IpNetwork {
    s.parse().expect("cidr")
}

pub fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("ip")
}
