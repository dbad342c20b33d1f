//! PAR: "Plugins must handle being executed concurrently across different
//! containers. If necessary, they must implement locking on shared resources
//! (e.g. IPAM databases)."

use std::collections::HashSet;
use std::net::IpAddr;

use super::{lo_conf, BR, HL, LO};
use crate::check::{Check, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::{Call, Out};
use crate::fixture::{small_ranges, v4_ranges, Att, Net};
use crate::runner::{panic_message, spawn_quiet};
use crate::{ensure, fail, result};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Par, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("PAR-001", "8 parallel ADDs on distinct containers (bridge not yet there) all succeed with distinct addresses", Needs::on(BR), parallel_add),
    c("PAR-002", "8 parallel DELs of distinct containers all succeed and release every reservation and interface", Needs::on(BR), parallel_del),
    c("PAR-003", "6 parallel ADDs into a 4-address pool: exactly 4 succeed, with distinct addresses; the others fail cleanly", Needs::on(BR), parallel_exhaust),
    c("PAR-004", "16 parallel IPAM ADDs (host-local) on distinct containers get 16 distinct addresses", Needs::on(HL), parallel_ipam),
    c("PAR-005", "8 parallel loopback ADDs on distinct containers all succeed", Needs::on(LO), parallel_loopback),
];

/// Runs the calls at once, each in `net`'s host namespace; outputs in order.
fn all_at_once(net: &Net, calls: Vec<Call>) -> Result<Vec<Out>, String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .into_iter()
            .map(|call| spawn_quiet(s, move || call.run(net.host())))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|p| format!("a parallel call panicked: {}", panic_message(&*p)))
            })
            .collect()
    })
}

/// `n` containers and an ADD call for each (ids ctr0..).
fn adds(net: &mut Net, n: usize) -> Vec<(usize, String, Call)> {
    (0..n)
        .map(|k| {
            let i = net.container();
            let id = format!("ctr{k}");
            let call = net.call("ADD", i, &id, "eth0");
            (i, id, call)
        })
        .collect()
}

fn distinct(addrs: &[IpAddr]) -> Result<(), String> {
    let set: HashSet<&IpAddr> = addrs.iter().collect();
    if set.len() == addrs.len() {
        Ok(())
    } else {
        Err(format!("duplicate addresses handed out: {addrs:?}"))
    }
}

/// 8 parallel ADDs that must all succeed: the attachments.
fn add_eight<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, Vec<Att>), String> {
    let mut net = Net::bridge(ctx)?;
    let planned = adds(&mut net, 8);
    let calls = planned.iter().map(|(_, _, c)| c.clone()).collect();
    let outs = all_at_once(&net, calls)?;
    let mut atts = Vec::new();
    for ((i, id, _), out) in planned.into_iter().zip(outs) {
        let res = out.result().map_err(|e| format!("{id}: {e}"))?;
        atts.push(Att {
            ctr: i,
            id,
            ifname: "eth0".into(),
            result: res,
        });
    }
    let addrs: Vec<IpAddr> = atts.iter().map(Att::ipv4).collect::<Result<_, _>>()?;
    distinct(&addrs)?;
    Ok((net, atts))
}

fn parallel_add(ctx: &Ctx) -> Res {
    let (net, atts) = add_eight(ctx)?;
    for a in &atts {
        net.expect_link(a.ctr, "eth0")?;
    }
    Ok(())
}

fn parallel_del(ctx: &Ctx) -> Res {
    let (net, atts) = add_eight(ctx)?;
    for a in &atts {
        net.expect_attached(a)?;
    }
    let calls = atts
        .iter()
        .map(|a| net.call_with("DEL", a.ctr, &a.id, &a.ifname, &net.with_prev(&a.result)))
        .collect();
    for (a, out) in atts.iter().zip(all_at_once(&net, calls)?) {
        out.succeeded().map_err(|e| format!("{}: {e}", a.id))?;
        net.expect_no_link(a.ctr, "eth0")?;
    }
    net.expect_no_leases()?;
    Ok(())
}

fn parallel_exhaust(ctx: &Ctx) -> Res {
    let mut net = Net::bridge_with(ctx, small_ranges(4))?;
    let planned = adds(&mut net, 6);
    let calls = planned.iter().map(|(_, _, c)| c.clone()).collect();
    let outs = all_at_once(&net, calls)?;
    let mut addrs = Vec::new();
    let mut failures = Vec::new();
    for ((_, id, _), out) in planned.iter().zip(&outs) {
        if out.ok() {
            let res = out.result().map_err(|e| format!("{id}: {e}"))?;
            addrs.push(result::ipv4(&res)?);
        } else {
            out.error().map_err(|e| format!("{id}: {e}"))?;
            failures.push(id.clone());
        }
    }
    distinct(&addrs)?;
    ensure!(
        addrs.len() == 4,
        "{} of 6 ADDs succeeded into a pool of 4 (addresses {addrs:?}, failed {failures:?})",
        addrs.len()
    );
    Ok(())
}

fn parallel_ipam(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let planned = adds(&mut net, 16);
    let calls = planned.iter().map(|(_, _, c)| c.clone()).collect();
    let outs = all_at_once(&net, calls)?;
    let mut addrs = Vec::new();
    for ((_, id, _), out) in planned.iter().zip(&outs) {
        let res = out.result().map_err(|e| format!("{id}: {e}"))?;
        addrs.push(result::ipv4(&res)?);
    }
    distinct(&addrs)?;
    if net.leases().len() != 16 {
        fail!(
            "16 ADDs, but host-local holds {} leases",
            net.leases().len()
        );
    }
    Ok(())
}

fn parallel_loopback(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let conf = lo_conf(ctx);
    let calls: Vec<Call> = (0..8)
        .map(|k| {
            let i = net.container();
            ctx.call(Plugin::Loopback, "ADD")
                .attach(&format!("ctr{k}"), &net.path(i), "eth0")
                .config(&conf)
        })
        .collect();
    for (k, out) in all_at_once(&net, calls)?.into_iter().enumerate() {
        out.result().map_err(|e| format!("ctr{k}: {e}"))?;
        let lo = crate::kernel::link(net.ns(k), "lo")?.ok_or("no lo")?;
        ensure!(
            crate::kernel::is_up(&lo),
            "lo of ctr{k} is not up after ADD"
        );
    }
    Ok(())
}
