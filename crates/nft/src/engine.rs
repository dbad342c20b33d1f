//! The mechanics shared by the three rule sets.
//!
//! A rule set ([`Layout`]) is one table we own holding
//! - verdict maps that index attachments (key: container address, host
//!   interface name, protocol + port, ...; value: `jump <attachment chain>`),
//! - fixed chains (base chains on hooks and regular dispatch chains) whose
//!   rules never depend on attachments: the full ADD batch flushes and
//!   re-adds them (so they never duplicate), CHECK compares them, GC repairs
//!   them when they drifted,
//! - per-attachment regular chains, named `<prefix><16 hex of sha256(tag)>`,
//!   whose every rule carries the attachment's tag as comment. The rules are
//!   self-contained (they match the addresses / ports themselves), so a stale
//!   map element that still points at a chain can never widen what it does.
//!
//! ADD on a node where the table already exists (every ADD but the first)
//! only *creates* the attachment's chains, rules and elements, in one netlink
//! batch (`crate::nl`): re-adding or flushing existing objects would make the
//! kernel wait for an RCU grace period, creating new ones does not. When
//! that batch is refused (first ADD, a re-ADD of the same attachment, a
//! tampered table) the full batch runs through `nft`: table, maps and chains
//! "add"ed, the fixed chains flushed and refilled, the attachment's chains
//! flushed and refilled, its elements added. If the kernel refuses that
//! because an element's key is held by another (stale) attachment, ADD lists
//! the table once, deletes the clashing elements and applies again in one
//! batch.
//!
//! DEL and GC: what goes is decided in `crate::plan`; the back end (netlink
//! for DEL, `nft` for GC and as DEL's fallback) only lists and applies.
//! Which back end runs is decided by [`Way::chosen`], nowhere else.

use std::collections::BTreeSet;

use nftables::types::NfFamily;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::build::{family_name, Batch, Expr, Hook, Stmt};
use crate::error::{Error, ErrorKind, Result};
use crate::exec;
use crate::listing::Listing;
use crate::nl::{Attach, Nl};
use crate::plan::{self, Chains};

/// Which back end changes the kernel: chosen here, per operation, and
/// nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// In-process netlink for ADD's create-only batch and for DEL; `nft`
    /// for everything else, and for what netlink can't express or failed at.
    NetlinkFirst,
    /// `CNI_RS_NFT_EXEC=1`: every change through `nft`, a way out should a
    /// kernel refuse something the netlink path sends.
    ExecOnly,
}

impl Way {
    pub fn chosen() -> Way {
        if std::env::var_os("CNI_RS_NFT_EXEC").is_some_and(|v| v == "1") {
            Way::ExecOnly
        } else {
            Way::NetlinkFirst
        }
    }
}

/// Without nf_tables in the kernel (no netfilter netlink family) nothing of
/// ours can exist.
fn nf_tables_absent(e: &netlink::Error) -> bool {
    matches!(e.errno(), Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT))
}

/// A verdict map of the layout.
pub(crate) struct MapDef {
    pub name: &'static str,
    /// `"ipv4_addr"` or `["inet_proto", "inet_service"]`, ...
    pub key_type: Value,
}

/// A chain whose rules are the same whatever the attachments.
pub(crate) struct FixedChain {
    pub name: &'static str,
    pub hook: Option<Hook>,
    pub rules: Vec<Vec<Stmt>>,
}

/// One of our tables.
pub(crate) struct Layout {
    /// For messages: "masquerade", "spoof check", "port mapping".
    pub what: &'static str,
    pub family: NfFamily,
    pub table: &'static str,
    pub maps: Vec<MapDef>,
    /// Created in this order; regular chains that base chains jump to come first.
    pub chains: Vec<FixedChain>,
    /// Name prefixes of per-attachment chains.
    pub att_prefixes: &'static [&'static str],
}

/// A per-attachment chain and its rules (the tag comment is added on write).
pub(crate) struct AttChain {
    pub name: String,
    pub rules: Vec<Vec<Stmt>>,
}

/// A map element that sends matching packets to an attachment chain.
pub(crate) struct AttElem {
    pub map: &'static str,
    pub key: Expr,
    pub chain: String,
}

/// Everything one attachment owns in a layout.
pub(crate) struct AttState {
    pub tag: String,
    pub chains: Vec<AttChain>,
    pub elems: Vec<AttElem>,
}

/// `<prefix><16 hex chars of sha256(tag)>`: deterministic, short, valid.
pub(crate) fn chain_name(prefix: &str, tag: &str) -> String {
    let digest = Sha256::digest(tag.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Layout {
    fn fam(&self) -> &'static str {
        family_name(self.family)
    }

    fn context(&self, op: &str, tag: &str) -> String {
        format!("{} {op} for {tag}", self.what)
    }

    /// Table, maps and fixed chains, the fixed chains flushed and refilled.
    pub fn ensure(&self, b: &mut Batch) {
        b.add_table(self.family, self.table);
        for m in &self.maps {
            b.add_verdict_map(self.family, self.table, m.name, &m.key_type);
        }
        for c in &self.chains {
            b.add_chain(self.family, self.table, c.name, c.hook);
        }
        for c in &self.chains {
            b.flush_chain(self.family, self.table, c.name);
            for r in &c.rules {
                b.add_rule(self.family, self.table, c.name, r.clone(), None);
            }
        }
    }

    /// Only what the attachment adds, all of it new: fails (changing
    /// nothing) when the table, a map or a fixed chain is missing or the
    /// attachment's chain already exists.
    pub fn attach_batch(&self, st: &AttState) -> Batch {
        let mut b = Batch::default();
        self.push_attachment(&mut b, st, true);
        b
    }

    /// The whole ADD batch for one attachment.
    pub fn add_batch(&self, st: &AttState) -> Batch {
        let mut b = Batch::default();
        self.ensure(&mut b);
        self.push_attachment(&mut b, st, false);
        b
    }

    /// The attachment's chains (created new, or added and flushed), their
    /// tagged rules, and the map elements leading to them.
    fn push_attachment(&self, b: &mut Batch, st: &AttState, create: bool) {
        for c in &st.chains {
            if create {
                b.create_chain(self.family, self.table, &c.name);
            } else {
                b.add_chain(self.family, self.table, &c.name, None);
                b.flush_chain(self.family, self.table, &c.name);
            }
            for r in &c.rules {
                b.add_rule(self.family, self.table, &c.name, r.clone(), Some(&st.tag));
            }
        }
        for e in &st.elems {
            b.add_jump_element(
                self.family,
                self.table,
                e.map,
                e.key.clone(),
                &e.chain,
                &st.tag,
            );
        }
    }

    fn list(&self) -> Result<Option<Listing>> {
        match exec::list_table(self.fam(), self.table)? {
            None => Ok(None),
            Some(doc) => Listing::parse(&doc, self.fam(), self.table).map(Some),
        }
    }

    pub fn add(&self, st: &AttState) -> Result<()> {
        let ctx = || self.context("ADD", &st.tag);
        // Fast path: the table and its fixed chains are in place, the
        // attachment's objects are all new: one netlink batch in-process
        // (or one `nft` run for what netlink here can't express).
        let fast = match Way::chosen() {
            Way::NetlinkFirst => match Nl::open(self) {
                Ok(mut nl) => nl.attach(self, st),
                Err(_) => Attach::Refused,
            },
            Way::ExecOnly => Attach::Unsupported,
        };
        match fast {
            Attach::Done => return Ok(()),
            // Refused (first ADD, re-ADD, a key still taken): nothing
            // changed; the full batch below deals with it.
            Attach::Refused => {}
            Attach::Unsupported => {
                if exec::apply(&self.attach_batch(st).to_json()).is_ok() {
                    return Ok(());
                }
            }
        }
        // Full batch; if the kernel refuses it because an element key still
        // leads to a stale attachment's chain (an address or port reused
        // before that one's DEL came), delete those elements in the same
        // batch. A concurrent DEL or ADD may change the table between the
        // listing and the batch: then try again from a fresh listing.
        let mut last = None;
        for _ in 0..plan::ATTEMPTS {
            match exec::apply(&self.add_batch(st).to_json()) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            let listing = match self.list() {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => return Err(e.within(ctx())),
            };
            let mut fix = Batch::default();
            for e in &st.elems {
                let key = value(&e.key);
                let Some(map) = listing.maps.get(e.map) else {
                    continue;
                };
                for le in &map.elems {
                    let Some(target) = le.target.as_deref() else {
                        continue;
                    };
                    if le.key == key && target != e.chain {
                        fix.guard_element(
                            self.family,
                            self.table,
                            e.map,
                            &le.key,
                            target,
                            le.comment.as_deref(),
                        );
                        fix.delete_element(self.family, self.table, e.map, &le.key);
                    }
                }
            }
            if fix.is_empty() {
                continue;
            }
            fix.append(self.add_batch(st));
            match exec::apply(&fix.to_json()) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::invalid("add", "no attempt made"))
            .within(ctx()))
    }

    pub fn is_att_chain(&self, name: &str) -> bool {
        self.att_prefixes.iter().any(|p| name.starts_with(p))
    }

    /// Removes one attachment: its chains (by name, and any chain of ours
    /// whose rules carry its tag) and the elements that lead to them.
    pub fn del(&self, tag: &str, names: &[String]) -> Result<()> {
        let ctx = self.context("DEL", tag);
        let pick = |c: &Chains| plan::del_pick(self, tag, names, c);
        if Way::chosen() == Way::NetlinkFirst {
            let by_netlink =
                Nl::open(self).and_then(|mut nl| plan::remove(&mut nl, self, names, &pick));
            match by_netlink {
                Ok(_) => return Ok(()),
                Err(e) if nf_tables_absent(&e) => return Ok(()),
                // With no `nft` to fall back on, the netlink failure is the
                // answer: the fallback would call a missing binary "nothing
                // installed".
                Err(e) if exec::nft_binary().is_err() => {
                    return Err(Error::new(ErrorKind::NftFailed, ctx, e.to_string()))
                }
                // Refused in a way `nft` may not be (a sandbox, a kernel
                // quirk): the same plan, through `nft`.
                Err(_) => {}
            }
        }
        plan::remove(&mut exec::Exec::default(), self, names, &pick)
            .map(drop)
            .map_err(|e| e.within(ctx))
    }

    /// Removes every attachment whose tag says it belongs to the network
    /// (`network_prefix`) but is not in `keep`; also attachment chains that
    /// carry no tag at all (leftovers nothing can own). Returns how many
    /// attachments (distinct tags) were removed. Through `nft`.
    pub fn gc(&self, network_prefix: &str, keep: &BTreeSet<String>) -> Result<usize> {
        let ctx = format!("{} GC for network {network_prefix}", self.what);
        let pick = |c: &Chains| plan::gc_pick(self, network_prefix, keep, c);
        let removed = match plan::remove(&mut exec::Exec::default(), self, &[], &pick) {
            Ok(plan::Outcome::Removed { count, .. }) => count,
            Ok(_) => 0,
            Err(e) => return Err(e.within(ctx)),
        };
        self.repair()?;
        Ok(removed)
    }

    /// How the table's maps and fixed chains differ from the layout, if they do.
    fn fixed_mismatch(&self, l: &Listing) -> Option<String> {
        for m in &self.maps {
            if !l.maps.contains_key(m.name) {
                return Some(format!("map {} is missing", m.name));
            }
        }
        for c in &self.chains {
            let Some(listed) = l.chains.get(c.name) else {
                return Some(format!("chain {} is missing", c.name));
            };
            if let Some(h) = c.hook {
                let want_hook = value(&h.hook);
                let want_kind = value(&h.kind);
                if listed.hook.as_deref() != want_hook.as_str()
                    || listed.kind.as_deref() != want_kind.as_str()
                    || listed.prio != Some(i64::from(h.prio))
                {
                    return Some(format!("chain {} is not hooked as expected", c.name));
                }
            }
            let want: Vec<Value> = c.rules.iter().map(value).collect();
            let have: Vec<&Value> = l.rules_of(c.name).map(|r| &r.expr).collect();
            if have.len() != want.len() || have.iter().zip(&want).any(|(h, w)| *h != w) {
                return Some(format!(
                    "rules of chain {} differ from the expected ones",
                    c.name
                ));
            }
        }
        None
    }

    /// Restores the maps and fixed chains when they drifted (tampering, or a
    /// table written by an older layout). ADD's fast path never rewrites them,
    /// so GC does; returns whether it had to.
    pub fn repair(&self) -> Result<bool> {
        let ctx = format!("{} repair", self.what);
        let listing = match self.list() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(false),
            Err(e) if e.is_missing_binary() => return Ok(false),
            Err(e) => return Err(e.within(ctx)),
        };
        if self.fixed_mismatch(&listing).is_none() {
            return Ok(false);
        }
        let mut b = Batch::default();
        self.ensure(&mut b);
        exec::apply(&b.to_json()).map_err(|e| e.within(ctx))?;
        Ok(true)
    }

    /// Compares the kernel's table with what ADD would have written.
    pub fn check(&self, st: &AttState) -> Result<()> {
        let ctx = self.context("CHECK", &st.tag);
        let l = self.list().map_err(|e| e.within(&ctx))?.ok_or_else(|| {
            Error::mismatch(
                &ctx,
                format!("table {} {} does not exist", self.fam(), self.table),
            )
        })?;
        let miss = |d: String| Error::mismatch(&ctx, d);
        if let Some(d) = self.fixed_mismatch(&l) {
            return Err(miss(d));
        }
        for c in &st.chains {
            if !l.chains.contains_key(&c.name) {
                return Err(miss(format!("chain {} is missing", c.name)));
            }
            let have: Vec<_> = l.rules_of(&c.name).collect();
            if have.len() != c.rules.len() {
                return Err(miss(format!(
                    "chain {} has {} rules, expected {}",
                    c.name,
                    have.len(),
                    c.rules.len()
                )));
            }
            for (i, (h, w)) in have.iter().zip(&c.rules).enumerate() {
                if h.comment.as_deref() != Some(st.tag.as_str()) {
                    return Err(miss(format!(
                        "rule {i} of chain {} is not tagged {:?}",
                        c.name, st.tag
                    )));
                }
                if h.expr != value(w) {
                    return Err(miss(format!(
                        "rule {i} of chain {} differs: found {}, expected {}",
                        c.name,
                        h.expr,
                        value(w)
                    )));
                }
            }
        }
        for e in &st.elems {
            let key = value(&e.key);
            let found = l
                .maps
                .get(e.map)
                .and_then(|m| m.elems.iter().find(|le| le.key == key));
            match found {
                None => return Err(miss(format!("map {} has no element {key}", e.map))),
                Some(le) if le.target.as_deref() != Some(e.chain.as_str()) => {
                    return Err(miss(format!(
                        "map {} element {key} jumps to {:?}, expected {}",
                        e.map, le.target, e.chain
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Validates the layout with the kernel without applying anything
    /// (`nft -c`): is nft installed and does the kernel support what we use?
    pub fn probe(&self) -> Result<()> {
        let mut b = Batch::default();
        self.ensure(&mut b);
        exec::dry_run(&b.to_json()).map_err(|e| e.within(format!("{} probe", self.what)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_deterministic_and_short() {
        let a = chain_name("masq-", "net/ctr/eth0");
        assert_eq!(a, chain_name("masq-", "net/ctr/eth0"));
        assert_ne!(a, chain_name("masq-", "net/ctr/eth1"));
        assert_eq!(a.len(), "masq-".len() + 16);
        assert!(a[5..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
