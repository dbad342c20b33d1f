//! What an ADD or a release writes, decided from what was read. Pure: no
//! etcd here, so every branch is unit-tested without a server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cni::{Cidr, Error, ErrorCode};

use crate::keys::Keys;
use crate::model::{Block, HandleIp, HandleRecord, PoolRecord};
use crate::pool::{Pool, SetPool};

/// A value read from etcd with the revision that guards a write of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub key: String,
    pub value: T,
    pub mod_revision: i64,
}

/// What an ADD has read so far. `claims` and `all_blocks` are read only
/// when the node's own blocks are full (or a requested address lies outside
/// them).
#[derive(Debug, Clone, Default)]
pub struct AddState {
    pub handle: Option<Entry<HandleRecord>>,
    pub pool: Option<Entry<PoolRecord>>,
    pub my_blocks: Vec<Entry<Block>>,
    /// Every claimed block and its owner.
    pub claims: Option<BTreeMap<Cidr, String>>,
    /// Every block of every node.
    pub all_blocks: Option<Vec<Entry<Block>>>,
}

/// Who asks: the handle's parts.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    pub node: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

/// A more complete read that planning needs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Claims,
    AllBlocks,
}

/// How a block write is guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// An existing block, unchanged since this revision.
    Revision(i64),
    /// A new block: its claim key must not exist yet.
    NewClaim { claim_key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockWrite {
    pub key: String,
    pub block: Block,
    pub guard: Guard,
}

/// The one transaction of an allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddWrite {
    pub handle_key: String,
    pub handle: HandleRecord,
    pub blocks: Vec<BlockWrite>,
    /// The pool record, when this write is the pool's first.
    pub create_pool: Option<PoolRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddPlan {
    /// The handle exists: a retried ADD gets the same addresses.
    Existing(HandleRecord),
    Read(Need),
    Write(AddWrite),
}

/// The pool in etcd must be exactly ours (code 7 otherwise).
fn check_pool(pool: &Pool, keys: &Keys, stored: Option<&Entry<PoolRecord>>) -> Result<(), Error> {
    match stored {
        Some(e) if e.value != pool.record() => Err(Error::invalid_config(format!(
            "the ranges, blockSize or exclude of this config differ from the pool in etcd ({}): every node must use the same; stored {}, configured {}",
            keys.pool(),
            String::from_utf8_lossy(&crate::model::encode(&e.value)),
            String::from_utf8_lossy(&crate::model::encode(&pool.record())),
        ))),
        _ => Ok(()),
    }
}

/// Plans an ADD: the existing handle, a read still needed, or the write.
pub fn plan_add(
    pool: &Pool,
    keys: &Keys,
    who: Attachment<'_>,
    requested: &[Option<IpAddr>],
    state: &AddState,
) -> Result<AddPlan, Error> {
    if let Some(h) = &state.handle {
        return Ok(AddPlan::Existing(h.value.clone()));
    }
    check_pool(pool, keys, state.pool.as_ref())?;
    let mut planner = Planner {
        pool,
        keys,
        node: who.node,
        handle_id: crate::model::handle_id(who.node, who.container_id, who.ifname),
        state,
        touched: BTreeMap::new(),
    };
    let mut ips = Vec::new();
    for (i, set) in pool.sets().iter().enumerate() {
        let got = match requested.get(i).copied().flatten() {
            Some(ip) => planner.take_requested(set, ip)?,
            None => planner.take_any(set)?,
        };
        match got {
            Ok(ip) => ips.push(ip),
            Err(need) => return Ok(AddPlan::Read(need)),
        }
    }
    Ok(AddPlan::Write(AddWrite {
        handle_key: keys.handle(who.node, who.container_id, who.ifname),
        handle: HandleRecord {
            node: who.node.to_string(),
            container_id: who.container_id.to_string(),
            ifname: who.ifname.to_string(),
            ips,
        },
        blocks: planner.touched.into_values().collect(),
        create_pool: state.pool.is_none().then(|| pool.record()),
    }))
}

/// One planning pass: the blocks it changed so far, by key.
struct Planner<'a> {
    pool: &'a Pool,
    keys: &'a Keys,
    node: &'a str,
    handle_id: String,
    state: &'a AddState,
    touched: BTreeMap<String, BlockWrite>,
}

type Step = Result<Result<HandleIp, Need>, Error>;

impl Planner<'_> {
    /// The current version of a block: as changed by this plan, else as read.
    fn current(&self, e: &Entry<Block>) -> BlockWrite {
        self.touched
            .get(&e.key)
            .cloned()
            .unwrap_or_else(|| BlockWrite {
                key: e.key.clone(),
                block: e.value.clone(),
                guard: Guard::Revision(e.mod_revision),
            })
    }

    fn take(&mut self, set: &SetPool, mut w: BlockWrite, ip: IpAddr) -> Step {
        let range = set.range_of(ip).ok_or_else(|| {
            Error::new(
                ErrorCode::INTERNAL,
                format!("{ip} is outside its range set"),
            )
        })?;
        w.block.allocations.insert(ip, self.handle_id.clone());
        let got = HandleIp {
            address: range.with_prefix(ip)?,
            gateway: range.gateway(),
            owner: w.block.node.clone(),
            block: w.block.cidr,
        };
        self.touched.insert(w.key.clone(), w);
        Ok(Ok(got))
    }

    fn claim(&mut self, set: &SetPool, cidr: Cidr) -> BlockWrite {
        let _ = set;
        BlockWrite {
            key: self.keys.block(self.node, &cidr),
            block: Block {
                cidr,
                node: self.node.to_string(),
                allocations: BTreeMap::new(),
            },
            guard: Guard::NewClaim {
                claim_key: self.keys.claim(&cidr),
            },
        }
    }

    /// Any free address: own blocks first, then a new block, then another
    /// node's block (borrowing), else the pool is exhausted (code 101).
    fn take_any(&mut self, set: &SetPool) -> Step {
        let mut mine: Vec<&Entry<Block>> = self
            .state
            .my_blocks
            .iter()
            .filter(|e| {
                self.pool
                    .set_of_block(&e.value.cidr)
                    .is_some_and(|i| &self.pool.sets()[i] == set)
            })
            .collect();
        mine.sort_by_key(|e| e.value.cidr);
        for e in mine {
            let w = self.current(e);
            if let Some(ip) = self.pool.first_free(set, &w.block) {
                return self.take(set, w, ip);
            }
        }
        let Some(claims) = &self.state.claims else {
            return Ok(Err(Need::Claims));
        };
        let claimed: BTreeSet<Cidr> = claims.keys().copied().collect();
        if let Some(cidr) = self.pool.pick_unclaimed(set, self.node, &claimed) {
            let w = self.claim(set, cidr);
            let ip = self.pool.first_free(set, &w.block).ok_or_else(|| {
                Error::new(
                    ErrorCode::INTERNAL,
                    format!("new block {cidr} has no free address"),
                )
            })?;
            return self.take(set, w, ip);
        }
        let Some(all) = &self.state.all_blocks else {
            return Ok(Err(Need::AllBlocks));
        };
        for e in all.iter().filter(|e| e.value.node != self.node) {
            if set.block_size() != e.value.cidr.prefix()
                || self
                    .pool
                    .set_of_block(&e.value.cidr)
                    .map(|i| &self.pool.sets()[i])
                    != Some(set)
            {
                continue;
            }
            let w = self.current(e);
            if let Some(ip) = self.pool.first_free(set, &w.block) {
                return self.take(set, w, ip);
            }
        }
        Err(Error::new(
            ErrorCode::NO_ADDRESS,
            format!("no IP addresses available in range set {}", set.set()),
        ))
    }

    /// A requested address: from the block it lies in, whoever owns it;
    /// claimed for this node when nobody does.
    fn take_requested(&mut self, set: &SetPool, ip: IpAddr) -> Step {
        let cidr = set.block_of(ip).ok_or_else(|| {
            Error::invalid_config(format!(
                "requested IP address {ip} is not in range set {}",
                set.set()
            ))
        })?;
        let in_block = |e: &&Entry<Block>| e.value.cidr == cidr;
        let found = match self.state.my_blocks.iter().find(in_block) {
            Some(e) => Some(e),
            None => match &self.state.all_blocks {
                Some(all) => all.iter().find(in_block),
                None => return Ok(Err(Need::AllBlocks)),
            },
        };
        let w = match found {
            Some(e) => self.current(e),
            None => {
                let Some(claims) = &self.state.claims else {
                    return Ok(Err(Need::Claims));
                };
                if let Some(owner) = claims.get(&cidr) {
                    // Claimed, but its block was not there when we read:
                    // being claimed or released right now.
                    return Err(Error::try_again_later(format!(
                        "block {cidr} of requested address {ip} is claimed by {owner} but has no record yet"
                    )));
                }
                self.claim(set, cidr)
            }
        };
        if let Some(holder) = w.block.allocations.get(&ip) {
            return Err(Error::plugin(format!(
                "requested IP address {ip} is not available: allocated to {holder}"
            )));
        }
        if !self.pool.allocatable(set, ip) {
            return Err(Error::invalid_config(format!(
                "requested IP address {ip} cannot be handed out (a gateway or excluded)"
            )));
        }
        self.take(set, w, ip)
    }
}

/// What a release has read: the handle and the blocks it names (`None`:
/// read, and not there).
#[derive(Debug, Clone, Default)]
pub struct ReleaseState {
    pub handle: Option<Entry<HandleRecord>>,
    pub blocks: BTreeMap<String, Option<Entry<Block>>>,
}

/// The one transaction of a release: delete the handle, and take its
/// addresses out of their blocks (only where the block still names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseWrite {
    pub handle_key: String,
    pub handle_revision: i64,
    pub blocks: Vec<Entry<Block>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleasePlan {
    /// No handle: nothing to release.
    Nothing,
    /// These block keys must be read first.
    Read(Vec<String>),
    Write(ReleaseWrite),
}

pub fn plan_release(keys: &Keys, state: &ReleaseState) -> ReleasePlan {
    let Some(h) = &state.handle else {
        return ReleasePlan::Nothing;
    };
    let id = h.value.id();
    let wanted: BTreeSet<String> = h
        .value
        .ips
        .iter()
        .map(|ip| keys.block(&ip.owner, &ip.block))
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|k| !state.blocks.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return ReleasePlan::Read(missing);
    }
    let mut blocks = Vec::new();
    for key in &wanted {
        let Some(Some(e)) = state.blocks.get(key) else {
            continue; // the block is gone (its node was released): nothing to free there
        };
        let mut e = e.clone();
        let before = e.value.allocations.len();
        e.value.allocations.retain(|ip, holder| {
            !(*holder == id && h.value.ips.iter().any(|x| x.address.ip() == *ip))
        });
        if e.value.allocations.len() != before {
            blocks.push(e);
        }
    }
    ReleasePlan::Write(ReleaseWrite {
        handle_key: h.key.clone(),
        handle_revision: h.mod_revision,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipam_core::{RangeConfig, RangeSet};

    const NODE: &str = "node-a";

    fn pool() -> Pool {
        // 10.90.0.0/28 in /30 blocks: .0/30 (2 usable), .4, .8 (4), .12 (3).
        let cfg = RangeConfig {
            subnet: "10.90.0.0/28".into(),
            ..Default::default()
        };
        Pool::new(
            vec![RangeSet::from_config(&[cfg]).unwrap()],
            Some(30),
            None,
            vec![],
        )
        .unwrap()
    }

    fn keys() -> Keys {
        Keys::new("/p", "net")
    }

    fn who(id: &str) -> Attachment<'_> {
        Attachment {
            node: NODE,
            container_id: id,
            ifname: "eth0",
        }
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn block(node: &str, c: &str, used: &[(&str, &str)], rev: i64) -> Entry<Block> {
        Entry {
            key: keys().block(node, &cidr(c)),
            value: Block {
                cidr: cidr(c),
                node: node.into(),
                allocations: used
                    .iter()
                    .map(|(ip, h)| (ip.parse().unwrap(), h.to_string()))
                    .collect(),
            },
            mod_revision: rev,
        }
    }

    fn stored_pool() -> Option<Entry<PoolRecord>> {
        Some(Entry {
            key: keys().pool(),
            value: pool().record(),
            mod_revision: 1,
        })
    }

    fn write(plan: AddPlan) -> AddWrite {
        match plan {
            AddPlan::Write(w) => w,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn an_existing_handle_is_returned_as_it_is() {
        let h = HandleRecord {
            node: NODE.into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            ips: vec![],
        };
        let state = AddState {
            handle: Some(Entry {
                key: "k".into(),
                value: h.clone(),
                mod_revision: 3,
            }),
            ..Default::default()
        };
        assert_eq!(
            plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap(),
            AddPlan::Existing(h)
        );
    }

    #[test]
    fn own_block_first_guarded_by_its_revision() {
        let state = AddState {
            pool: stored_pool(),
            my_blocks: vec![block(NODE, "10.90.0.4/30", &[("10.90.0.4", "x")], 7)],
            ..Default::default()
        };
        let w = write(plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap());
        assert_eq!(w.handle.ips[0].address, cidr("10.90.0.5/28"));
        assert_eq!(w.handle.ips[0].gateway, Some("10.90.0.1".parse().unwrap()));
        assert_eq!(w.blocks.len(), 1);
        assert_eq!(w.blocks[0].guard, Guard::Revision(7));
        assert_eq!(w.blocks[0].block.allocations.len(), 2);
        assert_eq!(
            w.blocks[0].block.allocations[&"10.90.0.5".parse().unwrap()],
            "node-a/c1/eth0"
        );
        assert_eq!(w.handle_key, "/p/net/handles/node-a/c1/eth0");
        assert_eq!(w.create_pool, None, "the pool record exists");
    }

    #[test]
    fn a_full_node_reads_claims_then_claims_a_new_block() {
        let full = block(
            NODE,
            "10.90.0.0/30",
            &[("10.90.0.2", "x"), ("10.90.0.3", "y")],
            5,
        );
        let mut state = AddState {
            my_blocks: vec![full],
            ..Default::default()
        };
        assert_eq!(
            plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap(),
            AddPlan::Read(Need::Claims)
        );
        state.claims = Some([(cidr("10.90.0.0/30"), NODE.to_string())].into());
        let w = write(plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap());
        let b = &w.blocks[0];
        assert_ne!(b.block.cidr, cidr("10.90.0.0/30"));
        assert_eq!(
            b.guard,
            Guard::NewClaim {
                claim_key: keys().claim(&b.block.cidr)
            }
        );
        assert_eq!(
            w.create_pool,
            Some(pool().record()),
            "the first write records the pool"
        );
    }

    #[test]
    fn borrowing_only_when_every_block_is_claimed_then_exhaustion() {
        let mut state = AddState {
            pool: stored_pool(),
            my_blocks: vec![block(
                NODE,
                "10.90.0.0/30",
                &[("10.90.0.2", "x"), ("10.90.0.3", "y")],
                5,
            )],
            claims: Some(
                [
                    "10.90.0.0/30",
                    "10.90.0.4/30",
                    "10.90.0.8/30",
                    "10.90.0.12/30",
                ]
                .iter()
                .map(|c| (cidr(c), "someone".to_string()))
                .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap(),
            AddPlan::Read(Need::AllBlocks)
        );
        let others = vec![
            state.my_blocks[0].clone(),
            block(
                "node-b",
                "10.90.0.4/30",
                &[
                    ("10.90.0.4", "b"),
                    ("10.90.0.5", "b"),
                    ("10.90.0.6", "b"),
                    ("10.90.0.7", "b"),
                ],
                9,
            ),
            block("node-b", "10.90.0.8/30", &[("10.90.0.8", "b")], 11),
        ];
        state.all_blocks = Some(others.clone());
        let w = write(plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap());
        assert_eq!(w.handle.ips[0].address, cidr("10.90.0.9/28"));
        assert_eq!(w.handle.ips[0].owner, "node-b");
        assert_eq!(
            w.blocks[0].key,
            keys().block("node-b", &cidr("10.90.0.8/30"))
        );
        assert_eq!(w.blocks[0].guard, Guard::Revision(11));
        // Nothing left anywhere: code 101.
        let mut all_full = others;
        all_full[2] = block(
            "node-b",
            "10.90.0.8/30",
            &[
                ("10.90.0.8", "b"),
                ("10.90.0.9", "b"),
                ("10.90.0.10", "b"),
                ("10.90.0.11", "b"),
            ],
            11,
        );
        all_full.push(block(
            "node-b",
            "10.90.0.12/30",
            &[
                ("10.90.0.12", "b"),
                ("10.90.0.13", "b"),
                ("10.90.0.14", "b"),
            ],
            12,
        ));
        state.all_blocks = Some(all_full);
        let e = plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
    }

    #[test]
    fn a_requested_address_in_an_unclaimed_block_claims_it_and_a_taken_one_is_refused() {
        let state = AddState {
            all_blocks: Some(vec![]),
            claims: Some(BTreeMap::new()),
            ..Default::default()
        };
        let want = Some("10.90.0.9".parse().unwrap());
        let w = write(plan_add(&pool(), &keys(), who("c1"), &[want], &state).unwrap());
        assert_eq!(w.handle.ips[0].address, cidr("10.90.0.9/28"));
        assert!(matches!(w.blocks[0].guard, Guard::NewClaim { .. }));
        let taken = AddState {
            my_blocks: vec![block(
                NODE,
                "10.90.0.8/30",
                &[("10.90.0.9", "node-a/c0/eth0")],
                2,
            )],
            ..Default::default()
        };
        let e = plan_add(&pool(), &keys(), who("c1"), &[want], &taken).unwrap_err();
        assert!(e.msg.contains("node-a/c0/eth0"), "{}", e.msg);
    }

    #[test]
    fn a_different_pool_in_etcd_is_code_7() {
        let mut other = pool().record();
        other.sets[0].block_size = 29;
        let state = AddState {
            pool: Some(Entry {
                key: keys().pool(),
                value: other,
                mod_revision: 1,
            }),
            ..Default::default()
        };
        let e = plan_add(&pool(), &keys(), who("c1"), &[None], &state).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_CONFIG);
    }

    fn handle(ips: &[(&str, &str, &str)]) -> Entry<HandleRecord> {
        Entry {
            key: keys().handle(NODE, "c1", "eth0"),
            value: HandleRecord {
                node: NODE.into(),
                container_id: "c1".into(),
                ifname: "eth0".into(),
                ips: ips
                    .iter()
                    .map(|(ip, owner, b)| HandleIp {
                        address: format!("{ip}/28").parse().unwrap(),
                        gateway: None,
                        owner: owner.to_string(),
                        block: cidr(b),
                    })
                    .collect(),
            },
            mod_revision: 4,
        }
    }

    #[test]
    fn release_removes_only_this_handles_entries_and_reads_borrowed_blocks_first() {
        let h = handle(&[
            ("10.90.0.5", NODE, "10.90.0.4/30"),
            ("10.90.0.9", "node-b", "10.90.0.8/30"),
        ]);
        let mine = block(
            NODE,
            "10.90.0.4/30",
            &[
                ("10.90.0.5", "node-a/c1/eth0"),
                ("10.90.0.6", "node-a/c2/eth0"),
            ],
            8,
        );
        let mut state = ReleaseState {
            handle: Some(h),
            blocks: [(mine.key.clone(), Some(mine))].into(),
        };
        let borrowed_key = keys().block("node-b", &cidr("10.90.0.8/30"));
        assert_eq!(
            plan_release(&keys(), &state),
            ReleasePlan::Read(vec![borrowed_key.clone()])
        );
        // The lender's block now names someone else for that address: untouched.
        let theirs = block(
            "node-b",
            "10.90.0.8/30",
            &[("10.90.0.9", "node-b/cX/eth0")],
            9,
        );
        state.blocks.insert(borrowed_key, Some(theirs));
        let ReleasePlan::Write(w) = plan_release(&keys(), &state) else {
            panic!("expected a write");
        };
        assert_eq!(w.handle_revision, 4);
        assert_eq!(w.blocks.len(), 1);
        let left: Vec<String> = w.blocks[0].value.allocations.values().cloned().collect();
        assert_eq!(left, ["node-a/c2/eth0"]);
        assert_eq!(w.blocks[0].mod_revision, 8);
        assert_eq!(
            plan_release(&keys(), &ReleaseState::default()),
            ReleasePlan::Nothing
        );
    }
}
