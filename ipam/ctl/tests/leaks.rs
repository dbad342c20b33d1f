//! `ipamctl leaks`: the dry run lists exactly the handles no live container
//! holds and writes nothing; `--release` releases exactly those (handles
//! gone, addresses freed in their blocks); from a container list or from a
//! libcni result cache.

mod common;

use cni_harness::EtcdServer;
use common::*;
use serde_json::{json, Value};

/// node-a: c1, c2, c3 (eth0 and eth1); node-b: c2 (same id, other node).
fn populate(env: &Env) {
    let a = env.conf(NET, "node-a", json!({}));
    let b = env.conf(NET, "node-b", json!({}));
    for (id, ifname) in [
        ("c1", "eth0"),
        ("c2", "eth0"),
        ("c3", "eth0"),
        ("c3", "eth1"),
    ] {
        env.add(&a, id, ifname);
    }
    env.add(&b, "c2", "eth0");
}

/// `(container, ifname, status)` of each leak in a JSON report.
fn leaks_of(report: &Value) -> Vec<(String, String, String)> {
    report["leaks"]
        .as_array()
        .unwrap_or_else(|| panic!("no leaks in {report}"))
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("containerID"), s("ifname"), s("status"))
        })
        .collect()
}

fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn a_container_list_dry_run_lists_exactly_the_missing_then_release_frees_them() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlleaks", etcd.endpoints());
    populate(&env);
    let before = env.state(NET);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("containers");
    std::fs::write(&list, "# live on node-a\nc1\nc-unrelated\n").unwrap();
    let list = list.to_string_lossy().into_owned();
    let args = [
        "leaks",
        "--network",
        NET,
        "--node",
        "node-a",
        "--containers",
        &list,
    ];

    // Dry run (JSON): exactly c2/eth0 and both of c3's; nothing written.
    let j = env.ctl(&[&args[..], &["--json"]].concat()).json();
    assert_eq!(j["dryRun"], true);
    assert_eq!(
        leaks_of(&j),
        triples(&[
            ("c2", "eth0", "leaked"),
            ("c3", "eth0", "leaked"),
            ("c3", "eth1", "leaked")
        ])
    );
    let c2 = before.handle("node-a/c2/eth0");
    assert_eq!(
        j["leaks"][0]["addresses"],
        json!([c2.ips[0].address.to_string()])
    );
    assert_eq!(env.state(NET), before, "a dry run writes nothing");

    // The same from stdin, as a table.
    let out = env.ctl_stdin(
        &[
            "leaks",
            "--network",
            NET,
            "--node",
            "node-a",
            "--containers",
            "-",
        ],
        "c1\n",
    );
    let table = out.tables();
    let rows: Vec<(&str, &str, &str)> = table[0][1..]
        .iter()
        .filter(|r| r.len() == 5)
        .map(|r| (r[1].as_str(), r[2].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(
        table[0][0],
        ["NODE", "CONTAINER", "IFNAME", "ADDRESSES", "STATUS"]
    );
    assert_eq!(
        rows,
        [
            ("c2", "eth0", "leaked"),
            ("c3", "eth0", "leaked"),
            ("c3", "eth1", "leaked")
        ]
    );
    assert!(
        out.stdout.contains("dry run: nothing released"),
        "{}",
        out.stdout
    );
    assert_eq!(env.state(NET), before);

    // --release: those three handles and their addresses go; the rest stays.
    let j = env
        .ctl(&[&args[..], &["--release", "--json"]].concat())
        .json();
    assert_eq!(j["dryRun"], false);
    assert_eq!(
        leaks_of(&j),
        triples(&[
            ("c2", "eth0", "released"),
            ("c3", "eth0", "released"),
            ("c3", "eth1", "released")
        ])
    );
    let after = env.state(NET);
    assert_eq!(after.handle_ids(), ["node-a/c1/eth0", "node-b/c2/eth0"]);
    let kept: Vec<(String, String)> = ["node-a/c1/eth0", "node-b/c2/eth0"]
        .iter()
        .map(|id| {
            (
                after.handle(id).ips[0].address.ip().to_string(),
                id.to_string(),
            )
        })
        .collect();
    assert_eq!(
        after.allocations().into_iter().collect::<Vec<_>>(),
        kept,
        "the released addresses left their blocks"
    );
    assert_eq!(after.claims, before.claims, "blocks stay claimed");

    // Nothing left to find.
    let again = env
        .ctl(&[&args[..], &["--release", "--json"]].concat())
        .json();
    assert_eq!(leaks_of(&again), []);
    assert_eq!(env.state(NET), after);
}

#[test]
fn a_result_cache_keeps_exactly_the_attachments_it_records_for_the_network() {
    let etcd = EtcdServer::start();
    let env = Env::new("ctlcache", etcd.endpoints());
    populate(&env);
    let cache = tempfile::tempdir().unwrap();
    let entry = |file: &str, id: &str, ifname: &str, net: &str| {
        let body = json!({"kind": "cniCacheV1", "containerId": id, "ifName": ifname,
                          "networkName": net, "config": "", "result": {}});
        std::fs::write(cache.path().join(file), body.to_string()).unwrap();
    };
    entry("net1-c1-eth0", "c1", "eth0", NET);
    entry("net1-c3-eth1", "c3", "eth1", NET);
    // c2 runs, but attached to another network: its net1 handle is a leak.
    entry("other-c2-eth0", "c2", "eth0", "other");
    let dir = cache.path().to_string_lossy().into_owned();
    let args = [
        "leaks",
        "--network",
        NET,
        "--node",
        "node-a",
        "--cache-dir",
        &dir,
        "--json",
    ];
    let before = env.state(NET);

    let j = env.ctl(&args).json();
    assert_eq!(
        leaks_of(&j),
        triples(&[("c2", "eth0", "leaked"), ("c3", "eth0", "leaked")])
    );
    assert_eq!(env.state(NET), before);

    // An entry that cannot be read could be a live container: refused.
    std::fs::write(cache.path().join("net1-c4-eth0"), "{truncated").unwrap();
    let release = [&args[..], &["--release"]].concat();
    let err = env.ctl(&release);
    assert!(err.failed().contains("net1-c4-eth0"), "{err:?}");
    assert_eq!(env.state(NET), before);
    std::fs::remove_file(cache.path().join("net1-c4-eth0")).unwrap();

    let j = env.ctl(&release).json();
    assert_eq!(
        leaks_of(&j),
        triples(&[("c2", "eth0", "released"), ("c3", "eth0", "released")])
    );
    let after = env.state(NET);
    assert_eq!(
        after.handle_ids(),
        ["node-a/c1/eth0", "node-a/c3/eth1", "node-b/c2/eth0"]
    );
    assert_eq!(after.allocations().len(), 3);
}
