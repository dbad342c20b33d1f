//! `ipamctl node release`: refused while the node holds handles or lends
//! addresses to other nodes' handles; with --force (or once clean) its
//! claims, blocks and handles go in one transaction, borrowed addresses go
//! back to their lenders, and the freed blocks are claimed again.

mod common;

use cni_harness::EtcdServer;
use common::*;
use serde_json::{json, Value};

/// Pool 10.90.0.0/28 in /30 blocks: 13 addresses in 4 blocks.
fn small() -> Value {
    json!({"ranges": [[{"subnet": "10.90.0.0/28"}]], "blockSize": 30})
}

/// node-a takes all 13 addresses (every block).
fn fill_with_node_a(env: &Env) -> Value {
    let a = env.conf(NET, "node-a", small());
    for i in 0..13 {
        env.add(&a, &format!("a{i}"), "eth0");
    }
    let s = env.state(NET);
    assert_eq!(s.claims.len(), 4);
    assert!(s.claims.values().all(|n| n == "node-a"), "{:?}", s.claims);
    a
}

#[test]
fn refused_while_the_node_has_handles_then_force_frees_everything_for_a_new_claim() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlnode", etcd.endpoints());
    fill_with_node_a(&env);
    let b = env.conf(NET, "node-b", small());
    env.add_fails(&b, "b0", 101);
    let before = env.state(NET);

    let refused = env.ctl(&["node", "release", "node-a", "--network", NET]);
    let msg = refused.failed();
    assert!(
        msg.contains("node node-a still holds 13 handle(s)"),
        "{msg}"
    );
    assert!(msg.contains("--force"), "{msg}");
    assert_eq!(env.state(NET), before, "a refusal writes nothing");

    let j = env
        .ctl(&[
            "node",
            "release",
            "node-a",
            "--network",
            NET,
            "--force",
            "--json",
        ])
        .json();
    assert_eq!(j["claims"].as_array().unwrap().len(), 4, "{j}");
    assert_eq!(j["blocks"].as_array().unwrap().len(), 4, "{j}");
    assert_eq!(j["handles"].as_array().unwrap().len(), 13, "{j}");
    let after = env.state(NET);
    assert!(after.claims.is_empty(), "{after:#?}");
    assert!(after.blocks.is_empty(), "{after:#?}");
    assert!(after.handles.is_empty(), "{after:#?}");
    assert_eq!(after.pool, before.pool, "the pool definition stays");

    // The freed blocks are claimed again.
    let got = env.add(&b, "b0", "eth0");
    let s = env.state(NET);
    assert_eq!(s.claims.len(), 1);
    assert_eq!(s.claims.values().collect::<Vec<_>>(), ["node-b"]);
    let block = s.claims.keys().next().unwrap().to_string();
    assert_eq!(block_of(&got[0], 30), block);
    assert_eq!(s.blocks[0].value.node, "node-b");

    // A node that holds nothing: nothing to do, and it says so.
    let out = env.ctl(&["node", "release", "node-a", "--network", NET]);
    assert!(out.ok().contains("holds nothing"), "{out:?}");
    assert_eq!(env.state(NET), s);
}

#[test]
fn a_lending_node_is_refused_and_a_borrowers_force_release_gives_the_address_back() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctllend", etcd.endpoints());
    let a = fill_with_node_a(&env);
    env.del(&a, "a0", "eth0");
    let b = env.conf(NET, "node-b", small());
    let borrowed = bare(&env.add(&b, "b0", "eth0")[0]);
    let s = env.state(NET);
    assert_eq!(
        s.handle("node-b/b0/eth0").ips[0].owner,
        "node-a",
        "b0 borrowed"
    );

    // node-b holds a handle: refused; forced, its borrowed address returns
    // to node-a's block in the same transaction.
    let before = env.state(NET);
    let msg = env
        .ctl(&["node", "release", "node-b", "--network", NET])
        .failed()
        .to_string();
    assert!(
        msg.contains("node node-b still holds 1 handle(s): node-b/b0/eth0"),
        "{msg}"
    );
    assert_eq!(env.state(NET), before);
    let j = env
        .ctl(&[
            "node",
            "release",
            "node-b",
            "--network",
            NET,
            "--force",
            "--json",
        ])
        .json();
    assert_eq!(j["handles"], json!(["node-b/b0/eth0"]));
    assert_eq!(j["lenderBlocks"], json!([block_of(&borrowed, 30)]));
    let after = env.state(NET);
    assert!(after.handle_ids().iter().all(|h| h.starts_with("node-a/")));
    assert!(!after.allocations().contains_key(&borrowed), "{after:#?}");
    assert_eq!(after.allocations().len(), 12);
    assert_eq!(after.claims, before.claims, "node-b had no claims");

    // node-b borrows again; node-a's handles are released as leaks; node-a
    // is still refused: its block lends an address to node-b.
    let borrowed = bare(&env.add(&b, "b1", "eth0")[0]);
    let leaks = env.ctl_stdin(
        &[
            "leaks",
            "--network",
            NET,
            "--node",
            "node-a",
            "--containers",
            "-",
            "--release",
        ],
        "",
    );
    leaks.ok();
    assert_eq!(env.state(NET).handle_ids(), ["node-b/b1/eth0"]);
    let before = env.state(NET);
    let msg = env
        .ctl(&["node", "release", "node-a", "--network", NET])
        .failed()
        .to_string();
    assert!(
        msg.contains(&format!("{borrowed} (node-b/b1/eth0)")),
        "names the borrowed address and its holder: {msg}"
    );
    assert_eq!(env.state(NET), before);

    // Forced: node-a's claims and blocks go, node-b keeps its handle, and
    // the stranded address is warned about.
    let out = env.ctl(&["node", "release", "node-a", "--network", NET, "--force"]);
    assert!(out.ok().contains("released node node-a"), "{out:?}");
    assert!(
        out.stderr.contains("warning") && out.stderr.contains(&borrowed),
        "{out:?}"
    );
    let after = env.state(NET);
    assert!(
        after.claims.is_empty() && after.blocks.is_empty(),
        "{after:#?}"
    );
    assert_eq!(after.handle_ids(), ["node-b/b1/eth0"]);
    // Its DEL still succeeds: the block is gone, nothing to free there.
    env.del(&b, "b1", "eth0");
    assert!(env.state(NET).handles.is_empty());
}
