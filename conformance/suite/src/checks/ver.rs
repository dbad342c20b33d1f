//! VER: VERSION, version negotiation, and the result shape of every spec
//! version (0.3.x/0.4.0 carry ips[].version, 1.0.0 dropped it, 1.1.0 added
//! interface and route fields).

use serde_json::{json, Value};

use super::{lo_call, lo_conf, lo_sandbox, lo_untouched, with_prev, BR, HL, LO, NONE};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Problem, Res, VersionReq};
use crate::ctx::Ctx;
use crate::exec::excerpt;
use crate::fixture::{dual_ranges, Net, BRIDGE};
use crate::result::{self, Kind};
use crate::{ensure, fail, kernel, not_applicable, version};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Ver, rule, needs, run)
}

const fn exactly(plugins: &'static [Plugin], v: &'static str) -> Needs {
    Needs::on(plugins).at(VersionReq::Exactly(v))
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("VER-001", "Every plugin answers VERSION (only CNI_COMMAND set) with exit 0, a cniVersion and a non-empty supportedVersions list", Needs::on(NONE), version_reply),
    c("VER-002", "VERSION answers with the cniVersion given on stdin", Needs::on(NONE), version_echo),
    c("VER-003", "ADD with an unsupported cniVersion fails with code 1 and changes nothing", Needs::on(BR), unsupported_version),
    c("VER-004", "CHECK with a config below 0.4.0 fails with code 1", Needs::on(LO).at(VersionReq::Below("0.4.0")), check_too_old),
    c("VER-005", "STATUS with a config below 1.1.0 fails with code 1", Needs::on(LO).cmds(&[Cmd::Status]), status_too_old),
    c("VER-006", "GC with a config below 1.1.0 fails with code 1", Needs::on(LO).cmds(&[Cmd::Gc]), gc_too_old),
    c("VER-010", "bridge ADD at 0.3.0 returns a 0.3.0 result (ips[].version set)", exactly(BR, "0.3.0"), bridge_at),
    c("VER-011", "bridge ADD at 0.3.1 returns a 0.3.1 result (ips[].version set)", exactly(BR, "0.3.1"), bridge_at),
    c("VER-012", "bridge ADD at 0.4.0 returns a 0.4.0 result (ips[].version set)", exactly(BR, "0.4.0"), bridge_at),
    c("VER-013", "bridge ADD at 1.0.0 returns a 1.0.0 result (no ips[].version, no 1.1.0 fields)", exactly(BR, "1.0.0"), bridge_at),
    c("VER-014", "bridge ADD at 1.1.0 returns a 1.1.0 result", exactly(BR, "1.1.0"), bridge_at),
    c("VER-020", "loopback ADD at 0.3.0 returns a 0.3.0 result", exactly(LO, "0.3.0"), loopback_at),
    c("VER-021", "loopback ADD at 0.3.1 returns a 0.3.1 result", exactly(LO, "0.3.1"), loopback_at),
    c("VER-022", "loopback ADD at 0.4.0 returns a 0.4.0 result", exactly(LO, "0.4.0"), loopback_at),
    c("VER-023", "loopback ADD at 1.0.0 returns a 1.0.0 result", exactly(LO, "1.0.0"), loopback_at),
    c("VER-024", "loopback ADD at 1.1.0 returns a 1.1.0 result", exactly(LO, "1.1.0"), loopback_at),
    c("VER-030", "host-local ADD at 0.3.0 returns a 0.3.0 IPAM result", exactly(HL, "0.3.0"), host_local_at),
    c("VER-031", "host-local ADD at 0.3.1 returns a 0.3.1 IPAM result", exactly(HL, "0.3.1"), host_local_at),
    c("VER-032", "host-local ADD at 0.4.0 returns a 0.4.0 IPAM result", exactly(HL, "0.4.0"), host_local_at),
    c("VER-033", "host-local ADD at 1.0.0 returns a 1.0.0 IPAM result", exactly(HL, "1.0.0"), host_local_at),
    c("VER-034", "host-local ADD at 1.1.0 returns a 1.1.0 IPAM result", exactly(HL, "1.1.0"), host_local_at),
];

/// VERSION of `p` with stdin `stdin` and nothing but CNI_COMMAND set.
fn version_of(
    ctx: &Ctx,
    sb: &cni_harness::Sandbox,
    p: Plugin,
    stdin: &str,
) -> Result<Value, String> {
    let out = ctx
        .call(p, "VERSION")
        .unset("CNI_PATH")
        .stdin(stdin)
        .run(sb.host());
    let v = out.result()?;
    Ok(v)
}

fn version_reply(ctx: &Ctx) -> Res {
    let present = ctx.present();
    if present.is_empty() {
        not_applicable!("none of loopback, bridge, host-local, portmap is in the directory");
    }
    let sb = ctx.sandbox();
    let mut bad = Vec::new();
    for p in present {
        let v = match version_of(ctx, &sb, p, r#"{"cniVersion":"1.1.0"}"#) {
            Ok(v) => v,
            Err(e) => {
                bad.push(format!("{}: {e}", p.name()));
                continue;
            }
        };
        if !v["cniVersion"].as_str().is_some_and(version::well_formed) {
            bad.push(format!(
                "{}: cniVersion {} is not a version",
                p.name(),
                v["cniVersion"]
            ));
        }
        match v["supportedVersions"].as_array() {
            Some(l)
                if !l.is_empty()
                    && l.iter()
                        .all(|x| x.as_str().is_some_and(version::well_formed)) => {}
            _ => bad.push(format!(
                "{}: supportedVersions {} is not a non-empty list of versions",
                p.name(),
                v["supportedVersions"]
            )),
        }
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

fn version_echo(ctx: &Ctx) -> Res {
    let sb = ctx.sandbox();
    let mut bad = Vec::new();
    let mut asked_any = false;
    for p in ctx.present() {
        let Some(list) = ctx.versions(p) else {
            continue;
        };
        let newest = list.iter().max_by(|a, b| version::cmp(a, b)).cloned();
        // A version that is supported but not the newest, so an echo differs
        // from a fixed answer.
        let ask = ["0.4.0", "1.0.0", "0.3.1", "1.1.0"]
            .into_iter()
            .find(|v| list.iter().any(|x| x == v) && Some(v.to_string()) != newest);
        let Some(ask) = ask else { continue };
        asked_any = true;
        let stdin = json!({"cniVersion": ask}).to_string();
        match version_of(ctx, &sb, p, &stdin) {
            Ok(v) if v["cniVersion"] == ask => {}
            Ok(v) => bad.push(format!(
                "{}: asked {ask}, answered cniVersion {}",
                p.name(),
                v["cniVersion"]
            )),
            Err(e) => bad.push(format!("{}: {e}", p.name())),
        }
    }
    if !asked_any {
        not_applicable!("no plugin supports two known versions");
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

fn unsupported_version(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("cniVersion", json!("9.9.9"));
    let i = net.container();
    net.call("ADD", i, "ctr1", "eth0")
        .run(net.host())
        .error_code(1)?;
    ensure!(
        kernel::link(net.host(), BRIDGE)?.is_none(),
        "the rejected ADD created bridge {BRIDGE}"
    );
    net.expect_no_link(i, "eth0")?;
    net.expect_no_leases()?;
    Ok(())
}

fn check_too_old(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    lo_call(ctx, &sb, "CHECK")
        .config(&with_prev(&lo_conf(ctx), &res))
        .run(sb.host())
        .error_code(1)?;
    Ok(())
}

/// The newest version loopback supports below 1.1.0.
fn pre_1_1(ctx: &Ctx) -> Result<String, Problem> {
    let list = ctx.versions(Plugin::Loopback).unwrap_or_default();
    match version::KNOWN
        .iter()
        .rev()
        .find(|v| !version::has_v1_1_fields(v) && list.iter().any(|x| x == *v))
    {
        Some(v) => Ok(v.to_string()),
        None => not_applicable!("loopback supports no version below 1.1.0"),
    }
}

fn too_old(ctx: &Ctx, cmd: &str) -> Res {
    let old = pre_1_1(ctx)?;
    let sb = lo_sandbox(ctx);
    let mut conf = lo_conf(ctx);
    conf["cniVersion"] = json!(old);
    if cmd == "GC" {
        conf["cni.dev/valid-attachments"] = json!([]);
    }
    ctx.call(Plugin::Loopback, cmd)
        .config(&conf)
        .run(sb.host())
        .error_code(1)
        .map_err(|e| format!("{cmd} at {old}: {e}"))?;
    lo_untouched(&sb)?;
    Ok(())
}

fn status_too_old(ctx: &Ctx) -> Res {
    too_old(ctx, "STATUS")
}

fn gc_too_old(ctx: &Ctx) -> Res {
    too_old(ctx, "GC")
}

fn bridge_at(ctx: &Ctx) -> Res {
    let mut net = Net::bridge_with(ctx, dual_ranges())?;
    let i = net.container();
    let att = net.add_in(i, "ctr1", "eth0")?;
    result::shape(&att.result, &ctx.version, Kind::Main)
        .map_err(|e| format!("{e}: {}", excerpt(&att.result.to_string())))?;
    result::container_iface(&att.result, "eth0", &net.path_str(i))?;
    let fams: Vec<bool> = result::ips(&att.result)
        .iter()
        .map(|a| a.is_ipv4())
        .collect();
    ensure!(
        fams.contains(&true) && fams.contains(&false),
        "dual-stack IPAM config, but the result has not one address of each family: {}",
        att.result["ips"]
    );
    Ok(())
}

fn loopback_at(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    result::shape(&res, &ctx.version, Kind::Main)
        .map_err(|e| format!("{e}: {}", excerpt(&res.to_string())))?;
    ensure!(super::lo_up(&sb)?, "lo is not up after ADD");
    Ok(())
}

fn host_local_at(ctx: &Ctx) -> Res {
    let mut net = Net::host_local(ctx, dual_ranges())?;
    let i = net.container();
    let att = net.add_in(i, "ctr1", "eth0")?;
    result::shape(&att.result, &ctx.version, Kind::Ipam)
        .map_err(|e| format!("{e}: {}", excerpt(&att.result.to_string())))?;
    if result::ips(&att.result).len() != 2 {
        fail!("two range sets (v4, v6), but ips is {}", att.result["ips"]);
    }
    Ok(())
}
