//! Running another plugin (an IPAM plugin) the way a runtime would: found along
//! CNI_PATH, same environment but CNI_COMMAND, the same config on stdin.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::panic::RefUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::error::{Error, ErrorCode};
use crate::result::CniResult;
use crate::skel::{dispatch, Command, Env, Outcome, Plugin, Request};

/// The first regular, executable file named `plugin_type` in `dirs`.
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    if plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type == "."
        || plugin_type == ".."
    {
        return Err(Error::invalid_config(format!(
            "invalid plugin type {plugin_type:?}"
        )));
    }
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "failed to find plugin {plugin_type:?} in CNI_PATH {:?}",
                dirs
            ))
        })
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `plugin_type` for `command` with the request's own config bytes.
/// Returns the parsed result for ADD, `None` for the other commands. A CNI
/// error printed by the delegate keeps its code; its message names the plugin.
pub fn delegate(
    req: &Request,
    plugin_type: &str,
    command: Command,
) -> Result<Option<CniResult>, Error> {
    delegate_with(req, plugin_type, command, &[])
}

/// A plugin of this suite a delegating plugin links in, by its binary name:
/// `("host-local", &host_local::HostLocal)`.
pub type InProcess<'a> = (&'a str, &'a (dyn Plugin + RefUnwindSafe));

/// Environment variable that, set to `1` (or `true`), makes
/// [`delegate_with`] always exec the delegate.
pub const EXEC_ENV: &str = "CNI_RS_EXEC_IPAM";

/// [`delegate`], but a delegate in `in_process` runs inside this process
/// when the binary that would be exec'd is provably that same plugin: the
/// first executable `plugin_type` along CNI_PATH (as [`find_plugin`] finds
/// it, symlinks followed) carries this suite's build marker for the name
/// `plugin_type` at this suite's version (see [`crate::marker`]). Anything
/// else (another implementation first on CNI_PATH, another version, a
/// wrapper script, an unreadable file) is exec'd as by [`delegate`], and so
/// is everything when [`EXEC_ENV`] (`CNI_RS_EXEC_IPAM=1`) is set.
///
/// The in-process call is the exec without the process: the delegate's own
/// dispatcher gets the request's environment (CNI_COMMAND replaced) and its
/// exact config bytes, and its printed outcome is read back by the same code
/// that reads an exec'd delegate's stdout. So the result is parsed from the
/// JSON at the config's version, an error keeps its code and gets the
/// `"<plugin_type>: "` prefix, and a panic in the delegate is caught (as
/// error 999) and returned like any error, so the caller's rollback runs.
pub fn delegate_with(
    req: &Request,
    plugin_type: &str,
    command: Command,
    in_process: &[InProcess],
) -> Result<Option<CniResult>, Error> {
    let binary = find_plugin(plugin_type, &req.cni_path)?;
    if let Some((_, plugin)) = in_process.iter().find(|(name, _)| *name == plugin_type) {
        if !exec_forced() && crate::marker::binary_is(&binary, plugin_type) {
            return run_in_process(req, plugin_type, command, *plugin);
        }
    }
    run_exec(req, plugin_type, command, &binary)
}

/// Whether [`EXEC_ENV`] asks for the exec path.
fn exec_forced() -> bool {
    std::env::var(EXEC_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn run_exec(
    req: &Request,
    plugin_type: &str,
    command: Command,
    binary: &Path,
) -> Result<Option<CniResult>, Error> {
    let mut cmd = Process::new(binary);
    // The environment is inherited (CNI_* included) with CNI_COMMAND replaced.
    cmd.env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {}: {e}", binary.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A delegate may exit without reading stdin; its exit status tells.
        let _ = stdin.write_all(&req.stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for {}: {e}", binary.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    interpret(
        req,
        plugin_type,
        command,
        out.status.success(),
        &out.status.to_string(),
        &stdout,
    )
}

/// Runs `plugin` through its dispatcher as the exec'd binary would run: the
/// environment it would inherit, with the request's CNI_* values and
/// CNI_COMMAND set, and the request's exact stdin.
fn run_in_process(
    req: &Request,
    plugin_type: &str,
    command: Command,
    plugin: &(dyn Plugin + RefUnwindSafe),
) -> Result<Option<CniResult>, Error> {
    let env = delegate_env(req, command);
    // `dispatch` catches a panic in the plugin (error 999). The outer guard
    // covers the dispatcher itself: nothing may unwind into the caller's
    // rollback.
    let outcome =
        std::panic::catch_unwind(|| dispatch(plugin, &env, &req.stdin)).unwrap_or_else(|_| {
            Outcome {
                stdout: Error::new(ErrorCode::INTERNAL, "internal error (plugin panicked)")
                    .to_json(req.version().as_str())
                    .to_string(),
                exit_code: 1,
            }
        });
    interpret(
        req,
        plugin_type,
        command,
        outcome.exit_code == 0,
        &format!("exit status: {}", outcome.exit_code),
        &outcome.stdout,
    )
}

/// What an exec'd delegate would find in its environment: ours, with
/// CNI_COMMAND replaced and the request's own CNI_* values (the same ones in
/// a plugin run by a runtime; a request built in a test is taken as given).
fn delegate_env(req: &Request, command: Command) -> Env {
    let mut env = Env::from_process();
    env.set("CNI_COMMAND", command.as_str());
    if let Some(id) = &req.container_id {
        env.set("CNI_CONTAINERID", id.as_str());
    }
    if let Some(ifname) = &req.ifname {
        env.set("CNI_IFNAME", ifname.as_str());
    }
    if let Some(netns) = &req.netns {
        env.set("CNI_NETNS", &netns.to_string_lossy());
    }
    env.set("CNI_ARGS", &req.args.to_env_string());
    let path: Vec<_> = req.cni_path.iter().map(|p| p.to_string_lossy()).collect();
    env.set("CNI_PATH", &path.join(":"));
    env
}

/// Reads a delegate's outcome (exit status and stdout), exec'd or not.
fn interpret(
    req: &Request,
    plugin_type: &str,
    command: Command,
    success: bool,
    status: &str,
    stdout: &str,
) -> Result<Option<CniResult>, Error> {
    if !success {
        let parsed = serde_json::from_str::<serde_json::Value>(stdout)
            .ok()
            .and_then(|v| Error::from_json(&v));
        return Err(match parsed {
            Some(mut e) => {
                e.msg = format!("{plugin_type}: {}", e.msg);
                e
            }
            None => Error::plugin(format!(
                "{plugin_type} {} failed ({status}) without a CNI error",
                command.as_str(),
            ))
            .with_details(stdout.trim().to_string()),
        });
    }
    if command != Command::Add {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| Error::decoding(format!("{plugin_type} ADD printed no valid result: {e}")))?;
    CniResult::from_json(&value, req.version()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::CniArgs;
    use crate::config::NetConf;
    use crate::version::Version;
    use std::os::unix::fs::PermissionsExt;

    fn script_dir(tag: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cni-delegate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("fake-ipam");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn request(dir: &Path) -> Request {
        let conf = serde_json::json!({"cniVersion": "0.4.0", "name": "n", "type": "bridge",
            "ipam": {"type": "fake-ipam"}});
        Request {
            command: Command::Add,
            container_id: Some("c1".parse().unwrap()),
            // Any existing path that is not our own netns passes the
            // delegate dispatcher's check.
            netns: Some(dir.to_path_buf()),
            ifname: Some("eth0".parse().unwrap()),
            args: CniArgs::default(),
            cni_path: vec![PathBuf::from("/nonexistent"), dir.to_path_buf()],
            stdin: conf.to_string().into_bytes(),
            config: NetConf::parse(conf, Version::V0_4_0).unwrap(),
        }
    }

    #[test]
    fn add_returns_the_parsed_result_and_sees_the_config_and_command() {
        let dir = script_dir(
            "ok",
            r#"read -r conf; case "$conf" in *fake-ipam*) ;; *) exit 9;; esac
printf '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}'
[ "$CNI_COMMAND" = ADD ]"#,
        );
        let r = delegate(&request(&dir), "fake-ipam", Command::Add)
            .unwrap()
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        let none = delegate(&request(&dir), "fake-ipam", Command::Del);
        assert!(none.is_err(), "the script fails unless CNI_COMMAND=ADD");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn delegate_errors_keep_their_code() {
        let dir = script_dir(
            "err",
            r#"printf '{"cniVersion":"0.4.0","code":11,"msg":"etcd unreachable"}'; exit 1"#,
        );
        let e = delegate(&request(&dir), "fake-ipam", Command::Add).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::TRY_AGAIN_LATER);
        assert_eq!(e.msg, "fake-ipam: etcd unreachable");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn garbage_and_missing_plugins_are_clear_errors() {
        let dir = script_dir("garbage", "echo oops; exit 3");
        let e = delegate(&request(&dir), "fake-ipam", Command::Add).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::PLUGIN);
        assert_eq!(e.details, "oops");
        let e = delegate(&request(&dir), "no-such-ipam", Command::Add).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::INVALID_CONFIG);
        let e = delegate(&request(&dir), "../fake-ipam", Command::Add).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::INVALID_CONFIG);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn success_with_a_non_json_add_result_is_a_decoding_error() {
        let dir = script_dir("badjson", "echo not-json");
        let e = delegate(&request(&dir), "fake-ipam", Command::Add).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::DECODING_FAILURE);
        assert!(delegate(&request(&dir), "fake-ipam", Command::Del)
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// What the fake saw: command, container id, ifname, netns, CNI_ARGS, stdin.
    type Seen = (Command, String, String, Option<PathBuf>, String, Vec<u8>);

    /// An in-process plugin that records what it was asked and answers
    /// like the scripts above.
    #[derive(Default)]
    struct Fake {
        seen: std::sync::Mutex<Vec<Seen>>,
        fail: Option<u32>,
        panic: bool,
    }

    impl Plugin for Fake {
        fn add(&self, req: &Request) -> Result<CniResult, Error> {
            self.record(req)?;
            let v = serde_json::json!({"cniVersion": "1.0.0",
                "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                        {"address": "fd00::2/64"}],
                "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.0.0.1"]}});
            CniResult::from_json(&v, Version::V1_0_0)
        }
        fn del(&self, req: &Request) -> Result<(), Error> {
            self.record(req)
        }
        fn check(&self, req: &Request) -> Result<(), Error> {
            self.record(req)
        }
        fn known_args(&self) -> Option<&'static [&'static str]> {
            Some(&["IP"])
        }
    }

    impl Fake {
        fn record(&self, req: &Request) -> Result<(), Error> {
            if self.panic {
                panic!("fake delegate panicked");
            }
            self.seen.lock().unwrap().push((
                req.command,
                req.container_id.as_ref().unwrap().to_string(),
                req.ifname.as_ref().unwrap().to_string(),
                req.netns.clone(),
                req.args.to_env_string(),
                req.stdin.clone(),
            ));
            match self.fail {
                Some(code) => {
                    Err(Error::new(ErrorCode(code), "no addresses left").with_details("d"))
                }
                None => Ok(()),
            }
        }
    }

    fn request_with_args(dir: &Path, args: &str) -> Request {
        let mut r = request(dir);
        r.args = CniArgs::parse(args).unwrap();
        r
    }

    #[test]
    fn in_process_sees_the_request_with_the_command_replaced() {
        let dir = script_dir("inproc-req", "exit 0");
        let fake = Fake::default();
        let req = request_with_args(&dir, "IP=10.0.0.9;K8S_POD_NAME=p");
        let r = run_in_process(&req, "fake-ipam", Command::Add, &fake)
            .unwrap()
            .unwrap();
        // Converted to the config's version (0.4.0) as the exec path does.
        let via_json = CniResult::from_json(
            &serde_json::from_str(&r.to_json(Version::V0_4_0).to_string()).unwrap(),
            Version::V0_4_0,
        )
        .unwrap();
        assert_eq!(
            r.to_json(Version::V0_4_0),
            via_json.to_json(Version::V0_4_0)
        );
        // What the fake returned, as a 0.4.0 result written out by hand: a
        // conversion that loses or mangles a field fails here even when it
        // round-trips consistently.
        assert_eq!(
            r.to_json(Version::V0_4_0),
            serde_json::json!({
                "cniVersion": "0.4.0",
                "ips": [
                    {"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                    {"version": "6", "address": "fd00::2/64"}
                ],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {"nameservers": ["10.0.0.1"]}
            })
        );
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        assert_eq!(r.ips[1].address.to_string(), "fd00::2/64");
        assert!(run_in_process(&req, "fake-ipam", Command::Check, &fake)
            .unwrap()
            .is_none());
        let seen = fake.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, Command::Add);
        assert_eq!(seen[1].0, Command::Check);
        for s in seen.iter() {
            assert_eq!((s.1.as_str(), s.2.as_str()), ("c1", "eth0"));
            assert_eq!(s.3.as_deref(), Some(dir.as_path()));
            assert_eq!(s.4, "IP=10.0.0.9;K8S_POD_NAME=p");
            assert_eq!(s.5, req.stdin);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn in_process_runs_the_delegates_own_checks() {
        // An unknown CNI_ARGS key fails the delegate's dispatcher (code 4)
        // as it would fail the exec'd binary, before the plugin runs.
        let dir = script_dir("inproc-args", "exit 0");
        let fake = Fake::default();
        let e = run_in_process(
            &request_with_args(&dir, "FOO=1"),
            "fake-ipam",
            Command::Add,
            &fake,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_ENV);
        assert!(
            e.msg.starts_with("fake-ipam: CNI_ARGS: unknown key"),
            "{}",
            e.msg
        );
        assert!(fake.seen.lock().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn in_process_errors_match_the_exec_path() {
        let dir = script_dir(
            "inproc-err",
            r#"printf '{"cniVersion":"0.4.0","code":11,"msg":"no addresses left","details":"d"}'; exit 1"#,
        );
        let fake = Fake {
            fail: Some(11),
            ..Default::default()
        };
        let inproc = run_in_process(&request(&dir), "fake-ipam", Command::Del, &fake).unwrap_err();
        let exec = delegate(&request(&dir), "fake-ipam", Command::Del).unwrap_err();
        assert_eq!(inproc, exec);
        assert_eq!(inproc.msg, "fake-ipam: no addresses left");
        assert_eq!(inproc.code, ErrorCode(11));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_in_process_panic_is_an_error_999() {
        let dir = script_dir("inproc-panic", "exit 0");
        let fake = Fake {
            panic: true,
            ..Default::default()
        };
        for cmd in [Command::Add, Command::Del] {
            let e = run_in_process(&request(&dir), "fake-ipam", cmd, &fake).unwrap_err();
            assert_eq!(e.code, ErrorCode::INTERNAL);
            assert_eq!(e.msg, "fake-ipam: internal error (plugin panicked)");
            assert_eq!(e.details, "fake delegate panicked");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_a_binary_with_our_marker_runs_in_process() {
        let fake = Fake::default();
        let in_process: &[InProcess] = &[("fake-ipam", &fake)];
        // A script of that name: exec'd (it fails unless CNI_COMMAND=DEL).
        let dir = script_dir("inproc-choice", r#"[ "$CNI_COMMAND" = DEL ]"#);
        delegate_with(&request(&dir), "fake-ipam", Command::Del, in_process).unwrap();
        assert!(delegate_with(&request(&dir), "fake-ipam", Command::Check, in_process).is_err());
        assert!(fake.seen.lock().unwrap().is_empty());
        // An ELF carrying our marker for that name (not runnable: an exec
        // would fail) runs in-process...
        let elf_dir = dir.join("elf");
        std::fs::create_dir_all(&elf_dir).unwrap();
        let elf = crate::marker::tests::elf(
            &crate::marker::expected("fake-ipam"),
            crate::marker::SECTION,
            1,
        );
        let p = elf_dir.join("fake-ipam");
        std::fs::write(&p, elf).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut req = request(&dir);
        req.cni_path = vec![elf_dir.clone(), dir.clone()];
        delegate_with(&req, "fake-ipam", Command::Check, in_process).unwrap();
        assert_eq!(fake.seen.lock().unwrap().len(), 1);
        // ...but only for the plugin it names and when it comes first.
        let e = delegate_with(&req, "fake-ipam", Command::Check, &[]).unwrap_err();
        assert_eq!(
            e.code,
            crate::ErrorCode::IO_FAILURE,
            "exec of the fake ELF: {e:?}"
        );
        req.cni_path = vec![dir.clone(), elf_dir.clone()];
        assert!(delegate_with(&req, "fake-ipam", Command::Check, in_process).is_err());
        assert_eq!(fake.seen.lock().unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
