//! The in-process netlink path writes exactly what `nft` writes: for every
//! rule set, an attachment added by `nft` (the first ADD in a namespace
//! creates the table through `nft`) and the same attachment added over
//! netlink (a later ADD) have the same kernel bytecode, element by element
//! and rule by rule, and DEL over netlink removes exactly its own objects.
//!
//! The bytecode `nft` wrote is also compared with the golden files under
//! `tests/golden/` (captured by this test with `CNI_RS_UPDATE_GOLDEN=1` and
//! checked in), from which the unit tests check our encoder without root
//! (`src/nl/golden.rs`).
//!
//! One test function: it reads the process-wide netlink batch counter.

mod common;

use cni_harness::{Netns, Sandbox};
use common::*;
use nft::masq::{self, MasqRule};
use nft::portmap::{self, PortMapping, Protocol, Spec};
use nft::{spoofchk, Attachment};

fn att<'a>(net: &'a str, cid: &'a str) -> Attachment<'a> {
    Attachment {
        network: net,
        container_id: cid,
        ifname: "eth0",
    }
}

/// `nft --debug=netlink list table`: the kernel's bytecode of every rule and
/// element, returned as (rules of `chains`, elements jumping to `chains`),
/// handles removed, elements sorted.
fn bytecode(ns: &Netns, family: &str, table: &str, chains: &[String]) -> (String, String) {
    let out = ns
        .command("nft")
        .args(["--debug=netlink", "list", "table", family, table])
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut rules = String::new();
    let mut elems = Vec::new();
    let mut current: Option<String> = None;
    let mut map = String::new();
    for line in text.lines() {
        let head = format!("{family} {table} ");
        if let Some(rest) = line.strip_prefix(&head) {
            // "<chain> <handle> [<position>]" or "@<map>".
            let name = rest.split_whitespace().next().unwrap_or_default();
            if let Some(m) = name.strip_prefix('@') {
                map = m.to_string();
                current = None;
            } else {
                current = chains.contains(&name.to_string()).then(|| name.to_string());
                if let Some(c) = &current {
                    rules.push_str(&format!("rule in {c}\n"));
                }
            }
        } else if line.starts_with("\telement") {
            if chains
                .iter()
                .any(|c| line.contains(&format!("jump -> {c} ")))
            {
                elems.push(format!("{map}: {}\n", line.trim()));
            }
        } else if line.starts_with("  ") && current.is_some() {
            rules.push_str(line.trim());
            rules.push('\n');
        } else if !line.starts_with(' ') {
            current = None;
        }
    }
    // A set's order is the hash table's, which depends on insertion history.
    elems.sort();
    (rules, elems.concat())
}

/// The bytecode `nft` wrote for attachment `x` of rule set `what`, as
/// checked in under `tests/golden/<what>.txt`; `CNI_RS_UPDATE_GOLDEN=1`
/// writes it instead of comparing.
fn golden(what: &str, rules: &str, elems: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{what}.txt"));
    let text = format!(
        "# `nft --debug=netlink list table` of attachment x in tests/netlink.rs ({what}),\n\
         # as nft wrote it; CNI_RS_UPDATE_GOLDEN=1 cargo test -p nft --test netlink rewrites it.\n\
         # rules\n{rules}# elements\n{elems}"
    );
    if std::env::var_os("CNI_RS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        std::fs::write(&path, &text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; capture it with CNI_RS_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert_eq!(
        text,
        want,
        "{what}: nft's bytecode differs from {}",
        path.display()
    );
}

/// Adds `x` in a fresh namespace (through nft: the table is new) and, in a
/// second one, after `bootstrap` (through netlink); compares the bytecode,
/// then deletes `x` over netlink and checks what is left.
#[allow(clippy::too_many_arguments)]
fn compare(
    what: &str,
    family: &str,
    table: &str,
    chains: &[String],
    bootstrap: Op,
    add_x: Op,
    check_x: Op,
    check_bootstrap: Op,
    del_x: Op,
) {
    let by_nft = Sandbox::new(&format!("nl-{what}-a"));
    let before = nft::netlink_batches();
    in_ns(by_nft.host(), add_x).expect("add through nft");
    assert_eq!(
        nft::netlink_batches(),
        before,
        "{what}: the first ADD creates the table through nft"
    );

    let by_nl = Sandbox::new(&format!("nl-{what}-b"));
    in_ns(by_nl.host(), bootstrap).expect("bootstrap");
    let before = nft::netlink_batches();
    in_ns(by_nl.host(), add_x).expect("add through netlink");
    assert_eq!(
        nft::netlink_batches(),
        before + 1,
        "{what}: a later ADD is one netlink batch"
    );
    in_ns(by_nl.host(), check_x).expect("CHECK (through nft's listing) accepts it");

    let (rules_a, elems_a) = bytecode(by_nft.host(), family, table, chains);
    let (rules_b, elems_b) = bytecode(by_nl.host(), family, table, chains);
    assert!(
        !rules_a.is_empty() && !elems_a.is_empty(),
        "{what}: nothing listed"
    );
    assert_eq!(rules_a, rules_b, "{what}: rule bytecode differs");
    assert_eq!(elems_a, elems_b, "{what}: element bytecode differs");
    golden(what, &rules_a, &elems_a);

    let before = nft::netlink_batches();
    in_ns(by_nl.host(), del_x).expect("del");
    assert_eq!(
        nft::netlink_batches(),
        before + 1,
        "{what}: DEL is one batch"
    );
    let (rules, elems) = bytecode(by_nl.host(), family, table, chains);
    assert_eq!(
        (rules.as_str(), elems.as_str()),
        ("", ""),
        "{what}: left behind"
    );
    in_ns(by_nl.host(), check_bootstrap).expect("the other attachment is intact");
    let err = in_ns(by_nl.host(), check_x).expect_err("CHECK after DEL");
    assert!(err.is_mismatch(), "{err}");
    let before = nft::netlink_batches();
    in_ns(by_nl.host(), del_x).expect("second del");
    assert_eq!(
        nft::netlink_batches(),
        before,
        "{what}: nothing left to delete"
    );
}

/// A library call to run inside a sandbox namespace.
type Op<'a> = &'a (dyn Fn() -> nft::Result<()> + Sync);

fn masq_rule(ip: &str, subnet: &str) -> MasqRule {
    MasqRule {
        ip: ip.parse().unwrap(),
        subnet: subnet.parse().unwrap(),
    }
}

fn mapping(hp: u16, cp: u16, protocol: Protocol, host_ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: hp,
        container_port: cp,
        protocol,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
    }
}

#[test]
fn netlink_writes_what_nft_writes_and_deletes_only_its_own() {
    // Masquerade: v4 and v6, byte-aligned and other prefix lengths.
    let x = att("n1", "x");
    let y = att("n1", "y");
    let rx = [
        masq_rule("10.88.0.5", "10.88.0.0/24"),
        masq_rule("10.90.3.7", "10.90.0.0/20"),
        masq_rule("fd88::5", "fd88::/64"),
        masq_rule("fd89::9", "fd89::/60"),
    ];
    let ry = [masq_rule("10.88.0.6", "10.88.0.0/24")];
    compare(
        "masq",
        "inet",
        masq::TABLE,
        &[masq::chain(&x)],
        &|| masq::add(&y, &ry),
        &|| masq::add(&x, &rx),
        &|| masq::check(&x, &rx),
        &|| masq::check(&y, &ry),
        &|| masq::del(&x),
    );

    // Port mappings: wildcard and host addresses of both families, the three
    // protocols, hairpin SNAT.
    let maps = [
        mapping(8080, 80, Protocol::Tcp, None),
        mapping(8443, 443, Protocol::Tcp, Some("192.0.2.10")),
        mapping(5353, 53, Protocol::Udp, None),
        mapping(9090, 90, Protocol::Sctp, Some("2001:db8::1")),
    ];
    let spec_x = Spec {
        mappings: &maps,
        container_v4: Some("10.88.0.5/24".parse().unwrap()),
        container_v6: Some("fd88::5/64".parse().unwrap()),
        snat: true,
        masq_all: false,
    };
    let maps_y = [mapping(7070, 70, Protocol::Tcp, None)];
    let spec_y = Spec {
        mappings: &maps_y,
        container_v4: Some("10.88.0.6/24".parse().unwrap()),
        container_v6: None,
        snat: false,
        masq_all: true,
    };
    compare(
        "portmap",
        "inet",
        portmap::TABLE,
        &portmap::chains(&x),
        &|| portmap::add(&y, &spec_y),
        &|| portmap::add(&x, &spec_x),
        &|| portmap::check(&x, &spec_x),
        &|| portmap::check(&y, &spec_y),
        &|| portmap::del(&x),
    );
    // masqAll and an IPv4-only container.
    let x2 = att("n1", "x2");
    let spec_x2 = Spec {
        mappings: &maps,
        container_v4: Some("10.88.0.7/24".parse().unwrap()),
        container_v6: None,
        snat: false,
        masq_all: true,
    };
    compare(
        "portmap-masqall",
        "inet",
        portmap::TABLE,
        &portmap::chains(&x2),
        &|| portmap::add(&y, &spec_y),
        &|| portmap::add(&x2, &spec_x2),
        &|| portmap::check(&x2, &spec_x2),
        &|| portmap::check(&y, &spec_y),
        &|| portmap::del(&x2),
    );

    // MAC spoof check (bridge family).
    let mac_x = [0x0a, 0x58, 0x0a, 0x58, 0x00, 0x05];
    let mac_y = [0x0a, 0x58, 0x0a, 0x58, 0x00, 0x06];
    compare(
        "spoofchk",
        "bridge",
        spoofchk::TABLE,
        &[spoofchk::chain(&x)],
        &|| spoofchk::add(&y, "vethy", mac_y),
        &|| spoofchk::add(&x, "vethx0123456789", mac_x),
        &|| spoofchk::check(&x, "vethx0123456789", mac_x),
        &|| spoofchk::check(&y, "vethy", mac_y),
        &|| spoofchk::del(&x),
    );
}
