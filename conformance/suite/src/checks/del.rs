//! DEL: best effort and idempotent ("Plugins MUST accept multiple DEL calls
//! for the same (CNI_CONTAINERID, CNI_IFNAME) pair, and return success if the
//! interface in question, or any modifications added, are missing").

use serde_json::json;

use super::{lo_call, lo_sandbox, BR, HL, LO};
use crate::check::{Check, Group, Needs, Res};
use crate::ctx::Ctx;
use crate::exec::excerpt;
use crate::fixture::{small_ranges, Net};
use crate::{ensure, kernel, not_applicable};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Del, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("DEL-001", "DEL after ADD succeeds and removes CNI_IFNAME from the container", Needs::on(BR), del_removes_iface),
    c("DEL-002", "DEL after ADD releases the IPAM reservation", Needs::on(BR), del_releases),
    c("DEL-003", "A second DEL of the same attachment succeeds", Needs::on(BR), del_twice),
    c("DEL-004", "DEL succeeds when the container's network namespace no longer exists", Needs::on(BR), del_netns_gone),
    c("DEL-005", "SHOULD: DEL with the namespace gone still releases the IPAM reservation", Needs::on(BR), del_netns_gone_releases),
    c("DEL-006", "DEL with CNI_NETNS unset succeeds (CNI_NETNS is optional for DEL)", Needs::on(BR), del_no_netns),
    c("DEL-007", "SHOULD: DEL with CNI_NETNS unset still releases the IPAM reservation", Needs::on(BR), del_no_netns_releases),
    c("DEL-008", "SHOULD: DEL without prevResult succeeds and cleans up (interface and reservation)", Needs::on(BR), del_no_prev),
    c("DEL-009", "DEL succeeds when the IPAM state (host-local data dir) is gone", Needs::on(BR), del_ipam_state_gone),
    c("DEL-010", "DEL of an attachment that was never added succeeds", Needs::on(BR), del_never_added),
    c("DEL-011", "DEL of one container leaves another container's interface and reservation intact", Needs::on(BR), del_other_container),
    c("DEL-012", "DEL of one CNI_IFNAME leaves the same container's other interface and reservation intact", Needs::on(BR), del_other_ifname),
    c("DEL-013", "SHOULD: DEL prints nothing on stdout", Needs::on(BR), del_silent),
    c("DEL-014", "loopback DEL succeeds twice and with the namespace gone", Needs::on(LO), loopback_del),
    c("DEL-015", "SHOULD: DEL with the namespace gone removes host firewall rules naming the container (ipMasq)", Needs::on(BR), del_netns_gone_rules),
    c("DEL-016", "DEL succeeds when the container interface was already removed", Needs::on(BR), del_iface_gone),
    c("DEL-017", "DEL after a failed ADD (pool exhausted) succeeds and keeps the other container's reservation", Needs::on(BR), del_after_failed_add),
    c("DEL-018", "IPAM DEL (host-local) twice succeeds and frees the address for the next ADD", Needs::on(HL), ipam_del_twice),
    c("DEL-019", "DEL after an ADD that failed late (bridge address conflict, ipMasq on) succeeds", Needs::on(BR), del_after_late_failure),
];

fn del_removes_iface(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.expect_link(a.ctr, "eth0")
        .map_err(|e| format!("after ADD: {e}"))?;
    net.expect_attached(&a)?;
    net.del(&a).succeeded()?;
    net.expect_no_link(a.ctr, "eth0")?;
    Ok(())
}

fn del_releases(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.expect_leased("ctr1", "eth0")?;
    net.expect_attached(&a)?;
    net.del(&a).succeeded()?;
    net.expect_released("ctr1", "eth0")?;
    Ok(())
}

fn del_twice(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.del(&a).succeeded()?;
    net.del(&a)
        .succeeded()
        .map_err(|e| format!("second DEL: {e}"))?;
    Ok(())
}

fn del_netns_gone(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.sb.container_mut(a.ctr).delete();
    net.del(&a).succeeded()?;
    Ok(())
}

fn del_netns_gone_releases(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.expect_leased("ctr1", "eth0")
        .map_err(|e| format!("after ADD: {e}"))?;
    net.sb.container_mut(a.ctr).delete();
    net.del(&a).succeeded()?;
    net.expect_released("ctr1", "eth0")?;
    Ok(())
}

fn del_no_netns(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.call_with("DEL", a.ctr, &a.id, &a.ifname, &net.with_prev(&a.result))
        .unset("CNI_NETNS")
        .run(net.host())
        .succeeded()?;
    Ok(())
}

fn del_no_netns_releases(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.expect_leased("ctr1", "eth0")
        .map_err(|e| format!("after ADD: {e}"))?;
    net.call_with("DEL", a.ctr, &a.id, &a.ifname, &net.with_prev(&a.result))
        .unset("CNI_NETNS")
        .run(net.host())
        .succeeded()?;
    net.expect_released("ctr1", "eth0")?;
    Ok(())
}

fn del_no_prev(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.expect_leased("ctr1", "eth0")
        .map_err(|e| format!("after ADD: {e}"))?;
    net.expect_attached(&a)?;
    net.call("DEL", a.ctr, &a.id, &a.ifname)
        .run(net.host())
        .succeeded()?;
    net.expect_no_link(a.ctr, "eth0")?;
    net.expect_released("ctr1", "eth0")?;
    Ok(())
}

fn del_ipam_state_gone(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let dir = net.data.path().join(crate::fixture::NET);
    std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    net.del(&a).succeeded()?;
    Ok(())
}

fn del_never_added(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    net.call("DEL", i, "ctr-never", "eth0")
        .run(net.host())
        .succeeded()?;
    Ok(())
}

fn del_other_container(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    net.expect_attached(&a)?;
    net.expect_attached(&b)?;
    net.del(&a).succeeded()?;
    net.expect_link(b.ctr, "eth0")?;
    net.expect_leased("ctr2", "eth0")?;
    Ok(())
}

fn del_other_ifname(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    // No IPAM routes: two default routes are CLASH-006's subject.
    net.conf["ipam"]["routes"] = json!([]);
    let i = net.container();
    let a = net.add_in(i, "ctr1", "eth0")?;
    let b = net.add_in(i, "ctr1", "net1")?;
    net.expect_attached(&a)?;
    net.expect_attached(&b)?;
    net.del(&a).succeeded()?;
    net.expect_no_link(i, "eth0")?;
    net.expect_link(i, "net1")?;
    net.expect_leased("ctr1", "net1")?;
    Ok(())
}

fn del_silent(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    for n in ["first", "second"] {
        net.del(&a)
            .silent_success()
            .map_err(|e| format!("{n} DEL: {e}"))?;
    }
    Ok(())
}

fn loopback_del(ctx: &Ctx) -> Res {
    let mut sb = lo_sandbox(ctx);
    lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    lo_call(ctx, &sb, "DEL").run(sb.host()).succeeded()?;
    lo_call(ctx, &sb, "DEL")
        .run(sb.host())
        .succeeded()
        .map_err(|e| format!("second DEL: {e}"))?;
    let call = lo_call(ctx, &sb, "DEL");
    sb.container_mut(0).delete();
    call.run(sb.host())
        .succeeded()
        .map_err(|e| format!("DEL with the namespace gone: {e}"))?;
    Ok(())
}

fn del_netns_gone_rules(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("ipMasq", json!(true));
    let a = net.add("ctr1")?;
    let ip = a.ipv4()?.to_string();
    if !kernel::mentions(&kernel::ruleset(net.host())?, &ip) {
        not_applicable!("with ipMasq no host rule names {ip} after ADD, so nothing can be judged");
    }
    net.sb.container_mut(a.ctr).delete();
    net.del(&a).succeeded()?;
    let rules = kernel::ruleset(net.host())?;
    ensure!(
        !kernel::mentions(&rules, &ip),
        "after DEL the host ruleset still names {ip}: {}",
        excerpt(&rules)
    );
    Ok(())
}

fn del_iface_gone(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    kernel::ip(net.ns(a.ctr), &["link", "del", "eth0"])?;
    net.del(&a).succeeded()?;
    Ok(())
}

fn del_after_failed_add(ctx: &Ctx) -> Res {
    let mut net = Net::bridge_with(ctx, small_ranges(1))?;
    let _a = net.add("ctr1")?;
    let j = net.container();
    let failed = net.call("ADD", j, "ctr2", "eth0").run(net.host());
    if failed.ok() {
        not_applicable!("ADD into a full pool succeeded: {}", failed.describe());
    }
    net.call("DEL", j, "ctr2", "eth0")
        .run(net.host())
        .succeeded()?;
    net.expect_leased("ctr1", "eth0")?;
    Ok(())
}

fn ipam_del_twice(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, small_ranges(1))?;
    let a = net.add("ctr1")?;
    let ip = a.ipv4()?;
    net.del(&a).succeeded()?;
    net.del(&a)
        .succeeded()
        .map_err(|e| format!("second DEL: {e}"))?;
    let b = net
        .add("ctr2")
        .map_err(|e| format!("ADD after DEL, pool of one: {e}"))?;
    ensure!(
        b.ipv4()? == ip,
        "the pool has one address {ip}, but ADD got {}",
        b.ipv4()?
    );
    Ok(())
}

/// The ADD gets an address from IPAM, configures it in the container, then
/// fails on the bridge's conflicting address before any masquerade rule
/// exists. The runtime's DEL must then succeed although the rules it would
/// remove were never made.
fn del_after_late_failure(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("ipMasq", json!(true));
    let br = crate::fixture::BRIDGE;
    kernel::ip(net.host(), &["link", "add", br, "type", "bridge"])?;
    kernel::ip(net.host(), &["addr", "add", "10.99.0.1/24", "dev", br])?;
    kernel::ip(net.host(), &["link", "set", br, "up"])?;
    let j = net.container();
    let out = net.call("ADD", j, "ctr1", "eth0").run(net.host());
    if out.ok() {
        not_applicable!(
            "ADD onto a bridge holding another address succeeded, so no late failure happened: {}",
            out.describe()
        );
    }
    net.call("DEL", j, "ctr1", "eth0")
        .run(net.host())
        .succeeded()?;
    net.call("DEL", j, "ctr1", "eth0")
        .run(net.host())
        .succeeded()
        .map_err(|e| format!("second DEL: {e}"))?;
    Ok(())
}
