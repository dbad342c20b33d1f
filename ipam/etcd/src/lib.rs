//! The `etcd-ipam` IPAM plugin: one address pool shared by every node of a
//! cluster through etcd. The pool is cut into blocks; a node claims blocks
//! and allocates from its own, and one allocation is one etcd transaction
//! that updates the block (guarded by its mod revision) and writes the handle
//! `(network, node, container id, ifname) -> addresses`. README.md has the key
//! layout and the transaction of every operation.
//!
//! - [`config`]: the plugin's config (code 7, before any etcd work)
//! - [`keys`], [`model`]: where things live in etcd and what they hold
//! - [`pool`]: blocks and addresses of the configured ranges (pure)
//! - [`plan`]: what an ADD or DEL writes, given what was read (pure)
//! - [`etcd`]: the one connection of an invocation, with its deadline
//! - [`ops`]: ADD, DEL, GC, CHECK, STATUS and the admin reads, over etcd
//! - [`usage`]: how full the pool is (STATUS, ipamctl)
//! - [`lock`]: the node-local lock that serialises this node's allocations
//! - [`plugin`]: the CNI commands
//! - [`admin`]: ipamctl's cross-node reads and writes (leaks, releasing a gone node)

pub mod admin;
pub mod config;
pub mod etcd;
pub mod keys;
pub mod lock;
pub mod model;
pub mod ops;
pub mod plan;
pub mod plugin;
pub mod pool;
pub mod usage;

pub use plugin::EtcdIpam;
