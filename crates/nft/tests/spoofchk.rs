//! nft::spoofchk against real nftables in sandbox namespaces.

mod common;

use cni_harness::{tcp_ask, tcp_ask_eventually, PeerServer, Sandbox};
use common::*;
use nft::spoofchk;
use nft::Attachment;
use serde_json::json;

fn att(cid: &str) -> Attachment<'_> {
    Attachment {
        network: "net1",
        container_id: cid,
        ifname: "eth0",
    }
}

const MAC_A: [u8; 6] = [0x0a, 0x58, 0x0a, 0x58, 0x00, 0x05];
const MAC_B: [u8; 6] = [0x0a, 0x58, 0x0a, 0x58, 0x00, 0x06];

#[test]
fn add_check_del_gc() {
    let sb = Sandbox::new("spoof-basic");
    let a = att("a");
    let b = att("b");
    in_ns(sb.host(), || spoofchk::add(&a, "vetha", MAC_A)).expect("add a");
    in_ns(sb.host(), || spoofchk::add(&a, "vetha", MAC_A)).expect("add a again");
    in_ns(sb.host(), || spoofchk::add(&b, "vethb", MAC_B)).expect("add b");

    let doc = list_table(sb.host(), "bridge", spoofchk::TABLE).expect("table");
    let chain = spoofchk::chain(&a);
    let rules = rules_in(&doc, &chain);
    assert_eq!(rules.len(), 2, "{doc}");
    assert!(rules[0]["expr"].to_string().contains("0a:58:0a:58:00:05"));
    assert_eq!(rules[1]["expr"], json!([{"drop": null}]));
    assert!(rules.iter().all(|r| r["comment"] == "net1/a/eth0"));
    assert_eq!(rules_in(&doc, "prerouting").len(), 1);
    let ports = map_elems(&doc, "ports");
    assert!(
        ports.contains(&(json!("vetha"), chain.clone(), Some("net1/a/eth0".into()))),
        "{ports:?}"
    );

    in_ns(sb.host(), || spoofchk::check(&a, "vetha", MAC_A)).expect("check");
    let err = in_ns(sb.host(), || spoofchk::check(&a, "vetha", MAC_B)).unwrap_err();
    assert!(err.is_mismatch(), "{err}");
    assert!(in_ns(sb.host(), || spoofchk::check(&a, "vethx", MAC_A)).is_err());

    in_ns(sb.host(), || spoofchk::del(&a)).expect("del");
    in_ns(sb.host(), || spoofchk::del(&a)).expect("del again");
    assert!(in_ns(sb.host(), || spoofchk::check(&a, "vetha", MAC_A)).is_err());
    in_ns(sb.host(), || spoofchk::check(&b, "vethb", MAC_B)).expect("b untouched");

    assert_eq!(in_ns(sb.host(), || spoofchk::gc("net1", &[])).unwrap(), 1);
    let doc = list_table(sb.host(), "bridge", spoofchk::TABLE).unwrap();
    assert!(map_elems(&doc, "ports").is_empty());
    assert!(
        chain_names(&doc).iter().all(|c| !c.starts_with("spoof-")),
        "{doc}"
    );
}

#[test]
fn del_without_table_is_ok() {
    let sb = Sandbox::new("spoof-none");
    in_ns(sb.host(), || spoofchk::del(&att("x"))).unwrap();
    assert!(list_table(sb.host(), "bridge", spoofchk::TABLE).is_none());
}

/// Two containers on a bridge; once the check is on, a container that
/// changes its MAC can no longer reach its neighbour.
#[test]
fn frames_with_a_foreign_source_mac_are_dropped() {
    let mut sb = Sandbox::new("spoof-pkt");
    sb.add_container();
    sb.add_container();
    let host = sb.host();
    let (c0, c1) = (sb.container(0), sb.container(1));
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    host.ip(&["link", "set", "br0", "up"]);
    for (i, c, ip) in [(0, c0, "10.77.0.5/24"), (1, c1, "10.77.0.6/24")] {
        let hv = format!("vh{i}");
        veth(host, &hv, c, "eth0");
        host.ip(&["link", "set", &hv, "master", "br0"]);
        c.ip(&["addr", "add", ip, "dev", "eth0"]);
    }
    c0.ip(&["link", "set", "eth0", "address", "0a:58:0a:58:00:05"]);
    let server = PeerServer::tcp(c1, "10.77.0.6:7000");
    assert_eq!(tcp_ask_eventually(c0, server.addr).unwrap(), "10.77.0.5");

    let a = att("c0");
    in_ns(host, || spoofchk::add(&a, "vh0", MAC_A)).unwrap();
    assert_eq!(
        tcp_ask(c0, server.addr).unwrap(),
        "10.77.0.5",
        "the right MAC passes"
    );

    c0.ip(&["link", "set", "eth0", "address", "0a:58:0a:58:00:99"]);
    c0.ip(&["neigh", "flush", "all"]);
    c1.ip(&["neigh", "flush", "all"]);
    let err = tcp_ask(c0, server.addr).unwrap_err();
    assert!(
        err.contains("connect"),
        "spoofed MAC must be dropped: {err}"
    );

    in_ns(host, || spoofchk::del(&a)).unwrap();
    assert_eq!(
        tcp_ask_eventually(c0, server.addr).unwrap(),
        "10.77.0.5",
        "DEL lifts the check"
    );
}
