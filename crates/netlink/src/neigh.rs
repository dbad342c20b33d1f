//! Neighbour (ARP / NDP) entries and bridge-family FDB entries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::handle::Netlink;
use crate::link::format_mac;
use crate::socket::Transport;

/// `NUD_PERMANENT`.
const NUD_PERMANENT: u16 = 0x80;

/// An IPv4 ARP or IPv6 NDP entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// `NUD_*` bits.
    pub state: u16,
}

impl Neighbour {
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

/// A forwarding-database entry (`bridge fdb`), e.g. a VXLAN remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub index: u32,
    pub mac: [u8; 6],
    /// The remote tunnel endpoint (VXLAN `dst`).
    pub dst: Option<IpAddr>,
    pub vni: Option<u32>,
    /// The entry belongs to the device itself (`self`, `NTF_SELF`) rather
    /// than to its bridge.
    pub is_self: bool,
    /// Index of the bridge whose table holds the entry (`master`).
    pub master: Option<u32>,
    /// `NUD_*` bits.
    pub state: u16,
}

impl FdbEntry {
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

fn mac_of(bytes: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(bytes).ok()
}

fn ip_of(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(ip) => Some((*ip).into()),
        NeighbourAddress::Inet6(ip) => Some((*ip).into()),
        // Bridge-family entries carry the raw address bytes.
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice())
                .ok()
                .map(|a| Ipv4Addr::from(a).into()),
            16 => <[u8; 16]>::try_from(b.as_slice())
                .ok()
                .map(|a| Ipv6Addr::from(a).into()),
            _ => None,
        },
        _ => None,
    }
}

fn neighbour_of(msg: &NeighbourMessage) -> Option<Neighbour> {
    if !matches!(
        msg.header.family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(a) => ip = ip_of(a),
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
            _ => {}
        }
    }
    Some(Neighbour {
        index: msg.header.ifindex,
        ip: ip?,
        mac,
        state: u16::from(msg.header.state),
    })
}

fn fdb_of(msg: &NeighbourMessage) -> Option<FdbEntry> {
    if msg.header.family != AddressFamily::Bridge {
        return None;
    }
    let mut mac = None;
    let mut entry = FdbEntry {
        index: msg.header.ifindex,
        mac: [0; 6],
        dst: None,
        vni: None,
        is_self: msg.header.flags.contains(NeighbourFlags::Own),
        master: None,
        state: u16::from(msg.header.state),
    };
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
            NeighbourAttribute::Destination(a) => entry.dst = ip_of(a),
            NeighbourAttribute::Vni(v) => entry.vni = Some(*v),
            NeighbourAttribute::Controller(m) => entry.master = Some(*m),
            _ => {}
        }
    }
    entry.mac = mac?;
    Some(entry)
}

impl<T: Transport> Netlink<T> {
    /// `ip neigh replace <ip> lladdr <mac> dev <index> nud permanent`.
    pub fn add_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            format!(
                "replace neighbour {ip} lladdr {} on link {index}",
                format_mac(&mac)
            ),
        )
        .map(drop)
    }

    /// `ip neigh del <ip> dev <index>`; a missing entry gives
    /// [`crate::Error::is_not_found`].
    pub fn del_neighbour(&self, index: u32, ip: IpAddr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        self.request(
            RouteNetlinkMessage::DelNeighbour(msg),
            0,
            format!("delete neighbour {ip} on link {index}"),
        )
        .map(drop)
    }

    /// The ARP and NDP entries of link `index`, any state.
    pub fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            NLM_F_DUMP,
            format!("list neighbours of link {index}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neighbour_of(n),
                _ => None,
            })
            .filter(|n| n.index == index)
            .collect())
    }

    /// `bridge fdb replace <mac> dev <index> dst <dst> self permanent`:
    /// the device's own entry (e.g. VXLAN: frames to `mac` go to VTEP `dst`).
    pub fn add_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            format!("replace fdb {} dst {dst} on link {index}", format_mac(&mac)),
        )
        .map(drop)
    }

    /// `bridge fdb del <mac> dev <index> [dst <dst>] self`: with `dst`, only
    /// that remote of the entry goes; without, the whole entry. A missing
    /// entry gives [`crate::Error::is_not_found`].
    pub fn del_fdb(&self, index: u32, mac: [u8; 6], dst: Option<IpAddr>) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        if let Some(ip) = dst {
            msg.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        }
        self.request(
            RouteNetlinkMessage::DelNeighbour(msg),
            0,
            format!("delete fdb {} on link {index}", format_mac(&mac)),
        )
        .map(drop)
    }

    /// The FDB entries reported for link `index` (its own and, for a bridge
    /// port, its bridge's).
    pub fn fdb_entries(&self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut query = NeighbourMessage::default();
        query.header.family = AddressFamily::Bridge;
        let msgs = self.request(
            RouteNetlinkMessage::GetNeighbour(query),
            NLM_F_DUMP,
            format!("list fdb of link {index}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => fdb_of(n),
                _ => None,
            })
            .filter(|e| e.index == index)
            .collect())
    }
}
