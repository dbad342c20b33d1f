//! ERR: the error result ({"cniVersion", "code", "msg", "details"} on stdout,
//! non-zero exit) and what a failed ADD leaves behind.

use serde_json::{json, Value};

use super::{lo_call, lo_sandbox, BR, LO};
use crate::check::{Check, Group, Needs, Plugin, Res};
use crate::ctx::Ctx;
use crate::exec::{Call, Out};
use crate::fixture::{small_ranges, Net, BRIDGE};
use crate::{ensure, kernel, not_applicable};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::Err, rule, needs, run)
}

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("ERR-001", "Failures exit non-zero and print one JSON object on stdout with an integer code and a non-empty msg", Needs::on(LO), error_shape),
    c("ERR-002", "SHOULD: an error object carries \"cniVersion\", the config's version", Needs::on(LO), error_version),
    c("ERR-003", "A code 4 error for a missing variable names it (CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME) in its message", Needs::on(LO), names_missing_var),
    c("ERR-004", "A code 4 error for an invalid CNI_IFNAME names CNI_IFNAME in its message", Needs::on(LO), names_ifname),
    c("ERR-005", "A code 4 error for an invalid CNI_CONTAINERID names CNI_CONTAINERID in its message", Needs::on(LO), names_container_id),
    c("ERR-006", "ADD into an exhausted IPAM pool fails with an error result", Needs::on(BR), pool_exhausted),
    c("ERR-007", "SHOULD: an ADD that failed because IPAM failed leaves no interface in the container", Needs::on(BR), pool_exhausted_no_iface),
    c("ERR-008", "SHOULD: an ADD that fails after IPAM allocated (bridge address conflict) releases the reservation", Needs::on(BR), late_failure_releases),
    c("ERR-009", "SHOULD: an ADD that fails after IPAM allocated leaves no interface in the container", Needs::on(BR), late_failure_no_iface),
    c("ERR-010", "SHOULD: the main plugin passes on its IPAM plugin's error code", Needs::on(BR), ipam_code_passed_on),
    c("ERR-011", "A code 2 error (unsupported field) names the field and its value", Needs::on(BR), unsupported_field_named),
];

/// Failing loopback calls of several kinds, with what each is.
fn failing_calls(ctx: &Ctx, sb: &cni_harness::Sandbox) -> Vec<(String, Call)> {
    let base = || lo_call(ctx, sb, "ADD");
    let bad_version = json!({"cniVersion": "9.9.9", "name": "n", "type": "loopback"});
    vec![
        (
            "unknown CNI_COMMAND".into(),
            base().env("CNI_COMMAND", "ADDX"),
        ),
        (
            "missing CNI_CONTAINERID".into(),
            base().unset("CNI_CONTAINERID"),
        ),
        (
            "invalid CNI_IFNAME".into(),
            base().env("CNI_IFNAME", "eth/0"),
        ),
        ("stdin not JSON".into(), base().stdin("{")),
        ("unsupported cniVersion".into(), base().config(&bad_version)),
        (
            "CNI_NETNS missing on disk".into(),
            base().env("CNI_NETNS", "/run/netns/cnc-no-such-ns"),
        ),
    ]
}

fn error_shape(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let mut bad = Vec::new();
    for (what, call) in failing_calls(ctx, &sb) {
        if let Err(e) = call.run(sb.host()).error() {
            bad.push(format!("{what}: {e}"));
        }
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

fn error_version(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let mut bad = Vec::new();
    for (what, call) in failing_calls(ctx, &sb) {
        let want = serde_json::from_slice::<Value>(&call.stdin)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(str::to_string));
        let Some(want) = want else { continue };
        match call.run(sb.host()).error() {
            Ok(v) if v["cniVersion"] == want.as_str() => {}
            Ok(v) => bad.push(format!(
                "{what}: cniVersion is {} (config: {want}) in {v}",
                v["cniVersion"]
            )),
            Err(e) => bad.push(format!("{what}: {e}")),
        }
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

/// Whether the error's msg or details names `var` (case-insensitively, with
/// or without the `CNI_` prefix and underscores: `containerID` names
/// CNI_CONTAINERID).
fn names(err: &Value, var: &str) -> bool {
    let squash = |s: &str| s.to_ascii_lowercase().replace('_', "");
    let text = squash(&format!(
        "{} {}",
        err["msg"].as_str().unwrap_or_default(),
        err["details"].as_str().unwrap_or_default()
    ));
    let full = squash(var);
    let short = squash(var.trim_start_matches("CNI_"));
    text.contains(&full) || text.contains(&short)
}

fn expect_named(out: &Out, var: &str) -> Result<(), String> {
    let err = out.error_code(4)?;
    if names(&err, var) {
        Ok(())
    } else {
        Err(format!("the code 4 error does not name {var}: {err}"))
    }
}

fn names_missing_var(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let mut bad = Vec::new();
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        if let Err(e) = expect_named(&lo_call(ctx, &sb, "ADD").unset(var).run(sb.host()), var) {
            bad.push(format!("without {var}: {e}"));
        }
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

fn names_ifname(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let mut bad = Vec::new();
    for v in ["eth/0", "eth0123456789abc", ".."] {
        let out = lo_call(ctx, &sb, "ADD").env("CNI_IFNAME", v).run(sb.host());
        if let Err(e) = expect_named(&out, "CNI_IFNAME") {
            bad.push(format!("CNI_IFNAME={v:?}: {e}"));
        }
    }
    ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(())
}

fn names_container_id(ctx: &Ctx) -> Res {
    let sb = lo_sandbox(ctx);
    let out = lo_call(ctx, &sb, "ADD")
        .env("CNI_CONTAINERID", "ctr/1")
        .run(sb.host());
    expect_named(&out, "CNI_CONTAINERID")?;
    Ok(())
}

/// A one-address pool with ctr1 in it, and the failed ADD of ctr2.
fn exhausted<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, usize, Out), String> {
    let mut net = Net::bridge_with(ctx, small_ranges(1))?;
    net.add("ctr1")?;
    let j = net.container();
    let out = net.call("ADD", j, "ctr2", "eth0").run(net.host());
    Ok((net, j, out))
}

fn pool_exhausted(ctx: &Ctx) -> Res {
    let (_net, _j, out) = exhausted(ctx)?;
    out.error()?;
    Ok(())
}

fn pool_exhausted_no_iface(ctx: &Ctx) -> Res {
    let (net, j, out) = exhausted(ctx)?;
    if out.ok() {
        not_applicable!("ADD into a full pool succeeded: {}", out.describe());
    }
    net.expect_no_link(j, "eth0")?;
    Ok(())
}

/// ADD onto a bridge that already has another IPv4 address (isGateway):
/// the reference and ours refuse it after IPAM allocated.
fn conflict<'c, 'e>(ctx: &'c Ctx<'e>) -> Result<(Net<'c, 'e>, usize), crate::check::Problem> {
    let mut net = Net::bridge(ctx)?;
    kernel::ip(net.host(), &["link", "add", BRIDGE, "type", "bridge"])?;
    kernel::ip(net.host(), &["addr", "add", "10.99.0.1/24", "dev", BRIDGE])?;
    kernel::ip(net.host(), &["link", "set", BRIDGE, "up"])?;
    let j = net.container();
    let out = net.call("ADD", j, "ctr1", "eth0").run(net.host());
    if out.ok() {
        not_applicable!(
            "ADD onto a bridge holding another address succeeded, so no late failure happened: {}",
            out.describe()
        );
    }
    out.error()?;
    Ok((net, j))
}

fn late_failure_releases(ctx: &Ctx) -> Res {
    let (net, _j) = conflict(ctx)?;
    net.expect_no_leases()?;
    Ok(())
}

fn late_failure_no_iface(ctx: &Ctx) -> Res {
    let (net, j) = conflict(ctx)?;
    net.expect_no_link(j, "eth0")?;
    Ok(())
}

fn ipam_code_passed_on(ctx: &Ctx) -> Res {
    let (net, j, out) = exhausted(ctx)?;
    let bridge_err = out.error()?;
    let ipam_err = net
        .ctx
        .call(Plugin::HostLocal, "ADD")
        .attach("ctr3", &net.path(j), "net1")
        .config(&net.conf)
        .run(net.host())
        .error()?;
    ensure!(
        bridge_err["code"] == ipam_err["code"],
        "host-local fails with code {} ({}), bridge reports code {} ({})",
        ipam_err["code"],
        ipam_err["msg"],
        bridge_err["code"],
        bridge_err["msg"]
    );
    Ok(())
}

/// bridge with `"vlan": 100`: only a plugin that refuses it as unsupported
/// (code 2) is judged; the spec: "The error message must contain the key and
/// value of the unsupported field."
fn unsupported_field_named(ctx: &Ctx) -> Res {
    let mut net = Net::bridge(ctx)?;
    net.set("vlan", json!(100));
    let j = net.container();
    let out = net.call("ADD", j, "ctr1", "eth0").run(net.host());
    if out.ok() {
        not_applicable!("bridge accepted \"vlan\": 100, so it raised no code 2");
    }
    let err = out.error()?;
    if err["code"] != 2 {
        not_applicable!(
            "bridge refused \"vlan\": 100 with code {}, not 2 (unsupported field): {}",
            err["code"],
            err["msg"]
        );
    }
    let text = format!(
        "{} {}",
        err["msg"].as_str().unwrap_or_default(),
        err["details"].as_str().unwrap_or_default()
    );
    ensure!(
        text.contains("vlan") && text.contains("100"),
        "the code 2 error does not name both the key (vlan) and the value (100): {err}"
    );
    Ok(())
}
