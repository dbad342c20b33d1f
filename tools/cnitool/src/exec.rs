//! Finding plugin binaries and running them: environment, stdin, output,
//! optional timeout.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{CniError, Command, PluginFailure};

/// How many times a start failing with ETXTBSY ("text file busy": the binary is
/// being written right now) is retried, one second apart, as libcni does.
const TEXT_BUSY_RETRIES: u32 = 5;

/// After a plugin ended (or was killed), how long to wait for its output pipes
/// to close when a timeout is configured.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// The first regular, executable file named `plugin_type` in `dirs`, in order.
/// Empty directory entries are skipped (libcni would look in the current
/// directory for them).
pub fn find_in_path(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    crate::validate::plugin_type(plugin_type)?;
    if dirs.is_empty() {
        return Err(format!(
            "cannot find plugin {plugin_type:?}: CNI_PATH is empty"
        ));
    }
    for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
        let candidate = dir.join(plugin_type);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "cannot find plugin {plugin_type:?} (an executable regular file) in CNI_PATH {}",
        searched.join(":")
    ))
}

/// The CNI_* variables of one invocation. The plugin inherits cnitool's
/// environment with these six set (empty ones included), as libcni does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `K=V;K=V`
    pub cni_args: String,
    /// The plugin directories, ':'-separated.
    pub cni_path: String,
}

impl PluginEnv {
    pub fn vars(&self) -> [(&'static str, &str); 6] {
        [
            ("CNI_COMMAND", self.command.as_str()),
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_ARGS", &self.cni_args),
            ("CNI_PATH", &self.cni_path),
        ]
    }
}

/// What a plugin process did.
#[derive(Debug)]
pub struct RawOutput {
    /// `None` when it was killed because it ran past the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn spawn(cmd: &mut std::process::Command) -> io::Result<Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < TEXT_BUSY_RETRIES => {
                attempt += 1;
                thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: killpg only sends a signal. The child leads its own group
        // (process_group(0)), so the group id is its pid. Before the child is
        // reaped that pid cannot be reused; after, a pid is not reused while
        // a process group with that id still has members, and we only get
        // here then because members of the plugin's group still hold its
        // output pipes open.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// Runs a plugin binary: `env` on top of the inherited environment, `stdin`
/// written to its standard input, stdout and stderr collected.
///
/// With a timeout, the plugin runs in its own process group and the whole
/// group is killed with SIGKILL when the timeout passes (so a hung IPAM child
/// goes too). Without one, it waits as long as the plugin runs, as libcni does.
/// Errors are failures to start the process.
pub fn run(
    path: &Path,
    env: &PluginEnv,
    stdin: &[u8],
    timeout: Option<Duration>,
) -> Result<RawOutput, String> {
    let mut cmd = std::process::Command::new(path);
    cmd.envs(env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if timeout.is_some() {
        cmd.process_group(0);
    }
    let mut child = spawn(&mut cmd).map_err(|e| e.to_string())?;
    let start = Instant::now();

    if let Some(mut pipe) = child.stdin.take() {
        let data = stdin.to_vec();
        // A plugin may exit without reading its stdin: EPIPE is not an error.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, true, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, false, tx.clone());
    }
    drop(tx);

    let status = match timeout {
        None => Some(child.wait().map_err(|e| e.to_string())?),
        Some(limit) => wait_until(&mut child, start + limit)?,
    };

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut store = |(is_stdout, buf): (bool, Vec<u8>)| {
        if is_stdout {
            stdout = buf;
        } else {
            stderr = buf;
        }
    };
    match timeout {
        None => {
            for msg in rx.iter() {
                store(msg);
            }
        }
        Some(limit) => {
            let mut deadline = (start + limit).max(Instant::now() + PIPE_GRACE);
            let mut killed = status.is_none();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(msg) => store(msg),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) if !killed => {
                        // The plugin exited but something it started still
                        // holds its output open: end the group, then give
                        // the pipes a moment.
                        kill_group(&mut child);
                        killed = true;
                        deadline = Instant::now() + PIPE_GRACE;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                }
            }
        }
    }
    Ok(RawOutput {
        status,
        stdout,
        stderr,
    })
}

fn spawn_reader<R: Read + Send + 'static>(
    mut pipe: R,
    is_stdout: bool,
    tx: mpsc::Sender<(bool, Vec<u8>)>,
) {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send((is_stdout, buf));
    });
}

/// Polls the child until it exits or `deadline` passes; then kills its group.
/// `None` means it was killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, String> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                let _ = child.wait();
                return Err(e.to_string());
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// At most 500 characters of a plugin's output, for messages.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Reads a CNI error object `{"code", "msg", "details"}`. It must be a JSON
/// object with an unsigned integer `code` or a string `msg` (or both).
pub fn parse_cni_error(stdout: &[u8]) -> Option<CniError> {
    let value: Value = serde_json::from_slice(stdout).ok()?;
    let obj = value.as_object()?;
    let code = match obj.get("code") {
        None => None,
        Some(v) => Some(v.as_u64()?),
    };
    let msg = match obj.get("msg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return None,
    };
    if code.is_none() && msg.is_none() {
        return None;
    }
    let details = match obj.get("details") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return None,
    };
    Some(CniError {
        code: code.unwrap_or(0),
        msg: msg.unwrap_or_default(),
        details,
    })
}

/// Why the invocation failed, or `None` when the plugin exited 0.
pub fn failure(out: &RawOutput, timeout: Option<Duration>) -> Option<PluginFailure> {
    let status = match out.status {
        None => return Some(PluginFailure::Timeout(timeout.unwrap_or_default())),
        Some(status) if status.success() => return None,
        Some(status) => status,
    };
    let status_text = describe_status(status);
    if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
        return Some(PluginFailure::NoMessage {
            status: status_text,
            stderr: excerpt(&out.stderr),
        });
    }
    Some(match parse_cni_error(&out.stdout) {
        Some(e) => PluginFailure::Cni(e),
        None => PluginFailure::BadErrorOutput {
            status: status_text,
            stdout: excerpt(&out.stdout),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn write_script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn env(command: Command) -> PluginEnv {
        PluginEnv {
            command,
            container_id: "c".into(),
            netns: "/ns".into(),
            ifname: "eth0".into(),
            cni_args: "A=1".into(),
            cni_path: "/x".into(),
        }
    }

    #[test]
    fn find_takes_first_executable_regular_file() {
        let tmp = TempDir::new();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let c = tmp.path().join("c");
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
        }
        write_script(&a, "p", "", 0o644); // not executable: skipped
        std::fs::create_dir(b.join("p")).unwrap(); // a directory: skipped
        let want = write_script(&c, "p", "", 0o755);
        write_script(&c, "q", "", 0o755);
        let dirs = vec![PathBuf::new(), a.clone(), b.clone(), c.clone()];
        assert_eq!(find_in_path("p", &dirs).unwrap(), want);
        assert!(find_in_path("missing", &dirs).is_err());
        assert!(find_in_path("../c/q", &dirs).is_err());
        assert!(find_in_path("p", &[]).is_err());
    }

    #[test]
    fn run_passes_env_and_stdin_and_collects_output() {
        let tmp = TempDir::new();
        let p = write_script(
            tmp.path(),
            "p",
            "read line; echo \"$CNI_COMMAND|$CNI_CONTAINERID|$CNI_NETNS|$CNI_IFNAME|$CNI_ARGS|$CNI_PATH|$line\"; echo oops >&2",
            0o755,
        );
        let out = run(&p, &env(Command::Add), b"hello\n", None).unwrap();
        assert!(out.status.unwrap().success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ADD|c|/ns|eth0|A=1|/x|hello\n"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
        assert_eq!(failure(&out, None), None);
    }

    #[test]
    fn plugin_not_reading_stdin_is_fine() {
        let tmp = TempDir::new();
        let p = write_script(tmp.path(), "p", "exit 0", 0o755);
        let big = vec![b'x'; 1 << 20];
        let out = run(&p, &env(Command::Del), &big, None).unwrap();
        assert!(out.status.unwrap().success());
    }

    #[test]
    fn failures_are_classified() {
        let tmp = TempDir::new();
        let cni = write_script(
            tmp.path(),
            "cni",
            r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}'; exit 1"#,
            0o755,
        );
        let out = run(&cni, &env(Command::Add), b"{}", None).unwrap();
        assert_eq!(
            failure(&out, None),
            Some(PluginFailure::Cni(CniError {
                code: 7,
                msg: "bad".into(),
                details: "why".into()
            }))
        );

        let garbage = write_script(tmp.path(), "garbage", "echo 'not json'; exit 3", 0o755);
        let out = run(&garbage, &env(Command::Add), b"{}", None).unwrap();
        match failure(&out, None) {
            Some(PluginFailure::BadErrorOutput { status, stdout }) => {
                assert!(status.contains('3'));
                assert_eq!(stdout, "not json");
            }
            other => panic!("{other:?}"),
        }

        let silent = write_script(tmp.path(), "silent", "echo 'on stderr' >&2; exit 2", 0o755);
        let out = run(&silent, &env(Command::Add), b"{}", None).unwrap();
        assert_eq!(
            failure(&out, None),
            Some(PluginFailure::NoMessage {
                status: "exited with status 2".into(),
                stderr: "on stderr".into()
            })
        );

        let sig = write_script(tmp.path(), "sig", "kill -9 $$", 0o755);
        let out = run(&sig, &env(Command::Add), b"{}", None).unwrap();
        match failure(&out, None) {
            Some(PluginFailure::NoMessage { status, .. }) => assert!(status.contains("signal 9")),
            other => panic!("{other:?}"),
        }

        let noexec = write_script(tmp.path(), "noexec", "", 0o644);
        assert!(run(&noexec, &env(Command::Add), b"{}", None).is_err());
    }

    #[test]
    fn timeout_kills_the_plugin_and_its_children() {
        let tmp = TempDir::new();
        // The child `sleep` keeps stdout open: only killing the group ends it.
        let p = write_script(tmp.path(), "hang", "sleep 30 & sleep 30", 0o755);
        let start = Instant::now();
        let out = run(
            &p,
            &env(Command::Add),
            b"{}",
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert!(out.status.is_none());
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        assert!(matches!(
            failure(&out, Some(Duration::from_millis(300))),
            Some(PluginFailure::Timeout(_))
        ));

        let quick = write_script(tmp.path(), "quick", "echo ok", 0o755);
        let out = run(
            &quick,
            &env(Command::Add),
            b"{}",
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        assert!(out.status.unwrap().success());
        assert_eq!(out.stdout, b"ok\n");
    }

    #[test]
    fn cni_error_parsing() {
        assert_eq!(
            parse_cni_error(br#"{"code": 11, "msg": "later"}"#),
            Some(CniError {
                code: 11,
                msg: "later".into(),
                details: String::new()
            })
        );
        assert_eq!(parse_cni_error(br#"{"code": -1, "msg": "x"}"#), None);
        assert_eq!(parse_cni_error(br#"{"code": "7", "msg": "x"}"#), None);
        assert_eq!(parse_cni_error(br#"{"other": 1}"#), None);
        assert_eq!(parse_cni_error(b"[]"), None);
        assert_eq!(parse_cni_error(b"\xff"), None);
    }

    #[test]
    fn excerpt_truncates() {
        let long = "é".repeat(600);
        let e = excerpt(long.as_bytes());
        assert!(e.ends_with("..."));
        assert_eq!(e.chars().count(), 503);
        assert_eq!(excerpt(b"  hi \n"), "hi");
    }
}
