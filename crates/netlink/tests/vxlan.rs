//! VXLAN devices and the FDB / neighbour entries an overlay programs on them.

mod common;

use std::process::Command;

use cni_harness::{require_tool, run_ok, Sandbox};
use common::{connect, ip, ip_link, mac, net};
use netlink::{Link, Netlink, Netns, VethPeer, VethSpec, VxlanInfo, VxlanSpec};

/// A veth pair inside the sandbox host (both ends there) with 192.168.50.1/24
/// on `u0`: the underlay.
fn underlay(nl: &Netlink, host: &Netns) -> Link {
    let u0 = nl
        .create_veth(&VethSpec {
            name: "u0".into(),
            mtu: None,
            mac: None,
            master: None,
            peer: VethPeer {
                name: "u1".into(),
                mtu: None,
                mac: None,
                netns: host,
            },
        })
        .expect("underlay veth");
    nl.add_address(u0.index, net("192.168.50.1/24"))
        .expect("underlay address");
    u0
}

fn fdb_json(ns: &cni_harness::Netns, dev: &str) -> Vec<serde_json::Value> {
    require_tool("bridge", "iproute2");
    let out =
        run_ok(Command::new("bridge").args(["-n", ns.name(), "-j", "fdb", "show", "dev", dev]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("bridge -j");
    v.as_array().expect("array").clone()
}

#[test]
fn create_vxlan_with_local_port_and_underlay() {
    let sb = Sandbox::new("nl-vxlan");
    let (host, nl) = connect(sb.host());
    let u0 = underlay(&nl, &host);

    let vx = nl
        .create_vxlan(&VxlanSpec {
            name: "vx0".into(),
            vni: 42,
            local: Some(ip("192.168.50.1")),
            port: Some(4789),
            underlay: Some(u0.index),
            mtu: Some(1450),
            mac: Some(mac("0a:00:00:00:00:01")),
            learning: false,
        })
        .expect("create vxlan");
    assert!(vx.is_kind("vxlan"));
    assert!(vx.up);
    assert_eq!(vx.mtu, 1450);
    assert_eq!(vx.mac, Some(mac("0a:00:00:00:00:01")));
    assert_eq!(
        vx.vxlan,
        Some(VxlanInfo {
            vni: 42,
            local: Some(ip("192.168.50.1")),
            port: Some(4789),
            underlay: Some(u0.index),
            learning: false,
        })
    );

    let j = ip_link(sb.host(), "vx0");
    let d = &j["linkinfo"]["info_data"];
    assert_eq!(j["linkinfo"]["info_kind"], "vxlan", "{j}");
    assert_eq!(d["id"], 42, "{j}");
    assert_eq!(d["local"], "192.168.50.1", "{j}");
    assert_eq!(d["port"], 4789, "{j}");
    assert_eq!(d["link"], "u0", "{j}");
    assert_eq!(d["learning"], false, "{j}");
    assert_eq!(j["mtu"], 1450, "{j}");

    // IPv6 local, default port, learning on.
    let vx6 = nl
        .create_vxlan(&VxlanSpec {
            name: "vx6".into(),
            vni: 43,
            local: Some(ip("fd00:50::1")),
            learning: true,
            ..VxlanSpec::default()
        })
        .expect("create v6 vxlan");
    let info = vx6.vxlan.expect("vxlan info");
    assert_eq!(
        (info.vni, info.local, info.learning),
        (43, Some(ip("fd00:50::1")), true)
    );
    assert_eq!(info.underlay, None);
    let d = ip_link(sb.host(), "vx6")["linkinfo"]["info_data"].clone();
    assert_eq!(d["id"], 43, "{d}");
    assert_eq!(d["learning"], true, "{d}");
    assert!(d.to_string().contains("fd00:50::1"), "{d}");

    // Same VNI and port on another device: the kernel refuses (EEXIST).
    let err = nl
        .create_vxlan(&VxlanSpec {
            name: "vx1".into(),
            vni: 42,
            local: Some(ip("192.168.50.1")),
            port: Some(4789),
            underlay: Some(u0.index),
            ..VxlanSpec::default()
        })
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
}

#[test]
fn fdb_entries_replace_list_and_delete() {
    let sb = Sandbox::new("nl-fdb");
    let (host, nl) = connect(sb.host());
    let u0 = underlay(&nl, &host);
    let vx = nl
        .create_vxlan(&VxlanSpec {
            name: "vx0".into(),
            vni: 7,
            local: Some(ip("192.168.50.1")),
            port: Some(8472),
            underlay: Some(u0.index),
            ..VxlanSpec::default()
        })
        .expect("vxlan");
    let remote = mac("0a:00:00:00:00:02");

    nl.add_fdb(vx.index, remote, ip("192.168.50.2"))
        .expect("add fdb");
    let ours = |nl: &Netlink| -> Vec<netlink::FdbEntry> {
        nl.fdb_entries(vx.index)
            .expect("list fdb")
            .into_iter()
            .filter(|e| e.mac == remote)
            .collect()
    };
    let entries = ours(&nl);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].dst, Some(ip("192.168.50.2")));
    assert!(
        entries[0].is_self && entries[0].is_permanent(),
        "{entries:?}"
    );
    let j = fdb_json(sb.host(), "vx0");
    let e: Vec<_> = j
        .iter()
        .filter(|e| e["mac"] == "0a:00:00:00:00:02")
        .collect();
    assert_eq!(e.len(), 1, "{j:?}");
    assert_eq!(e[0]["dst"], "192.168.50.2");
    assert_eq!(e[0]["state"], "permanent");
    assert!(e[0]["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .any(|f| f == "self"));

    // Replace: same MAC, new VTEP; still one entry.
    nl.add_fdb(vx.index, remote, ip("192.168.50.3"))
        .expect("replace fdb");
    let entries = ours(&nl);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].dst, Some(ip("192.168.50.3")));
    let j = fdb_json(sb.host(), "vx0");
    let dsts: Vec<_> = j
        .iter()
        .filter(|e| e["mac"] == "0a:00:00:00:00:02")
        .map(|e| e["dst"].clone())
        .collect();
    assert_eq!(dsts, ["192.168.50.3"], "{j:?}");

    // A second MAC, deleted with its dst; the first deleted without.
    let other = mac("0a:00:00:00:00:03");
    nl.add_fdb(vx.index, other, ip("192.168.50.4"))
        .expect("add second");
    assert_eq!(
        nl.fdb_entries(vx.index)
            .expect("list")
            .iter()
            .filter(|e| e.mac == other)
            .count(),
        1
    );
    nl.del_fdb(vx.index, other, Some(ip("192.168.50.4")))
        .expect("del with dst");
    nl.del_fdb(vx.index, remote, None).expect("del");
    let left = nl.fdb_entries(vx.index).expect("list");
    assert!(
        !left.iter().any(|e| e.mac == remote || e.mac == other),
        "{left:?}"
    );
    assert!(!fdb_json(sb.host(), "vx0")
        .iter()
        .any(|e| e["mac"] == "0a:00:00:00:00:02"));

    let err = nl.del_fdb(vx.index, remote, None).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn neighbours_replace_list_and_delete() {
    let sb = Sandbox::new("nl-neigh");
    let (host, nl) = connect(sb.host());
    let u0 = underlay(&nl, &host);
    let vx = nl
        .create_vxlan(&VxlanSpec {
            name: "vx0".into(),
            vni: 9,
            underlay: Some(u0.index),
            local: Some(ip("192.168.50.1")),
            ..VxlanSpec::default()
        })
        .expect("vxlan");
    let (a, b) = (mac("0a:00:00:00:00:0a"), mac("0a:00:00:00:00:0b"));

    nl.add_neighbour(vx.index, ip("10.244.1.0"), a)
        .expect("add v4");
    nl.add_neighbour(vx.index, ip("fd00:244:1::"), a)
        .expect("add v6");
    let n = nl.neighbours(vx.index).expect("list");
    let v4 = n
        .iter()
        .find(|n| n.ip == ip("10.244.1.0"))
        .expect("v4 entry");
    assert_eq!(v4.mac, Some(a));
    assert!(v4.is_permanent());
    assert!(
        n.iter()
            .any(|n| n.ip == ip("fd00:244:1::") && n.mac == Some(a)),
        "{n:?}"
    );
    let j = sb
        .host()
        .ip_json(&["neigh", "show", "dev", "vx0", "to", "10.244.1.0"]);
    assert_eq!(j[0]["lladdr"], "0a:00:00:00:00:0a", "{j}");
    assert_eq!(j[0]["state"][0], "PERMANENT", "{j}");

    // Replace with another MAC: one entry, new MAC.
    nl.add_neighbour(vx.index, ip("10.244.1.0"), b)
        .expect("replace");
    let n = nl.neighbours(vx.index).expect("list");
    let v4: Vec<_> = n.iter().filter(|n| n.ip == ip("10.244.1.0")).collect();
    assert_eq!(v4.len(), 1, "{n:?}");
    assert_eq!(v4[0].mac, Some(b));
    let j = sb
        .host()
        .ip_json(&["neigh", "show", "dev", "vx0", "to", "10.244.1.0"]);
    assert_eq!(j[0]["lladdr"], "0a:00:00:00:00:0b", "{j}");
    // Entries of other links are not reported for this one.
    assert!(nl
        .neighbours(u0.index)
        .expect("list")
        .iter()
        .all(|n| n.index == u0.index));

    nl.del_neighbour(vx.index, ip("10.244.1.0"))
        .expect("del v4");
    nl.del_neighbour(vx.index, ip("fd00:244:1::"))
        .expect("del v6");
    let n = nl.neighbours(vx.index).expect("list");
    assert!(
        !n.iter()
            .any(|n| n.ip == ip("10.244.1.0") || n.ip == ip("fd00:244:1::")),
        "{n:?}"
    );
    assert_eq!(
        sb.host()
            .ip_json(&["neigh", "show", "dev", "vx0", "to", "10.244.1.0"]),
        serde_json::json!([])
    );
    let err = nl.del_neighbour(vx.index, ip("10.244.1.0")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
