//! The node release transaction is guarded by what it read: planned from one
//! read, it is refused by etcd when anything it depends on changed before it
//! was sent (a borrower allocating in the node's block, a lender block
//! changing, a new handle of the node), and writes nothing then.

mod common;

use cni_harness::EtcdServer;
use common::*;
use etcd_ipam::admin::{plan_node_release, read_holdings, send_node_release, NodeRelease};
use etcd_ipam::etcd::{block_on, Failure};
use etcd_ipam::keys::Keys;
use serde_json::{json, Value};

fn small() -> Value {
    json!({"ranges": [[{"subnet": "10.90.0.0/28"}]], "blockSize": 30})
}

fn keys() -> Keys {
    Keys::new("/cni-ipam", NET)
}

/// The release of `node` as planned from a read now.
fn plan(env: &Env, node: &str, force: bool) -> NodeRelease {
    block_on(async {
        let mut etcd = env.connect().await?;
        let holdings = read_holdings(&mut etcd, &keys(), node).await?;
        plan_node_release(node, &holdings, force)
    })
    .expect("plan the release")
}

/// Sends a planned release once: whether etcd applied it.
fn send(env: &Env, node: &str, plan: &NodeRelease) -> bool {
    block_on(async {
        let mut etcd = env.connect().await?;
        send_node_release(&mut etcd, &keys(), node, plan)
            .await
            .map_err(|f| match f {
                Failure::Fatal(e) => e,
                Failure::Retry(why) => cni::Error::try_again_later(why),
            })
    })
    .expect("send the release")
}

#[test]
fn a_release_planned_before_a_change_is_refused_and_writes_nothing() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlguard", etcd.endpoints());
    let a = env.conf(NET, "node-a", small());
    let b = env.conf(NET, "node-b", small());
    for i in 0..13 {
        env.add(&a, &format!("a{i}"), "eth0");
    }
    env.del(&a, "a0", "eth0");

    // node-b borrows from node-a's block after node-a's release was planned.
    let stale = plan(&env, "node-a", true);
    env.add(&b, "b0", "eth0");
    let before = env.state(NET);
    assert!(!send(&env, "node-a", &stale), "a block of node-a changed");
    assert_eq!(env.state(NET), before);

    // The lender block changes after node-b's release was planned.
    let stale = plan(&env, "node-b", true);
    assert_eq!(stale.lenders.len(), 1);
    let lender = stale.lenders[0].value.cidr;
    let neighbour = before
        .handles
        .iter()
        .map(|h| &h.value)
        .find(|h| h.node == "node-a" && h.ips[0].block == lender)
        .expect("node-a holds another address of the lender block");
    env.del(&a, &neighbour.container_id, "eth0");
    let before = env.state(NET);
    assert!(!send(&env, "node-b", &stale), "the lender block changed");
    assert_eq!(env.state(NET), before);
    // Planned afresh it goes through.
    let fresh = plan(&env, "node-b", true);
    assert!(send(&env, "node-b", &fresh));
    assert!(env
        .state(NET)
        .handle_ids()
        .iter()
        .all(|h| h.starts_with("node-a/")));

    // node-a clean (no handles, lends nothing), then a new handle of its own.
    let cleaned = env.ctl_stdin(
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
    cleaned.ok();
    let stale = plan(&env, "node-a", false);
    assert!(stale.handles.is_empty() && !stale.blocks.is_empty());
    env.add(&a, "late", "eth0");
    let before = env.state(NET);
    assert!(!send(&env, "node-a", &stale), "node-a got a handle");
    assert_eq!(env.state(NET), before);
    assert_eq!(before.handle_ids(), ["node-a/late/eth0"]);
}
