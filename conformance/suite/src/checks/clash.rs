//! CLASH: "If an interface of the requested name already exists in the
//! container, the CNI plugin MUST return with an error."

use super::BR;
use crate::check::{Check, Cmd, Group, Needs, Problem, Res};
use crate::ctx::Ctx;
use crate::fixture::Net;
use crate::{ensure, kernel};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Clash, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("CLASH-001", "ADD fails with an error result when CNI_IFNAME already exists in the container", Needs::on(BR), clash_fails),
    c("CLASH-002", "SHOULD: the clashing ADD leaves the existing interface untouched (same index, kind, addresses)", Needs::on(BR), clash_untouched),
    c("CLASH-003", "SHOULD: the clashing ADD leaves no IPAM reservation behind", Needs::on(BR), clash_no_lease),
    c("CLASH-004", "A repeated ADD of an existing attachment fails and the first attachment still passes CHECK", Needs::on(BR).cmds(&[Cmd::Check]), repeated_add),
    c("CLASH-005", "One container can join a network twice under different CNI_IFNAMEs, with distinct addresses", Needs::on(BR), two_ifnames),
    c("CLASH-006", "SHOULD: a second attachment whose IPAM routes repeat the default route the first one set up still succeeds", Needs::on(BR), repeated_default_route),
];

/// A container that already has an `eth0` with an address; the
/// failed ADD's outcome is checked by the caller.
fn clash<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, usize, serde_json::Value), Problem> {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    // A veth pair with both ends in the container: any existing link will do
    // (the dummy driver is not always available).
    kernel::ip(
        net.ns(i),
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "cncpeer0",
        ],
    )?;
    kernel::ip(net.ns(i), &["addr", "add", "192.0.2.7/24", "dev", "eth0"])?;
    let before = net.expect_link(i, "eth0")?;
    let out = net.call("ADD", i, "ctr1", "eth0").run(net.host());
    out.error()?;
    Ok((net, i, before))
}

fn clash_fails(ctx: &Ctx) -> Res {
    clash(ctx).map(drop)
}

fn clash_untouched(ctx: &Ctx) -> Res {
    let (net, i, before) = clash(ctx)?;
    let after = net.expect_link(i, "eth0")?;
    ensure!(
        after["ifindex"] == before["ifindex"],
        "eth0 was replaced: ifindex {} -> {}",
        before["ifindex"],
        after["ifindex"]
    );
    ensure!(
        after["linkinfo"]["info_kind"] == before["linkinfo"]["info_kind"],
        "eth0 is no longer the interface that was there: {}",
        after["linkinfo"]
    );
    let addrs = kernel::addrs(net.ns(i), "eth0")?;
    ensure!(
        addrs.iter().any(|a| a == "192.0.2.7/24") && !addrs.iter().any(|a| a.starts_with("10.77.")),
        "eth0's addresses changed: {addrs:?}"
    );
    Ok(())
}

fn clash_no_lease(ctx: &Ctx) -> Res {
    let (net, _i, _) = clash(ctx)?;
    net.expect_no_leases()?;
    Ok(())
}

fn repeated_add(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    net.call("ADD", a.ctr, &a.id, &a.ifname)
        .run(net.host())
        .error()
        .map_err(|e| format!("second ADD: {e}"))?;
    net.check(&a)
        .silent_success()
        .map_err(|e| format!("CHECK of the first attachment: {e}"))?;
    Ok(())
}

fn two_ifnames(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    // No IPAM routes: two default routes are CLASH-006's subject.
    net.conf["ipam"]["routes"] = serde_json::json!([]);
    let i = net.container();
    let a = net.add_in(i, "ctr1", "eth0")?;
    let b = net.add_in(i, "ctr1", "net1")?;
    net.expect_link(i, "eth0")?;
    net.expect_link(i, "net1")?;
    let (x, y) = (a.ipv4()?, b.ipv4()?);
    ensure!(x != y, "both interfaces got {x}");
    Ok(())
}

/// The 0.4.0 spec's note: "Since another network might have already
/// configured the default route, the CNI plugin should be prepared to skip
/// over its default route definition."
fn repeated_default_route(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    net.add_in(i, "ctr1", "eth0")?;
    net.add_in(i, "ctr1", "net1")
        .map_err(|e| format!("second attachment (net1) with the same default route: {e}"))?;
    net.expect_link(i, "net1")?;
    Ok(())
}
