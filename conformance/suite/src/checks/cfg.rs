//! CFG: the network configuration on stdin (spec section 1; codes 6 and 7).

use serde_json::{json, Value};

use super::{lo_call, lo_sandbox, lo_untouched, BR, LO};
use crate::check::{Check, Group, Needs, Problem, Res};
use crate::ctx::Ctx;
use crate::fixture::{Net, BRIDGE};
use crate::{ensure, kernel, result};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Cfg, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("CFG-001", "A config on stdin that is not JSON is rejected with code 6 and changes nothing", Needs::on(LO), not_json),
    c("CFG-002", "An empty stdin on ADD is rejected with code 6", Needs::on(LO), empty_stdin),
    c("CFG-003", "A config that is a JSON array instead of an object is rejected with code 6 or 7", Needs::on(LO), array),
    c("CFG-004", "A config without \"name\" is rejected with code 7", Needs::on(LO), no_name),
    c("CFG-005", "A network name outside ^[A-Za-z0-9][A-Za-z0-9_.-]*$ is rejected with code 7", Needs::on(LO), bad_name),
    c("CFG-006", "A network name using '_', '.' and '-' after an alphanumeric start is accepted", Needs::on(BR), good_name),
    c("CFG-007", "An invalid plugin-specific value fails ADD before any state changes (no bridge, interface or lease)", Needs::on(BR), invalid_value),
    c("CFG-008", "SHOULD: an invalid plugin-specific value is reported with code 7 (invalid network config)", Needs::on(BR), invalid_value_code),
    c("CFG-009", "An invalid IPAM section fails ADD with an error result and leaves no lease", Needs::on(BR), invalid_ipam),
    c("CFG-010", "SHOULD: a \"capabilities\" key in the plugin config is tolerated (older runtimes pass it through)", Needs::on(BR), capabilities_key),
    c("CFG-011", "SHOULD: unknown entries in \"args\" and \"runtimeConfig\" are ignored", Needs::on(BR), unknown_args),
];

fn rejected(ctx: &Ctx, stdin: &str, codes: &[u64]) -> Res {
    let sb = lo_sandbox(ctx);
    lo_call(ctx, &sb, "ADD")
        .stdin(stdin)
        .run(sb.host())
        .error_code_in(codes)?;
    lo_untouched(&sb)?;
    Ok(())
}

fn not_json(ctx: &Ctx) -> Res {
    rejected(ctx, "{\"cniVersion\": \"1.0.0\", \"name\": ", &[6])
}

fn empty_stdin(ctx: &Ctx) -> Res {
    rejected(ctx, "", &[6])
}

fn array(ctx: &Ctx) -> Res {
    let conf = json!([{"cniVersion": ctx.version, "name": "n", "type": "loopback"}]);
    rejected(ctx, &conf.to_string(), &[6, 7])
}

fn no_name(ctx: &Ctx) -> Res {
    let conf = json!({"cniVersion": ctx.version, "type": "loopback"});
    rejected(ctx, &conf.to_string(), &[7])
}

fn bad_name(ctx: &Ctx) -> Res {
    for name in ["net/1", "net 1", "_net1", "-net1"] {
        let conf = json!({"cniVersion": ctx.version, "name": name, "type": "loopback"});
        rejected(ctx, &conf.to_string(), &[7]).map_err(|p| match p {
            Problem::Fail(m) => Problem::Fail(format!("name {name:?}: {m}")),
            other => other,
        })?;
    }
    Ok(())
}

fn good_name(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("name", json!("cnc_net.a-1"));
    let i = net.container();
    let att = net.add_in(i, "ctr1", "eth0")?;
    result::container_iface(&att.result, "eth0", &net.path_str(i))?;
    Ok(())
}

/// ADD with `isGateway: "yes"`: its error, after checking nothing changed.
fn invalid_value_error(ctx: &Ctx) -> Result<Value, Problem> {
    let mut net = Net::bridge(ctx)?;
    net.set("isGateway", json!("yes"));
    let i = net.container();
    let err = net.call("ADD", i, "ctr1", "eth0").run(net.host()).error()?;
    ensure!(
        kernel::link(net.host(), BRIDGE)?.is_none(),
        "the rejected ADD created bridge {BRIDGE}"
    );
    net.expect_no_link(i, "eth0")?;
    net.expect_no_leases()?;
    Ok(err)
}

fn invalid_value(ctx: &Ctx) -> Res {
    invalid_value_error(ctx).map(drop)
}

fn invalid_value_code(ctx: &Ctx) -> Res {
    let err = invalid_value_error(ctx)?;
    ensure!(
        err["code"] == 7,
        "\"isGateway\": \"yes\" was reported with code {} (msg {}), not 7",
        err["code"],
        err["msg"]
    );
    Ok(())
}

fn invalid_ipam(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.conf["ipam"]["ranges"] = json!([[{"subnet": "10.77.0.0/33"}]]);
    let i = net.container();
    net.call("ADD", i, "ctr1", "eth0").run(net.host()).error()?;
    net.expect_no_leases()?;
    Ok(())
}

fn capabilities_key(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("capabilities", json!({"portMappings": true, "mac": true}));
    net.add("ctr1")?;
    Ok(())
}

fn unknown_args(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set(
        "args",
        json!({"cni": {"cncUnused": "x"}, "labels": [{"key": "app", "value": "web"}]}),
    );
    net.set(
        "runtimeConfig",
        json!({"bandwidth": {"ingressRate": 1000, "ingressBurst": 1000}, "cncUnused": [1]}),
    );
    net.add("ctr1")?;
    Ok(())
}
