//! Addresses: add / list / delete, IPv4 and IPv6.

mod common;

use cni_harness::Sandbox;
use common::{connect, net};
use netlink::{BridgeSpec, ErrorKind};

#[test]
fn addresses_add_list_delete_v4_and_v6() {
    let sb = Sandbox::new("nl-addr");
    let (_host, nl) = connect(sb.host());
    let br = nl.create_bridge(&BridgeSpec::new("br0")).expect("bridge");
    let v4 = net("10.22.0.5/24");
    let v6 = net("fd00:22::5/64");

    nl.add_address(br.index, v4).expect("add v4");
    nl.add_address(br.index, v6).expect("add v6");
    let list = nl.addresses(br.index).expect("list");
    assert!(list.contains(&v4), "host bits and prefix kept: {list:?}");
    assert!(list.contains(&v6), "{list:?}");

    let j = sb.host().ip_json(&["addr", "show", "dev", "br0"]);
    let infos = j[0]["addr_info"].as_array().expect("addr_info").clone();
    let has = |local: &str, len: u64| {
        infos
            .iter()
            .any(|a| a["local"] == local && a["prefixlen"].as_u64() == Some(len))
    };
    assert!(has("10.22.0.5", 24), "{infos:?}");
    assert!(has("fd00:22::5", 64), "{infos:?}");
    // The kernel derived the broadcast address and the connected route.
    assert!(
        infos.iter().any(|a| a["broadcast"] == "10.22.0.255"),
        "{infos:?}"
    );

    let err = nl.add_address(br.index, v4).unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(err.to_string().contains("10.22.0.5/24"), "{err}");

    nl.del_address(br.index, v4).expect("del v4");
    let list = nl.addresses(br.index).expect("list");
    assert!(!list.contains(&v4) && list.contains(&v6), "{list:?}");
    nl.del_address(br.index, v6).expect("del v6");
    let list = nl.addresses(br.index).expect("list");
    assert!(!list.contains(&v6), "{list:?}");
    assert!(list.iter().all(|n| !n.is_ipv4()), "no IPv4 left: {list:?}");
    let j = sb.host().ip_json(&["addr", "show", "dev", "br0"]);
    let infos = j[0]["addr_info"].as_array().cloned().unwrap_or_default();
    assert!(!infos.iter().any(|a| a["family"] == "inet"), "{j}");

    let err = nl.del_address(br.index, v4).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn addresses_are_per_link() {
    let sb = Sandbox::new("nl-addr2");
    let (_host, nl) = connect(sb.host());
    let a = nl.create_bridge(&BridgeSpec::new("bra")).expect("a");
    let b = nl.create_bridge(&BridgeSpec::new("brb")).expect("b");
    nl.add_address(a.index, net("10.1.0.1/16")).expect("a addr");
    nl.add_address(b.index, net("10.2.0.1/16")).expect("b addr");
    let la = nl.addresses(a.index).expect("list a");
    let lb = nl.addresses(b.index).expect("list b");
    assert!(
        la.contains(&net("10.1.0.1/16")) && !la.contains(&net("10.2.0.1/16")),
        "{la:?}"
    );
    assert!(
        lb.contains(&net("10.2.0.1/16")) && !lb.contains(&net("10.1.0.1/16")),
        "{lb:?}"
    );

    // On a link that doesn't exist.
    let err = nl.add_address(9999, net("10.3.0.1/16")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.kind(), ErrorKind::Os);
}
