//! CHECK: the attachment in the kernel and in nftables still matches the
//! result the runtime cached (`prevResult`).

use cni::{CniResult, Command, Error, Request};
use netlink::{IpFamily, Netlink};

use crate::config::BridgeConf;
use crate::kernel::{self, nl};

fn mismatch(msg: impl Into<String>) -> Error {
    Error::check_failed(msg)
}

pub fn check(req: &Request, conf: &BridgeConf) -> Result<(), Error> {
    if let Some(ipam) = &req.config.ipam {
        crate::ipam(req, &ipam.plugin_type, Command::Check)?;
    }
    let prev = req
        .config
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::invalid_config("CHECK needs prevResult"))?;
    let ifname = req.ifname()?.as_str();
    let netns_path = req.netns()?;
    let ns = kernel::container_netns(req)?;
    let host = Netlink::connect_current().map_err(nl)?;
    let ctr = Netlink::connect(&ns).map_err(nl)?;

    // The bridge.
    let br = host
        .link_by_name(conf.bridge.as_str())
        .map_err(nl)?
        .filter(|l| l.is_kind("bridge"))
        .ok_or_else(|| mismatch(format!("bridge {} not found", conf.bridge)))?;

    // The container interface, as recorded.
    let sandbox = netns_path.display().to_string();
    let recorded = prev
        .interfaces
        .iter()
        .find(|i| i.name == ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| mismatch(format!("prevResult has no interface {ifname} in {sandbox}")))?;
    let peer = ctr
        .link_by_name(ifname)
        .map_err(nl)?
        .ok_or_else(|| mismatch(format!("interface {ifname} not found in {sandbox}")))?;
    if !peer.is_kind("veth") {
        return Err(mismatch(format!("interface {ifname} is not a veth")));
    }
    let peer_mac = peer.mac.map(|m| netlink::format_mac(&m));
    if recorded.mac.is_some() && recorded.mac != peer_mac {
        return Err(mismatch(format!(
            "interface {ifname} has MAC {peer_mac:?}, prevResult says {:?}",
            recorded.mac
        )));
    }

    // Its host end, on the bridge.
    let host_veth = host
        .links()
        .map_err(nl)?
        .into_iter()
        .find(|l| {
            l.is_kind("veth")
                && l.link == Some(peer.index)
                && l.link_netnsid.is_some()
                && peer.link == Some(l.index)
        })
        .ok_or_else(|| mismatch(format!("host end of {ifname} not found")))?;
    if host_veth.master != Some(br.index) {
        return Err(mismatch(format!(
            "{} is not attached to bridge {}",
            host_veth.name, conf.bridge
        )));
    }

    check_addresses_and_routes(prev, &ctr, peer.index, ifname)?;

    let att = crate::attachment(req)?;
    if conf.ip_masq && conf.has_ipam {
        let rules = conf.masq_rules(prev.ips.iter().map(|ip| &ip.address));
        nft::masq::check(&att, &rules).map_err(|e| mismatch(format!("masquerade: {e}")))?;
    }
    if conf.macspoofchk {
        nft::spoofchk::check(&att, &host_veth.name, peer.mac.unwrap_or_default())
            .map_err(|e| mismatch(format!("macspoofchk: {e}")))?;
    }
    Ok(())
}

fn check_addresses_and_routes(
    prev: &CniResult,
    ctr: &Netlink,
    index: u32,
    ifname: &str,
) -> Result<(), Error> {
    let have = ctr.addresses(index).map_err(nl)?;
    for ip in &prev.ips {
        let want = ip.address.inner();
        if !have
            .iter()
            .any(|a| a.ip() == want.ip() && a.prefix() == want.prefix())
        {
            return Err(mismatch(format!(
                "address {} missing on {ifname}",
                ip.address
            )));
        }
    }
    for r in &prev.routes {
        let Some(dst) = r.dst else { continue };
        let family = if dst.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        };
        let table = ctr.routes(family).map_err(nl)?;
        let dst_net = netlink::IpNetwork::new(dst.network(), dst.prefix()).unwrap_or(dst.inner());
        let found = table.iter().any(|k| {
            k.dst.network() == dst_net.network()
                && k.dst.prefix() == dst_net.prefix()
                && (r.gw.is_none() || k.gateway == r.gw)
        });
        if !found {
            return Err(mismatch(format!(
                "route to {dst}{} missing",
                r.gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}
