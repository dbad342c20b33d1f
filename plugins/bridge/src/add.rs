//! ADD: validate, allocate, then build the attachment step by step, undoing
//! every step taken when a later one fails.

use std::net::IpAddr;

use cni::{Cidr, CniResult, Command, Error, Interface, IpConfig, Request, Route};
use netlink::{BridgeSpec, IpFamily, Link, Netlink, Netns, PortFlags, VethPeer, VethSpec};

use crate::config::BridgeConf;
use crate::kernel::{self, nl};

/// What to undo if a later step fails, newest last.
enum Undo {
    IpamDel(String),
    DeleteLink(u32),
    Masq,
    SpoofChk,
}

struct Rollback<'a> {
    req: &'a Request,
    host: &'a Netlink,
    steps: Vec<Undo>,
}

impl Rollback<'_> {
    /// Undoes everything, newest first. Failures are logged, not returned:
    /// the caller reports the error that made it roll back.
    fn run(self) {
        for step in self.steps.into_iter().rev() {
            let res = match step {
                Undo::IpamDel(t) => crate::ipam(self.req, &t, Command::Del).map(|_| ()),
                Undo::DeleteLink(i) => match self.host.delete_link(i) {
                    Err(e) if !e.is_not_found() => Err(nl(e)),
                    _ => Ok(()),
                },
                Undo::Masq => crate::attachment(self.req)
                    .and_then(|a| nft::masq::del(&a).map_err(kernel::nft)),
                Undo::SpoofChk => crate::attachment(self.req)
                    .and_then(|a| nft::spoofchk::del(&a).map_err(kernel::nft)),
            };
            if let Err(e) = res {
                eprintln!("bridge: rollback step failed: {e}");
            }
        }
    }
}

pub fn add(req: &Request, conf: &BridgeConf) -> Result<CniResult, Error> {
    let ifname = req.ifname()?.as_str();
    let netns_path = req.netns()?;
    let ctr_ns = kernel::container_netns(req)?;
    let host = Netlink::connect_current().map_err(nl)?;
    // The container's socket is made by this thread, moved into the
    // container for that moment (no runtime runs on it between requests);
    // the guard brings it back before anything else happens.
    let ctr = Netlink::connect_entering(&ctr_ns).map_err(nl)?;
    // Asked before IPAM runs, not inferred from the veth creation's EEXIST:
    // a repeated ADD of a live attachment gets its own lease back from IPAM,
    // and rolling that back would release the live attachment's address.
    if ctr.link_by_name(ifname).map_err(nl)?.is_some() {
        return Err(Error::plugin(format!(
            "interface {ifname} already exists in {}",
            netns_path.display()
        )));
    }
    let mut rb = Rollback {
        req,
        host: &host,
        steps: Vec::new(),
    };
    match build(req, conf, &host, &ctr, &ctr_ns, &mut rb) {
        Ok(result) => Ok(result),
        Err(e) => {
            rb.run();
            Err(e)
        }
    }
}

fn build(
    req: &Request,
    conf: &BridgeConf,
    host: &Netlink,
    ctr: &Netlink,
    ctr_ns: &Netns,
    rb: &mut Rollback,
) -> Result<CniResult, Error> {
    let ifname = req.ifname()?.as_str();
    // 1. Addresses first: when the pool is exhausted nothing else was made.
    let ipam = match &req.config.ipam {
        Some(section) => {
            // Registered first: a delegate that allocated but printed a result
            // we can't parse must be released too (IPAM DEL is idempotent).
            rb.steps.push(Undo::IpamDel(section.plugin_type.clone()));
            let r = crate::ipam(req, &section.plugin_type, Command::Add)?.unwrap_or_default();
            if r.ips.is_empty() {
                return Err(Error::plugin("IPAM plugin returned no IP configuration"));
            }
            Some(r)
        }
        None => None,
    };
    let ips = assign_gateways(conf, ipam.as_ref().map(|r| r.ips.as_slice()).unwrap_or(&[]));

    // 2. The bridge (shared: never removed by a rollback).
    let br = ensure_bridge(conf, host)?;

    // 3. The veth pair, the container end born inside the container.
    let veth = create_veth(conf, host, ctr_ns, ifname, br.index)?;
    rb.steps.push(Undo::DeleteLink(veth.index));
    if conf.hairpin_mode || conf.port_isolation {
        let flags = PortFlags {
            hairpin: conf.hairpin_mode.then_some(true),
            isolated: conf.port_isolation.then_some(true),
        };
        host.set_port_flags(veth.index, flags).map_err(nl)?;
    }
    // A new link: no need to read the value first.
    let _ = netlink::Sysctl::write_here(&format!("net/ipv6/conf/{}/accept_ra", veth.name), "0");
    let peer = ctr.require_link(ifname).map_err(nl)?;

    // 4. The container side: sysctls, addresses, link up, routes.
    let has_v6 = ips.iter().any(|ip| !ip.address.is_ipv4());
    container_sysctls(conf, ctr_ns, ifname, ipam.is_some(), has_v6);
    for ip in &ips {
        ctr.add_address(peer.index, ip.address.inner())
            .map_err(nl)?;
    }
    if !conf.disable_container_interface {
        ctr.set_up(peer.index).map_err(nl)?;
    }
    let routes = routes_for(conf, ipam.as_ref(), &ips);
    for r in &routes {
        match ctr.add_route(&kernel_route(r, &ips, peer.index)) {
            // Another attachment of this container already routes there (its
            // default route, typically): keep it, as the spec recommends.
            Err(e) if e.is_exists() => eprintln!("bridge: keeping the existing route: {e}"),
            other => other.map_err(nl)?,
        }
    }

    // 5. The gateway on the bridge, and forwarding.
    if conf.is_gateway {
        set_gateways(conf, host, br.index, &ips)?;
    }

    // 6. Firewall rules, one batch each, tagged with the attachment.
    let att = crate::attachment(req)?;
    if conf.ip_masq && !ips.is_empty() {
        rb.steps.push(Undo::Masq);
        let rules = conf.masq_rules(ips.iter().map(|ip| &ip.address));
        nft::masq::add(&att, &rules).map_err(kernel::nft)?;
    }
    let peer_mac = peer.mac.unwrap_or_default();
    if conf.macspoofchk {
        rb.steps.push(Undo::SpoofChk);
        nft::spoofchk::add(&att, &veth.name, peer_mac).map_err(kernel::nft)?;
    }

    Ok(result(req, &br, &veth, &peer, ips, routes, ipam))
}

/// Fills in gateways the bridge provides (`isGateway` without an IPAM gateway:
/// the subnet's first address), and points every address at the container
/// interface (index 2 of the result).
fn assign_gateways(conf: &BridgeConf, ips: &[IpConfig]) -> Vec<IpConfig> {
    ips.iter()
        .map(|ip| {
            let gateway = ip
                .gateway
                .or_else(|| conf.is_gateway.then(|| first_host(&ip.address)).flatten());
            IpConfig {
                address: ip.address,
                gateway,
                interface: Some(2),
            }
        })
        .collect()
}

/// network + 1.
fn first_host(c: &Cidr) -> Option<IpAddr> {
    match c.network() {
        IpAddr::V4(n) => u32::from(n).checked_add(1).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(n) => u128::from(n).checked_add(1).map(|v| IpAddr::V6(v.into())),
    }
}

fn ensure_bridge(conf: &BridgeConf, host: &Netlink) -> Result<Link, Error> {
    let name = conf.bridge.as_str();
    if let Some(br) = host.link_by_name(name).map_err(nl)? {
        if !br.is_kind("bridge") {
            return Err(Error::plugin(format!(
                "{name} already exists but is not a bridge"
            )));
        }
        if !br.up {
            host.set_up(br.index).map_err(nl)?;
        }
        if conf.promisc_mode {
            host.set_promisc(br.index, true).map_err(nl)?;
        }
        return Ok(br);
    }
    // A MAC of its own, so the bridge doesn't take the lowest port's MAC and
    // change it as containers come and go.
    let spec = BridgeSpec {
        name: name.to_string(),
        mtu: conf.mtu,
        mac: Some(kernel::random_mac()?),
        vlan_filtering: None,
    };
    let br = match host.create_bridge(&spec) {
        Ok(br) => br,
        // Another ADD created it meanwhile: use theirs.
        Err(e) if e.is_exists() => host.ensure_bridge(&spec).map_err(|e| match e.kind() {
            netlink::ErrorKind::WrongKind => {
                Error::plugin(format!("{name} already exists but is not a bridge"))
            }
            _ => nl(e),
        })?,
        Err(e) => return Err(nl(e)),
    };
    if conf.promisc_mode {
        host.set_promisc(br.index, true).map_err(nl)?;
    }
    let _ = kernel::host_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    Ok(br)
}

fn create_veth(
    conf: &BridgeConf,
    host: &Netlink,
    ctr_ns: &Netns,
    ifname: &str,
    bridge: u32,
) -> Result<Link, Error> {
    let mut last = None;
    // A random host name, retried on the rare clash, as the reference does.
    for _ in 0..10 {
        let r = kernel::random::<4>()?;
        let name = format!("veth{:02x}{:02x}{:02x}{:02x}", r[0], r[1], r[2], r[3]);
        let spec = VethSpec {
            name,
            mtu: conf.mtu,
            mac: None,
            master: Some(bridge),
            peer: VethPeer {
                name: ifname.to_string(),
                mtu: conf.mtu,
                mac: conf.mac.map(|m| m.octets()),
                netns: ctr_ns,
            },
        };
        match host.create_veth(&spec) {
            Ok(link) => return Ok(link),
            Err(e) if e.is_exists() && host.link_by_name(&spec.name).ok().flatten().is_some() => {
                last = Some(e);
            }
            Err(e) => return Err(nl(e)),
        }
    }
    Err(last
        .map(nl)
        .unwrap_or_else(|| Error::plugin("cannot create veth")))
}

/// Container sysctls. Best effort: a missing key (IPv6 disabled in the
/// container) must not fail an IPv4 attachment.
fn container_sysctls(conf: &BridgeConf, ns: &Netns, ifname: &str, l3: bool, has_v6: bool) {
    if !l3 {
        return;
    }
    let mut pairs: Vec<(String, &'static str)> = Vec::new();
    if has_v6 {
        pairs.push(("net/ipv6/conf/lo/disable_ipv6".into(), "0"));
        pairs.push((format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0"));
    }
    if conf.enable_dad {
        pairs.push((format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1"));
        pairs.push((format!("net/ipv6/conf/{ifname}/accept_dad"), "1"));
    } else {
        // Addresses are usable at once: ADD never waits for DAD.
        pairs.push((format!("net/ipv6/conf/{ifname}/accept_dad"), "0"));
    }
    pairs.push((format!("net/ipv4/conf/{ifname}/arp_notify"), "1"));
    // /proc/sys/net resolves in the namespace of the thread that opens it.
    match ns.enter() {
        Ok(_inside) => {
            for (k, v) in &pairs {
                let _ = std::fs::write(format!("/proc/sys/{k}"), v);
            }
        }
        Err(e) => eprintln!("bridge: container sysctls: {e}"),
    }
}

/// IPAM's routes, then a default route per family when `isDefaultGateway`
/// (unless IPAM already has one).
fn routes_for(conf: &BridgeConf, ipam: Option<&CniResult>, ips: &[IpConfig]) -> Vec<Route> {
    let mut routes: Vec<Route> = ipam.map(|r| r.routes.clone()).unwrap_or_default();
    if conf.is_default_gateway {
        for v4 in [true, false] {
            let Some(gw) = ips
                .iter()
                .find(|ip| ip.address.is_ipv4() == v4)
                .and_then(|ip| ip.gateway)
            else {
                continue;
            };
            let has_default = routes
                .iter()
                .any(|r| r.dst.is_some_and(|d| d.prefix() == 0 && d.is_ipv4() == v4));
            if !has_default {
                let dst = if v4 { "0.0.0.0/0" } else { "::/0" };
                routes.push(Route {
                    dst: dst.parse().ok(),
                    gw: Some(gw),
                    ..Default::default()
                });
            }
        }
    }
    routes
}

/// A result route as a kernel route on the container interface; a route
/// without `gw` goes via the first gateway of its family, if any.
fn kernel_route(r: &Route, ips: &[IpConfig], oif: u32) -> netlink::Route {
    let dst = r
        .dst
        .map(|d| d.inner())
        .unwrap_or(netlink::DEFAULT_V4.into());
    let v4 = dst.is_ipv4();
    let gw = r.gw.or_else(|| {
        ips.iter()
            .filter(|ip| ip.address.is_ipv4() == v4)
            .find_map(|ip| ip.gateway)
    });
    let mut route = netlink::Route::new(dst).dev(oif);
    if let Some(gw) = gw {
        route = route.via(gw);
    }
    if let Some(m) = r.priority {
        route = route.metric(m);
    }
    if let Some(t) = r.table {
        route = route.table(t);
    }
    if let Some(m) = r.mtu {
        route = route.mtu(m);
    }
    route.advmss = r.advmss;
    route.scope = r.scope;
    route
}

/// Puts `gw/prefix` on the bridge for each family with a gateway and turns
/// forwarding on. A different address already there is a conflict unless
/// `forceAddress` (IPv4: any other address; IPv6: one in an overlapping subnet).
fn set_gateways(conf: &BridgeConf, host: &Netlink, br: u32, ips: &[IpConfig]) -> Result<(), Error> {
    let existing = host.addresses(br).map_err(nl)?;
    let mut families = Vec::new();
    for ip in ips {
        let Some(gw) = ip.gateway else { continue };
        let want = netlink::IpNetwork::new(gw, ip.address.prefix())
            .map_err(|e| Error::invalid_config(format!("gateway {gw}: {e}")))?;
        if existing
            .iter()
            .any(|a| a.ip() == want.ip() && a.prefix() == want.prefix())
        {
            families.push(IpFamily::of(&gw));
            continue;
        }
        let conflicts: Vec<_> = existing
            .iter()
            .filter(|a| a.is_ipv4() == want.is_ipv4())
            .filter(|a| a.is_ipv4() || (a.contains(want.network()) || want.contains(a.network())))
            .filter(|a| !is_link_local(a.ip()))
            .copied()
            .collect();
        if !conflicts.is_empty() {
            if !conf.force_address {
                return Err(Error::plugin(format!(
                    "{} already has an IP address different from {want}",
                    conf.bridge
                ))
                .with_details(format!("{conflicts:?}; set forceAddress to replace it")));
            }
            for old in conflicts {
                host.del_address(br, old).map_err(nl)?;
            }
        }
        match host.add_address(br, want) {
            Err(e) if !e.is_exists() => return Err(nl(e)),
            _ => {}
        }
        families.push(IpFamily::of(&gw));
    }
    if families.contains(&IpFamily::V4) {
        kernel::host_sysctl("net/ipv4/ip_forward", "1")?;
    }
    if families.contains(&IpFamily::V6) {
        kernel::host_sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn result(
    req: &Request,
    br: &Link,
    veth: &Link,
    peer: &Link,
    ips: Vec<IpConfig>,
    routes: Vec<Route>,
    ipam: Option<CniResult>,
) -> CniResult {
    let mac = |l: &Link| l.mac.map(|m| netlink::format_mac(&m));
    let dns = match &req.config.dns {
        Some(d) if !d.is_empty() => d.clone(),
        _ => ipam.map(|r| r.dns).unwrap_or_default(),
    };
    CniResult {
        interfaces: vec![
            Interface {
                name: br.name.clone(),
                mac: mac(br),
                mtu: Some(br.mtu),
                ..Default::default()
            },
            Interface {
                name: veth.name.clone(),
                mac: mac(veth),
                mtu: Some(veth.mtu),
                ..Default::default()
            },
            Interface {
                name: peer.name.clone(),
                mac: mac(peer),
                mtu: Some(peer.mtu),
                sandbox: req.netns.as_ref().map(|p| p.display().to_string()),
                ..Default::default()
            },
        ],
        ips,
        routes,
        dns,
    }
}
