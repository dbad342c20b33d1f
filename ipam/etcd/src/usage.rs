//! How full a pool is, per range set, per node and per block: what STATUS
//! decides on and what ipamctl shows. Pure, over a [`NetworkView`].

use std::collections::{BTreeMap, BTreeSet};

use cni::{Cidr, Error, ErrorCode};

use crate::ops::NetworkView;
use crate::pool::Pool;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockUsage {
    pub cidr: Cidr,
    pub node: String,
    pub capacity: usize,
    pub used: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUsage {
    /// The set's ranges, as `start-end,...`.
    pub ranges: String,
    pub block_size: u8,
    /// Addresses the set can hand out at all (gateways excluded).
    pub capacity: u128,
    pub used: usize,
    pub blocks_claimed: usize,
    pub blocks_total: u128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub blocks: usize,
    pub capacity: usize,
    /// Addresses allocated in this node's blocks (by anyone).
    pub used: usize,
    /// Handles of this node (its attachments).
    pub handles: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub sets: Vec<SetUsage>,
    pub nodes: BTreeMap<String, NodeUsage>,
    pub blocks: Vec<BlockUsage>,
}

pub fn usage(pool: &Pool, view: &NetworkView) -> Usage {
    let mut u = Usage::default();
    for e in &view.blocks {
        let b = &e.value;
        let capacity = pool
            .set_of_block(&b.cidr)
            .map_or(0, |i| pool.capacity(&pool.sets()[i], &b.cidr));
        u.blocks.push(BlockUsage {
            cidr: b.cidr,
            node: b.node.clone(),
            capacity,
            used: b.allocations.len(),
        });
        let n = u.nodes.entry(b.node.clone()).or_default();
        n.blocks += 1;
        n.capacity += capacity;
        n.used += b.allocations.len();
    }
    for h in &view.handles {
        u.nodes.entry(h.value.node.clone()).or_default().handles += 1;
    }
    for (i, set) in pool.sets().iter().enumerate() {
        let mine = |c: &Cidr| pool.set_of_block(c) == Some(i);
        u.sets.push(SetUsage {
            ranges: set.set().to_string(),
            block_size: set.block_size(),
            // Before `exclude`: an upper bound when exclusions apply.
            capacity: set.set().capacity(),
            used: u
                .blocks
                .iter()
                .filter(|b| mine(&b.cidr))
                .map(|b| b.used)
                .sum(),
            blocks_claimed: view.claims.keys().filter(|c| mine(c)).count(),
            blocks_total: set.block_count(),
        });
    }
    u
}

/// Ok when every range set can still give `node` an address: a free one in
/// some block, or an unclaimed block. Code 50 otherwise.
pub fn check_available(pool: &Pool, view: &NetworkView, node: &str) -> Result<(), Error> {
    let claimed: BTreeSet<Cidr> = view.claims.keys().copied().collect();
    for (i, set) in pool.sets().iter().enumerate() {
        let free_in_block = view.blocks.iter().any(|e| {
            pool.set_of_block(&e.value.cidr) == Some(i) && pool.first_free(set, &e.value).is_some()
        });
        if !free_in_block && pool.pick_unclaimed(set, node, &claimed).is_none() {
            return Err(Error::new(
                ErrorCode::NOT_AVAILABLE,
                format!("pool exhausted: no address left in range set {}", set.set()),
            ));
        }
    }
    Ok(())
}
