//! CHK: CHECK on intact and on tampered state (spec section 2, "CHECK").
//! Passing right after ADD is required ("must handle CHECK being called
//! immediately after an ADD"); reporting damage is a "should".

use serde_json::Value;

use super::{lo_call, lo_conf, lo_sandbox, with_prev, BR, BR_PM, HL, LO};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::Out;
use crate::fixture::{v4_ranges, Att, Net, BRIDGE};
use crate::kernel;

const fn c(
    id: &'static str,
    rule: &'static str,
    plugins: &'static [Plugin],
    run: fn(&Ctx) -> Res,
) -> Check {
    Check::new(
        id,
        Group::Chk,
        rule,
        Needs::on(plugins).cmds(&[Cmd::Check]),
        run,
    )
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("CHK-001", "CHECK right after ADD (with prevResult) succeeds and prints nothing", BR, intact),
    c("CHK-002", "SHOULD: CHECK fails when the container interface was deleted", BR, iface_deleted),
    c("CHK-003", "SHOULD: CHECK fails when an address of the result was removed from the container interface", BR, address_removed),
    c("CHK-004", "SHOULD: CHECK fails when a route of the result was removed from the container", BR, route_removed),
    c("CHK-005", "SHOULD: CHECK fails when the IPAM reservation is gone (released through the IPAM plugin)", BR, reservation_gone),
    c("CHK-006", "SHOULD: CHECK fails when the container's network namespace is gone", BR, netns_gone),
    c("CHK-007", "CHECK tolerates what a later chained plugin may add (an extra address and route in the container)", BR, tolerates_additions),
    c("CHK-008", "SHOULD: CHECK fails when the host end of the veth was taken off the bridge", BR, veth_detached),
    c("CHK-009", "SHOULD: CHECK fails when the container interface's MAC differs from the result", BR, mac_changed),
    c("CHK-010", "loopback CHECK right after ADD succeeds and prints nothing", LO, loopback_intact),
    c("CHK-011", "SHOULD: loopback CHECK fails when lo is down", LO, loopback_down),
    c("CHK-012", "IPAM CHECK (host-local) right after ADD succeeds and prints nothing", HL, ipam_intact),
    c("CHK-013", "SHOULD: IPAM CHECK (host-local) fails once the reservation was released", HL, ipam_released),
    c("CHK-014", "portmap CHECK right after ADD with port mappings succeeds", BR_PM, portmap_intact),
    c("CHK-015", "SHOULD: CHECK without prevResult fails (the plugin must consult prevResult)", BR, no_prev_result),
];

fn setup<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, Att), String> {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    Ok((net, a))
}

/// CHECK after `tamper` must fail with an error result.
fn damaged(ctx: &Ctx, tamper: impl FnOnce(&mut Net, &Att) -> Result<(), String>) -> Res {
    let (mut net, a) = setup(ctx)?;
    net.check(&a)
        .silent_success()
        .map_err(|e| format!("CHECK before the damage: {e}"))?;
    tamper(&mut net, &a)?;
    let out: Out = net.check(&a);
    out.error()
        .map_err(|e| format!("CHECK after the damage: {e}"))?;
    Ok(())
}

fn intact(ctx: &Ctx) -> Res {
    let (net, a) = setup(ctx)?;
    net.check(&a).silent_success()?;
    Ok(())
}

fn iface_deleted(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        kernel::ip(net.ns(a.ctr), &["link", "del", "eth0"]).map(drop)
    })
}

fn address_removed(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        let ip = a.result["ips"][0]["address"]
            .as_str()
            .ok_or("the result has no address")?
            .to_string();
        kernel::ip(net.ns(a.ctr), &["addr", "del", &ip, "dev", "eth0"]).map(drop)
    })
}

fn route_removed(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        let routes = a.result["routes"].as_array().cloned().unwrap_or_default();
        let dst = routes
            .iter()
            .filter_map(|r| r["dst"].as_str())
            .find(|d| d.contains('.'))
            .ok_or("the result has no IPv4 route")?;
        let dst = if dst == "0.0.0.0/0" { "default" } else { dst };
        kernel::ip(net.ns(a.ctr), &["-4", "route", "del", dst]).map(drop)
    })
}

fn reservation_gone(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        net.expect_attached(a)?;
        net.ctx
            .call(Plugin::HostLocal, "DEL")
            .attach(&a.id, &net.path(a.ctr), &a.ifname)
            .config(&net.conf)
            .run(net.host())
            .succeeded()?;
        net.expect_released(&a.id, &a.ifname)
    })
}

fn netns_gone(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        net.sb.container_mut(a.ctr).delete();
        Ok(())
    })
}

fn tolerates_additions(ctx: &Ctx) -> Res {
    let (net, a) = setup(ctx)?;
    let ns = net.ns(a.ctr);
    kernel::ip(ns, &["addr", "add", "10.99.0.5/24", "dev", "eth0"])?;
    kernel::ip(
        ns,
        &[
            "route",
            "add",
            "10.98.0.0/16",
            "via",
            crate::fixture::GATEWAY,
        ],
    )?;
    net.check(&a).silent_success()?;
    Ok(())
}

fn veth_detached(ctx: &Ctx) -> Res {
    damaged(ctx, |net, _a| {
        let links = kernel::links(net.host())?;
        let port = links
            .iter()
            .find(|l| l["master"].as_str() == Some(BRIDGE))
            .and_then(|l| l["ifname"].as_str())
            .ok_or(format!("no port on bridge {BRIDGE} in the host namespace"))?
            .to_string();
        kernel::ip(net.host(), &["link", "set", &port, "nomaster"]).map(drop)
    })
}

fn mac_changed(ctx: &Ctx) -> Res {
    damaged(ctx, |net, a| {
        kernel::ip(
            net.ns(a.ctr),
            &["link", "set", "eth0", "address", "02:cc:00:00:00:01"],
        )
        .map(drop)
    })
}

fn loopback_check(ctx: &Ctx, sb: &cni_harness::Sandbox, prev: &Value) -> Out {
    lo_call(ctx, sb, "CHECK")
        .config(&with_prev(&lo_conf(ctx), prev))
        .run(sb.host())
}

fn loopback_intact(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    loopback_check(ctx, &sb, &res).silent_success()?;
    Ok(())
}

fn loopback_down(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    kernel::ip(sb.container(0), &["link", "set", "lo", "down"])?;
    loopback_check(ctx, &sb, &res).error()?;
    Ok(())
}

fn ipam_intact(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let a = net.add("ctr1")?;
    net.check(&a).silent_success()?;
    Ok(())
}

fn ipam_released(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let a = net.add("ctr1")?;
    // Held and passing CHECK before, or a CHECK that always fails would pass.
    net.expect_attached(&a)?;
    net.check(&a)
        .succeeded()
        .map_err(|e| format!("CHECK before DEL: {e}"))?;
    net.del(&a).succeeded()?;
    net.check(&a)
        .error()
        .map_err(|e| format!("CHECK after DEL: {e}"))?;
    Ok(())
}

fn portmap_intact(ctx: &Ctx) -> Res {
    let (net, a, out) = super::chain::bridge_then_portmap(ctx, true)?;
    let conf = super::chain::portmap_conf(ctx, &out, Some(18080));
    super::chain::portmap_call(&net, &a, "CHECK", &conf).silent_success()?;
    Ok(())
}

fn no_prev_result(ctx: &Ctx) -> Res {
    let (net, a) = setup(ctx)?;
    net.call("CHECK", a.ctr, &a.id, &a.ifname)
        .run(net.host())
        .error()?;
    Ok(())
}
