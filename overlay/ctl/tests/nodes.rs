//! `nodes` and `node rm` against a real etcd holding records put as
//! overlayd puts them.

mod common;

use common::*;
use serde_json::{json, Value};

/// Two nodes, put out of name order; node-b took its lease 192 s ago,
/// node-a's record does not say when.
fn populate(env: &Env) -> (i64, i64) {
    let now = unix_now();
    let b = env.put_node(
        &record(
            "node-b",
            "10.244.7.0/24",
            "192.168.1.11",
            "0a:58:0a:f4:07:00",
            now - 192,
        ),
        600,
    );
    let a = env.put_node(
        &record(
            "node-a",
            "10.244.30.0/24",
            "192.168.1.10",
            "0a:58:0a:f4:1e:00",
            0,
        ),
        300,
    );
    (a, b)
}

/// "3m12s" -> seconds.
fn seconds(text: &str) -> u64 {
    let mut total = 0;
    let mut n = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => n = n * 10 + u64::from(c.to_digit(10).unwrap()),
            'd' | 'h' | 'm' | 's' => {
                total += n * match c {
                    'd' => 86_400,
                    'h' => 3_600,
                    'm' => 60,
                    _ => 1,
                };
                n = 0;
            }
            _ => panic!("not a duration: {text}"),
        }
    }
    total
}

#[test]
fn nodes_shows_each_nodes_subnet_address_mac_lease_age_and_ttl() {
    let env = Env::new();
    let empty = env.ctl(&["nodes"]);
    assert_eq!(
        empty.table(),
        [[
            "NODE",
            "SUBNET",
            "PUBLIC IP",
            "VTEP MAC",
            "LEASE AGE",
            "TTL LEFT"
        ]]
    );
    assert_eq!(env.ctl(&["nodes", "--json"]).json(), json!([]));

    let (lease_a, lease_b) = populate(&env);
    let out = env.ctl(&["nodes"]);
    let t = out.table();
    assert_eq!(t.len(), 3, "{out:?}");
    assert_eq!(
        t[1][..5],
        [
            "node-a",
            "10.244.30.0/24",
            "192.168.1.10",
            "0a:58:0a:f4:1e:00",
            "-"
        ]
    );
    assert_eq!(
        t[2][..4],
        [
            "node-b",
            "10.244.7.0/24",
            "192.168.1.11",
            "0a:58:0a:f4:07:00"
        ]
    );
    let age = seconds(&t[2][4]);
    assert!((192..192 + 60).contains(&age), "{}", t[2][4]);
    assert!(
        t[2][4].contains('m') && t[2][4].ends_with('s'),
        "{}",
        t[2][4]
    );
    let ttl_a = seconds(&t[1][5]);
    let ttl_b = seconds(&t[2][5]);
    assert!(ttl_a > 0 && ttl_a <= 300, "{}", t[1][5]);
    assert!(ttl_b > 300 && ttl_b <= 600, "{}", t[2][5]);

    let j = env.ctl(&["nodes", "--json"]).json();
    let list = j.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    let names: Vec<&str> = list.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a", "node-b"]);
    let (a, b) = (&list[0], &list[1]);
    assert_eq!(a["subnet"], json!("10.244.30.0/24"));
    assert_eq!(a["publicIp"], json!("192.168.1.10"));
    assert_eq!(a["vtepMac"], json!("0a:58:0a:f4:1e:00"));
    assert_eq!(a["leaseAge"], Value::Null);
    assert_eq!(a["lease"], json!(format!("{lease_a:x}")));
    assert_eq!(b["subnet"], json!("10.244.7.0/24"));
    assert_eq!(b["lease"], json!(format!("{lease_b:x}")));
    let age = b["leaseAge"].as_u64().expect("age in seconds");
    assert!((192..192 + 60).contains(&age), "{b}");
    for (n, max) in [(a, 300), (b, 600)] {
        let ttl = n["ttlLeft"].as_u64().expect("ttl in seconds");
        assert!(ttl > 0 && ttl <= max, "{n}");
    }
}

#[test]
fn a_record_on_no_lease_and_an_unreadable_key_are_shown_as_such() {
    let env = Env::new();
    // A record on no lease, and a key that holds no record.
    let r = record(
        "node-c",
        "10.244.9.0/24",
        "192.168.1.12",
        "0a:58:0a:f4:09:00",
        1,
    );
    env.put_raw(
        "/overlay/subnets/10.244.9.0-24",
        &serde_json::to_string(&r).unwrap(),
    );
    env.put_raw("/overlay/subnets/10.244.10.0-24", "{not a record");
    let out = env.ctl(&["nodes"]);
    let t = out.table();
    assert_eq!(t.len(), 2, "{out:?}");
    assert_eq!(t[1][0], "node-c");
    assert_eq!(t[1][5], "no lease");
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("10.244.10.0-24"),
        "{out:?}"
    );
    let j = env.ctl(&["nodes", "--json"]).json();
    assert_eq!(j[0]["ttlLeft"], Value::Null);
    assert_eq!(j[0]["lease"], Value::Null);
}

#[test]
fn node_rm_removes_exactly_that_nodes_records() {
    let env = Env::new();
    populate(&env);
    // node-a holds a second record (an old lease's).
    env.put_node(
        &record(
            "node-a",
            "10.244.31.0/24",
            "192.168.1.10",
            "0a:58:0a:f4:1e:00",
            3,
        ),
        600,
    );
    // A node whose name starts like node-a's.
    env.put_node(
        &record(
            "node-a2",
            "10.244.40.0/24",
            "192.168.1.20",
            "0a:58:0a:f4:28:00",
            3,
        ),
        600,
    );
    let before = env.snapshot();
    let out = env.ctl(&["node", "rm", "node-a"]);
    let text = out.ok();
    assert!(
        text.contains("10.244.30.0/24") && text.contains("10.244.31.0/24"),
        "{text}"
    );
    assert!(
        text.contains("registers again") && text.contains("gone"),
        "{text}"
    );
    let after = env.snapshot();
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(k, _, _)| !k.ends_with("/10.244.30.0-24") && !k.ends_with("/10.244.31.0-24"))
        .collect();
    assert_eq!(after, expected);
    let names: Vec<String> = env
        .ctl(&["nodes", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["node-a2", "node-b"]);

    // --json says what was removed.
    let j = env.ctl(&["node", "rm", "node-b", "--json"]).json();
    assert_eq!(j["node"], json!("node-b"));
    assert_eq!(j["removed"][0]["subnet"], json!("10.244.7.0/24"));
    assert_eq!(
        j["removed"][0]["key"],
        json!("/overlay/subnets/10.244.7.0-24")
    );
}

#[test]
fn removing_an_unknown_node_is_exit_1_and_changes_nothing() {
    let env = Env::new();
    populate(&env);
    let before = env.snapshot();
    for name in ["node-z", "node", "NODE-A"] {
        let out = env.ctl(&["node", "rm", name]);
        assert!(out.failed().contains(name), "{out:?}");
    }
    assert_eq!(env.snapshot(), before);
}
