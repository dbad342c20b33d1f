//! The bridge's `macspoofchk`: frames entering the bridge from a container's
//! host-side veth with a source MAC other than the container's are dropped.
//!
//! Table `bridge cni_spoofchk`: base chain `prerouting` (filter, hook
//! prerouting, prio -300) dispatches by input port through map `ports`
//! (ifname : verdict) to the attachment's chain `spoof-<h>`:
//! `ether saddr MAC return`, `drop` (both commented with the tag).

use nftables::expr::MetaKey;
use nftables::stmt::Statement;
use nftables::types::{NfChainType, NfFamily, NfHook};
use serde_json::json;

use crate::build::{eq, meta, payload, s, vmap, Hook};
use crate::engine::{chain_name, AttChain, AttElem, AttState, FixedChain, Layout, MapDef};
use crate::error::{Error, Result};
use crate::{keep_tags, network_prefix, Attachment};

/// The table (family `bridge`).
pub const TABLE: &str = "cni_spoofchk";
const CHAIN_PREFIX: &str = "spoof-";
/// Linux interface names are at most 15 bytes.
const MAX_IFNAME: usize = 15;

pub(crate) fn layout() -> Layout {
    Layout {
        what: "spoof check",
        family: NfFamily::Bridge,
        table: TABLE,
        maps: vec![MapDef {
            name: "ports",
            key_type: json!("ifname"),
        }],
        chains: vec![FixedChain {
            name: "prerouting",
            hook: Some(Hook {
                kind: NfChainType::Filter,
                hook: NfHook::Prerouting,
                prio: -300,
            }),
            rules: vec![vec![vmap(meta(MetaKey::Iifname), "ports")]],
        }],
        att_prefixes: &[CHAIN_PREFIX],
    }
}

/// The attachment's chain name.
pub fn chain(att: &Attachment) -> String {
    chain_name(CHAIN_PREFIX, &att.tag())
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn state(att: &Attachment, host_ifname: &str, mac: [u8; 6]) -> Result<AttState> {
    let tag = att.tag();
    if host_ifname.is_empty() || host_ifname.len() > MAX_IFNAME {
        return Err(Error::invalid(
            format!("spoof check for {tag}"),
            format!("invalid host interface name {host_ifname:?}"),
        ));
    }
    let chain = chain_name(CHAIN_PREFIX, &tag);
    Ok(AttState {
        chains: vec![AttChain {
            name: chain.clone(),
            rules: vec![
                vec![
                    eq(payload("ether", "saddr"), s(mac_string(mac))),
                    Statement::Return(None),
                ],
                vec![Statement::Drop(None)],
            ],
        }],
        elems: vec![AttElem {
            map: "ports",
            key: s(host_ifname),
            chain,
        }],
        tag,
    })
}

/// Drops frames from `host_ifname` whose source MAC is not `mac`. Idempotent;
/// one netlink batch when our table exists (see the crate docs for the
/// other cases).
pub fn add(att: &Attachment, host_ifname: &str, mac: [u8; 6]) -> Result<()> {
    layout().add(&state(att, host_ifname, mac)?)
}

/// Removes the attachment's check; Ok when already gone.
pub fn del(att: &Attachment) -> Result<()> {
    layout().del(&att.tag(), &[chain(att)])
}

/// Err (with [`Error::is_mismatch`]) if anything is missing or different.
pub fn check(att: &Attachment, host_ifname: &str, mac: [u8; 6]) -> Result<()> {
    layout().check(&state(att, host_ifname, mac)?)
}

/// Removes `network`'s attachments that are not in `keep`; returns how many.
pub fn gc(network: &str, keep: &[(String, String)]) -> Result<usize> {
    layout().gc(&network_prefix(network), &keep_tags(network, keep))
}

/// Whether ADD would work (`nft -c`, nothing applied).
pub fn probe() -> Result<()> {
    layout().probe()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment<'static> {
        Attachment {
            network: "net1",
            container_id: "ctr1",
            ifname: "eth0",
        }
    }

    #[test]
    fn batch_has_bridge_table_dispatch_and_tagged_rules() {
        let st = state(&att(), "veth1234", [0x0a, 0x58, 0, 0, 0, 5]).unwrap();
        let cmds = layout().add_batch(&st).commands().to_vec();
        let table = &cmds[0]["add"]["table"];
        assert_eq!(table["family"], "bridge");
        assert_eq!(table["name"], TABLE);
        let rules: Vec<_> = cmds.iter().filter_map(|c| c["add"].get("rule")).collect();
        let mine: Vec<_> = rules
            .iter()
            .filter(|r| r["chain"] == chain(&att()).as_str())
            .collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|r| r["comment"] == "net1/ctr1/eth0"));
        assert!(mine[0]["expr"].to_string().contains("0a:58:00:00:00:05"));
        assert_eq!(mine[1]["expr"], json!([{"drop": null}]));
        let elem = cmds.iter().find_map(|c| c["add"].get("element")).unwrap();
        assert_eq!(elem["name"], "ports");
        assert_eq!(elem["elem"][0][0]["elem"]["val"], "veth1234");
    }

    #[test]
    fn bad_interface_names_are_refused() {
        assert!(state(&att(), "", [0; 6]).is_err());
        assert!(state(&att(), "a-very-long-interface-name", [0; 6]).is_err());
    }
}
