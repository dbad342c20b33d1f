//! CHAIN: chained plugins and prevResult ("Plugins provided a prevResult ...
//! must output it as their result, with any possible modifications made by
//! that plugin included").

use serde_json::{json, Value};

use super::{lo_conf, lo_sandbox, with_prev, BR_LO, BR_PM, LO};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Res, VersionReq};
use crate::ctx::Ctx;
use crate::exec::excerpt;
use crate::fixture::{Att, Net, NET};
use crate::result::{self, normalize, Kind};
use crate::{ensure, kernel, not_applicable, version};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Chain, rule, needs, run)
}

const fn exactly(v: &'static str) -> Needs {
    Needs::on(LO).at(VersionReq::Exactly(v))
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("CHAIN-001", "A chained plugin (loopback) given a 0.3.0 prevResult outputs an equivalent 0.3.0 result", exactly("0.3.0"), pass_through),
    c("CHAIN-002", "A chained plugin (loopback) given a 0.3.1 prevResult outputs an equivalent 0.3.1 result", exactly("0.3.1"), pass_through),
    c("CHAIN-003", "A chained plugin (loopback) given a 0.4.0 prevResult outputs an equivalent 0.4.0 result", exactly("0.4.0"), pass_through),
    c("CHAIN-004", "A chained plugin (loopback) given a 1.0.0 prevResult outputs an equivalent 1.0.0 result", exactly("1.0.0"), pass_through),
    c("CHAIN-005", "A chained plugin (loopback) given a 1.1.0 prevResult outputs an equivalent 1.1.0 result", exactly("1.1.0"), pass_through),
    c("CHAIN-006", "portmap without port mappings, chained after bridge, outputs the bridge's result unchanged", Needs::on(BR_PM), portmap_no_mappings),
    c("CHAIN-007", "portmap with port mappings outputs a result that keeps every interface and IP of prevResult", Needs::on(BR_PM), portmap_keeps_prev),
    c("CHAIN-008", "At 1.1.0 a chained plugin keeps prevResult's 1.1.0-only fields (interface mtu/socketPath/pciID, route mtu/table/...)", exactly("1.1.0"), keeps_v1_1_fields),
    c("CHAIN-009", "A chained plugin's CHECK succeeds with the chain's final result as prevResult (bridge then loopback)", Needs::on(BR_LO).cmds(&[Cmd::Check]), chained_check),
    c("CHAIN-010", "SHOULD: portmap DEL removes the host rules it added for the container's address", Needs::on(BR_PM), portmap_del_cleans),
];

/// A result of `version` for a container at `netns`.
pub(crate) fn synthetic_result(version: &str, netns: &str) -> Value {
    let old = version::has_ip_version(version);
    let mut v4 = json!({"address": "10.77.0.5/24", "gateway": "10.77.0.1", "interface": 0});
    let mut v6 = json!({"address": "fd77::5/64", "gateway": "fd77::1", "interface": 0});
    if old {
        v4["version"] = json!("4");
        v6["version"] = json!("6");
    }
    json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:4d:00:05", "sandbox": netns}],
        "ips": [v4, v6],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}],
        "dns": {"nameservers": ["10.77.0.1"], "search": ["cnc.test"]},
    })
}

fn loopback_chained(ctx: &Ctx, prev: &Value) -> Res {
    let sb = lo_sandbox(ctx);
    let out = super::lo_call(ctx, &sb, "ADD")
        .config(&with_prev(&lo_conf(ctx), prev))
        .run(sb.host())
        .result()?;
    result::shape(&out, &ctx.version, Kind::Main)
        .map_err(|e| format!("{e}: {}", excerpt(&out.to_string())))?;
    result::equivalent(&out, prev)?;
    Ok(())
}

fn pass_through(ctx: &Ctx) -> Res {
    let prev = synthetic_result(&ctx.version, "/run/netns/cnc-chain-example");
    loopback_chained(ctx, &prev)
}

fn keeps_v1_1_fields(ctx: &Ctx) -> Res {
    let mut prev = synthetic_result(&ctx.version, "/run/netns/cnc-chain-example");
    prev["interfaces"][0]["mtu"] = json!(1400);
    prev["interfaces"][0]["socketPath"] = json!("/run/cnc/eth0.sock");
    prev["interfaces"][0]["pciID"] = json!("0000:00:1f.6");
    prev["routes"][0]["mtu"] = json!(1400);
    prev["routes"][0]["advmss"] = json!(1360);
    prev["routes"][0]["priority"] = json!(100);
    prev["routes"][0]["table"] = json!(100);
    prev["routes"][0]["scope"] = json!(0);
    let sb = lo_sandbox(ctx);
    let out = super::lo_call(ctx, &sb, "ADD")
        .config(&with_prev(&lo_conf(ctx), &prev))
        .run(sb.host())
        .result()?;
    result::equivalent(&out, &prev)?;
    Ok(())
}

/// portmap's config; with `host_port`, two mappings (tcp `host_port`->80,
/// udp `host_port+1`->53) as the `portMappings` capability.
pub(crate) fn portmap_conf(ctx: &Ctx, prev: &Value, host_port: Option<u16>) -> Value {
    let mut conf = json!({
        "cniVersion": ctx.version,
        "name": NET,
        "type": "portmap",
        "prevResult": prev,
    });
    if let Some(p) = host_port {
        conf["runtimeConfig"] = json!({"portMappings": [
            {"hostPort": p, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": p + 1, "containerPort": 53, "protocol": "udp"},
        ]});
    }
    conf
}

/// portmap `cmd` for attachment `a` with `conf`.
pub(crate) fn portmap_call(net: &Net, a: &Att, cmd: &str, conf: &Value) -> crate::exec::Out {
    net.ctx
        .call(Plugin::Portmap, cmd)
        .attach(&a.id, &net.path(a.ctr), &a.ifname)
        .config(conf)
        .run(net.host())
}

/// bridge ADD then portmap ADD (with or without mappings): the bridge
/// attachment and portmap's output.
pub(crate) fn bridge_then_portmap<'c, 'e>(
    ctx: &'c Ctx<'e>,
    mappings: bool,
) -> Result<(Net<'c, 'e>, Att, Value), String> {
    let mut net = Net::bridge(ctx)?;
    let att = net.add("ctr1")?;
    if result::ips(&att.result).is_empty() {
        return Err(format!(
            "bridge ADD reported no address to chain portmap after: {}",
            excerpt(&att.result.to_string())
        ));
    }
    let port = mappings.then_some(18080);
    let out = portmap_call(&net, &att, "ADD", &portmap_conf(ctx, &att.result, port)).result()?;
    Ok((net, att, out))
}

fn portmap_no_mappings(ctx: &Ctx) -> Res {
    let (_net, att, out) = bridge_then_portmap(ctx, false)?;
    result::equivalent(&out, &att.result)?;
    Ok(())
}

fn portmap_keeps_prev(ctx: &Ctx) -> Res {
    let (_net, att, out) = bridge_then_portmap(ctx, true)?;
    result::shape(&out, &ctx.version, Kind::Main)?;
    let (got, want) = (normalize(&out), normalize(&att.result));
    for key in ["interfaces", "ips"] {
        let have = got[key].as_array().cloned().unwrap_or_default();
        for item in want[key].as_array().cloned().unwrap_or_default() {
            ensure!(
                have.contains(&item),
                "{key} entry {item} of prevResult is missing from portmap's result {}",
                got[key]
            );
        }
    }
    Ok(())
}

fn chained_check(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let att = net.add("ctr1")?;
    let lo_conf = lo_conf(ctx);
    let call = |cmd: &str, prev: &Value| {
        ctx.call(Plugin::Loopback, cmd)
            .attach(&att.id, &net.path(att.ctr), &att.ifname)
            .config(&with_prev(&lo_conf, prev))
            .run(net.host())
    };
    let fin = call("ADD", &att.result).result()?;
    call("CHECK", &fin).silent_success()?;
    Ok(())
}

fn portmap_del_cleans(ctx: &Ctx) -> Res {
    let (net, att, out) = bridge_then_portmap(ctx, true)?;
    let ip = att.ipv4()?.to_string();
    if !kernel::mentions(&kernel::ruleset(net.host())?, &ip) {
        not_applicable!("after portmap ADD no host rule names {ip}, so nothing can be judged");
    }
    portmap_call(&net, &att, "DEL", &portmap_conf(ctx, &out, Some(18080))).succeeded()?;
    let rules = kernel::ruleset(net.host())?;
    ensure!(
        !kernel::mentions(&rules, &ip),
        "after portmap DEL the host ruleset still names {ip}: {}",
        excerpt(&rules)
    );
    Ok(())
}
