//! The bridge's `ipMasq`: traffic from a container address to destinations
//! outside its subnet, except multicast (224.0.0.0/4, ff00::/8), leaves with
//! the host's address (masquerade).
//!
//! Table `inet cni_masq`: base chain `postrouting` (nat, srcnat) dispatches by
//! source address through maps `masq4` / `masq6` to the attachment's chain
//! `masq-<h>`, which holds one rule per address:
//! `ip saddr A ip daddr != SUBNET ip daddr != 224.0.0.0/4 masquerade comment "<tag>"`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use nftables::types::{NfChainType, NfFamily, NfHook};
use serde_json::json;

use crate::build::{addr, eq, masquerade, ne, net, payload, vmap, Hook};
use crate::engine::{chain_name, AttChain, AttElem, AttState, FixedChain, Layout, MapDef};
use crate::error::{Error, Result};
use crate::{keep_tags, network_prefix, Attachment};

/// The table (family `inet`).
pub const TABLE: &str = "cni_masq";
const CHAIN_PREFIX: &str = "masq-";

const MULTICAST_V4: Ipv4Network = match Ipv4Network::new_checked(Ipv4Addr::new(224, 0, 0, 0), 4) {
    Some(n) => n,
    None => panic!("224.0.0.0/4 is a valid network"),
};
const MULTICAST_V6: Ipv6Network =
    match Ipv6Network::new_checked(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8) {
        Some(n) => n,
        None => panic!("ff00::/8 is a valid network"),
    };

/// One container address and the subnet it reaches directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqRule {
    pub ip: IpAddr,
    /// Host bits are ignored (`10.88.0.5/24` means `10.88.0.0/24`).
    pub subnet: IpNetwork,
}

pub(crate) fn layout() -> Layout {
    Layout {
        what: "masquerade",
        family: NfFamily::INet,
        table: TABLE,
        maps: vec![
            MapDef {
                name: "masq4",
                key_type: json!("ipv4_addr"),
            },
            MapDef {
                name: "masq6",
                key_type: json!("ipv6_addr"),
            },
        ],
        chains: vec![FixedChain {
            name: "postrouting",
            hook: Some(Hook {
                kind: NfChainType::NAT,
                hook: NfHook::Postrouting,
                prio: 100,
            }),
            rules: vec![
                vec![vmap(payload("ip", "saddr"), "masq4")],
                vec![vmap(payload("ip6", "saddr"), "masq6")],
            ],
        }],
        att_prefixes: &[CHAIN_PREFIX],
    }
}

/// The attachment's chain name.
pub fn chain(att: &Attachment) -> String {
    chain_name(CHAIN_PREFIX, &att.tag())
}

pub(crate) fn state(att: &Attachment, rules: &[MasqRule]) -> Result<AttState> {
    let tag = att.tag();
    let chain = chain_name(CHAIN_PREFIX, &tag);
    let mut chain_rules = Vec::new();
    let mut elems: Vec<AttElem> = Vec::new();
    for r in rules {
        if r.ip.is_ipv4() != r.subnet.is_ipv4() {
            return Err(Error::invalid(
                format!("masquerade for {tag}"),
                format!(
                    "address {} and subnet {} are of different families",
                    r.ip, r.subnet
                ),
            ));
        }
        let (p, multicast, map) = match r.ip {
            IpAddr::V4(_) => ("ip", IpNetwork::V4(MULTICAST_V4), "masq4"),
            IpAddr::V6(_) => ("ip6", IpNetwork::V6(MULTICAST_V6), "masq6"),
        };
        let rule = vec![
            eq(payload(p, "saddr"), addr(r.ip)),
            ne(payload(p, "daddr"), net(r.subnet)),
            ne(payload(p, "daddr"), net(multicast)),
            masquerade(),
        ];
        if !chain_rules.contains(&rule) {
            chain_rules.push(rule);
        }
        if !elems.iter().any(|e| e.map == map && e.key == addr(r.ip)) {
            elems.push(AttElem {
                map,
                key: addr(r.ip),
                chain: chain.clone(),
            });
        }
    }
    if chain_rules.is_empty() {
        // Keeps the (empty) chain attributable to its owner.
        chain_rules.push(vec![nftables::stmt::Statement::Return(None)]);
    }
    Ok(AttState {
        tag,
        chains: vec![AttChain {
            name: chain,
            rules: chain_rules,
        }],
        elems,
    })
}

/// Masquerades the attachment's addresses. Idempotent: a repeated ADD
/// replaces this attachment's rules with `rules`. One netlink batch when
/// our table exists (see the crate docs for the other cases).
pub fn add(att: &Attachment, rules: &[MasqRule]) -> Result<()> {
    layout().add(&state(att, rules)?)
}

/// Removes everything the attachment owns; Ok when it (or the table) is
/// already gone. Needs no addresses: the attachment is found by its tag.
pub fn del(att: &Attachment) -> Result<()> {
    layout().del(&att.tag(), &[chain(att)])
}

/// Err (with [`Error::is_mismatch`]) if anything is missing or different.
pub fn check(att: &Attachment, rules: &[MasqRule]) -> Result<()> {
    layout().check(&state(att, rules)?)
}

/// Removes `network`'s attachments that are not in `keep` (container id,
/// ifname); returns how many were removed.
pub fn gc(network: &str, keep: &[(String, String)]) -> Result<usize> {
    layout().gc(&network_prefix(network), &keep_tags(network, keep))
}

/// Whether ADD would work: `nft` installed and the kernel accepts the table
/// (checked with `nft -c`, nothing is applied).
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

    fn rules() -> Vec<MasqRule> {
        vec![
            MasqRule {
                ip: "10.88.0.5".parse().unwrap(),
                subnet: "10.88.0.5/24".parse().unwrap(),
            },
            MasqRule {
                ip: "fd88::5".parse().unwrap(),
                subnet: "fd88::/64".parse().unwrap(),
            },
        ]
    }

    fn batch_cmds() -> Vec<Value> {
        let st = state(&att(), &rules()).unwrap();
        layout().add_batch(&st).commands().to_vec()
    }

    fn find<'a>(cmds: &'a [Value], verb: &str, kind: &str) -> Vec<&'a Value> {
        cmds.iter().filter_map(|c| c.get(verb)?.get(kind)).collect()
    }

    /// The fast ADD path creates only new objects: no table, no fixed chain,
    /// no flush (re-adding or flushing existing objects costs an RCU grace
    /// period in the kernel), and `create` so an existing chain fails it.
    #[test]
    fn attach_batch_creates_only_the_attachments_new_objects() {
        let st = state(&att(), &rules()).unwrap();
        let cmds = layout().attach_batch(&st).commands().to_vec();
        assert!(find(&cmds, "add", "table").is_empty());
        assert!(find(&cmds, "add", "chain").is_empty());
        assert!(find(&cmds, "flush", "chain").is_empty());
        let created = find(&cmds, "create", "chain");
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["name"], chain(&att()).as_str());
        let rules = find(&cmds, "add", "rule");
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r["chain"] == chain(&att()).as_str()));
        assert_eq!(find(&cmds, "add", "element").len(), 2);
    }

    #[test]
    fn batch_rewrites_the_base_chain_and_fills_the_attachment_chain() {
        let cmds = batch_cmds();
        let tables = find(&cmds, "add", "table");
        assert_eq!(tables[0]["family"], "inet");
        assert_eq!(tables[0]["name"], TABLE);
        let chains = find(&cmds, "add", "chain");
        assert_eq!(chains[0]["name"], "postrouting");
        assert_eq!(chains[0]["hook"], "postrouting");
        assert_eq!(chains[0]["type"], "nat");
        assert_eq!(chains[0]["prio"], 100);
        let ours = chain(&att());
        assert!(chains
            .iter()
            .any(|c| c["name"] == ours.as_str() && c.get("hook").is_none()));
        let flushed: Vec<_> = find(&cmds, "flush", "chain")
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(
            flushed,
            vec![Value::from("postrouting"), Value::from(ours.clone())]
        );

        let rules = find(&cmds, "add", "rule");
        let base: Vec<_> = rules
            .iter()
            .filter(|r| r["chain"] == "postrouting")
            .collect();
        assert_eq!(base.len(), 2);
        assert!(base.iter().all(|r| r.get("comment").is_none()));
        let mine: Vec<_> = rules
            .iter()
            .filter(|r| r["chain"] == ours.as_str())
            .collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|r| r["comment"] == "net1/ctr1/eth0"));
        let v4 = mine[0]["expr"].to_string();
        assert!(v4.contains("\"10.88.0.5\""), "{v4}");
        assert!(v4.contains("{\"addr\":\"10.88.0.0\",\"len\":24}"), "{v4}");
        assert!(v4.contains("224.0.0.0"), "{v4}");
        assert!(v4.contains("masquerade"), "{v4}");
        let v6 = mine[1]["expr"].to_string();
        assert!(v6.contains("ff00::"), "{v6}");

        let elems = find(&cmds, "add", "element");
        assert_eq!(elems.len(), 2);
        assert_eq!(elems[0]["name"], "masq4");
        assert_eq!(elems[0]["elem"][0][0]["elem"]["val"], "10.88.0.5");
        assert_eq!(elems[0]["elem"][0][0]["elem"]["comment"], "net1/ctr1/eth0");
        assert_eq!(elems[0]["elem"][0][1]["jump"]["target"], ours.as_str());
        assert_eq!(elems[1]["name"], "masq6");

        // The flush of each chain comes before its rules; elements come last.
        let pos = |pred: &dyn Fn(&Value) -> bool| cmds.iter().position(pred).unwrap();
        let flush_mine = pos(&|c| c["flush"]["chain"]["name"] == ours.as_str());
        let first_rule = pos(&|c| c["add"]["rule"]["chain"] == ours.as_str());
        let first_elem = pos(&|c| c["add"].get("element").is_some());
        assert!(flush_mine < first_rule && first_rule < first_elem);
    }

    #[test]
    fn same_input_same_batch() {
        assert_eq!(batch_cmds(), batch_cmds());
        // And that batch is the one the module documents, written out by
        // hand: a change to any statement, order or name fails here even
        // when the builder stays deterministic. The chain is
        // masq-<first 8 bytes of sha256("net1/ctr1/eth0")>, taken from
        // `printf net1/ctr1/eth0 | sha256sum`.
        let ch = "masq-a68925a4da6e89b7";
        assert_eq!(chain(&att()), ch);
        let t = |extra: Value| {
            let mut o = json!({"family": "inet", "table": TABLE});
            for (k, v) in extra.as_object().unwrap() {
                o[k] = v.clone();
            }
            o
        };
        let m = |proto: &str, field: &str, op: &str, right: Value| {
            json!({"match": {
                "left": {"payload": {"field": field, "protocol": proto}},
                "op": op,
                "right": right
            }})
        };
        let prefix = |addr: &str, len: u8| json!({"prefix": {"addr": addr, "len": len}});
        let elem = |map: &str, val: &str| {
            json!({"add": {"element": t(json!({"name": map, "elem": [[
                {"elem": {"comment": "net1/ctr1/eth0", "counter": null,
                          "expires": null, "timeout": null, "val": val}},
                {"jump": {"target": ch}}
            ]]}))}})
        };
        let expected = [
            json!({"add": {"table": {"family": "inet", "name": "cni_masq"}}}),
            json!({"add": {"map": t(json!({"name": "masq4", "map": "verdict", "type": "ipv4_addr"}))}}),
            json!({"add": {"map": t(json!({"name": "masq6", "map": "verdict", "type": "ipv6_addr"}))}}),
            json!({"add": {"chain": t(json!({"name": "postrouting", "type": "nat",
                "hook": "postrouting", "prio": 100, "policy": "accept"}))}}),
            json!({"flush": {"chain": t(json!({"name": "postrouting"}))}}),
            json!({"add": {"rule": t(json!({"chain": "postrouting", "expr": [{"vmap": {
                "key": {"payload": {"field": "saddr", "protocol": "ip"}}, "data": "@masq4"}}]}))}}),
            json!({"add": {"rule": t(json!({"chain": "postrouting", "expr": [{"vmap": {
                "key": {"payload": {"field": "saddr", "protocol": "ip6"}}, "data": "@masq6"}}]}))}}),
            json!({"add": {"chain": t(json!({"name": ch}))}}),
            json!({"flush": {"chain": t(json!({"name": ch}))}}),
            json!({"add": {"rule": t(json!({"chain": ch, "comment": "net1/ctr1/eth0", "expr": [
                m("ip", "saddr", "==", json!("10.88.0.5")),
                m("ip", "daddr", "!=", prefix("10.88.0.0", 24)),
                m("ip", "daddr", "!=", prefix("224.0.0.0", 4)),
                {"masquerade": null}
            ]}))}}),
            json!({"add": {"rule": t(json!({"chain": ch, "comment": "net1/ctr1/eth0", "expr": [
                m("ip6", "saddr", "==", json!("fd88::5")),
                m("ip6", "daddr", "!=", prefix("fd88::", 64)),
                m("ip6", "daddr", "!=", prefix("ff00::", 8)),
                {"masquerade": null}
            ]}))}}),
            elem("masq4", "10.88.0.5"),
            elem("masq6", "fd88::5"),
        ];
        let got = batch_cmds();
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "command {i}");
        }
    }

    #[test]
    fn mixed_families_are_refused() {
        let bad = [MasqRule {
            ip: "10.0.0.1".parse().unwrap(),
            subnet: "fd00::/64".parse().unwrap(),
        }];
        let e = state(&att(), &bad).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }

    #[test]
    fn duplicate_addresses_give_one_rule_and_one_element() {
        let mut r = rules();
        r.push(r[0]);
        let st = state(&att(), &r).unwrap();
        assert_eq!(st.chains[0].rules.len(), 2);
        assert_eq!(st.elems.len(), 2);
    }

    #[test]
    fn no_rules_leaves_a_tagged_placeholder() {
        let st = state(&att(), &[]).unwrap();
        assert_eq!(st.chains[0].rules.len(), 1);
        assert!(st.elems.is_empty());
    }
}
