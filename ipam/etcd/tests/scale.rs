//! Many nodes at once, against one etcd member and against a 3-member
//! cluster that loses a member mid-run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use cni_harness::{EtcdCluster, EtcdServer};
use common::*;
use serde_json::{json, Value};

const NODES: usize = 10;
const PER_NODE: usize = 30;

fn node(n: usize) -> String {
    format!("node-{n:02}")
}

/// ADDs every (node, container) at once, each retried while it answers
/// code 11; returns the addresses by `node/container` and how many 11s came.
fn add_all(env: &Env, endpoints: &[String], timeout_ms: u64) -> (BTreeMap<String, String>, usize) {
    let retries = AtomicUsize::new(0);
    let got = std::thread::scope(|s| {
        let handles: Vec<_> = (0..NODES)
            .flat_map(|n| (0..PER_NODE).map(move |c| (n, c)))
            .map(|(n, c)| {
                let retries = &retries;
                s.spawn(move || {
                    let mut conf = conf(endpoints, &node(n), json!({}));
                    conf["ipam"]["etcd"]["timeoutMs"] = json!(timeout_ms);
                    let id = format!("c{c}");
                    for _ in 0..20 {
                        let out = env.add(&conf, &id);
                        if out.success() {
                            return (format!("{}/{id}", node(n)), addrs(&out.json()).remove(0));
                        }
                        // Only "try again later" is an acceptable failure.
                        let err = out.expect_error(11);
                        if retries.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("ADD {id} on {}: {err}", node(n));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                    panic!("ADD {id} on {} kept failing", node(n));
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<BTreeMap<_, _>>()
    });
    (got, retries.into_inner())
}

/// 300 distinct addresses; every handle maps to its address; each node's
/// addresses come from its own blocks.
fn assert_consistent(all: &BTreeMap<String, Value>, got: &BTreeMap<String, String>) {
    let distinct: BTreeSet<&String> = got.values().collect();
    assert_eq!(got.len(), NODES * PER_NODE);
    assert_eq!(
        distinct.len(),
        NODES * PER_NODE,
        "an address was handed out twice"
    );
    let handles = of_kind(all, "handles");
    assert_eq!(handles.len(), NODES * PER_NODE);
    for (who, ip) in got {
        let h = &handles[&format!("{who}/eth0")];
        let held = h["ips"][0]["address"].as_str().unwrap();
        assert_eq!(held.split('/').next(), Some(ip.as_str()), "{who}: {h}");
    }
    let mut in_blocks = 0;
    for (key, b) in of_kind(all, "blocks") {
        let owner = key.split('/').next().unwrap();
        for (ip, holder) in b["allocations"].as_object().unwrap() {
            let holder = holder.as_str().unwrap();
            assert!(
                holder.starts_with(&format!("{owner}/")),
                "{ip} of {holder} in {owner}'s block"
            );
            assert_eq!(got[holder.trim_end_matches("/eth0")], *ip);
            in_blocks += 1;
        }
    }
    assert_eq!(
        in_blocks,
        NODES * PER_NODE,
        "every allocation is in a block, once"
    );
}

fn del_all(env: &Env, endpoints: &[String]) {
    std::thread::scope(|s| {
        for n in 0..NODES {
            s.spawn(move || {
                let conf = conf(endpoints, &node(n), json!({}));
                for c in 0..PER_NODE {
                    let out = env.del(&conf, &format!("c{c}"));
                    assert!(out.success(), "DEL c{c} on {}: {out:?}", node(n));
                }
            });
        }
    });
}

fn assert_empty(all: &BTreeMap<String, Value>) {
    assert!(of_kind(all, "handles").is_empty(), "handles left");
    assert_eq!(allocations(all), 0, "every block is free");
    assert!(
        !of_kind(all, "blocks").is_empty(),
        "blocks stay claimed by their nodes"
    );
}

/// The two tests run one after the other: 600 plugin processes at once on
/// a small machine would only measure the machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ten_nodes_thirty_concurrent_adds_each() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let etcd = EtcdServer::start();
    let env = Env::new("eiscale");
    // A node's 30 ADDs queue on its lock: the budget covers the queue, so
    // any code 11 here would be etcd's doing, not the machine's.
    let (got, retries) = add_all(&env, &etcd.endpoints(), 60_000);
    assert_eq!(
        retries, 0,
        "a healthy single member never asks to try again"
    );
    assert_consistent(&dump(&etcd.endpoints(), "/cni-ipam/"), &got);
    del_all(&env, &etcd.endpoints());
    assert_empty(&dump(&etcd.endpoints(), "/cni-ipam/"));
}

#[test]
fn a_cluster_member_killed_and_restarted_mid_run_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = EtcdCluster::start(3);
    let env = Env::new("eikill");
    let endpoints = cluster.endpoints();
    let started = std::sync::atomic::AtomicBool::new(false);
    let (got, retries) = std::thread::scope(|s| {
        let adds = s.spawn(|| {
            started.store(true, Ordering::Relaxed);
            add_all(&env, &endpoints, 5_000)
        });
        // Kill a member while the ADDs run, bring it back a second later.
        while !started.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        cluster.stop_member(0);
        std::thread::sleep(std::time::Duration::from_secs(1));
        cluster.restart_member(0);
        adds.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    eprintln!("cluster run: {retries} ADDs answered 11 and succeeded when retried");
    let all = dump(&endpoints, "/cni-ipam/");
    assert_consistent(&all, &got);
    del_all(&env, &endpoints);
    assert_empty(&dump(&endpoints, "/cni-ipam/"));
}
