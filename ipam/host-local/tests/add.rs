//! ADD through the built binary: result shapes, families, requested
//! addresses, round robin, rollback, retries, exhaustion, validation.

mod common;

use common::*;
use serde_json::json;

#[test]
fn result_shape_at_every_spec_version() {
    let f = Fixture::new("hl-shape");
    for (i, version) in VERSIONS.into_iter().enumerate() {
        let conf = f.conf(
            "d",
            version,
            json!({"ranges": [[{"subnet": "10.10.0.0/24"}], [{"subnet": "fd10::/64"}]],
                   "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}]}),
        );
        let r = f.add(&format!("shape{i}"), &conf);
        assert_eq!(r["cniVersion"], version);
        assert!(
            r.get("interfaces").is_none(),
            "{version}: an IPAM result has no interfaces"
        );
        let ips = r["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 2, "{version}: one address per range set");
        let n = i + 2;
        assert_eq!(ips[0]["address"], format!("10.10.0.{n}/24"));
        assert_eq!(ips[0]["gateway"], "10.10.0.1");
        assert_eq!(ips[1]["address"], format!("fd10::{n}/64"));
        assert_eq!(ips[1]["gateway"], "fd10::1");
        for ip in ips {
            assert!(ip.get("interface").is_none(), "{version}: {ip}");
        }
        let has_version = version < "1.0.0";
        assert_eq!(ips[0].get("version").is_some(), has_version, "{version}");
        if has_version {
            assert_eq!(ips[0]["version"], "4");
            assert_eq!(ips[1]["version"], "6");
        }
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}])
        );
        assert_eq!(
            r["dns"],
            json!({}),
            "{version}: dns is always there, empty without resolvConf"
        );
    }
}

#[test]
fn ipv4_ipv6_and_dual_stack_leases_on_disk() {
    let f = Fixture::new("hl-fam");
    let cases = [
        (
            "v4",
            json!([[{"subnet": "10.20.0.0/24"}]]),
            vec!["10.20.0.2/24"],
        ),
        (
            "v6",
            json!([[{"subnet": "fd20::/120"}]]),
            vec!["fd20::2/120"],
        ),
        (
            "dual",
            json!([[{"subnet": "10.21.0.0/16"}], [{"subnet": "fd21:0:0:1::/64"}]]),
            vec!["10.21.0.2/16", "fd21:0:0:1::2/64"],
        ),
    ];
    for (which, ranges, want) in cases {
        let conf = f.conf(which, "1.0.0", json!({"ranges": ranges}));
        let r = f.add("ctr1", &conf);
        assert_eq!(addresses(&r), want, "{which}");
        let files = snapshot(&f.net_dir(which));
        for (i, a) in want.iter().enumerate() {
            let ip = a.split('/').next().unwrap();
            assert_eq!(files[ip], b"ctr1\r\neth0", "{which}: lease file of {ip}");
            assert_eq!(files[&format!("last_reserved_ip.{i}")], ip.as_bytes());
        }
        assert_eq!(files["lock"], b"");
        assert_eq!(files.len(), 2 * want.len() + 1, "{which}: {files:?}");
    }
}

#[test]
fn requested_addresses_through_each_channel() {
    let f = Fixture::new("hl-req");
    let ipam = json!({"ranges": [[{"subnet": "10.30.0.0/24"}], [{"subnet": "fd30::/64"}]]});

    // CNI_ARGS IP= (one address, as the reference takes it).
    let conf = f.conf("d", "1.0.0", ipam.clone());
    let r = f
        .call(&ours(), "ADD", "c-env", "eth0", &conf)
        .env("CNI_ARGS", "IP=10.30.0.40")
        .run_in(f.sb.host())
        .result();
    assert_eq!(addresses(&r), ["10.30.0.40/24", "fd30::2/64"]);

    // args.cni.ips, with a prefix that is ignored.
    let mut conf = f.conf("d", "1.0.0", ipam.clone());
    conf["args"] = json!({"cni": {"ips": ["10.30.0.50/24", "fd30::50"]}});
    assert_eq!(
        addresses(&f.add("c-args", &conf)),
        ["10.30.0.50/24", "fd30::50/64"]
    );

    // runtimeConfig.ips (the "ips" capability).
    let mut conf = f.conf("d", "1.0.0", ipam.clone());
    conf["runtimeConfig"] = json!({"ips": ["fd30::60/64"]});
    // Requested addresses move last_reserved_ip too (as in the reference): .50 -> .51.
    assert_eq!(
        addresses(&f.add("c-rt", &conf)),
        ["10.30.0.51/24", "fd30::60/64"]
    );

    // Our extension: a comma-separated CNI_ARGS list (multus sends these).
    let conf = f.conf("d", "1.0.0", ipam.clone());
    let r = f
        .call(&ours(), "ADD", "c-list", "eth0", &conf)
        .env("CNI_ARGS", "IgnoreUnknown=1;IP=10.30.0.70,fd30::70")
        .run_in(f.sb.host())
        .result();
    assert_eq!(addresses(&r), ["10.30.0.70/24", "fd30::70/64"]);

    let l = leases(&f.net_dir("d"));
    assert_eq!(l["10.30.0.40"], "c-env\r\neth0");
    assert_eq!(l["fd30::50"], "c-args\r\neth0");
    assert_eq!(l["fd30::60"], "c-rt\r\neth0");
    assert_eq!(l["fd30::70"], "c-list\r\neth0");
    assert_eq!(l.len(), 8);

    // A requested address already leased: code 101, nothing new on disk.
    let before = snapshot(&f.net_dir("d"));
    let out = f
        .call(&ours(), "ADD", "c-dup", "eth0", &conf)
        .env("CNI_ARGS", "IP=10.30.0.40")
        .run_in(f.sb.host());
    let err = out.expect_error(101);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("10.30.0.40 is not available"),
        "{err}"
    );
    let after = snapshot(&f.net_dir("d"));
    assert_eq!(leases(&f.net_dir("d")).len(), 8);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );

    // An unknown CNI_ARGS key is refused unless IgnoreUnknown (code 4).
    f.call(&ours(), "ADD", "c-x", "eth0", &conf)
        .env("CNI_ARGS", "FOO=1")
        .run_in(f.sb.host())
        .expect_error(4);
    f.call(&ours(), "ADD", "c-k8s", "eth0", &conf)
        .env("CNI_ARGS", "K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns")
        .run_in(f.sb.host())
        .result();
}

#[test]
fn round_robin_resumes_after_the_last_reserved_address() {
    let f = Fixture::new("hl-rr");
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.40.0.0/24"}]]}),
    );
    assert_eq!(addresses(&f.add("c1", &conf)), ["10.40.0.2/24"]);
    assert_eq!(addresses(&f.add("c2", &conf)), ["10.40.0.3/24"]);
    assert!(f.run(&ours(), "DEL", "c1", "eth0", &conf).success());
    assert_eq!(
        addresses(&f.add("c3", &conf)),
        ["10.40.0.4/24"],
        "freed .2 is not reused yet"
    );
    assert!(f.run(&ours(), "DEL", "c3", "eth0", &conf).success());
    assert_eq!(addresses(&f.add("c4", &conf)), ["10.40.0.5/24"]);
    // The walk wraps around to the start of the set.
    std::fs::write(f.net_dir("d").join("last_reserved_ip.0"), "10.40.0.254").unwrap();
    assert_eq!(addresses(&f.add("c5", &conf)), ["10.40.0.2/24"]);
}

#[test]
fn round_robin_across_the_ranges_of_a_set() {
    let f = Fixture::new("hl-rr2");
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[
            {"subnet": "10.41.0.0/24", "rangeStart": "10.41.0.10", "rangeEnd": "10.41.0.11"},
            {"subnet": "10.42.0.0/24", "rangeStart": "10.42.0.20", "rangeEnd": "10.42.0.21", "gateway": "10.42.0.21"}
        ]]}),
    );
    let got: Vec<String> = (0..3)
        .map(|i| addresses(&f.add(&format!("c{i}"), &conf))[0].clone())
        .collect();
    assert_eq!(got, ["10.41.0.10/24", "10.41.0.11/24", "10.42.0.20/24"]);
    // The gateway .21 is never handed out: the set is full now.
    let err = f.run(&ours(), "ADD", "c3", "eth0", &conf).expect_error(101);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .ends_with("10.41.0.10-10.41.0.11,10.42.0.20-10.42.0.21"),
        "{err}"
    );
    assert!(!f.net_dir("d").join("10.42.0.21").exists());
}

#[test]
fn a_failing_second_set_leaves_nothing_behind() {
    let f = Fixture::new("hl-rollback");
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.50.0.0/24"}],
                          [{"subnet": "10.51.0.0/24", "rangeStart": "10.51.0.9", "rangeEnd": "10.51.0.9"}]]}),
    );
    assert_eq!(
        addresses(&f.add("c1", &conf)),
        ["10.50.0.2/24", "10.51.0.9/24"]
    );
    let before = leases(&f.net_dir("d"));
    let err = f.run(&ours(), "ADD", "c2", "eth0", &conf).expect_error(101);
    assert_eq!(
        err["msg"],
        "failed to allocate for range 1: no IP addresses available in range set: 10.51.0.9-10.51.0.9"
    );
    assert_eq!(
        leases(&f.net_dir("d")),
        before,
        "c2's address from set 0 was released"
    );
}

#[test]
fn retried_add_returns_the_same_addresses() {
    let f = Fixture::new("hl-retry");
    let conf = f.conf(
        "d",
        "0.4.0",
        json!({"ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "fd60::/64"}]]}),
    );
    let first = f.add("c1", &conf);
    let before = snapshot(&f.net_dir("d"));
    let again = f.add("c1", &conf);
    assert_eq!(first, again);
    assert_eq!(
        snapshot(&f.net_dir("d")),
        before,
        "a retry changes nothing on disk"
    );
    // The same container on another interface is another attachment.
    let other = f.run(&ours(), "ADD", "c1", "net1", &conf).result();
    assert_eq!(addresses(&other), ["10.60.0.3/24", "fd60::3/64"]);
}

#[test]
fn the_last_free_address_is_handed_out_once_then_101() {
    let f = Fixture::new("hl-last");
    // 10.70.0.0/29 with .1 as gateway: .2 .. .6 are allocatable.
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.70.0.0/29"}]]}),
    );
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(addresses(&f.add(&format!("c{i}"), &conf))[0].clone());
    }
    assert_eq!(
        got,
        [
            "10.70.0.2/29",
            "10.70.0.3/29",
            "10.70.0.4/29",
            "10.70.0.5/29",
            "10.70.0.6/29"
        ]
    );
    let before = snapshot(&f.net_dir("d"));
    let err = f.run(&ours(), "ADD", "c5", "eth0", &conf).expect_error(101);
    assert_eq!(
        err["msg"],
        "failed to allocate for range 0: no IP addresses available in range set: 10.70.0.1-10.70.0.6"
    );
    assert_eq!(
        snapshot(&f.net_dir("d")),
        before,
        "the failed ADD left nothing behind"
    );
    // Freeing one makes exactly that one available, once.
    assert!(f.run(&ours(), "DEL", "c2", "eth0", &conf).success());
    assert_eq!(addresses(&f.add("c6", &conf)), ["10.70.0.4/29"]);
    f.run(&ours(), "ADD", "c7", "eth0", &conf).expect_error(101);
}

#[test]
fn resolv_conf_becomes_the_results_dns() {
    let f = Fixture::new("hl-dns");
    let rc = f.tmp.path().join("resolv.conf");
    std::fs::write(
        &rc,
        "nameserver 10.0.0.53\nsearch a.example b.example\ndomain x.example\noptions ndots:5\n",
    )
    .unwrap();
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"subnet": "10.80.0.0/24", "resolvConf": rc}),
    );
    let r = f.add("c1", &conf);
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.0.0.53"], "domain": "x.example",
               "search": ["a.example", "b.example"], "options": ["ndots:5"]})
    );
    // A resolvConf that cannot be read fails before any lease is made.
    let conf = f.conf(
        "e",
        "1.0.0",
        json!({"subnet": "10.80.0.0/24", "resolvConf": f.tmp.path().join("nope")}),
    );
    f.run(&ours(), "ADD", "c2", "eth0", &conf).expect_error(7);
    assert!(!f.data_dir("e").exists());
}

#[test]
fn invalid_configs_are_code_7_and_touch_nothing() {
    let f = Fixture::new("hl-bad");
    let ipams = [
        json!({}),
        json!({"ranges": []}),
        json!({"ranges": [[]]}),
        json!({"ranges": [[{"subnet": "10.90.0.1/24"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/31"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/24", "rangeStart": "10.91.0.5"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/24", "rangeEnd": "10.91.0.5"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/24"}, {"subnet": "fd90::/64"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/24"}], [{"subnet": "10.90.0.128/25"}]]}),
        json!({"ranges": [[{"subnet": "10.90.0.0/24"}, {"subnet": "10.90.0.0/25"}]]}),
        json!({"subnet": "10.90.0.0/24", "routes": [{"gw": "10.90.0.1"}]}),
        json!({"subnet": "not-a-cidr"}),
    ];
    for ipam in ipams {
        let conf = f.conf("d", "1.0.0", ipam.clone());
        f.run(&ours(), "ADD", "c1", "eth0", &conf).expect_error(7);
        assert!(!f.data_dir("d").exists(), "{ipam}: data dir touched");
    }
    // Requested addresses that cannot be served are config errors too.
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.90.0.0/24"}]]}),
    );
    for ip in ["10.99.0.5", "10.90.0.1", "10.90.0.5,10.90.0.6", "bogus"] {
        f.call(&ours(), "ADD", "c1", "eth0", &conf)
            .env("CNI_ARGS", &format!("IP={ip}"))
            .run_in(f.sb.host())
            .expect_error(7);
        assert!(!f.data_dir("d").exists(), "IP={ip}: data dir touched");
    }
    // No ipam section at all.
    let conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "host-local"});
    let err = f.run(&ours(), "ADD", "c1", "eth0", &conf).expect_error(7);
    assert_eq!(err["msg"], "IPAM config missing 'ipam' key");
}
