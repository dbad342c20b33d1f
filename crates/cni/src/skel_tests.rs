//! Dispatcher tests: every error path with its code, without touching the kernel.

use serde_json::{json, Value};
use std::sync::Mutex;

use crate::*;

/// (command, container id, ifname) as the plugin saw them.
type Seen = (Command, Option<String>, Option<String>);

/// Records what the dispatcher handed over; answers with a fixed result.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    fail_with: Option<Error>,
    panic: bool,
}

impl Plugin for Recorder {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        self.record(req);
        if self.panic {
            panic!("boom");
        }
        if let Some(e) = &self.fail_with {
            return Err(e.clone());
        }
        Ok(CniResult {
            interfaces: vec![Interface {
                name: req.ifname()?.to_string(),
                mac: Some("00:00:00:00:00:00".into()),
                mtu: Some(65536),
                sandbox: req.netns.as_ref().map(|p| p.display().to_string()),
                ..Default::default()
            }],
            ips: vec![IpConfig {
                address: "127.0.0.1/8".parse()?,
                gateway: None,
                interface: Some(0),
            }],
            ..Default::default()
        })
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        self.record(req);
        Ok(())
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        self.record(req);
        Ok(())
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        self.record(req);
        Ok(())
    }
    fn known_args(&self) -> Option<&'static [&'static str]> {
        Some(&["IP", "MAC"])
    }
}

impl Recorder {
    fn record(&self, req: &Request) {
        self.seen.lock().unwrap().push((
            req.command,
            req.container_id.as_ref().map(|c| c.to_string()),
            req.ifname.as_ref().map(|c| c.to_string()),
        ));
    }
    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl std::panic::RefUnwindSafe for Recorder {}

/// A netns path that exists and is not ours: a fresh file stands in for the
/// dispatcher's stat checks (it only compares device and inode).
fn fake_netns() -> String {
    let p = std::env::temp_dir().join(format!("cni-skel-test-ns-{}", std::process::id()));
    std::fs::write(&p, b"").unwrap();
    p.display().to_string()
}

fn env(cmd: &str) -> Env {
    [
        ("CNI_COMMAND", cmd.to_string()),
        ("CNI_CONTAINERID", "abc123".to_string()),
        ("CNI_NETNS", fake_netns()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni".to_string()),
    ]
    .into_iter()
    .collect()
}

fn conf(version: &str) -> Vec<u8> {
    json!({"cniVersion": version, "name": "net1", "type": "recorder"})
        .to_string()
        .into_bytes()
}

fn expect_err(out: &Outcome, code: u32) -> Value {
    assert_ne!(out.exit_code, 0, "expected failure, got {}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).expect("error is JSON");
    assert_eq!(v["code"], code, "{}", out.stdout);
    assert!(!v["msg"].as_str().unwrap().is_empty());
    assert!(v["cniVersion"].is_string());
    v
}

#[test]
fn version_answers_every_supported_version() {
    let p = Recorder::default();
    for stdin in [&b""[..], b"{}", br#"{"cniVersion":"0.3.1"}"#] {
        let out = dispatch(&p, &env("VERSION"), stdin);
        assert_eq!(out.exit_code, 0);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
    let out = dispatch(&p, &env("VERSION"), br#"{"cniVersion":"0.3.1"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["cniVersion"],
        "0.3.1"
    );
    let out = dispatch(&p, &env("VERSION"), br#"{"cniVersion":"0.2.0"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["cniVersion"],
        "1.1.0"
    );
    expect_err(&dispatch(&p, &env("VERSION"), b"{nope"), 6);
    assert_eq!(p.calls(), 0);
}

#[test]
fn add_prints_the_result_at_the_configs_version() {
    for v in Version::ALL {
        let p = Recorder::default();
        let out = dispatch(&p, &env("ADD"), &conf(v.as_str()));
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        let r: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(r["cniVersion"], v.as_str());
        assert_eq!(
            r["ips"][0].get("version").is_some(),
            v.has_ip_version_field()
        );
        assert_eq!(r["interfaces"][0].get("mtu").is_some(), v.has_v1_1_fields());
        assert_eq!(p.calls(), 1);
    }
}

#[test]
fn missing_or_bad_command_is_code_4() {
    let p = Recorder::default();
    let mut e = env("ADD");
    e.set("CNI_COMMAND", "");
    expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
    expect_err(&dispatch(&p, &env("add"), &conf("1.0.0")), 4);
    expect_err(&dispatch(&p, &env("BOGUS"), &conf("1.0.0")), 4);
    assert_eq!(p.calls(), 0);
}

#[test]
fn container_id_missing_or_malformed_is_code_4() {
    let p = Recorder::default();
    for bad in ["", "-lead", "has space", "a/b", "x;y"] {
        let mut e = env("ADD");
        e.set("CNI_CONTAINERID", bad);
        let err = expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
        assert!(
            err["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
            "{err}"
        );
    }
    assert_eq!(p.calls(), 0);
}

#[test]
fn ifname_rules_are_code_4() {
    let p = Recorder::default();
    for bad in ["1234567890123456", "eth/0", "eth:0", ".", "..", "e 0", ""] {
        for cmd in ["ADD", "DEL", "CHECK"] {
            let mut e = env(cmd);
            e.set("CNI_IFNAME", bad);
            let err = expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
            assert!(err["msg"].as_str().unwrap().contains("CNI_IFNAME"), "{err}");
        }
    }
    assert_eq!(p.calls(), 0);
}

#[test]
fn required_variables_per_command() {
    let p = Recorder::default();
    // ADD and CHECK need a netns; DEL does not.
    for cmd in ["ADD", "CHECK"] {
        let mut e = env(cmd);
        e.set("CNI_NETNS", "");
        let err = expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
        assert!(err["msg"].as_str().unwrap().contains("CNI_NETNS"));
    }
    let mut e = env("DEL");
    e.set("CNI_NETNS", "");
    assert_eq!(dispatch(&p, &e, &conf("1.0.0")).exit_code, 0);
    // Missing variables are all named in one message.
    let mut e = env("ADD");
    e.set("CNI_CONTAINERID", "");
    e.set("CNI_IFNAME", "");
    let err = expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("CNI_CONTAINERID") && msg.contains("CNI_IFNAME"),
        "{msg}"
    );
}

#[test]
fn status_and_gc_tolerate_empty_attachment_variables() {
    let p = Recorder::default();
    for cmd in ["STATUS", "GC"] {
        let e: Env = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", ""),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", ""),
        ]
        .into_iter()
        .collect();
        let out = dispatch(&p, &e, &conf("1.1.0"));
        assert_eq!(out.exit_code, 0, "{cmd}: {}", out.stdout);
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn status_and_gc_need_110_and_check_needs_040() {
    let p = Recorder::default();
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        expect_err(&dispatch(&p, &env("STATUS"), &conf(v)), 1);
        expect_err(&dispatch(&p, &env("GC"), &conf(v)), 1);
    }
    for v in ["0.3.0", "0.3.1"] {
        expect_err(&dispatch(&p, &env("CHECK"), &conf(v)), 1);
    }
    assert_eq!(dispatch(&p, &env("CHECK"), &conf("0.4.0")).exit_code, 0);
}

#[test]
fn malformed_stdin_is_code_6() {
    let p = Recorder::default();
    for bad in [
        &b""[..],
        b"{",
        b"not json",
        b"[1,2]",
        b"\"str\"",
        b"{\"cniVersion\": 1}",
    ] {
        expect_err(&dispatch(&p, &env("ADD"), bad), 6);
    }
    assert_eq!(p.calls(), 0);
}

#[test]
fn unsupported_or_missing_version_is_code_1() {
    let p = Recorder::default();
    for v in ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "banana"] {
        let err = expect_err(&dispatch(&p, &env("ADD"), &conf(v)), 1);
        // The error carries the version the runtime asked for.
        assert_eq!(err["cniVersion"], v);
        assert!(err["details"].as_str().unwrap().contains("1.1.0"));
    }
    expect_err(&dispatch(&p, &env("ADD"), br#"{"name":"n","type":"t"}"#), 1);
    assert_eq!(p.calls(), 0);
}

#[test]
fn invalid_common_config_is_code_7() {
    let p = Recorder::default();
    let bad = json!({"cniVersion": "1.0.0", "name": "bad name!", "type": "x"}).to_string();
    let err = expect_err(&dispatch(&p, &env("ADD"), bad.as_bytes()), 7);
    assert_eq!(err["cniVersion"], "1.0.0");
    let bad = json!({"cniVersion": "1.0.0", "name": "n"}).to_string();
    expect_err(&dispatch(&p, &env("ADD"), bad.as_bytes()), 7);
}

#[test]
fn malformed_prev_result_is_code_6() {
    let p = Recorder::default();
    let bad = json!({"cniVersion": "1.0.0", "name": "n", "type": "x",
        "prevResult": {"ips": [{"address": "nope"}]}})
    .to_string();
    expect_err(&dispatch(&p, &env("ADD"), bad.as_bytes()), 6);
}

#[test]
fn cni_args_syntax_and_unknown_keys_are_code_4() {
    let p = Recorder::default();
    let mut e = env("ADD");
    e.set("CNI_ARGS", "IP=10.0.0.2;garbage");
    expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
    e.set("CNI_ARGS", "FOO=bar");
    expect_err(&dispatch(&p, &e, &conf("1.0.0")), 4);
    e.set("CNI_ARGS", "FOO=bar;IgnoreUnknown=1;IP=10.0.0.2");
    assert_eq!(dispatch(&p, &e, &conf("1.0.0")).exit_code, 0);
    // DEL never fails on unknown keys: teardown must not be blocked.
    let mut e = env("DEL");
    e.set("CNI_ARGS", "FOO=bar");
    assert_eq!(dispatch(&p, &e, &conf("1.0.0")).exit_code, 0);
}

#[test]
fn netns_that_does_not_exist_is_code_8_for_add_but_fine_for_del() {
    let p = Recorder::default();
    let mut e = env("ADD");
    e.set("CNI_NETNS", "/run/netns/definitely-not-here-cni-test");
    expect_err(&dispatch(&p, &e, &conf("1.0.0")), 8);
    let mut e = env("DEL");
    e.set("CNI_NETNS", "/run/netns/definitely-not-here-cni-test");
    assert_eq!(dispatch(&p, &e, &conf("1.0.0")).exit_code, 0);
}

#[test]
fn own_netns_is_refused_unless_overridden() {
    let p = Recorder::default();
    for cmd in ["ADD", "CHECK", "DEL"] {
        let mut e = env(cmd);
        e.set("CNI_NETNS", "/proc/self/ns/net");
        expect_err(&dispatch(&p, &e, &conf("1.0.0")), 8);
        e.set("CNI_NETNS_OVERRIDE", "1");
        assert_eq!(dispatch(&p, &e, &conf("1.0.0")).exit_code, 0, "{cmd}");
    }
}

#[test]
fn plugin_errors_keep_their_code_and_details() {
    let p = Recorder {
        fail_with: Some(Error::try_again_later("etcd down").with_details("no leader")),
        ..Default::default()
    };
    let err = expect_err(&dispatch(&p, &env("ADD"), &conf("0.4.0")), 11);
    assert_eq!(err["details"], "no leader");
    assert_eq!(err["cniVersion"], "0.4.0");
}

#[test]
fn a_panic_becomes_error_999_not_a_crash() {
    let p = Recorder {
        panic: true,
        ..Default::default()
    };
    let err = expect_err(&dispatch(&p, &env("ADD"), &conf("1.0.0")), 999);
    assert_eq!(err["details"], "boom");
}

#[test]
fn del_check_gc_print_nothing_on_success() {
    let p = Recorder::default();
    for (cmd, v) in [("DEL", "1.0.0"), ("CHECK", "1.0.0"), ("GC", "1.1.0")] {
        let out = dispatch(&p, &env(cmd), &conf(v));
        assert_eq!(
            out,
            Outcome {
                stdout: String::new(),
                exit_code: 0
            },
            "{cmd}"
        );
    }
    let seen = p.seen.lock().unwrap();
    assert_eq!(
        seen[0],
        (Command::Del, Some("abc123".into()), Some("eth0".into()))
    );
    assert_eq!(seen[2].1, None, "GC gets no container id");
}
