//! The command dispatcher every plugin runs: reads CNI_* variables and stdin,
//! validates them per command, negotiates the version, calls the plugin, and
//! prints the result or the spec's error JSON on stdout.
//!
//! Order of checks (each failure is the first one found, with its code):
//! CNI_COMMAND (4) -> required variables and their syntax (4) -> stdin JSON (6)
//! -> cniVersion (1) -> command allowed at that version (1) -> common config
//! keys (6/7) -> CNI_NETNS usable and not our own (8) -> CNI_ARGS keys (4)
//! -> the plugin.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::args::CniArgs;
use crate::config::{peek_version, NetConf};
use crate::error::{Error, ErrorCode};
use crate::names::{ContainerId, IfName};
use crate::result::CniResult;
use crate::version::Version;

/// CNI_COMMAND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, Error> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => {
                return Err(Error::invalid_env(format!(
                    "unknown CNI_COMMAND {other:?}: expected ADD, DEL, CHECK, STATUS, GC or VERSION"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Whether the command acts on one attachment (needs container id and ifname).
    fn per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// A validated invocation, handed to the plugin.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// Set for ADD, DEL and CHECK.
    pub container_id: Option<ContainerId>,
    /// Required for ADD and CHECK; optional for DEL (the namespace may be gone).
    pub netns: Option<PathBuf>,
    /// Set for ADD, DEL and CHECK.
    pub ifname: Option<IfName>,
    pub args: CniArgs,
    pub cni_path: Vec<PathBuf>,
    pub config: NetConf,
    /// The exact bytes received, for delegating to another plugin.
    pub stdin: Vec<u8>,
}

impl Request {
    pub fn version(&self) -> Version {
        self.config.cni_version
    }

    /// The container id; an error only if a plugin asks for it outside ADD/DEL/CHECK.
    pub fn container_id(&self) -> Result<&ContainerId, Error> {
        self.container_id
            .as_ref()
            .ok_or_else(|| Error::invalid_env("CNI_CONTAINERID is required"))
    }

    pub fn ifname(&self) -> Result<&IfName, Error> {
        self.ifname
            .as_ref()
            .ok_or_else(|| Error::invalid_env("CNI_IFNAME is required"))
    }

    pub fn netns(&self) -> Result<&Path, Error> {
        self.netns
            .as_deref()
            .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))
    }
}

/// What a plugin implements. Each method gets a fully validated request.
pub trait Plugin {
    /// Creates the attachment and returns its result (converted to the config's
    /// version by the dispatcher).
    fn add(&self, req: &Request) -> Result<CniResult, Error>;
    /// Removes the attachment; must succeed when it is already gone.
    fn del(&self, req: &Request) -> Result<(), Error>;
    /// Verifies the attachment matches `prevResult`.
    fn check(&self, req: &Request) -> Result<(), Error>;
    /// Whether ADD would work now (codes 50/51 when not).
    fn status(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
    /// Releases resources of attachments not in `valid_attachments`.
    fn gc(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
    /// CNI_ARGS keys this plugin understands; `None` accepts any key (as the
    /// reference plugins that never read CNI_ARGS do).
    fn known_args(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// The process environment, as a map (so the dispatcher is testable).
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Env {
        // Variables that are not UTF-8 are kept lossily: a CNI_* one then fails
        // its own validation instead of vanishing.
        Env(std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Env {
        Env(iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }
}

/// What the process prints on stdout and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: u8,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome {
            stdout,
            exit_code: 0,
        }
    }

    fn error(err: &Error, cni_version: &str) -> Outcome {
        Outcome {
            stdout: err.to_json(cni_version).to_string(),
            exit_code: 1,
        }
    }
}

/// Runs the plugin for this process: reads the environment and stdin, prints
/// the outcome, returns the exit code. A plugin's `main` is one call to this.
pub fn run<P: Plugin + std::panic::RefUnwindSafe>(plugin: &P) -> ExitCode {
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => dispatch(plugin, &env, &stdin),
        Err(e) => Outcome::error(
            &Error::io(format!("cannot read stdin: {e}")),
            Version::LATEST.as_str(),
        ),
    };
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if stdout is gone; the exit code still tells.
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    ExitCode::from(outcome.exit_code)
}

/// The whole protocol, without touching the process: env and stdin in, stdout
/// and exit code out. A panic inside the plugin becomes error 999.
pub fn dispatch<P: Plugin + std::panic::RefUnwindSafe + ?Sized>(
    plugin: &P,
    env: &Env,
    stdin: &[u8],
) -> Outcome {
    // The version to stamp on errors: the config's own string when readable.
    let parsed: Option<Value> = serde_json::from_slice(stdin).ok();
    let err_version = parsed
        .as_ref()
        .and_then(|v| v.get("cniVersion"))
        .and_then(|v| v.as_str())
        .unwrap_or(Version::LATEST.as_str())
        .to_string();
    let result = std::panic::catch_unwind(|| dispatch_inner(plugin, env, stdin, parsed.clone()));
    match result {
        Ok(Ok(stdout)) => Outcome::ok(stdout),
        Ok(Err(e)) => Outcome::error(&e, &err_version),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Outcome::error(
                &Error::new(ErrorCode::INTERNAL, "internal error (plugin panicked)")
                    .with_details(what),
                &err_version,
            )
        }
    }
}

fn dispatch_inner<P: Plugin + ?Sized>(
    plugin: &P,
    env: &Env,
    stdin: &[u8],
    parsed: Option<Value>,
) -> Result<String, Error> {
    let command = Command::parse(
        env.get("CNI_COMMAND")
            .ok_or_else(|| Error::invalid_env("CNI_COMMAND is not set"))?,
    )?;
    if command == Command::Version {
        return version_reply(stdin, parsed);
    }

    // Required variables, all reported at once as the reference does.
    let mut missing = Vec::new();
    if command.per_attachment() {
        if env.get("CNI_CONTAINERID").is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if env.get("CNI_IFNAME").is_none() {
            missing.push("CNI_IFNAME");
        }
        if matches!(command, Command::Add | Command::Check) && env.get("CNI_NETNS").is_none() {
            missing.push("CNI_NETNS");
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid_env(format!(
            "required environment variables missing for {}: {}",
            command.as_str(),
            missing.join(", ")
        )));
    }
    let (container_id, ifname) = if command.per_attachment() {
        (
            env.get("CNI_CONTAINERID").map(str::parse).transpose()?,
            env.get("CNI_IFNAME")
                .map(|s| {
                    s.parse::<IfName>()
                        .map_err(|e| Error::invalid_env(format!("CNI_IFNAME: {}", e.msg)))
                })
                .transpose()?,
        )
    } else {
        // STATUS and GC get empty values from runtimes: ignore whatever came.
        (None, None)
    };
    let netns = if command.per_attachment() {
        env.get("CNI_NETNS").map(PathBuf::from)
    } else {
        None
    };
    let args = CniArgs::parse(env.get("CNI_ARGS").unwrap_or(""))?;
    let cni_path = env
        .get("CNI_PATH")
        .map(|p| {
            std::env::split_paths(p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();

    let raw = match parsed {
        Some(v) => v,
        None => {
            let e = serde_json::from_slice::<Value>(stdin)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(Error::decoding(format!(
                "network config on stdin is not valid JSON: {e}"
            )));
        }
    };
    if !raw.is_object() {
        return Err(Error::decoding("network config must be a JSON object"));
    }
    let version: Version = match peek_version(&raw)? {
        Some(v) => v.parse()?,
        None => {
            return Err(Error::incompatible_version(
                "network config has no cniVersion (that means 0.1.0, which is not supported)",
            )
            .with_details(format!(
                "supported versions: {}",
                Version::supported_strings().join(", ")
            )))
        }
    };
    match command {
        Command::Check if !version.has_check() => {
            return Err(Error::incompatible_version(format!(
                "CHECK is not defined for cniVersion {version} (needs 0.4.0 or later)"
            )))
        }
        Command::Status | Command::Gc if !version.has_status_and_gc() => {
            return Err(Error::incompatible_version(format!(
                "{} is not defined for cniVersion {version} (needs 1.1.0 or later)",
                command.as_str()
            )))
        }
        _ => {}
    }
    let config = NetConf::parse(raw, version)?;

    if let Some(ns) = &netns {
        check_netns(ns, command, env)?;
    }
    if matches!(command, Command::Add | Command::Check) {
        if let Some(known) = plugin.known_args() {
            args.check_known(known)?;
        }
    }

    let req = Request {
        command,
        container_id,
        netns,
        ifname,
        args,
        cni_path,
        config,
        stdin: stdin.to_vec(),
    };
    match command {
        Command::Add => Ok(plugin.add(&req)?.to_json(version).to_string()),
        Command::Del => plugin.del(&req).map(|_| String::new()),
        Command::Check => plugin.check(&req).map(|_| String::new()),
        Command::Status => plugin.status(&req).map(|_| String::new()),
        Command::Gc => plugin.gc(&req).map(|_| String::new()),
        Command::Version => unreachable_version(),
    }
}

/// VERSION was answered before; kept as an error rather than a panic.
fn unreachable_version() -> Result<String, Error> {
    Err(Error::new(ErrorCode::INTERNAL, "VERSION dispatched twice"))
}

/// `{"cniVersion", "supportedVersions"}`. Echoes the asked version when we
/// support it, else answers with our latest; stdin may be empty.
fn version_reply(stdin: &[u8], parsed: Option<Value>) -> Result<String, Error> {
    let asked = if stdin.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v = parsed.ok_or_else(|| Error::decoding("VERSION: stdin is not valid JSON"))?;
        peek_version(&v)?.and_then(|s| s.parse::<Version>().ok())
    };
    Ok(serde_json::json!({
        "cniVersion": asked.unwrap_or(Version::LATEST).as_str(),
        "supportedVersions": Version::supported_strings(),
    })
    .to_string())
}

/// ADD and CHECK need a namespace that exists; none of ADD, CHECK or DEL may
/// act on the plugin's own namespace (that would be the host's `lo`, `eth0`,
/// ...) unless CNI_NETNS_OVERRIDE says so, as in the reference.
fn check_netns(path: &Path, command: Command, env: &Env) -> Result<(), Error> {
    let target = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if command == Command::Del => {
            // DEL tolerates a namespace that is already gone.
            let _ = e;
            return Ok(());
        }
        Err(e) => {
            return Err(Error::invalid_netns(format!(
                "cannot open network namespace {}: {e}",
                path.display()
            )))
        }
    };
    let overridden = env
        .get("CNI_NETNS_OVERRIDE")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if overridden {
        return Ok(());
    }
    if let Ok(own) = std::fs::metadata("/proc/thread-self/ns/net") {
        if own.dev() == target.dev() && own.ino() == target.ino() {
            return Err(Error::invalid_netns(format!(
                "CNI_NETNS {} is the plugin's own network namespace (set CNI_NETNS_OVERRIDE=1 if that is meant)",
                path.display()
            )));
        }
    }
    Ok(())
}
