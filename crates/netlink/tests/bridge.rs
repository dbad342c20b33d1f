//! Bridges: creation, idempotent `ensure_bridge`, clash with a non-bridge.

mod common;

use cni_harness::Sandbox;
use common::{connect, ip_link, mac};
use netlink::{BridgeSpec, ErrorKind, Netns, VethPeer, VethSpec};

#[test]
fn create_bridge_sets_mtu_mac_and_up_and_refuses_duplicates() {
    let sb = Sandbox::new("nl-br");
    let (_host, nl) = connect(sb.host());
    let spec = BridgeSpec {
        name: "cni0".into(),
        mtu: Some(1450),
        mac: Some(mac("02:00:0a:00:00:01")),
        vlan_filtering: None,
    };
    let br = nl.create_bridge(&spec).expect("create");
    assert!(br.is_kind("bridge"), "{br:?}");
    assert_eq!((br.name.as_str(), br.mtu, br.up), ("cni0", 1450, true));
    assert_eq!(br.mac, spec.mac);
    assert_eq!(br.vlan_filtering, Some(false));

    let j = ip_link(sb.host(), "cni0");
    assert_eq!(j["linkinfo"]["info_kind"], "bridge", "{j}");
    assert_eq!(j["mtu"], 1450, "{j}");
    assert_eq!(j["address"], "02:00:0a:00:00:01", "{j}");
    assert!(
        j["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"),
        "{j}"
    );

    let err = nl.create_bridge(&spec).unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(!err.is_not_found());
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert!(err.to_string().contains("create bridge cni0"), "{err}");
}

#[test]
fn ensure_bridge_is_idempotent() {
    let sb = Sandbox::new("nl-brensure");
    let (_host, nl) = connect(sb.host());
    let spec = BridgeSpec::new("cni1");

    let first = nl.ensure_bridge(&spec).expect("creates");
    assert!(first.is_kind("bridge") && first.up);
    let second = nl.ensure_bridge(&spec).expect("finds");
    assert_eq!(second.index, first.index, "the same bridge, not a new one");

    // An existing bridge that is down is brought up; its MTU is left alone.
    nl.set_down(first.index).expect("down");
    nl.set_mtu(first.index, 1300).expect("mtu");
    let third = nl
        .ensure_bridge(&BridgeSpec {
            mtu: Some(1500),
            vlan_filtering: Some(false),
            ..spec.clone()
        })
        .expect("finds again");
    assert_eq!(third.index, first.index);
    assert!(third.up, "ensure_bridge brings it up");
    assert_eq!(third.mtu, 1300);

    let names: Vec<String> = nl
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "cni1").count(),
        1,
        "{names:?}"
    );
}

#[test]
fn ensure_bridge_refuses_a_non_bridge_of_that_name() {
    let mut sb = Sandbox::new("nl-brclash");
    sb.add_container();
    let (_host, nl) = connect(sb.host());
    let container = Netns::open(sb.container(0).path()).expect("container");
    let veth = nl
        .create_veth(&VethSpec {
            name: "cni2".into(),
            mtu: None,
            mac: None,
            master: None,
            peer: VethPeer {
                name: "eth0".into(),
                mtu: None,
                mac: None,
                netns: &container,
            },
        })
        .expect("veth named like the bridge");

    let err = nl.ensure_bridge(&BridgeSpec::new("cni2")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
    assert!(!err.is_exists() && !err.is_not_found());
    let text = err.to_string();
    assert!(text.contains("cni2") && text.contains("veth"), "{text}");
    // Nothing was changed: still the veth.
    let still = nl.link_by_name("cni2").expect("get").expect("exists");
    assert_eq!(still.index, veth.index);
    assert!(still.is_kind("veth"));
}

/// Whether the running kernel creates a VLAN-filtering bridge, asked of
/// iproute2 (not our code) in the host namespace of `sb` (the probe bridge
/// is deleted again): true when it does, false when it refuses with
/// "Operation not supported". Any other outcome fails the test.
fn kernel_has_bridge_vlan_filtering(sb: &Sandbox) -> bool {
    let out = sb
        .host()
        .command("ip")
        .args([
            "link",
            "add",
            "vfprobe0",
            "type",
            "bridge",
            "vlan_filtering",
            "1",
        ])
        .output()
        .expect("run ip (Debian package iproute2)");
    if out.status.success() {
        let j = ip_link(sb.host(), "vfprobe0");
        assert_eq!(
            j["linkinfo"]["info_data"]["vlan_filtering"], 1,
            "iproute2 made the probe bridge but without filtering: {j}"
        );
        sb.host().ip(&["link", "del", "vfprobe0"]);
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Operation not supported"),
        "probing bridge VLAN filtering with iproute2 failed otherwise: {err}"
    );
    false
}

#[test]
fn vlan_filtering_is_applied_or_refused_cleanly() {
    let sb = Sandbox::new("nl-brvlan");
    // Probed first, independently: the branch below must be the one this
    // kernel supports (a bug that always refuses fails on a kernel with
    // filtering; one that ignores the request fails on a kernel without).
    let supported = kernel_has_bridge_vlan_filtering(&sb);
    let (_host, nl) = connect(sb.host());
    let spec = BridgeSpec {
        vlan_filtering: Some(true),
        ..BridgeSpec::new("cni3")
    };
    match nl.create_bridge(&spec) {
        Ok(br) => {
            // Kernel with CONFIG_BRIDGE_VLAN_FILTERING.
            assert!(
                supported,
                "created {br:?} although this kernel refuses VLAN filtering"
            );
            assert_eq!(br.vlan_filtering, Some(true));
            let j = ip_link(sb.host(), "cni3");
            assert_eq!(j["linkinfo"]["info_data"]["vlan_filtering"], 1, "{j}");
        }
        Err(err) => {
            // Kernel without it (as on these machines): a clear error, no bridge.
            assert!(
                !supported,
                "refused VLAN filtering although this kernel supports it: {err}"
            );
            assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
            assert!(nl.link_by_name("cni3").expect("get").is_none());
        }
    }
    // The refusal is about filtering only: the same bridge without it is made.
    let plain = nl
        .create_bridge(&BridgeSpec {
            vlan_filtering: Some(false),
            ..BridgeSpec::new("cni4")
        })
        .expect("a bridge with vlan_filtering off");
    assert_eq!(plain.vlan_filtering, Some(false));
    let j = ip_link(sb.host(), "cni4");
    assert_eq!(j["linkinfo"]["info_data"]["vlan_filtering"], 0, "{j}");
}
