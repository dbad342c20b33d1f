//! Fixture for running the cnitool binary against fake plugins: shell scripts
//! that record their environment and stdin and print canned answers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha512};

/// The fake plugin. It records `env` and stdin as
/// `$FAKE_STATE/calls/<seq>-<name>-<CNI_COMMAND>.{env,stdin}` (FAKE_STATE
/// defaults to `<its dir>/../state`) and answers from
/// `$FAKE_STATE/resp/<name>.<CNI_COMMAND>.{out,exit,stderr,sleep}`. Without an
/// `.out` file, ADD prints a result without cniVersion naming the plugin.
const FAKE_PLUGIN: &str = r#"#!/bin/sh
name=@NAME@
st="${FAKE_STATE:-$(dirname "$0")/../state}"
n=$(cat "$st/seq" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$st/seq"
rec=$(printf '%s/calls/%04d-%s-%s' "$st" "$n" "$name" "$CNI_COMMAND")
env > "$rec.env"
cat > "$rec.stdin"
r="$st/resp/$name.$CNI_COMMAND"
if [ -f "$r.stderr" ]; then cat "$r.stderr" >&2; fi
if [ -f "$r.sleep" ]; then sleep "$(cat "$r.sleep")"; fi
if [ -f "$r.out" ]; then
    cat "$r.out"
elif [ "$CNI_COMMAND" = ADD ]; then
    printf '{"interfaces":[{"name":"%s"}]}' "$name"
fi
if [ -f "$r.exit" ]; then exit "$(cat "$r.exit")"; fi
exit 0
"#;

/// One recorded plugin call.
#[derive(Debug, Clone)]
pub struct Call {
    pub plugin: String,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub stdin: Value,
}

impl Call {
    pub fn env(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or("<unset>")
    }
}

/// What one cnitool run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "cnitool failed: {}", self.stderr);
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "cnitool panicked: {}",
            self.stderr
        );
    }
}

/// A temp dir with `bin/` (CNI_PATH), `net.d/` (NETCONFPATH), `cache/`
/// (CNI_CACHE_DIR) and the fake plugins' `state/`. Removed on drop.
pub struct Fixture {
    pub root: PathBuf,
    pub bin: PathBuf,
    pub netd: PathBuf,
    pub cache: PathBuf,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "cnitool-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&root);
        let f = Fixture {
            bin: root.join("bin"),
            netd: root.join("net.d"),
            cache: root.join("cache"),
            state: root.join("state"),
            root,
        };
        for d in [
            &f.bin,
            &f.netd,
            &f.state.join("calls"),
            &f.state.join("resp"),
        ] {
            fs::create_dir_all(d).unwrap();
        }
        f
    }

    /// Installs a fake plugin named `name` in bin/.
    pub fn plugin(&self, name: &str) -> &Fixture {
        let path = self.bin.join(name);
        fs::write(&path, FAKE_PLUGIN.replace("@NAME@", name)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn plugins(&self, names: &[&str]) -> &Fixture {
        for n in names {
            self.plugin(n);
        }
        self
    }

    /// `plugin` answers `command` with `stdout` and exit status `exit`.
    pub fn respond(&self, plugin: &str, command: &str, stdout: &str, exit: i32) -> &Fixture {
        let resp = self.state.join("resp");
        fs::write(resp.join(format!("{plugin}.{command}.out")), stdout).unwrap();
        fs::write(
            resp.join(format!("{plugin}.{command}.exit")),
            exit.to_string(),
        )
        .unwrap();
        self
    }

    pub fn respond_json(&self, plugin: &str, command: &str, v: &Value, exit: i32) -> &Fixture {
        self.respond(plugin, command, &v.to_string(), exit)
    }

    pub fn stderr_of(&self, plugin: &str, command: &str, text: &str) -> &Fixture {
        let p = self
            .state
            .join("resp")
            .join(format!("{plugin}.{command}.stderr"));
        fs::write(p, text).unwrap();
        self
    }

    pub fn sleep_in(&self, plugin: &str, command: &str, secs: u32) -> &Fixture {
        let p = self
            .state
            .join("resp")
            .join(format!("{plugin}.{command}.sleep"));
        fs::write(p, secs.to_string()).unwrap();
        self
    }

    /// Writes a file in net.d/.
    pub fn netd_file(&self, file: &str, text: &str) -> &Fixture {
        fs::write(self.netd.join(file), text).unwrap();
        self
    }

    pub fn conflist(&self, file: &str, v: &Value) -> &Fixture {
        self.netd_file(file, &serde_json::to_string_pretty(v).unwrap())
    }

    /// A netns path under the fixture (it need not exist: fake plugins don't care).
    pub fn netns(&self, name: &str) -> String {
        self.root
            .join("netns")
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    /// Runs cnitool with a clean environment: PATH, NETCONFPATH, CNI_PATH,
    /// CNI_CACHE_DIR, FAKE_STATE, then `env`; the working directory is the
    /// fixture root.
    pub fn cnitool_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnitool"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NETCONFPATH", &self.netd)
            .env("CNI_PATH", &self.bin)
            .env("CNI_CACHE_DIR", &self.cache)
            .env("FAKE_STATE", &self.state)
            .current_dir(&self.root);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run cnitool");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        run.assert_no_panic();
        run
    }

    pub fn cnitool(&self, args: &[&str]) -> Run {
        self.cnitool_env(args, &[])
    }

    /// The recorded plugin calls, in order.
    pub fn calls(&self) -> Vec<Call> {
        let dir = self.state.join("calls");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".env"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let stem = n.trim_end_matches(".env");
                let mut parts = stem.splitn(3, '-');
                let _seq = parts.next();
                let plugin = parts.next().unwrap().to_string();
                let command = parts.next().unwrap().to_string();
                let env = fs::read_to_string(dir.join(&n))
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let stdin_text = fs::read_to_string(dir.join(format!("{stem}.stdin"))).unwrap();
                let stdin = serde_json::from_str(&stdin_text)
                    .unwrap_or_else(|e| panic!("plugin stdin is not JSON ({e}): {stdin_text}"));
                Call {
                    plugin,
                    command,
                    env,
                    stdin,
                }
            })
            .collect()
    }

    /// "plugin COMMAND" for every call, in order.
    pub fn call_list(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{} {}", c.plugin, c.command))
            .collect()
    }

    pub fn clear_calls(&self) {
        let dir = self.state.join("calls");
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
    }

    pub fn cache_file(&self, net: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache
            .join("results")
            .join(format!("{net}-{container_id}-{ifname}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The reference cnitool's container id, computed here independently.
pub fn container_id(netns: &str) -> String {
    let d = Sha512::digest(netns.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{}", &hex[..20])
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}
