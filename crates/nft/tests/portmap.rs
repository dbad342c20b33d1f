//! nft::portmap against real nftables in sandbox namespaces (the packet
//! tests live with the portmap plugin).

mod common;

use cni_harness::Sandbox;
use common::*;
use nft::portmap::{self, PortMapping, Protocol, Spec};
use nft::Attachment;
use serde_json::json;

fn att(cid: &str) -> Attachment<'_> {
    Attachment {
        network: "pm-net",
        container_id: cid,
        ifname: "eth0",
    }
}

fn m(hp: u16, cp: u16, proto: Protocol, host_ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: hp,
        container_port: cp,
        protocol: proto,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
    }
}

/// `v4` is `10.88.0.N/24`; the v6 address is `fd88::N/64`.
fn spec<'a>(maps: &'a [PortMapping], v4: &str) -> Spec<'a> {
    let n = v4.split('/').next().unwrap().rsplit('.').next().unwrap();
    Spec {
        mappings: maps,
        container_v4: Some(v4.parse().unwrap()),
        container_v6: Some(format!("fd88::{n}/64").parse().unwrap()),
        snat: true,
        masq_all: false,
    }
}

#[test]
fn add_check_readd_del() {
    let sb = Sandbox::new("pm-lib");
    let a = att("ctr1");
    let maps = [
        m(8080, 80, Protocol::Tcp, None),
        m(8443, 443, Protocol::Tcp, Some("192.0.2.10")),
        m(5353, 53, Protocol::Udp, None),
        m(9090, 90, Protocol::Sctp, Some("2001:db8::1")),
    ];
    let s = spec(&maps, "10.88.0.5/24");
    in_ns(sb.host(), || portmap::add(&a, &s)).expect("add");
    in_ns(sb.host(), || portmap::check(&a, &s)).expect("check");

    let doc = list_table(sb.host(), "inet", portmap::TABLE).expect("table");
    let [dn, sn] = portmap::chains(&a);
    // 8080: v4+v6, 8443: v4, 5353: v4+v6, 9090: v6.
    assert_eq!(rules_in(&doc, &dn).len(), 6, "{doc}");
    assert!(rules_in(&doc, &dn)
        .iter()
        .chain(rules_in(&doc, &sn).iter())
        .all(|r| r["comment"] == "pm-net/ctr1/eth0"));
    let ports: Vec<_> = map_elems(&doc, "ports").into_iter().map(|e| e.0).collect();
    assert_eq!(
        ports,
        vec![
            json!({"concat": ["tcp", 8080]}),
            json!({"concat": ["udp", 5353]})
        ]
    );
    let ports4: Vec<_> = map_elems(&doc, "ports4").into_iter().map(|e| e.0).collect();
    assert_eq!(ports4, vec![json!({"concat": ["192.0.2.10", "tcp", 8443]})]);
    let ports6: Vec<_> = map_elems(&doc, "ports6").into_iter().map(|e| e.0).collect();
    assert_eq!(
        ports6,
        vec![json!({"concat": ["2001:db8::1", "sctp", 9090]})]
    );
    assert_eq!(map_elems(&doc, "hairpin4")[0].1, sn);

    // Re-ADD with other mappings replaces the rules.
    let fewer = [m(8081, 81, Protocol::Tcp, None)];
    let s2 = spec(&fewer, "10.88.0.5/24");
    in_ns(sb.host(), || portmap::add(&a, &s2)).expect("re-add");
    in_ns(sb.host(), || portmap::check(&a, &s2)).expect("check new");
    assert!(in_ns(sb.host(), || portmap::check(&a, &s)).is_err());
    let doc = list_table(sb.host(), "inet", portmap::TABLE).unwrap();
    assert_eq!(rules_in(&doc, &dn).len(), 2);
    assert_eq!(rules_in(&doc, "prerouting").len(), 1);
    assert_eq!(rules_in(&doc, "hostports").len(), 3);

    in_ns(sb.host(), || portmap::del(&a)).expect("del");
    let doc = list_table(sb.host(), "inet", portmap::TABLE).unwrap();
    assert!(!chain_names(&doc).contains(&dn) && !chain_names(&doc).contains(&sn));
    for map in ["ports", "ports4", "ports6", "hairpin4", "hairpin6"] {
        assert!(map_elems(&doc, map).is_empty(), "{map}: {doc}");
    }
    in_ns(sb.host(), || portmap::del(&a)).expect("del again");
}

#[test]
fn gc_and_probe() {
    let sb = Sandbox::new("pm-gc");
    in_ns(sb.host(), portmap::probe).expect("probe");
    assert!(
        list_table(sb.host(), "inet", portmap::TABLE).is_none(),
        "probe applies nothing"
    );
    let maps = [m(8080, 80, Protocol::Tcp, None)];
    let maps2 = [m(8081, 80, Protocol::Tcp, None)];
    in_ns(sb.host(), || {
        portmap::add(&att("keep"), &spec(&maps, "10.88.0.5/24"))
    })
    .unwrap();
    in_ns(sb.host(), || {
        portmap::add(&att("gone"), &spec(&maps2, "10.88.0.6/24"))
    })
    .unwrap();
    let keep = vec![("keep".to_string(), "eth0".to_string())];
    assert_eq!(
        in_ns(sb.host(), || portmap::gc("pm-net", &keep)).unwrap(),
        1
    );
    in_ns(sb.host(), || {
        portmap::check(&att("keep"), &spec(&maps, "10.88.0.5/24"))
    })
    .unwrap();
    assert!(in_ns(sb.host(), || portmap::check(
        &att("gone"),
        &spec(&maps2, "10.88.0.6/24")
    ))
    .is_err());
    assert_eq!(
        in_ns(sb.host(), || portmap::gc("other-net", &[])).unwrap(),
        0
    );
}
