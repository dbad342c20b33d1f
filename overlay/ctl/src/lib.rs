//! `overlayctl`: the admin CLI of the VXLAN overlay (the config at
//! `<prefix>/config`, the node records under `<prefix>/subnets/`). The
//! binary is [`main`]; the modules are public for the tests.

pub mod cli;
pub mod cmd;
pub mod connect;
pub mod store;
pub mod table;

use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};

/// Parses the command line (exit 2 on a bad one), runs the command, prints
/// its report: exit 0 done, 1 failed with the reason on stderr.
pub fn main() -> ExitCode {
    let start = Instant::now();
    let cli = cli::Cli::parse();
    let settings = connect::settings(&cli.global).unwrap_or_else(|msg| {
        cli::Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    });
    let target = cmd::Target {
        deadline: start + settings.timeout,
        settings,
    };
    let outcome = connect::block_on(cmd::run(&cli.command, &target));
    print_outcome(outcome, cli.global.json)
}

fn fail(e: &cni::Error) -> ExitCode {
    eprintln!("overlayctl: {}", e.msg);
    for line in e.details.lines() {
        eprintln!("overlayctl:   {line}");
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
        eprintln!("overlayctl: warning: {w}");
    }
    match &report.failure {
        Some(e) => fail(e),
        None => ExitCode::SUCCESS,
    }
}
