//! Helpers for the nft integration tests: run library calls inside a sandbox
//! namespace, read our tables back with `nft -j list`, build small
//! topologies, and a TCP server that tells each client its source address.
#![allow(dead_code)]

use cni_harness::{require_tool, Netns};
use serde_json::Value;

/// Runs `f` on a thread inside `ns`: every `nft` the library spawns from
/// there acts on that namespace. Refuses to run if the thread did not leave
/// the test process's own namespace (the machine's ruleset stays untouched).
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    require_tool("nft", "nftables");
    let handle = netlink::Netns::open(ns.path()).expect("open sandbox netns");
    handle
        .run_in(|| {
            let here = netlink::Netns::current().expect("current netns");
            let process = netlink::Netns::open("/proc/self/ns/net").expect("process netns");
            assert!(
                !here.same_as(&process),
                "refusing to run nft outside the sandbox namespace"
            );
            f()
        })
        .expect("enter sandbox netns")
}

/// `nft -j list table <family> <table>` inside `ns`; None when absent.
pub fn list_table(ns: &Netns, family: &str, table: &str) -> Option<Value> {
    let out = ns
        .command("nft")
        .args(["-j", "list", "table", family, table])
        .output()
        .expect("run nft list");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No such file or directory"),
            "nft list failed: {err}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("nft JSON"))
}

/// Objects of one kind (`chain`, `rule`, `map`) in a listing.
pub fn objects<'a>(doc: &'a Value, kind: &str) -> Vec<&'a Value> {
    doc["nftables"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o.get(kind)).collect())
        .unwrap_or_default()
}

pub fn chain_names(doc: &Value) -> Vec<String> {
    objects(doc, "chain")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn rules_in<'a>(doc: &'a Value, chain: &str) -> Vec<&'a Value> {
    objects(doc, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain)
        .collect()
}

/// `(key, target chain, comment)` of every element of `map`.
pub fn map_elems(doc: &Value, map: &str) -> Vec<(Value, String, Option<String>)> {
    let Some(m) = objects(doc, "map").into_iter().find(|m| m["name"] == map) else {
        return Vec::new();
    };
    m["elem"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|pair| {
                    let (key, comment) = match pair[0].get("elem") {
                        Some(e) => (e["val"].clone(), e["comment"].as_str().map(String::from)),
                        None => (pair[0].clone(), None),
                    };
                    let target = pair[1]["jump"]["target"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    (key, target, comment)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `nft <args>` inside `ns` (for tampering in tests), panics on failure.
pub fn nft(ns: &Netns, args: &[&str]) {
    let out = ns.command("nft").args(args).output().expect("run nft");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sysctl(ns: &Netns, key: &str, value: &str) {
    let handle = netlink::Netns::open(ns.path()).expect("open netns");
    netlink::Sysctl::write(&handle, key, value).expect("write sysctl");
}

/// A veth pair: `host_end` in `host`, `peer` (named `peer_name`) in `other`,
/// both up, `other`'s lo up too.
pub fn veth(host: &Netns, host_end: &str, other: &Netns, peer_name: &str) {
    host.veth_to(host_end, other, peer_name);
}
