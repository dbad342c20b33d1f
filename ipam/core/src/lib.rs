//! Allocator logic shared by `host-local` and `etcd-ipam`: address ranges, range
//! sets, and the reference plugin's round-robin walk. Pure functions over an
//! "is this address taken?" predicate, so they are unit-tested without root,
//! files or etcd.

mod addr;
pub mod conf;
mod range;
mod walk;

pub use addr::{IpFamily, IpInt};
pub use range::{check_sets_disjoint, Range, RangeConfig, RangeSet};
pub use walk::{check_requested, next_free, RangeIter};
