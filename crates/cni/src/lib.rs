//! The CNI protocol: spec versions, config and result types with conversion
//! between versions, error codes, CNI_ARGS, value types, and the command
//! dispatcher ("skel") every plugin in this suite runs on.
//!
//! A plugin implements [`Plugin`] and its `main.rs` is
//! `cni::plugin_main!(my_plugin::MyPlugin);`, which runs the dispatcher
//! ([`run`]), embeds the build marker ([`marker`]) that tells our own
//! binaries from others on CNI_PATH, and installs the one-shot allocator
//! ([`arena`]).
//!
//! A plugin that delegates (bridge -> its IPAM plugin) calls [`delegate`],
//! which execs the plugin found along CNI_PATH as libcni does, or
//! [`delegate_with`], which may run a delegate linked into the caller
//! in-process instead, but only when the binary it would exec is provably
//! that plugin of this same build; [`EXEC_ENV`] (`CNI_RS_EXEC_IPAM=1`)
//! turns that off.

pub mod arena;
mod args;
mod config;
mod delegate;
mod error;
pub mod marker;
mod names;
mod result;
mod skel;
mod version;

#[cfg(test)]
mod skel_tests;

pub use args::{CniArgs, COMMON_KEYS};
pub use config::{peek_version, Attachment, IpamSection, NetConf};
pub use delegate::{delegate, delegate_with, find_plugin, InProcess, EXEC_ENV};
pub use error::{Error, ErrorCode};
pub use names::{Cidr, ContainerId, IfName, Mac, NetworkName, MAX_IFNAME_LEN};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{dispatch, run, Command, Env, Outcome, Plugin, Request};
pub use version::{compare_version_strings, Version};
