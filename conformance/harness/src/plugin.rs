use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::netns::Netns;

/// One plugin invocation as a runtime makes it: CNI_* variables and a config on stdin.
/// Unset fields are left out of the environment entirely, so tests can check how a
/// plugin handles a missing variable.
#[derive(Debug, Clone, Default)]
pub struct PluginCall {
    pub binary: PathBuf,
    pub env: BTreeMap<String, String>,
    pub stdin: String,
}

impl PluginCall {
    /// ADD/DEL/CHECK call with the usual variables filled in.
    pub fn new(binary: impl AsRef<Path>, command: &str) -> PluginCall {
        let mut call = PluginCall {
            binary: binary.as_ref().to_path_buf(),
            ..Default::default()
        };
        call.env.insert("CNI_COMMAND".into(), command.into());
        if let Some(dir) = binary.as_ref().parent() {
            call.env
                .insert("CNI_PATH".into(), dir.to_string_lossy().into_owned());
        }
        call
    }

    pub fn container(mut self, id: &str, netns: &Path, ifname: &str) -> PluginCall {
        self.env.insert("CNI_CONTAINERID".into(), id.into());
        self.env
            .insert("CNI_NETNS".into(), netns.to_string_lossy().into_owned());
        self.env.insert("CNI_IFNAME".into(), ifname.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> PluginCall {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn unset(mut self, key: &str) -> PluginCall {
        self.env.remove(key);
        self
    }

    pub fn stdin(mut self, config: impl Into<String>) -> PluginCall {
        self.stdin = config.into();
        self
    }

    pub fn config(self, config: &serde_json::Value) -> PluginCall {
        self.stdin(config.to_string())
    }

    /// Runs the plugin inside `host` (the sandbox's host namespace).
    pub fn run_in(&self, host: &Netns) -> PluginOutput {
        self.run_with(host.command(&self.binary))
    }

    /// Runs the plugin in the caller's namespace: only for commands that touch
    /// no network state (VERSION, or input that must be rejected before any work).
    pub fn run_here(&self) -> PluginOutput {
        self.run_with(Command::new(&self.binary))
    }

    fn run_with(&self, mut cmd: Command) -> PluginOutput {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin may exit before reading stdin (bad env): ignore EPIPE.
            let _ = stdin.write_all(self.stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for plugin");
        PluginOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// What a plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl PluginOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as JSON; panics with the whole output when it isn't.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "plugin stdout is not JSON ({e}): exit {:?}\nstdout: {}\nstderr: {}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the parsed result.
    pub fn result(&self) -> serde_json::Value {
        assert!(
            self.success(),
            "plugin failed: exit {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        self.json()
    }

    /// Asserts a CNI error with `code` (JSON on stdout, non-zero exit, a message)
    /// and returns the error object.
    pub fn expect_error(&self, code: u64) -> serde_json::Value {
        assert!(
            !self.success(),
            "plugin succeeded but error {code} was expected\nstdout: {}",
            self.stdout
        );
        let err = self.json();
        assert_eq!(
            err["code"].as_u64(),
            Some(code),
            "wrong error code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            err["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "error without msg: {}",
            self.stdout
        );
        err
    }
}
