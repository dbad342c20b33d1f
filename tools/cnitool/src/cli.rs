//! The command line: arguments, environment, help, output, exit status.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::conf::{load_network_conf, NetworkConfigList};
use crate::error::{Command, Error, EXIT_FAILED, EXIT_OK};
use crate::gc::cached_valid_attachments;
use crate::runtime::{Attachment, Report, Runtime};
use crate::validate;
use crate::version;

pub const DEFAULT_NETCONFPATH: &str = "/etc/cni/net.d";
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
pub const DEFAULT_IFNAME: &str = "eth0";

/// The help text (`cnitool --help`).
pub fn help_text() -> String {
    format!(
        r#"cnitool: run a CNI network configuration list the way a container runtime (libcni) does

USAGE
    cnitool [OPTIONS] add    <network> <netns>
    cnitool [OPTIONS] check  <network> <netns>
    cnitool [OPTIONS] del    <network> [<netns>]
    cnitool [OPTIONS] status <network> [<netns>]
    cnitool [OPTIONS] gc     <network> [<netns>]
    cnitool -h | --help
    cnitool -V | --version

COMMANDS
    add     ADD on every plugin of the list, in order; each plugin after the first
            gets the previous plugin's result as "prevResult". Prints the final
            result (JSON) on stdout and records it in the result cache. Stops at
            the first plugin that fails: the plugins before it are NOT undone
            (libcni does not undo them either) and nothing is cached; run
            `cnitool del` with the same arguments to clean up.
    check   CHECK on every plugin, in order, with the cached ADD result as
            "prevResult". Needs CNI 0.4.0 or later (else exit 2) and a cached
            result (else exit 1). Does nothing when the list sets "disableCheck".
    del     DEL on every plugin in REVERSE order, with the cached ADD result as
            "prevResult" (CNI 0.4.0 and later). A missing or corrupt cache never
            blocks DEL: it runs without "prevResult". The cache entry is removed
            once every plugin succeeded. Stops at the first plugin that fails.
            <netns> may be left out (CNI_NETNS is then empty); --container-id is
            then required.
    status  STATUS on every plugin, in order (CNI 1.1.0 and later). Below 1.1.0
            no plugin is called and the exit status is 0, as with libcni.
    gc      Garbage collection. cnitool keeps no list of containers besides the
            result cache, so the still-valid attachments are the attachments of
            this network recorded in the result cache (every add not yet
            deleted); nothing is deleted as stale. Every plugin gets GC (CNI 1.1.0
            and later) with that list of {{"containerID", "ifname"}} under both
            "cni.dev/valid-attachments" (the spec's key) and "cni.dev/attachments"
            (the older key), as libcni sends. A failing plugin does not stop the
            others; all failures are reported. Below 1.1.0, or when the list sets
            "disableGC", no plugin is called and the exit status is 0.
    status and gc accept a <netns> argument (the reference cnitool wants one)
    and ignore it.

OPTIONS
    -i, --ifname <name>        interface name; overrides CNI_IFNAME
        --container-id <id>    use this container id instead of deriving it from <netns>
    -h, --help                 this text
    -V, --version              cnitool's version and the CNI versions it supports
    --                         end of options

ENVIRONMENT
    NETCONFPATH         configuration directory (default {DEFAULT_NETCONFPATH}). The network
                        is the first *.conflist file, in file name order, whose "name" is
                        <network>; unless it sets "loadOnlyInlinedPlugins", plugin objects
                        from <NETCONFPATH>/<network>/*.conf are appended to its plugins.
                        When no conflist matches, the first *.conf or *.json file (file name
                        order) with that "name" is lifted to a one-plugin list, as libcni
                        does. Files that cannot be read or have no "name" are skipped with
                        a note.
    CNI_PATH            ':'-separated plugin directories. A plugin's binary is the first
                        executable regular file named as its "type". Given to plugins.
    CNI_ARGS            "KEY=VALUE;KEY=VALUE" given to every plugin as CNI_ARGS (each pair
                        has exactly one '=' and a non-empty key and value).
    CAP_ARGS            JSON object of capability arguments. Each plugin gets, as
                        "runtimeConfig", those whose key it declares in "capabilities" with
                        the value true.
    CNI_IFNAME          interface name in the container (default {DEFAULT_IFNAME})
    CNI_CACHE_DIR       cache root (default {DEFAULT_CACHE_DIR})
    CNI_PLUGIN_TIMEOUT  seconds (decimals allowed) one plugin may run; then it and its
                        process group are killed with SIGKILL and the command fails (exit 1).
                        With a limit, each plugin runs in a process group of its own (so a
                        terminal's Ctrl-C stops only cnitool). Unset, empty or 0: no limit
                        (as libcni).
    Plugins inherit cnitool's environment with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
    CNI_IFNAME, CNI_ARGS and CNI_PATH set (STATUS and GC: only CNI_COMMAND and CNI_PATH
    non-empty).

CONTAINER ID
    "cnitool-" and the first 20 hex digits of the SHA-512 of the absolute <netns> path,
    as the reference cnitool makes it, unless --container-id is given.

CNI VERSION
    The highest version named by "cniVersion" or "cniVersions" that cnitool supports
    ({versions}); others are ignored. No version at all means 0.1.0. Every plugin gets
    it as "cniVersion", and the list's "name" as "name"; "capabilities" is not passed on.

RESULT CACHE
    <CNI_CACHE_DIR>/results/<network>-<container id>-<ifname>, directory mode 0700, file
    mode 0600, in libcni's format: {{"kind":"cniCacheV1", "containerId", "config" (the list's
    bytes, base64), "ifName", "networkName", "netns", "cniArgs", "capabilityArgs",
    "result"}}. Written after a successful add, read by check and del, removed after a
    successful del; gc lists it.

OUTPUT
    add prints the result on stdout; nothing else writes to stdout. Errors and notes go
    to stderr, a plugin failure as
        cnitool: plugin <type> <COMMAND> failed: <msg> (code <n>): <details>
    What plugins write on stderr is passed through.

EXIT STATUS
    0   success
    1   the operation failed: a plugin failed, could not be started, timed out, or
        printed something that is not a CNI result or error; check found no usable
        cached result; add could not write the cache
    2   usage or configuration error, found before any plugin ran: bad arguments or
        environment, network not found, invalid configuration, no supported CNI
        version, plugin not found in CNI_PATH, command not supported at the list's
        CNI version (check below 0.4.0)
"#,
        versions = version::supported_list()
    )
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Help,
    Version,
    Run(Invocation),
}

/// A command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub network: String,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub container_id: Option<String>,
}

fn utf8(arg: &OsStr, what: &str) -> Result<String, Error> {
    arg.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Usage(format!("{what} is not valid UTF-8")))
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: &[OsString]) -> Result<Action, Error> {
    let mut positional: Vec<String> = Vec::new();
    let mut ifname = None;
    let mut container_id = None;
    let mut iter = args.iter();
    let mut options_done = false;
    while let Some(arg) = iter.next() {
        let text = utf8(arg, "an argument")?;
        if options_done || !text.starts_with('-') || text == "-" {
            positional.push(text);
            continue;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (text.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, Error> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => match iter.next() {
                    Some(v) => utf8(v, name),
                    None => Err(Error::Usage(format!("{name} needs a value"))),
                },
            }
        };
        match flag.as_str() {
            "--" => options_done = true,
            "-h" | "--help" => return Ok(Action::Help),
            "-V" | "--version" => return Ok(Action::Version),
            "-i" | "--ifname" => ifname = Some(value("--ifname")?),
            "--container-id" => container_id = Some(value("--container-id")?),
            _ => return Err(Error::Usage(format!("unknown option {text:?}"))),
        }
    }
    let mut positional = positional.into_iter();
    let command = match positional.next().as_deref() {
        None => return Err(Error::Usage("missing command".into())),
        Some("help") => return Ok(Action::Help),
        Some("add") => Command::Add,
        Some("check") => Command::Check,
        Some("del") => Command::Del,
        Some("status") => Command::Status,
        Some("gc") => Command::Gc,
        Some(other) => {
            return Err(Error::Usage(format!(
                "unknown command {other:?} (add, check, del, status or gc)"
            )))
        }
    };
    let network = positional
        .next()
        .ok_or_else(|| Error::Usage(format!("{} needs a network name", command_word(command))))?;
    let netns = positional.next();
    if let Some(extra) = positional.next() {
        return Err(Error::Usage(format!("unexpected argument {extra:?}")));
    }
    match command {
        Command::Add | Command::Check if netns.is_none() => {
            return Err(Error::Usage(format!(
                "{} needs a network namespace path: cnitool {} <network> <netns>",
                command_word(command),
                command_word(command)
            )))
        }
        Command::Del if netns.is_none() && container_id.is_none() => {
            return Err(Error::Usage(
                "del without <netns> needs --container-id (the container id is otherwise derived from the netns path)"
                    .into(),
            ))
        }
        _ => {}
    }
    Ok(Action::Run(Invocation {
        command,
        network,
        netns,
        ifname,
        container_id,
    }))
}

fn command_word(c: Command) -> &'static str {
    match c {
        Command::Add => "add",
        Command::Check => "check",
        Command::Del => "del",
        Command::Status => "status",
        Command::Gc => "gc",
    }
}

/// Settings from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub netconfpath: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    pub ifname: String,
    pub cache_dir: PathBuf,
    pub timeout: Option<Duration>,
}

/// Parses CNI_ARGS as the reference cnitool does: `K=V` pairs separated by
/// ';', each with exactly one '=' and a non-empty key and value.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(';')
        .map(|pair| {
            let parts: Vec<&str> = pair.split('=').collect();
            match parts.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(format!(
                    "invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE"
                )),
            }
        })
        .collect()
}

/// Parses CAP_ARGS: empty or `null` means none; otherwise a JSON object.
pub fn parse_cap_args(s: &str) -> Result<Map<String, Value>, String> {
    if s.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err("CAP_ARGS must be a JSON object".into()),
        Err(e) => Err(format!("CAP_ARGS is not valid JSON: {e}")),
    }
}

/// Parses CNI_PLUGIN_TIMEOUT (seconds): empty or 0 means no timeout.
pub fn parse_timeout(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("CNI_PLUGIN_TIMEOUT {s:?} is not a number of seconds"))?;
    if secs == 0.0 {
        return Ok(None);
    }
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "CNI_PLUGIN_TIMEOUT {s:?} must be a positive number of seconds"
        ));
    }
    Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| format!("CNI_PLUGIN_TIMEOUT {s:?} is out of range"))
}

/// Reads the settings through `getenv` (std::env::var_os in the binary).
pub fn settings(getenv: &dyn Fn(&str) -> Option<OsString>) -> Result<Settings, Error> {
    let get = |key: &str| getenv(key).filter(|v| !v.is_empty());
    let get_utf8 = |key: &str| -> Result<String, Error> {
        match get(key) {
            None => Ok(String::new()),
            Some(v) => utf8(&v, key),
        }
    };
    let netconfpath = get("NETCONFPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NETCONFPATH));
    let plugin_dirs = get("CNI_PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let cni_args = parse_cni_args(&get_utf8("CNI_ARGS")?).map_err(Error::Usage)?;
    let capability_args = parse_cap_args(&get_utf8("CAP_ARGS")?).map_err(Error::Usage)?;
    let ifname = match get_utf8("CNI_IFNAME")? {
        s if s.is_empty() => DEFAULT_IFNAME.to_string(),
        s => s,
    };
    let cache_dir = get("CNI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
    let timeout = parse_timeout(&get_utf8("CNI_PLUGIN_TIMEOUT")?).map_err(Error::Usage)?;
    Ok(Settings {
        netconfpath,
        plugin_dirs,
        cni_args,
        capability_args,
        ifname,
        cache_dir,
        timeout,
    })
}

/// Go's filepath.Clean for an absolute path: no empty or "." elements, ".."
/// resolved lexically (never above "/"), no trailing slash.
fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The netns path made absolute against `cwd` and cleaned, as Go's
/// filepath.Abs does in the reference cnitool.
pub fn absolute_netns(netns: &str, cwd: &Path) -> Result<String, Error> {
    if netns.starts_with('/') {
        return Ok(clean_absolute(netns));
    }
    let cwd = cwd
        .to_str()
        .ok_or_else(|| Error::Usage("the current directory is not valid UTF-8".into()))?;
    Ok(clean_absolute(&format!("{cwd}/{netns}")))
}

/// "cnitool-" + the first 20 hex digits (10 bytes) of the SHA-512 of the
/// (absolute) netns path, as the reference cnitool derives it.
pub fn container_id_for_netns(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn note(err: &mut dyn Write, notes: &[String]) {
    for n in notes {
        let _ = writeln!(err, "cnitool: note: {n}");
    }
}

fn print_result(out: &mut dyn Write, result: &Value) -> Result<(), Error> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    serde::Serialize::serialize(result, &mut ser)
        .map_err(|e| Error::Cache(format!("cannot encode the result: {e}")))?;
    buf.push(b'\n');
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(|e| Error::Cache(format!("cannot write the result to stdout: {e}")))
}

fn execute(
    inv: &Invocation,
    settings: &Settings,
    cwd: &dyn Fn() -> std::io::Result<PathBuf>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    validate::network_name(&inv.network).map_err(Error::Usage)?;
    let list: NetworkConfigList = load_network_conf(&settings.netconfpath, &inv.network)?;
    note(err, &list.notes);
    let mut runtime = Runtime::new(settings.plugin_dirs.clone(), settings.cache_dir.clone());
    runtime.timeout = settings.timeout;

    let report: Report = match inv.command {
        Command::Status => runtime.status(&list)?,
        Command::Gc => {
            let valid = cached_valid_attachments(&settings.cache_dir, &list.name).map_err(|e| {
                Error::Cache(format!(
                    "cannot list the result cache in {}: {e}",
                    settings.cache_dir.display()
                ))
            })?;
            runtime.gc(&list, &valid)?
        }
        Command::Add | Command::Check | Command::Del => {
            let netns = match &inv.netns {
                Some(path) => {
                    let here = || {
                        cwd().map_err(|e| {
                            Error::Usage(format!("cannot read the current directory: {e}"))
                        })
                    };
                    let dir = if path.starts_with('/') {
                        PathBuf::from("/")
                    } else {
                        here()?
                    };
                    absolute_netns(path, &dir)?
                }
                None => String::new(),
            };
            let container_id = match &inv.container_id {
                Some(id) => id.clone(),
                None => container_id_for_netns(&netns),
            };
            let att = Attachment {
                container_id,
                netns,
                ifname: inv
                    .ifname
                    .clone()
                    .unwrap_or_else(|| settings.ifname.clone()),
                cni_args: settings.cni_args.clone(),
                capability_args: settings.capability_args.clone(),
            };
            match inv.command {
                Command::Add => runtime.add(&list, &att).inspect_err(|e| {
                    if matches!(e, Error::Plugin { .. }) {
                        let again = std::iter::once("cnitool del".to_string())
                            .chain(std::iter::once(inv.network.clone()))
                            .chain(inv.netns.clone())
                            .collect::<Vec<_>>()
                            .join(" ");
                        let _ = writeln!(
                            err,
                            "cnitool: note: plugins that ran before the failing one were not undone and no result was cached (as with libcni); `{again}` cleans up"
                        );
                    }
                })?,
                Command::Check => runtime.check(&list, &att)?,
                _ => runtime.del(&list, &att)?,
            }
        }
    };
    note(err, &report.notes);
    if let Some(result) = &report.result {
        print_result(out, result)?;
    }
    Ok(())
}

/// Runs cnitool with `args` (without the program name) and returns the exit
/// status. `getenv` reads environment variables; `out`/`err` are stdout and
/// stderr (plugins' own stderr goes to the process's stderr).
pub fn run(
    args: &[OsString],
    getenv: &dyn Fn(&str) -> Option<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let outcome = parse_args(args).and_then(|action| match action {
        Action::Help => {
            let _ = out.write_all(help_text().as_bytes());
            Ok(())
        }
        Action::Version => {
            let _ = writeln!(
                out,
                "cnitool {} (CNI spec versions: {})",
                env!("CARGO_PKG_VERSION"),
                version::supported_list()
            );
            Ok(())
        }
        Action::Run(inv) => {
            let s = settings(getenv)?;
            execute(&inv, &s, &std::env::current_dir, out, err)
        }
    });
    match outcome {
        Ok(()) => EXIT_OK,
        Err(e) => {
            match &e {
                Error::Many(errs) => {
                    for one in errs {
                        let _ = writeln!(err, "cnitool: {one}");
                    }
                }
                _ => {
                    let _ = writeln!(err, "cnitool: {e}");
                }
            }
            if matches!(e, Error::Usage(_)) {
                let _ = writeln!(err, "cnitool: run `cnitool --help` for usage");
            }
            let code = e.exit_code();
            if code == EXIT_OK {
                EXIT_FAILED
            } else {
                code
            }
        }
    }
}

/// The binary's entry point: real arguments, environment, stdout and stderr.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(
        &args,
        &|k| std::env::var_os(k),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_USAGE;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn container_id_matches_reference_cnitool() {
        // printf %s /var/run/netns/testing | sha512sum | cut -c1-20
        assert_eq!(
            container_id_for_netns("/var/run/netns/testing"),
            "cnitool-77383ca0a0715733ca6f"
        );
        assert_eq!(
            container_id_for_netns("/run/netns/a"),
            "cnitool-a145bc1ace582bff43bd"
        );
    }

    #[test]
    fn netns_made_absolute_like_go() {
        let cwd = Path::new("/home/u");
        assert_eq!(absolute_netns("/run/netns/x", cwd).unwrap(), "/run/netns/x");
        assert_eq!(
            absolute_netns("/run//netns/./x/", cwd).unwrap(),
            "/run/netns/x"
        );
        assert_eq!(absolute_netns("ns", cwd).unwrap(), "/home/u/ns");
        assert_eq!(absolute_netns("../ns", cwd).unwrap(), "/home/ns");
        assert_eq!(absolute_netns("/../../x", cwd).unwrap(), "/x");
        assert_eq!(absolute_netns("/", cwd).unwrap(), "/");
    }

    #[test]
    fn parses_commands_and_options() {
        assert_eq!(parse_args(&args(&["--help"])).unwrap(), Action::Help);
        assert_eq!(
            parse_args(&args(&["add", "n", "-h"])).unwrap(),
            Action::Help
        );
        assert_eq!(parse_args(&args(&["help"])).unwrap(), Action::Help);
        assert_eq!(parse_args(&args(&["-V"])).unwrap(), Action::Version);
        assert_eq!(
            parse_args(&args(&["-i", "net1", "add", "n", "/ns"])).unwrap(),
            Action::Run(Invocation {
                command: Command::Add,
                network: "n".into(),
                netns: Some("/ns".into()),
                ifname: Some("net1".into()),
                container_id: None,
            })
        );
        assert_eq!(
            parse_args(&args(&["del", "n", "--container-id=abc"])).unwrap(),
            Action::Run(Invocation {
                command: Command::Del,
                network: "n".into(),
                netns: None,
                ifname: None,
                container_id: Some("abc".into()),
            })
        );
        assert!(matches!(
            parse_args(&args(&["gc", "n"])).unwrap(),
            Action::Run(Invocation {
                command: Command::Gc,
                ..
            })
        ));
        assert!(matches!(
            parse_args(&args(&["status", "n", "/ns"])).unwrap(),
            Action::Run(Invocation {
                command: Command::Status,
                ..
            })
        ));
        assert_eq!(
            parse_args(&args(&["add", "n", "--", "-odd"])).unwrap(),
            Action::Run(Invocation {
                command: Command::Add,
                network: "n".into(),
                netns: Some("-odd".into()),
                ifname: None,
                container_id: None,
            })
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["frob", "n", "/ns"],
            &["add"],
            &["add", "n"],
            &["check", "n"],
            &["del", "n"],
            &["add", "n", "/ns", "extra"],
            &["add", "n", "/ns", "--bogus"],
            &["add", "n", "/ns", "-i"],
        ] {
            let e = parse_args(&args(bad)).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE, "{bad:?}");
        }
        use std::os::unix::ffi::OsStringExt;
        let bad_utf8 = vec![OsString::from("add"), OsString::from_vec(vec![0xff])];
        assert!(parse_args(&bad_utf8).is_err());
    }

    #[test]
    fn cni_args_like_reference() {
        assert_eq!(
            parse_cni_args("A=1;B=two").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "two".into())]
        );
        assert!(parse_cni_args("").unwrap().is_empty());
        for bad in ["A", "A=", "=1", "A=1;", "A=1=2", ";"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cap_args_and_timeout() {
        assert!(parse_cap_args("").unwrap().is_empty());
        assert!(parse_cap_args("null").unwrap().is_empty());
        assert_eq!(parse_cap_args(r#"{"a": [1]}"#).unwrap().len(), 1);
        assert!(parse_cap_args("[1]").is_err());
        assert!(parse_cap_args("{").is_err());
        assert_eq!(parse_timeout("").unwrap(), None);
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(
            parse_timeout("2.5").unwrap(),
            Some(Duration::from_millis(2500))
        );
        for bad in ["-1", "x", "inf", "NaN", "1e300"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let none = |_: &str| None;
        let s = settings(&none).unwrap();
        assert_eq!(s.netconfpath, PathBuf::from(DEFAULT_NETCONFPATH));
        assert_eq!(s.cache_dir, PathBuf::from(DEFAULT_CACHE_DIR));
        assert_eq!(s.ifname, "eth0");
        assert!(s.plugin_dirs.is_empty());
        assert_eq!(s.timeout, None);

        let env = |k: &str| -> Option<OsString> {
            match k {
                "NETCONFPATH" => Some("/n".into()),
                "CNI_PATH" => Some("/a::/b".into()),
                "CNI_IFNAME" => Some("net0".into()),
                "CNI_CACHE_DIR" => Some("/c".into()),
                "CNI_ARGS" => Some("K=V".into()),
                "CAP_ARGS" => Some(r#"{"x":1}"#.into()),
                "CNI_PLUGIN_TIMEOUT" => Some("3".into()),
                _ => None,
            }
        };
        let s = settings(&env).unwrap();
        assert_eq!(s.netconfpath, PathBuf::from("/n"));
        assert_eq!(
            s.plugin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(s.ifname, "net0");
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert_eq!(s.cni_args, vec![("K".into(), "V".into())]);
        assert_eq!(s.capability_args.len(), 1);
        assert_eq!(s.timeout, Some(Duration::from_secs(3)));

        let bad = |k: &str| -> Option<OsString> { (k == "CAP_ARGS").then(|| "[]".into()) };
        assert_eq!(settings(&bad).unwrap_err().exit_code(), EXIT_USAGE);
    }

    #[test]
    fn help_mentions_everything() {
        let h = help_text();
        for word in [
            "NETCONFPATH",
            "CNI_PATH",
            "CNI_ARGS",
            "CAP_ARGS",
            "CNI_IFNAME",
            "CNI_CACHE_DIR",
            "CNI_PLUGIN_TIMEOUT",
            "cniCacheV1",
            "cni.dev/valid-attachments",
            "cni.dev/attachments",
            "EXIT STATUS",
            "sha-512",
        ] {
            assert!(
                h.to_lowercase().contains(&word.to_lowercase()),
                "help lacks {word}"
            );
        }
    }
}
