//! overlayd across simulated nodes: leases, programming, reachability of
//! every node's VTEP over the overlay, healing, dead nodes, restarts.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CONFIG: &str = r#"{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1}"#;

fn vtep(c: &Cluster, i: usize) -> String {
    c.subnet(i)["subnet"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Waits until node `from` has a route to each of `to`'s subnets.
fn routes_to(c: &Cluster, from: usize, to: &[usize]) -> Option<Duration> {
    let want: Vec<String> = to
        .iter()
        .map(|i| c.subnet(*i)["subnet"].as_str().unwrap().to_string())
        .collect();
    let t = Instant::now();
    wait_for("routes", Duration::from_secs(20), || {
        let have = c.overlay_routes(from);
        want.iter().all(|w| have.contains(w)).then(|| t.elapsed())
    })
}

#[test]
fn three_nodes_lease_subnets_and_reach_each_others_vteps() {
    let mut c = Cluster::new("ovl3", CONFIG, 6);
    for i in 0..3 {
        c.add_node();
        c.start(i, &[]);
    }
    let subnets: Vec<String> = (0..3)
        .map(|i| c.subnet(i)["subnet"].as_str().unwrap().to_string())
        .collect();
    let distinct: std::collections::BTreeSet<_> = subnets.iter().collect();
    assert_eq!(distinct.len(), 3, "{subnets:?}");
    let f = c.subnet(0);
    assert_eq!(f["mtu"], 1450, "underlay 1500 - 50");
    assert_eq!(f["device"], "vxlan.1");
    assert_eq!(f["network"], "10.244.0.0/16");
    for i in 0..3 {
        let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
        assert!(
            routes_to(&c, i, &others).is_some(),
            "node-{i} routes: {:?}\n{}",
            c.overlay_routes(i),
            c.log_text(i)
        );
        // Only the others' subnets, nothing else.
        assert_eq!(c.overlay_routes(i).len(), 2, "{:?}", c.overlay_routes(i));
    }
    for i in 0..3 {
        for j in (0..3).filter(|j| *j != i) {
            assert!(
                ping(c.nodes[i].ns(), &vtep(&c, j)),
                "node-{i} -> node-{j}'s VTEP over the overlay"
            );
        }
    }
}

fn fdb_macs(c: &Cluster, i: usize) -> Vec<String> {
    c.nodes[i]
        .ns()
        .ip_json(&["-d", "neigh", "show", "dev", "vxlan.1"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["lladdr"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_late_node_is_reached_a_dead_node_is_dropped_and_deleted_state_heals() {
    let ttl = 5;
    let mut c = Cluster::new("ovlife", CONFIG, ttl);
    for i in 0..3 {
        c.add_node();
        c.start(i, &[]);
    }
    for i in 0..3 {
        let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
        assert!(routes_to(&c, i, &others).is_some(), "{}", c.log_text(i));
    }
    // A fourth node joins: everyone reaches it, and it reaches everyone.
    c.add_node();
    let t = Instant::now();
    c.start(3, &[]);
    let late = vtep(&c, 3);
    for i in 0..3 {
        assert!(
            routes_to(&c, i, &[3]).is_some(),
            "node-{i} never learned node-3"
        );
    }
    eprintln!(
        "a late node was programmed on every other node {:?} after its overlayd started",
        t.elapsed()
    );
    for i in 0..3 {
        assert!(ping(c.nodes[i].ns(), &late), "node-{i} -> late node");
        assert!(ping(c.nodes[3].ns(), &vtep(&c, i)), "late node -> node-{i}");
    }
    // A route and a neighbour deleted by hand come back by reconcile.
    let s1 = c.subnet(1)["subnet"].as_str().unwrap().to_string();
    c.nodes[0].ns().ip(&["route", "del", &s1, "dev", "vxlan.1"]);
    c.nodes[0].ns().ip(&["neigh", "flush", "dev", "vxlan.1"]);
    assert!(routes_to(&c, 0, &[1]).is_some(), "route healed");
    let healed = wait_for("neighbours", Duration::from_secs(10), || {
        (fdb_macs(&c, 0).len() == 3).then_some(())
    });
    assert!(healed.is_some(), "neighbours healed: {:?}", fdb_macs(&c, 0));
    assert!(ping(c.nodes[0].ns(), &vtep(&c, 1)));
    // Node 1's device is deleted by hand: it comes back with a new MAC, which
    // the others follow.
    let old_mac = c.nodes[1].ns().ip_json(&["link", "show", "vxlan.1"])[0]["address"].clone();
    c.nodes[1].ns().ip(&["link", "del", "vxlan.1"]);
    let new_mac = wait_for("device back", Duration::from_secs(10), || {
        let l = c.nodes[1].ns().ip_json(&["link", "show"]);
        l.as_array()?
            .iter()
            .find(|l| l["ifname"] == "vxlan.1")
            .map(|l| l["address"].clone())
    })
    .expect("node-1 recreated its device");
    assert_ne!(new_mac, old_mac);
    let followed = wait_for("new MAC on node-0", Duration::from_secs(10), || {
        fdb_macs(&c, 0)
            .contains(&new_mac.as_str()?.to_string())
            .then_some(())
    });
    assert!(
        followed.is_some(),
        "node-0 follows node-1's new VTEP MAC: {:?}",
        fdb_macs(&c, 0)
    );
    assert!(wait_for("ping", Duration::from_secs(5), || ping(
        c.nodes[0].ns(),
        &vtep(&c, 1)
    )
    .then_some(()))
    .is_some());
    // Node 2 dies (SIGKILL: its lease is not revoked): the others drop it
    // when the lease expires.
    let dead = c.subnet(2)["subnet"].as_str().unwrap().to_string();
    c.kill(2);
    let t = Instant::now();
    let gone = wait_for(
        "dead node's routes gone",
        Duration::from_secs(u64::from(ttl) + 10),
        || {
            [0, 1, 3]
                .iter()
                .all(|i| !c.overlay_routes(*i).contains(&dead))
                .then(|| t.elapsed())
        },
    );
    let gone = gone.unwrap_or_else(|| panic!("routes to {dead} stayed: {:?}", c.overlay_routes(0)));
    eprintln!(
        "a dead node's routes were gone {gone:?} after its overlayd was killed (lease TTL {ttl} s)"
    );
    assert!(
        gone >= Duration::from_secs(1),
        "not before the lease could expire: {gone:?}"
    );
}

#[test]
fn a_restart_keeps_the_subnet_and_sigterm_keeps_the_lease() {
    let mut c = Cluster::new("ovrst", CONFIG, 30);
    for i in 0..2 {
        c.add_node();
        c.start(i, &[]);
    }
    assert!(routes_to(&c, 0, &[1]).is_some());
    let before = c.subnet(1)["subnet"].clone();
    let status = c.stop(1);
    assert!(
        status.success(),
        "SIGTERM is a clean stop: {status:?}\n{}",
        c.log_text(1)
    );
    // The lease stays: node-0 keeps its route while node-1 is away.
    std::thread::sleep(Duration::from_secs(2));
    assert!(c
        .overlay_routes(0)
        .contains(&before.as_str().unwrap().to_string()));
    c.start(1, &[]);
    c.wait_leased(1, 2);
    assert!(routes_to(&c, 0, &[1]).is_some());
    assert_eq!(
        c.subnet(1)["subnet"],
        before,
        "restarted within the TTL: same subnet"
    );
    assert!(ping(c.nodes[0].ns(), &vtep(&c, 1)));
    // --release-on-exit gives the subnet back at once.
    let status = c.stop(1);
    assert!(status.success(), "{status:?}\n{}", c.log_text(1));
    c.start(1, &["--release-on-exit"]);
    c.wait_leased(1, 3);
    assert!(c.stop(1).success());
    let t = Instant::now();
    let gone = wait_for("released", Duration::from_secs(5), || {
        (!c.overlay_routes(0)
            .contains(&before.as_str().unwrap().to_string()))
        .then(|| t.elapsed())
    });
    assert!(
        gone.is_some(),
        "a released lease drops the route without waiting for the TTL"
    );
    assert!(
        !c.subnet_file(1).exists(),
        "the subnet file goes with the lease"
    );
}

#[test]
fn metrics_and_health_are_served() {
    let mut c = Cluster::new("ovmet", CONFIG, 30);
    for _ in 0..2 {
        c.add_node();
    }
    c.start(0, &["--metrics-addr", "127.0.0.1:9464"]);
    c.start(1, &[]);
    assert!(routes_to(&c, 0, &[1]).is_some());
    let get = |path: &str| -> String {
        c.nodes[0].ns().run_in(|| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:9464").expect("metrics port");
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    };
    let health = wait_for("healthy", Duration::from_secs(10), || {
        let h = get("/healthz");
        h.starts_with("HTTP/1.0 200").then_some(h)
    });
    assert!(health.is_some(), "{}", get("/healthz"));
    let m = get("/metrics");
    assert!(m.contains("overlayd_nodes_known 1"), "{m}");
    assert!(
        m.contains("overlayd_event_to_programmed_seconds_count"),
        "{m}"
    );
    assert!(m.contains("overlayd_programming_errors_total 0"), "{m}");
    assert!(m.contains("overlayd_lease_renewals_total"), "{m}");
}

#[test]
fn direct_routing_on_a_shared_segment_skips_the_tunnel() {
    let cfg = r#"{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1, "directRouting": true}"#;
    let mut c = Cluster::new("ovdir", cfg, 30);
    for i in 0..2 {
        c.add_node();
        c.start(i, &[]);
    }
    let s1 = c.subnet(1)["subnet"].as_str().unwrap().to_string();
    let direct = wait_for("direct route", Duration::from_secs(20), || {
        let r = c.nodes[0].ns().ip_json(&["route", "show", &s1]);
        let r = r.as_array()?.first()?.clone();
        (r["dev"] == "eth0").then_some(r)
    })
    .unwrap_or_else(|| panic!("no direct route: {}", c.log_text(0)));
    assert_eq!(direct["gateway"], c.nodes[1].ip.to_string(), "{direct}");
    assert!(c.overlay_routes(0).is_empty(), "nothing through the tunnel");
    assert!(
        ping(c.nodes[0].ns(), &vtep(&c, 1)),
        "reachable over the underlay"
    );
}
