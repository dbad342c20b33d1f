//! Creating links: bridge, veth pair (peer born in another namespace), vxlan.
//!
//! Every created link comes up administratively up, except a veth's peer,
//! which the caller configures inside its namespace and brings up itself.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::link::{validate_ifname, Link};
use crate::netns::Netns;
use crate::socket::Transport;

/// A Linux bridge to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub vlan_filtering: Option<bool>,
}

impl BridgeSpec {
    pub fn new(name: impl Into<String>) -> BridgeSpec {
        BridgeSpec {
            name: name.into(),
            ..BridgeSpec::default()
        }
    }
}

/// A veth pair: this side stays in the socket's namespace, the peer is created
/// directly inside `peer.netns`.
#[derive(Debug)]
pub struct VethSpec<'a> {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// Bridge to attach this side to at creation.
    pub master: Option<u32>,
    pub peer: VethPeer<'a>,
}

/// The far end of a veth pair.
#[derive(Debug)]
pub struct VethPeer<'a> {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub netns: &'a Netns,
}

/// A VXLAN device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    /// Source address of the encapsulated packets (IPv4 or IPv6).
    pub local: Option<IpAddr>,
    /// UDP destination port (the kernel's default is 8472; IANA's is 4789).
    pub port: Option<u16>,
    /// Underlay device index.
    pub underlay: Option<u32>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// Learn remote MACs from received packets (off for a programmed overlay).
    pub learning: bool,
}

fn common<T>(
    mut b: LinkMessageBuilder<T>,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
) -> LinkMessageBuilder<T> {
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = mac {
        b = b.address(mac.to_vec());
    }
    b
}

impl<T: Transport> Netlink<T> {
    /// Sends an `RTM_NEWLINK` create request with `NLM_F_ECHO` and returns the
    /// link the kernel echoes back (kernels since 6.3 echo it; older ones
    /// answer with the bare ack, then `None`). The echo describes the link
    /// as registered and configured, before a master given in the request is
    /// set.
    fn add_link(&self, msg: LinkMessage, op: &str) -> Result<Option<Link>> {
        let answers = self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            op,
        )?;
        Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
            _ => None,
        }))
    }

    /// The link just created: the echo when it names it, else read back
    /// (it vanishing meanwhile is ENODEV).
    fn created(&self, echoed: Option<Link>, name: &str, op: &str) -> Result<Link> {
        match echoed {
            Some(link) if link.name == name => Ok(link),
            _ => self.require_link(name).map_err(|e| e.within(op)),
        }
    }

    /// Creates a bridge (admin up). Fails with [`Error::is_exists`] when any
    /// link of that name exists.
    ///
    /// `vlan_filtering: Some(false)` is the kernel's default and is not sent
    /// (kernels built without bridge VLAN filtering refuse the attribute
    /// whatever its value, with EOPNOTSUPP).
    pub fn create_bridge(&self, spec: &BridgeSpec) -> Result<Link> {
        validate_ifname(&spec.name)?;
        let op = format!("create bridge {}", spec.name);
        let mut b = common(LinkBridge::new(&spec.name), spec.mtu, spec.mac);
        if spec.vlan_filtering == Some(true) {
            b = b.vlan_filtering(true);
        }
        let echoed = self.add_link(b.build(), &op)?;
        self.created(echoed, &spec.name, &op)
    }

    /// Returns the bridge called `spec.name`, creating it when missing.
    ///
    /// An existing bridge is brought up and gets `vlan_filtering` changed when
    /// the spec sets it to another value; its MTU and MAC are left alone. A link of that name that
    /// is not a bridge is an error of kind [`crate::ErrorKind::WrongKind`].
    /// Safe against a concurrent creator (EEXIST falls back to the look-up).
    pub fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<Link> {
        validate_ifname(&spec.name)?;
        let op = format!("ensure bridge {}", spec.name);
        let existing = match self.link_by_name(&spec.name)? {
            Some(link) => link,
            None => match self.create_bridge(spec) {
                Ok(link) => return Ok(link),
                Err(e) if e.is_exists() => self.created(None, &spec.name, &op)?,
                Err(e) => return Err(e),
            },
        };
        if !existing.is_kind("bridge") {
            return Err(Error::wrong_kind(
                self.ctx(&op),
                format!(
                    "link {} exists and is a {}, not a bridge",
                    existing.name,
                    existing.kind.as_deref().unwrap_or("device without kind")
                ),
            ));
        }
        let current = existing.vlan_filtering.unwrap_or(false);
        if let Some(v) = spec.vlan_filtering.filter(|v| *v != current) {
            let msg = LinkBridge::new(&spec.name)
                .index(existing.index)
                .vlan_filtering(v)
                .build();
            self.request(
                RouteNetlinkMessage::NewLink(msg),
                0,
                format!("set vlan_filtering {v} on bridge {}", spec.name),
            )?;
        }
        if !existing.up {
            self.set_up(existing.index)?;
        }
        self.created(None, &spec.name, &op)
    }

    /// Creates a veth pair whose peer is born inside `spec.peer.netns` (it
    /// never exists in this namespace, so its name can't clash here). This side
    /// is created admin up and attached to `spec.master`; the peer is left down.
    /// Returns this side.
    pub fn create_veth(&self, spec: &VethSpec<'_>) -> Result<Link> {
        validate_ifname(&spec.name)?;
        validate_ifname(&spec.peer.name)?;
        let op = format!(
            "create veth {} (peer {} in netns {})",
            spec.name,
            spec.peer.name,
            spec.peer.netns.path().display()
        );
        let peer = common(
            LinkUnspec::new_with_name(&spec.peer.name),
            spec.peer.mtu,
            spec.peer.mac,
        )
        .setns_by_fd(spec.peer.netns.as_raw_fd())
        .build();
        let mut b = common(
            LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth).name(&spec.name),
            spec.mtu,
            spec.mac,
        )
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        if let Some(master) = spec.master {
            b = b.controller(master);
        }
        let echoed = self.add_link(b.build(), &op)?.map(|mut link| {
            // Echoed before the kernel attached it; it is attached, or the
            // creation would have failed and been undone.
            link.master = link.master.or(spec.master);
            link
        });
        self.created(echoed, &spec.name, &op)
    }

    /// Creates a VXLAN device (admin up).
    pub fn create_vxlan(&self, spec: &VxlanSpec) -> Result<Link> {
        validate_ifname(&spec.name)?;
        let op = format!("create vxlan {} vni {}", spec.name, spec.vni);
        let mut b = common(LinkVxlan::new(&spec.name, spec.vni), spec.mtu, spec.mac)
            .learning(spec.learning)
            .up();
        match spec.local {
            Some(IpAddr::V4(ip)) => b = b.local(ip),
            Some(IpAddr::V6(ip)) => b = b.local6(ip),
            None => {}
        }
        if let Some(port) = spec.port {
            b = b.port(port);
        }
        if let Some(dev) = spec.underlay {
            b = b.dev(dev);
        }
        let echoed = self.add_link(b.build(), &op)?;
        self.created(echoed, &spec.name, &op)
    }
}
