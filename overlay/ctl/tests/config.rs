//! `config get` and `config set` against a real etcd: the round trip, an
//! invalid config refused with nothing written, changes that would break
//! running nodes refused with their reasons unless --force.

mod common;

use common::*;
use serde_json::json;

#[test]
fn set_then_get_round_trips_and_an_unchanged_config_is_not_rewritten() {
    let env = Env::new();
    let none = env.ctl(&["config", "get"]);
    assert!(
        none.failed()
            .contains("no overlay config at /overlay/config"),
        "{none:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overlay.json");
    std::fs::write(&file, r#"{"network": "10.244.0.0/16", "mtu": 1400}"#).unwrap();
    let file = file.to_str().unwrap();
    let set = env.ctl(&["config", "set", file]);
    assert!(
        set.ok().contains("config written to /overlay/config"),
        "{set:?}"
    );
    // Stored with every default spelled out.
    let full = json!({"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1, "port": 8472,
                      "mtu": 1400, "directRouting": false});
    assert_eq!(env.config(), Some(full.clone()));

    let got = env.ctl(&["config", "get"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(got.ok()).unwrap(),
        full
    );
    assert_eq!(env.ctl(&["config", "get", "--json"]).json(), full);

    // What `get` prints goes back in through stdin: the same, not rewritten.
    let before = env.raw("/overlay/config").unwrap();
    let again = env.ctl_stdin(&["config", "set", "-", "--json"], got.ok());
    let j = again.json();
    assert_eq!(j["written"], json!(false), "{j}");
    assert_eq!(j["config"], full);
    assert_eq!(env.raw("/overlay/config").unwrap(), before);

    // A harmless change from stdin is written, at a new revision.
    let mtu = env.ctl_stdin(
        &["config", "set", "-", "--json"],
        r#"{"network": "10.244.0.0/16"}"#,
    );
    let j = mtu.json();
    assert_eq!(j["written"], json!(true), "{j}");
    let (value, rev) = env.raw("/overlay/config").unwrap();
    assert_eq!(j["revision"], json!(rev));
    assert!(rev > before.1);
    assert!(value.contains(r#""mtu":null"#), "{value}");

    // Another prefix is another overlay.
    let other = env.ctl(&["--prefix", "/other", "config", "get"]);
    assert!(other.failed().contains("/other/config"), "{other:?}");
}

#[test]
fn an_invalid_config_is_refused_with_its_reason_and_nothing_is_written() {
    let env = Env::new();
    for (bad, reason) in [
        (r#"{"network": "10.244.0.1/16"}"#, "host bits"),
        (r#"{"network": "10.244.0.0/16", "vni": 16777216}"#, "vni"),
        (
            r#"{"network": "10.244.0.0/16", "subnetLen": 8}"#,
            "subnetLen",
        ),
        (r#"{"network": "10.244.0.0/16", "bogus": 1}"#, "bogus"),
        ("not json", "overlay config"),
        ("", "overlay config"),
    ] {
        let out = env.ctl_stdin(&["config", "set", "-", "--force"], bad);
        let msg = out.failed();
        assert!(msg.contains(reason), "{bad}: {msg}");
        assert!(env.snapshot().is_empty(), "{bad}: something was written");
    }
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/16"}"#)
        .ok();
    let before = env.snapshot();
    let out = env.ctl_stdin(
        &["config", "set", "-"],
        r#"{"network": "10.244.0.0/16", "port": 0}"#,
    );
    assert!(out.failed().contains("port 0"), "{out:?}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn changes_that_break_running_nodes_are_refused_unless_forced() {
    let env = Env::new();
    let now = unix_now();
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/16"}"#)
        .ok();
    env.put_node(
        &record(
            "node-a",
            "10.244.1.0/24",
            "192.168.1.10",
            "0a:58:0a:f4:01:00",
            now,
        ),
        600,
    );
    env.put_node(
        &record(
            "node-b",
            "10.244.200.0/24",
            "192.168.1.11",
            "0a:58:0a:f4:c8:00",
            now,
        ),
        600,
    );
    let before = env.snapshot();

    // A shrink that strands node-b's subnet: refused, naming it (only it).
    let shrink = r#"{"network": "10.244.0.0/17"}"#;
    let out = env.ctl_stdin(&["config", "set", "-"], shrink);
    let msg = out.failed();
    assert!(msg.contains("10.244.200.0/24"), "{msg}");
    assert!(!msg.contains("10.244.1.0/24"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    assert_eq!(env.snapshot(), before);

    // Another VNI, another port, another subnetLen: each refused with its reason.
    for (change, reason) in [
        (r#"{"network": "10.244.0.0/16", "vni": 2}"#, "vni 1 -> 2"),
        (
            r#"{"network": "10.244.0.0/16", "port": 4789}"#,
            "port 8472 -> 4789",
        ),
        (
            r#"{"network": "10.244.0.0/16", "subnetLen": 25}"#,
            "subnetLen 24 -> 25",
        ),
    ] {
        let out = env.ctl_stdin(&["config", "set", "-"], change);
        let msg = out.failed();
        assert!(msg.contains(reason), "{change}: {msg}");
        assert_eq!(env.snapshot(), before, "{change}");
    }

    // Both reasons at once, each on a line of its own.
    let out = env.ctl_stdin(
        &["config", "set", "-"],
        r#"{"network": "10.244.0.0/17", "vni": 2}"#,
    );
    let msg = out.failed();
    let lines: Vec<&str> = msg.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("vni 1 -> 2") && !l.contains("10.244.200.0/24"))
            && lines
                .iter()
                .any(|l| l.contains("10.244.200.0/24") && !l.contains("vni")),
        "{msg}"
    );

    // Growing the network or changing the MTU breaks nothing.
    env.ctl_stdin(
        &["config", "set", "-"],
        r#"{"network": "10.244.0.0/15", "mtu": 1400}"#,
    )
    .ok();
    assert_eq!(env.config().unwrap()["network"], json!("10.244.0.0/15"));

    // --force writes the shrink, and says what it breaks.
    let forced = env.ctl_stdin(&["config", "set", "-", "--force"], shrink);
    forced.ok();
    assert!(
        forced.stderr.contains("warning") && forced.stderr.contains("10.244.200.0/24"),
        "{forced:?}"
    );
    assert_eq!(env.config().unwrap()["network"], json!("10.244.0.0/17"));
    // And the VNI change.
    let forced = env.ctl_stdin(
        &["config", "set", "-", "--force", "--json"],
        r#"{"network": "10.244.0.0/17", "vni": 2}"#,
    );
    let j = forced.json();
    assert_eq!(j["written"], json!(true));
    assert!(
        j["forced"][0].as_str().unwrap().contains("vni 1 -> 2"),
        "{j}"
    );
    assert_eq!(env.config().unwrap()["vni"], json!(2));
    // The node records were never touched.
    let records: Vec<_> = env
        .snapshot()
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("/overlay/subnets/"))
        .collect();
    let before_records: Vec<_> = before
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("/overlay/subnets/"))
        .collect();
    assert_eq!(records, before_records);
}

#[test]
fn a_first_config_must_hold_the_subnets_already_leased() {
    let env = Env::new();
    env.put_node(
        &record(
            "node-a",
            "10.9.3.0/24",
            "192.168.1.10",
            "0a:58:0a:09:03:00",
            1,
        ),
        600,
    );
    let out = env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/16"}"#);
    assert!(out.failed().contains("10.9.3.0/24"), "{out:?}");
    assert_eq!(env.config(), None);
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.9.0.0/16"}"#)
        .ok();
    assert_eq!(env.config().unwrap()["network"], json!("10.9.0.0/16"));

    // A stored config that is no config: get shows it and fails; set needs --force.
    env.put_raw("/overlay/config", r#"{"network": "junk"}"#);
    let get = env.ctl(&["config", "get"]);
    assert_eq!(get.code, Some(1), "{get:?}");
    assert!(
        get.stdout.contains("junk") && get.stderr.contains("invalid"),
        "{get:?}"
    );
    let set = env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.9.0.0/16"}"#);
    assert!(set.failed().contains("stored config is invalid"), "{set:?}");
    env.ctl_stdin(
        &["config", "set", "-", "--force"],
        r#"{"network": "10.9.0.0/16"}"#,
    )
    .ok();
    assert_eq!(env.config().unwrap()["network"], json!("10.9.0.0/16"));
}
