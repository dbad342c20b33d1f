//! IP addresses on links.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::AddressMessageBuilder;

use crate::error::Result;
use crate::handle::Netlink;
use crate::socket::Transport;

fn message(index: u32, net: IpNetwork) -> AddressMessage {
    match net {
        IpNetwork::V4(n) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(n.ip(), n.prefix())
            .build(),
        IpNetwork::V6(n) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(n.ip(), n.prefix())
            .build(),
    }
}

/// The address of one dump entry: `IFA_LOCAL` (the own address, also on
/// point-to-point links) or else `IFA_ADDRESS`, with the prefix length.
fn network_of(msg: &AddressMessage) -> Option<IpNetwork> {
    let mut address: Option<IpAddr> = None;
    let mut local: Option<IpAddr> = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    IpNetwork::new(local.or(address)?, msg.header.prefix_len).ok()
}

impl<T: Transport> Netlink<T> {
    /// `ip addr add <net> dev <index>`; `net` keeps its host bits
    /// (10.0.0.5/24 is address 10.0.0.5 in 10.0.0.0/24). Fails with
    /// [`crate::Error::is_exists`] when the address is already there.
    pub fn add_address(&self, index: u32, net: IpNetwork) -> Result<()> {
        let msg = message(index, net);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add address {net} to link {index}"),
        )
        .map(drop)
    }

    /// The addresses of link `index`, both families, in kernel order
    /// (including IPv6 link-local ones).
    pub fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>> {
        // The index in the request header lets the kernel dump only this
        // link's addresses (the socket asks for strict checking), not every
        // address of the namespace (one IPv6 link-local per host veth); the
        // filter below still applies when the kernel ignores it.
        let mut query = AddressMessage::default();
        query.header.index = index;
        let msgs = self.request(
            RouteNetlinkMessage::GetAddress(query),
            NLM_F_DUMP,
            format!("list addresses of link {index}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => network_of(a),
                _ => None,
            })
            .collect())
    }

    /// `ip addr del <net> dev <index>`; a missing address gives
    /// [`crate::Error::is_not_found`] (EADDRNOTAVAIL).
    pub fn del_address(&self, index: u32, net: IpNetwork) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(message(index, net)),
            0,
            format!("delete address {net} from link {index}"),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keeps_host_bits_and_reads_back() {
        let net: IpNetwork = "10.0.0.5/24".parse().expect("net");
        let msg = message(3, net);
        assert_eq!(msg.header.index, 3);
        assert_eq!(msg.header.prefix_len, 24);
        assert_eq!(network_of(&msg), Some(net));
        let net6: IpNetwork = "fd00::5/64".parse().expect("net");
        assert_eq!(network_of(&message(3, net6)), Some(net6));
    }
}
