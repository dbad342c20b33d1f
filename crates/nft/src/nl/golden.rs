//! Our encoder against golden bytecode, without root: for every rule set,
//! the rules and elements we would send for attachment x of
//! `tests/netlink.rs`, printed the way `nft --debug=netlink list table`
//! prints what the kernel holds, must equal `tests/golden/<what>.txt`, which
//! that kernel test captured from what `nft` itself wrote for the same
//! attachment (and still compares on every run).
//!
//! The printer knows only our expressions, and what the kernel adds when it
//! echoes a `nat`: `addr_max` / `proto_max` equal to the minimum registers,
//! and the `NF_NAT_RANGE_MAP_IPS` flag once an address register is given.

use std::fmt::Write;

use super::compile;
use super::msg::{attr, comment_udata, Attr, Attrs, VERDICT_DROP, VERDICT_JUMP, VERDICT_RETURN};
use crate::engine::{AttState, Layout};
use crate::masq::{self, MasqRule};
use crate::portmap::{self, PortMapping, Protocol, Spec};
use crate::{spoofchk, Attachment};

/// Data as libnftnl prints it: 32-bit words in host order.
fn words(data: &[u8], prefix: &str) -> String {
    data.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            format!("{prefix}{:08x}", u32::from_ne_bytes(w))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn u32_of(a: &Attrs, ty: u16) -> u32 {
    a.get(ty)
        .and_then(|x| Some(u32::from_be_bytes(x.data.get(..4)?.try_into().ok()?)))
        .unwrap_or_else(|| panic!("attribute {ty} missing"))
}

fn value(a: &Attrs, ty: u16) -> String {
    let v = a
        .get(ty)
        .and_then(|x| x.nested().get(attr::DATA_VALUE))
        .unwrap_or_else(|| panic!("data attribute {ty} missing"));
    words(v.data, "0x")
}

fn verdict(data: Attr) -> String {
    let v = data.nested().get(attr::DATA_VERDICT).expect("verdict");
    let code = v.nested().get(attr::VERDICT_CODE).and_then(|c| c.i32());
    let chain = v.nested().get(attr::VERDICT_CHAIN).and_then(|c| c.str());
    match (code, chain) {
        (Some(VERDICT_DROP), _) => "drop".into(),
        (Some(VERDICT_RETURN), _) => "return".into(),
        (Some(VERDICT_JUMP), Some(c)) => format!("jump -> {c}"),
        other => panic!("verdict {other:?}"),
    }
}

/// One expression, as `[ ... ]`.
fn expression(e: Attr) -> String {
    let a = e.nested();
    let name = a.get(attr::EXPR_NAME).and_then(|n| n.str()).expect("name");
    let d = a
        .get(attr::EXPR_DATA)
        .map(|d| d.nested())
        .unwrap_or(Attrs { data: &[] });
    let body = match name {
        "meta" => {
            let key = match u32_of(&d, attr::META_KEY) {
                15 => "nfproto",
                16 => "l4proto",
                k => panic!("meta key {k}"),
            };
            format!("meta load {key} => reg {}", u32_of(&d, attr::META_DREG))
        }
        "payload" => {
            let base = ["link", "network", "transport"][u32_of(&d, attr::PAYLOAD_BASE) as usize];
            format!(
                "payload load {}b @ {base} header + {} => reg {}",
                u32_of(&d, attr::PAYLOAD_LEN),
                u32_of(&d, attr::PAYLOAD_OFFSET),
                u32_of(&d, attr::PAYLOAD_DREG)
            )
        }
        "cmp" => format!(
            "cmp {} reg {} {}",
            ["eq", "neq"][u32_of(&d, attr::CMP_OP) as usize],
            u32_of(&d, attr::CMP_SREG),
            value(&d, attr::CMP_DATA)
        ),
        "bitwise" => format!(
            "bitwise reg {} = ( reg {} & {} ) ^ {}",
            u32_of(&d, attr::BITWISE_DREG),
            u32_of(&d, attr::BITWISE_SREG),
            value(&d, attr::BITWISE_MASK),
            value(&d, attr::BITWISE_XOR)
        ),
        "immediate" => {
            let reg = u32_of(&d, attr::IMMEDIATE_DREG);
            let data = d.get(attr::IMMEDIATE_DATA).expect("immediate data");
            if reg == 0 {
                format!("immediate reg 0 {}", verdict(data))
            } else {
                format!("immediate reg {reg} {}", value(&d, attr::IMMEDIATE_DATA))
            }
        }
        "nat" => {
            let family = match u32_of(&d, attr::NAT_FAMILY) {
                2 => "ip",
                10 => "ip6",
                f => panic!("nat family {f}"),
            };
            let addr = u32_of(&d, attr::NAT_REG_ADDR_MIN);
            let proto = u32_of(&d, attr::NAT_REG_PROTO_MIN);
            // NF_NAT_RANGE_MAP_IPS, which the kernel adds for an address
            // register.
            let flags = u32_of(&d, attr::NAT_FLAGS) | 1;
            let kind = match u32_of(&d, attr::NAT_TYPE) {
                1 => "dnat",
                t => panic!("nat type {t}"),
            };
            format!(
                "nat {kind} {family} addr_min reg {addr} addr_max reg {addr} \
                 proto_min reg {proto} proto_max reg {proto} flags 0x{flags:x}"
            )
        }
        "masq" => "masq".into(),
        other => panic!("expression {other}"),
    };
    format!("[ {body} ]")
}

/// Userdata as libnftnl prints it: printable bytes as they are, others `\xNN`.
fn udata(u: &[u8]) -> String {
    let mut s = String::from("userdata = { ");
    for b in u {
        if (0x20..0x7f).contains(b) {
            s.push(char::from(*b));
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s.push_str(" }");
    s
}

/// The golden file's text for `st`, from our encoder's bytes.
fn render(what: &str, layout: &Layout, st: &AttState) -> String {
    let u = comment_udata(&st.tag).expect("tag fits");
    let mut rules = String::new();
    for c in &st.chains {
        for r in &c.rules {
            let nest = compile::rule_expressions(layout.family, r).expect("expressible");
            let exprs = Attrs { data: &nest }.next().expect("expressions nest");
            assert_eq!(exprs.ty, attr::RULE_EXPRESSIONS);
            let _ = writeln!(rules, "rule in {}", c.name);
            for e in exprs.nested() {
                let _ = writeln!(rules, "{}", expression(e));
            }
            let _ = writeln!(rules, "{}", udata(&u));
        }
    }
    let mut elems: Vec<String> = st
        .elems
        .iter()
        .map(|e| {
            let def = layout.maps.iter().find(|m| m.name == e.map).expect("map");
            let key = compile::key_bytes(&def.key_type, &e.key).expect("key");
            format!(
                "{}: element {}  : jump -> {} 0 [end]  {}\n",
                e.map,
                words(&key, ""),
                e.chain,
                udata(&u)
            )
        })
        .collect();
    elems.sort();
    format!(
        "# `nft --debug=netlink list table` of attachment x in tests/netlink.rs ({what}),\n\
         # as nft wrote it; CNI_RS_UPDATE_GOLDEN=1 cargo test -p nft --test netlink rewrites it.\n\
         # rules\n{rules}# elements\n{}",
        elems.concat()
    )
}

fn att(cid: &str) -> Attachment<'_> {
    Attachment {
        network: "n1",
        container_id: cid,
        ifname: "eth0",
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

fn mappings() -> [PortMapping; 4] {
    [
        mapping(8080, 80, Protocol::Tcp, None),
        mapping(8443, 443, Protocol::Tcp, Some("192.0.2.10")),
        mapping(5353, 53, Protocol::Udp, None),
        mapping(9090, 90, Protocol::Sctp, Some("2001:db8::1")),
    ]
}

fn assert_golden(what: &str, golden: &str, layout: &Layout, st: &AttState) {
    let ours = render(what, layout, st);
    for (i, (o, g)) in ours.lines().zip(golden.lines()).enumerate() {
        assert_eq!(
            o,
            g,
            "{what}: line {} differs from tests/golden/{what}.txt",
            i + 1
        );
    }
    assert_eq!(ours, golden, "{what}: length differs from the golden file");
}

#[test]
fn masquerade_matches_nfts_bytecode() {
    let rule = |ip: &str, subnet: &str| MasqRule {
        ip: ip.parse().unwrap(),
        subnet: subnet.parse().unwrap(),
    };
    let rx = [
        rule("10.88.0.5", "10.88.0.0/24"),
        rule("10.90.3.7", "10.90.0.0/20"),
        rule("fd88::5", "fd88::/64"),
        rule("fd89::9", "fd89::/60"),
    ];
    let st = masq::state(&att("x"), &rx).unwrap();
    assert_golden(
        "masq",
        include_str!("../../tests/golden/masq.txt"),
        &masq::layout(),
        &st,
    );
}

#[test]
fn port_mappings_match_nfts_bytecode() {
    let maps = mappings();
    let spec = Spec {
        mappings: &maps,
        container_v4: Some("10.88.0.5/24".parse().unwrap()),
        container_v6: Some("fd88::5/64".parse().unwrap()),
        snat: true,
        masq_all: false,
    };
    let st = portmap::state(&att("x"), &spec);
    assert_golden(
        "portmap",
        include_str!("../../tests/golden/portmap.txt"),
        &portmap::layout(),
        &st,
    );
}

#[test]
fn port_mappings_with_masq_all_match_nfts_bytecode() {
    let maps = mappings();
    let spec = Spec {
        mappings: &maps,
        container_v4: Some("10.88.0.7/24".parse().unwrap()),
        container_v6: None,
        snat: false,
        masq_all: true,
    };
    let st = portmap::state(&att("x2"), &spec);
    assert_golden(
        "portmap-masqall",
        include_str!("../../tests/golden/portmap-masqall.txt"),
        &portmap::layout(),
        &st,
    );
}

#[test]
fn spoof_check_matches_nfts_bytecode() {
    let mac = [0x0a, 0x58, 0x0a, 0x58, 0x00, 0x05];
    let st = spoofchk::state(&att("x"), "vethx0123456789", mac).unwrap();
    assert_golden(
        "spoofchk",
        include_str!("../../tests/golden/spoofchk.txt"),
        &spoofchk::layout(),
        &st,
    );
}

/// The printer itself: a wrong register or operator shows as a difference,
/// so a golden match can't come from a printer that ignores fields.
#[test]
fn the_printer_reads_every_field() {
    let rule = vec![crate::build::eq(
        crate::build::payload("ip", "saddr"),
        crate::build::s("10.0.0.1"),
    )];
    let nest = compile::rule_expressions(nftables::types::NfFamily::INet, &rule).unwrap();
    let exprs = Attrs { data: &nest }.next().unwrap();
    let lines: Vec<String> = exprs.nested().map(expression).collect();
    assert_eq!(
        lines,
        [
            "[ meta load nfproto => reg 1 ]",
            "[ cmp eq reg 1 0x00000002 ]",
            "[ payload load 4b @ network header + 12 => reg 1 ]",
            "[ cmp eq reg 1 0x0100000a ]",
        ]
    );
}
