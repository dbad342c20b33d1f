//! ipamctl's read-only views (usage, blocks, handles) against a real etcd
//! populated by the real etcd-ipam plugin: the numbers are what was
//! allocated, in tables and in JSON.

mod common;

use std::collections::BTreeMap;

use cni_harness::EtcdServer;
use common::*;
use serde_json::{json, Value};

/// What the plugin handed out, by handle id (`node/container/ifname`).
type Given = BTreeMap<String, Vec<String>>;

/// net1 (10.80.0.0/16, /26 blocks): node-a c1, c2, c3 (eth0 and eth1);
/// node-b c9. net2 (10.81.0.0/24, /28 blocks): node-a d1.
fn populate(env: &Env) -> Given {
    let a = env.conf(NET, "node-a", json!({}));
    let b = env.conf(NET, "node-b", json!({}));
    let a2 = env.conf(
        "net2",
        "node-a",
        json!({"ranges": [[{"subnet": "10.81.0.0/24"}]], "blockSize": 28}),
    );
    let mut given = Given::new();
    for (conf, node, id, ifname) in [
        (&a, "node-a", "c1", "eth0"),
        (&a, "node-a", "c2", "eth0"),
        (&a, "node-a", "c3", "eth0"),
        (&a, "node-a", "c3", "eth1"),
        (&b, "node-b", "c9", "eth0"),
        (&a2, "node-a", "d1", "eth0"),
    ] {
        given.insert(format!("{node}/{id}/{ifname}"), env.add(conf, id, ifname));
    }
    given
}

/// How many addresses of a /26 of 10.80.0.0/16 can be handed out: the
/// range starts at .0.1 (the gateway, never handed out) and ends at
/// .255.254.
fn capacity_of_26(block: &str) -> u64 {
    match block {
        "10.80.0.0/26" => 62,
        "10.80.255.192/26" => 63,
        _ => 64,
    }
}

fn node_block(given: &Given, id: &str) -> String {
    block_of(&given[id][0], 26)
}

#[test]
fn usage_counts_what_was_allocated_per_range_set_and_node() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlusage", etcd.endpoints());
    let given = populate(&env);
    let a_block = node_block(&given, "node-a/c1/eth0");
    let b_block = node_block(&given, "node-b/c9/eth0");

    let j = env.ctl(&["usage", "--json"]).json();
    let nets: Vec<&str> = j["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(
        nets,
        ["net1", "net2"],
        "every network under the prefix: {j}"
    );
    let net1 = &j["networks"][0];
    assert_eq!(
        net1["sets"],
        json!([{"ranges": "10.80.0.1-10.80.255.254", "blockSize": 26, "capacity": 65533,
                "used": 5, "blocksClaimed": 2, "blocksTotal": 1024}])
    );
    assert_eq!(
        net1["nodes"],
        json!([
            {"node": "node-a", "blocks": 1, "capacity": capacity_of_26(&a_block), "used": 4, "handles": 4},
            {"node": "node-b", "blocks": 1, "capacity": capacity_of_26(&b_block), "used": 1, "handles": 1},
        ])
    );
    let net2 = &j["networks"][1];
    assert_eq!(net2["sets"][0]["capacity"], 253);
    assert_eq!(net2["sets"][0]["used"], 1);
    assert_eq!(net2["sets"][0]["blocksClaimed"], 1);
    assert_eq!(net2["sets"][0]["blocksTotal"], 16);

    // The same facts as tables: range sets, then nodes.
    let out = env.ctl(&["usage", "--network", NET]);
    let tables = out.tables();
    assert_eq!(tables.len(), 2, "{}", out.stdout);
    assert_eq!(
        tables[0],
        [
            vec!["NETWORK", "RANGES", "BLOCK", "CAPACITY", "USED", "BLOCKS"],
            vec![
                "net1",
                "10.80.0.1-10.80.255.254",
                "/26",
                "65533",
                "5",
                "2/1024"
            ],
        ]
    );
    let a_cap = capacity_of_26(&a_block).to_string();
    let b_cap = capacity_of_26(&b_block).to_string();
    assert_eq!(
        tables[1],
        [
            vec!["NETWORK", "NODE", "BLOCKS", "CAPACITY", "USED", "HANDLES"],
            vec!["net1", "node-a", "1", a_cap.as_str(), "4", "4"],
            vec!["net1", "node-b", "1", b_cap.as_str(), "1", "1"],
        ]
    );
}

#[test]
fn blocks_and_handles_list_owners_counts_and_addresses() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlblocks", etcd.endpoints());
    let given = populate(&env);
    let a_block = node_block(&given, "node-a/c1/eth0");
    let b_block = node_block(&given, "node-b/c9/eth0");
    for (id, addrs) in &given {
        if id.starts_with("node-a/c") {
            assert_eq!(block_of(&addrs[0], 26), a_block, "{id}: node-a's own block");
        }
    }

    let j = env.ctl(&["blocks", "--network", NET, "--json"]).json();
    let mut want = vec![
        json!({"network": NET, "block": a_block, "node": "node-a", "used": 4,
               "capacity": capacity_of_26(&a_block)}),
        json!({"network": NET, "block": b_block, "node": "node-b", "used": 1,
               "capacity": capacity_of_26(&b_block)}),
    ];
    want.sort_by_key(|b| {
        let ip: std::net::Ipv4Addr = bare(b["block"].as_str().unwrap()).parse().unwrap();
        u32::from(ip)
    });
    assert_eq!(j["blocks"], Value::Array(want.clone()), "address order");
    let only_b = env.ctl(&["blocks", "--network", NET, "--node", "node-b"]);
    let cap = capacity_of_26(&b_block).to_string();
    assert_eq!(
        only_b.tables()[0],
        [
            vec!["NETWORK", "BLOCK", "NODE", "USED", "CAPACITY"],
            vec!["net1", b_block.as_str(), "node-b", "1", cap.as_str()],
        ]
    );
    // Without --network: net2's /28 too.
    let all = env.ctl(&["blocks", "--json"]).json();
    let blocks: Vec<String> = all["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}:{}",
                b["network"].as_str().unwrap(),
                b["block"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(blocks.len(), 3, "{all}");
    assert!(blocks.contains(&format!(
        "net2:{}",
        block_of(&given["node-a/d1/eth0"][0], 28)
    )));

    // Handles of node-a in net1: exactly the ADD results.
    let j = env
        .ctl(&["handles", "--network", NET, "--node", "node-a", "--json"])
        .json();
    let listed: Given = j["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["network"], NET);
            let id = format!(
                "{}/{}/{}",
                h["node"].as_str().unwrap(),
                h["containerID"].as_str().unwrap(),
                h["ifname"].as_str().unwrap()
            );
            (id, strings(&h["addresses"]))
        })
        .collect();
    let mut want: Given = given.clone();
    want.retain(|id, _| id.starts_with("node-a/c"));
    assert_eq!(listed, want);
    let table = env
        .ctl(&["handles", "--network", NET, "--node", "node-b"])
        .tables();
    assert_eq!(
        table[0],
        [
            vec!["NETWORK", "NODE", "CONTAINER", "IFNAME", "ADDRESSES"],
            vec![
                "net1",
                "node-b",
                "c9",
                "eth0",
                given["node-b/c9/eth0"][0].as_str()
            ],
        ]
    );
    let every = env.ctl(&["handles", "--json"]).json();
    assert_eq!(every["handles"].as_array().unwrap().len(), 6, "{every}");

    // A network that does not exist is an error, not an empty table.
    let err = env.ctl(&["handles", "--network", "nope"]);
    assert!(err.failed().contains("no network nope"), "{err:?}");
}
