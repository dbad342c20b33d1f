//! `ipamctl`: the admin CLI of etcd-ipam. Exit status 0 done, 1 failed
//! (reason on stderr), 2 bad command line (clap's).

mod alive;
mod cli;
mod cmd;
mod connect;
mod table;
mod view;

use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    cni::embed_marker!();
    let start = Instant::now();
    let cli = cli::Cli::parse();
    let cfg = connect::etcd_config(&cli.global).unwrap_or_else(|msg| {
        cli::Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    });
    let target = connect::Target {
        deadline: start + cfg.timeout,
        cfg,
    };
    let outcome = etcd_ipam::etcd::block_on(cmd::run(&cli.command, &target));
    print_outcome(outcome, cli.global.json)
}

fn fail(e: &cni::Error) -> ExitCode {
    if e.details.is_empty() {
        eprintln!("ipamctl: {}", e.msg);
    } else {
        eprintln!("ipamctl: {}: {}", e.msg, e.details);
    }
    ExitCode::FAILURE
}

fn print_outcome(outcome: Result<cmd::Report, cni::Error>, json: bool) -> ExitCode {
    let report = match outcome {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if json {
        println!("{:#}", report.json);
    } else {
        print!("{}", report.text);
    }
    for w in &report.warnings {
        eprintln!("ipamctl: warning: {w}");
    }
    match &report.failure {
        Some(e) => fail(e),
        None => ExitCode::SUCCESS,
    }
}
