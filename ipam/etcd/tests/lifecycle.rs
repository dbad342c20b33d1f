//! etcd-ipam through the built binary against a real etcd: allocation,
//! retries, release, requested addresses, borrowing and exhaustion, GC,
//! CHECK, STATUS, an unreachable etcd, and bad input.

mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use cni_harness::EtcdServer;
use common::*;
use serde_json::{json, Value};

#[test]
fn add_writes_block_and_handle_together_and_a_retry_gets_the_same_addresses() {
    let etcd = EtcdServer::start();
    let env = Env::new("eiadd");
    let conf = conf(
        &etcd.endpoints(),
        "node-a",
        json!({"ranges": [[{"subnet": "10.80.0.0/16"}], [{"subnet": "fd80::/64"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.80.0.53"]}}),
    );
    let r = env.add(&conf, "c1").result();
    let got = addrs(&r);
    assert_eq!(got.len(), 2, "one address per range set: {r}");
    assert!(
        r["ips"][0]["address"].as_str().unwrap().ends_with("/16"),
        "{r}"
    );
    assert_eq!(r["ips"][0]["gateway"], "10.80.0.1");
    assert_eq!(r["ips"][1]["gateway"], "fd80::1");
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r["dns"]["nameservers"], json!(["10.80.0.53"]));

    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    let handle = &of_kind(&all, "handles")["node-a/c1/eth0"];
    let held: Vec<String> = handle["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(held, got, "the handle names the addresses the result gave");
    let blocks = of_kind(&all, "blocks");
    assert_eq!(blocks.len(), 2, "one block per family: {blocks:?}");
    for (key, b) in &blocks {
        assert!(key.starts_with("node-a/"), "{key}");
        let owners: Vec<&Value> = b["allocations"].as_object().unwrap().values().collect();
        assert_eq!(owners, [&json!("node-a/c1/eth0")], "{key}: {b}");
    }
    assert_eq!(of_kind(&all, "claims").len(), 2);
    assert!(all.contains_key("/cni-ipam/net1/pool"));

    // A retried ADD (the answer of the first was lost) returns the same.
    let again = env.add(&conf, "c1").result();
    assert_eq!(addrs(&again), got);
    assert_eq!(allocations(&dump(&etcd.endpoints(), "/cni-ipam/")), 2);
    // Another container gets other addresses from the same blocks.
    let other = addrs(&env.add(&conf, "c2").result());
    assert!(
        other.iter().all(|a| !got.contains(a)),
        "{other:?} vs {got:?}"
    );
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert_eq!(
        of_kind(&all, "blocks").len(),
        2,
        "c2 fits in node-a's blocks"
    );
}

#[test]
fn results_are_in_the_configs_version() {
    let etcd = EtcdServer::start();
    let env = Env::new("eiver");
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let mut c = conf(&etcd.endpoints(), "node-a", json!({}));
        c["cniVersion"] = json!(v);
        let r = env.add(&c, &format!("v{i}")).result();
        assert_eq!(r["cniVersion"], v);
        assert_eq!(
            r["ips"][0].get("version").is_some(),
            v < "1.0.0",
            "{v}: {r}"
        );
    }
}

#[test]
fn del_releases_by_handle_and_a_second_del_succeeds() {
    let etcd = EtcdServer::start();
    let env = Env::new("eidel");
    let c = conf(&etcd.endpoints(), "node-a", json!({}));
    let a = addrs(&env.add(&c, "c1").result());
    env.add(&c, "c2").result();
    assert!(env.del(&c, "c1").success());
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert_eq!(
        of_kind(&all, "handles").keys().collect::<Vec<_>>(),
        ["node-a/c2/eth0"]
    );
    assert_eq!(allocations(&all), 1);
    let d = env.del(&c, "c1");
    assert!(d.success(), "second DEL: {d:?}");
    assert!(d.stdout.is_empty(), "DEL prints nothing: {}", d.stdout);
    // DEL of a container that never existed, and with broken ranges: fine.
    assert!(env.del(&c, "never").success());
    let broken = conf(&etcd.endpoints(), "node-a", json!({"ranges": [[]]}));
    assert!(
        env.del(&broken, "c2").success(),
        "DEL needs no valid ranges"
    );
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert!(of_kind(&all, "handles").is_empty());
    assert_eq!(allocations(&all), 0);
    // The freed address is handed out again.
    assert_eq!(addrs(&env.add(&c, "c3").result()), a);
}

#[test]
fn requested_addresses_are_honoured_or_refused_with_the_reason() {
    let etcd = EtcdServer::start();
    let env = Env::new("eireq");
    let c = conf(
        &etcd.endpoints(),
        "node-a",
        json!({"exclude": ["10.80.9.0/24"]}),
    );
    let r = env
        .call("ADD", &c, "c1", "eth0")
        .env("CNI_ARGS", "IP=10.80.5.7")
        .run_here();
    assert_eq!(addrs(&r.result()), ["10.80.5.7"]);
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert_eq!(
        of_kind(&all, "blocks")["node-a/10.80.5.0-26"]["allocations"]["10.80.5.7"],
        "node-a/c1/eth0",
        "the requested address's block is claimed for this node"
    );
    let mut rc = c.clone();
    rc["runtimeConfig"] = json!({"ips": ["10.80.5.8/16"]});
    assert_eq!(addrs(&env.add(&rc, "c2").result()), ["10.80.5.8"]);
    // Taken already: refused, and nothing changes.
    let before = dump(&etcd.endpoints(), "/cni-ipam/");
    let e = env
        .call("ADD", &c, "c3", "eth0")
        .env("CNI_ARGS", "IP=10.80.5.7")
        .run_here();
    let err = e.expect_error(100);
    assert!(
        err["msg"].as_str().unwrap().contains("node-a/c1/eth0"),
        "{err}"
    );
    for (ip, code) in [
        ("10.80.0.1", 7),
        ("10.80.9.9", 7),
        ("10.99.0.1", 7),
        ("x", 7),
    ] {
        let e = env
            .call("ADD", &c, "c3", "eth0")
            .env("CNI_ARGS", &format!("IP={ip}"))
            .run_here();
        e.expect_error(code);
    }
    assert_eq!(
        dump(&etcd.endpoints(), "/cni-ipam/"),
        before,
        "refusals write nothing"
    );
}

/// Pool 10.90.0.0/28 in /30 blocks: .0/30 has 2 usable (.1 is the gateway,
/// .0 before rangeStart), .4/30 and .8/30 have 4, .12/30 has 3 (.15 is the
/// broadcast): 13 addresses in 4 blocks.
#[test]
fn own_blocks_first_then_new_blocks_then_borrowing_then_exhaustion() {
    let etcd = EtcdServer::start();
    let env = Env::new("eiexh");
    let small = json!({"ranges": [[{"subnet": "10.90.0.0/28"}]], "blockSize": 30});
    let a = conf(&etcd.endpoints(), "node-a", small.clone());
    let b = conf(&etcd.endpoints(), "node-b", small);
    let owner_of = |ip: &str| -> String {
        let all = dump(&etcd.endpoints(), "/cni-ipam/");
        of_kind(&all, "blocks")
            .iter()
            .find(|(_, b)| b["allocations"].get(ip).is_some())
            .map(|(k, _)| k.split('/').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{ip} in no block"))
    };
    // Node a: its first block, then a second one when that is full.
    let mut seen = BTreeSet::new();
    let mut first = String::new();
    for i in 0..5 {
        let ip = addrs(&env.add(&a, &format!("a{i}")).result()).remove(0);
        assert_eq!(
            owner_of(&ip),
            "node-a",
            "{ip} comes from node-a's own blocks"
        );
        assert!(seen.insert(ip.clone()));
        if i == 0 {
            first = ip;
        }
    }
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    let claims = of_kind(&all, "claims");
    assert_eq!(
        claims.len(),
        2,
        "5 addresses need 2 blocks of node-a: {claims:?}"
    );
    // One of node-a's addresses goes back: its blocks keep a free address.
    assert!(env.del(&a, "a0").success());
    seen.remove(&first);
    // Node b claims the 2 blocks left (at most 8 addresses: node-a's two
    // hold at least 5), then borrows from node-a's.
    let mut borrowed = 0;
    for i in 0..9 {
        let ip = addrs(&env.add(&b, &format!("b{i}")).result()).remove(0);
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
        if owner_of(&ip) == "node-a" {
            borrowed += 1;
        }
    }
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert_eq!(of_kind(&all, "claims").len(), 4, "every block claimed");
    assert_eq!(seen.len(), 13);
    assert!(
        borrowed > 0,
        "node-b borrowed from node-a once no block was free: {all:#?}"
    );
    let b_handles = of_kind(&all, "handles")
        .keys()
        .filter(|k| k.starts_with("node-b/"))
        .count();
    assert_eq!(b_handles, 9, "borrowed addresses are node-b's handles");
    // Exhausted: code 101 for ADD, 50 for STATUS; nothing written.
    env.add(&a, "a-extra").expect_error(101);
    env.call_net("STATUS", &a).expect_error(50);
    assert_eq!(dump(&etcd.endpoints(), "/cni-ipam/"), all);
    // A borrowed address is released into its owner's block.
    let b8 = of_kind(&all, "handles")["node-b/b8/eth0"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(env.del(&b, "b8").success());
    assert!(
        env.call_net("STATUS", &a).success(),
        "one address free again"
    );
    assert_eq!(addrs(&env.add(&a, "a-extra").result()), [b8]);
}

#[test]
fn gc_releases_exactly_the_attachments_not_in_the_valid_list() {
    let etcd = EtcdServer::start();
    let env = Env::new("eigc");
    let a = conf(&etcd.endpoints(), "node-a", json!({}));
    let b = conf(&etcd.endpoints(), "node-b", json!({}));
    for (id, ifname) in [
        ("c1", "eth0"),
        ("c2", "eth0"),
        ("c3", "eth0"),
        ("c3", "eth1"),
    ] {
        env.call("ADD", &a, id, ifname).run_here().result();
    }
    env.add(&b, "c2").result();
    let mut gc = a.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c3", "ifname": "eth1"}]);
    let out = env.call_net("GC", &gc);
    assert!(out.success(), "{out:?}");
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    let handles: Vec<String> = of_kind(&all, "handles").into_keys().collect();
    assert_eq!(
        handles,
        ["node-a/c1/eth0", "node-a/c3/eth1", "node-b/c2/eth0"]
    );
    assert_eq!(allocations(&all), 3, "released addresses left their blocks");
    // Without the list GC refuses rather than guess.
    env.call_net("GC", &a).expect_error(7);
    assert_eq!(
        of_kind(&dump(&etcd.endpoints(), "/cni-ipam/"), "handles").len(),
        3
    );
}

#[test]
fn check_compares_the_handle_with_prev_result() {
    let etcd = EtcdServer::start();
    let env = Env::new("eichk");
    let c = conf(&etcd.endpoints(), "node-a", json!({}));
    let r = env.add(&c, "c1").result();
    let mut chk = c.clone();
    chk["prevResult"] = r.clone();
    let ok = env.call("CHECK", &chk, "c1", "eth0").run_here();
    assert!(ok.success(), "{ok:?}");
    let mut wrong = r.clone();
    wrong["ips"][0]["address"] = json!("10.80.255.200/16");
    chk["prevResult"] = wrong;
    env.call("CHECK", &chk, "c1", "eth0")
        .run_here()
        .expect_error(102);
    chk["prevResult"] = r;
    env.call("CHECK", &chk, "nobody", "eth0")
        .run_here()
        .expect_error(102);
}

#[test]
fn a_config_that_cuts_the_pool_differently_is_refused() {
    let etcd = EtcdServer::start();
    let env = Env::new("eipool");
    env.add(&conf(&etcd.endpoints(), "node-a", json!({})), "c1")
        .result();
    let before = dump(&etcd.endpoints(), "/cni-ipam/");
    for extra in [
        json!({"blockSize": 28}),
        json!({"exclude": ["10.80.1.0/24"]}),
        json!({"ranges": [[{"subnet": "10.80.0.0/16", "rangeStart": "10.80.1.0"}]]}),
    ] {
        let e = env.add(&conf(&etcd.endpoints(), "node-b", extra.clone()), "c2");
        let err = e.expect_error(7);
        assert!(
            err["msg"].as_str().unwrap().contains("/cni-ipam/net1/pool"),
            "{extra}: {err}"
        );
    }
    assert_eq!(dump(&etcd.endpoints(), "/cni-ipam/"), before);
}

#[test]
fn bad_configs_are_code_7_before_any_etcd_work() {
    let etcd = EtcdServer::start();
    let env = Env::new("eibad");
    let ep = etcd.endpoints();
    let cases = [
        json!({"ranges": []}),
        json!({"ranges": [[{"subnet": "10.80.0.1/16"}]]}),
        json!({"blockSize": 16}),
        json!({"blockSize": 33}),
        json!({"blockSize": "26"}),
        json!({"blockSize6": 100, "ranges": [[{"subnet": "fd80::/64"}]]}),
        json!({"ranges": [[{"subnet": "10.80.0.0/24"}]], "blockSize": 22}),
        json!({"exclude": ["10.80.0.0"]}),
        json!({"nodeName": "a/b"}),
        json!({"nodeName": ".."}),
        json!({"etcd": {"endpoints": []}}),
        json!({"etcd": {"endpoints": ["127.0.0.1:2379"]}}),
        json!({"etcd": {"endpoints": ep, "timeoutMs": 0}}),
        json!({"etcd": {"endpoints": ep, "timeoutMs": -5}}),
        json!({"etcd": {"endpoints": ["https://127.0.0.1:1"]}}),
        json!({"etcd": {"endpoints": ep, "tls": {"ca": "/x"}}}),
        json!({"etcd": {"endpoints": ep, "password": "p"}}),
        json!({"etcd": {"endpoints": ep, "prefix": "/"}}),
        json!({"dns": {"nameservers": "x"}}),
        json!({"routes": [{"gw": "10.80.0.1"}]}),
    ];
    for extra in cases {
        let e = env.add(&conf(&ep, "node-a", extra.clone()), "c1");
        assert_eq!(e.json()["code"], 7, "{extra}: {}", e.stdout);
    }
    assert!(dump(&ep, "/").is_empty(), "nothing was written");
}

#[test]
fn etcd_unreachable_add_is_code_11_del_does_not_hang_status_is_50() {
    let env = Env::new("eidown");
    // Refused connections (nothing listens) and a listener that never
    // answers (accepts, then silence): both end within timeoutMs.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    for url in [closed_url, silent_url] {
        let mut c = conf(std::slice::from_ref(&url), "node-a", json!({}));
        c["ipam"]["etcd"]["timeoutMs"] = json!(700);
        let t = Instant::now();
        let err = env.add(&c, "c1").expect_error(11);
        assert!(t.elapsed() < Duration::from_secs(10), "{url}: ADD hung");
        assert!(err["msg"].as_str().unwrap().contains(&url), "{err}");
        let t = Instant::now();
        env.del(&c, "c1").expect_error(11);
        assert!(t.elapsed() < Duration::from_secs(10), "{url}: DEL hung");
        env.call_net("STATUS", &c).expect_error(50);
    }
}

/// A runtime kills a plugin on its own timeout: whatever the instant, what
/// is left is nothing or a whole handle, and the runtime's DEL frees it.
#[test]
fn sigkill_at_any_instant_leaves_nothing_or_a_handle_that_del_frees() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let etcd = EtcdServer::start();
    let env = Env::new("eikill9");
    let c = conf(&etcd.endpoints(), "node-a", json!({}));
    let bin = cni_harness::bins::bin("etcd-ipam");
    let ids: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut child = Command::new(&bin)
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", env.netns())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/nonexistent")
            .env("CNI_ETCD_IPAM_LOCK_DIR", env.locks.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd-ipam");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(c.to_string().as_bytes());
        }
        // 0-39 x 0.25 ms: from before the config is read to after the commit.
        std::thread::sleep(Duration::from_micros(250 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
    }
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    let handles = of_kind(&all, "handles");
    // Every allocation in a block belongs to a handle that exists, and back.
    let mut held = 0;
    for b in of_kind(&all, "blocks").values() {
        for holder in b["allocations"].as_object().unwrap().values() {
            let key = holder.as_str().unwrap().to_string();
            assert!(
                handles.contains_key(&key),
                "allocation of {key} without its handle"
            );
            held += 1;
        }
    }
    assert_eq!(
        held,
        handles.len(),
        "each handle has exactly its one allocation"
    );
    eprintln!(
        "{} of {} killed ADDs had committed",
        handles.len(),
        ids.len()
    );
    for id in &ids {
        let out = env.del(&c, id);
        assert!(out.success(), "DEL {id}: {out:?}");
    }
    let all = dump(&etcd.endpoints(), "/cni-ipam/");
    assert!(of_kind(&all, "handles").is_empty());
    assert_eq!(allocations(&all), 0);
}

/// The round trips README.md promises, counted by etcd itself.
#[test]
fn round_trips_are_the_ones_the_transactions_need() {
    let etcd = EtcdServer::start();
    let env = Env::new("eirt");
    let ep = etcd.endpoints();
    let c = conf(&ep, "node-a", json!({}));
    let count = |f: &dyn Fn()| {
        let before = grpc_calls(&ep[0]);
        f();
        calls_between(&before, &grpc_calls(&ep[0]))
    };
    let m = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    // First ADD of a node: read, list claims, write (claim + block + handle).
    let first = count(&|| {
        env.add(&c, "c1").result();
    });
    assert_eq!(first, m(&[("Range", 1), ("Txn", 2)]));
    // Steady state: one read, one write.
    let steady = count(&|| {
        env.add(&c, "c2").result();
    });
    assert_eq!(steady, m(&[("Txn", 2)]));
    // A retried ADD: the read finds the handle.
    let retry = count(&|| {
        env.add(&c, "c2").result();
    });
    assert_eq!(retry, m(&[("Txn", 1)]));
    // DEL: one read, one write; DEL of nothing: the read alone.
    let del = count(&|| assert!(env.del(&c, "c2").success()));
    assert_eq!(del, m(&[("Txn", 2)]));
    let del_again = count(&|| assert!(env.del(&c, "c2").success()));
    assert_eq!(del_again, m(&[("Txn", 1)]));
}
