//! Running another plugin (an IPAM plugin) the way a runtime would: found along
//! CNI_PATH, same environment but CNI_COMMAND, the same config on stdin.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::error::Error;
use crate::result::CniResult;
use crate::skel::{Command, Request};

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
    let binary = find_plugin(plugin_type, &req.cni_path)?;
    let mut cmd = Process::new(&binary);
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
    if !out.status.success() {
        let parsed = serde_json::from_str::<serde_json::Value>(&stdout)
            .ok()
            .and_then(|v| Error::from_json(&v));
        return Err(match parsed {
            Some(mut e) => {
                e.msg = format!("{plugin_type}: {}", e.msg);
                e
            }
            None => Error::plugin(format!(
                "{plugin_type} {} failed ({}) without a CNI error",
                command.as_str(),
                out.status
            ))
            .with_details(stdout.trim().to_string()),
        });
    }
    if command != Command::Add {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(&stdout)
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
            netns: None,
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
}
