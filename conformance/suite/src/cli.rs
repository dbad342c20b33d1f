//! `cni-conformance --plugins DIR [--only ID...] [--format table|json]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::check::Status;
use crate::runner::{self, Options};

pub const HELP: &str = "\
cni-conformance: check a directory of CNI plugin binaries against the CNI spec

USAGE
    cni-conformance --plugins DIR [--only ID...] [--format table|json|markdown]
                    [--threads N] [--timeout SECS] [--cnitool PATH]
    cni-conformance --list

OPTIONS
    --plugins DIR      the plugins to check (loopback, bridge, host-local, portmap are
                       driven; a missing one makes its checks n/a)
    --only ID...       run only these checks; an ID (DEL-003) or a group (DEL); may be
                       repeated or comma-separated
    --format F         table (default), json ({\"checks\": [{\"id\", \"rule\", \"status\",
                       \"detail\"}]}, status pass|fail|n/a) or markdown
    --threads N        checks run at once (default 3)
    --timeout SECS     time limit for one plugin run (default 30)
    --cnitool PATH     the cnitool binary for the LIST checks (default: next to this
                       program, then PATH)
    --list             print every check (ID and rule) and exit

Needs root: every check runs the plugins inside throwaway network namespaces it
creates and removes. Exit status: 0 when no check failed, 1 when one did, 2 on
usage errors.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(Debug)]
pub enum Action {
    Help,
    List,
    Run(Options, Format),
}

pub fn parse(args: &[OsString]) -> Result<Action, String> {
    let mut dir: Option<PathBuf> = None;
    let mut only = Vec::new();
    let mut format = Format::Table;
    let mut threads = 3;
    let mut timeout = Duration::from_secs(30);
    let mut cnitool = None;
    let mut it = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .peekable();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Action::Help),
            "--list" => return Ok(Action::List),
            "--plugins" => dir = Some(PathBuf::from(value("--plugins")?)),
            "--format" => {
                format = match value("--format")?.as_str() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    "markdown" | "md" => Format::Markdown,
                    other => return Err(format!("unknown format {other:?}")),
                }
            }
            "--threads" => {
                threads = value("--threads")?
                    .parse()
                    .map_err(|_| "--threads needs a number".to_string())?
            }
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .map_err(|_| "--timeout needs a number of seconds".to_string())?;
                timeout = Duration::from_secs(secs.max(1));
            }
            "--cnitool" => cnitool = Some(PathBuf::from(value("--cnitool")?)),
            "--only" => {
                let first = value("--only")?;
                only.extend(first.split(',').map(str::to_string));
                // Further IDs up to the next option.
                while let Some(next) = it.peek() {
                    if next.starts_with("--") {
                        break;
                    }
                    let next = it.next().unwrap_or_default();
                    only.extend(next.split(',').map(str::to_string));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    only.retain(|s| !s.trim().is_empty());
    let dir = dir.ok_or("--plugins DIR is required")?;
    let mut opts = Options::new(dir);
    opts.only = only;
    opts.threads = threads;
    opts.timeout = timeout;
    opts.cnitool = cnitool;
    Ok(Action::Run(opts, format))
}

/// Every check as `ID  rule`.
pub fn list() -> String {
    crate::checks::all()
        .iter()
        .map(|c| format!("{:<10} {}\n", c.id, c.rule))
        .collect()
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let (opts, format) = match parse(&args) {
        Ok(Action::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Action::List) => {
            print!("{}", list());
            return ExitCode::SUCCESS;
        }
        Ok(Action::Run(o, f)) => (o, f),
        Err(e) => {
            eprintln!("cni-conformance: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let report = match runner::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cni-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    match format {
        Format::Table => print!("{}", crate::report::table(&report)),
        Format::Json => println!("{}", crate::report::json(&report)),
        Format::Markdown => print!("{}", crate::report::markdown(&report)),
    }
    if report.count(Status::Fail) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_documented_options() {
        let Action::Run(o, f) = parse(&args(&[
            "--plugins",
            "/usr/lib/cni",
            "--only",
            "DEL-003",
            "ENV",
            "--format",
            "json",
        ]))
        .unwrap() else {
            panic!("expected a run")
        };
        assert_eq!(o.plugin_dir, PathBuf::from("/usr/lib/cni"));
        assert_eq!(o.only, vec!["DEL-003", "ENV"]);
        assert_eq!(f, Format::Json);
        assert!(parse(&args(&["--only", "X"])).is_err());
        assert!(parse(&args(&["--plugins", "d", "--format", "xml"])).is_err());
        assert!(matches!(parse(&args(&["--list"])).unwrap(), Action::List));
    }
}
