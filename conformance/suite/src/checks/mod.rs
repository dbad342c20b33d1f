//! The checks, one file per group, and helpers they share.

use cni_harness::Sandbox;
use serde_json::{json, Value};

use crate::check::{Check, Plugin};
use crate::ctx::Ctx;
use crate::exec::Call;
use crate::fixture::NET;

mod add;
mod cfg;
mod chain;
mod chk;
mod clash;
mod del;
mod env;
mod err;
mod gc;
mod list;
mod par;
mod status;
mod ver;

/// Every check, in report order.
pub fn all() -> Vec<&'static Check> {
    [
        env::CHECKS,
        cfg::CHECKS,
        ver::CHECKS,
        add::CHECKS,
        chain::CHECKS,
        del::CHECKS,
        chk::CHECKS,
        status::CHECKS,
        gc::CHECKS,
        err::CHECKS,
        par::CHECKS,
        clash::CHECKS,
        list::CHECKS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A check's place in the report order.
pub fn position(id: &str) -> usize {
    all().iter().position(|c| c.id == id).unwrap_or(usize::MAX)
}

pub(crate) const LO: &[Plugin] = &[Plugin::Loopback];
pub(crate) const BR: &[Plugin] = &[Plugin::Bridge, Plugin::HostLocal];
pub(crate) const HL: &[Plugin] = &[Plugin::HostLocal];
pub(crate) const BR_PM: &[Plugin] = &[Plugin::Bridge, Plugin::HostLocal, Plugin::Portmap];
pub(crate) const BR_LO: &[Plugin] = &[Plugin::Bridge, Plugin::HostLocal, Plugin::Loopback];
pub(crate) const NONE: &[Plugin] = &[];

/// The loopback plugin's config at the check's version.
pub(crate) fn lo_conf(ctx: &Ctx) -> Value {
    json!({"cniVersion": ctx.version, "name": NET, "type": "loopback"})
}

/// A sandbox with one container (its `lo` down, as a runtime leaves it).
pub(crate) fn lo_sandbox(ctx: &Ctx) -> Sandbox {
    let mut sb = ctx.sandbox();
    sb.add_container();
    sb
}

/// A loopback call for container 0 of `sb` (id `ctr1`, ifname `eth0`).
pub(crate) fn lo_call(ctx: &Ctx, sb: &Sandbox, cmd: &str) -> Call {
    ctx.call(Plugin::Loopback, cmd)
        .attach("ctr1", &sb.container(0).path(), "eth0")
        .config(&lo_conf(ctx))
}

/// Whether `lo` of container 0 is up.
pub(crate) fn lo_up(sb: &Sandbox) -> Result<bool, String> {
    let lo = crate::kernel::link(sb.container(0), "lo")?.ok_or("no lo in the container")?;
    Ok(crate::kernel::is_up(&lo))
}

/// Fails when the rejected call nonetheless brought `lo` up.
pub(crate) fn lo_untouched(sb: &Sandbox) -> Result<(), String> {
    if lo_up(sb)? {
        Err("the rejected call changed the container anyway: lo is up".into())
    } else {
        Ok(())
    }
}

/// A config with the `prevResult` given.
pub(crate) fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_well_formed_and_in_their_group() {
        let all = all();
        assert!(all.len() >= 60, "only {} checks", all.len());
        let mut seen = HashSet::new();
        for c in &all {
            assert!(seen.insert(c.id), "duplicate id {}", c.id);
            let (prefix, num) = c.id.split_once('-').expect("ID-NNN");
            assert_eq!(prefix, c.group.prefix(), "{}", c.id);
            assert!(
                num.len() == 3 && num.chars().all(|d| d.is_ascii_digit()),
                "{}",
                c.id
            );
            assert!(
                !c.rule.contains('\n') && c.rule.len() < 200,
                "{}: rule too long",
                c.id
            );
        }
        for g in crate::check::Group::ALL {
            assert!(all.iter().any(|c| c.group == g), "group {g:?} is empty");
        }
    }
}
