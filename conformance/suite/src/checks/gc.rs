//! GC (1.1.0): release what belongs to attachments that are not in
//! `cni.dev/valid-attachments` (older libcni: `cni.dev/attachments`), forward
//! GC to delegated plugins, print nothing on success.

use serde_json::{json, Value};

use super::chain::{portmap_call, portmap_conf};
use super::{lo_conf, lo_sandbox, BR, BR_PM, HL, LO};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::{excerpt, Out};
use crate::fixture::{leases_in, v4_ranges, Att, Net};
use crate::{ensure, kernel, not_applicable};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Gc, rule, needs, run)
}

const fn gc(plugins: &'static [Plugin]) -> Needs {
    Needs::on(plugins).cmds(&[Cmd::Gc])
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("GC-001", "GC listing every attachment exits 0, prints nothing, and keeps them working (leases kept, CHECK passes)", Needs::on(BR).cmds(&[Cmd::Gc, Cmd::Check]), keeps_valid),
    c("GC-002", "IPAM GC (host-local) releases reservations of attachments missing from cni.dev/valid-attachments", gc(HL), ipam_new_key),
    c("GC-003", "IPAM GC (host-local) honours the older key cni.dev/attachments the same way", gc(HL), ipam_old_key),
    c("GC-004", "bridge forwards GC to its IPAM plugin: a stale attachment's reservation is released, a valid one kept", gc(BR), bridge_forwards),
    c("GC-005", "GC leaves the reservations of other networks alone (same data dir, other name)", gc(HL), other_network),
    c("GC-006", "GC with an empty valid-attachments list releases every reservation of the network", gc(BR), empty_list),
    c("GC-007", "SHOULD: bridge GC removes host firewall rules (ipMasq) of stale attachments and keeps valid ones'", gc(BR), bridge_rules),
    c("GC-008", "SHOULD: portmap GC removes the port-forwarding rules of stale attachments and keeps valid ones'", gc(BR_PM), portmap_rules),
    c("GC-009", "loopback GC exits 0", gc(LO), loopback),
];

fn list(atts: &[&Att]) -> Value {
    Value::Array(
        atts.iter()
            .map(|a| json!({"containerID": a.id, "ifname": a.ifname}))
            .collect(),
    )
}

/// GC of `net`'s plugin with `conf` plus `key: valid`.
fn run_gc(net: &Net, plugin: Plugin, conf: &Value, key: &str, valid: Value) -> Out {
    let mut conf = conf.clone();
    conf[key] = valid;
    net.ctx.call(plugin, "GC").config(&conf).run(net.host())
}

const NEW: &str = "cni.dev/valid-attachments";
const OLD: &str = "cni.dev/attachments";

fn keeps_valid(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    run_gc(&net, Plugin::Bridge, &net.conf, NEW, list(&[&a, &b])).silent_success()?;
    net.expect_leased("ctr1", "eth0")?;
    net.expect_leased("ctr2", "eth0")?;
    net.check(&a).silent_success()?;
    net.check(&b).silent_success()?;
    Ok(())
}

fn ipam_gc(ctx: &Ctx, key: &str) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    net.expect_attached(&a)?;
    net.expect_attached(&b)?;
    run_gc(&net, Plugin::HostLocal, &net.conf, key, list(&[&a])).succeeded()?;
    net.expect_leased("ctr1", "eth0")?;
    net.expect_released("ctr2", "eth0")?;
    Ok(())
}

fn ipam_new_key(ctx: &Ctx) -> Res {
    ipam_gc(ctx, NEW)
}

fn ipam_old_key(ctx: &Ctx) -> Res {
    ipam_gc(ctx, OLD)
}

fn bridge_forwards(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    net.expect_attached(&a)?;
    net.expect_attached(&b)?;
    run_gc(&net, Plugin::Bridge, &net.conf, NEW, list(&[&a])).succeeded()?;
    net.expect_leased("ctr1", "eth0")?;
    net.expect_released("ctr2", "eth0")?;
    Ok(())
}

fn other_network(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, v4_ranges())?;
    let a = net.add("ctr1")?;
    let mut other = net.conf.clone();
    other["name"] = json!("cnc-other");
    let j = net.container();
    net.call_with("ADD", j, "ctr9", "eth0", &other)
        .run(net.host())
        .result()?;
    net.expect_attached(&a)?;
    let before = leases_in(&net.data, "cnc-other");
    ensure!(
        before.iter().any(|(_, o)| o.trim() == "ctr9\r\neth0"),
        "after ADD of ctr9/eth0 on network cnc-other: no lease of it ({before:?}), so its keeping cannot be judged"
    );
    run_gc(&net, Plugin::HostLocal, &net.conf, NEW, json!([])).succeeded()?;
    net.expect_released("ctr1", "eth0")?;
    let kept = leases_in(&net.data, "cnc-other");
    ensure!(
        kept.iter().any(|(_, o)| o.trim() == "ctr9\r\neth0"),
        "GC of {} released network cnc-other's lease (left: {kept:?})",
        crate::fixture::NET
    );
    Ok(())
}

fn empty_list(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    net.expect_leased("ctr2", "eth0")
        .map_err(|e| format!("after ADD: {e}"))?;
    net.expect_attached(&a)?;
    net.expect_attached(&b)?;
    run_gc(&net, Plugin::Bridge, &net.conf, NEW, json!([])).succeeded()?;
    net.expect_no_leases()?;
    Ok(())
}

/// After `gc_valid_a`, the ruleset must still name a's address and no longer b's.
fn rules_follow_gc(net: &Net, a: &Att, b: &Att, gc: impl FnOnce() -> Out) -> Res {
    let (ipa, ipb) = (a.ipv4()?.to_string(), b.ipv4()?.to_string());
    let before = kernel::ruleset(net.host())?;
    if !kernel::mentions(&before, &ipa) || !kernel::mentions(&before, &ipb) {
        not_applicable!("no host rule names {ipa} and {ipb} after ADD, so nothing can be judged");
    }
    gc().succeeded()?;
    let after = kernel::ruleset(net.host())?;
    ensure!(
        !kernel::mentions(&after, &ipb),
        "after GC the ruleset still names the stale attachment's {ipb}: {}",
        excerpt(&after)
    );
    ensure!(
        kernel::mentions(&after, &ipa),
        "GC removed the rules of the valid attachment ({ipa}): {}",
        excerpt(&after)
    );
    Ok(())
}

fn bridge_rules(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("ipMasq", json!(true));
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    rules_follow_gc(&net, &a, &b, || {
        run_gc(&net, Plugin::Bridge, &net.conf, NEW, list(&[&a]))
    })
}

fn portmap_rules(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let a = net.add("ctr1")?;
    let b = net.add("ctr2")?;
    portmap_call(&net, &a, "ADD", &portmap_conf(ctx, &a.result, Some(18080))).result()?;
    portmap_call(&net, &b, "ADD", &portmap_conf(ctx, &b.result, Some(18090))).result()?;
    let mut conf = portmap_conf(ctx, &Value::Null, None);
    if let Some(o) = conf.as_object_mut() {
        o.remove("prevResult");
    }
    rules_follow_gc(&net, &a, &b, || {
        run_gc(&net, Plugin::Portmap, &conf, NEW, list(&[&a]))
    })
}

fn loopback(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let mut conf = lo_conf(ctx);
    conf[NEW] = json!([]);
    ctx.call(Plugin::Loopback, "GC")
        .config(&conf)
        .run(sb.host())
        .succeeded()?;
    Ok(())
}
