//! Error kinds and context; namespace identity and where sockets live.

mod common;

use cni_harness::Sandbox;
use common::{connect, ip_link_names};
use netlink::{BridgeSpec, ErrorKind, Netlink, Netns};

#[test]
fn missing_links_are_not_found_and_duplicates_exist() {
    let sb = Sandbox::new("nl-errors");
    let (_host, nl) = connect(sb.host());

    let err = nl.delete_link(9999).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_exists());
    assert_eq!(err.errno(), Some(libc::ENODEV));
    let text = err.to_string();
    assert!(text.contains("delete link 9999"), "{text}");
    assert!(text.contains(sb.host().name()), "names the netns: {text}");

    assert!(nl.set_mtu(9999, 1400).unwrap_err().is_not_found());
    assert!(nl.set_up(9999).unwrap_err().is_not_found());
    assert!(nl.link_by_name("nope0").expect("lookup").is_none());
    assert!(nl.link_by_index(9999).expect("lookup").is_none());
    let err = nl.require_link("nope0").unwrap_err();
    assert!(
        err.is_not_found() && err.to_string().contains("nope0"),
        "{err}"
    );

    nl.create_bridge(&BridgeSpec::new("dup0")).expect("first");
    let err = nl.create_bridge(&BridgeSpec::new("dup0")).unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(!err.is_not_found());
    assert_eq!(err.errno(), Some(libc::EEXIST));

    // Refused before the kernel sees it.
    let err = nl
        .create_bridge(&BridgeSpec::new("name/with/slash"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.errno(), None);
    let err = nl.link_by_name("sixteen-chars-xx").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(ip_link_names(sb.host()), ["lo", "dup0"]);
}

#[test]
fn netns_identity() {
    let mut sb = Sandbox::new("nl-netns");
    sb.add_container();
    let host = Netns::open(sb.host().path()).expect("host");
    let host_again = Netns::open(sb.host().path()).expect("host again");
    let container = Netns::open(sb.container(0).path()).expect("container");
    let me = Netns::current().expect("current");

    assert!(host.same_as(&host_again));
    assert!(host.same_as(&host.try_clone().expect("clone")));
    assert!(!host.same_as(&container));
    assert!(!me.same_as(&host), "the sandbox is not the machine's netns");
    assert!(me.same_as(&Netns::open("/proc/self/ns/net").expect("self")));
    assert_eq!(host.path(), sb.host().path());

    // run_in executes inside the namespace, and the caller never moves.
    let inside = host
        .run_in(|| Netns::current().expect("current inside"))
        .expect("run_in");
    assert!(inside.same_as(&host));
    assert!(Netns::current().expect("current").same_as(&me));

    let err = Netns::open("/run/netns/cnit-no-such-ns").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn connect_puts_the_socket_in_the_target_netns_only() {
    let mut sb = Sandbox::new("nl-connect");
    sb.add_container();
    sb.host()
        .ip(&["link", "add", "onlyhost0", "type", "bridge"]);
    let me = Netns::current().expect("current");
    let (host, nl) = connect(sb.host());
    assert!(
        Netns::current().expect("current").same_as(&me),
        "caller thread not moved"
    );

    let names: Vec<String> = nl
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ip_link_names(sb.host()));
    assert!(names.contains(&"onlyhost0".to_string()));

    // A change through the socket lands in that namespace, not elsewhere.
    let container = Netns::open(sb.container(0).path()).expect("container");
    let cnl = Netlink::connect(&container).expect("connect container");
    cnl.create_bridge(&BridgeSpec::new("onlyctr0"))
        .expect("bridge in container");
    assert!(ip_link_names(sb.container(0)).contains(&"onlyctr0".to_string()));
    assert!(nl.link_by_name("onlyctr0").expect("lookup").is_none());
    assert!(!ip_link_names(sb.host()).contains(&"onlyctr0".to_string()));

    // The handle keeps the namespace alive after its name is removed.
    sb.container_mut(0).delete();
    let late = Netlink::connect(&container).expect("connect via held fd");
    assert!(late.link_by_name("onlyctr0").expect("lookup").is_some());
    drop(host);
}

/// `Netns::enter`: the calling thread is inside while the guard lives (a
/// socket made then belongs to that namespace) and back home after.
#[test]
fn enter_moves_the_thread_and_the_guard_brings_it_back() {
    let sb = Sandbox::new("nl-enter");
    let target = Netns::open(sb.host().path()).expect("open sandbox netns");
    let home = Netns::current().expect("current");
    assert!(!home.same_as(&target));
    let nl = {
        let _inside = target.enter().expect("enter");
        let here = Netns::current().expect("current inside");
        assert!(here.same_as(&target), "the thread is in the sandbox");
        Netlink::connect_current().expect("socket inside")
    };
    let back = Netns::current().expect("current after");
    assert!(back.same_as(&home), "the guard moved the thread back");
    // The socket stays in the sandbox: it sees the sandbox's links only.
    nl.create_bridge(&BridgeSpec::new("entered0"))
        .expect("bridge in the sandbox");
    assert!(ip_link_names(sb.host()).contains(&"entered0".to_string()));
}
