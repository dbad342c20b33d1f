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
