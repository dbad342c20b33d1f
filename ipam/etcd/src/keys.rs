//! Where everything lives in etcd, under `<prefix>/<network>/`:
//!
//! | key | value |
//! |---|---|
//! | `pool` | the pool's definition ([`PoolRecord`](crate::model::PoolRecord)), written by the first claim; every node must match it |
//! | `claims/<block>` | the node that owns the block (created if absent: that is the claim) |
//! | `blocks/<node>/<block>` | the block's allocations ([`Block`](crate::model::Block)) |
//! | `handles/<node>/<container id>/<ifname>` | one attachment's addresses ([`HandleRecord`](crate::model::HandleRecord)) |
//!
//! `<block>` is the block's network address and prefix with `-` for `/`
//! (`10.80.0.64-26`, `fd80::40-122`). A node's blocks and handles sit under
//! their own prefixes, so an ADD reads exactly this node's blocks in one range
//! read, and GC lists exactly this node's handles.

use std::net::IpAddr;

use cni::Cidr;

/// The keys of one network's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `<prefix>/<network>/`, always with exactly one `/` between parts.
    root: String,
}

/// A block's name in keys: `10.80.0.64-26`.
pub fn block_id(block: &Cidr) -> String {
    format!("{}-{}", block.ip(), block.prefix())
}

/// The block a [`block_id`] names, `None` when it names none.
pub fn parse_block_id(id: &str) -> Option<Cidr> {
    let (ip, prefix) = id.rsplit_once('-')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let cidr = Cidr::new(ip, prefix).ok()?;
    (cidr.network() == ip).then_some(cidr)
}

impl Keys {
    /// `prefix` as configured (`/cni-ipam`; a trailing `/` is dropped, a
    /// leading one added).
    pub fn new(prefix: &str, network: &str) -> Keys {
        let prefix = prefix.trim_end_matches('/');
        let lead = if prefix.starts_with('/') { "" } else { "/" };
        Keys {
            root: format!("{lead}{prefix}/{network}/"),
        }
    }

    /// `<prefix>/<network>/`: every key of the network.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn pool(&self) -> String {
        format!("{}pool", self.root)
    }

    pub fn claims(&self) -> String {
        format!("{}claims/", self.root)
    }

    pub fn claim(&self, block: &Cidr) -> String {
        format!("{}claims/{}", self.root, block_id(block))
    }

    /// Every block of every node.
    pub fn blocks(&self) -> String {
        format!("{}blocks/", self.root)
    }

    pub fn node_blocks(&self, node: &str) -> String {
        format!("{}blocks/{node}/", self.root)
    }

    pub fn block(&self, node: &str, block: &Cidr) -> String {
        format!("{}blocks/{node}/{}", self.root, block_id(block))
    }

    /// Every handle of every node.
    pub fn handles(&self) -> String {
        format!("{}handles/", self.root)
    }

    pub fn node_handles(&self, node: &str) -> String {
        format!("{}handles/{node}/", self.root)
    }

    pub fn handle(&self, node: &str, container_id: &str, ifname: &str) -> String {
        format!("{}handles/{node}/{container_id}/{ifname}", self.root)
    }

    /// `(node, block)` of a key under [`Keys::blocks`].
    pub fn parse_block_key(&self, key: &str) -> Option<(String, Cidr)> {
        let rest = key.strip_prefix(&self.blocks())?;
        let (node, id) = rest.split_once('/')?;
        Some((node.to_string(), parse_block_id(id)?))
    }

    /// The block a key under [`Keys::claims`] names.
    pub fn parse_claim_key(&self, key: &str) -> Option<Cidr> {
        parse_block_id(key.strip_prefix(&self.claims())?)
    }
}

/// The end of a prefix range: `prefix` with its last byte incremented, as
/// etcd's `--prefix` reads compute it.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/cni-ipam/", "net1");
        assert_eq!(k.root(), "/cni-ipam/net1/");
        assert_eq!(Keys::new("cni-ipam", "net1"), k);
        let b: Cidr = "10.80.0.64/26".parse().unwrap();
        assert_eq!(k.pool(), "/cni-ipam/net1/pool");
        assert_eq!(k.claim(&b), "/cni-ipam/net1/claims/10.80.0.64-26");
        assert_eq!(k.block("n1", &b), "/cni-ipam/net1/blocks/n1/10.80.0.64-26");
        assert_eq!(
            k.handle("n1", "ctr", "eth0"),
            "/cni-ipam/net1/handles/n1/ctr/eth0"
        );
        assert_eq!(k.node_handles("n1"), "/cni-ipam/net1/handles/n1/");
        assert_eq!(
            k.parse_block_key("/cni-ipam/net1/blocks/n1/10.80.0.64-26"),
            Some(("n1".to_string(), b))
        );
        assert_eq!(k.parse_claim_key(&k.claim(&b)), Some(b));
    }

    #[test]
    fn block_ids_round_trip_and_reject_host_bits() {
        for s in ["10.80.0.64/26", "fd80::40/122", "10.0.0.0/32"] {
            let c: Cidr = s.parse().unwrap();
            assert_eq!(parse_block_id(&block_id(&c)), Some(c), "{s}");
        }
        assert_eq!(block_id(&"fd80::40/122".parse().unwrap()), "fd80::40-122");
        for bad in ["10.80.0.65-26", "10.80.0.64", "x-26", "10.80.0.64-33", ""] {
            assert_eq!(parse_block_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
