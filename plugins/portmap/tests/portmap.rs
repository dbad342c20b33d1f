//! The portmap plugin in a sandboxed node: real traffic through the mappings.

mod common;

use cni_harness::{tcp_ask, tcp_ask_eventually, udp_ask, PeerServer, PluginCall, PluginOutput};
use common::*;
use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portmap")
}

const NET: &str = "pmnet";

fn conf(version: &str, mappings: Value, prev: Option<Value>, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": NET,
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": mappings},
    });
    if let Some(p) = prev {
        c["prevResult"] = p;
    }
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    c
}

fn run(node: &Node, cmd: &str, cid: &str, ctr: usize, config: &Value) -> PluginOutput {
    PluginCall::new(bin(), cmd)
        .container(cid, &node.sb.container(ctr).path(), "eth0")
        .config(config)
        .run_in(node.host())
}

fn add(node: &Node, cid: &str, ctr: usize, config: &Value) -> Value {
    run(node, "ADD", cid, ctr, config).result()
}

fn ok(out: PluginOutput) {
    assert!(
        out.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.code,
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout, "", "no output on success");
}

fn web() -> Value {
    json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
}

#[test]
fn version_lists_every_supported_version() {
    let v = PluginCall::new(bin(), "VERSION")
        .stdin("")
        .run_here()
        .result();
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

/// External client, the host itself (own address and 127.0.0.1), the
/// container itself and a peer on the bridge all reach the container's
/// server through 8080; hairpin and localhost are masqueraded.
#[test]
fn add_forwards_external_localhost_and_hairpin_traffic() {
    let node = Node::new("pm-fwd");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    assert!(
        tcp_ask(node.client(), "192.0.2.1:8080").is_err(),
        "nothing mapped yet"
    );

    let prev = node.prev_result(CTR, false);
    let out = add(
        &node,
        "ctr-1",
        CTR,
        &conf("1.0.0", web(), Some(prev.clone()), json!({})),
    );
    assert_eq!(out, prev, "prevResult passes through unchanged");

    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap(),
        "192.0.2.2",
        "external clients keep their address"
    );
    assert_eq!(
        read_sysctl(node.host(), "net.ipv4.conf.br0.route_localnet"),
        "1"
    );
    assert_eq!(
        tcp_ask(node.host(), "127.0.0.1:8080").unwrap(),
        "10.88.0.1",
        "localhost is masqueraded to the bridge address"
    );
    assert_eq!(
        tcp_ask(node.host(), "192.0.2.1:8080").unwrap(),
        "192.0.2.1",
        "host's own address"
    );
    assert_eq!(
        tcp_ask_eventually(node.ctr(), "192.0.2.1:8080").unwrap(),
        "10.88.0.1",
        "hairpin from the container itself"
    );
    assert_eq!(
        tcp_ask_eventually(node.peer(), "192.0.2.1:8080").unwrap(),
        "10.88.0.1",
        "hairpin from a peer in the subnet"
    );
    // Other ports stay closed.
    assert!(tcp_ask(node.client(), "192.0.2.1:8081").is_err());
}

#[test]
fn del_removes_the_mapping_and_is_idempotent() {
    let node = Node::new("pm-del");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let c = conf(
        "1.0.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    add(&node, "ctr-1", CTR, &c);
    tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap();

    ok(run(&node, "DEL", "ctr-1", CTR, &c));
    let err = tcp_ask(node.client(), "192.0.2.1:8080").unwrap_err();
    assert!(err.contains("connect"), "{err}");
    assert!(tcp_ask(node.host(), "127.0.0.1:8080").is_err());
    ok(run(&node, "DEL", "ctr-1", CTR, &c));

    // Re-add, then DEL as a runtime may send it: no prevResult, no
    // portMappings, no CNI_NETNS.
    add(&node, "ctr-1", CTR, &c);
    tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap();
    let bare = json!({"cniVersion": "1.0.0", "name": NET, "type": "portmap"});
    ok(PluginCall::new(bin(), "DEL")
        .container("ctr-1", &node.ctr().path(), "eth0")
        .unset("CNI_NETNS")
        .config(&bare)
        .run_in(node.host()));
    assert!(tcp_ask(node.client(), "192.0.2.1:8080").is_err());
    let doc = node.nft_list().expect("table stays");
    assert!(
        !doc.to_string().contains("pmnet/ctr-1/eth0"),
        "no rule or element of the attachment left: {doc}"
    );
}

#[test]
fn del_without_any_state_succeeds() {
    let node = Node::new("pm-del0");
    let c = conf("1.0.0", web(), None, json!({}));
    ok(run(&node, "DEL", "never-added", CTR, &c));
    assert!(node.nft_list().is_none(), "DEL creates nothing");
}

#[test]
fn check_passes_then_fails_after_tampering() {
    let node = Node::new("pm-check");
    // IPv4-only container: the reference's CHECK fails here.
    let c = conf(
        "1.0.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    add(&node, "ctr-1", CTR, &c);
    ok(run(&node, "CHECK", "ctr-1", CTR, &c));

    let dn = chain_of(&node, "pm-dnat-");
    node.nft(&["flush", "chain", "inet", "cni_portmap", &dn]);
    let err = run(&node, "CHECK", "ctr-1", CTR, &c).expect_error(102);
    assert!(err["msg"].as_str().unwrap().contains(&dn), "{err}");

    add(&node, "ctr-1", CTR, &c);
    ok(run(&node, "CHECK", "ctr-1", CTR, &c));
    node.nft(&[
        "delete",
        "element",
        "inet",
        "cni_portmap",
        "ports",
        "{ tcp . 8080 }",
    ]);
    run(&node, "CHECK", "ctr-1", CTR, &c).expect_error(102);

    add(&node, "ctr-1", CTR, &c);
    sysctl(node.host(), "net.ipv4.conf.br0.route_localnet", "0");
    let err = run(&node, "CHECK", "ctr-1", CTR, &c).expect_error(102);
    assert!(
        err["msg"].as_str().unwrap().contains("route_localnet"),
        "{err}"
    );

    // Other mappings than installed: CHECK fails.
    add(&node, "ctr-1", CTR, &c);
    let other = conf(
        "1.0.0",
        json!([{"hostPort": 9999, "containerPort": 80}]),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    run(&node, "CHECK", "ctr-1", CTR, &other).expect_error(102);

    let no_prev = conf("1.0.0", web(), None, json!({}));
    run(&node, "CHECK", "ctr-1", CTR, &no_prev).expect_error(7);

    ok(run(&node, "DEL", "ctr-1", CTR, &c));
    run(&node, "CHECK", "ctr-1", CTR, &c).expect_error(102);
}

/// The name of the attachment chain with `prefix` in the host's table.
fn chain_of(node: &Node, prefix: &str) -> String {
    let doc = node.nft_list().expect("table");
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter_map(|c| c["name"].as_str())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no chain {prefix}* in {doc}"))
        .to_string()
}

#[test]
fn gc_removes_only_attachments_that_are_not_valid() {
    let node = Node::new("pm-gc");
    let _a = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let _b = PeerServer::tcp(node.peer(), "10.88.0.6:80");
    let ca = conf(
        "1.1.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    let cb = conf(
        "1.1.0",
        json!([{"hostPort": 8081, "containerPort": 80}]),
        Some(node.prev_result(PEER, false)),
        json!({}),
    );
    add(&node, "ctr-a", CTR, &ca);
    add(&node, "ctr-b", PEER, &cb);
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap(),
        "192.0.2.2"
    );
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8081").unwrap(),
        "192.0.2.2"
    );

    let mut gc = json!({"cniVersion": "1.1.0", "name": NET, "type": "portmap"});
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-a", "ifname": "eth0"}]);
    let call = |gc: &Value| {
        PluginCall::new(bin(), "GC")
            .env("CNI_CONTAINERID", "")
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "")
            .config(gc)
            .run_in(node.host())
    };
    ok(call(&gc));
    assert!(
        tcp_ask(node.client(), "192.0.2.1:8081").is_err(),
        "ctr-b's mapping is gone"
    );
    assert_eq!(
        tcp_ask(node.client(), "192.0.2.1:8080").unwrap(),
        "192.0.2.2",
        "ctr-a kept"
    );
    ok(run(&node, "CHECK", "ctr-a", CTR, &ca));
    ok(call(&gc));

    // Another network's GC does not touch ours.
    gc["name"] = json!("othernet");
    gc["cni.dev/valid-attachments"] = json!([]);
    ok(call(&gc));
    ok(run(&node, "CHECK", "ctr-a", CTR, &ca));
}

#[test]
fn ipv6_mappings_work_alongside_ipv4() {
    let node = Node::new("pm-v6");
    let _s4 = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let _s6 = PeerServer::tcp(node.ctr(), "[fd88::5]:80");
    let c = conf("1.0.0", web(), Some(node.prev_result(CTR, true)), json!({}));
    add(&node, "ctr-1", CTR, &c);
    assert_eq!(
        tcp_ask_eventually(node.client(), "[fd99::1]:8080").unwrap(),
        "fd99::2"
    );
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap(),
        "192.0.2.2"
    );
    assert_eq!(
        tcp_ask_eventually(node.ctr(), "[fd99::1]:8080").unwrap(),
        "fd88::1",
        "v6 hairpin masqueraded to the bridge address"
    );
    ok(run(&node, "CHECK", "ctr-1", CTR, &c));
    ok(run(&node, "DEL", "ctr-1", CTR, &c));
    assert!(tcp_ask(node.client(), "[fd99::1]:8080").is_err());
}

#[test]
fn host_ip_limits_the_mapping_to_that_address() {
    let node = Node::new("pm-hostip");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let m = json!([{"hostPort": 8080, "containerPort": 80, "hostIP": "192.0.2.3"}]);
    let c = conf("1.0.0", m, Some(node.prev_result(CTR, true)), json!({}));
    add(&node, "ctr-1", CTR, &c);
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.3:8080").unwrap(),
        "192.0.2.2"
    );
    assert!(
        tcp_ask(node.client(), "192.0.2.1:8080").is_err(),
        "other host address not mapped"
    );
    assert!(
        tcp_ask(node.client(), "[fd99::1]:8080").is_err(),
        "v4 hostIP maps no v6"
    );
    ok(run(&node, "CHECK", "ctr-1", CTR, &c));
}

#[test]
fn masq_all_hides_external_clients_and_snat_off_leaves_localnet() {
    let node = Node::new("pm-masqall");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let c = conf(
        "1.0.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({"masqAll": true}),
    );
    add(&node, "ctr-1", CTR, &c);
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap(),
        "10.88.0.1"
    );
    ok(run(&node, "DEL", "ctr-1", CTR, &c));

    let node = Node::new("pm-nosnat");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let c = conf(
        "1.0.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({"snat": false}),
    );
    add(&node, "ctr-1", CTR, &c);
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:8080").unwrap(),
        "192.0.2.2"
    );
    assert_eq!(
        read_sysctl(node.host(), "net.ipv4.conf.br0.route_localnet"),
        "0"
    );
    let doc = node.nft_list().unwrap().to_string();
    assert!(
        !doc.contains("masquerade"),
        "no hairpin rules without snat: {doc}"
    );
    ok(run(&node, "CHECK", "ctr-1", CTR, &c));
}

#[test]
fn udp_mappings_forward_datagrams() {
    let node = Node::new("pm-udp");
    let _srv = PeerServer::udp(node.ctr(), "10.88.0.5:53");
    let m = json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let c = conf(
        "0.4.0",
        m,
        Some(downgrade(node.prev_result(CTR, false))),
        json!({}),
    );
    add(&node, "ctr-1", CTR, &c);
    assert_eq!(
        udp_ask(node.client(), "192.0.2.1:5353").unwrap(),
        "192.0.2.2"
    );
    assert!(
        tcp_ask(node.client(), "192.0.2.1:5353").is_err(),
        "only udp is mapped"
    );
}

/// The 1.0.0 prevResult as a 0.4.0 one (`version` on each address).
fn downgrade(mut prev: Value) -> Value {
    prev["cniVersion"] = json!("0.4.0");
    for ip in prev["ips"].as_array_mut().unwrap() {
        let v = if ip["address"].as_str().unwrap().contains(':') {
            "6"
        } else {
            "4"
        };
        ip["version"] = json!(v);
    }
    prev
}

#[test]
fn without_port_mappings_prev_result_passes_through_untouched() {
    let node = Node::new("pm-none");
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let mut prev = node.prev_result(CTR, true);
        if version < "1.0.0" {
            prev = downgrade(prev);
        }
        prev["cniVersion"] = json!(version);
        let mut c = conf(version, json!([]), Some(prev.clone()), json!({}));
        let out = add(&node, "ctr-1", CTR, &c);
        assert_eq!(out, prev, "{version}");
        c["runtimeConfig"] = json!({});
        assert_eq!(add(&node, "ctr-1", CTR, &c), prev, "{version}");
    }
    assert!(node.nft_list().is_none(), "nothing installed");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let node = Node::new("pm-bad");
    let prev = Some(node.prev_result(CTR, false));
    let cases = [
        ("no prevResult", conf("1.0.0", web(), None, json!({}))),
        (
            "port 0",
            conf(
                "1.0.0",
                json!([{"hostPort": 0, "containerPort": 80}]),
                prev.clone(),
                json!({}),
            ),
        ),
        (
            "bad protocol",
            conf(
                "1.0.0",
                json!([{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}]),
                prev.clone(),
                json!({}),
            ),
        ),
        (
            "conditions",
            conf(
                "1.0.0",
                web(),
                prev.clone(),
                json!({"conditionsV4": ["-s", "192.0.2.9"]}),
            ),
        ),
        (
            "iptables backend",
            conf("1.0.0", web(), prev.clone(), json!({"backend": "iptables"})),
        ),
    ];
    for (what, c) in cases {
        let err = run(&node, "ADD", "ctr-1", CTR, &c).expect_error(7);
        assert!(err["msg"].is_string(), "{what}");
        assert!(node.nft_list().is_none(), "{what}: nothing installed");
    }
    assert_eq!(
        read_sysctl(node.host(), "net.ipv4.conf.br0.route_localnet"),
        "0"
    );
}

#[test]
fn status_reports_whether_nftables_is_usable() {
    let node = Node::new("pm-status");
    let c = json!({"cniVersion": "1.1.0", "name": NET, "type": "portmap"});
    let call = |path: &str| {
        PluginCall::new(bin(), "STATUS")
            .env("CNI_CONTAINERID", "")
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "")
            .env("PATH", path)
            .config(&c)
            .run_in(node.host())
    };
    ok(call(&std::env::var("PATH").unwrap_or_default()));
    assert!(node.nft_list().is_none(), "STATUS applies nothing");
    let err = call("/nonexistent").expect_error(50);
    assert!(err["msg"].as_str().unwrap().contains("nftables"), "{err}");
}

#[test]
fn readd_after_container_restart_replaces_mappings() {
    let node = Node::new("pm-readd");
    let _srv = PeerServer::tcp(node.ctr(), "10.88.0.5:80");
    let c1 = conf(
        "1.0.0",
        web(),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    add(&node, "ctr-1", CTR, &c1);
    add(&node, "ctr-1", CTR, &c1);
    let c2 = conf(
        "1.0.0",
        json!([{"hostPort": 9090, "containerPort": 80}]),
        Some(node.prev_result(CTR, false)),
        json!({}),
    );
    add(&node, "ctr-1", CTR, &c2);
    assert_eq!(
        tcp_ask_eventually(node.client(), "192.0.2.1:9090").unwrap(),
        "192.0.2.2"
    );
    assert!(
        tcp_ask(node.client(), "192.0.2.1:8080").is_err(),
        "old mapping replaced"
    );
    ok(run(&node, "CHECK", "ctr-1", CTR, &c2));
}
