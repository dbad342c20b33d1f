//! What the keys of [`keys`](crate::keys) hold: JSON documents small enough to
//! rewrite in every transaction, readable with `etcdctl get`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cni::{Cidr, Error};
use serde::{Deserialize, Serialize};

/// A block: its allocations, by address, each naming the handle that holds
/// it (`<node>/<container id>/<ifname>`, the handle key below `handles/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: Cidr,
    /// The node that claimed it (also in its key and its claim).
    pub node: String,
    #[serde(default)]
    pub allocations: BTreeMap<IpAddr, String>,
}

/// One attachment's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleRecord {
    pub node: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub ips: Vec<HandleIp>,
}

/// One address of a handle, with the block it was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleIp {
    /// With the range's prefix length, as the result reports it.
    pub address: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The owner of the block (the block key is `blocks/<owner>/<block>`).
    pub owner: String,
    pub block: Cidr,
}

impl HandleRecord {
    /// The id blocks record for this handle: `<node>/<container id>/<ifname>`.
    pub fn id(&self) -> String {
        handle_id(&self.node, &self.container_id, &self.ifname)
    }
}

pub fn handle_id(node: &str, container_id: &str, ifname: &str) -> String {
    format!("{node}/{container_id}/{ifname}")
}

/// The pool's definition as every node must see it: ranges with their
/// defaults resolved, block sizes, exclusions. Stored once (by the first
/// claim) and compared byte for byte: two nodes that cut the pool into blocks
/// differently would hand out the same address twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRecord {
    pub sets: Vec<SetRecord>,
    #[serde(default)]
    pub exclude: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRecord {
    pub ranges: Vec<RangeRecord>,
    pub block_size: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub subnet: Cidr,
    pub start: IpAddr,
    pub end: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A value read from etcd that does not parse: someone wrote it by hand, or
/// another version did. Never guessed at (code 100, naming the key).
pub fn corrupt(key: &str, e: impl std::fmt::Display) -> Error {
    Error::plugin(format!("etcd-ipam: {key} holds no valid record: {e}"))
}

pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail (string keys, no maps with
    // non-string keys other than IpAddr, which serializes as a string).
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_json_is_readable_and_round_trips() {
        let mut b = Block {
            cidr: "10.80.0.0/26".parse().unwrap(),
            node: "n1".into(),
            allocations: BTreeMap::new(),
        };
        b.allocations
            .insert("10.80.0.2".parse().unwrap(), "n1/ctr/eth0".into());
        let json = String::from_utf8(encode(&b)).unwrap();
        assert_eq!(
            json,
            r#"{"cidr":"10.80.0.0/26","node":"n1","allocations":{"10.80.0.2":"n1/ctr/eth0"}}"#
        );
        assert_eq!(decode::<Block>("k", json.as_bytes()).unwrap(), b);
    }

    #[test]
    fn handle_json_and_id() {
        let h = HandleRecord {
            node: "n1".into(),
            container_id: "ctr".into(),
            ifname: "eth0".into(),
            ips: vec![HandleIp {
                address: "10.80.0.2/16".parse().unwrap(),
                gateway: Some("10.80.0.1".parse().unwrap()),
                owner: "n1".into(),
                block: "10.80.0.0/26".parse().unwrap(),
            }],
        };
        assert_eq!(h.id(), "n1/ctr/eth0");
        let json = String::from_utf8(encode(&h)).unwrap();
        assert_eq!(
            json,
            r#"{"node":"n1","containerID":"ctr","ifname":"eth0","ips":[{"address":"10.80.0.2/16","gateway":"10.80.0.1","owner":"n1","block":"10.80.0.0/26"}]}"#
        );
        assert_eq!(decode::<HandleRecord>("k", json.as_bytes()).unwrap(), h);
    }

    #[test]
    fn garbage_is_a_plugin_error_naming_the_key() {
        let e = decode::<Block>("/p/n/blocks/x", b"{not json").unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::PLUGIN);
        assert!(e.msg.contains("/p/n/blocks/x"), "{}", e.msg);
    }
}
