//! The kernel side, on a thread of its own (the daemon's runtime never waits
//! for netlink): finding the underlay, keeping the VXLAN device as
//! configured, and making the routes, neighbours and FDB entries exactly
//! the desired ones (adding what is missing, removing what is not wanted:
//! the same code at start, on every change and on every periodic
//! reconcile, so a hand-deleted route or a recreated device heals).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use cni::Cidr;
use ipnetwork::IpNetwork;
use netlink::{IpFamily, Netlink, Route, VxlanSpec};

use crate::peers::{Path, Peer};

/// The underlay this node sends VXLAN packets from.
#[derive(Debug, Clone)]
pub struct Underlay {
    pub index: u32,
    pub name: String,
    /// The address, with its prefix.
    pub addr: Cidr,
    pub mtu: u32,
}

/// The VXLAN device as it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    pub underlay: u32,
    pub mtu: u32,
}

/// The device as it is: what the node record publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub index: u32,
    pub mac: [u8; 6],
}

fn err(e: netlink::Error) -> String {
    e.to_string()
}

fn cidr(net: IpNetwork) -> Option<Cidr> {
    Cidr::new(net.ip(), net.prefix()).ok()
}

/// `--public-ip`, else `--iface`'s first address, else the interface of the
/// default route's first address.
pub fn find_underlay(
    nl: &Netlink,
    public_ip: Option<IpAddr>,
    iface: Option<&str>,
) -> Result<Underlay, String> {
    let links = nl.links().map_err(err)?;
    let pick = |index: u32, want: Option<IpAddr>| -> Result<Option<Underlay>, String> {
        let Some(link) = links.iter().find(|l| l.index == index) else {
            return Ok(None);
        };
        let addrs = nl.addresses(index).map_err(err)?;
        let addr = addrs
            .iter()
            .find(|a| want.map_or(a.is_ipv4(), |w| a.ip() == w))
            .or_else(|| if want.is_none() { addrs.first() } else { None })
            .and_then(|a| cidr(*a));
        Ok(addr.map(|addr| Underlay {
            index,
            name: link.name.clone(),
            addr,
            mtu: link.mtu,
        }))
    };
    if let Some(ip) = public_ip {
        for l in &links {
            if let Some(u) = pick(l.index, Some(ip))? {
                return Ok(u);
            }
        }
        return Err(format!("no interface holds --public-ip {ip}"));
    }
    if let Some(name) = iface {
        let link = nl
            .link_by_name(name)
            .map_err(err)?
            .ok_or_else(|| format!("no interface {name} (--iface)"))?;
        return pick(link.index, None)?.ok_or_else(|| format!("{name} has no address"));
    }
    let default = nl
        .routes(IpFamily::V4)
        .map_err(err)?
        .into_iter()
        .find(|r| r.dst.prefix() == 0)
        .and_then(|r| r.oif)
        .ok_or("no default route: give --public-ip or --iface")?;
    pick(default, None)?
        .ok_or_else(|| format!("the default route's interface {default} has no address"))
}

/// The device's MTU: the configured one, else the underlay's minus the
/// VXLAN encapsulation (50 bytes over IPv4, 70 over IPv6).
pub fn device_mtu(configured: Option<u32>, underlay: &Underlay) -> u32 {
    configured.unwrap_or_else(|| {
        underlay
            .mtu
            .saturating_sub(if underlay.addr.is_ipv4() { 50 } else { 70 })
    })
}

fn matches(link: &netlink::Link, spec: &DeviceSpec) -> bool {
    link.is_kind("vxlan")
        && link.mtu == spec.mtu
        && link.vxlan.as_ref().is_some_and(|v| {
            v.vni == spec.vni
                && v.port == Some(spec.port)
                && v.local == Some(spec.local)
                && v.underlay == Some(spec.underlay)
                && !v.learning
        })
}

/// Makes the device exactly `spec` (recreated when anything differs), up,
/// with `address` (the VTEP address, /32) on it once the subnet is known
/// (`None` at start-up: the MAC is needed to lease the subnet).
pub fn ensure_device(
    nl: &Netlink,
    spec: &DeviceSpec,
    address: Option<Ipv4Addr>,
) -> Result<Device, String> {
    let mut link = nl.link_by_name(&spec.name).map_err(err)?;
    if let Some(l) = link.as_ref().filter(|l| !matches(l, spec)) {
        tracing::warn!(device = %spec.name, "VXLAN device differs from the config: recreating it");
        nl.delete_link(l.index).map_err(err)?;
        link = None;
    }
    let link = match link {
        Some(l) => l,
        None => nl
            .create_vxlan(&VxlanSpec {
                name: spec.name.clone(),
                vni: spec.vni,
                local: Some(spec.local),
                port: Some(spec.port),
                underlay: Some(spec.underlay),
                mtu: Some(spec.mtu),
                mac: None,
                learning: false,
            })
            .map_err(err)?,
    };
    if !link.up {
        nl.set_up(link.index).map_err(err)?;
    }
    if let Some(address) = address {
        let want = IpNetwork::new(IpAddr::V4(address), 32).map_err(|e| e.to_string())?;
        if !nl.addresses(link.index).map_err(err)?.contains(&want) {
            nl.add_address(link.index, want).map_err(err)?;
        }
    }
    let mac = match link.mac {
        Some(mac) => mac,
        None => nl
            .link_by_index(link.index)
            .map_err(err)?
            .and_then(|l| l.mac)
            .ok_or("the VXLAN device has no MAC")?,
    };
    Ok(Device {
        index: link.index,
        mac,
    })
}

fn route_key(r: &Route) -> (IpNetwork, Option<IpAddr>, Option<u32>) {
    (r.dst, r.gateway, r.oif)
}

fn desired_route(p: &Peer, dev: u32, underlay: u32) -> Route {
    let dst = p.subnet.inner();
    match p.path {
        Path::Vxlan { vtep_ip, .. } => Route::new(dst).via(vtep_ip).dev(dev).onlink(),
        Path::Direct { via } => Route::new(dst).via(via).dev(underlay),
    }
}

/// What one programming pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub removed: usize,
}

/// Makes routes, neighbours and FDB entries exactly those of `peers`.
/// Routes of ours: every route on the device, and routes on the underlay
/// device to subnets inside the cluster network (direct routing).
pub fn program(
    nl: &Netlink,
    dev: u32,
    underlay: u32,
    cluster: &Cidr,
    peers: &BTreeMap<Cidr, Peer>,
) -> Result<Changes, String> {
    let mut ch = Changes::default();
    let in_cluster = |n: &IpNetwork| n.prefix() > cluster.prefix() && cluster.contains(n.ip());
    let want: Vec<Route> = peers
        .values()
        .map(|p| desired_route(p, dev, underlay))
        .collect();
    let want_keys: BTreeSet<_> = want.iter().map(route_key).collect();
    let have: Vec<Route> = nl
        .routes(IpFamily::V4)
        .map_err(err)?
        .into_iter()
        .filter(|r| {
            r.oif == Some(dev)
                || (r.oif == Some(underlay) && in_cluster(&r.dst) && r.gateway.is_some())
        })
        .collect();
    let have_keys: BTreeSet<_> = have.iter().map(route_key).collect();
    for r in have.iter().filter(|r| !want_keys.contains(&route_key(r))) {
        match nl.del_route(r) {
            Err(e) if !e.is_not_found() => return Err(err(e)),
            _ => ch.removed += 1,
        }
    }
    for r in want.iter().filter(|r| !have_keys.contains(&route_key(r))) {
        nl.replace_route(r).map_err(err)?;
        ch.added += 1;
    }
    let vx: Vec<(IpAddr, [u8; 6], IpAddr)> = peers
        .values()
        .filter_map(|p| match p.path {
            Path::Vxlan {
                vtep_ip,
                mac,
                underlay,
            } => Some((vtep_ip, mac, underlay)),
            Path::Direct { .. } => None,
        })
        .collect();
    // Neighbours: the peers' VTEP addresses, permanent.
    let want_neigh: BTreeMap<IpAddr, [u8; 6]> = vx.iter().map(|(ip, mac, _)| (*ip, *mac)).collect();
    for n in nl.neighbours(dev).map_err(err)? {
        let wanted = want_neigh.get(&n.ip);
        if wanted.is_none() && n.is_permanent() {
            nl.del_neighbour(dev, n.ip).map_err(err)?;
            ch.removed += 1;
        } else if let Some(mac) = wanted.filter(|m| n.mac != Some(**m) || !n.is_permanent()) {
            nl.add_neighbour(dev, n.ip, *mac).map_err(err)?;
            ch.added += 1;
        }
    }
    let have_neigh: BTreeSet<IpAddr> = nl
        .neighbours(dev)
        .map_err(err)?
        .iter()
        .map(|n| n.ip)
        .collect();
    for (ip, mac) in want_neigh.iter().filter(|(ip, _)| !have_neigh.contains(ip)) {
        nl.add_neighbour(dev, *ip, *mac).map_err(err)?;
        ch.added += 1;
    }
    // FDB: the peers' VTEP MACs to their underlay addresses.
    let want_fdb: BTreeSet<([u8; 6], IpAddr)> = vx.iter().map(|(_, mac, u)| (*mac, *u)).collect();
    let have_fdb: BTreeSet<([u8; 6], IpAddr)> = nl
        .fdb_entries(dev)
        .map_err(err)?
        .into_iter()
        .filter(|f| f.is_self && f.master.is_none())
        .filter_map(|f| f.dst.map(|d| (f.mac, d)))
        .collect();
    for (mac, dst) in have_fdb.difference(&want_fdb) {
        match nl.del_fdb(dev, *mac, Some(*dst)) {
            Err(e) if !e.is_not_found() => return Err(err(e)),
            _ => ch.removed += 1,
        }
    }
    for (mac, dst) in want_fdb.difference(&have_fdb) {
        nl.add_fdb(dev, *mac, *dst).map_err(err)?;
        ch.added += 1;
    }
    Ok(ch)
}
