//! The subcommands. Each returns a [`Report`]: the same facts as a table and
//! as JSON; `admin_cli::main` prints the one asked for.

mod blocks;
mod handles;
mod leaks;
mod node;
mod usage;

pub use admin_cli::Report;
use cni::Error;

use crate::cli::{Command, NodeCommand};
use crate::connect::Target;

pub async fn run(command: &Command, target: &Target) -> Result<Report, Error> {
    match command {
        Command::Usage { network } => usage::run(target, network.as_ref()).await,
        Command::Blocks(filter) => blocks::run(target, filter).await,
        Command::Handles(filter) => handles::run(target, filter).await,
        Command::Leaks(args) => leaks::run(target, args).await,
        Command::Node(NodeCommand::Release {
            name,
            network,
            force,
        }) => node::release(target, name, network, *force).await,
    }
}
