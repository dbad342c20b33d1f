//! The command line: global etcd options, the subcommands and their
//! arguments.

use std::path::PathBuf;

use admin_cli::EtcdArgs;
use clap::{Args, Parser, Subcommand};
use overlay_core::DEFAULT_PREFIX;

const EXAMPLES: &str = "\
Examples:
  overlayctl config get
  overlayctl config set overlay.json
  echo '{\"network\": \"10.244.0.0/15\"}' | overlayctl config set -
  overlayctl --etcd-endpoints https://10.0.0.5:2379,https://10.0.0.6:2379 \\
             --cacert ca.pem --cert admin.pem --key admin-key.pem nodes
  overlayctl nodes --json
  overlayctl node rm node-a

Exit status: 0 done, 1 failed (the reason on stderr), 2 bad command line.";

/// Admin tool for the VXLAN overlay: its network config in etcd (changes
/// that would break running nodes refused), the nodes and their subnet
/// leases, and removing a node that is gone.
#[derive(Debug, Parser)]
#[command(name = "overlayctl", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach etcd, and the output format (valid before or after the
/// subcommand): the options every admin CLI takes, and overlayd's prefix.
#[derive(Debug, Args)]
pub struct Global {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The key prefix overlayd uses (its config at <prefix>/config, node
    /// records at <prefix>/subnets/)
    #[arg(long, global = true, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The overlay's network config (<prefix>/config)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Every node: its subnet, underlay address, VTEP MAC, lease age and TTL left
    #[command(after_help = "\
LEASE AGE is how long ago the node took its current lease (from its record's
`since`, by this machine's clock); TTL LEFT is what etcd says is left of that
lease: overlayd keeps renewing it, so a TTL that only falls means a node that
stopped. With --json: a list of objects (node, subnet, publicIp, vtepMac,
leaseAge and ttlLeft in seconds, lease as hex), null where unknown.

Example:
  overlayctl nodes --json")]
    Nodes,
    /// Nodes: remove the record of a node that is gone
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the stored config (JSON)
    #[command(after_help = "Example:\n  overlayctl config get > overlay.json")]
    Get,
    /// Validate a config and store it, unless it would break running nodes
    #[command(after_help = "\
Refused (exit 1, each reason on stderr, nothing written) when the stored config
runs nodes that the new one would break: another vni or port (the nodes that
restart and those that don't stop understanding each other), another
subnetLen, or a network that no longer holds every leased subnet. --force
writes it all the same. Growing the network, or changing mtu or
directRouting, goes through.

The write is one etcd transaction guarded by what was read: if another admin
changed the config meanwhile, nothing is written (look again and rerun).

Examples:
  overlayctl config set overlay.json
  echo '{\"network\": \"10.244.0.0/15\"}' | overlayctl config set -
  overlayctl config set overlay.json --force")]
    Set {
        /// The config, JSON (`-`: stdin)
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        /// Write even a change that breaks running nodes
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Delete the subnet record(s) of a node that is gone, in one transaction
    #[command(after_help = "\
For nodes that are gone: a running overlayd keeps its lease alive and, when
its record vanishes, registers again. Without `node rm` the record of a dead
node vanishes anyway once its lease runs out.

Example:
  overlayctl node rm node-a")]
    Rm {
        /// The node's name (the NODE column of `overlayctl nodes`)
        #[arg(value_parser = parse_node)]
        name: String,
    },
}

fn parse_node(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a node name is not empty".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use admin_cli::DEFAULT_ENDPOINT;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "overlayctl",
            "--prefix",
            "/x",
            "nodes",
            "--json",
            "--etcd-endpoints",
            "http://a:1,http://b:2",
        ])
        .unwrap();
        assert!(cli.global.etcd.json);
        assert_eq!(cli.global.prefix, "/x");
        assert_eq!(cli.global.etcd.etcd_endpoints, ["http://a:1", "http://b:2"]);
        assert!(matches!(cli.command, Command::Nodes));
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["overlayctl", "config", "get"]).unwrap();
        assert_eq!(cli.global.etcd.etcd_endpoints, [DEFAULT_ENDPOINT]);
        assert_eq!(cli.global.prefix, "/overlay");
        assert_eq!(cli.global.etcd.timeout_ms, 5000);
        assert!(!cli.global.etcd.json);
    }

    #[test]
    fn subcommands_take_their_arguments() {
        let cli = Cli::try_parse_from(["overlayctl", "config", "set", "-", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Config(ConfigCommand::Set { ref file, force: true }) if file.as_os_str() == "-"
        ));
        let cli = Cli::try_parse_from(["overlayctl", "node", "rm", "n1"]).unwrap();
        assert!(matches!(cli.command, Command::Node(NodeCommand::Rm { ref name }) if name == "n1"));
        for bad in [
            &["overlayctl"][..],
            &["overlayctl", "config"],
            &["overlayctl", "config", "set"],
            &["overlayctl", "node", "rm"],
            &["overlayctl", "node", "rm", ""],
            &["overlayctl", "nodes", "--timeout-ms", "0"],
            &["overlayctl", "nodes", "--cert", "c.pem"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
