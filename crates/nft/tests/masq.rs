//! nft::masq against real nftables in sandbox namespaces.

mod common;

use cni_harness::{tcp_ask, tcp_ask_eventually, PeerServer, Sandbox};
use common::*;
use nft::masq::{self, MasqRule};
use nft::Attachment;
use serde_json::{json, Value};

fn att<'a>(net: &'a str, cid: &'a str) -> Attachment<'a> {
    Attachment {
        network: net,
        container_id: cid,
        ifname: "eth0",
    }
}

fn rule(ip: &str, subnet: &str) -> MasqRule {
    MasqRule {
        ip: ip.parse().unwrap(),
        subnet: subnet.parse().unwrap(),
    }
}

fn table(sb: &Sandbox) -> Option<Value> {
    list_table(sb.host(), "inet", masq::TABLE)
}

#[test]
fn add_writes_tagged_rules_and_del_removes_them() {
    let sb = Sandbox::new("masq-add");
    let a = att("net1", "ctr1");
    let rules = [
        rule("10.88.0.5", "10.88.0.5/24"),
        rule("fd88::5", "fd88::/64"),
    ];
    in_ns(sb.host(), || masq::add(&a, &rules)).expect("add");

    let doc = table(&sb).expect("table exists after add");
    let chain = masq::chain(&a);
    assert!(chain_names(&doc).contains(&chain), "{doc}");
    let mine = rules_in(&doc, &chain);
    assert_eq!(mine.len(), 2);
    for r in &mine {
        assert_eq!(r["comment"], "net1/ctr1/eth0");
    }
    let text = mine[0]["expr"].to_string();
    assert!(
        text.contains("10.88.0.5") && text.contains("224.0.0.0") && text.contains("masquerade"),
        "{text}"
    );
    let post = rules_in(&doc, "postrouting");
    assert_eq!(post.len(), 2, "{doc}");
    let v4 = map_elems(&doc, "masq4");
    assert_eq!(
        v4,
        vec![(
            json!("10.88.0.5"),
            chain.clone(),
            Some("net1/ctr1/eth0".into())
        )]
    );
    assert_eq!(map_elems(&doc, "masq6")[0].0, json!("fd88::5"));

    in_ns(sb.host(), || masq::check(&a, &rules)).expect("check after add");

    in_ns(sb.host(), || masq::del(&a)).expect("del");
    let doc = table(&sb).expect("table stays");
    assert!(!chain_names(&doc).contains(&chain), "{doc}");
    assert!(map_elems(&doc, "masq4").is_empty());
    assert!(map_elems(&doc, "masq6").is_empty());
    let err = in_ns(sb.host(), || masq::check(&a, &rules)).unwrap_err();
    assert!(err.is_mismatch(), "{err}");

    in_ns(sb.host(), || masq::del(&a)).expect("second del");
}

#[test]
fn del_and_gc_without_table_are_ok() {
    let sb = Sandbox::new("masq-none");
    in_ns(sb.host(), || masq::del(&att("n", "c"))).expect("del without table");
    assert_eq!(in_ns(sb.host(), || masq::gc("n", &[])).expect("gc"), 0);
    assert!(table(&sb).is_none(), "DEL/GC must not create the table");
    let err = in_ns(sb.host(), || {
        masq::check(&att("n", "c"), &[rule("10.0.0.2", "10.0.0.0/24")])
    })
    .unwrap_err();
    assert!(
        err.is_mismatch() && err.to_string().contains("does not exist"),
        "{err}"
    );
}

#[test]
fn repeated_add_replaces_and_never_duplicates() {
    let sb = Sandbox::new("masq-readd");
    let a = att("net1", "ctr1");
    let first = [rule("10.88.0.5", "10.88.0.0/24")];
    let second = [rule("10.88.0.6", "10.88.0.0/24")];
    for _ in 0..3 {
        in_ns(sb.host(), || masq::add(&a, &first)).expect("add");
    }
    in_ns(sb.host(), || masq::add(&a, &second)).expect("re-add");
    let doc = table(&sb).unwrap();
    assert_eq!(
        rules_in(&doc, "postrouting").len(),
        2,
        "base chain rewritten, not appended"
    );
    let mine = rules_in(&doc, &masq::chain(&a));
    assert_eq!(mine.len(), 1);
    assert!(mine[0]["expr"].to_string().contains("10.88.0.6"));
    in_ns(sb.host(), || masq::check(&a, &second)).expect("check new");
    assert!(in_ns(sb.host(), || masq::check(&a, &first)).is_err());
    // The stale element of .5 is gone with DEL too.
    in_ns(sb.host(), || masq::del(&a)).unwrap();
    assert!(map_elems(&table(&sb).unwrap(), "masq4").is_empty());
}

#[test]
fn two_attachments_do_not_disturb_each_other() {
    let sb = Sandbox::new("masq-two");
    let a = att("net1", "ctr-a");
    let b = att("net1", "ctr-b");
    let ra = [rule("10.88.0.5", "10.88.0.0/24")];
    let rb = [rule("10.88.0.6", "10.88.0.0/24")];
    in_ns(sb.host(), || masq::add(&a, &ra)).unwrap();
    in_ns(sb.host(), || masq::add(&b, &rb)).unwrap();
    in_ns(sb.host(), || masq::check(&a, &ra)).unwrap();
    in_ns(sb.host(), || masq::check(&b, &rb)).unwrap();
    in_ns(sb.host(), || masq::add(&a, &ra)).unwrap();
    in_ns(sb.host(), || masq::check(&b, &rb)).expect("b intact after a's re-add");
    in_ns(sb.host(), || masq::del(&a)).unwrap();
    in_ns(sb.host(), || masq::check(&b, &rb)).expect("b intact after a's del");
    assert_eq!(map_elems(&table(&sb).unwrap(), "masq4").len(), 1);
}

#[test]
fn an_address_held_by_a_stale_attachment_is_taken_over() {
    let sb = Sandbox::new("masq-stale");
    let old = att("net1", "old");
    let new = att("net1", "new");
    let r = [rule("10.88.0.5", "10.88.0.0/24")];
    in_ns(sb.host(), || masq::add(&old, &r)).unwrap();
    in_ns(sb.host(), || masq::add(&new, &r)).expect("add with the address still mapped to old");
    in_ns(sb.host(), || masq::check(&new, &r)).unwrap();
    assert!(in_ns(sb.host(), || masq::check(&old, &r)).is_err());
    // The late DEL of the old attachment leaves the new one alone.
    in_ns(sb.host(), || masq::del(&old)).unwrap();
    in_ns(sb.host(), || masq::check(&new, &r)).expect("new intact");
}

#[test]
fn gc_keeps_exactly_the_valid_attachments_of_its_network() {
    let sb = Sandbox::new("masq-gc");
    let r = |i: u8| [rule(&format!("10.88.0.{i}"), "10.88.0.0/24")];
    let a = att("net1", "a");
    let b = att("net1", "b");
    let c = Attachment {
        network: "net1",
        container_id: "a",
        ifname: "net9",
    };
    let other = att("net2", "d");
    for (x, i) in [(&a, 2), (&b, 3), (&c, 4), (&other, 5)] {
        in_ns(sb.host(), || masq::add(x, &r(i))).unwrap();
    }
    let keep = vec![("a".to_string(), "eth0".to_string())];
    assert_eq!(in_ns(sb.host(), || masq::gc("net1", &keep)).unwrap(), 2);
    in_ns(sb.host(), || masq::check(&a, &r(2))).expect("kept");
    in_ns(sb.host(), || masq::check(&other, &r(5))).expect("other network untouched");
    assert!(in_ns(sb.host(), || masq::check(&b, &r(3))).is_err());
    assert!(in_ns(sb.host(), || masq::check(&c, &r(4))).is_err());
    let doc = table(&sb).unwrap();
    let keys: Vec<Value> = map_elems(&doc, "masq4").into_iter().map(|e| e.0).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(in_ns(sb.host(), || masq::gc("net1", &keep)).unwrap(), 0);
}

#[test]
fn check_notices_tampering() {
    let sb = Sandbox::new("masq-tamper");
    let a = att("net1", "ctr1");
    let r = [rule("10.88.0.5", "10.88.0.0/24")];
    in_ns(sb.host(), || masq::add(&a, &r)).unwrap();
    nft(
        sb.host(),
        &["flush", "chain", "inet", masq::TABLE, &masq::chain(&a)],
    );
    let err = in_ns(sb.host(), || masq::check(&a, &r)).unwrap_err();
    assert!(err.is_mismatch(), "{err}");
    in_ns(sb.host(), || masq::add(&a, &r)).unwrap();
    in_ns(sb.host(), || masq::check(&a, &r)).unwrap();
    nft(
        sb.host(),
        &["flush", "chain", "inet", masq::TABLE, "postrouting"],
    );
    assert!(in_ns(sb.host(), || masq::check(&a, &r)).is_err());
    nft(
        sb.host(),
        &[
            "delete",
            "element",
            "inet",
            masq::TABLE,
            "masq4",
            "{ 10.88.0.5 }",
        ],
    );
    in_ns(sb.host(), || masq::add(&a, &r)).unwrap();
    in_ns(sb.host(), || masq::check(&a, &r)).unwrap();
    nft(
        sb.host(),
        &[
            "delete",
            "element",
            "inet",
            masq::TABLE,
            "masq4",
            "{ 10.88.0.5 }",
        ],
    );
    let err = in_ns(sb.host(), || masq::check(&a, &r)).unwrap_err();
    assert!(err.to_string().contains("masq4"), "{err}");
}

#[test]
fn long_ids_get_hashed_tags_that_still_work() {
    let sb = Sandbox::new("masq-long");
    let cid = "c".repeat(150);
    let a = att("net1", &cid);
    let r = [rule("10.88.0.5", "10.88.0.0/24")];
    in_ns(sb.host(), || masq::add(&a, &r)).unwrap();
    let doc = table(&sb).unwrap();
    let comment = rules_in(&doc, &masq::chain(&a))[0]["comment"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        comment.starts_with("net1/#") && comment.len() <= 127,
        "{comment}"
    );
    in_ns(sb.host(), || masq::check(&a, &r)).unwrap();
    assert_eq!(in_ns(sb.host(), || masq::gc("net1", &[])).unwrap(), 1);
}

/// Container 10.88.0.5 behind bridge br0 (10.88.0.1) in the host namespace;
/// a server at 192.0.2.2 in a second namespace reached through up0 (192.0.2.1).
#[test]
fn packets_from_the_container_leave_masqueraded() {
    let mut sb = Sandbox::new("masq-pkt");
    for _ in 0..3 {
        sb.add_container();
    }
    let host = sb.host();
    let (ctr, outside, peer) = (sb.container(0), sb.container(1), sb.container(2));
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    host.ip(&["addr", "add", "10.88.0.1/24", "dev", "br0"]);
    host.ip(&["link", "set", "br0", "up"]);
    veth(host, "vh0", ctr, "eth0");
    host.ip(&["link", "set", "vh0", "master", "br0"]);
    ctr.ip(&["addr", "add", "10.88.0.5/24", "dev", "eth0"]);
    ctr.ip(&["route", "add", "default", "via", "10.88.0.1"]);
    veth(host, "vh1", peer, "eth0");
    host.ip(&["link", "set", "vh1", "master", "br0"]);
    peer.ip(&["addr", "add", "10.88.0.6/24", "dev", "eth0"]);
    veth(host, "up0", outside, "eth0");
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
    outside.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    // So that un-masqueraded traffic can answer too: the difference we see
    // is then only the source address.
    outside.ip(&["route", "add", "10.88.0.0/24", "via", "192.0.2.1"]);
    sysctl(host, "net.ipv4.ip_forward", "1");

    let server = PeerServer::tcp(outside, "192.0.2.2:7000");
    let seen = tcp_ask_eventually(ctr, server.addr).expect("plain routing works");
    assert_eq!(seen, "10.88.0.5", "no masquerade yet");

    let a = att("net1", "ctr1");
    let rules = [rule("10.88.0.5", "10.88.0.0/24")];
    in_ns(host, || masq::add(&a, &rules)).unwrap();
    assert_eq!(
        tcp_ask(ctr, server.addr).unwrap(),
        "192.0.2.1",
        "masqueraded to the host address"
    );

    // Inside the subnet (a peer on the bridge; with br_netfilter bridged
    // traffic passes the inet hooks too): not masqueraded.
    let peer_srv = PeerServer::tcp(peer, "10.88.0.6:7001");
    assert_eq!(tcp_ask_eventually(ctr, peer_srv.addr).unwrap(), "10.88.0.5");

    in_ns(host, || masq::del(&a)).unwrap();
    assert_eq!(
        tcp_ask(ctr, server.addr).unwrap(),
        "10.88.0.5",
        "DEL stops the masquerade"
    );
}

/// Runtimes start containers in parallel: concurrent ADDs (each one atomic
/// batch that also rewrites the base chain) and DELs must not lose or
/// duplicate anything.
#[test]
fn concurrent_adds_and_dels_keep_every_attachment() {
    let sb = Sandbox::new("masq-par");
    let ids: Vec<String> = (0..8).map(|i| format!("ctr{i}")).collect();
    let rules: Vec<[MasqRule; 1]> = (0..8)
        .map(|i| [rule(&format!("10.88.0.{}", 10 + i), "10.88.0.0/24")])
        .collect();
    std::thread::scope(|s| {
        for (id, r) in ids.iter().zip(&rules) {
            let host = sb.host();
            s.spawn(move || in_ns(host, || masq::add(&att("net1", id), r)).expect("parallel add"));
        }
    });
    for (id, r) in ids.iter().zip(&rules) {
        in_ns(sb.host(), || masq::check(&att("net1", id), r)).expect("every attachment present");
    }
    assert_eq!(rules_in(&table(&sb).unwrap(), "postrouting").len(), 2);
    std::thread::scope(|s| {
        for id in ids.iter().step_by(2) {
            let host = sb.host();
            s.spawn(move || in_ns(host, || masq::del(&att("net1", id))).expect("parallel del"));
        }
    });
    for (i, (id, r)) in ids.iter().zip(&rules).enumerate() {
        let res = in_ns(sb.host(), || masq::check(&att("net1", id), r));
        assert_eq!(res.is_ok(), i % 2 == 1, "{id}: {res:?}");
    }
    assert_eq!(map_elems(&table(&sb).unwrap(), "masq4").len(), 4);
}

/// The kernel behaviour the DEL guard relies on: `add element K : jump A`
/// followed by `delete element K` in one batch deletes K only while it still
/// leads to A; when K was taken over by B the batch fails and B's element stays.
#[test]
fn guarded_delete_only_removes_the_element_it_listed() {
    let sb = Sandbox::new("masq-guard");
    let setup = "add table inet g; add chain inet g a; add chain inet g b; \
                 add map inet g m { type ipv4_addr : verdict; }; \
                 add element inet g m { 10.0.0.5 : jump b }";
    run_nft_script(sb.host(), setup).expect("setup");
    let guarded_a =
        "add element inet g m { 10.0.0.5 : jump a }; delete element inet g m { 10.0.0.5 }";
    assert!(
        run_nft_script(sb.host(), guarded_a).is_err(),
        "taken over by b: refused"
    );
    let listed = list_table(sb.host(), "inet", "g")
        .expect("table")
        .to_string();
    assert!(listed.contains("10.0.0.5"), "b's element stays: {listed}");
    let guarded_b =
        "add element inet g m { 10.0.0.5 : jump b }; delete element inet g m { 10.0.0.5 }";
    run_nft_script(sb.host(), guarded_b).expect("still b's: deleted");
    let listed = list_table(sb.host(), "inet", "g")
        .expect("table")
        .to_string();
    assert!(!listed.contains("10.0.0.5"), "{listed}");
}

/// Runs an nft script inside `ns`; Err with nft's stderr when it fails.
fn run_nft_script(ns: &cni_harness::Netns, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// ADD's fast path never rewrites the fixed chains; CHECK notices when they
/// were tampered with and GC puts them back.
#[test]
fn gc_repairs_a_tampered_base_chain() {
    let sb = Sandbox::new("masq-repair");
    let a = att("net1", "ctr1");
    let b = att("net1", "ctr2");
    let ra = [rule("10.88.0.5", "10.88.0.5/24")];
    let rb = [rule("10.88.0.6", "10.88.0.6/24")];
    in_ns(sb.host(), || masq::add(&a, &ra)).expect("add a");
    nft(
        sb.host(),
        &["flush", "chain", "inet", masq::TABLE, "postrouting"],
    );
    in_ns(sb.host(), || masq::add(&b, &rb)).expect("add b (fast path)");
    let err = in_ns(sb.host(), || masq::check(&b, &rb)).expect_err("base chain is empty");
    assert!(err.is_mismatch(), "{err}");
    let keep = [
        ("ctr1".to_string(), "eth0".to_string()),
        ("ctr2".to_string(), "eth0".to_string()),
    ];
    let removed = in_ns(sb.host(), || masq::gc("net1", &keep)).expect("gc");
    assert_eq!(removed, 0);
    in_ns(sb.host(), || masq::check(&a, &ra)).expect("a intact after repair");
    in_ns(sb.host(), || masq::check(&b, &rb)).expect("b intact after repair");
}
