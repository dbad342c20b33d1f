//! What the kernel must hold for the other nodes: per peer a route to its
//! subnet and, over VXLAN, the neighbour entry of its VTEP address and the
//! FDB entry that sends its VTEP MAC to its underlay address. Pure: the
//! kernel worker diffs this against what it lists.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cni::Cidr;
use overlay_core::{vtep_address, NodeRecord};

/// How packets to one peer's subnet leave this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Encapsulated: `subnet via <its VTEP address> dev <vxlan> onlink`,
    /// neighbour `<VTEP address> -> <VTEP MAC>`, FDB `<VTEP MAC> -> <underlay>`.
    Vxlan {
        vtep_ip: IpAddr,
        mac: [u8; 6],
        underlay: IpAddr,
    },
    /// Same L2 segment with `directRouting`: `subnet via <underlay> dev <underlay dev>`.
    Direct { via: IpAddr },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub subnet: Cidr,
    pub path: Path,
}

/// This node's view: its name and underlay network (for direct routing).
#[derive(Debug, Clone)]
pub struct Me {
    pub node: String,
    /// The underlay address with its prefix (`192.168.100.2/24`).
    pub underlay: Cidr,
    pub direct_routing: bool,
}

/// The desired peers from the records in etcd, by subnet. A record that
/// names this node, or whose MAC doesn't parse, is left out (and the latter
/// reported by the caller).
pub fn desired(
    me: &Me,
    records: &BTreeMap<Cidr, NodeRecord>,
) -> (BTreeMap<Cidr, Peer>, Vec<String>) {
    let mut peers = BTreeMap::new();
    let mut bad = Vec::new();
    for (subnet, r) in records {
        if r.node == me.node {
            continue;
        }
        let same_segment = me.direct_routing
            && me.underlay.is_ipv4() == r.public_ip.is_ipv4()
            && ipnetwork::IpNetwork::new(me.underlay.network(), me.underlay.prefix())
                .is_ok_and(|n| n.contains(r.public_ip));
        let path = if same_segment {
            Path::Direct { via: r.public_ip }
        } else {
            match r.mac() {
                Ok(mac) => Path::Vxlan {
                    vtep_ip: vtep_address(subnet),
                    mac,
                    underlay: r.public_ip,
                },
                Err(e) => {
                    bad.push(format!("node {} ({subnet}): {}", r.node, e.msg));
                    continue;
                }
            }
        };
        peers.insert(
            *subnet,
            Peer {
                node: r.node.clone(),
                subnet: *subnet,
                path,
            },
        );
    }
    (peers, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node: &str, ip: &str, subnet: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            public_ip: ip.parse().unwrap(),
            vtep_mac: "0a:00:00:00:00:01".into(),
            subnet: subnet.parse().unwrap(),
            since: 0,
        }
    }

    #[test]
    fn vxlan_peers_direct_peers_and_self() {
        let records: BTreeMap<Cidr, NodeRecord> = [
            rec("me", "192.168.100.2", "10.244.1.0/24"),
            rec("near", "192.168.100.3", "10.244.2.0/24"),
            rec("far", "192.168.200.3", "10.244.3.0/24"),
        ]
        .into_iter()
        .map(|r| (r.subnet, r))
        .collect();
        let mut me = Me {
            node: "me".into(),
            underlay: "192.168.100.2/24".parse().unwrap(),
            direct_routing: false,
        };
        let (peers, bad) = desired(&me, &records);
        assert!(bad.is_empty());
        assert_eq!(peers.len(), 2, "not ourselves");
        let near = &peers[&"10.244.2.0/24".parse().unwrap()];
        assert_eq!(
            near.path,
            Path::Vxlan {
                vtep_ip: "10.244.2.0".parse().unwrap(),
                mac: [0x0a, 0, 0, 0, 0, 1],
                underlay: "192.168.100.3".parse().unwrap()
            }
        );
        me.direct_routing = true;
        let (peers, _) = desired(&me, &records);
        assert_eq!(
            peers[&"10.244.2.0/24".parse().unwrap()].path,
            Path::Direct {
                via: "192.168.100.3".parse().unwrap()
            }
        );
        assert!(
            matches!(
                peers[&"10.244.3.0/24".parse().unwrap()].path,
                Path::Vxlan { .. }
            ),
            "another segment stays encapsulated"
        );
    }

    #[test]
    fn a_bad_mac_is_reported_not_programmed() {
        let mut r = rec("x", "192.168.100.9", "10.244.9.0/24");
        r.vtep_mac = "nonsense".into();
        let records = [(r.subnet, r)].into();
        let me = Me {
            node: "me".into(),
            underlay: "192.168.100.2/24".parse().unwrap(),
            direct_routing: false,
        };
        let (peers, bad) = desired(&me, &records);
        assert!(peers.is_empty());
        assert_eq!(bad.len(), 1);
    }
}
