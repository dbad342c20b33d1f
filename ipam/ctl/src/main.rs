//! `ipamctl`: the admin CLI of etcd-ipam. Exit status 0 done, 1 failed
//! (reason on stderr), 2 bad command line (clap's).

mod alive;
mod cli;
mod cmd;
mod connect;
mod view;

use std::process::ExitCode;
use std::time::Instant;

use admin_cli::{AdminCli, Report};

fn main() -> ExitCode {
    cni::embed_marker!();
    admin_cli::main::<cli::Cli>()
}

impl AdminCli for cli::Cli {
    type Target = connect::Target;

    fn target(&self, start: Instant) -> Result<connect::Target, String> {
        let cfg = connect::etcd_config(&self.global)?;
        Ok(connect::Target {
            deadline: start + cfg.timeout,
            cfg,
        })
    }

    fn run(&self, target: &connect::Target) -> Result<Report, cni::Error> {
        etcd_ipam::etcd::block_on(cmd::run(&self.command, target))
    }

    fn json(&self) -> bool {
        self.global.etcd.json
    }
}
