//! The command line itself: help, version, usage errors (exit 2, before any
//! etcd work), and an unreachable etcd (exit 1 with a message, no hang).

mod common;

use std::time::Duration;

use cni_harness::ctl::unanswering_endpoints;
use common::*;

fn run(args: &[&str]) -> CtlOutput {
    ctl_with(&["http://127.0.0.1:1".to_string()], args, None)
}

#[test]
fn help_and_version_work() {
    let out = run(&["--help"]);
    let help = out.ok();
    for word in [
        "config",
        "nodes",
        "node",
        "--etcd-endpoints",
        "--prefix",
        "--timeout-ms",
        "--cacert",
        "--user",
        "--json",
        "Examples:",
        "Exit status",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let set = run(&["config", "set", "--help"]);
    let set = set.ok();
    assert!(set.contains("--force") && set.contains("FILE|-"), "{set}");
    let rm = run(&["node", "rm", "--help"]);
    assert!(rm.ok().contains("gone"), "{rm:?}");
    let v = run(&["--version"]);
    assert_eq!(
        v.ok().trim(),
        format!("overlayctl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_before_any_etcd_work() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["config"],
        &["config", "set"],
        &["config", "set", "a.json", "b.json"],
        &["config", "get", "--bogus"],
        &["node", "rm"],
        &["node", "rm", ""],
        &["nodes", "--timeout-ms", "0"],
        &["nodes", "--timeout-ms", "soon"],
        &["nodes", "--cert", "/c.pem"],
        &["nodes", "--prefix", "/"],
        &["nodes", "--user", ":pw"],
        &["--etcd-endpoints", "127.0.0.1:2379", "nodes"],
        &["--etcd-endpoints", "https://127.0.0.1:1", "nodes"],
        &["--cacert", "/ca.pem", "nodes"],
    ] {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn a_config_that_cannot_be_read_or_parsed_fails_before_etcd() {
    // No etcd at port 1: these fail on their input, not on the connection.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let out = run(&["config", "set", missing.to_str().unwrap()]);
    assert!(out.failed().contains("missing.json"), "{out:?}");
    let out = ctl_with(
        &["http://127.0.0.1:1".to_string()],
        &["config", "set", "-"],
        Some(r#"{"network": "10.244.0.0/16", "vni": 0}"#),
    );
    let msg = out.failed();
    assert!(
        msg.contains("vni 0") && msg.contains("nothing written"),
        "{msg}"
    );
}

#[test]
fn an_unreachable_etcd_is_exit_1_with_a_message_and_no_hang() {
    // Nothing listening, and a listener that accepts and never answers.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, r#"{"network": "10.244.0.0/16"}"#).unwrap();
    let file = file.to_str().unwrap();
    for url in unanswering_endpoints() {
        for args in [
            &["config", "get"][..],
            &["config", "set", file],
            &["nodes", "--json"],
            &["node", "rm", "n1"],
        ] {
            let args = [args, &["--timeout-ms", "700"]].concat();
            let out = ctl_with(std::slice::from_ref(&url), &args, None);
            assert!(out.took < Duration::from_secs(15), "{url} {args:?}: hung");
            let msg = out.failed();
            assert!(msg.contains(&url), "{url} {args:?}: {msg}");
        }
    }
}
