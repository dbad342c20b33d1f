//! `overlayctl`: the admin CLI of the VXLAN overlay (the config at
//! `<prefix>/config`, the node records under `<prefix>/subnets/`). The
//! binary is [`main`]; the modules are public for the tests.

pub mod cli;
pub mod cmd;
pub mod connect;
pub mod duration;
pub mod store;

use std::process::ExitCode;
use std::time::Instant;

use admin_cli::{AdminCli, Report};

/// Parses the command line (exit 2 on a bad one), runs the command, prints
/// its report: exit 0 done, 1 failed with the reason on stderr.
pub fn main() -> ExitCode {
    admin_cli::main::<cli::Cli>()
}

impl AdminCli for cli::Cli {
    type Target = cmd::Target;

    fn target(&self, start: Instant) -> Result<cmd::Target, String> {
        let settings = connect::settings(&self.global)?;
        Ok(cmd::Target {
            deadline: start + settings.timeout,
            settings,
        })
    }

    fn run(&self, target: &cmd::Target) -> Result<Report, cni::Error> {
        connect::block_on(cmd::run(&self.command, target))
    }

    fn json(&self) -> bool {
        self.global.etcd.json
    }
}
