//! STATUS (1.1.0): "A plugin must exit with a zero (success) return code if
//! the plugin is ready to service ADD requests"; codes 50/51 otherwise.

use serde_json::json;

use super::{lo_conf, lo_sandbox, lo_untouched, BR, HL, LO};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::Out;
use crate::fixture::{small_ranges, Net, NET};
use crate::{ensure, kernel};

const fn c(
    id: &'static str,
    rule: &'static str,
    plugins: &'static [Plugin],
    run: fn(&Ctx) -> Res,
) -> Check {
    Check::new(
        id,
        Group::Status,
        rule,
        Needs::on(plugins).cmds(&[Cmd::Status]),
        run,
    )
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("STATUS-001", "STATUS of a usable bridge + host-local network exits 0", BR, healthy),
    c("STATUS-002", "loopback STATUS exits 0", LO, loopback),
    c("STATUS-003", "SHOULD: IPAM STATUS (host-local) with every address allocated fails with code 50 or 51", HL, ipam_exhausted),
    c("STATUS-004", "SHOULD: bridge STATUS reports its IPAM plugin's exhaustion with code 50 or 51 (STATUS is delegated)", BR, bridge_exhausted),
    c("STATUS-005", "SHOULD: STATUS changes nothing (no bridge, interface, lease or data dir appears)", BR, no_side_effects),
    c("STATUS-006", "portmap STATUS exits 0 when its firewall backend is usable", &[Plugin::Portmap], portmap),
];

fn status(net: &Net) -> Out {
    net.ctx
        .call(net.plugin, "STATUS")
        .config(&net.conf)
        .run(net.host())
}

fn healthy(ctx: &Ctx) -> Res {
    let net = Net::bridge(ctx)?;
    status(&net).succeeded()?;
    Ok(())
}

fn loopback(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    ctx.call(Plugin::Loopback, "STATUS")
        .config(&lo_conf(ctx))
        .run(sb.host())
        .succeeded()?;
    lo_untouched(&sb)?;
    Ok(())
}

fn exhausted(mut net: Net) -> Res {
    status(&net)
        .succeeded()
        .map_err(|e| format!("STATUS with a free address: {e}"))?;
    net.add("ctr1")?;
    status(&net)
        .error_code_in(&[50, 51])
        .map_err(|e| format!("STATUS with the pool (one address) full: {e}"))?;
    Ok(())
}

fn ipam_exhausted(ctx: &Ctx) -> Res {
    exhausted(Net::host_local(ctx, small_ranges(1))?)
}

fn bridge_exhausted(ctx: &Ctx) -> Res {
    exhausted(Net::bridge_with(ctx, small_ranges(1))?)
}

fn no_side_effects(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    let before = kernel::link_names(net.host())?;
    status(&net).succeeded()?;
    let after = kernel::link_names(net.host())?;
    ensure!(
        before == after,
        "STATUS changed the host's links: {before:?} -> {after:?}"
    );
    net.expect_no_link(i, "eth0")?;
    let entries: Vec<String> = std::fs::read_dir(net.data.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        entries.is_empty(),
        "STATUS wrote into the IPAM data dir: {entries:?}"
    );
    Ok(())
}

fn portmap(ctx: &Ctx) -> Res {
    let sb = ctx.sandbox();
    let conf = json!({"cniVersion": ctx.version, "name": NET, "type": "portmap"});
    ctx.call(Plugin::Portmap, "STATUS")
        .config(&conf)
        .run(sb.host())
        .succeeded()?;
    Ok(())
}
