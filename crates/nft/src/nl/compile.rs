//! Our per-attachment rules and map keys in the kernel's own terms: the
//! expressions (`payload`, `meta`, `cmp`, `bitwise`, `immediate`, `nat`,
//! `masq`) and key bytes that `nft` itself would send for them.
//!
//! Only the statements our rule sets write are known here; anything else
//! yields `None` and the caller falls back to `nft`. What is produced must be
//! byte-for-byte what `nft` 1.0 generates (dependency matches included, e.g.
//! `meta nfproto ipv4` before `ip saddr` in an `inet` table, and short
//! payload loads for byte-aligned prefixes), so that `nft list` prints our
//! rules exactly as it prints its own and CHECK compares them like-for-like;
//! a test compares the two bytecodes rule by rule.

use std::net::IpAddr;

use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, PayloadField};
use nftables::stmt::{NATFamily, Operator, Statement, NAT};
use nftables::types::NfFamily;

use super::msg::{attr, MsgBuf, VERDICT_DROP, VERDICT_RETURN};
use crate::build::{Expr, Stmt};

/// `NFPROTO_*` of a table family (the nfgenmsg family of its messages).
pub(crate) fn nfproto(family: NfFamily) -> u8 {
    match family {
        NfFamily::INet => 1,
        NfFamily::IP => 2,
        NfFamily::ARP => 3,
        NfFamily::NetDev => 5,
        NfFamily::Bridge => 7,
        NfFamily::IP6 => 10,
    }
}

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;

const BASE_LL: u32 = 0;
const BASE_NETWORK: u32 = 1;
const BASE_TRANSPORT: u32 = 2;

const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;

const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;

const NAT_DNAT: u32 = 1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`, which nft sets with a port.
const NAT_PROTO_SPECIFIED: u32 = 2;

/// `inet_proto` numbers of the protocols a mapping can name.
fn l4proto(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => None,
    }
}

fn expr_str(e: &Expr) -> Option<&str> {
    match e {
        Expression::String(s) => Some(s),
        _ => None,
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn mac_bytes(s: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect()
}

/// The expressions of one rule, written into a `NFTA_RULE_EXPRESSIONS` nest.
struct RuleWriter<'b> {
    out: &'b mut MsgBuf,
    family: NfFamily,
    /// The network protocol already matched in this rule (`inet` only).
    nfproto: Option<u8>,
    /// The transport protocol already matched.
    l4proto: Option<u8>,
}

impl RuleWriter<'_> {
    fn expr(&mut self, name: &str, body: impl FnOnce(&mut MsgBuf)) {
        let elem = self.out.nest(attr::LIST_ELEM);
        self.out.attr_str(attr::EXPR_NAME, name);
        let data = self.out.nest(attr::EXPR_DATA);
        body(self.out);
        self.out.nest_end(data);
        self.out.nest_end(elem);
    }

    fn meta_load(&mut self, key: u32) {
        self.expr("meta", |b| {
            b.attr_u32(attr::META_KEY, key);
            b.attr_u32(attr::META_DREG, REG_1);
        });
    }

    fn payload_load(&mut self, base: u32, offset: u32, len: u32) {
        self.expr("payload", |b| {
            b.attr_u32(attr::PAYLOAD_DREG, REG_1);
            b.attr_u32(attr::PAYLOAD_BASE, base);
            b.attr_u32(attr::PAYLOAD_OFFSET, offset);
            b.attr_u32(attr::PAYLOAD_LEN, len);
        });
    }

    fn cmp(&mut self, op: u32, data: &[u8]) {
        self.expr("cmp", |b| {
            b.attr_u32(attr::CMP_SREG, REG_1);
            b.attr_u32(attr::CMP_OP, op);
            let d = b.nest(attr::CMP_DATA);
            b.attr(attr::DATA_VALUE, data);
            b.nest_end(d);
        });
    }

    fn bitwise(&mut self, mask: &[u8]) {
        let xor = vec![0u8; mask.len()];
        self.expr("bitwise", |b| {
            b.attr_u32(attr::BITWISE_SREG, REG_1);
            b.attr_u32(attr::BITWISE_DREG, REG_1);
            b.attr_u32(attr::BITWISE_LEN, mask.len() as u32);
            let m = b.nest(attr::BITWISE_MASK);
            b.attr(attr::DATA_VALUE, mask);
            b.nest_end(m);
            let x = b.nest(attr::BITWISE_XOR);
            b.attr(attr::DATA_VALUE, &xor);
            b.nest_end(x);
        });
    }

    fn immediate(&mut self, reg: u32, data: &[u8]) {
        self.expr("immediate", |b| {
            b.attr_u32(attr::IMMEDIATE_DREG, reg);
            let d = b.nest(attr::IMMEDIATE_DATA);
            b.attr(attr::DATA_VALUE, data);
            b.nest_end(d);
        });
    }

    fn verdict(&mut self, code: i32) {
        self.expr("immediate", |b| {
            b.attr_u32(attr::IMMEDIATE_DREG, REG_VERDICT);
            let d = b.nest(attr::IMMEDIATE_DATA);
            b.verdict(code, None);
            b.nest_end(d);
        });
    }

    /// `meta nfproto X` as nft adds it before an `ip`/`ip6` match in an
    /// `inet` table, unless the rule already established it.
    fn need_nfproto(&mut self, want: u8) -> Option<()> {
        match self.family {
            NfFamily::INet => {
                match self.nfproto {
                    Some(p) if p == want => {}
                    Some(_) => return None,
                    None => {
                        self.meta_load(META_NFPROTO);
                        self.cmp(CMP_EQ, &[want]);
                        self.nfproto = Some(want);
                    }
                }
                Some(())
            }
            _ => None,
        }
    }

    fn need_l4proto(&mut self, want: u8) -> Option<()> {
        match self.l4proto {
            Some(p) if p == want => Some(()),
            Some(_) => None,
            None => {
                if self.family != NfFamily::INet {
                    return None;
                }
                self.meta_load(META_L4PROTO);
                self.cmp(CMP_EQ, &[want]);
                self.l4proto = Some(want);
                Some(())
            }
        }
    }

    /// `ip|ip6 saddr|daddr OP address-or-prefix`.
    fn ip_match(&mut self, proto: &str, field: &str, op: u32, right: &Expr) -> Option<()> {
        let (nfp, alen, offset) = match (proto, field) {
            ("ip", "saddr") => (NFPROTO_IPV4, 4u32, 12u32),
            ("ip", "daddr") => (NFPROTO_IPV4, 4, 16),
            ("ip6", "saddr") => (NFPROTO_IPV6, 16, 8),
            ("ip6", "daddr") => (NFPROTO_IPV6, 16, 24),
            _ => return None,
        };
        let (ip, plen): (IpAddr, u32) = match right {
            Expression::String(s) => (s.parse().ok()?, alen * 8),
            Expression::Named(NamedExpression::Prefix(p)) => {
                (expr_str(&p.addr)?.parse().ok()?, p.len)
            }
            _ => return None,
        };
        if ip.is_ipv4() != (nfp == NFPROTO_IPV4) || plen == 0 || plen > alen * 8 {
            return None;
        }
        self.need_nfproto(nfp)?;
        let bytes = ip_bytes(ip);
        if plen % 8 == 0 {
            // nft loads only the prefix's bytes when it ends on a byte.
            let n = (plen / 8) as usize;
            self.payload_load(BASE_NETWORK, offset, n as u32);
            self.cmp(op, &bytes[..n]);
        } else {
            let mask: Vec<u8> = (0..alen)
                .map(|i| {
                    let bits = plen.saturating_sub(i * 8).min(8);
                    if bits == 0 {
                        0
                    } else {
                        0xffu8 << (8 - bits)
                    }
                })
                .collect();
            let masked: Vec<u8> = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
            self.payload_load(BASE_NETWORK, offset, alen);
            self.bitwise(&mask);
            self.cmp(op, &masked);
        }
        Some(())
    }

    fn statement(&mut self, st: &Stmt) -> Option<()> {
        match st {
            Statement::Match(m) => {
                let op = match m.op {
                    Operator::EQ => CMP_EQ,
                    Operator::NEQ => CMP_NEQ,
                    _ => return None,
                };
                match &m.left {
                    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                        PayloadField { protocol, field },
                    ))) => match (protocol.as_ref(), field.as_ref()) {
                        ("ip" | "ip6", _) => self.ip_match(protocol, field, op, &m.right),
                        (p @ ("tcp" | "udp" | "sctp"), "dport") => {
                            let Expression::Number(port) = m.right else {
                                return None;
                            };
                            let port = u16::try_from(port).ok()?;
                            self.need_l4proto(l4proto(p)?)?;
                            self.payload_load(BASE_TRANSPORT, 2, 2);
                            self.cmp(op, &port.to_be_bytes());
                            Some(())
                        }
                        ("ether", "saddr") if self.family == NfFamily::Bridge => {
                            let mac = mac_bytes(expr_str(&m.right)?)?;
                            self.payload_load(BASE_LL, 6, 6);
                            self.cmp(op, &mac);
                            Some(())
                        }
                        _ => None,
                    },
                    Expression::Named(NamedExpression::Meta(meta))
                        if meta.key == MetaKey::Nfproto
                            && op == CMP_EQ
                            && self.family == NfFamily::INet
                            && self.nfproto.is_none() =>
                    {
                        let p = match expr_str(&m.right)? {
                            "ipv4" => NFPROTO_IPV4,
                            "ipv6" => NFPROTO_IPV6,
                            _ => return None,
                        };
                        self.meta_load(META_NFPROTO);
                        self.cmp(CMP_EQ, &[p]);
                        self.nfproto = Some(p);
                        Some(())
                    }
                    _ => None,
                }
            }
            Statement::Masquerade(None) => {
                self.expr("masq", |_| {});
                Some(())
            }
            Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(a)),
                family: Some(fam),
                port: Some(Expression::Number(port)),
                flags: None,
            })) => {
                let ip: IpAddr = a.parse().ok()?;
                let (nfp, ok) = match fam {
                    NATFamily::IP => (NFPROTO_IPV4, ip.is_ipv4()),
                    NATFamily::IP6 => (NFPROTO_IPV6, ip.is_ipv6()),
                };
                let port = u16::try_from(*port).ok()?;
                if !ok {
                    return None;
                }
                self.immediate(REG_1, &ip_bytes(ip));
                self.immediate(REG_2, &port.to_be_bytes());
                self.expr("nat", |b| {
                    b.attr_u32(attr::NAT_TYPE, NAT_DNAT);
                    b.attr_u32(attr::NAT_FAMILY, u32::from(nfp));
                    b.attr_u32(attr::NAT_REG_ADDR_MIN, REG_1);
                    b.attr_u32(attr::NAT_REG_PROTO_MIN, REG_2);
                    b.attr_u32(attr::NAT_FLAGS, NAT_PROTO_SPECIFIED);
                });
                Some(())
            }
            Statement::Return(None) => {
                self.verdict(VERDICT_RETURN);
                Some(())
            }
            Statement::Drop(None) => {
                self.verdict(VERDICT_DROP);
                Some(())
            }
            _ => None,
        }
    }
}

/// The `NFTA_RULE_EXPRESSIONS` nest of a rule, or `None` when a statement is
/// not one we can express (the caller then lets `nft` do it).
pub(crate) fn rule_expressions(family: NfFamily, rule: &[Stmt]) -> Option<Vec<u8>> {
    let mut out = MsgBuf::default();
    let nest = out.nest(attr::RULE_EXPRESSIONS);
    let mut w = RuleWriter {
        out: &mut out,
        family,
        nfproto: None,
        l4proto: None,
    };
    for st in rule {
        w.statement(st)?;
    }
    out.nest_end(nest);
    Some(out.buf)
}

/// One component of a map key, padded to 4 bytes as nft concatenates them.
fn key_part(ty: &str, e: &Expr) -> Option<Vec<u8>> {
    let mut v = match (ty, e) {
        ("ipv4_addr", Expression::String(s)) => {
            s.parse::<std::net::Ipv4Addr>().ok()?.octets().to_vec()
        }
        ("ipv6_addr", Expression::String(s)) => {
            s.parse::<std::net::Ipv6Addr>().ok()?.octets().to_vec()
        }
        ("ifname", Expression::String(s)) => {
            // IFNAMSIZ bytes, NUL padded; a name needs room for its NUL.
            if s.is_empty() || s.len() >= 16 || s.contains('\0') {
                return None;
            }
            let mut v = s.as_bytes().to_vec();
            v.resize(16, 0);
            v
        }
        ("inet_proto", Expression::String(s)) => vec![l4proto(s)?],
        ("inet_service", Expression::Number(n)) => u16::try_from(*n).ok()?.to_be_bytes().to_vec(),
        _ => return None,
    };
    v.resize((v.len() + 3) & !3, 0);
    Some(v)
}

/// The key bytes of a map element, given the map's key type as written in
/// the layout (`"ipv4_addr"` or `["ipv4_addr", "inet_proto", "inet_service"]`).
pub(crate) fn key_bytes(key_type: &serde_json::Value, key: &Expr) -> Option<Vec<u8>> {
    match (key_type, key) {
        (serde_json::Value::String(t), k) => key_part(t, k),
        (serde_json::Value::Array(types), Expression::Named(NamedExpression::Concat(items)))
            if types.len() == items.len() =>
        {
            let mut out = Vec::new();
            for (t, item) in types.iter().zip(items) {
                out.extend(key_part(t.as_str()?, item)?);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{addr, concat, eq, masquerade, ne, net, num, payload, s};
    use serde_json::json;

    #[test]
    fn keys_are_padded_like_nft_concatenations() {
        let k = concat(vec![s("10.0.0.1"), s("tcp"), num(8080)]);
        let t = json!(["ipv4_addr", "inet_proto", "inet_service"]);
        assert_eq!(
            key_bytes(&t, &k).unwrap(),
            [10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]
        );
        assert_eq!(
            key_bytes(&json!("ifname"), &s("veth1234")).unwrap(),
            b"veth1234\0\0\0\0\0\0\0\0"
        );
        assert!(key_bytes(&json!("ifname"), &s("a-very-long-name")).is_none());
        assert!(key_bytes(&json!("ipv4_addr"), &s("fd00::1")).is_none());
        assert!(key_bytes(&t, &concat(vec![s("10.0.0.1"), s("icmp"), num(1)])).is_none());
    }

    #[test]
    fn unknown_statements_are_left_to_nft() {
        let r = vec![eq(payload("ip", "saddr"), s("10.0.0.1")), masquerade()];
        assert!(rule_expressions(NfFamily::INet, &r).is_some());
        // No dependency nft would add in a bridge table is known here.
        assert!(rule_expressions(NfFamily::Bridge, &r).is_none());
        let zero: ipnetwork::IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(
            rule_expressions(NfFamily::INet, &[ne(payload("ip", "daddr"), net(zero))]).is_none()
        );
        let mixed = vec![
            eq(payload("ip", "saddr"), addr("10.0.0.1".parse().unwrap())),
            eq(payload("ip6", "daddr"), s("fd00::1")),
        ];
        assert!(rule_expressions(NfFamily::INet, &mixed).is_none());
    }
}
