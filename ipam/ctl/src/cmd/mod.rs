//! The subcommands. Each returns a [`Report`]: the same facts as a table and
//! as JSON; `main` prints the one asked for.

mod blocks;
mod handles;
mod leaks;
mod node;
mod usage;

use cni::Error;
use serde_json::Value;

use crate::cli::{Command, NodeCommand};
use crate::connect::Target;

/// What a command has to say.
pub struct Report {
    pub text: String,
    pub json: Value,
    /// Notes for stderr, whatever the format.
    pub warnings: Vec<String>,
    /// A failure after part of the work was done (the report shows which
    /// part): printed, then the exit status is 1.
    pub failure: Option<Error>,
}

impl Report {
    pub fn new(text: String, json: Value) -> Report {
        Report {
            text,
            json,
            warnings: Vec::new(),
            failure: None,
        }
    }
}

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
