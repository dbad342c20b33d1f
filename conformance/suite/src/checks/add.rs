//! ADD: the result's shape and that it describes what really exists (spec
//! section 2 "ADD" and section 5 "ADD Success").

use std::net::IpAddr;

use serde_json::{json, Value};

use super::{lo_call, lo_sandbox, BR, HL, LO};
use crate::check::{Check, Group, Needs, Res, VersionReq};
use crate::ctx::Ctx;
use crate::exec::excerpt;
use crate::fixture::{v4_ranges, Att, Net, GATEWAY, SUBNET};
use crate::result::{self, Kind};
use crate::{ensure, fail, kernel};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Add, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("ADD-001", "ADD exits 0 and prints one JSON result whose cniVersion is the config's, shaped as that version requires", Needs::on(BR), result_shape),
    c("ADD-002", "The result lists CNI_IFNAME with sandbox equal to CNI_NETNS", Needs::on(BR), lists_container_iface),
    c("ADD-003", "Every interface in the result exists where its sandbox says (container if set, host if empty)", Needs::on(BR), interfaces_exist),
    c("ADD-004", "Every interface's mac in the result is the kernel's address of that interface", Needs::on(BR), macs_match),
    c("ADD-005", "Every ips[] entry has a CIDR address, a same-family gateway if any, and an interface index inside interfaces[]", Needs::on(BR), ips_well_formed),
    c("ADD-006", "Every address in ips[] is configured on the interface it points to", Needs::on(BR), addresses_configured),
    c("ADD-007", "Every route in routes[] is installed in the container", Needs::on(BR), routes_installed),
    c("ADD-008", "dns in the result is well formed (nameservers IPs; search, options lists of strings; domain a string)", Needs::on(BR), dns_shape),
    c("ADD-009", "After ADD, CNI_IFNAME exists in CNI_NETNS and is up", Needs::on(BR), iface_up),
    c("ADD-010", "A CNI_IFNAME other than eth0 (net1) is honoured", Needs::on(BR), other_ifname),
    c("ADD-011", "The result's address comes from the delegated IPAM plugin's range and is leased to the attachment", Needs::on(BR), address_from_ipam),
    c("ADD-012", "Two containers on one network get distinct addresses", Needs::on(BR), distinct_addresses),
    c("ADD-013", "An IPAM plugin's ADD result has no \"interfaces\" and no ips[].interface", Needs::on(HL), ipam_abbreviated),
    c("ADD-014", "loopback ADD brings lo up and reports only interfaces that exist in the container", Needs::on(LO), loopback_result),
    c("ADD-015", "At 1.1.0, an interface mtu in the result equals the kernel's MTU of that interface", Needs::on(BR).at(VersionReq::Exactly("1.1.0")), mtu_matches),
    c("ADD-016", "SHOULD: a container reaches its gateway and another container on the same bridge network", Needs::on(BR), connectivity),
    c("ADD-017", "SHOULD: every ips[] entry of the main plugin's result points at the container interface", Needs::on(BR), ips_point_at_container),
];

/// A bridge network with one attachment `ctr1`/`eth0` in container 0.
fn one<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, Att), String> {
    let mut net = Net::bridge(ctx)?;
    let att = net.add("ctr1")?;
    Ok((net, att))
}

fn result_shape(ctx: &Ctx) -> Res {
    let (_net, att) = one(ctx)?;
    result::shape(&att.result, &ctx.version, Kind::Main)
        .map_err(|e| format!("{e}: {}", excerpt(&att.result.to_string())))?;
    for key in ["interfaces", "ips"] {
        ensure!(
            att.result[key].as_array().is_some_and(|l| !l.is_empty()),
            "an interface plugin with IPAM must report {key}: {}",
            excerpt(&att.result.to_string())
        );
    }
    Ok(())
}

fn lists_container_iface(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    result::container_iface(&att.result, "eth0", &net.path_str(att.ctr))?;
    Ok(())
}

fn interfaces(res: &Value) -> Vec<Value> {
    res["interfaces"].as_array().cloned().unwrap_or_default()
}

/// The kernel's view of result interface `itf`: from the container when its
/// sandbox is CNI_NETNS, else from the host.
fn kernel_link(net: &Net, att: &Att, itf: &Value) -> Result<Value, String> {
    let name = itf["name"].as_str().unwrap_or_default();
    let sandbox = itf["sandbox"].as_str().unwrap_or_default();
    let (ns, where_) = if sandbox.is_empty() {
        (net.host(), "the host namespace")
    } else if sandbox == net.path_str(att.ctr) {
        (net.ns(att.ctr), "the container")
    } else {
        return Err(format!(
            "interface {name} has sandbox {sandbox:?}, which is neither empty nor CNI_NETNS"
        ));
    };
    kernel::link(ns, name)?
        .ok_or_else(|| format!("result interface {name} does not exist in {where_}"))
}

fn interfaces_exist(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let list = interfaces(&att.result);
    ensure!(!list.is_empty(), "the result lists no interfaces");
    for itf in &list {
        kernel_link(&net, &att, itf)?;
    }
    Ok(())
}

fn macs_match(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    ensure!(
        interfaces(&att.result)
            .iter()
            .any(|i| i["mac"].as_str().is_some_and(|m| !m.is_empty())),
        "no interface in the result has a mac (a veth's is meaningful): {}",
        att.result["interfaces"]
    );
    for itf in interfaces(&att.result) {
        let Some(mac) = itf["mac"].as_str().filter(|m| !m.is_empty()) else {
            continue;
        };
        let link = kernel_link(&net, &att, &itf)?;
        let real = link["address"].as_str().unwrap_or_default();
        ensure!(
            real.eq_ignore_ascii_case(mac),
            "interface {} has mac {mac} in the result but {real} in the kernel",
            itf["name"]
        );
    }
    Ok(())
}

fn ips_well_formed(ctx: &Ctx) -> Res {
    let (_net, att) = one(ctx)?;
    let ips = att.result["ips"].as_array().cloned().unwrap_or_default();
    ensure!(
        !ips.is_empty(),
        "the result has no ips (IPAM gave one address)"
    );
    result::shape(&att.result, &ctx.version, Kind::Main)?;
    Ok(())
}

fn addresses_configured(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let list = interfaces(&att.result);
    ensure!(
        att.result["ips"].as_array().is_some_and(|l| !l.is_empty()),
        "the result has no ips (IPAM gave one address)"
    );
    for ip in att.result["ips"].as_array().cloned().unwrap_or_default() {
        let addr = ip["address"].as_str().unwrap_or_default();
        let idx = ip["interface"].as_u64();
        let itf = match idx.and_then(|i| list.get(i as usize)) {
            Some(i) => i.clone(),
            None => fail!(
                "address {addr} points at no interface (interface {:?})",
                idx
            ),
        };
        let name = itf["name"].as_str().unwrap_or_default();
        let sandbox = itf["sandbox"].as_str().unwrap_or_default();
        let ns = if sandbox.is_empty() {
            net.host()
        } else {
            net.ns(att.ctr)
        };
        let have = kernel::addrs(ns, name)?;
        ensure!(
            have.iter().any(|a| a == addr),
            "{addr} is not configured on {name} (it has {have:?})"
        );
    }
    Ok(())
}

fn routes_installed(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let routes = att.result["routes"].as_array().cloned().unwrap_or_default();
    ensure!(
        !routes.is_empty(),
        "the IPAM config has a default route but the result lists no routes"
    );
    for r in routes {
        let dst = r["dst"].as_str().unwrap_or_default();
        let gw = r["gw"].as_str();
        ensure!(
            kernel::has_route(net.ns(att.ctr), dst, gw)?,
            "route {dst}{} is not in the container's routing table",
            gw.map(|g| format!(" via {g}")).unwrap_or_default()
        );
    }
    Ok(())
}

fn dns_shape(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set(
        "dns",
        json!({"nameservers": [GATEWAY], "domain": "cnc.test", "search": ["cnc.test"], "options": ["ndots:2"]}),
    );
    let att = net.add("ctr1")?;
    result::shape(&att.result, &ctx.version, Kind::Main)?;
    Ok(())
}

fn iface_up(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let link = net.expect_link(att.ctr, "eth0")?;
    ensure!(
        kernel::is_up(&link),
        "eth0 is not up: flags {}",
        link["flags"]
    );
    Ok(())
}

fn other_ifname(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    let att = net.add_in(i, "ctr1", "net1")?;
    result::container_iface(&att.result, "net1", &net.path_str(i))?;
    net.expect_link(i, "net1")?;
    net.expect_no_link(i, "eth0")?;
    Ok(())
}

fn address_from_ipam(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let ip = att.ipv4()?;
    ensure!(
        result::contains(SUBNET, ip),
        "{ip} is not in the IPAM range {SUBNET}"
    );
    let leased = net.leased_to("ctr1", "eth0");
    ensure!(
        leased.contains(&ip),
        "host-local holds {leased:?} for ctr1/eth0, the result says {ip}"
    );
    Ok(())
}

fn distinct_addresses(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    let (x, y) = (a.ipv4()?, b.ipv4()?);
    ensure!(x != y, "both containers got {x}");
    Ok(())
}

fn ipam_abbreviated(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let att = net.add("ctr1")?;
    result::shape(&att.result, &ctx.version, Kind::Ipam)
        .map_err(|e| format!("{e}: {}", excerpt(&att.result.to_string())))?;
    let ip = att.ipv4()?;
    ensure!(result::contains(SUBNET, ip), "{ip} is not in {SUBNET}");
    Ok(())
}

fn loopback_result(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    ensure!(super::lo_up(&sb)?, "lo is not up after ADD");
    let path = sb.container(0).path().to_string_lossy().into_owned();
    for itf in interfaces(&res) {
        let name = itf["name"].as_str().unwrap_or_default();
        let sandbox = itf["sandbox"].as_str().unwrap_or_default();
        ensure!(
            sandbox == path,
            "interface {name} has sandbox {sandbox:?}, expected CNI_NETNS {path:?}"
        );
        ensure!(
            kernel::link(sb.container(0), name)?.is_some(),
            "result interface {name} does not exist in the container"
        );
    }
    Ok(())
}

fn mtu_matches(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    for itf in interfaces(&att.result) {
        let Some(mtu) = itf["mtu"].as_u64() else {
            continue;
        };
        let link = kernel_link(&net, &att, &itf)?;
        ensure!(
            link["mtu"].as_u64() == Some(mtu),
            "interface {} has mtu {mtu} in the result, {} in the kernel",
            itf["name"],
            link["mtu"]
        );
    }
    Ok(())
}

fn connectivity(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    kernel::ping(net.ns(a.ctr), GATEWAY)?;
    let peer: IpAddr = b.ipv4()?;
    kernel::ping(net.ns(a.ctr), &peer.to_string())?;
    Ok(())
}

fn ips_point_at_container(ctx: &Ctx) -> Res {
    let (net, att) = one(ctx)?;
    let idx = result::container_iface(&att.result, "eth0", &net.path_str(att.ctr))?;
    for ip in att.result["ips"].as_array().cloned().unwrap_or_default() {
        ensure!(
            ip["interface"].as_u64() == Some(idx as u64),
            "ips entry {ip} does not point at the container interface (index {idx})"
        );
    }
    Ok(())
}
