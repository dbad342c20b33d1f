//! The command line: global etcd options, the subcommands and their flags.

use std::path::PathBuf;

use admin_cli::EtcdArgs;
use clap::{Args, Parser, Subcommand};
use cni::NetworkName;
use etcd_ipam::config::{validate_node, DEFAULT_PREFIX};

const EXAMPLES: &str = "\
Examples:
  ipamctl usage
  ipamctl --etcd-endpoints https://10.0.0.5:2379,https://10.0.0.6:2379 \\
          --cacert ca.pem --cert admin.pem --key admin-key.pem blocks --network net1
  ipamctl handles --network net1 --node node-a --json
  crictl pods -q | ipamctl leaks --network net1 --node node-a --containers -
  ipamctl leaks --network net1 --node node-a --cache-dir /var/lib/cni/results --release
  ipamctl node release node-a --network net1

Exit status: 0 done, 1 failed (the reason on stderr), 2 bad command line.";

/// Admin tool for etcd-ipam: how full the pools are, who holds which block
/// and address, leaked addresses, and releasing a node that is gone.
#[derive(Debug, Parser)]
#[command(name = "ipamctl", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach etcd, and the output format (valid before or after the
/// subcommand): the options every admin CLI takes, and ipamctl's own.
#[derive(Debug, Args)]
pub struct Global {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The key prefix the plugin's ipam.etcd.prefix names
    #[arg(long, global = true, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// etcd user (with --password)
    #[arg(long, global = true, conflicts_with = "user")]
    pub username: Option<String>,
    /// etcd password of --username
    #[arg(long, global = true, requires = "username", conflicts_with = "user")]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pool usage: per range set (capacity, used, blocks claimed) and per node
    #[command(after_help = "Example:\n  ipamctl usage --network net1 --json")]
    Usage {
        /// One network (default: every network under the prefix)
        #[arg(long, value_parser = parse_network)]
        network: Option<NetworkName>,
    },
    /// Claimed blocks: their node and how many of their addresses are used
    #[command(after_help = "Example:\n  ipamctl blocks --network net1 --node node-a")]
    Blocks(Filter),
    /// Handles (one per attachment): node, container id, ifname, addresses
    #[command(after_help = "Example:\n  ipamctl handles --node node-a --json")]
    Handles(Filter),
    /// Handles of a node whose container no longer exists (dry run unless --release)
    #[command(after_help = "\
A handle is leaked when its container is not in the --containers list, or when
no result-cache entry of the network names its container id and ifname.
Without --release nothing changes; --release releases each leaked handle in its
own transaction (handle deleted, addresses freed), as the container's DEL would.

Examples:
  crictl pods -q | ipamctl leaks --network net1 --node node-a --containers -
  ipamctl leaks --network net1 --node node-a --cache-dir /var/lib/cni/results --release")]
    Leaks(LeaksArgs),
    /// Nodes: release the blocks of a node that is gone
    #[command(subcommand)]
    Node(NodeCommand),
}

/// Which part of the pool to show.
#[derive(Debug, Args)]
pub struct Filter {
    /// One network (default: every network under the prefix)
    #[arg(long, value_parser = parse_network)]
    pub network: Option<NetworkName>,
    /// Only this node's
    #[arg(long, value_parser = parse_node)]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct LeaksArgs {
    /// The network whose handles are checked
    #[arg(long, value_parser = parse_network)]
    pub network: NetworkName,
    /// The node whose handles are checked (the one the list or cache is from)
    #[arg(long, value_parser = parse_node)]
    pub node: String,
    #[command(flatten)]
    pub alive: AliveSource,
    /// Release the leaked handles (default: only list them)
    #[arg(long)]
    pub release: bool,
}

/// What still runs on the node: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AliveSource {
    /// File of the node's live container ids, one a line (`-`: stdin; `#` comments)
    #[arg(long, value_name = "FILE|-")]
    pub containers: Option<PathBuf>,
    /// The node's libcni result cache (e.g. /var/lib/cni/results)
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Delete the claims and blocks of a node that is gone, in one transaction
    #[command(after_help = "\
Refused (exit 1) while the node still holds handles, or while its blocks hold
addresses of other nodes' handles (once its blocks are claimed again those
addresses could be handed out twice). --force releases all the same, and also
deletes the node's handles, giving the addresses they borrowed from other
nodes' blocks back.

Example:
  ipamctl node release node-a --network net1 --force")]
    Release {
        /// The node (its ipam.nodeName)
        #[arg(value_parser = parse_node)]
        name: String,
        /// The network whose blocks the node gives back
        #[arg(long, value_parser = parse_network)]
        network: NetworkName,
        /// Release even while the node holds handles or lends addresses
        #[arg(long)]
        force: bool,
    },
}

fn parse_network(s: &str) -> Result<NetworkName, String> {
    s.parse().map_err(|e: cni::Error| e.msg)
}

fn parse_node(s: &str) -> Result<String, String> {
    validate_node(s).map(|()| s.to_string()).map_err(|e| e.msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "ipamctl",
            "usage",
            "--json",
            "--etcd-endpoints",
            "http://a:1,http://b:2",
        ])
        .unwrap();
        assert!(cli.global.etcd.json);
        assert_eq!(cli.global.etcd.etcd_endpoints, ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn leaks_needs_exactly_one_source() {
        let base = ["ipamctl", "leaks", "--network", "n", "--node", "a"];
        assert!(Cli::try_parse_from(base).is_err());
        let both = [&base[..], &["--containers", "-", "--cache-dir", "/x"]].concat();
        assert!(Cli::try_parse_from(both).is_err());
        let one = [&base[..], &["--containers", "-"]].concat();
        assert!(Cli::try_parse_from(one).is_ok());
    }
}
