//! What a DEL or a GC removes from one of our tables, decided here once for
//! both back ends (in-process netlink, `crate::nl`; the `nft` binary,
//! `crate::exec`), which only list the table and apply the result.
//!
//! A removal deletes attachment chains and every map element that jumps to
//! one of them. Each element delete is guarded by re-adding the element
//! exactly as listed, without "exclusive": a no-op while it is unchanged,
//! refused (`EBUSY`) when another attachment took the key over since the
//! listing, which fails the whole batch instead of deleting the other's
//! element. A batch that failed because the table changed under it is tried
//! again from a fresh listing, up to [`ATTEMPTS`] times.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Layout;

/// How many times a change is computed from a fresh listing and tried when
/// its batch raced with another change of the table (DEL, GC, and ADD's
/// take-over of keys held by a stale attachment).
pub(crate) const ATTEMPTS: usize = 3;

/// Every chain of a table that a back end reports, with the comments of its
/// rules in order (`None` for a rule without comment).
pub(crate) type Chains = BTreeMap<String, Vec<Option<String>>>;

/// A map element as a back end lists it: whatever it needs to re-add the
/// element exactly (netlink: key bytes and userdata; `nft`: the JSON key and
/// comment), and the chain it jumps to.
pub(crate) trait Listed {
    fn target(&self) -> Option<&str>;
}

/// What must go: chains, and the elements leading to them (each to be
/// deleted behind its guard).
#[derive(Debug)]
pub(crate) struct Removal<E> {
    pub elems: Vec<(&'static str, E)>,
    pub chains: BTreeSet<String>,
}

/// How applying a removal ended, when the back end could talk to the kernel.
#[derive(Debug)]
pub(crate) enum Applied<E> {
    Done,
    /// Refused because the table changed since the listing (a guarded
    /// element taken over or gone, a chain deleted or still referenced):
    /// worth a fresh listing.
    Raced(E),
}

/// A way to list one of our tables and apply a removal to it.
pub(crate) trait Backend {
    type Elem: Listed;
    type Error;

    /// The table's chains: at least every chain that holds a rule, and
    /// those of `expected` that exist. `None` when the table does not exist.
    fn chains(
        &mut self,
        layout: &Layout,
        expected: &[String],
    ) -> Result<Option<Chains>, Self::Error>;

    /// The elements of `map` (none when the map does not exist).
    fn elements(
        &mut self,
        layout: &Layout,
        map: &'static str,
    ) -> Result<Vec<Self::Elem>, Self::Error>;

    /// Deletes in one atomic batch.
    fn apply(
        &mut self,
        layout: &Layout,
        removal: &Removal<Self::Elem>,
    ) -> Result<Applied<Self::Error>, Self::Error>;
}

/// How a removal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The table does not exist: nothing of ours can.
    NoTable,
    /// The table holds nothing that was to go.
    NothingToRemove,
    /// One batch removed what was picked: `count` as the picker counts
    /// (GC: attachments), after `attempts` listings.
    Removed { count: usize, attempts: usize },
}

/// Which chains to remove from a listing, and how many attachments they are.
pub(crate) type Pick<'a> = dyn Fn(&Chains) -> (BTreeSet<String>, usize) + 'a;

/// Lists, picks, applies; from a fresh listing again when the batch raced.
pub(crate) fn remove<B: Backend>(
    backend: &mut B,
    layout: &Layout,
    expected: &[String],
    pick: &Pick<'_>,
) -> Result<Outcome, B::Error> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let Some(listed) = backend.chains(layout, expected)? else {
            return Ok(Outcome::NoTable);
        };
        let (chains, count) = pick(&listed);
        if chains.is_empty() {
            // Elements can only jump to existing chains: nothing is left.
            return Ok(Outcome::NothingToRemove);
        }
        let mut elems = Vec::new();
        for map in &layout.maps {
            for e in backend.elements(layout, map.name)? {
                if e.target().is_some_and(|t| chains.contains(t)) {
                    elems.push((map.name, e));
                }
            }
        }
        match backend.apply(layout, &Removal { elems, chains })? {
            Applied::Done => {
                return Ok(Outcome::Removed {
                    count,
                    attempts: attempt,
                })
            }
            Applied::Raced(e) => last = Some(e),
        }
    }
    // ATTEMPTS > 0: a last error exists.
    match last {
        Some(e) => Err(e),
        None => Ok(Outcome::NothingToRemove),
    }
}

/// DEL of one attachment: the chains named `names` that exist, and every
/// attachment chain whose rules carry `tag` (a chain written under another
/// name by an older layout).
pub(crate) fn del_pick(
    layout: &Layout,
    tag: &str,
    names: &[String],
    listed: &Chains,
) -> (BTreeSet<String>, usize) {
    let mut chains: BTreeSet<String> = names
        .iter()
        .filter(|n| listed.contains_key(*n))
        .cloned()
        .collect();
    for (chain, comments) in listed {
        if layout.is_att_chain(chain) && comments.iter().any(|c| c.as_deref() == Some(tag)) {
            chains.insert(chain.clone());
        }
    }
    (chains, 0)
}

/// GC of a network: every attachment (chains grouped by the hash after
/// their prefix, owned by the tag of their first tagged rule) whose tag
/// starts with `network_prefix` and is not in `keep`, and attachment chains
/// that carry no tag at all (leftovers nothing can own). Counts the
/// distinct tags removed.
pub(crate) fn gc_pick(
    layout: &Layout,
    network_prefix: &str,
    keep: &BTreeSet<String>,
    listed: &Chains,
) -> (BTreeSet<String>, usize) {
    let mut groups: BTreeMap<&str, (Vec<&String>, Option<&String>)> = BTreeMap::new();
    for (name, comments) in listed {
        let Some(prefix) = layout.att_prefixes.iter().find(|p| name.starts_with(**p)) else {
            continue;
        };
        let entry = groups.entry(&name[prefix.len()..]).or_default();
        entry.0.push(name);
        if entry.1.is_none() {
            entry.1 = comments.iter().flatten().next();
        }
    }
    let mut chains = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for (names, tag) in groups.into_values() {
        let stale = match tag {
            Some(t) => t.starts_with(network_prefix) && !keep.contains(t),
            None => true,
        };
        if stale {
            chains.extend(names.into_iter().cloned());
            tags.extend(tag);
        }
    }
    (chains, tags.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct E {
        key: u8,
        target: &'static str,
    }

    impl Listed for E {
        fn target(&self) -> Option<&str> {
            Some(self.target)
        }
    }

    /// A table in memory; `races` batches are refused before one applies.
    struct Mem {
        chains: Option<Chains>,
        elems: Vec<E>,
        races: usize,
        applied: Vec<Removal<E>>,
        listings: usize,
    }

    impl Backend for Mem {
        type Elem = E;
        type Error = String;
        fn chains(&mut self, _: &Layout, _: &[String]) -> Result<Option<Chains>, String> {
            self.listings += 1;
            Ok(self.chains.clone())
        }
        fn elements(&mut self, _: &Layout, map: &'static str) -> Result<Vec<E>, String> {
            Ok(if map == "masq4" {
                self.elems.clone()
            } else {
                Vec::new()
            })
        }
        fn apply(&mut self, _: &Layout, r: &Removal<E>) -> Result<Applied<String>, String> {
            self.applied.push(Removal {
                elems: r.elems.clone(),
                chains: r.chains.clone(),
            });
            if self.races > 0 {
                self.races -= 1;
                return Ok(Applied::Raced(format!("raced {}", self.races)));
            }
            Ok(Applied::Done)
        }
    }

    fn mem(chains: &[(&str, &[Option<&str>])], elems: Vec<E>, races: usize) -> Mem {
        Mem {
            chains: Some(
                chains
                    .iter()
                    .map(|(c, r)| {
                        (
                            c.to_string(),
                            r.iter().map(|x| x.map(String::from)).collect(),
                        )
                    })
                    .collect(),
            ),
            elems,
            races,
            applied: Vec::new(),
            listings: 0,
        }
    }

    fn del(m: &mut Mem, tag: &str, names: &[&str]) -> Result<Outcome, String> {
        let layout = crate::masq::layout();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        remove(m, &layout, &names, &|c: &Chains| {
            del_pick(&layout, tag, &names, c)
        })
    }

    #[test]
    fn del_removes_named_and_tagged_chains_and_only_their_elements() {
        let mut m = mem(
            &[
                ("postrouting", &[None, None]),
                ("masq-aaaa", &[Some("n/a/eth0")]),
                ("masq-old", &[Some("n/a/eth0")]),
                ("masq-bbbb", &[Some("n/b/eth0")]),
                ("other-x", &[Some("n/a/eth0")]),
            ],
            vec![
                E {
                    key: 1,
                    target: "masq-aaaa",
                },
                E {
                    key: 2,
                    target: "masq-bbbb",
                },
                E {
                    key: 3,
                    target: "masq-old",
                },
            ],
            0,
        );
        let out = del(&mut m, "n/a/eth0", &["masq-aaaa", "masq-gone"]).unwrap();
        assert_eq!(
            out,
            Outcome::Removed {
                count: 0,
                attempts: 1
            }
        );
        let Removal { elems, chains } = &m.applied[0];
        assert_eq!(
            chains.iter().map(String::as_str).collect::<Vec<_>>(),
            ["masq-aaaa", "masq-old"],
            "not a missing name, not another tag, not a chain outside our prefixes"
        );
        let keys: Vec<u8> = elems.iter().map(|(_, e)| e.key).collect();
        assert_eq!(keys, [1, 3]);
        assert!(elems.iter().all(|(map, _)| *map == "masq4"));
    }

    #[test]
    fn a_raced_batch_is_planned_again_from_a_fresh_listing() {
        let mut m = mem(
            &[("masq-aaaa", &[Some("t")])],
            vec![E {
                key: 1,
                target: "masq-aaaa",
            }],
            2,
        );
        let out = del(&mut m, "t", &["masq-aaaa"]).unwrap();
        assert_eq!(
            out,
            Outcome::Removed {
                count: 0,
                attempts: 3
            }
        );
        assert_eq!(m.listings, 3);
        assert_eq!(m.applied.len(), 3);
    }

    #[test]
    fn racing_every_time_gives_the_last_refusal() {
        let mut m = mem(&[("masq-aaaa", &[Some("t")])], Vec::new(), 5);
        let err = del(&mut m, "t", &["masq-aaaa"]).unwrap_err();
        assert_eq!(err, "raced 2");
        assert_eq!(m.applied.len(), ATTEMPTS);
    }

    #[test]
    fn nothing_there_sends_no_batch() {
        let mut m = mem(
            &[("postrouting", &[None])],
            vec![E {
                key: 1,
                target: "masq-x",
            }],
            0,
        );
        assert_eq!(
            del(&mut m, "t", &["masq-aaaa"]).unwrap(),
            Outcome::NothingToRemove
        );
        let mut m = mem(&[], Vec::new(), 0);
        m.chains = None;
        assert_eq!(del(&mut m, "t", &["masq-aaaa"]).unwrap(), Outcome::NoTable);
        assert!(m.applied.is_empty());
    }

    #[test]
    fn gc_removes_stale_and_untagged_attachments_of_the_network_only() {
        let layout = crate::portmap::layout();
        let keep: BTreeSet<String> = ["n/keep/eth0".to_string()].into();
        let listed: Chains = [
            ("pm-dnat-1", vec![Some("n/keep/eth0")]),
            ("pm-snat-1", vec![Some("n/keep/eth0")]),
            ("pm-dnat-2", vec![Some("n/stale/eth0")]),
            ("pm-snat-2", vec![None, Some("n/stale/eth0")]),
            ("pm-dnat-3", vec![Some("other/x/eth0")]),
            ("pm-snat-4", vec![]),
            ("hostports", vec![None]),
        ]
        .into_iter()
        .map(|(c, r)| {
            (
                c.to_string(),
                r.into_iter().map(|x| x.map(String::from)).collect(),
            )
        })
        .collect();
        let (chains, count) = gc_pick(&layout, "n/", &keep, &listed);
        assert_eq!(
            chains.iter().map(String::as_str).collect::<Vec<_>>(),
            ["pm-dnat-2", "pm-snat-2", "pm-snat-4"]
        );
        assert_eq!(count, 1, "one stale tag; the untagged chain is not counted");
    }
}
