//! cnitool: a CNI runtime in a binary. It loads a network configuration list
//! and drives its plugins the way libcni (the Go runtime library used by
//! containerd, CRI-O and the reference `cnitool`) does: same configuration
//! lookup, version choice, request derivation, plugin lookup and environment,
//! same result cache on disk.
//!
//! The pieces are usable on their own (a conformance suite drives plugins
//! through [`Runtime`]):
//!
//! - [`conf`]: find and parse configuration lists ([`conf::load_network_conf`],
//!   [`conf::parse_conflist`], [`conf::lift_conf`]), choose the version
//!   ([`conf::select_version`]), build what a plugin gets on stdin
//!   ([`conf::attachment_request`], [`conf::gc_request`], [`conf::status_request`]).
//! - [`exec`]: find a plugin binary ([`exec::find_in_path`]), run it with the
//!   CNI_* variables, stdin and an optional timeout ([`exec::run`]), classify
//!   its failure ([`exec::failure`]).
//! - [`cache`]: libcni's result cache files ([`cache::CacheEntry`]).
//! - [`result`]: reading ADD output and converting cached results between versions.
//! - [`Runtime`]: ADD / CHECK / DEL / STATUS / GC of a list for an [`Attachment`].
//! - [`cli`]: the command line (`cnitool --help`).

pub mod cache;
pub mod cli;
pub mod conf;
pub mod error;
pub mod exec;
pub mod gc;
pub mod result;
pub mod runtime;
pub mod validate;
pub mod version;

#[cfg(test)]
mod testutil;

pub use conf::{NetworkConfigList, PluginConfig};
pub use error::{CniError, Command, Error, PluginFailure, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
pub use gc::GcAttachment;
pub use runtime::{Attachment, Report, Runtime};
pub use version::Version;
