//! Running one command of an admin CLI: parse the command line, check the
//! global options, run the command, print its report. Exit status 0 done,
//! 1 failed (the reason on stderr), 2 bad command line (clap's message).

use std::process::ExitCode;
use std::time::Instant;

use clap::error::ErrorKind;
use clap::Parser;
use cni::Error;
use serde_json::Value;

/// What a command has to say: the same facts as text (tables) and as JSON;
/// [`main`] prints the one asked for.
pub struct Report {
    pub text: String,
    pub json: Value,
    /// Notes for stderr, whatever the format.
    pub warnings: Vec<String>,
    /// A failure after part of the work was done (the report shows which
    /// part): printed after the report, then the exit status is 1.
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

/// An admin CLI's parsed command line, and how to run it.
pub trait AdminCli: Parser {
    /// Where and until when a command may talk to etcd.
    type Target;

    /// The target of the global options, the command's budget counted from
    /// `start`; `Err` is a usage error (exit 2).
    fn target(&self, start: Instant) -> Result<Self::Target, String>;

    /// Runs the command to its end.
    fn run(&self, target: &Self::Target) -> Result<Report, Error>;

    /// Whether --json was given.
    fn json(&self) -> bool;
}

/// The whole CLI: a bad command line or global option exits 2 with clap's
/// message; then the command runs and its report is printed (exit 0), or
/// its failure (exit 1).
pub fn main<C: AdminCli>() -> ExitCode {
    let start = Instant::now();
    let cli = C::parse();
    let target = cli
        .target(start)
        .unwrap_or_else(|msg| C::command().error(ErrorKind::ArgumentConflict, msg).exit());
    let outcome = cli.run(&target);
    print_outcome(C::command().get_name(), outcome, cli.json())
}

fn print_outcome(program: &str, outcome: Result<Report, Error>, json: bool) -> ExitCode {
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return fail(program, &e),
    };
    if json {
        println!("{:#}", report.json);
    } else {
        print!("{}", report.text);
    }
    for warning in &report.warnings {
        eprintln!("{program}: warning: {warning}");
    }
    match &report.failure {
        Some(e) => fail(program, e),
        None => ExitCode::SUCCESS,
    }
}

fn fail(program: &str, e: &Error) -> ExitCode {
    eprint!("{}", failure_text(program, e));
    ExitCode::FAILURE
}

/// The message on a line, then each line of the details indented under it
/// (details can be a list of reasons, one a line).
fn failure_text(program: &str, e: &Error) -> String {
    let mut text = format!("{program}: {}\n", e.msg);
    for line in e.details.lines() {
        text.push_str(&format!("{program}:   {line}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_its_message_then_each_detail_indented() {
        let e = Error::plugin("refused");
        assert_eq!(failure_text("ctl", &e), "ctl: refused\n");
        let e = e.with_details("one\ntwo");
        assert_eq!(
            failure_text("ctl", &e),
            "ctl: refused\nctl:   one\nctl:   two\n"
        );
    }
}
