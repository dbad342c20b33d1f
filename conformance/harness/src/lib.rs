//! Test harness shared by every suite in the workspace.
//!
//! - [`Sandbox`]: a throwaway "host" network namespace plus container namespaces,
//!   all removed on drop (also when the test panics).
//! - [`PluginCall`]: runs a plugin binary inside the sandbox's host namespace with
//!   CNI_* variables and stdin, and hands back its exit status, stdout and stderr.
//! - [`TcpForward`]: a sandbox namespace's 127.0.0.1 port relayed to the test
//!   process's (how plugins in a sandbox reach the etcd fixture).
//! - [`bins`]: where the workspace's binaries are, for tests in other crates.
//! - [`certs`]: a throwaway CA with server and client certificates (PEM), for
//!   TLS tests.
//! - [`ctl`]: runs an admin CLI (ipamctl, overlayctl) and checks its exit.
//!
//! Nothing here touches the machine's own namespace: every command that changes
//! network state runs inside a namespace the sandbox made.

pub mod bins;
pub mod certs;
pub mod ctl;
pub mod etcd;
mod forward;
mod netns;
pub mod peer;
mod plugin;
mod tool;

pub use etcd::{EtcdCluster, EtcdServer, ServerTls};
pub use forward::TcpForward;
pub use netns::{Netns, Sandbox};
pub use peer::{tcp_ask, tcp_ask_eventually, udp_ask, PeerServer};
pub use plugin::{PluginCall, PluginOutput};
pub use tool::{require_tool, run_ok};
