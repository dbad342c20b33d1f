//! A bridge network in a sandbox: our bridge + host-local binaries, a
//! temporary host-local data dir, helpers to add and remove containers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cni_harness::{bins, Netns, PluginCall, PluginOutput, Sandbox};
use serde_json::{json, Value};

pub struct Net {
    pub sb: Sandbox,
    pub data_dir: PathBuf,
    /// The network config without `cniVersion` quirks: tests edit it freely.
    pub conf: Value,
    /// Which plugin binaries to run (ours, or the reference's in /usr/lib/cni).
    pub plugin_dir: PathBuf,
}

impl Net {
    /// A /24 IPv4 bridge network named `testnet` on bridge `cni0`.
    pub fn new(tag: &str) -> Net {
        Net::with_plugins(tag, bins::plugin_dir())
    }

    pub fn with_plugins(tag: &str, plugin_dir: PathBuf) -> Net {
        let sb = Sandbox::new(tag);
        let data_dir = std::env::temp_dir().join(format!("{}-ipam", sb.host().name()));
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "testnet",
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "dataDir": data_dir,
                "ranges": [[{"subnet": "10.88.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        });
        Net {
            sb,
            data_dir,
            conf,
            plugin_dir,
        }
    }

    pub fn bridge_bin(&self) -> PathBuf {
        let p = self.plugin_dir.join("bridge");
        assert!(p.is_file(), "{} missing", p.display());
        bins::bin("host-local");
        p
    }

    /// Adds a container namespace and returns its index.
    pub fn container(&mut self) -> usize {
        self.sb.add_container();
        self.sb.container_count() - 1
    }

    pub fn ns(&self, i: usize) -> &Netns {
        self.sb.container(i)
    }

    pub fn call(&self, cmd: &str, i: usize) -> PluginCall {
        PluginCall::new(self.bridge_bin(), cmd)
            .container(&format!("ctr{i}"), &self.ns(i).path(), "eth0")
            .config(&self.conf)
    }

    pub fn add(&self, i: usize) -> Value {
        self.call("ADD", i).run_in(self.sb.host()).result()
    }

    pub fn run(&self, call: PluginCall) -> PluginOutput {
        call.run_in(self.sb.host())
    }

    pub fn del(&self, i: usize) -> PluginOutput {
        self.call("DEL", i).run_in(self.sb.host())
    }

    pub fn check(&self, i: usize, prev: &Value) -> PluginOutput {
        let mut c = self.conf.clone();
        c["prevResult"] = prev.clone();
        self.call("CHECK", i).config(&c).run_in(self.sb.host())
    }

    /// Files host-local keeps for the network (sorted names).
    pub fn leases(&self) -> Vec<String> {
        let dir = self.data_dir.join("testnet");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Link names in the host namespace.
    pub fn host_links(&self) -> Vec<String> {
        link_names(self.sb.host())
    }

    /// The host namespace's nftables ruleset as text. Panics when `nft`
    /// fails: an empty listing must mean "no rules", never "no listing".
    pub fn nft_ruleset(&self) -> String {
        let out = self
            .sb
            .host_command("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft (Debian package nftables)");
        assert!(
            out.status.success(),
            "nft list ruleset failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The host namespace's iptables rules (`iptables-save`), for the
    /// reference plugins' datapath. Panics when iptables-save fails.
    pub fn iptables_rules(&self) -> String {
        let out = self
            .sb
            .host_command("iptables-save")
            .output()
            .expect("iptables-save (Debian package iptables)");
        assert!(
            out.status.success(),
            "iptables-save failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pings `ip` from container `i` (one packet, 2 s).
    pub fn ping(&self, i: usize, ip: &str) -> bool {
        self.ns(i)
            .command("ping")
            .args(["-c1", "-W2", ip])
            .output()
            .expect("ping (Debian package iputils-ping)")
            .status
            .success()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub fn link_names(ns: &Netns) -> Vec<String> {
    ns.ip_json(&["link", "show"])
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["ifname"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `ip -j addr show dev <ifname>` addresses as "a/len", link-local excluded.
pub fn addrs(ns: &Netns, ifname: &str) -> Vec<String> {
    let v = ns.ip_json(&["addr", "show", "dev", ifname]);
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["scope"] != "link")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

/// Routes as "dst via gw" strings (family 4 or 6), kernel-made routes excluded.
pub fn routes(ns: &Netns, family: &str) -> Vec<String> {
    let v = ns.ip_json(&[family, "route", "show"]);
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["protocol"] != "kernel")
                .map(|r| {
                    let gw = r["gateway"]
                        .as_str()
                        .map(|g| format!(" via {g}"))
                        .unwrap_or_default();
                    format!("{}{gw}", r["dst"].as_str().unwrap_or(""))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
