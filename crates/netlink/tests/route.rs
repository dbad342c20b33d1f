//! Routes: default via gateway, onlink, metric / MTU / advmss, tables,
//! add / replace / list / delete.

mod common;

use cni_harness::Sandbox;
use common::{connect, ip, net};
use netlink::{BridgeSpec, IpFamily, Link, Netlink, Route};

/// An admin-up bridge with 10.10.0.1/24 and fd00:10::1/64.
fn link(nl: &Netlink) -> Link {
    let br = nl.create_bridge(&BridgeSpec::new("br0")).expect("bridge");
    nl.add_address(br.index, net("10.10.0.1/24"))
        .expect("v4 addr");
    nl.add_address(br.index, net("fd00:10::1/64"))
        .expect("v6 addr");
    br
}

fn find(nl: &Netlink, family: IpFamily, dst: &str) -> Vec<Route> {
    nl.routes(family)
        .expect("list routes")
        .into_iter()
        .filter(|r| r.dst == net(dst))
        .collect()
}

#[test]
fn default_route_via_gateway() {
    let sb = Sandbox::new("nl-rtdef");
    let (_host, nl) = connect(sb.host());
    let br = link(&nl);

    let route = Route::default_via(ip("10.10.0.254"));
    nl.add_route(&route).expect("add default");
    let found = find(&nl, IpFamily::V4, "0.0.0.0/0");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].is_default());
    assert_eq!(found[0].gateway, Some(ip("10.10.0.254")));
    assert_eq!(found[0].oif, Some(br.index), "kernel resolved the device");
    let j = sb.host().ip_json(&["route", "show", "default"]);
    assert_eq!(j[0]["gateway"], "10.10.0.254", "{j}");
    assert_eq!(j[0]["dev"], "br0", "{j}");

    let err = nl.add_route(&route).unwrap_err();
    assert!(err.is_exists(), "{err}");

    // IPv6 default via a link-local gateway on the bridge.
    let route6 = Route::default_via(ip("fe80::1")).dev(br.index);
    nl.add_route(&route6).expect("add v6 default");
    let found6 = find(&nl, IpFamily::V6, "::/0");
    assert_eq!(found6.len(), 1, "{found6:?}");
    assert_eq!(found6[0].gateway, Some(ip("fe80::1")));
    assert_eq!(found6[0].metric, Some(1024), "kernel default IPv6 metric");
    assert!(!nl
        .routes(IpFamily::V4)
        .expect("v4")
        .iter()
        .any(|r| r.dst.is_ipv6()));

    nl.del_route(&route).expect("del v4 default");
    nl.del_route(&route6).expect("del v6 default");
    assert!(find(&nl, IpFamily::V4, "0.0.0.0/0").is_empty());
    assert!(find(&nl, IpFamily::V6, "::/0").is_empty());
    assert_eq!(
        sb.host().ip_json(&["route", "show", "default"]),
        serde_json::json!([])
    );
    let err = nl.del_route(&route).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn onlink_route_to_a_gateway_outside_every_subnet() {
    let sb = Sandbox::new("nl-rtonlink");
    let (_host, nl) = connect(sb.host());
    let br = link(&nl);
    let plain = Route::new(net("10.20.0.0/16"))
        .via(ip("192.168.77.1"))
        .dev(br.index);

    // Without onlink the kernel refuses an unreachable gateway...
    let err = nl.add_route(&plain).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
    // ...with it, it takes it.
    let onlink = plain.clone().onlink();
    nl.add_route(&onlink).expect("add onlink");
    let found = find(&nl, IpFamily::V4, "10.20.0.0/16");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].onlink, "{found:?}");
    assert_eq!(found[0].gateway, Some(ip("192.168.77.1")));
    assert_eq!(found[0].oif, Some(br.index));
    let j = sb.host().ip_json(&["route", "show", "10.20.0.0/16"]);
    assert!(
        j[0]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "onlink"),
        "{j}"
    );

    nl.del_route(&onlink).expect("del");
    assert!(find(&nl, IpFamily::V4, "10.20.0.0/16").is_empty());
}

#[test]
fn route_with_metric_mtu_advmss_and_replace() {
    let sb = Sandbox::new("nl-rtmetric");
    let (_host, nl) = connect(sb.host());
    let br = link(&nl);
    let mut route = Route::new(net("10.30.1.7/16"))
        .dev(br.index)
        .metric(50)
        .mtu(1300);
    route.advmss = Some(1260);

    nl.add_route(&route).expect("add");
    let found = find(&nl, IpFamily::V4, "10.30.0.0/16");
    assert_eq!(found.len(), 1, "host bits cleared: {found:?}");
    let r = &found[0];
    assert_eq!(
        (r.metric, r.mtu, r.advmss),
        (Some(50), Some(1300), Some(1260))
    );
    assert_eq!(r.scope, Some(253), "link scope for a route without gateway");
    assert_eq!(r.gateway, None);
    let j = sb.host().ip_json(&["route", "show", "10.30.0.0/16"]);
    assert_eq!(j[0]["metric"], 50, "{j}");
    assert_eq!(j[0]["scope"], "link", "{j}");
    assert_eq!(j[0]["metrics"][0]["mtu"], 1300, "{j}");
    assert_eq!(j[0]["metrics"][0]["advmss"], 1260, "{j}");

    // The same metric again: exists. Another metric: a second route.
    assert!(nl.add_route(&route).unwrap_err().is_exists());
    let other_metric = route.clone().metric(60);
    nl.add_route(&other_metric).expect("second metric");
    assert_eq!(find(&nl, IpFamily::V4, "10.30.0.0/16").len(), 2);
    nl.del_route(&other_metric).expect("del metric 60");

    // Replace changes the MTU of the metric-50 route in place.
    let replaced = route.clone().mtu(1200);
    nl.replace_route(&replaced).expect("replace");
    let found = find(&nl, IpFamily::V4, "10.30.0.0/16");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].metric, found[0].mtu), (Some(50), Some(1200)));
    // replace_route also adds when missing.
    let fresh = Route::new(net("10.31.0.0/16")).dev(br.index);
    nl.replace_route(&fresh).expect("replace adds");
    assert_eq!(find(&nl, IpFamily::V4, "10.31.0.0/16").len(), 1);

    // Delete with just the destination (other fields act as wildcards).
    nl.del_route(&Route::new(net("10.30.0.0/16"))).expect("del");
    nl.del_route(&fresh).expect("del fresh");
    assert!(find(&nl, IpFamily::V4, "10.30.0.0/16").is_empty());
    assert_eq!(
        sb.host().ip_json(&["route", "show", "10.30.0.0/16"]),
        serde_json::json!([])
    );
}

#[test]
fn routes_in_other_tables_stay_out_of_main() {
    let sb = Sandbox::new("nl-rttable");
    let (_host, nl) = connect(sb.host());
    let br = link(&nl);
    let route = Route::new(net("10.40.0.0/16")).dev(br.index).table(100);
    let big = Route::new(net("10.41.0.0/16")).dev(br.index).table(1000);
    nl.add_route(&route).expect("add table 100");
    nl.add_route(&big).expect("add table 1000");

    assert!(find(&nl, IpFamily::V4, "10.40.0.0/16").is_empty());
    let t100 = nl.routes_in_table(IpFamily::V4, 100).expect("table 100");
    assert_eq!(t100.len(), 1, "{t100:?}");
    assert_eq!(
        (t100[0].dst, t100[0].table),
        (net("10.40.0.0/16"), Some(100))
    );
    let t1000 = nl.routes_in_table(IpFamily::V4, 1000).expect("table 1000");
    assert_eq!(t1000.len(), 1, "{t1000:?}");
    assert_eq!(t1000[0].table, Some(1000));
    let j = sb.host().ip_json(&["route", "show", "table", "1000"]);
    assert_eq!(j[0]["dst"], "10.41.0.0/16", "{j}");
    // Main-table routes report `table: None`, like the ones we add by default.
    assert!(nl
        .routes(IpFamily::V4)
        .expect("main")
        .iter()
        .all(|r| r.table.is_none()));

    nl.del_route(&route).expect("del 100");
    nl.del_route(&big).expect("del 1000");
    assert!(nl
        .routes_in_table(IpFamily::V4, 100)
        .expect("table")
        .is_empty());
    assert!(nl
        .routes_in_table(IpFamily::V4, 1000)
        .expect("table")
        .is_empty());
}

/// `netlink::lookup`: the one-shot, runtime-free route lookup portmap uses.
#[test]
fn one_shot_lookup_names_the_output_interface() {
    let sb = Sandbox::new("nl-lookup");
    let (host, nl) = connect(sb.host());
    let br = link(&nl);
    let (v4, v6, nowhere, local, name, missing) = host
        .run_in(|| {
            (
                netlink::lookup::route_oif(ip("10.10.0.7")).expect("v4 lookup"),
                netlink::lookup::route_oif(ip("fd00:10::7")).expect("v6 lookup"),
                netlink::lookup::route_oif(ip("192.0.2.1")).expect("no route"),
                netlink::lookup::route_oif(ip("10.10.0.1")).expect("local"),
                netlink::lookup::ifname(br.index).expect("name"),
                netlink::lookup::ifname(9999).expect("no such index"),
            )
        })
        .expect("run in the sandbox");
    assert_eq!(v4, Some(br.index));
    assert_eq!(v6, Some(br.index));
    assert_eq!(nowhere, None, "no default route in the sandbox");
    assert_eq!(local, None, "the bridge's own address is a local route");
    assert_eq!(name.as_deref(), Some("br0"));
    assert_eq!(missing, None);
}
