//! Pods made by the vxlan plugin on simulated nodes running overlayd: every
//! pod reaches every other across nodes with its own source address, the
//! pod MTU is the overlay's and a don't-fragment packet of exactly that size
//! crosses, traffic leaving the cluster network is masqueraded, and an
//! overlayd restart keeps the pods' connectivity.

#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use cni_harness::{bins, tcp_ask, PeerServer, PluginCall, PluginOutput};
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1}"#;

struct Pods {
    data: tempfile::TempDir,
    /// (node, container index in the node's sandbox, address)
    pods: Vec<(usize, usize, String)>,
    results: Vec<Value>,
}

fn conf(c: &Cluster, node: usize, data: &std::path::Path) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": "podnet", "type": "vxlan",
        "subnetFile": c.subnet_file(node),
        "ipam": {"type": "host-local", "dataDir": data.join(format!("node-{node}"))},
    })
}

fn call(c: &Cluster, node: usize, pod: usize, cmd: &str, data: &std::path::Path) -> PluginOutput {
    let ns = c.nodes[node].sandbox.container(pod);
    PluginCall::new(bins::bin("vxlan"), cmd)
        .container(&format!("n{node}p{pod}"), &ns.path(), "eth0")
        .config(&conf(c, node, data))
        .run_in(c.nodes[node].ns())
}

fn make_pods(c: &mut Cluster, per_node: usize) -> Pods {
    let data = tempfile::tempdir().expect("temp dir");
    let mut pods = Vec::new();
    let mut results = Vec::new();
    for node in 0..c.nodes.len() {
        c.subnet(node);
        for _ in 0..per_node {
            let pod = c.nodes[node].sandbox.container_count();
            c.nodes[node].sandbox.add_container();
            let r = call(c, node, pod, "ADD", data.path()).result();
            let ip = r["ips"][0]["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string();
            pods.push((node, pod, ip));
            results.push(r);
        }
    }
    Pods {
        data,
        pods,
        results,
    }
}

fn pod_ping(c: &Cluster, node: usize, pod: usize, ip: &str, extra: &[&str]) -> bool {
    c.nodes[node]
        .sandbox
        .container(pod)
        .command("ping")
        .args(["-c1", "-W2"])
        .args(extra)
        .arg(ip)
        .output()
        .expect("ping")
        .status
        .success()
}

fn started(n: usize) -> Cluster {
    let mut c = Cluster::new("ovpods", CONFIG, 30);
    for i in 0..n {
        c.add_node();
        c.start(i, &[]);
    }
    for i in 0..n {
        let want: Vec<String> = (0..n)
            .filter(|j| *j != i)
            .map(|j| c.subnet(j)["subnet"].as_str().unwrap().to_string())
            .collect();
        let ok = wait_for("routes", Duration::from_secs(20), || {
            let have = c.overlay_routes(i);
            want.iter().all(|w| have.contains(w)).then_some(())
        });
        assert!(ok.is_some(), "node-{i}: {:?}", c.overlay_routes(i));
    }
    c
}

#[test]
fn pods_on_three_nodes_reach_each_other_at_the_overlay_mtu() {
    let mut c = started(3);
    let p = make_pods(&mut c, 2);
    // Addresses from each node's own subnet, MTU the overlay's.
    for (node, pod, ip) in &p.pods {
        let subnet = c.subnet(*node)["subnet"].as_str().unwrap().to_string();
        let net: cni::Cidr = subnet.parse().unwrap();
        assert!(net.contains(ip.parse().unwrap()), "{ip} in {subnet}");
        let link = c.nodes[*node]
            .sandbox
            .container(*pod)
            .ip_json(&["link", "show", "eth0"]);
        assert_eq!(link[0]["mtu"], 1450, "pod MTU is the overlay MTU");
    }
    // The full matrix.
    let mut failed = Vec::new();
    for (n1, p1, ip1) in &p.pods {
        for (_, _, ip2) in p.pods.iter().filter(|(_, _, ip)| ip != ip1) {
            if !pod_ping(&c, *n1, *p1, ip2, &[]) {
                failed.push(format!("{ip1} -> {ip2}"));
            }
        }
    }
    assert!(failed.is_empty(), "unreachable: {failed:?}");
    // A don't-fragment packet of exactly the MTU crosses nodes; one byte
    // more does not leave the pod.
    let (n0, p0, _) = &p.pods[0];
    let far = &p.pods[4].2;
    assert!(
        pod_ping(&c, *n0, *p0, far, &["-M", "do", "-s", "1422"]),
        "1450-byte DF ping"
    );
    assert!(
        !pod_ping(&c, *n0, *p0, far, &["-M", "do", "-s", "1423"]),
        "1451 bytes must not fit"
    );
    // Across nodes a pod sees the other pod's own address; leaving the
    // cluster network (to the underlay) it is masqueraded to its node.
    let server_pod = &p.pods[2];
    let server_ns = c.nodes[server_pod.0].sandbox.container(server_pod.1);
    let server = PeerServer::tcp(server_ns, format!("{}:7000", server_pod.2));
    let seen =
        tcp_ask(c.nodes[0].sandbox.container(p.pods[0].1), server.addr).expect("pod to pod TCP");
    assert_eq!(
        seen, p.pods[0].2,
        "no masquerade inside the cluster network"
    );
    let outside = PeerServer::tcp(c.underlay.host(), format!("{UNDERLAY_GW}:7001"));
    let seen = tcp_ask(c.nodes[0].sandbox.container(p.pods[0].1), outside.addr)
        .expect("pod to underlay TCP");
    assert_eq!(
        seen,
        c.nodes[0].ip.to_string(),
        "masqueraded leaving the cluster network"
    );
    // DEL of every pod: twice, and nothing left in the lease dirs.
    for (node, pod, _) in &p.pods {
        for _ in 0..2 {
            let out = call(&c, *node, *pod, "DEL", p.data.path());
            assert!(out.success(), "{out:?}");
        }
    }
    for node in 0..3 {
        let dir = p.data.path().join(format!("node-{node}/podnet"));
        let leases: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().parse::<std::net::IpAddr>().is_ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert!(leases.is_empty(), "node-{node} leases left: {leases:?}");
    }
}

#[test]
fn an_overlayd_restart_keeps_the_pods_connected() {
    let mut c = started(2);
    let p = make_pods(&mut c, 1);
    let (a, b) = (&p.pods[0], &p.pods[1]);
    assert!(pod_ping(&c, a.0, a.1, &b.2, &[]));
    c.stop(1);
    assert!(
        pod_ping(&c, a.0, a.1, &b.2, &[]),
        "the kernel state stays while overlayd is away"
    );
    c.start(1, &[]);
    c.wait_leased(1, 2);
    assert!(pod_ping(&c, a.0, a.1, &b.2, &[]), "after the restart");
    assert!(pod_ping(&c, b.0, b.1, &a.2, &[]));
    // CHECK passes, STATUS passes, and STATUS is 50 once the device is gone.
    let mut chk = conf(&c, a.0, p.data.path());
    chk["prevResult"] = p.results[0].clone();
    let ns = c.nodes[a.0].sandbox.container(a.1);
    let check = PluginCall::new(bins::bin("vxlan"), "CHECK")
        .container(&format!("n{}p{}", a.0, a.1), &ns.path(), "eth0")
        .config(&chk)
        .run_in(c.nodes[a.0].ns());
    assert!(check.success(), "CHECK: {check:?}");
    let status = PluginCall::new(bins::bin("vxlan"), "STATUS")
        .config(&conf(&c, a.0, p.data.path()))
        .run_in(c.nodes[a.0].ns());
    assert!(status.success(), "{status:?}");
    c.kill(a.0);
    c.nodes[a.0].ns().ip(&["link", "del", "vxlan.1"]);
    let status = PluginCall::new(bins::bin("vxlan"), "STATUS")
        .config(&conf(&c, a.0, p.data.path()))
        .run_in(c.nodes[a.0].ns());
    status.expect_error(50);
}

#[test]
fn no_subnet_file_is_a_clear_error_and_del_still_works() {
    let c = Cluster::new("ovnosf", CONFIG, 30);
    let mut c = c;
    c.add_node();
    c.nodes[0].sandbox.add_container();
    let data = tempfile::tempdir().unwrap();
    let out = call(&c, 0, 0, "ADD", data.path());
    let err = out.expect_error(11);
    assert!(err["msg"].as_str().unwrap().contains("overlayd"), "{err}");
    assert!(call(&c, 0, 0, "DEL", data.path()).success());
    let status = PluginCall::new(bins::bin("vxlan"), "STATUS")
        .config(&conf(&c, 0, data.path()))
        .run_in(c.nodes[0].ns());
    status.expect_error(50);
}

#[test]
fn etcd_ipam_underneath_allocates_from_each_nodes_subnet() {
    let mut c = started(2);
    let data = tempfile::tempdir().unwrap();
    let locks = tempfile::tempdir().unwrap();
    let endpoint = c.endpoint();
    let mut ips = Vec::new();
    for node in 0..2 {
        c.nodes[node].sandbox.add_container();
        let mut cfg = conf(&c, node, data.path());
        cfg["ipam"] = json!({"type": "etcd-ipam", "nodeName": c.nodes[node].name,
                             "etcd": {"endpoints": [endpoint], "prefix": "/cni-ipam"}});
        let ns = c.nodes[node].sandbox.container(0);
        let r = PluginCall::new(bins::bin("vxlan"), "ADD")
            .container(&format!("e{node}"), &ns.path(), "eth0")
            .env("CNI_ETCD_IPAM_LOCK_DIR", &locks.path().to_string_lossy())
            .config(&cfg)
            .run_in(c.nodes[node].ns())
            .result();
        let ip = r["ips"][0]["address"].as_str().unwrap().to_string();
        let subnet: cni::Cidr = c.subnet(node)["subnet"].as_str().unwrap().parse().unwrap();
        assert!(
            subnet.contains(ip.split('/').next().unwrap().parse().unwrap()),
            "{ip} in {subnet}"
        );
        assert_eq!(ip.split('/').nth(1), Some("24"), "the node subnet's prefix");
        ips.push(ip.split('/').next().unwrap().to_string());
    }
    assert!(
        pod_ping(&c, 0, 0, &ips[1], &[]),
        "etcd-ipam pods reach each other across nodes"
    );
    let pools = with_etcd(c.underlay.host(), &endpoint, |e, rt| {
        let r = rt
            .block_on(
                e.get(
                    "/cni-ipam/",
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_keys_only(),
                    ),
                ),
            )
            .unwrap();
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .filter(|k| k.ends_with("/pool"))
            .count()
    });
    assert_eq!(pools, 2, "one pool per node subnet");
}
