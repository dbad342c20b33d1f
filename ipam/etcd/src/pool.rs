//! The pool cut into blocks: which block an address is in, which addresses
//! of a block may be handed out, which block a node claims next. Pure.
//!
//! A block is an aligned CIDR (`/26` by default for IPv4, `/122` for IPv6)
//! inside one range set. An address of a block may be handed out when it
//! lies in one of the set's ranges (`rangeStart`..`rangeEnd`), is not that
//! range's gateway, and is in no `exclude` CIDR.

use std::collections::BTreeSet;
use std::net::IpAddr;

use cni::{Cidr, Error};
use ipam_core::{IpFamily, IpInt, Range, RangeConfig, RangeSet};

use crate::model::{Block, PoolRecord, RangeRecord, SetRecord};

pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;
/// At most 4096 addresses a block: a block is rewritten whole by every
/// allocation in it, so it must stay small.
pub const MAX_BLOCK_HOST_BITS: u8 = 12;
/// How many blocks a claim looks at before it gives up on finding a free one
/// (only reached when exclusions cover whole swathes of the pool).
const CLAIM_WALK_LIMIT: u128 = 1 << 20;

/// The validated pool of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    sets: Vec<SetPool>,
    exclude: Vec<Cidr>,
}

/// One range set and the size of its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPool {
    set: RangeSet,
    block_size: u8,
}

fn int(ip: IpAddr) -> IpInt {
    IpInt::from_ip(ip)
}

/// The first and last block (network addresses) that `range` touches.
fn block_span(range: &Range, block_size: u8) -> (IpInt, IpInt) {
    (
        int(range.start()).network(block_size),
        int(range.end()).network(block_size),
    )
}

impl Pool {
    /// Validates the block sizes (`blockSize` for IPv4 sets, `blockSize6`
    /// for IPv6; defaults /26 and /122, or the longest subnet prefix of the
    /// set when that is longer) and that no block spans two range sets.
    pub fn new(
        sets: Vec<RangeSet>,
        block_size4: Option<u8>,
        block_size6: Option<u8>,
        mut exclude: Vec<Cidr>,
    ) -> Result<Pool, Error> {
        let sets = sets
            .into_iter()
            .map(|set| {
                let (family, explicit, default, key) = match set.family() {
                    IpFamily::V4 => (IpFamily::V4, block_size4, DEFAULT_BLOCK_SIZE_V4, "blockSize"),
                    IpFamily::V6 => (IpFamily::V6, block_size6, DEFAULT_BLOCK_SIZE_V6, "blockSize6"),
                };
                let longest = set.ranges().iter().map(Range::prefix).max().unwrap_or(0);
                let block_size = explicit.unwrap_or(default.max(longest));
                let bits = family.bits();
                if block_size > bits || bits - block_size > MAX_BLOCK_HOST_BITS {
                    return Err(Error::invalid_config(format!(
                        "ipam.{key} {block_size}: blocks must be /{} to /{bits} (at most {} addresses)",
                        bits - MAX_BLOCK_HOST_BITS,
                        1u32 << MAX_BLOCK_HOST_BITS
                    )));
                }
                if block_size < longest {
                    return Err(Error::invalid_config(format!(
                        "ipam.{key} {block_size} is larger than a subnet of range set {set}: blocks must fit in every subnet (/{longest} or longer)"
                    )));
                }
                Ok(SetPool { set, block_size })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                if a.shares_a_block_with(b) {
                    return Err(Error::invalid_config(format!(
                        "range sets {} and {} share a block: a block serves one range set",
                        a.set, b.set
                    )));
                }
            }
        }
        exclude.sort();
        exclude.dedup();
        Ok(Pool { sets, exclude })
    }

    /// The pool as stored in etcd (what ipamctl works from: it has no CNI
    /// config).
    pub fn from_record(record: &PoolRecord) -> Result<Pool, Error> {
        let sets = record
            .sets
            .iter()
            .map(|s| {
                let cfgs: Vec<RangeConfig> = s
                    .ranges
                    .iter()
                    .map(|r| RangeConfig {
                        subnet: r.subnet.to_string(),
                        range_start: Some(r.start.to_string()),
                        range_end: Some(r.end.to_string()),
                        gateway: r.gateway.map(|g| g.to_string()),
                    })
                    .collect();
                Ok(SetPool {
                    set: RangeSet::from_config(&cfgs)?,
                    block_size: s.block_size,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Pool {
            sets,
            exclude: record.exclude.clone(),
        })
    }

    pub fn sets(&self) -> &[SetPool] {
        &self.sets
    }

    pub fn exclude(&self) -> &[Cidr] {
        &self.exclude
    }

    pub fn is_excluded(&self, ip: IpAddr) -> bool {
        self.exclude.iter().any(|c| c.contains(ip))
    }

    /// The set (index) whose blocks include `block`.
    pub fn set_of_block(&self, block: &Cidr) -> Option<usize> {
        self.sets
            .iter()
            .position(|s| s.block_size == block.prefix() && s.spans(int(block.ip())))
    }

    /// The definition every node must agree on, in a canonical order.
    pub fn record(&self) -> PoolRecord {
        let mut sets: Vec<SetRecord> = self
            .sets
            .iter()
            .map(|s| SetRecord {
                ranges: s
                    .set
                    .ranges()
                    .iter()
                    .map(|r| RangeRecord {
                        subnet: r.subnet(),
                        start: r.start(),
                        end: r.end(),
                        gateway: r.gateway(),
                    })
                    .collect(),
                block_size: s.block_size,
            })
            .collect();
        sets.sort_by_key(|s| s.ranges.first().map(|r| int(r.start)));
        PoolRecord {
            sets,
            exclude: self.exclude.clone(),
        }
    }

    /// Whether `ip` may be handed out from `set` (in a range, not a gateway,
    /// not excluded).
    pub fn allocatable(&self, set: &SetPool, ip: IpAddr) -> bool {
        set.set
            .range_of(ip)
            .is_some_and(|r| r.gateway() != Some(ip))
            && !self.is_excluded(ip)
    }

    /// The lowest address of `block` that may be handed out and is not
    /// allocated.
    pub fn first_free(&self, set: &SetPool, block: &Block) -> Option<IpAddr> {
        set.addresses(&block.cidr)
            .find(|ip| !block.allocations.contains_key(ip) && self.allocatable(set, *ip))
    }

    /// How many addresses of `block` may be handed out at all.
    pub fn capacity(&self, set: &SetPool, block: &Cidr) -> usize {
        set.addresses(block)
            .filter(|ip| self.allocatable(set, *ip))
            .count()
    }

    /// The block this node claims next: the first unclaimed one with an
    /// address to hand out, walking the set's blocks from a place that
    /// depends on the node's name (so nodes claiming at the same moment
    /// rarely race for the same block).
    pub fn pick_unclaimed(
        &self,
        set: &SetPool,
        node: &str,
        claimed: &BTreeSet<Cidr>,
    ) -> Option<Cidr> {
        let count = set.block_count();
        if count == 0 {
            return None;
        }
        let start = u128::from(fnv1a(node.as_bytes())) % count;
        (0..count.min(CLAIM_WALK_LIMIT))
            .filter_map(|k| set.nth_block((start + k) % count))
            .find(|b| !claimed.contains(b) && set.addresses(b).any(|ip| self.allocatable(set, ip)))
    }
}

impl SetPool {
    pub fn set(&self) -> &RangeSet {
        &self.set
    }

    pub fn block_size(&self) -> u8 {
        self.block_size
    }

    pub fn family(&self) -> IpFamily {
        self.set.family()
    }

    /// The block `ip` is in (`None` only for an address of the other family).
    pub fn block_of(&self, ip: IpAddr) -> Option<Cidr> {
        let net = int(ip).network(self.block_size).to_ip();
        Cidr::new(net, self.block_size).ok()
    }

    /// The range of the set that `ip` lies in, with the prefix a result reports.
    pub fn range_of(&self, ip: IpAddr) -> Option<&Range> {
        self.set.range_of(ip)
    }

    /// Whether the block starting at `net` is one of this set's.
    fn spans(&self, net: IpInt) -> bool {
        net.family == self.family()
            && self.set.ranges().iter().any(|r| {
                let (first, last) = block_span(r, self.block_size);
                first <= net && net <= last
            })
    }

    fn shares_a_block_with(&self, other: &SetPool) -> bool {
        self.family() == other.family()
            && self.set.ranges().iter().any(|a| {
                other.set.ranges().iter().any(|b| {
                    let size = self.block_size.min(other.block_size);
                    let (a0, a1) = block_span(a, size);
                    let (b0, b1) = block_span(b, size);
                    a0 <= b1 && b0 <= a1
                })
            })
    }

    /// Every address of `block`, in order.
    fn addresses(&self, block: &Cidr) -> impl Iterator<Item = IpAddr> {
        let first = int(block.network());
        let last = first.last_in(block.prefix());
        let family = first.family;
        (first.value..=last.value).map(move |value| IpInt { value, family }.to_ip())
    }

    /// How many blocks the set's ranges touch (a block touched by two
    /// ranges counts twice; harmless for a walk).
    pub fn block_count(&self) -> u128 {
        let host_bits = self.family().bits() - self.block_size;
        self.set
            .ranges()
            .iter()
            .map(|r| {
                let (first, last) = block_span(r, self.block_size);
                ((last.value - first.value) >> host_bits) + 1
            })
            .fold(0u128, u128::saturating_add)
    }

    /// The `k`-th block of the walk: the ranges' blocks one after the other.
    fn nth_block(&self, mut k: u128) -> Option<Cidr> {
        let host_bits = self.family().bits() - self.block_size;
        for r in self.set.ranges() {
            let (first, last) = block_span(r, self.block_size);
            let n = ((last.value - first.value) >> host_bits) + 1;
            if k < n {
                let value = first.value + (k << host_bits);
                let net = IpInt {
                    value,
                    family: first.family,
                }
                .to_ip();
                return Cidr::new(net, self.block_size).ok();
            }
            k -= n;
        }
        None
    }
}

/// FNV-1a: a stable hash of the node name (the same on every run and build).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(&str, Option<&str>, Option<&str>)]) -> RangeSet {
        let cfgs: Vec<RangeConfig> = ranges
            .iter()
            .map(|(subnet, start, end)| RangeConfig {
                subnet: subnet.to_string(),
                range_start: start.map(str::to_string),
                range_end: end.map(str::to_string),
                gateway: None,
            })
            .collect();
        RangeSet::from_config(&cfgs).unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn block(c: &str, used: &[&str]) -> Block {
        Block {
            cidr: cidr(c),
            node: "n".into(),
            allocations: used.iter().map(|a| (ip(a), "h".to_string())).collect(),
        }
    }

    #[test]
    fn block_sizes_default_and_validate() {
        let p = Pool::new(
            vec![
                set(&[("10.0.0.0/16", None, None)]),
                set(&[("fd00::/64", None, None)]),
            ],
            None,
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(p.sets()[0].block_size(), 26);
        assert_eq!(p.sets()[1].block_size(), 122);
        // A subnet smaller than the default block: blocks of the subnet's size.
        let p = Pool::new(
            vec![set(&[("10.0.0.0/28", None, None)])],
            None,
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(p.sets()[0].block_size(), 28);
        for (bs, bs6) in [
            (Some(19), None),
            (Some(33), None),
            (None, Some(115)),
            (Some(24), None),
        ] {
            let sets = vec![
                set(&[("10.0.0.0/25", None, None)]),
                set(&[("fd00::/64", None, None)]),
            ];
            assert!(Pool::new(sets, bs, bs6, vec![]).is_err(), "{bs:?} {bs6:?}");
        }
    }

    #[test]
    fn two_sets_may_not_share_a_block() {
        let a = set(&[("10.0.0.0/24", Some("10.0.0.1"), Some("10.0.0.100"))]);
        let b = set(&[("10.0.0.0/24", Some("10.0.0.101"), Some("10.0.0.200"))]);
        let e = Pool::new(vec![a.clone(), b], None, None, vec![]).unwrap_err();
        assert!(e.msg.contains("share a block"), "{}", e.msg);
        // Aligned apart at /26 they don't.
        let c = set(&[("10.0.0.0/24", Some("10.0.0.128"), Some("10.0.0.200"))]);
        assert!(Pool::new(vec![a, c], None, None, vec![]).is_ok());
    }

    #[test]
    fn first_free_skips_gateway_exclusions_allocations_and_out_of_range() {
        let p = Pool::new(
            vec![set(&[(
                "10.0.0.0/24",
                Some("10.0.0.1"),
                Some("10.0.0.200"),
            )])],
            Some(30),
            None,
            vec![cidr("10.0.0.2/32")],
        )
        .unwrap();
        let s = &p.sets()[0];
        // .0 before rangeStart, .1 gateway, .2 excluded, .3 free.
        assert_eq!(
            p.first_free(s, &block("10.0.0.0/30", &[])),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(p.first_free(s, &block("10.0.0.0/30", &["10.0.0.3"])), None);
        assert_eq!(p.capacity(s, &cidr("10.0.0.0/30")), 1);
        assert_eq!(p.capacity(s, &cidr("10.0.0.4/30")), 4);
        assert_eq!(
            p.capacity(s, &cidr("10.0.0.200/30")),
            1,
            ".201-.203 are past rangeEnd"
        );
        assert_eq!(s.block_of(ip("10.0.0.7")), Some(cidr("10.0.0.4/30")));
        assert_eq!(p.set_of_block(&cidr("10.0.0.4/30")), Some(0));
        assert_eq!(p.set_of_block(&cidr("10.0.1.0/30")), None);
        assert_eq!(
            p.set_of_block(&cidr("10.0.0.0/26")),
            None,
            "not this pool's block size"
        );
    }

    #[test]
    fn claims_skip_claimed_and_useless_blocks_and_spread_nodes() {
        let p = Pool::new(
            vec![set(&[("10.0.0.0/24", None, None)])],
            Some(26),
            None,
            vec![cidr("10.0.0.64/26")],
        )
        .unwrap();
        let s = &p.sets()[0];
        assert_eq!(s.block_count(), 4);
        let mut claimed = BTreeSet::new();
        let mut order = Vec::new();
        while let Some(b) = p.pick_unclaimed(s, "node-a", &claimed) {
            assert_ne!(
                b,
                cidr("10.0.0.64/26"),
                "a wholly excluded block is never claimed"
            );
            claimed.insert(b);
            order.push(b);
        }
        assert_eq!(order.len(), 3);
        // Deterministic per node; other names start elsewhere.
        let firsts: BTreeSet<Cidr> = (0..20)
            .filter_map(|i| p.pick_unclaimed(s, &format!("node-{i}"), &BTreeSet::new()))
            .collect();
        assert!(
            firsts.len() > 1,
            "every node would race for the same block: {firsts:?}"
        );
        assert_eq!(
            p.pick_unclaimed(s, "node-a", &BTreeSet::new()),
            Some(order[0])
        );
    }

    #[test]
    fn the_record_rebuilds_the_same_pool() {
        let p = Pool::new(
            vec![
                set(&[("fd00::/64", None, None)]),
                set(&[("10.0.0.0/16", Some("10.0.1.0"), None)]),
            ],
            Some(24),
            None,
            vec![
                cidr("10.0.9.0/24"),
                cidr("10.0.8.0/24"),
                cidr("10.0.9.0/24"),
            ],
        )
        .unwrap();
        let r = p.record();
        assert_eq!(r.sets[0].block_size, 24, "sets sorted: IPv4 first");
        assert_eq!(
            r.exclude,
            [cidr("10.0.8.0/24"), cidr("10.0.9.0/24")],
            "sorted, deduplicated"
        );
        let back = Pool::from_record(&r).unwrap();
        assert_eq!(back.record(), r);
    }
}
