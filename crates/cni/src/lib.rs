//! The CNI protocol: spec versions, config and result types with conversion
//! between versions, error codes, CNI_ARGS, value types, and the command
//! dispatcher ("skel") every plugin in this suite runs on.
//!
//! A plugin implements [`Plugin`] and its `main` is `cni::run(&MyPlugin)`.

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
