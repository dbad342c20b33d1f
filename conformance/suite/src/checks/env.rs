//! ENV: the CNI_* environment (spec section 2, "Parameters"; code 4 is
//! "invalid necessary environment variables").

use serde_json::json;

use super::{lo_call, lo_conf, lo_sandbox, lo_untouched, BR, LO};
use crate::check::{Check, Cmd, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::Call;
use crate::fixture::Net;
use crate::{ensure, result};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Env, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("ENV-001", "An unknown CNI_COMMAND is rejected with error code 4", Needs::on(LO), unknown_command),
    c("ENV-002", "ADD without CNI_CONTAINERID fails with code 4 and changes nothing", Needs::on(LO), add_no_id),
    c("ENV-003", "ADD without CNI_NETNS fails with code 4", Needs::on(LO), add_no_netns),
    c("ENV-004", "ADD without CNI_IFNAME fails with code 4 and changes nothing", Needs::on(LO), add_no_ifname),
    c("ENV-005", "CHECK without CNI_NETNS fails with code 4", Needs::on(LO).cmds(&[Cmd::Check]), check_no_netns),
    c("ENV-006", "DEL without CNI_CONTAINERID or without CNI_IFNAME fails with code 4", Needs::on(LO), del_missing),
    c("ENV-007", "A CNI_CONTAINERID with a character outside [A-Za-z0-9_.-] is rejected with code 4", Needs::on(LO), id_bad_chars),
    c("ENV-008", "A CNI_CONTAINERID that does not start with a letter or digit is rejected with code 4", Needs::on(LO), id_bad_start),
    c("ENV-009", "A CNI_IFNAME of 16 or more characters is rejected with code 4", Needs::on(LO), ifname_long),
    c("ENV-010", "CNI_IFNAME \".\" or \"..\" is rejected with code 4", Needs::on(LO), ifname_dots),
    c("ENV-011", "A CNI_IFNAME containing '/', ':' or whitespace is rejected with code 4", Needs::on(LO), ifname_chars),
    c("ENV-012", "A CNI_IFNAME of exactly 15 characters is accepted and created in the container", Needs::on(BR), ifname_15),
    c("ENV-013", "ADD with a CNI_NETNS path that does not exist fails with an error result and allocates no address", Needs::on(BR), netns_missing),
    c("ENV-014", "ADD that must delegate fails with an error result when CNI_PATH lacks the IPAM plugin", Needs::on(BR), cni_path_missing),
    c("ENV-015", "SHOULD: ADD accepts CNI_ARGS with IgnoreUnknown=1 and keys it does not use (K8S_POD_NAME, ...)", Needs::on(BR), cni_args_ignore_unknown),
    c("ENV-016", "STATUS and GC accept empty CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME", Needs::on(BR).cmds(&[Cmd::Status, Cmd::Gc]), status_gc_empty_vars),
];

/// A loopback ADD after `f` changed it must fail with 4 and leave lo down.
fn rejected_add(ctx: &Ctx, f: impl FnOnce(Call) -> Call) -> Res {
    let sb = lo_sandbox(ctx);
    let out = f(lo_call(ctx, &sb, "ADD")).run(sb.host());
    out.error_code(4)?;
    lo_untouched(&sb)?;
    Ok(())
}

fn unknown_command(ctx: &Ctx) -> Res {
    rejected_add(ctx, |c| c.env("CNI_COMMAND", "ADDX"))
}

fn add_no_id(ctx: &Ctx) -> Res {
    rejected_add(ctx, |c| c.unset("CNI_CONTAINERID"))
}

fn add_no_netns(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    lo_call(ctx, &sb, "ADD")
        .unset("CNI_NETNS")
        .run(sb.host())
        .error_code(4)?;
    Ok(())
}

fn add_no_ifname(ctx: &Ctx) -> Res {
    rejected_add(ctx, |c| c.unset("CNI_IFNAME"))
}

fn check_no_netns(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let res = lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    lo_call(ctx, &sb, "CHECK")
        .config(&super::with_prev(&lo_conf(ctx), &res))
        .unset("CNI_NETNS")
        .run(sb.host())
        .error_code(4)?;
    Ok(())
}

fn del_missing(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    lo_call(ctx, &sb, "ADD").run(sb.host()).result()?;
    for var in ["CNI_CONTAINERID", "CNI_IFNAME"] {
        lo_call(ctx, &sb, "DEL")
            .unset(var)
            .run(sb.host())
            .error_code(4)
            .map_err(|e| format!("without {var}: {e}"))?;
    }
    ensure!(
        super::lo_up(&sb)?,
        "a rejected DEL changed the container: lo is down"
    );
    Ok(())
}

fn each_rejected(ctx: &Ctx, var: &str, values: &[&str]) -> Res {
    for v in values {
        rejected_add(ctx, |c| c.env(var, v)).map_err(|p| match p {
            crate::check::Problem::Fail(m) => format!("{var}={v:?}: {m}"),
            crate::check::Problem::NotApplicable(m) => m,
        })?;
    }
    Ok(())
}

fn id_bad_chars(ctx: &Ctx) -> Res {
    each_rejected(
        ctx,
        "CNI_CONTAINERID",
        &["ctr/1", "ctr 1", "ctr:1", "ctr$1"],
    )
}

fn id_bad_start(ctx: &Ctx) -> Res {
    each_rejected(ctx, "CNI_CONTAINERID", &["_ctr1", ".ctr1", "-ctr1"])
}

fn ifname_long(ctx: &Ctx) -> Res {
    each_rejected(
        ctx,
        "CNI_IFNAME",
        &["eth0123456789abc", "a-much-longer-interface-name"],
    )
}

fn ifname_dots(ctx: &Ctx) -> Res {
    each_rejected(ctx, "CNI_IFNAME", &[".", ".."])
}

fn ifname_chars(ctx: &Ctx) -> Res {
    each_rejected(ctx, "CNI_IFNAME", &["et/h0", "eth:0", "eth 0", "eth\t0"])
}

fn ifname_15(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    let name = "cnc012345678901";
    let att = net.add_in(i, "ctr1", name)?;
    result::container_iface(&att.result, name, &net.path_str(i))?;
    net.expect_link(i, name)?;
    Ok(())
}

fn netns_missing(ctx: &Ctx) -> Res {
    let net = Net::bridge(ctx)?;
    let gone = std::path::Path::new("/run/netns/cnc-does-not-exist");
    net.ctx
        .call(Plugin::Bridge, "ADD")
        .attach("ctr1", gone, "eth0")
        .config(&net.conf)
        .run(net.host())
        .error()?;
    net.expect_no_leases()?;
    Ok(())
}

fn cni_path_missing(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    let empty = ctx.tempdir()?;
    net.call("ADD", i, "ctr1", "eth0")
        .env("CNI_PATH", &empty.path().to_string_lossy())
        .run(net.host())
        .error()?;
    Ok(())
}

fn cni_args_ignore_unknown(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    let i = net.container();
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=ctr1;CNC_UNUSED=yes";
    let res = net
        .call("ADD", i, "ctr1", "eth0")
        .env("CNI_ARGS", args)
        .run(net.host())
        .result()?;
    result::container_iface(&res, "eth0", &net.path_str(i))?;
    Ok(())
}

fn status_gc_empty_vars(ctx: &Ctx) -> Res {
    let net = Net::bridge(ctx)?;
    let empty = |c: Call| {
        c.env("CNI_CONTAINERID", "")
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "")
    };
    empty(ctx.call(Plugin::Bridge, "STATUS").config(&net.conf))
        .run(net.host())
        .succeeded()?;
    let mut gc = net.conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    empty(ctx.call(Plugin::Bridge, "GC").config(&gc))
        .run(net.host())
        .succeeded()?;
    Ok(())
}
