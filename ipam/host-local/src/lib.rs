//! The `host-local` IPAM plugin: node-local address allocation in files, a
//! drop-in for the reference Go plugin. Same config keys, same range
//! semantics, same on-disk layout (so either implementation takes over the
//! other's leases), plus an idempotent ADD, a CHECK that compares prevResult,
//! GC and STATUS. See README.md for the differences from the reference.
//!
//! - [`config`]: reading and validating the config (code 7, before any disk work)
//! - [`dns`]: `resolvConf` into the result's `dns`
//! - [`store`]: the lease directory and its lock
//! - [`allocate`]: ADD; [`release`]: DEL and GC; [`inspect`]: CHECK and STATUS
//! - [`plugin`]: the CNI commands

pub mod allocate;
pub mod config;
pub mod dns;
pub mod inspect;
pub mod plugin;
pub mod release;
pub mod store;

pub use plugin::HostLocal;
