//! One error type for the whole runtime, each kind mapped to an exit code.

use std::fmt;
use std::time::Duration;

/// Exit status: the operation succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: the operation failed (a plugin failed, could not be run, timed
/// out or printed garbage; the result cache could not be used or written).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: bad command line, environment or network configuration, found
/// before any plugin ran.
pub const EXIT_USAGE: i32 = 2;

/// The CNI operations a runtime runs on a network configuration list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Check,
    Del,
    Status,
    Gc,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// ADD, CHECK and DEL act on one attachment (container id, netns, ifname).
    pub fn is_attachment_op(self) -> bool {
        matches!(self, Command::Add | Command::Check | Command::Del)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error object a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u64,
    pub msg: String,
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = if self.msg.is_empty() {
            "(no message)"
        } else {
            &self.msg
        };
        write!(f, "{msg} (code {})", self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

/// Why one plugin invocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFailure {
    /// Non-zero exit with a well-formed CNI error on stdout.
    Cni(CniError),
    /// Non-zero exit and nothing on stdout; `stderr` may hold a hint.
    NoMessage { status: String, stderr: String },
    /// Non-zero exit and stdout that is not a CNI error object.
    BadErrorOutput { status: String, stdout: String },
    /// Zero exit but the ADD result is not a usable CNI result.
    BadResult(String),
    /// The binary could not be started.
    Exec(String),
    /// Killed after running longer than the configured timeout.
    Timeout(Duration),
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginFailure::Cni(e) => e.fmt(f),
            PluginFailure::NoMessage { status, stderr } if stderr.is_empty() => {
                write!(f, "{status} and printed no error message")
            }
            PluginFailure::NoMessage { status, stderr } => write!(f, "{status}: {stderr}"),
            PluginFailure::BadErrorOutput { status, stdout } => write!(
                f,
                "{status}; its output is not a CNI error object: {stdout:?}"
            ),
            PluginFailure::BadResult(why) => write!(f, "invalid result: {why}"),
            PluginFailure::Exec(why) => write!(f, "cannot execute plugin: {why}"),
            PluginFailure::Timeout(t) => write!(
                f,
                "timed out after {}s and was killed (CNI_PLUGIN_TIMEOUT)",
                t.as_secs_f64()
            ),
        }
    }
}

impl PluginFailure {
    /// The CNI error code when the plugin reported one.
    pub fn code(&self) -> Option<u64> {
        match self {
            PluginFailure::Cni(e) => Some(e.code),
            _ => None,
        }
    }
}

/// Everything that can go wrong in cnitool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line or environment variable.
    Usage(String),
    /// Network configuration missing, unreadable or invalid; plugin binary not found.
    Config(String),
    /// The command does not exist at the configuration's CNI version.
    Unsupported(String),
    /// A plugin failed.
    Plugin {
        plugin_type: String,
        command: Command,
        failure: PluginFailure,
    },
    /// The result cache could not be read (CHECK) or written (ADD).
    Cache(String),
    /// Several independent failures (GC keeps going and reports them all).
    Many(Vec<Error>),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Unsupported(_) => EXIT_USAGE,
            Error::Plugin { .. } | Error::Cache(_) => EXIT_FAILED,
            Error::Many(errs) => errs
                .iter()
                .map(Error::exit_code)
                .min()
                .unwrap_or(EXIT_FAILED),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Config(m) | Error::Unsupported(m) | Error::Cache(m) => {
                f.write_str(m)
            }
            Error::Plugin {
                plugin_type,
                command,
                failure,
            } => write!(f, "plugin {plugin_type} {command} failed: {failure}"),
            Error::Many(errs) => {
                let parts: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                f.write_str(&parts.join("; "))
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_message_names_plugin_code_and_details() {
        let e = Error::Plugin {
            plugin_type: "bridge".into(),
            command: Command::Add,
            failure: PluginFailure::Cni(CniError {
                code: 7,
                msg: "bad config".into(),
                details: "no subnet".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "plugin bridge ADD failed: bad config (code 7): no subnet"
        );
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(Error::Config("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(Error::Cache("x".into()).exit_code(), EXIT_FAILED);
        assert_eq!(
            Error::Many(vec![Error::Cache("a".into()), Error::Config("b".into())]).exit_code(),
            EXIT_FAILED
        );
    }
}
