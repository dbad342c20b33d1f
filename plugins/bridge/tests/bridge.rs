//! The bridge plugin with host-local, against real kernel state in throwaway
//! namespaces.

mod common;

use common::{addrs, link_names, routes, Net};
use serde_json::{json, Value};

#[test]
fn add_result_lists_bridge_host_veth_and_container_interface() {
    let mut net = Net::new("br-result");
    let c = net.container();
    let r = net.add(c);
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{r}");
    assert_eq!(ifs[0]["name"], "cni0");
    assert!(ifs[0].get("sandbox").is_none());
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"));
    assert!(ifs[1].get("sandbox").is_none());
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], net.ns(c).path().display().to_string());
    assert_eq!(r["ips"][0]["interface"], 2);
    assert_eq!(r["ips"][0]["address"], "10.88.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.88.0.1");
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
    // The container has its address and a default route via the gateway.
    assert_eq!(addrs(net.ns(c), "eth0"), ["10.88.0.2/24"]);
    assert_eq!(routes(net.ns(c), "-4"), ["default via 10.88.0.1"]);
    // The gateway sits on the bridge; the host veth is a port of it.
    assert_eq!(addrs(net.sb.host(), "cni0"), ["10.88.0.1/24"]);
    let veth = ifs[1]["name"].as_str().unwrap();
    let port = net.sb.host().ip_json(&["link", "show", veth]);
    assert_eq!(port[0]["master"], "cni0");
    // The container MAC in the result is the kernel's.
    let eth0 = net.ns(c).ip_json(&["link", "show", "eth0"]);
    assert_eq!(ifs[2]["mac"], eth0[0]["address"]);
    // The peer never appeared on the host under the container's name.
    assert!(!net.host_links().contains(&"eth0".to_string()));
}

#[test]
fn two_containers_on_one_bridge_reach_each_other() {
    let mut net = Net::new("br-ping");
    let a = net.container();
    let b = net.container();
    let ra = net.add(a);
    let rb = net.add(b);
    let ip_a = ra["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let ip_b = rb["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(ip_a, ip_b);
    assert!(net.ping(a, &ip_b), "a -> b");
    assert!(net.ping(b, &ip_a), "b -> a");
    assert!(net.ping(a, "10.88.0.1"), "a -> gateway");
    assert!(net.del(b).success());
    assert!(!net.ping(a, &ip_b), "b is gone");
}

#[test]
fn every_spec_version_gets_its_own_result_shape() {
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let mut net = Net::new("br-ver");
        net.conf["cniVersion"] = json!(version);
        let c = net.container();
        let r = net.add(c);
        assert_eq!(r["cniVersion"], version);
        assert_eq!(
            r["ips"][0].get("version").is_some(),
            version < "1.0.0",
            "{version}"
        );
        assert_eq!(
            r["interfaces"][2].get("mtu").is_some(),
            version == "1.1.0",
            "{version}"
        );
        if version >= "0.4.0" {
            let out = net.check(c, &r);
            assert!(out.success(), "{version} CHECK: {out:?}");
        }
        assert!(net.del(c).success());
    }
}

#[test]
fn ipv6_and_dual_stack() {
    let mut net = Net::new("br-dual");
    net.conf["isDefaultGateway"] = json!(true);
    net.conf["ipam"]["ranges"] = json!([[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd89::/64"}]]);
    net.conf["ipam"]["routes"] = json!([]);
    let a = net.container();
    let b = net.container();
    let r = net.add(a);
    net.add(b);
    let ips: Vec<&str> = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["10.89.0.2/24", "fd89::2/64"]);
    assert_eq!(r["ips"][1]["gateway"], "fd89::1");
    let mut have = addrs(net.ns(a), "eth0");
    have.sort();
    assert_eq!(have, ["10.89.0.2/24", "fd89::2/64"]);
    assert_eq!(routes(net.ns(a), "-4"), ["default via 10.89.0.1"]);
    assert_eq!(routes(net.ns(a), "-6"), ["default via fd89::1"]);
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}, {"dst": "::/0", "gw": "fd89::1"}])
    );
    let mut br = addrs(net.sb.host(), "cni0");
    br.sort();
    assert_eq!(br, ["10.89.0.1/24", "fd89::1/64"]);
    // No DAD wait: the address is usable at once, so IPv6 pings work right away.
    assert!(net.ping(b, "fd89::2"), "v6 b -> a");
    assert!(net.ping(b, "10.89.0.2"), "v4 b -> a");
}

#[test]
fn mtu_hairpin_and_promisc_are_applied() {
    let mut net = Net::new("br-mtu");
    net.conf["mtu"] = json!(1400);
    net.conf["hairpinMode"] = json!(true);
    net.conf["portIsolation"] = json!(true);
    let c = net.container();
    let r = net.add(c);
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    let port = net.sb.host().ip_json(&["-d", "link", "show", veth]);
    assert_eq!(port[0]["mtu"], 1400);
    assert_eq!(port[0]["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(port[0]["linkinfo"]["info_slave_data"]["isolated"], true);
    let eth0 = net.ns(c).ip_json(&["link", "show", "eth0"]);
    assert_eq!(eth0[0]["mtu"], 1400);
    let br = net.sb.host().ip_json(&["link", "show", "cni0"]);
    assert_eq!(br[0]["mtu"], 1400);

    let mut net = Net::new("br-promisc");
    net.conf["promiscMode"] = json!(true);
    let c = net.container();
    net.add(c);
    let br = net.sb.host().ip_json(&["-d", "link", "show", "cni0"]);
    assert_eq!(br[0]["promiscuity"], 1);
}

#[test]
fn requested_mac_is_used() {
    let mut net = Net::new("br-mac");
    net.conf["runtimeConfig"] = json!({"mac": "02:aa:bb:cc:dd:ee"});
    let c = net.container();
    let r = net.add(c);
    assert_eq!(r["interfaces"][2]["mac"], "02:aa:bb:cc:dd:ee");
    let eth0 = net.ns(c).ip_json(&["link", "show", "eth0"]);
    assert_eq!(eth0[0]["address"], "02:aa:bb:cc:dd:ee");
    let mut net = Net::new("br-macarg");
    let c = net.container();
    let r = net
        .run(
            net.call("ADD", c)
                .env("CNI_ARGS", "IgnoreUnknown=1;MAC=02:11:22:33:44:55"),
        )
        .result();
    assert_eq!(r["interfaces"][2]["mac"], "02:11:22:33:44:55");
}

#[test]
fn masquerade_rules_come_with_add_and_go_with_del_even_without_the_namespace() {
    let mut net = Net::new("br-masq");
    net.conf["ipMasq"] = json!(true);
    let a = net.container();
    let b = net.container();
    net.add(a);
    net.add(b);
    let rules = net.nft_ruleset();
    assert!(rules.contains("10.88.0.2"), "{rules}");
    assert!(rules.contains("10.88.0.3"), "{rules}");
    assert!(rules.contains("masquerade"), "{rules}");
    // DEL of a; its rules go, b's stay.
    assert!(net.del(a).success());
    let rules = net.nft_ruleset();
    assert!(!rules.contains("10.88.0.2"), "{rules}");
    assert!(rules.contains("10.88.0.3"), "{rules}");
    // b's namespace is deleted before its DEL (a runtime after a crash): the
    // rules still go, and so does the lease.
    net.sb.container_mut(b).delete();
    let out = net.del(b);
    assert!(out.success(), "{out:?}");
    let rules = net.nft_ruleset();
    assert!(!rules.contains("10.88.0.3"), "{rules}");
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}

#[test]
fn del_is_idempotent_and_needs_no_prev_result() {
    let mut net = Net::new("br-del");
    let c = net.container();
    net.add(c);
    assert_eq!(net.leases(), ["10.88.0.2"]);
    for _ in 0..3 {
        let out = net.del(c);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, "");
    }
    assert!(net.leases().is_empty());
    assert!(!link_names(net.ns(c)).contains(&"eth0".to_string()));
    // Only the bridge stays on the host (shared by the network).
    let host: Vec<String> = net
        .host_links()
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect();
    assert!(host.is_empty(), "{host:?}");
    // DEL without CNI_NETNS.
    let out = net.run(net.call("DEL", c).unset("CNI_NETNS"));
    assert!(out.success(), "{out:?}");
}

#[test]
fn check_passes_then_catches_tampering() {
    let mut net = Net::new("br-check");
    net.conf["ipMasq"] = json!(true);
    let c = net.container();
    let r = net.add(c);
    let out = net.check(c, &r);
    assert!(out.success(), "{out:?}");
    // Address removed by hand.
    net.ns(c)
        .ip(&["addr", "del", "10.88.0.2/24", "dev", "eth0"]);
    net.check(c, &r).expect_error(102);
    net.ns(c)
        .ip(&["addr", "add", "10.88.0.2/24", "dev", "eth0"]);
    net.ns(c)
        .ip(&["route", "add", "default", "via", "10.88.0.1"]);
    assert!(net.check(c, &r).success());
    // Masquerade rules flushed by hand.
    net.sb
        .host_command("nft")
        .args(["flush", "ruleset"])
        .status()
        .unwrap();
    net.check(c, &r).expect_error(102);
    // No prevResult.
    let out = net.call("CHECK", c).run_in(net.sb.host());
    out.expect_error(7);
}

#[test]
fn l2_only_network_without_ipam() {
    let mut net = Net::new("br-l2");
    net.conf.as_object_mut().unwrap().remove("ipam");
    net.conf["isGateway"] = json!(false);
    let c = net.container();
    let r = net.add(c);
    assert!(r.get("ips").is_none(), "{r}");
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
    let eth0 = net.ns(c).ip_json(&["link", "show", "eth0"]);
    assert!(eth0[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    assert!(net.del(c).success());
}

#[test]
fn interface_name_clash_fails_and_releases_the_lease() {
    let mut net = Net::new("br-clash");
    let c = net.container();
    net.ns(c).ip(&["link", "add", "eth0", "type", "bridge"]);
    let out = net.call("ADD", c).run_in(net.sb.host());
    let err = out.expect_error(100);
    assert!(
        err["msg"].as_str().unwrap().contains("already exists"),
        "{err}"
    );
    assert!(net.leases().is_empty());
    assert!(!net.host_links().iter().any(|l| l.starts_with("veth")));
}

#[test]
fn last_free_address_is_handed_out_once_then_a_clear_error_leaves_nothing() {
    let mut net = Net::new("br-full");
    net.conf["ipam"]["ranges"] = json!([[{"subnet": "10.90.0.0/29"}]]);
    // .2 .. .6: five addresses.
    let ids: Vec<usize> = (0..6).map(|_| net.container()).collect();
    for &i in &ids[..5] {
        net.add(i);
    }
    assert_eq!(net.leases().len(), 5);
    let veths_before: Vec<String> = net.host_links();
    let out = net.call("ADD", ids[5]).run_in(net.sb.host());
    let err = out.expect_error(101);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available"),
        "{err}"
    );
    assert_eq!(net.leases().len(), 5, "no lease for the failed ADD");
    assert_eq!(net.host_links(), veths_before, "no veth for the failed ADD");
    assert!(!link_names(net.ns(ids[5])).contains(&"eth0".to_string()));
    // Free one: exactly that one is handed out again.
    assert!(net.del(ids[2]).success());
    let r = net.add(ids[5]);
    assert_eq!(r["ips"][0]["address"], "10.90.0.4/29");
}

#[test]
fn concurrent_adds_get_distinct_addresses_and_dels_free_them() {
    let mut net = Net::new("br-par");
    let n = 20;
    let ids: Vec<usize> = (0..n).map(|_| net.container()).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|&i| {
                let net = &net;
                s.spawn(move || net.add(i))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n, "distinct addresses");
    assert_eq!(net.leases().len(), n);
    std::thread::scope(|s| {
        for &i in &ids {
            let net = &net;
            s.spawn(move || assert!(net.del(i).success()));
        }
    });
    assert!(net.leases().is_empty());
    assert!(!net.host_links().iter().any(|l| l.starts_with("veth")));
}

#[test]
fn bad_config_changes_nothing() {
    let mut net = Net::new("br-bad");
    let c = net.container();
    for (conf_edit, code) in [
        (json!({"mtu": -5}), 7),
        (json!({"bridge": "bad/name"}), 7),
        (json!({"vlan": 5000}), 7),
        (json!({"vlan": 100}), 2),
        (json!({"hairpinMode": true, "promiscMode": true}), 7),
        (json!({"ipam": {"type": "no-such-ipam"}}), 7),
    ] {
        let mut conf = net.conf.clone();
        for (k, v) in conf_edit.as_object().unwrap() {
            conf[k] = v.clone();
        }
        let out = net.call("ADD", c).config(&conf).run_in(net.sb.host());
        out.expect_error(code);
        assert_eq!(net.host_links(), ["lo"], "{conf_edit}");
        assert!(net.leases().is_empty());
    }
}

#[test]
fn existing_bridge_address_conflict_unless_force_address() {
    let mut net = Net::new("br-force");
    let a = net.container();
    net.add(a);
    net.sb.host().ip(&["addr", "flush", "dev", "cni0"]);
    net.sb
        .host()
        .ip(&["addr", "add", "10.99.0.1/24", "dev", "cni0"]);
    let b = net.container();
    let err = net.call("ADD", b).run_in(net.sb.host()).expect_error(100);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("already has an IP address"),
        "{err}"
    );
    assert_eq!(
        net.leases(),
        ["10.88.0.2"],
        "the failed ADD's lease was released"
    );
    net.conf["forceAddress"] = json!(true);
    net.add(b);
    assert_eq!(addrs(net.sb.host(), "cni0"), ["10.88.0.1/24"]);
}

#[test]
fn status_and_gc() {
    let mut net = Net::new("br-gc");
    net.conf["cniVersion"] = json!("1.1.0");
    net.conf["ipMasq"] = json!(true);
    let a = net.container();
    let b = net.container();
    net.add(a);
    net.add(b);
    let status = |net: &Net| {
        PluginCall::new(net.bridge_bin(), "STATUS")
            .config(&net.conf)
            .run_in(net.sb.host())
    };
    assert!(status(&net).success());
    // Both attachments' lease and rule are there before GC.
    assert_eq!(net.leases(), ["10.88.0.2", "10.88.0.3"]);
    let rules = net.nft_ruleset();
    assert!(
        rules.contains("10.88.0.2") && rules.contains("10.88.0.3"),
        "{rules}"
    );
    let mut gc = net.conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr0", "ifname": "eth0"}]);
    let out = PluginCall::new(net.bridge_bin(), "GC")
        .config(&gc)
        .run_in(net.sb.host());
    assert!(out.success(), "{out:?}");
    assert_eq!(net.leases(), ["10.88.0.2"], "ctr1's lease collected");
    let rules = net.nft_ruleset();
    assert!(
        rules.contains("10.88.0.2") && !rules.contains("10.88.0.3"),
        "{rules}"
    );
}

use cni_harness::PluginCall;

#[test]
fn macspoofchk_rules_follow_the_attachment() {
    let mut net = Net::new("br-spoof");
    net.conf["macspoofchk"] = json!(true);
    let a = net.container();
    let b = net.container();
    let ra = net.add(a);
    net.add(b);
    let mac_a = ra["interfaces"][2]["mac"].as_str().unwrap().to_string();
    let veth_a = ra["interfaces"][1]["name"].as_str().unwrap().to_string();
    let rules = net.nft_ruleset();
    assert!(rules.contains("table bridge cni_spoofchk"), "{rules}");
    assert!(rules.contains(&mac_a), "{rules}");
    assert!(rules.contains(&veth_a), "{rules}");
    assert!(net.ping(b, "10.88.0.2"), "genuine MAC passes");
    // A container changing its MAC is cut off.
    net.ns(a)
        .ip(&["link", "set", "eth0", "address", "02:de:ad:be:ef:01"]);
    // b must learn a's MAC afresh: a's ARP reply now carries the spoofed source.
    net.ns(b).ip(&["neigh", "flush", "all"]);
    assert!(!net.ping(b, "10.88.0.2"), "spoofed MAC dropped");
    assert!(net.check(a, &ra).expect_error(102)["msg"]
        .as_str()
        .is_some());
    assert!(net.del(a).success());
    let rules = net.nft_ruleset();
    assert!(
        !rules.contains(&mac_a) && !rules.contains(&veth_a),
        "{rules}"
    );
}

/// A config ADD refuses must not block the teardown that follows a failed ADD.
#[test]
fn del_with_an_invalid_config_still_cleans_up() {
    let mut net = Net::new("br-baddel");
    net.conf["ipMasq"] = json!(true);
    let c = net.container();
    net.add(c);
    assert_eq!(net.leases(), ["10.88.0.2"]);
    assert!(link_names(net.ns(c)).contains(&"eth0".to_string()));
    let rules = net.nft_ruleset();
    assert!(
        rules.contains("10.88.0.2") && rules.contains("masquerade"),
        "ADD installed the masquerade rule: {rules}"
    );
    let mut bad = net.conf.clone();
    bad["mtu"] = json!(-5);
    let out = net.call("DEL", c).config(&bad).run_in(net.sb.host());
    assert!(out.success(), "{out:?}");
    assert!(net.leases().is_empty(), "lease released");
    assert!(!link_names(net.ns(c)).contains(&"eth0".to_string()));
    assert!(!net.nft_ruleset().contains("10.88.0.2"), "rules removed");
}

/// ipMasq switched off between ADD and DEL: the rules ADD wrote still go.
#[test]
fn del_removes_rules_even_when_the_config_no_longer_asks_for_them() {
    let mut net = Net::new("br-masqoff");
    net.conf["ipMasq"] = json!(true);
    let c = net.container();
    net.add(c);
    let rules = net.nft_ruleset();
    assert!(rules.contains("10.88.0.2"), "{rules}");
    assert!(rules.contains("masquerade"), "{rules}");
    net.conf["ipMasq"] = json!(false);
    assert!(net.del(c).success());
    assert!(!net.nft_ruleset().contains("10.88.0.2"), "rules removed");
    assert!(net.leases().is_empty());
}

/// A CNI_NETNS whose bind mount is gone (a plain file is left) counts as a
/// namespace that no longer exists: DEL succeeds and releases the lease.
#[test]
fn del_with_a_netns_path_that_is_no_longer_a_namespace() {
    let mut net = Net::new("br-notns");
    let c = net.container();
    net.add(c);
    let stale = net.data_dir.with_extension("stale-netns");
    std::fs::write(&stale, b"").unwrap();
    let out = net
        .call("DEL", c)
        .env("CNI_NETNS", stale.to_str().unwrap())
        .run_in(net.sb.host());
    std::fs::remove_file(&stale).unwrap();
    assert!(out.success(), "{out:?}");
    assert!(net.leases().is_empty());
}
