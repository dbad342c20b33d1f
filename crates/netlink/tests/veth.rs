//! veth pairs whose peer is born inside the container namespace, and changes
//! to existing links.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_harness::Sandbox;
use common::{connect, ip_link, ip_link_names, mac};
use netlink::{BridgeSpec, Netns, VethPeer, VethSpec};

/// `ip -n <ns> -o monitor link` running in the background, its output
/// collected; killed on drop.
struct Monitor {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Monitor {
    fn start(ns: &cni_harness::Netns) -> Monitor {
        let mut child = Command::new("ip")
            .args(["-n", ns.name(), "-o", "monitor", "link"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ip monitor");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Monitor { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().expect("lock").clone()
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "ip monitor never printed {needle:?}; got:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn veth_peer_is_born_in_the_container_and_never_seen_on_the_host() {
    let mut sb = Sandbox::new("nl-veth");
    sb.add_container();
    let (_host, nl) = connect(sb.host());
    let container = Netns::open(sb.container(0).path()).expect("open container");

    let bridge = nl.create_bridge(&BridgeSpec::new("cni0")).expect("bridge");
    // A host link called like the peer: creating the peer must not clash with it.
    sb.host().ip(&["link", "add", "eth0", "type", "bridge"]);

    // The monitor subscribes asynchronously: wait until it reports a change we make.
    let monitor = Monitor::start(sb.host());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut mtu = 1400;
    while !monitor.text().contains("cni0") {
        assert!(Instant::now() < deadline, "ip monitor prints nothing");
        mtu -= 1;
        nl.set_mtu(bridge.index, mtu).expect("poke bridge");
        std::thread::sleep(Duration::from_millis(50));
    }

    let host_mac = mac("02:00:00:00:00:aa");
    let peer_mac = mac("02:00:00:00:00:bb");
    let veth = nl
        .create_veth(&VethSpec {
            name: "veth0abc".into(),
            mtu: Some(1400),
            mac: Some(host_mac),
            master: Some(bridge.index),
            peer: VethPeer {
                name: "eth0".into(),
                mtu: Some(1380),
                mac: Some(peer_mac),
                netns: &container,
            },
        })
        .expect("create veth");

    // Host side as returned.
    assert_eq!(veth.name, "veth0abc");
    assert!(veth.is_kind("veth"), "{veth:?}");
    assert_eq!(veth.mtu, 1400);
    assert_eq!(veth.mac, Some(host_mac));
    assert_eq!(veth.master, Some(bridge.index));
    assert!(veth.up, "host side is created up");
    assert!(
        veth.link_netnsid.is_some(),
        "peer is in another netns: {veth:?}"
    );

    // Host side as `ip` sees it.
    let j = ip_link(sb.host(), "veth0abc");
    assert_eq!(j["master"], "cni0", "{j}");
    assert_eq!(j["mtu"], 1400, "{j}");
    assert_eq!(j["address"], "02:00:00:00:00:aa", "{j}");

    // Peer inside the container: right name, MTU, MAC, still down.
    let p = ip_link(sb.container(0), "eth0");
    assert_eq!(p["mtu"], 1380, "{p}");
    assert_eq!(p["address"], "02:00:00:00:00:bb", "{p}");
    assert_eq!(p["linkinfo"]["info_kind"], "veth", "{p}");
    let flags: Vec<&str> = p["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(!flags.contains(&"UP"), "peer is left down: {p}");
    assert_eq!(
        Some(u64::from(veth.link.expect("peer index"))),
        p["ifindex"].as_u64()
    );

    // The same through our API inside the container.
    let cnl = netlink::Netlink::connect(&container).expect("connect container");
    let peer = cnl.link_by_name("eth0").expect("get").expect("peer exists");
    assert!(peer.is_kind("veth"));
    assert_eq!((peer.mtu, peer.mac, peer.up), (1380, Some(peer_mac), false));
    assert_eq!(
        peer.link,
        Some(veth.index),
        "peer points back at the host side"
    );

    // Flush the monitor with one more event after the creation, then check that
    // no link called eth0 was ever announced in the host namespace.
    nl.set_mtu(veth.index, 1390).expect("mtu");
    monitor.wait_for("mtu 1390");
    let seen = monitor.text();
    assert!(
        seen.contains("veth0abc"),
        "monitor saw the host side:\n{seen}"
    );
    assert!(
        !seen.contains(": eth0"),
        "the peer appeared in the host netns:\n{seen}"
    );
    drop(monitor);
    // The pre-existing host eth0 is untouched.
    assert_eq!(
        ip_link(sb.host(), "eth0")["linkinfo"]["info_kind"],
        "bridge"
    );

    // Deleting the host side takes the peer with it.
    nl.delete_link(veth.index).expect("delete veth");
    assert!(nl.link_by_index(veth.index).expect("get").is_none());
    assert!(!ip_link_names(sb.container(0)).contains(&"eth0".to_string()));
    assert!(cnl.link_by_name("eth0").expect("get").is_none());
}

#[test]
fn veth_name_clashes_are_reported_and_leave_nothing_behind() {
    let mut sb = Sandbox::new("nl-vclash");
    sb.add_container();
    let (_host, nl) = connect(sb.host());
    let container = Netns::open(sb.container(0).path()).expect("open container");
    sb.container(0)
        .ip(&["link", "add", "eth0", "type", "bridge"]);
    let spec = |host: &str, peer: &str| VethSpec {
        name: host.into(),
        mtu: None,
        mac: None,
        master: None,
        peer: VethPeer {
            name: peer.into(),
            mtu: None,
            mac: None,
            netns: &container,
        },
    };

    // Peer name taken inside the container.
    let err = nl.create_veth(&spec("vethA", "eth0")).unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(err.to_string().contains("vethA"), "{err}");
    assert!(
        nl.link_by_name("vethA").expect("get").is_none(),
        "no half pair left"
    );

    // Host name taken.
    nl.create_veth(&spec("vethB", "eth1")).expect("first");
    let err = nl.create_veth(&spec("vethB", "eth2")).unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(!ip_link_names(sb.container(0)).contains(&"eth2".to_string()));

    // A master that doesn't exist: the kernel undoes the whole pair.
    let mut bad_master = spec("vethC", "eth3");
    bad_master.master = Some(9999);
    let err = nl.create_veth(&bad_master).unwrap_err();
    assert!(err.errno().is_some(), "{err}");
    assert!(nl.link_by_name("vethC").expect("get").is_none());
    assert!(!ip_link_names(sb.container(0)).contains(&"eth3".to_string()));

    // Without MTU and MAC both ends get the kernel's defaults.
    let eth1 = ip_link(sb.container(0), "eth1");
    assert_eq!(eth1["mtu"], 1500, "{eth1}");
}

#[test]
fn existing_links_can_be_changed() {
    let mut sb = Sandbox::new("nl-linkset");
    sb.add_container();
    let (_host, nl) = connect(sb.host());
    let container = Netns::open(sb.container(0).path()).expect("open container");
    let br = nl.create_bridge(&BridgeSpec::new("br0")).expect("bridge");
    let veth = nl
        .create_veth(&VethSpec {
            name: "vethX".into(),
            mtu: None,
            mac: None,
            master: Some(br.index),
            peer: VethPeer {
                name: "eth0".into(),
                mtu: None,
                mac: None,
                netns: &container,
            },
        })
        .expect("veth");
    let get = |i: u32| nl.link_by_index(i).expect("get").expect("exists");

    nl.set_master(veth.index, None).expect("nomaster");
    assert_eq!(get(veth.index).master, None);
    assert!(ip_link(sb.host(), "vethX").get("master").is_none());
    nl.set_master(veth.index, Some(br.index)).expect("master");
    assert_eq!(get(veth.index).master, Some(br.index));
    assert_eq!(ip_link(sb.host(), "vethX")["master"], "br0");

    nl.set_hairpin(veth.index, true).expect("hairpin on");
    let j = ip_link(sb.host(), "vethX");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], true, "{j}");
    nl.set_hairpin(veth.index, false).expect("hairpin off");
    let j = ip_link(sb.host(), "vethX");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], false, "{j}");

    // Both flags in one request; None leaves a flag alone.
    let flags = netlink::PortFlags {
        hairpin: Some(true),
        isolated: Some(true),
    };
    nl.set_port_flags(veth.index, flags).expect("port flags");
    let j = ip_link(sb.host(), "vethX");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], true, "{j}");
    assert_eq!(j["linkinfo"]["info_slave_data"]["isolated"], true, "{j}");
    let only_isolated = netlink::PortFlags {
        hairpin: None,
        isolated: Some(false),
    };
    nl.set_port_flags(veth.index, only_isolated)
        .expect("port flags");
    let j = ip_link(sb.host(), "vethX");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], true, "{j}");
    assert_eq!(j["linkinfo"]["info_slave_data"]["isolated"], false, "{j}");
    nl.set_hairpin(veth.index, false).expect("hairpin off");

    nl.set_promisc(br.index, true).expect("promisc");
    assert_eq!(ip_link(sb.host(), "br0")["promiscuity"], 1);

    nl.set_mtu(veth.index, 1300).expect("mtu");
    assert_eq!(get(veth.index).mtu, 1300);
    assert_eq!(ip_link(sb.host(), "vethX")["mtu"], 1300);

    let m = mac("02:12:34:56:78:9a");
    nl.set_mac(veth.index, m).expect("mac");
    assert_eq!(get(veth.index).mac, Some(m));
    assert_eq!(ip_link(sb.host(), "vethX")["address"], "02:12:34:56:78:9a");

    assert!(get(veth.index).up);
    nl.set_down(veth.index).expect("down");
    assert!(!get(veth.index).up);
    nl.rename(veth.index, "vethY").expect("rename");
    nl.set_up(veth.index).expect("up");
    let err = nl.rename(veth.index, "br0").unwrap_err();
    assert!(err.is_exists(), "rename onto a taken name: {err}");
    let err = nl.rename(veth.index, "much-too-long-name").unwrap_err();
    assert_eq!(err.kind(), netlink::ErrorKind::InvalidInput, "{err}");
    let renamed = get(veth.index);
    assert_eq!(renamed.name, "vethY");
    assert!(renamed.up);
    assert!(nl.link_by_name("vethX").expect("get").is_none());
    assert_eq!(
        nl.link_by_name("vethY").expect("get").map(|l| l.index),
        Some(veth.index)
    );

    let mut names: Vec<String> = nl
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort();
    assert_eq!(names, ["br0", "lo", "vethY"]);
    let mut ip_names = ip_link_names(sb.host());
    ip_names.sort();
    assert_eq!(names, ip_names);
}
