//! Differential tests against the reference plugin (Debian
//! containernetworking-plugins 1.1.1, /usr/lib/cni/host-local): the same
//! configs and the same sequence of calls must give the same allocations,
//! equal results and byte-identical lease directories; leases made by one
//! implementation are released by the other. Where we differ on purpose
//! (a reference bug we fix), the test name says so.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// One call of a scripted sequence.
struct Op {
    cmd: &'static str,
    id: &'static str,
    ifname: &'static str,
    cni_args: Option<&'static str>,
    /// Top-level keys merged into the config for this call.
    patch: Value,
}

fn op(cmd: &'static str, id: &'static str) -> Op {
    Op {
        cmd,
        id,
        ifname: "eth0",
        cni_args: None,
        patch: json!({}),
    }
}

impl Op {
    fn ifname(mut self, ifname: &'static str) -> Op {
        self.ifname = ifname;
        self
    }
    fn cni_args(mut self, a: &'static str) -> Op {
        self.cni_args = Some(a);
        self
    }
    fn patch(mut self, p: Value) -> Op {
        self.patch = p;
        self
    }
}

fn modes(dir: &Path) -> BTreeMap<String, u32> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                let e = e.expect("entry");
                let m = e.metadata().expect("metadata").permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), m)
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Runs `ops` against both implementations (separate data dirs, same network
/// name) and compares every output and the lease directory after every call.
/// Returns the ADD results of ours, in order.
fn differential(f: &Fixture, version: &str, ipam: &Value, ops: &[Op]) -> Vec<Value> {
    differential_steps(f, version, ipam, ops)
        .into_iter()
        .zip(ops)
        .filter(|(step, o)| o.cmd == "ADD" && step.ok)
        .map(|(step, _)| step.out)
        .collect()
}

/// How one step of a sequence ended (both implementations agreed on it).
#[derive(Debug)]
struct Step {
    ok: bool,
    /// Ours: the ADD result, `null` for a silent CHECK/DEL, the error on failure.
    out: Value,
}

/// [`differential`], returning every step's outcome.
fn differential_steps(f: &Fixture, version: &str, ipam: &Value, ops: &[Op]) -> Vec<Step> {
    let mut steps = Vec::new();
    for (n, o) in ops.iter().enumerate() {
        let step = format!("{version} step {n} {} {}/{}", o.cmd, o.id, o.ifname);
        let outs: Vec<_> = [("ours", ours()), ("ref", reference())]
            .into_iter()
            .map(|(which, bin)| {
                let mut conf = f.conf(which, version, ipam.clone());
                for (k, v) in o.patch.as_object().expect("patch object") {
                    conf[k] = v.clone();
                }
                let mut call = f.call(&bin, o.cmd, o.id, o.ifname, &conf);
                if let Some(a) = o.cni_args {
                    call = call.env("CNI_ARGS", a);
                }
                call.run_in(f.sb.host())
            })
            .collect();
        let (a, b) = (&outs[0], &outs[1]);
        assert_eq!(a.success(), b.success(), "{step}\nours: {a:?}\nref: {b:?}");
        if a.success() {
            if o.cmd == "ADD" {
                assert_eq!(a.json(), b.json(), "{step}: results differ");
                steps.push(Step {
                    ok: true,
                    out: a.json(),
                });
            } else {
                assert_eq!((a.stdout.as_str(), b.stdout.as_str()), ("", ""), "{step}");
                steps.push(Step {
                    ok: true,
                    out: Value::Null,
                });
            }
        } else {
            // Same message; the reference reports every failure as 999.
            let (ea, eb) = (a.json(), b.json());
            assert_eq!(ea["msg"], eb["msg"], "{step}: error messages differ");
            assert_eq!(eb["code"], 999, "{step}");
            assert!(ea["code"] == 101 || ea["code"] == 102, "{step}: {ea}");
            steps.push(Step { ok: false, out: ea });
        }
        assert_eq!(
            snapshot(&f.net_dir("ours")),
            snapshot(&f.net_dir("ref")),
            "{step}: lease directories differ"
        );
        assert_eq!(
            modes(&f.net_dir("ours")),
            modes(&f.net_dir("ref")),
            "{step}: modes differ"
        );
    }
    steps
}

#[test]
fn ipv4_sequence_with_round_robin_wrap_and_exhaustion_at_every_version() {
    for version in REFERENCE_VERSIONS {
        let f = Fixture::new("hl-diff4");
        let ipam = json!({
            "ranges": [[{"subnet": "10.140.0.0/29"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.140.0.1"}]
        });
        let mut ops = vec![op("ADD", "c1"), op("ADD", "c2")];
        if version >= "0.4.0" {
            ops.push(op("CHECK", "c1"));
            ops.push(op("CHECK", "nobody"));
        }
        ops.extend([
            op("DEL", "c1"),
            op("ADD", "c3"),
            op("ADD", "c4"),
            op("ADD", "c5"),
            op("ADD", "c6"), // wraps around to .2
            op("ADD", "c7"), // exhausted
            op("DEL", "c2"),
            op("DEL", "c2"),
            op("ADD", "c7"),
            op("DEL", "never-added"),
        ]);
        let r = differential(&f, version, &ipam, &ops);
        let got: Vec<String> = r.iter().map(|r| addresses(r)[0].clone()).collect();
        assert_eq!(
            got,
            [
                "10.140.0.2/29",
                "10.140.0.3/29",
                "10.140.0.4/29",
                "10.140.0.5/29",
                "10.140.0.6/29",
                "10.140.0.2/29",
                "10.140.0.3/29"
            ],
            "{version}"
        );
    }
}

#[test]
fn ipv6_with_bounds_and_resolv_conf() {
    let f = Fixture::new("hl-diff6");
    let rc = f.tmp.path().join("resolv.conf");
    std::fs::write(
        &rc,
        "# x\nnameserver fd00::53\nnameserver 10.0.0.53\nsearch a b\nsearch c\ndomain d1\ndomain d2\noptions ndots:2 rotate\n",
    )
    .unwrap();
    let ipam = json!({
        "ranges": [[{"subnet": "fd14:0:0:1::/64", "rangeStart": "fd14:0:0:1::fffe", "rangeEnd": "fd14:0:0:1::1:2"}]],
        "resolvConf": rc,
        "routes": [{"dst": "::/0"}]
    });
    let r = differential(
        &f,
        "1.0.0",
        &ipam,
        &[
            op("ADD", "c1"),
            op("ADD", "c2"),
            op("DEL", "c1"),
            op("ADD", "c3"),
            op("ADD", "c4"),
            op("ADD", "c5"),
        ],
    );
    let got: Vec<String> = r.iter().map(|r| addresses(r)[0].clone()).collect();
    assert_eq!(
        got,
        // fd14:0:0:1:0:0:1:0 has two equal zero runs: RFC 5952 (Go and Rust)
        // compresses the first, so the file is named fd14::1:0:0:1:0.
        [
            "fd14:0:0:1::fffe/64",
            "fd14:0:0:1::ffff/64",
            "fd14::1:0:0:1:0/64",
            "fd14::1:0:0:1:1/64",
            "fd14::1:0:0:1:2/64"
        ]
    );
    assert!(f.net_dir("ours").join("fd14::1:0:0:1:2").is_file());
    assert_eq!(r[0]["dns"]["domain"], "d2");
}

#[test]
fn dual_stack_with_legacy_and_runtime_ranges_shifting_set_indexes() {
    let f = Fixture::new("hl-diffds");
    let ipam = json!({
        "subnet": "10.141.0.0/24", "rangeStart": "10.141.0.100",
        "ranges": [[{"subnet": "fd15::/64"}]]
    });
    let rt = json!({"runtimeConfig": {"ipRanges": [[{"subnet": "10.142.0.0/24", "gateway": "10.142.0.254"}]]}});
    let r = differential(
        &f,
        "0.4.0",
        &ipam,
        &[
            op("ADD", "c1").patch(rt.clone()),
            op("ADD", "c2").patch(rt.clone()),
            op("ADD", "c2").ifname("net1").patch(rt.clone()),
            op("CHECK", "c2").ifname("net1").patch(rt.clone()),
            op("DEL", "c2").patch(rt.clone()),
            op("ADD", "c3").patch(rt.clone()),
            // Without the runtime range the indexes shift back.
            op("ADD", "c4"),
        ],
    );
    assert_eq!(
        addresses(&r[0]),
        ["10.142.0.1/24", "10.141.0.100/24", "fd15::2/64"]
    );
    assert_eq!(r[0]["ips"][0]["gateway"], "10.142.0.254");
    assert_eq!(
        addresses(&r[3]),
        ["10.142.0.4/24", "10.141.0.103/24", "fd15::5/64"]
    );
    // c4 sees two sets: last_reserved_ip.0 (a runtime-range address) is not in
    // the legacy set, so the walk restarts there and finds c2's freed .101.
    assert_eq!(addresses(&r[4]), ["10.141.0.101/24", "fd15::3/64"]);
}

#[test]
fn several_ranges_in_a_set_explicit_gateway_and_network_address() {
    let f = Fixture::new("hl-diffmr");
    let ipam = json!({"ranges": [[
        {"subnet": "10.143.0.0/24", "rangeStart": "10.143.0.0", "rangeEnd": "10.143.0.2", "gateway": "10.143.0.1"},
        {"subnet": "10.144.0.0/24", "rangeStart": "10.144.0.254", "rangeEnd": "10.144.0.255", "gateway": "10.144.0.9"}
    ]]});
    let r = differential(
        &f,
        "0.3.1",
        &ipam,
        &[
            op("ADD", "c1"),
            op("ADD", "c2"),
            op("ADD", "c3"),
            op("ADD", "c4"),
            op("ADD", "c5"),
            op("DEL", "c2"),
            op("ADD", "c6"),
        ],
    );
    let got: Vec<String> = r.iter().map(|r| addresses(r)[0].clone()).collect();
    assert_eq!(
        got,
        [
            "10.143.0.0/24",
            "10.143.0.2/24",
            "10.144.0.254/24",
            "10.144.0.255/24",
            "10.143.0.2/24"
        ]
    );
}

#[test]
fn requested_addresses_through_each_channel() {
    let f = Fixture::new("hl-diffreq");
    let ipam = json!({"ranges": [[{"subnet": "10.145.0.0/24"}], [{"subnet": "fd16::/64"}]]});
    let steps = differential_steps(
        &f,
        "1.0.0",
        &ipam,
        &[
            op("ADD", "c1").cni_args("IP=10.145.0.50"),
            op("ADD", "c2")
                .patch(json!({"args": {"cni": {"ips": ["10.145.0.60/24", "fd16::60"]}}})),
            op("ADD", "c3").patch(json!({"runtimeConfig": {"ips": ["fd16::70/64"]}})),
            op("ADD", "c4"),
            // Taken by c1: both refuse with the same message, nothing left behind.
            op("ADD", "c5").cni_args("IP=10.145.0.50"),
            op("DEL", "c1"),
            op("ADD", "c5").cni_args("IP=10.145.0.50"),
        ],
    );
    // Ours == reference is not enough (the same failure on both sides is
    // equal): each step must also end as the spec says.
    let granted = |n: usize| {
        let s: &Step = &steps[n];
        assert!(s.ok, "step {n} failed: {}", s.out);
        addresses(&s.out)
    };
    // Each channel's request is granted in its own family; the other family
    // walks round robin from the last reserved address.
    assert_eq!(granted(0), ["10.145.0.50/24", "fd16::2/64"], "CNI_ARGS IP");
    assert_eq!(
        granted(1),
        ["10.145.0.60/24", "fd16::60/64"],
        "args.cni.ips"
    );
    assert_eq!(
        granted(2),
        ["10.145.0.61/24", "fd16::70/64"],
        "runtimeConfig.ips"
    );
    assert_eq!(granted(3), ["10.145.0.62/24", "fd16::71/64"], "no request");
    // The conflicting request is refused with "not available", code 101.
    assert!(!steps[4].ok, "c5's request for c1's address was granted");
    assert_eq!(steps[4].out["code"], 101, "{}", steps[4].out);
    let msg = steps[4].out["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("10.145.0.50") && msg.contains("not available"),
        "{msg}"
    );
    assert!(steps[5].ok, "DEL c1: {}", steps[5].out);
    assert_eq!(
        granted(6),
        ["10.145.0.50/24", "fd16::72/64"],
        "freed by DEL"
    );
    let l = leases(&f.net_dir("ours"));
    assert_eq!(
        l.keys().collect::<Vec<_>>(),
        [
            "10.145.0.50",
            "10.145.0.60",
            "10.145.0.61",
            "10.145.0.62",
            "fd16::60",
            "fd16::70",
            "fd16::71",
            "fd16::72"
        ],
        "{l:?}"
    );
    assert!(l["10.145.0.50"].starts_with("c5"), "{l:?}");
}

#[test]
fn leases_move_between_implementations_in_both_directions() {
    let f = Fixture::new("hl-cross");
    // One data dir, used by both.
    let ipam = json!({"ranges": [[{"subnet": "10.146.0.0/24"}], [{"subnet": "fd17::/64"}]]});
    let conf = f.conf("shared", "1.0.0", ipam);
    let dir = f.net_dir("shared");
    let (us, them) = (ours(), reference());
    let add = |bin: &Path, id: &str| f.run(bin, "ADD", id, "eth0", &conf).result();

    // Round robin continues across implementations.
    assert_eq!(addresses(&add(&us, "a1")), ["10.146.0.2/24", "fd17::2/64"]);
    assert_eq!(
        addresses(&add(&them, "a2")),
        ["10.146.0.3/24", "fd17::3/64"]
    );
    let a3 = add(&us, "a3");
    assert_eq!(addresses(&a3), ["10.146.0.4/24", "fd17::4/64"]);

    // Each CHECKs and DELs the other's leases.
    for (checker, id) in [(&them, "a1"), (&us, "a2"), (&them, "a3")] {
        let out = f.run(checker, "CHECK", id, "eth0", &conf);
        assert!(out.success(), "{} CHECK {id}: {out:?}", checker.display());
    }
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = add(&them, "a4");
    assert!(f.run(&us, "CHECK", "a4", "eth0", &with_prev).success());

    assert!(f.run(&them, "DEL", "a1", "eth0", &conf).success());
    assert!(f.run(&us, "DEL", "a2", "eth0", &conf).success());
    let l = leases(&dir);
    assert_eq!(
        l.keys().collect::<Vec<_>>(),
        ["10.146.0.4", "10.146.0.5", "fd17::4", "fd17::5"],
        "ours freed the reference's lease and vice versa"
    );
    // Our retry of a reference-made attachment returns its addresses.
    assert_eq!(add(&us, "a4"), with_prev["prevResult"]);
    assert!(f.run(&us, "DEL", "a4", "eth0", &conf).success());
    assert!(f.run(&them, "DEL", "a3", "eth0", &conf).success());
    assert!(leases(&dir).is_empty());
    // The reference's round robin picks up from where ours left last_reserved_ip.
    assert_eq!(
        addresses(&add(&them, "a5")),
        ["10.146.0.6/24", "fd17::6/64"]
    );
    assert_eq!(addresses(&add(&us, "a6")), ["10.146.0.7/24", "fd17::7/64"]);
}

// ---- deliberate differences ----

#[test]
fn retried_add_is_idempotent_where_the_reference_reports_duplicate_allocation() {
    let f = Fixture::new("hl-dupe");
    let ipam = json!({"ranges": [[{"subnet": "10.147.0.0/24"}]]});
    for which in ["ours", "ref"] {
        let conf = f.conf(which, "1.0.0", ipam.clone());
        let bin = if which == "ours" { ours() } else { reference() };
        let first = f.run(&bin, "ADD", "c1", "eth0", &conf).result();
        let again = f.run(&bin, "ADD", "c1", "eth0", &conf);
        if which == "ours" {
            assert_eq!(again.result(), first);
        } else {
            let e = again.json();
            assert_eq!(e["msg"], "failed to allocate for range 0: 10.147.0.2 has been allocated to c1, duplicate allocation is not allowed");
        }
    }
    assert_eq!(snapshot(&f.net_dir("ours")), snapshot(&f.net_dir("ref")));
}

#[test]
fn comma_separated_cni_args_ip_is_accepted_where_the_reference_rejects_it() {
    let f = Fixture::new("hl-comma");
    let ipam = json!({"ranges": [[{"subnet": "10.148.0.0/24"}], [{"subnet": "fd18::/64"}]]});
    let run = |which: &str, bin: &Path| {
        f.call(
            bin,
            "ADD",
            "c1",
            "eth0",
            &f.conf(which, "1.0.0", ipam.clone()),
        )
        .env("CNI_ARGS", "IP=10.148.0.9,fd18::9")
        .run_in(f.sb.host())
    };
    assert_eq!(
        addresses(&run("ours", &ours()).result()),
        ["10.148.0.9/24", "fd18::9/64"]
    );
    let e = run("ref", &reference()).json();
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("invalid IP address 10.148.0.9,fd18::9"),
        "{e}"
    );
}

#[test]
fn unservable_request_fails_before_touching_disk_where_the_reference_leaves_state() {
    let f = Fixture::new("hl-unserv");
    let ipam = json!({"ranges": [[{"subnet": "10.149.0.0/24"}]]});
    let run = |which: &str, bin: &Path| {
        f.call(
            bin,
            "ADD",
            "c1",
            "eth0",
            &f.conf(which, "1.0.0", ipam.clone()),
        )
        .env("CNI_ARGS", "IP=10.200.0.9")
        .run_in(f.sb.host())
    };
    run("ours", &ours()).expect_error(7);
    assert!(!f.data_dir("ours").exists(), "ours never touched the disk");
    let e = run("ref", &reference()).json();
    assert_eq!(e["msg"], "failed to allocate all requested IPs: 10.200.0.9");
    // The reference allocated from set 0, released it, and left its trace.
    let s = snapshot(&f.net_dir("ref"));
    assert_eq!(s.keys().collect::<Vec<_>>(), ["last_reserved_ip.0", "lock"]);
}

#[test]
fn del_with_another_ifname_keeps_last_reserved_ip_where_the_reference_deletes_it() {
    // Container ids may look like addresses. The reference's legacy DEL pass
    // deletes every file whose content is the bare id - last_reserved_ip.0
    // included - so its round robin restarts.
    let f = Fixture::new("hl-legacybug");
    let ipam = json!({"ranges": [[{"subnet": "10.150.0.0/24"}]]});
    for (which, bin) in [("ours", ours()), ("ref", reference())] {
        let conf = f.conf(which, "1.0.0", ipam.clone());
        let r = f.run(&bin, "ADD", "10.150.0.2", "eth0", &conf).result();
        assert_eq!(addresses(&r), ["10.150.0.2/24"]);
        assert!(f.run(&bin, "DEL", "10.150.0.2", "eth1", &conf).success());
    }
    let (a, b) = (snapshot(&f.net_dir("ours")), snapshot(&f.net_dir("ref")));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        ["10.150.0.2", "last_reserved_ip.0", "lock"]
    );
    assert_eq!(
        b.keys().collect::<Vec<_>>(),
        ["10.150.0.2", "lock"],
        "reference bug no longer present?"
    );
}

#[test]
fn del_with_a_broken_config_succeeds_where_the_reference_fails() {
    let f = Fixture::new("hl-delbroken");
    let good = json!({"ranges": [[{"subnet": "10.151.0.0/24"}]]});
    let broken = json!({"ranges": []});
    for (which, bin) in [("ours", ours()), ("ref", reference())] {
        f.run(
            &bin,
            "ADD",
            "c1",
            "eth0",
            &f.conf(which, "1.0.0", good.clone()),
        )
        .result();
        let out = f.run(
            &bin,
            "DEL",
            "c1",
            "eth0",
            &f.conf(which, "1.0.0", broken.clone()),
        );
        if which == "ours" {
            assert!(out.success(), "{out:?}");
            assert!(leases(&f.net_dir(which)).is_empty());
        } else {
            assert_eq!(out.json()["msg"], "no IP ranges specified");
            assert_eq!(leases(&f.net_dir(which)).len(), 1);
        }
    }
}
