//! Our nftables rule sets — the bridge's IP masquerade ([`masq`]) and MAC
//! spoof check ([`spoofchk`]), and the port mappings of the portmap plugin
//! ([`portmap`]) — each change applied as ONE atomic batch: in-process over
//! netlink on the hot paths (ADD on a node where our table exists, DEL), as a
//! JSON batch through the `nft` binary (`nft -j -f -`, Debian package
//! `nftables`) otherwise, built with the `nftables` crate's types. The JSON
//! form is the reference: the netlink path sends the bytecode `nft` would
//! send for it (tested byte for byte against `nft --debug=netlink`).
//!
//! Rules go into the network namespace of the calling thread (plugins run in
//! the node's namespace). We only ever write and read our own tables:
//!
//! | table | contents |
//! |---|---|
//! | `inet cni_masq` | maps `masq4` (ipv4_addr : verdict), `masq6` (ipv6_addr : verdict); base chain `postrouting` (nat, hook postrouting, prio srcnat 100): `ip saddr vmap @masq4`, `ip6 saddr vmap @masq6`; per attachment `masq-<h>`: per address `ip saddr A ip daddr != SUBNET ip daddr != 224.0.0.0/4 masquerade` (v6: `ff00::/8`) |
//! | `bridge cni_spoofchk` | map `ports` (ifname : verdict); base chain `prerouting` (filter, hook prerouting, prio -300): `iifname vmap @ports`; per attachment `spoof-<h>`: `ether saddr MAC return`, `drop` |
//! | `inet cni_portmap` | see [`portmap`] |
//!
//! `<h>` is 16 hex chars of sha256 of the attachment's [tag](Attachment::tag);
//! every rule in a per-attachment chain and every map element leading to it
//! carries the tag as its comment, so DEL and GC find what an attachment owns
//! without knowing its addresses (the container may be long gone).
//!
//! Cost per operation: ADD = one netlink batch (chains, rules, elements, all
//! new) when the table exists, else one `nft` run that creates the table and
//! refills the fixed chains (the first ADD on a node, a re-ADD of the same
//! attachment). DEL = a rule dump, one element dump per map and one batch
//! over netlink (through `nft` if netlink is refused); while a
//! [`park_sockets`] guard lives, the wait for the kernel to free the deleted
//! rules falls on a forked child, not on the plugin. GC = one
//! `nft -j list table` + one batch. CHECK = one listing. `CNI_RS_NFT_EXEC=1`
//! sends every change through `nft`. Where each of these messages is sent
//! from: the crate's README.

mod build;
mod engine;
mod error;
mod exec;
mod listing;
mod nl;
mod plan;

pub mod masq;
pub mod portmap;
pub mod spoofchk;

use sha2::{Digest, Sha256};

pub use error::{Error, ErrorKind, Result};
pub use exec::nft_path;
pub use nl::{netlink_batches, park_sockets, Parked};

/// nft's limit for a comment is 128 bytes including the terminating NUL.
pub const MAX_TAG_LEN: usize = 127;

/// The longest network name kept readable in tags; longer ones are hashed.
const MAX_READABLE_NETWORK: usize = 64;

fn hex_sha256(s: &str, chars: usize) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..chars]
        .to_string()
}

/// Who owns a set of rules: the CNI attachment (network, container, ifname).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attachment<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

/// The start of every tag of `network`'s attachments: `"<network>/"`, or
/// `"#<16 hex of sha256(network)>/"` for a network name that is long or
/// contains `/` or starts with `#` (CNI names can't, but we don't rely on it).
pub fn network_prefix(network: &str) -> String {
    if network.len() <= MAX_READABLE_NETWORK && !network.contains('/') && !network.starts_with('#')
    {
        format!("{network}/")
    } else {
        format!("#{}/", hex_sha256(network, 16))
    }
}

impl Attachment<'_> {
    /// The owner tag written as comment on every rule and map element of this
    /// attachment: `"<network>/<containerID>/<ifname>"` when that fits in
    /// [`MAX_TAG_LEN`] bytes, else `network_prefix(network)` + `"#"` + 32 hex
    /// chars of sha256 over the readable form. Always starts with
    /// [`network_prefix`], which is how GC tells a network's tags apart.
    pub fn tag(&self) -> String {
        let prefix = network_prefix(self.network);
        let readable = format!("{}/{}/{}", self.network, self.container_id, self.ifname);
        let unambiguous = !self.container_id.contains('/') && !self.ifname.contains('/');
        if readable.len() <= MAX_TAG_LEN && readable.starts_with(&prefix) && unambiguous {
            readable
        } else {
            // Hash over the three parts with a separator none of them can
            // forge, so different attachments never share a tag.
            let full = format!(
                "{}\u{0}{}\u{0}{}",
                self.network, self.container_id, self.ifname
            );
            format!("{prefix}#{}", hex_sha256(&full, 32))
        }
    }
}

/// The tags of the attachments to keep in a GC of `network`.
pub(crate) fn keep_tags(
    network: &str,
    keep: &[(String, String)],
) -> std::collections::BTreeSet<String> {
    keep.iter()
        .map(|(cid, ifname)| {
            Attachment {
                network,
                container_id: cid,
                ifname,
            }
            .tag()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att<'a>(n: &'a str, c: &'a str, i: &'a str) -> Attachment<'a> {
        Attachment {
            network: n,
            container_id: c,
            ifname: i,
        }
    }

    #[test]
    fn short_tags_are_readable() {
        assert_eq!(att("podman", "ctr1", "eth0").tag(), "podman/ctr1/eth0");
        let cid = "a".repeat(64);
        let t = att("cni-podman0", &cid, "eth0").tag();
        assert_eq!(t, format!("cni-podman0/{cid}/eth0"));
        assert!(t.len() <= MAX_TAG_LEN);
    }

    #[test]
    fn long_tags_are_hashed_deterministically_and_keep_the_network() {
        let cid = "b".repeat(120);
        let t = att("net1", &cid, "eth0").tag();
        assert!(t.len() <= MAX_TAG_LEN, "{t}");
        assert!(t.starts_with("net1/#"), "{t}");
        assert_eq!(t, att("net1", &cid, "eth0").tag());
        assert_ne!(t, att("net1", &cid, "eth1").tag());
        assert_ne!(t, att("net2", &cid, "eth0").tag());
    }

    #[test]
    fn long_network_names_are_hashed_in_the_prefix() {
        let net = "n".repeat(100);
        let t = att(&net, "c", "eth0").tag();
        assert!(t.len() <= MAX_TAG_LEN, "{t}");
        assert!(t.starts_with(&network_prefix(&net)));
        assert!(t.starts_with('#'));
        // Exactly at the readable limit the name stays readable.
        let net64 = "m".repeat(64);
        assert_eq!(att(&net64, "c", "eth0").tag(), format!("{net64}/c/eth0"));
    }

    #[test]
    fn a_network_prefix_is_never_a_prefix_of_another_networks_tags() {
        // "net" must not claim "net1"'s attachments.
        let t = att("net1", "c", "eth0").tag();
        assert!(!t.starts_with(&network_prefix("net")));
        assert!(t.starts_with(&network_prefix("net1")));
        let long = att("net1", &"x".repeat(200), "eth0").tag();
        assert!(!long.starts_with(&network_prefix("net")));
    }

    #[test]
    fn slashes_can_not_forge_another_attachments_tag() {
        let a = att("n", "a/b", "c").tag();
        let b = att("n", "a", "b/c").tag();
        assert_ne!(a, b);
        assert!(a.starts_with("n/#"));
    }

    #[test]
    fn keep_tags_match_attachment_tags() {
        let keep = keep_tags("n", &[("c1".into(), "eth0".into())]);
        assert!(keep.contains(&att("n", "c1", "eth0").tag()));
        assert_eq!(keep.len(), 1);
    }
}
