//! What a check is: data the runner reads, plus the function that runs it.

use std::time::Duration;

use crate::ctx::Ctx;

/// The groups of the suite, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Env,
    Cfg,
    Ver,
    Add,
    Chain,
    Del,
    Chk,
    Status,
    Gc,
    Err,
    Par,
    Clash,
    List,
}

impl Group {
    pub const ALL: [Group; 13] = [
        Group::Env,
        Group::Cfg,
        Group::Ver,
        Group::Add,
        Group::Chain,
        Group::Del,
        Group::Chk,
        Group::Status,
        Group::Gc,
        Group::Err,
        Group::Par,
        Group::Clash,
        Group::List,
    ];

    /// The ID prefix of the group's checks (`ENV` for `ENV-001`).
    pub fn prefix(self) -> &'static str {
        match self {
            Group::Env => "ENV",
            Group::Cfg => "CFG",
            Group::Ver => "VER",
            Group::Add => "ADD",
            Group::Chain => "CHAIN",
            Group::Del => "DEL",
            Group::Chk => "CHK",
            Group::Status => "STATUS",
            Group::Gc => "GC",
            Group::Err => "ERR",
            Group::Par => "PAR",
            Group::Clash => "CLASH",
            Group::List => "LIST",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Group::Env => "environment validation",
            Group::Cfg => "config parsing",
            Group::Ver => "version negotiation and result conversion per version",
            Group::Add => "ADD result shape",
            Group::Chain => "chaining with prevResult",
            Group::Del => "DEL idempotency and cleanup",
            Group::Chk => "CHECK on intact and tampered state",
            Group::Status => "STATUS",
            Group::Gc => "GC with valid attachments",
            Group::Err => "error JSON shape and codes",
            Group::Par => "parallel operations on distinct containers",
            Group::Clash => "interface-name clash in the container",
            Group::List => "plugin lists through cnitool (order, reverse DEL, cache)",
        }
    }
}

/// The plugins the suite knows how to drive. Only these names are ever run
/// from the plugin directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plugin {
    Loopback,
    Bridge,
    HostLocal,
    Portmap,
}

impl Plugin {
    pub const ALL: [Plugin; 4] = [
        Plugin::Loopback,
        Plugin::Bridge,
        Plugin::HostLocal,
        Plugin::Portmap,
    ];

    /// The binary's file name (the config's `type`).
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Loopback => "loopback",
            Plugin::Bridge => "bridge",
            Plugin::HostLocal => "host-local",
            Plugin::Portmap => "portmap",
        }
    }
}

/// Commands that exist only from some spec version on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// CHECK, from 0.4.0.
    Check,
    /// STATUS, from 1.1.0.
    Status,
    /// GC, from 1.1.0.
    Gc,
}

impl Cmd {
    pub fn since(self) -> &'static str {
        match self {
            Cmd::Check => "0.4.0",
            Cmd::Status | Cmd::Gc => "1.1.0",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cmd::Check => "CHECK",
            Cmd::Status => "STATUS",
            Cmd::Gc => "GC",
        }
    }
}

/// Which spec version a check runs at. The runner picks, among the versions
/// the suite knows and every needed plugin lists in `supportedVersions`, the
/// newest that satisfies this (and the commands' minimum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionReq {
    Newest,
    AtLeast(&'static str),
    Exactly(&'static str),
    Below(&'static str),
}

/// What a check needs to be applicable.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub plugins: &'static [Plugin],
    pub commands: &'static [Cmd],
    pub version: VersionReq,
    /// Drives our `cnitool` binary.
    pub cnitool: bool,
}

impl Needs {
    pub const fn on(plugins: &'static [Plugin]) -> Needs {
        Needs {
            plugins,
            commands: &[],
            version: VersionReq::Newest,
            cnitool: false,
        }
    }

    pub const fn cmds(mut self, commands: &'static [Cmd]) -> Needs {
        self.commands = commands;
        self
    }

    pub const fn at(mut self, version: VersionReq) -> Needs {
        self.version = version;
        self
    }

    pub const fn cnitool(mut self) -> Needs {
        self.cnitool = true;
        self
    }
}

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable ID, e.g. `DEL-003`. Never reused for another rule.
    pub id: &'static str,
    pub group: Group,
    /// The rule, in one line. `SHOULD:` marks a recommendation.
    pub rule: &'static str,
    pub needs: Needs,
    pub run: fn(&Ctx) -> Res,
}

impl Check {
    /// A check; each group's table builds its entries through this.
    pub const fn new(
        id: &'static str,
        group: Group,
        rule: &'static str,
        needs: Needs,
        run: fn(&Ctx) -> Res,
    ) -> Check {
        Check {
            id,
            group,
            rule,
            needs,
            run,
        }
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("id", &self.id)
            .field("rule", &self.rule)
            .finish()
    }
}

impl Check {
    /// Whether the rule is a recommendation rather than a requirement.
    pub fn recommended(&self) -> bool {
        self.rule.starts_with("SHOULD:")
    }
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Fail(String),
    /// Found out while running (e.g. a plugin behaves in a way that makes the
    /// rule moot); the runner's own applicability test comes first.
    NotApplicable(String),
}

impl From<String> for Problem {
    fn from(s: String) -> Problem {
        Problem::Fail(s)
    }
}

impl From<&str> for Problem {
    fn from(s: &str) -> Problem {
        Problem::Fail(s.to_string())
    }
}

/// What a check function returns.
pub type Res = Result<(), Problem>;

/// Fails the check with a formatted detail unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::check::Problem::Fail(format!($($fmt)+)));
        }
    };
}

/// Fails the check with a formatted detail.
#[macro_export]
macro_rules! fail {
    ($($fmt:tt)+) => {
        return Err($crate::check::Problem::Fail(format!($($fmt)+)))
    };
}

/// Ends the check as not applicable with a formatted reason.
#[macro_export]
macro_rules! not_applicable {
    ($($fmt:tt)+) => {
        return Err($crate::check::Problem::NotApplicable(format!($($fmt)+)))
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pass,
    Fail,
    NotApplicable,
}

impl Status {
    /// As printed and in JSON: `pass`, `fail`, `n/a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotApplicable => "n/a",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: &'static str,
    pub group: Group,
    pub rule: &'static str,
    pub status: Status,
    /// Empty on pass; the failure, or why the check does not apply.
    pub detail: String,
    pub duration: Duration,
}
