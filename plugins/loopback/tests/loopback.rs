//! The loopback plugin against real network namespaces.

use cni_harness::{Netns, PluginCall, Sandbox};
use serde_json::{json, Value};

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_loopback")
}

fn conf(version: &str) -> Value {
    json!({"cniVersion": version, "name": "lo-net", "type": "loopback"})
}

fn call(cmd: &str, ns: &Netns, version: &str) -> PluginCall {
    PluginCall::new(bin(), cmd)
        .container("ctr-1", &ns.path(), "lo")
        .config(&conf(version))
}

fn lo_is_up(ns: &Netns) -> bool {
    let link = ns.ip_json(&["link", "show", "lo"]);
    link[0]["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .any(|f| f == "UP")
}

#[test]
fn version_lists_every_supported_version() {
    let out = PluginCall::new(bin(), "VERSION").stdin("").run_here();
    let v = out.result();
    assert_eq!(v["supportedVersions"], json!(VERSIONS));
    for asked in VERSIONS {
        let out = PluginCall::new(bin(), "VERSION")
            .stdin(json!({"cniVersion": asked}).to_string())
            .run_here();
        assert_eq!(out.result()["cniVersion"], asked);
    }
}

#[test]
fn add_brings_lo_up_and_reports_it_at_every_version() {
    let mut sb = Sandbox::new("lo-add");
    for (i, version) in VERSIONS.into_iter().enumerate() {
        sb.add_container();
        let ns = sb.container(i);
        assert!(!lo_is_up(ns), "a new namespace starts with lo down");
        let r = call("ADD", ns, version).run_in(sb.host()).result();
        assert!(lo_is_up(ns), "{version}: lo is up after ADD");
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["name"], "lo");
        assert_eq!(r["interfaces"][0]["mac"], "00:00:00:00:00:00");
        assert_eq!(
            r["interfaces"][0]["sandbox"],
            ns.path().display().to_string()
        );
        assert_eq!(
            r["interfaces"][0].get("mtu").is_some(),
            version == "1.1.0",
            "{version}: mtu only from 1.1.0"
        );
        let ips = r["ips"].as_array().expect("ips");
        assert_eq!(ips[0]["address"], "127.0.0.1/8", "{version}");
        assert_eq!(ips[0]["interface"], 0);
        assert!(ips.iter().any(|ip| ip["address"] == "::1/128"), "{r}");
        let has_version = ips[0].get("version").is_some();
        assert_eq!(has_version, version < "1.0.0", "{version}");
    }
}

#[test]
fn check_passes_when_up_and_fails_when_down() {
    let mut sb = Sandbox::new("lo-check");
    sb.add_container();
    let ns = sb.container(0);
    let added = call("ADD", ns, "1.0.0").run_in(sb.host()).result();
    let mut check_conf = conf("1.0.0");
    check_conf["prevResult"] = added;
    let check = || {
        PluginCall::new(bin(), "CHECK")
            .container("ctr-1", &ns.path(), "lo")
            .config(&check_conf)
            .run_in(sb.host())
    };
    let out = check();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "", "CHECK prints nothing on success");
    ns.ip(&["link", "set", "lo", "down"]);
    let err = check().expect_error(102);
    assert!(err["msg"].as_str().unwrap().contains("down"));
}

#[test]
fn del_brings_lo_down_and_is_idempotent() {
    let mut sb = Sandbox::new("lo-del");
    sb.add_container();
    let ns = sb.container(0);
    call("ADD", ns, "1.0.0").run_in(sb.host()).result();
    assert!(lo_is_up(ns));
    for _ in 0..2 {
        let out = call("DEL", ns, "1.0.0").run_in(sb.host());
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, "");
        assert!(!lo_is_up(ns));
    }
}

#[test]
fn del_succeeds_when_the_namespace_is_gone_or_not_given() {
    let mut sb = Sandbox::new("lo-gone");
    sb.add_container();
    call("ADD", sb.container(0), "0.4.0")
        .run_in(sb.host())
        .result();
    let path = sb.container(0).path();
    sb.container_mut(0).delete();
    assert!(!path.exists());
    let out = PluginCall::new(bin(), "DEL")
        .container("ctr-1", &path, "lo")
        .config(&conf("0.4.0"))
        .run_in(sb.host());
    assert!(out.success(), "DEL with a deleted netns: {out:?}");
    let out = PluginCall::new(bin(), "DEL")
        .container("ctr-1", &path, "lo")
        .unset("CNI_NETNS")
        .config(&conf("1.0.0"))
        .run_in(sb.host());
    assert!(out.success(), "DEL without CNI_NETNS: {out:?}");
}

#[test]
fn chained_add_passes_prev_result_through() {
    let mut sb = Sandbox::new("lo-chain");
    sb.add_container();
    let ns = sb.container(0);
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:00:00:05", "sandbox": ns.path()}],
        "ips": [{"interface": 0, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}],
        "dns": {}
    });
    let mut c = conf("1.0.0");
    c["prevResult"] = prev.clone();
    let r = PluginCall::new(bin(), "ADD")
        .container("ctr-1", &ns.path(), "lo")
        .config(&c)
        .run_in(sb.host())
        .result();
    assert_eq!(r, prev);
    assert!(lo_is_up(ns));
}

#[test]
fn status_and_gc_succeed() {
    let sb = Sandbox::new("lo-status");
    for cmd in ["STATUS", "GC"] {
        let mut c = conf("1.1.0");
        c["cni.dev/valid-attachments"] = json!([]);
        let out = PluginCall::new(bin(), cmd)
            .env("CNI_CONTAINERID", "")
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "")
            .config(&c)
            .run_in(sb.host());
        assert!(out.success(), "{cmd}: {out:?}");
        assert_eq!(out.stdout, "");
    }
}

/// Every bad input gets the spec's error JSON and leaves `lo` down.
#[test]
fn bad_input_gets_the_right_code_and_changes_nothing() {
    let mut sb = Sandbox::new("lo-bad");
    sb.add_container();
    let ns = sb.container(0);
    let good = || call("ADD", ns, "1.0.0");
    let cases: Vec<(&str, PluginCall, u64)> = vec![
        (
            "missing CNI_CONTAINERID",
            good().unset("CNI_CONTAINERID"),
            4,
        ),
        (
            "empty CNI_CONTAINERID",
            good().env("CNI_CONTAINERID", ""),
            4,
        ),
        (
            "malformed CNI_CONTAINERID",
            good().env("CNI_CONTAINERID", "-bad id"),
            4,
        ),
        (
            "16-byte ifname",
            good().env("CNI_IFNAME", "abcdefghijklmnop"),
            4,
        ),
        ("ifname with /", good().env("CNI_IFNAME", "eth/0"), 4),
        ("missing CNI_NETNS", good().unset("CNI_NETNS"), 4),
        ("missing CNI_COMMAND", good().unset("CNI_COMMAND"), 4),
        (
            "malformed stdin",
            good().stdin("{\"cniVersion\": \"1.0.0\", "),
            6,
        ),
        ("empty stdin", good().stdin(""), 6),
        ("unsupported cniVersion", good().config(&conf("0.2.0")), 1),
        ("future cniVersion", good().config(&conf("9.0.0")), 1),
        (
            "no network name",
            good().config(&json!({"cniVersion": "1.0.0", "type": "loopback"})),
            7,
        ),
        (
            "netns that does not exist",
            good().env("CNI_NETNS", "/run/netns/cni-no-such-netns"),
            8,
        ),
    ];
    for (what, call, code) in cases {
        let out = call.run_in(sb.host());
        let err = out.expect_error(code);
        assert!(err["cniVersion"].is_string(), "{what}: {err}");
        assert!(!lo_is_up(ns), "{what}: lo must stay down");
    }
}

#[test]
fn refuses_its_own_namespace_unless_overridden() {
    let sb = Sandbox::new("lo-own");
    let host = sb.host();
    // The host sandbox's lo is up; a DEL aimed at the plugin's own netns
    // would take it down.
    assert!(lo_is_up(host));
    let out = call("DEL", host, "1.0.0").run_in(host);
    out.expect_error(8);
    assert!(lo_is_up(host), "own lo untouched");
    let out = call("DEL", host, "1.0.0")
        .env("CNI_NETNS_OVERRIDE", "1")
        .run_in(host);
    assert!(out.success(), "{out:?}");
    assert!(!lo_is_up(host), "override lets DEL act");
}
