//! Links: the `Link` value type, look-ups and changes to existing links.

use std::net::IpAddr;

use rtnetlink::packet_core::NLM_F_DUMP;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridgePort, LinkUnspec};

use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::socket::Transport;

/// A network interface as the kernel reports it. Plain data: it does not
/// follow later changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "veth", "bridge", "vxlan", ... (`None` for physical
    /// devices and `lo`).
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// Index of the bridge (or other controller) this link is attached to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: for a veth, the peer's index (in the namespace given by
    /// `link_netnsid` when that is set); for other kinds, the lower device.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer / lower device lives in another namespace.
    pub link_netnsid: Option<i32>,
    /// VXLAN parameters when `kind` is "vxlan".
    pub vxlan: Option<VxlanInfo>,
    /// A bridge's VLAN filtering flag, when the kernel reports it.
    pub vlan_filtering: Option<bool>,
}

/// Bridge-port flags for [`Netlink::set_port_flags`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortFlags {
    pub hairpin: Option<bool>,
    pub isolated: Option<bool>,
}

/// The VXLAN parameters of a vxlan link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    pub vni: u32,
    pub local: Option<IpAddr>,
    /// UDP destination port.
    pub port: Option<u16>,
    /// Underlay device index (`dev`).
    pub underlay: Option<u32>,
    pub learning: bool,
}

impl Link {
    /// Whether `kind` equals `kind` (e.g. `link.is_kind("bridge")`).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    pub(crate) fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
            master: None,
            link: None,
            link_netnsid: None,
            vxlan: None,
            vlan_filtering: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Address(addr) => link.mac = <[u8; 6]>::try_from(addr).ok(),
                LinkAttribute::Controller(m) if m != 0 => link.master = Some(m),
                LinkAttribute::Link(l) if l != 0 => link.link = Some(l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                            LinkInfo::Data(InfoData::Vxlan(data)) => {
                                link.vxlan = Some(VxlanInfo::from_attrs(data))
                            }
                            LinkInfo::Data(InfoData::Bridge(data)) => {
                                link.vlan_filtering = data.iter().find_map(|d| match d {
                                    InfoBridge::VlanFiltering(v) => Some(*v),
                                    _ => None,
                                })
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

impl VxlanInfo {
    fn from_attrs(attrs: Vec<InfoVxlan>) -> VxlanInfo {
        let mut info = VxlanInfo::default();
        for attr in attrs {
            match attr {
                InfoVxlan::Id(vni) => info.vni = vni,
                InfoVxlan::Local(ip) => info.local = Some(ip.into()),
                InfoVxlan::Local6(ip) => info.local = Some(ip.into()),
                InfoVxlan::Port(port) => info.port = Some(port),
                InfoVxlan::Link(dev) if dev != 0 => info.underlay = Some(dev),
                InfoVxlan::Learning(l) => info.learning = l,
                _ => {}
            }
        }
        info
    }
}

/// Checks an interface name the way the kernel does (`dev_valid_name`):
/// 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace.
pub fn validate_ifname(name: &str) -> Result<()> {
    let context = || format!("interface name {name:?}");
    if name.is_empty() {
        return Err(Error::invalid(context(), "empty"));
    }
    if name.len() > 15 {
        return Err(Error::invalid(context(), "longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(context(), "not a valid name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(Error::invalid(context(), "contains '/', ':' or whitespace"));
    }
    Ok(())
}

impl<T: Transport> Netlink<T> {
    /// The link called `name`, or `None` when there is none.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let mut query = LinkMessage::default();
        query
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        self.one_link(query, format!("get link {name}"))
    }

    /// The link with index `index`, or `None` when there is none.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let mut query = LinkMessage::default();
        query.header.index = index;
        self.one_link(query, format!("get link {index}"))
    }

    fn one_link(&self, query: LinkMessage, op: String) -> Result<Option<Link>> {
        match self.request(RouteNetlinkMessage::GetLink(query), 0, op) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Netlink::link_by_name`] but a missing link is an error
    /// (ENODEV, so [`Error::is_not_found`] holds).
    pub fn require_link(&self, name: &str) -> Result<Link> {
        self.link_by_name(name)?
            .ok_or_else(|| Error::os(self.ctx(format!("get link {name}")), libc::ENODEV))
    }

    /// Every link in the namespace.
    pub fn links(&self) -> Result<Vec<Link>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "list links",
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Sends an `ip link set`-style change.
    fn change(&self, msg: LinkMessage, op: String) -> Result<()> {
        self.request(RouteNetlinkMessage::NewLink(msg), 0, op)
            .map(drop)
    }

    /// `ip link set <index> up`.
    pub fn set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.change(msg, format!("set link {index} up"))
    }

    /// `ip link set <index> down`.
    pub fn set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.change(msg, format!("set link {index} down"))
    }

    /// `ip link set <index> mtu <mtu>`.
    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.change(msg, format!("set mtu {mtu} on link {index}"))
    }

    /// `ip link set <index> address <mac>`.
    pub fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.change(msg, format!("set mac {} on link {index}", format_mac(&mac)))
    }

    /// `ip link set <index> master <master>` or `nomaster` for `None`.
    pub fn set_master(&self, index: u32, master: Option<u32>) -> Result<()> {
        let builder = LinkUnspec::new_with_index(index);
        let (msg, op) = match master {
            Some(m) => (
                builder.controller(m).build(),
                format!("set master {m} on link {index}"),
            ),
            None => (
                builder.nocontroller().build(),
                format!("set nomaster on link {index}"),
            ),
        };
        self.change(msg, op)
    }

    /// `ip link set <index> promisc on|off`.
    pub fn set_promisc(&self, index: u32, on: bool) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).promiscuous(on).build();
        self.change(msg, format!("set promisc {on} on link {index}"))
    }

    /// Hairpin mode of a bridge port (`bridge link set dev X hairpin on`).
    pub fn set_hairpin(&self, index: u32, on: bool) -> Result<()> {
        let msg = LinkBridgePort::new(index).hairpin(on).build();
        self.change(msg, format!("set hairpin {on} on bridge port {index}"))
    }

    /// Several bridge-port flags in one request (`bridge link set dev X hairpin
    /// on isolated on`); `None` leaves a flag as it is.
    pub fn set_port_flags(&self, index: u32, flags: PortFlags) -> Result<()> {
        let mut msg = LinkBridgePort::new(index);
        if let Some(on) = flags.hairpin {
            msg = msg.hairpin(on);
        }
        if let Some(on) = flags.isolated {
            msg = msg.isolated(on);
        }
        self.change(msg.build(), format!("set {flags:?} on bridge port {index}"))
    }

    /// `ip link set <index> name <new_name>`. Kernels before 6.x refuse to
    /// rename a link that is up (EBUSY): bring it down first to be portable.
    pub fn rename(&self, index: u32, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        let msg = LinkUnspec::new_with_index(index).name(new_name).build();
        self.change(msg, format!("rename link {index} to {new_name}"))
    }

    /// `ip link del <index>`. Deleting one end of a veth deletes both.
    pub fn delete_link(&self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(msg),
            0,
            format!("delete link {index}"),
        )
        .map(drop)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules_follow_the_kernel() {
        for ok in ["eth0", "a", "veth1234567890a", "br-0.1_x"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "veth1234567890ab",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
        ] {
            let err = validate_ifname(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn mac_formats_lowercase_with_colons() {
        assert_eq!(
            format_mac(&[0x0a, 0x58, 0, 0xff, 1, 0xAB]),
            "0a:58:00:ff:01:ab"
        );
    }

    #[test]
    fn link_from_message_reads_every_field() {
        use rtnetlink::packet_route::link::InfoKind;
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        msg.attributes = vec![
            LinkAttribute::IfName("vx0".into()),
            LinkAttribute::Mtu(1450),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Controller(3),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(42),
                    InfoVxlan::Local("10.0.0.1".parse().expect("ip")),
                    InfoVxlan::Port(4789),
                    InfoVxlan::Link(2),
                    InfoVxlan::Learning(false),
                ])),
            ]),
        ];
        let link = Link::from_message(msg);
        assert_eq!(link.index, 7);
        assert_eq!(link.name, "vx0");
        assert!(link.is_kind("vxlan"));
        assert_eq!(link.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(link.mtu, 1450);
        assert!(link.up && link.lower_up);
        assert_eq!(link.master, Some(3));
        assert_eq!(
            link.vxlan,
            Some(VxlanInfo {
                vni: 42,
                local: Some("10.0.0.1".parse().expect("ip")),
                port: Some(4789),
                underlay: Some(2),
                learning: false,
            })
        );
    }
}
