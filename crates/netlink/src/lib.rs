//! A small blocking API over rtnetlink for one-shot network plugins: namespace
//! handles, links (veth, bridge, vxlan), addresses, routes, neighbours, FDB
//! entries and sysctls. Nothing here knows about CNI.
//!
//! ```no_run
//! use netlink::{Netlink, Netns, VethPeer, VethSpec};
//! # fn main() -> netlink::Result<()> {
//! let container = Netns::open("/run/netns/c1")?;
//! let nl = Netlink::connect_current()?;
//! let host_side = nl.create_veth(&VethSpec {
//!     name: "veth1234".into(),
//!     mtu: Some(1450),
//!     mac: None,
//!     master: None,
//!     peer: VethPeer { name: "eth0".into(), mtu: Some(1450), mac: None, netns: &container },
//! })?;
//! # let _ = host_side; Ok(()) }
//! ```
//!
//! Each [`Netlink`] owns one blocking socket created inside its namespace (on
//! a short-lived helper thread, see [`Netlink::connect`], or by the calling
//! thread moved there for the moment, [`Netlink::connect_entering`]). Calls
//! block until the kernel answers; there is no async runtime. That socket is
//! [`socket::Socket`], the one netlink socket of the project: the `nft`
//! crate speaks nf_tables through it too, and tests replace the kernel
//! behind it with a scripted [`socket::Fake`].
//! Netlink types are reached only through `rtnetlink::packet_route`, so the
//! versions can't diverge.

mod addr;
mod create;
mod error;
mod handle;
mod link;
pub mod lookup;
mod neigh;
mod netns;
mod route;
pub mod socket;
mod sysctl;

pub use create::{BridgeSpec, VethPeer, VethSpec, VxlanSpec};
pub use error::{Error, ErrorKind, Result};
pub use handle::Netlink;
pub use ipnetwork::IpNetwork;
pub use link::{format_mac, validate_ifname, Link, PortFlags, VxlanInfo};
pub use neigh::{FdbEntry, Neighbour};
pub use netns::{Netns, NetnsGuard};
pub use route::{IpFamily, Route, DEFAULT_V4, DEFAULT_V6, MAIN_TABLE};
pub use sysctl::{sysctl_path, Sysctl};
