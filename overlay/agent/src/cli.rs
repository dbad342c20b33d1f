//! The command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// overlayd: one per node. Leases this node's subnet of the overlay network
/// in etcd, creates the VXLAN device, and programs the FDB, neighbour and
/// route entries that reach every other node's pods.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "overlayd",
    version,
    after_help = "Examples:\n  \
overlayd --etcd-endpoints http://10.0.0.5:2379 --node-name node-a\n  \
overlayd --etcd-endpoints https://10.0.0.5:2379 --etcd-cacert ca.pem --etcd-cert node.pem --etcd-key node-key.pem \\\n           --node-name node-a --public-ip 10.0.0.11 --metrics-addr 127.0.0.1:9464\n\n\
The overlay network is read from <prefix>/config (set it with `overlayctl config set`)."
)]
pub struct Args {
    /// etcd client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of the overlay in etcd.
    #[arg(long, default_value = overlay_core::DEFAULT_PREFIX)]
    pub prefix: String,
    /// This node's name (unique in the cluster).
    #[arg(long)]
    pub node_name: String,
    /// The underlay address VXLAN packets come from (default: --iface's, else the default route's interface's).
    #[arg(long)]
    pub public_ip: Option<IpAddr>,
    /// The underlay interface.
    #[arg(long)]
    pub iface: Option<String>,
    /// Where this node's subnet, gateway and MTU are written for the vxlan plugin.
    #[arg(long, default_value = "/run/overlay/subnet.json")]
    pub subnet_file: PathBuf,
    /// TTL of this node's lease in etcd: a dead node's routes go from the others this long after it stops.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(5..=3600))]
    pub lease_ttl: i64,
    /// Seconds between reconciles of the kernel state against the desired one.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reconcile_interval: u64,
    /// Serve /metrics and /healthz here.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Revoke the lease on SIGTERM (the subnet is freed and the others drop this node at once); by default the lease is kept so a restart keeps the subnet.
    #[arg(long)]
    pub release_on_exit: bool,
    /// CA bundle (PEM) for https:// endpoints.
    #[arg(long)]
    pub etcd_cacert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user, as USER or USER:PASSWORD.
    #[arg(long)]
    pub etcd_user: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
}
