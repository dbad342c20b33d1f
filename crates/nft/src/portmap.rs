//! Host port -> container port mappings (the portmap plugin).
//!
//! Table `inet cni_portmap`:
//!
//! | object | contents |
//! |---|---|
//! | map `ports` | `inet_proto . inet_service : verdict` — mappings without host IP |
//! | map `ports4` / `ports6` | `ipv4_addr . inet_proto . inet_service : verdict` (v6 alike) — mappings with a host IP |
//! | map `hairpin4` / `hairpin6` | container address : verdict |
//! | chain `hostports` | `ip daddr . meta l4proto . th dport vmap @ports4`; `ip6 daddr . ... vmap @ports6`; `meta l4proto . th dport vmap @ports` |
//! | base `prerouting` (nat, prerouting, dstnat -100) | `fib daddr type local jump hostports` |
//! | base `output` (nat, output, -100) | `fib daddr type local jump hostports` (the host itself, incl. 127.0.0.1) |
//! | base `postrouting` (nat, postrouting, srcnat 100) | `ct status dnat ip daddr vmap @hairpin4`; same for ip6 |
//! | per attachment `pm-dnat-<h>` | per mapping and family: `[ip daddr HOSTIP \| meta nfproto ipv4] tcp dport HP dnat ip to C:CP` |
//! | per attachment `pm-snat-<h>` | per mapping and family: `ip saddr C/LEN ip daddr C tcp dport CP masquerade` (hairpin, container's subnet), v4 also `ip saddr 127.0.0.0/8 ...` (localhost); with `masq_all`: `ip daddr C tcp dport CP masquerade` |
//!
//! Address-specific mappings are looked up before the wildcard ones, so a
//! mapping on one host address wins over another container's mapping of the
//! same port on all addresses. Every rule of the attachment chains and every
//! element is commented with the attachment's tag.
//!
//! Hairpin/localhost masquerade needs no packet marks: the postrouting chain
//! only looks at connections that were DNATed (`ct status dnat`) to a
//! container address that has mappings.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use nftables::expr::MetaKey;
use nftables::stmt::{Operator, Statement};
use nftables::types::{NfChainType, NfFamily, NfHook};
use serde_json::json;

use crate::build::{
    addr, concat, ct, dnat, eq, fib_daddr_type, ip_proto, jump, masquerade, matches, meta, net,
    num, payload, s, vmap, Expr, Hook, Stmt,
};
use crate::engine::{chain_name, AttChain, AttElem, AttState, FixedChain, Layout, MapDef};
use crate::error::Result;
use crate::{keep_tags, network_prefix, Attachment};

/// The table (family `inet`).
pub const TABLE: &str = "cni_portmap";
const DNAT_PREFIX: &str = "pm-dnat-";
const SNAT_PREFIX: &str = "pm-snat-";

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The nft name (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    /// Case-insensitive `tcp`, `udp`, `sctp`.
    fn from_str(s: &str) -> std::result::Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(format!(
                "unsupported protocol {s:?} (expected tcp, udp or sctp)"
            )),
        }
    }
}

/// One mapping: packets to `host_ip` (any local address when `None`):
/// `host_port` go to the container's `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None`, `0.0.0.0` and `::` mean every local address (`0.0.0.0`: only
    /// IPv4, `::`: only IPv6).
    pub host_ip: Option<IpAddr>,
}

/// What to map for one attachment.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub mappings: &'a [PortMapping],
    /// The container's IPv4 address with its prefix length (the prefix gives
    /// the subnet whose members are masqueraded when they hairpin).
    pub container_v4: Option<IpNetwork>,
    pub container_v6: Option<IpNetwork>,
    /// Masquerade hairpin (container subnet -> mapping) and localhost traffic.
    pub snat: bool,
    /// Masquerade all traffic that goes through a mapping (implies `snat`).
    pub masq_all: bool,
}

fn concat_key(items: Vec<Expr>) -> Expr {
    concat(items)
}

fn dispatch_key(daddr: Option<&str>) -> Expr {
    let mut items = Vec::new();
    if let Some(p) = daddr {
        items.push(payload(p, "daddr"));
    }
    items.push(meta(MetaKey::L4proto));
    items.push(payload("th", "dport"));
    concat_key(items)
}

pub(crate) fn layout() -> Layout {
    let dstnat = |hook| {
        Some(Hook {
            kind: NfChainType::NAT,
            hook,
            prio: -100,
        })
    };
    let local_jump = vec![eq(fib_daddr_type(), s("local")), jump("hostports")];
    let dnatted = || matches(ct("status", None), Operator::IN, s("dnat"));
    Layout {
        what: "port mapping",
        family: NfFamily::INet,
        table: TABLE,
        maps: vec![
            MapDef {
                name: "ports",
                key_type: json!(["inet_proto", "inet_service"]),
            },
            MapDef {
                name: "ports4",
                key_type: json!(["ipv4_addr", "inet_proto", "inet_service"]),
            },
            MapDef {
                name: "ports6",
                key_type: json!(["ipv6_addr", "inet_proto", "inet_service"]),
            },
            MapDef {
                name: "hairpin4",
                key_type: json!("ipv4_addr"),
            },
            MapDef {
                name: "hairpin6",
                key_type: json!("ipv6_addr"),
            },
        ],
        chains: vec![
            FixedChain {
                name: "hostports",
                hook: None,
                rules: vec![
                    vec![vmap(dispatch_key(Some("ip")), "ports4")],
                    vec![vmap(dispatch_key(Some("ip6")), "ports6")],
                    vec![vmap(dispatch_key(None), "ports")],
                ],
            },
            FixedChain {
                name: "prerouting",
                hook: dstnat(NfHook::Prerouting),
                rules: vec![local_jump.clone()],
            },
            FixedChain {
                name: "output",
                hook: dstnat(NfHook::Output),
                rules: vec![local_jump],
            },
            FixedChain {
                name: "postrouting",
                hook: Some(Hook {
                    kind: NfChainType::NAT,
                    hook: NfHook::Postrouting,
                    prio: 100,
                }),
                rules: vec![
                    vec![dnatted(), vmap(payload("ip", "daddr"), "hairpin4")],
                    vec![dnatted(), vmap(payload("ip6", "daddr"), "hairpin6")],
                ],
            },
        ],
        att_prefixes: &[DNAT_PREFIX, SNAT_PREFIX],
    }
}

/// The attachment's DNAT and hairpin chain names.
pub fn chains(att: &Attachment) -> [String; 2] {
    let tag = att.tag();
    [chain_name(DNAT_PREFIX, &tag), chain_name(SNAT_PREFIX, &tag)]
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// 127.0.0.0/8: connections from the host to 127.0.0.1:<hostPort>.
const LOCALHOST: Ipv4Network = match Ipv4Network::new_checked(Ipv4Addr::new(127, 0, 0, 0), 8) {
    Some(n) => n,
    None => panic!("127.0.0.0/8 is a valid network"),
};

pub(crate) fn state(att: &Attachment, spec: &Spec) -> AttState {
    let tag = att.tag();
    let [dn_chain, sn_chain] = chains(att);
    let mut dn_rules: Vec<Vec<Stmt>> = Vec::new();
    let mut sn_rules: Vec<Vec<Stmt>> = Vec::new();
    let mut elems: Vec<AttElem> = Vec::new();
    let mut push_elem = |map: &'static str, key: Expr, chain: &str| {
        if !elems.iter().any(|e: &AttElem| e.map == map && e.key == key) {
            elems.push(AttElem {
                map,
                key,
                chain: chain.to_string(),
            });
        }
    };
    for m in spec.mappings {
        let proto = m.protocol.as_str();
        for container in [spec.container_v4, spec.container_v6].into_iter().flatten() {
            let cip = container.ip();
            let p = ip_proto(cip);
            // Which host address(es) of this family the mapping listens on.
            let host_ip = match m.host_ip {
                Some(h) if h.is_ipv4() != cip.is_ipv4() => continue,
                Some(h) if h.is_unspecified() => None,
                other => other,
            };
            let mut dn = Vec::new();
            match host_ip {
                Some(h) => dn.push(eq(payload(p, "daddr"), addr(h))),
                None => dn.push(eq(
                    meta(MetaKey::Nfproto),
                    s(if cip.is_ipv4() { "ipv4" } else { "ipv6" }),
                )),
            }
            dn.push(eq(payload(proto, "dport"), num(m.host_port)));
            dn.push(dnat(cip, m.container_port));
            push_unique(&mut dn_rules, dn);
            let key = match host_ip {
                Some(h) => (
                    if h.is_ipv4() { "ports4" } else { "ports6" },
                    concat_key(vec![addr(h), s(proto), num(m.host_port)]),
                ),
                None => ("ports", concat_key(vec![s(proto), num(m.host_port)])),
            };
            push_elem(key.0, key.1, &dn_chain);

            if spec.snat || spec.masq_all {
                let to_container = [
                    eq(payload(p, "daddr"), addr(cip)),
                    eq(payload(proto, "dport"), num(m.container_port)),
                    masquerade(),
                ];
                if spec.masq_all {
                    push_unique(&mut sn_rules, to_container.to_vec());
                } else {
                    let mut sources = vec![container];
                    if cip.is_ipv4() {
                        sources.push(IpNetwork::V4(LOCALHOST));
                    }
                    for src in sources {
                        let mut r = vec![eq(payload(p, "saddr"), net(src))];
                        r.extend(to_container.iter().cloned());
                        push_unique(&mut sn_rules, r);
                    }
                }
                let map = if cip.is_ipv4() {
                    "hairpin4"
                } else {
                    "hairpin6"
                };
                push_elem(map, addr(cip), &sn_chain);
            }
        }
    }
    // A chain with nothing to do still carries its owner's tag.
    for rules in [&mut dn_rules, &mut sn_rules] {
        if rules.is_empty() {
            rules.push(vec![Statement::Return(None)]);
        }
    }
    AttState {
        tag,
        chains: vec![
            AttChain {
                name: dn_chain,
                rules: dn_rules,
            },
            AttChain {
                name: sn_chain,
                rules: sn_rules,
            },
        ],
        elems,
    }
}

/// Installs the attachment's mappings, replacing any it had. One netlink
/// batch when our table exists (see the crate docs for the other cases).
pub fn add(att: &Attachment, spec: &Spec) -> Result<()> {
    layout().add(&state(att, spec))
}

/// Removes the attachment's mappings (found by tag); Ok when already gone.
pub fn del(att: &Attachment) -> Result<()> {
    layout().del(&att.tag(), &chains(att))
}

/// Err (with [`crate::Error::is_mismatch`]) if the kernel's rules differ from
/// what [`add`] would install for `spec`.
pub fn check(att: &Attachment, spec: &Spec) -> Result<()> {
    layout().check(&state(att, spec))
}

/// Removes `network`'s attachments that are not in `keep`; returns how many.
pub fn gc(network: &str, keep: &[(String, String)]) -> Result<usize> {
    layout().gc(&network_prefix(network), &keep_tags(network, keep))
}

/// Whether ADD would work: `nft` installed and the kernel accepts the table
/// (`nft -c`, nothing applied).
pub fn probe() -> Result<()> {
    layout().probe()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn att() -> Attachment<'static> {
        Attachment {
            network: "net1",
            container_id: "ctr1",
            ifname: "eth0",
        }
    }

    fn mapping(hp: u16, cp: u16, proto: Protocol, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: hp,
            container_port: cp,
            protocol: proto,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
        }
    }

    fn spec(m: &[PortMapping], snat: bool, masq_all: bool, v6: bool) -> Spec<'_> {
        Spec {
            mappings: m,
            container_v4: Some("10.88.0.5/24".parse().unwrap()),
            container_v6: v6.then(|| "fd88::5/64".parse().unwrap()),
            snat,
            masq_all,
        }
    }

    fn rule_texts(st: &AttState, i: usize) -> Vec<String> {
        st.chains[i]
            .rules
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect()
    }

    #[test]
    fn wildcard_mapping_dual_stack() {
        let m = [mapping(8080, 80, Protocol::Tcp, None)];
        let st = state(&att(), &spec(&m, true, false, true));
        let dn = rule_texts(&st, 0);
        assert_eq!(dn.len(), 2, "{dn:?}");
        assert!(
            dn[0].contains("\"nfproto\"") && dn[0].contains("\"ipv4\""),
            "{}",
            dn[0]
        );
        assert!(
            dn[0].contains("\"dnat\":{\"addr\":\"10.88.0.5\",\"family\":\"ip\",\"port\":80}"),
            "{}",
            dn[0]
        );
        assert!(dn[1].contains("\"family\":\"ip6\""), "{}", dn[1]);
        let sn = rule_texts(&st, 1);
        // v4: subnet + localhost; v6: subnet only.
        assert_eq!(sn.len(), 3, "{sn:?}");
        assert!(
            sn[0].contains("{\"addr\":\"10.88.0.0\",\"len\":24}"),
            "{}",
            sn[0]
        );
        assert!(
            sn[1].contains("{\"addr\":\"127.0.0.0\",\"len\":8}"),
            "{}",
            sn[1]
        );
        assert!(sn[2].contains("fd88::"), "{}", sn[2]);
        let keys: Vec<(String, Value)> = st
            .elems
            .iter()
            .map(|e| (e.map.to_string(), serde_json::to_value(&e.key).unwrap()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("ports".into(), json!({"concat": ["tcp", 8080]})),
                ("hairpin4".into(), json!("10.88.0.5")),
                ("hairpin6".into(), json!("fd88::5")),
            ]
        );
        assert_eq!(st.elems[0].chain, chains(&att())[0]);
        assert_eq!(st.elems[1].chain, chains(&att())[1]);
    }

    #[test]
    fn host_ip_selects_family_and_map() {
        let m = [
            mapping(8443, 443, Protocol::Tcp, Some("192.0.2.10")),
            mapping(9090, 90, Protocol::Tcp, Some("2001:db8::1")),
            mapping(5353, 53, Protocol::Udp, Some("0.0.0.0")),
        ];
        let st = state(&att(), &spec(&m, false, false, false));
        let dn = rule_texts(&st, 0);
        // v6 hostIP without a v6 container address: skipped; 0.0.0.0 = all v4.
        assert_eq!(dn.len(), 2, "{dn:?}");
        assert!(dn[0].contains("192.0.2.10"));
        assert!(
            dn[1].contains("\"udp\"") && dn[1].contains("\"ipv4\""),
            "{}",
            dn[1]
        );
        let maps: Vec<_> = st.elems.iter().map(|e| e.map).collect();
        assert_eq!(maps, vec!["ports4", "ports"]);
        assert_eq!(
            serde_json::to_value(&st.elems[0].key).unwrap(),
            json!({"concat": ["192.0.2.10", "tcp", 8443]})
        );
        // snat off: the hairpin chain only holds its tagged placeholder.
        assert_eq!(rule_texts(&st, 1), vec!["[{\"return\":null}]".to_string()]);
    }

    #[test]
    fn masq_all_masquerades_every_source() {
        let m = [mapping(8080, 80, Protocol::Sctp, None)];
        let st = state(&att(), &spec(&m, true, true, false));
        let sn = rule_texts(&st, 1);
        assert_eq!(sn.len(), 1, "{sn:?}");
        assert!(!sn[0].contains("saddr"), "{}", sn[0]);
        assert!(sn[0].contains("\"sctp\""), "{}", sn[0]);
    }

    #[test]
    fn duplicate_container_ports_share_hairpin_rules() {
        let m = [
            mapping(8080, 80, Protocol::Tcp, None),
            mapping(8081, 80, Protocol::Tcp, None),
        ];
        let st = state(&att(), &spec(&m, true, false, false));
        assert_eq!(rule_texts(&st, 0).len(), 2);
        assert_eq!(rule_texts(&st, 1).len(), 2, "subnet + localhost once");
        assert_eq!(st.elems.len(), 3, "two port keys, one hairpin key");
    }

    #[test]
    fn fixed_chains_hook_where_expected() {
        let st = state(&att(), &spec(&[], true, false, false));
        let cmds = layout().add_batch(&st).commands().to_vec();
        let hooks: Vec<(String, String, i64)> = cmds
            .iter()
            .filter_map(|c| c["add"].get("chain"))
            .filter(|c| c.get("hook").is_some())
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["hook"].as_str().unwrap().to_string(),
                    c["prio"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            hooks,
            vec![
                ("prerouting".into(), "prerouting".into(), -100),
                ("output".into(), "output".into(), -100),
                ("postrouting".into(), "postrouting".into(), 100),
            ]
        );
        // hostports is created before the base chains that jump to it.
        let names: Vec<_> = cmds
            .iter()
            .filter_map(|c| c["add"].get("chain"))
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names[0], "hostports");
    }

    #[test]
    fn protocols_parse_case_insensitively() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("udp".parse::<Protocol>().unwrap(), Protocol::Udp);
        assert_eq!("Sctp".parse::<Protocol>().unwrap(), Protocol::Sctp);
        assert!("icmp".parse::<Protocol>().is_err());
    }
}
