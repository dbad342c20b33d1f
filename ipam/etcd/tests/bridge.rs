//! bridge + etcd-ipam on two simulated nodes (two "host" namespaces, each
//! with its bridge and two pods): one pool, addresses from each node's own
//! blocks, and the datapath of every pod works.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cni_harness::{bins, EtcdServer, PluginCall, Sandbox, TcpForward};
use common::*;
use serde_json::{json, Value};

struct Node {
    name: String,
    sandbox: Sandbox,
    etcd: TcpForward,
    locks: tempfile::TempDir,
}

impl Node {
    fn new(name: &str, etcd: &EtcdServer) -> Node {
        let sandbox = Sandbox::new(&format!("eibr{name}"));
        let target: SocketAddr = etcd.endpoints()[0]
            .trim_start_matches("http://")
            .parse()
            .expect("etcd address");
        let etcd = TcpForward::start(sandbox.host(), target);
        Node {
            name: name.into(),
            sandbox,
            etcd,
            locks: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn conf(&self) -> Value {
        json!({
            "cniVersion": "1.1.0", "name": NET, "type": "bridge",
            "bridge": "cni0", "isGateway": true,
            "ipam": {
                "type": "etcd-ipam", "nodeName": self.name,
                "etcd": {"endpoints": [self.etcd.url()], "timeoutMs": 5000},
                "ranges": [[{"subnet": "10.80.0.0/16"}]],
            }
        })
    }

    fn call(&self, cmd: &str, i: usize) -> PluginCall {
        PluginCall::new(bins::bin("bridge"), cmd)
            .container(
                &format!("{}-p{i}", self.name),
                &self.sandbox.container(i).path(),
                "eth0",
            )
            .env(
                "CNI_ETCD_IPAM_LOCK_DIR",
                &self.locks.path().to_string_lossy(),
            )
            .config(&self.conf())
    }

    fn ping(&self, i: usize, ip: &str) -> bool {
        self.sandbox
            .container(i)
            .command("ping")
            .args(["-c1", "-W2", ip])
            .output()
            .expect("ping (Debian package iputils-ping)")
            .status
            .success()
    }
}

#[test]
fn pods_on_two_nodes_share_one_pool_and_reach_their_gateway_and_neighbour() {
    let etcd = EtcdServer::start();
    let mut nodes = [Node::new("a", &etcd), Node::new("b", &etcd)];
    let mut all_ips = BTreeSet::new();
    let mut pod_ips = Vec::new();
    for node in &mut nodes {
        node.sandbox.add_container();
        node.sandbox.add_container();
    }
    for node in &nodes {
        let mut ips = Vec::new();
        for i in 0..2 {
            let r = node.call("ADD", i).run_in(node.sandbox.host()).result();
            assert_eq!(r["ips"][0]["gateway"], "10.80.0.1", "{r}");
            let ip = addrs(&r).remove(0);
            assert!(all_ips.insert(ip.clone()), "{ip} given twice");
            ips.push(ip);
        }
        pod_ips.push(ips);
    }
    // Each node's pods sit in that node's own block.
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    for (node, ips) in nodes.iter().zip(&pod_ips) {
        for ip in ips {
            let owner = of_kind(&all, "blocks")
                .iter()
                .find(|(_, b)| b["allocations"].get(ip).is_some())
                .map(|(k, _)| k.split('/').next().unwrap().to_string());
            assert_eq!(owner.as_deref(), Some(node.name.as_str()), "{ip}");
        }
    }
    // The datapath: every pod reaches its gateway and its neighbour.
    for (node, ips) in nodes.iter().zip(&pod_ips) {
        assert!(node.ping(0, "10.80.0.1"), "{} pod 0 -> gateway", node.name);
        assert!(node.ping(0, &ips[1]), "{} pod 0 -> pod 1", node.name);
        assert!(node.ping(1, &ips[0]), "{} pod 1 -> pod 0", node.name);
    }
    // DEL through the bridge releases in etcd; a second DEL is fine.
    for node in &nodes {
        for i in 0..2 {
            for _ in 0..2 {
                let out = node.call("DEL", i).run_in(node.sandbox.host());
                assert!(out.success(), "{out:?}");
            }
        }
    }
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert!(of_kind(&all, "handles").is_empty());
    assert_eq!(allocations(&all), 0);
}
