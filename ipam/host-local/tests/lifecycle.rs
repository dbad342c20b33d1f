//! DEL, CHECK, GC and STATUS through the built binary.

mod common;

use common::*;
use serde_json::{json, Value};

fn dual(f: &Fixture, version: &str) -> Value {
    f.conf(
        "d",
        version,
        json!({"ranges": [[{"subnet": "10.110.0.0/24"}], [{"subnet": "fd11::/64"}]]}),
    )
}

#[test]
fn del_releases_every_lease_of_the_attachment_and_is_idempotent() {
    let f = Fixture::new("hl-del");
    let conf = dual(&f, "1.0.0");
    f.add("c1", &conf);
    f.add("c2", &conf);
    f.run(&ours(), "ADD", "c1", "net1", &conf).result();
    assert_eq!(leases(&f.net_dir("d")).len(), 6);
    for _ in 0..2 {
        let out = f.run(&ours(), "DEL", "c1", "eth0", &conf);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, "", "DEL prints nothing");
        let l = leases(&f.net_dir("d"));
        assert_eq!(l.len(), 4, "{l:?}");
        assert!(l.values().all(|v| v != "c1\r\neth0"));
    }
    // Without CNI_NETNS, and with a container netns that is gone.
    let out = f
        .call(&ours(), "DEL", "c2", "eth0", &conf)
        .unset("CNI_NETNS")
        .run_in(f.sb.host());
    assert!(out.success(), "{out:?}");
    assert_eq!(leases(&f.net_dir("d")).len(), 2);
    let out = f
        .call(&ours(), "DEL", "c1", "net1", &conf)
        .env("CNI_NETNS", "/run/netns/cnit-no-such-ns")
        .run_in(f.sb.host());
    assert!(out.success(), "{out:?}");
    assert!(leases(&f.net_dir("d")).is_empty());
    // Round-robin state and the lock stay.
    let files = snapshot(&f.net_dir("d"));
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
}

#[test]
fn del_succeeds_without_a_data_dir_and_does_not_create_one() {
    let f = Fixture::new("hl-del0");
    let conf = dual(&f, "1.0.0");
    let out = f.run(&ours(), "DEL", "c1", "eth0", &conf);
    assert!(out.success(), "{out:?}");
    assert!(!f.data_dir("d").exists());
    // A config whose ranges no longer validate can still release its leases.
    f.add("c1", &conf);
    let broken = f.conf("d", "1.0.0", json!({"ranges": [[]]}));
    assert!(f.run(&ours(), "DEL", "c1", "eth0", &broken).success());
    assert!(leases(&f.net_dir("d")).is_empty());
}

#[test]
fn del_releases_legacy_id_only_leases_like_the_reference() {
    let f = Fixture::new("hl-legacy");
    let conf = dual(&f, "1.0.0");
    let dir = f.net_dir("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("10.110.0.7"), "oldctr").unwrap();
    std::fs::write(dir.join("10.110.0.8"), "oldctr\n").unwrap();
    std::fs::write(dir.join("10.110.0.9"), "oldctr\r\neth5").unwrap();
    std::fs::write(dir.join("10.110.0.10"), "other").unwrap();
    // No lease of (oldctr, eth9): the legacy id-only ones go, eth5's stays.
    assert!(f.run(&ours(), "DEL", "oldctr", "eth9", &conf).success());
    let l = leases(&dir);
    assert_eq!(l.keys().collect::<Vec<_>>(), ["10.110.0.10", "10.110.0.9"]);
    // With a wrong ifname for an ifname-carrying lease nothing goes.
    assert!(f.run(&ours(), "DEL", "other2", "eth5", &conf).success());
    assert_eq!(leases(&dir).len(), 2);
}

#[test]
fn check_verifies_the_lease_and_prev_result() {
    let f = Fixture::new("hl-check");
    let conf = dual(&f, "1.0.0");
    let added = f.add("c1", &conf);
    let check = |conf: &Value, id: &str, ifname: &str| f.run(&ours(), "CHECK", id, ifname, conf);
    // Without prevResult: the lease exists.
    let out = check(&conf, "c1", "eth0");
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "");
    // With the ADD result as prevResult.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = added.clone();
    assert!(check(&with_prev, "c1", "eth0").success());
    // prevResult from a main plugin, with interfaces and an extra address that is not ours.
    let mut chained = with_prev.clone();
    chained["prevResult"]["interfaces"] = json!([{"name": "eth0", "sandbox": "/x"}]);
    chained["prevResult"]["ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({"address": "192.168.7.7/24", "interface": 0}));
    assert!(check(&chained, "c1", "eth0").success());
    // prevResult naming another address of our range: code 102.
    let mut wrong = with_prev.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("10.110.0.99/24");
    let err = check(&wrong, "c1", "eth0").expect_error(102);
    assert!(
        err["msg"].as_str().unwrap().contains("10.110.0.99"),
        "{err}"
    );
    // prevResult missing one of the leases: code 102.
    let mut short = with_prev.clone();
    short["prevResult"]["ips"].as_array_mut().unwrap().pop();
    check(&short, "c1", "eth0").expect_error(102);
    // No lease at all: code 102, as the reference fails.
    let err = check(&conf, "c9", "eth0").expect_error(102);
    assert!(err["msg"]
        .as_str()
        .unwrap()
        .contains("Failed to find address added by container c9"));
    check(&conf, "c1", "net1").expect_error(102);
    assert!(f.run(&ours(), "DEL", "c1", "eth0", &conf).success());
    check(&conf, "c1", "eth0").expect_error(102);
    // CHECK does not exist before 0.4.0.
    f.run(&ours(), "CHECK", "c1", "eth0", &dual(&f, "0.3.1"))
        .expect_error(1);
}

#[test]
fn gc_releases_leases_of_attachments_not_listed_with_either_key() {
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        let f = Fixture::new("hl-gc");
        let conf = dual(&f, "1.1.0");
        for id in ["keep", "gone"] {
            f.add(id, &conf);
        }
        f.run(&ours(), "ADD", "keep", "net1", &conf).result();
        let dir = f.net_dir("d");
        std::fs::write(dir.join("10.110.0.200"), "keep").unwrap();
        std::fs::write(dir.join("10.110.0.201"), "oldgone").unwrap();
        let mut gc = conf.clone();
        gc[key] = json!([{"containerID": "keep", "ifname": "eth0"}, {"containerID": "elsewhere", "ifname": "eth0"}]);
        let out = f.run_netwide(&ours(), "GC", &gc);
        assert!(out.success(), "{key}: {out:?}");
        assert_eq!(out.stdout, "");
        let l = leases(&dir);
        let mut owners: Vec<&str> = l.values().map(String::as_str).collect();
        owners.sort();
        assert_eq!(
            owners,
            ["keep", "keep\r\neth0", "keep\r\neth0"],
            "{key}: {l:?}"
        );
        // The kept attachment still holds its addresses (a retried ADD returns them).
        let again = f.add("keep", &conf);
        assert_eq!(addresses(&again), ["10.110.0.2/24", "fd11::2/64"], "{key}");
        // An empty list releases everything.
        gc[key] = json!([]);
        assert!(f.run_netwide(&ours(), "GC", &gc).success());
        assert!(leases(&dir).is_empty(), "{key}");
    }
}

#[test]
fn gc_without_a_list_or_a_directory() {
    let f = Fixture::new("hl-gc0");
    let conf = dual(&f, "1.1.0");
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    assert!(
        f.run_netwide(&ours(), "GC", &gc).success(),
        "no directory: nothing to do"
    );
    assert!(!f.data_dir("d").exists());
    f.add("c1", &conf);
    f.run_netwide(&ours(), "GC", &conf).expect_error(7);
    assert_eq!(
        leases(&f.net_dir("d")).len(),
        2,
        "refused GC released nothing"
    );
    f.run_netwide(&ours(), "GC", &dual(&f, "1.0.0"))
        .expect_error(1);
}

#[test]
fn status_is_50_when_a_range_set_is_exhausted() {
    let f = Fixture::new("hl-status");
    let conf = f.conf(
        "d",
        "1.1.0",
        json!({"ranges": [[{"subnet": "fd12::/64"}], [{"subnet": "10.120.0.0/30"}]]}),
    );
    let out = f.run_netwide(&ours(), "STATUS", &conf);
    assert!(out.success(), "fresh network: {out:?}");
    assert_eq!(out.stdout, "");
    f.add("c1", &conf); // takes 10.120.0.2, the only address of the /30
    let err = f.run_netwide(&ours(), "STATUS", &conf).expect_error(50);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("range set 1: 10.120.0.1-10.120.0.2"),
        "{err}"
    );
    // An ADD would indeed fail now.
    f.run(&ours(), "ADD", "c2", "eth0", &conf).expect_error(101);
    assert!(f.run(&ours(), "DEL", "c1", "eth0", &conf).success());
    assert!(f.run_netwide(&ours(), "STATUS", &conf).success());

    // An unusable data dir is 50 too; an invalid config is 7.
    std::fs::write(f.tmp.path().join("plainfile"), "").unwrap();
    let bad_dir = f.conf(
        "d",
        "1.1.0",
        json!({"dataDir": f.tmp.path().join("plainfile/sub"), "ranges": [[{"subnet": "10.121.0.0/24"}]]}),
    );
    f.run_netwide(&ours(), "STATUS", &bad_dir).expect_error(50);
    f.run_netwide(
        &ours(),
        "STATUS",
        &f.conf("d", "1.1.0", json!({"ranges": [[]]})),
    )
    .expect_error(7);
    f.run_netwide(&ours(), "STATUS", &dual(&f, "1.0.0"))
        .expect_error(1);
}

#[test]
fn version_lists_every_supported_version() {
    let out = cni_harness::PluginCall::new(ours(), "VERSION")
        .stdin("")
        .run_here();
    assert_eq!(out.result()["supportedVersions"], json!(VERSIONS));
}
