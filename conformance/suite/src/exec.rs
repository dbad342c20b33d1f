//! Running a plugin (or cnitool) the way a runtime does: inside the sandbox's
//! host namespace, CNI_* variables in a clean environment, the config on
//! stdin, with a time limit so a hung plugin fails its check instead of the
//! suite.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cni_harness::Netns;
use serde_json::Value;

/// One plugin invocation.
#[derive(Debug, Clone)]
pub struct Call {
    /// What this is, for failure details (`bridge ADD`).
    pub what: String,
    pub binary: PathBuf,
    pub env: BTreeMap<String, String>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
}

impl Call {
    /// A call with CNI_COMMAND and CNI_PATH set.
    pub fn new(binary: &Path, command: &str, cni_path: &Path, timeout: Duration) -> Call {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut env = BTreeMap::new();
        env.insert("CNI_COMMAND".to_string(), command.to_string());
        env.insert(
            "CNI_PATH".to_string(),
            cni_path.to_string_lossy().into_owned(),
        );
        Call {
            what: format!("{name} {command}"),
            binary: binary.to_path_buf(),
            env,
            stdin: Vec::new(),
            timeout,
        }
    }

    /// CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME.
    pub fn attach(self, id: &str, netns: &Path, ifname: &str) -> Call {
        self.env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &netns.to_string_lossy())
            .env("CNI_IFNAME", ifname)
    }

    pub fn env(mut self, key: &str, value: &str) -> Call {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.remove(key);
        self
    }

    pub fn config(mut self, conf: &Value) -> Call {
        self.stdin = conf.to_string().into_bytes();
        self
    }

    pub fn stdin(mut self, raw: &str) -> Call {
        self.stdin = raw.as_bytes().to_vec();
        self
    }

    /// Runs inside `ns` (the sandbox's host namespace).
    pub fn run(&self, ns: &Netns) -> Out {
        let mut cmd = ns.command(&self.binary);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.env);
        let raw = run_command(cmd, &self.stdin, self.timeout);
        Out {
            what: self.what.clone(),
            code: raw.code,
            stdout: raw.stdout,
            stderr: raw.stderr,
            timed_out: raw.timed_out,
        }
    }
}

/// What a process printed and how it ended.
#[derive(Debug, Clone, Default)]
pub struct RawOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

/// Runs `cmd` with `stdin`, killing it after `timeout`.
pub fn run_command(mut cmd: Command, stdin: &[u8], timeout: Duration) -> RawOutput {
    use std::os::unix::process::CommandExt;
    // A process group of its own, so a hung plugin dies with its delegates
    // (which hold our stderr pipe).
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RawOutput {
                code: None,
                stderr: format!("cannot start {:?}: {e}", cmd.get_program()),
                ..Default::default()
            }
        }
    };
    let pid = child.id();
    let input = stdin.to_vec();
    let mut pipe_in = child.stdin.take();
    // Writing from a thread: a plugin that prints before reading must not
    // deadlock us. A plugin that exits early makes this EPIPE: ignored.
    let writer = std::thread::spawn(move || {
        if let Some(p) = pipe_in.as_mut() {
            let _ = p.write_all(&input);
        }
    });
    let mut pipe_out = child.stdout.take();
    let mut pipe_err = child.stderr.take();
    let reader_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = pipe_out.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let reader_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = pipe_err.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(timeout).is_err();
    if timed_out {
        // SAFETY: plain kill(2) of our own child's process group; the child
        // has not been reaped (the waiter has not returned), so the id is ours.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let status = waiter.join().ok().and_then(|s| s.ok());
    let _ = writer.join();
    let stdout = reader_out.join().unwrap_or_default();
    let stderr = reader_err.join().unwrap_or_default();
    RawOutput {
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
    }
}

/// Shortens a process's output for a failure detail.
pub fn excerpt(s: &str) -> String {
    const MAX: usize = 400;
    let t = s.trim();
    let one_line: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// The outcome of one invocation, with the judgements checks make of it.
#[derive(Debug, Clone)]
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// `bridge ADD: exit 1, stdout {...}, stderr ...` for failure details.
    pub fn describe(&self) -> String {
        let end = if self.timed_out {
            "killed after the time limit".to_string()
        } else {
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".to_string(),
            }
        };
        let mut s = format!("{}: {end}", self.what);
        if !self.stdout.trim().is_empty() {
            s.push_str(&format!(", stdout: {}", excerpt(&self.stdout)));
        }
        if !self.stderr.trim().is_empty() {
            s.push_str(&format!(", stderr: {}", excerpt(&self.stderr)));
        }
        s
    }

    /// stdout as one JSON value.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.stdout)
            .map_err(|e| format!("stdout is not one JSON value ({e}): {}", self.describe()))
    }

    /// Exit 0 (whatever was printed).
    pub fn succeeded(&self) -> Result<(), String> {
        if self.ok() {
            Ok(())
        } else {
            Err(format!("expected success: {}", self.describe()))
        }
    }

    /// Exit 0 and a JSON object on stdout (an ADD result).
    pub fn result(&self) -> Result<Value, String> {
        self.succeeded()?;
        let v = self.json()?;
        if !v.is_object() {
            return Err(format!("result is not a JSON object: {}", self.describe()));
        }
        Ok(v)
    }

    /// Exit 0 and nothing on stdout (CHECK, GC; DEL and STATUS by practice).
    pub fn silent_success(&self) -> Result<(), String> {
        self.succeeded()?;
        if !self.stdout.trim().is_empty() {
            return Err(format!("expected no output on stdout: {}", self.describe()));
        }
        Ok(())
    }

    /// A failure: non-zero exit and an error object on stdout with an integer
    /// `code` and a non-empty string `msg` (and a string `details` if any).
    pub fn error(&self) -> Result<Value, String> {
        if self.ok() {
            return Err(format!("expected an error: {}", self.describe()));
        }
        if self.timed_out || self.code.is_none() {
            return Err(format!("expected an error result: {}", self.describe()));
        }
        let v = self.json()?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("error output is not a JSON object: {}", self.describe()))?;
        if !obj.get("code").is_some_and(|c| c.is_u64()) {
            return Err(format!(
                "error object has no unsigned integer \"code\": {}",
                self.describe()
            ));
        }
        let msg = obj.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
        if msg.trim().is_empty() {
            return Err(format!(
                "error object has no non-empty string \"msg\": {}",
                self.describe()
            ));
        }
        if obj.get("details").is_some_and(|d| !d.is_string()) {
            return Err(format!(
                "error object's \"details\" is not a string: {}",
                self.describe()
            ));
        }
        Ok(v)
    }

    /// A failure with this error code.
    pub fn error_code(&self, code: u64) -> Result<Value, String> {
        let v = self.error()?;
        if v["code"].as_u64() != Some(code) {
            return Err(format!(
                "expected error code {code}, got {}: {}",
                v["code"],
                self.describe()
            ));
        }
        Ok(v)
    }

    /// A failure with one of these codes.
    pub fn error_code_in(&self, codes: &[u64]) -> Result<Value, String> {
        let v = self.error()?;
        let code = v["code"].as_u64().unwrap_or(0);
        if !codes.contains(&code) {
            return Err(format!(
                "expected error code {codes:?}, got {code}: {}",
                self.describe()
            ));
        }
        Ok(v)
    }
}
