//! The workspace's admin CLIs (ipamctl, overlayctl) run as people run them:
//! the binary against given etcd endpoints, and what it printed.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins;

/// What an admin CLI printed, how it exited and how long it took.
#[derive(Debug)]
pub struct CtlOutput {
    /// The binary's name, which starts its messages.
    pub program: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From start to exit.
    pub took: Duration,
}

impl CtlOutput {
    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{} failed: {self:?}", self.program);
        &self.stdout
    }

    /// Asserts exit 0 and returns stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {self:?}", self.program))
    }

    /// Asserts exit 1 with a message on stderr and nothing on stdout;
    /// returns stderr.
    pub fn failed(&self) -> &str {
        assert_eq!(self.code, Some(1), "exit 1 expected: {self:?}");
        assert!(
            self.stderr.starts_with(&format!("{}: ", self.program)),
            "{self:?}"
        );
        assert!(self.stdout.is_empty(), "{self:?}");
        &self.stderr
    }
}

/// Runs the workspace binary `program` with `--etcd-endpoints` (the
/// endpoints joined with commas), then `args`; `stdin` on its standard
/// input (empty without).
pub fn run_ctl(
    program: &str,
    endpoints: &[String],
    args: &[&str],
    stdin: Option<&str>,
) -> CtlOutput {
    let start = Instant::now();
    let mut child = Command::new(bins::bin(program))
        .arg("--etcd-endpoints")
        .arg(endpoints.join(","))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        // The CLI may exit before reading (bad arguments): ignore EPIPE.
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
    CtlOutput {
        program: program.to_string(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// Two etcd URLs where nothing answers: a port nothing listens on, and a
/// listener that accepts connections and never says a word (it and its
/// connections stay open as long as the test process).
pub fn unanswering_endpoints() -> [String; 2] {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let closed_url = format!("http://{}", closed.local_addr().expect("local address"));
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let silent_url = format!("http://{}", silent.local_addr().expect("local address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    [closed_url, silent_url]
}
