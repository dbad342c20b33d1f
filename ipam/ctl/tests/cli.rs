//! The command line itself: help, version, usage errors (exit 2), and an
//! unreachable etcd (exit 1, a message, within the timeout).

mod common;

use std::time::Duration;

use cni_harness::ctl::unanswering_endpoints;
use common::*;

fn run(args: &[&str]) -> CtlOutput {
    ctl_with(&["http://127.0.0.1:1".to_string()], args, None)
}

#[test]
fn help_and_version_work() {
    let help = run(&["--help"]);
    let out = help.ok();
    for word in [
        "usage",
        "blocks",
        "handles",
        "leaks",
        "node",
        "--etcd-endpoints",
        "--json",
        "Examples:",
    ] {
        assert!(out.contains(word), "--help lacks {word}: {out}");
    }
    let sub = run(&["node", "release", "--help"]);
    assert!(sub.ok().contains("--force"), "{sub:?}");
    let leaks = run(&["leaks", "--help"]);
    assert!(leaks.ok().contains("--cache-dir"), "{leaks:?}");
    let v = run(&["--version"]);
    assert_eq!(
        v.ok().trim(),
        format!("ipamctl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_before_any_etcd_work() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["leaks", "--network", "net1", "--node", "a"],
        &[
            "leaks",
            "--network",
            "net1",
            "--node",
            "a",
            "--containers",
            "-",
            "--cache-dir",
            "/x",
        ],
        &["node", "release", "--network", "net1"],
        &["node", "release", "a/b", "--network", "net1"],
        &["usage", "--network", "bad/name"],
        &["usage", "--timeout-ms", "0"],
        &["--etcd-endpoints", "https://127.0.0.1:1", "usage"],
        &["--cert", "/c.pem", "usage"],
        &["--password", "p", "usage"],
    ] {
        let out = ctl_with(&[], args, None);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn an_unreachable_etcd_is_exit_1_with_a_message_within_the_timeout() {
    // Nothing listening, and a listener that accepts and never answers.
    for url in unanswering_endpoints() {
        for args in [
            &["usage", "--timeout-ms", "700"][..],
            &[
                "node",
                "release",
                "n1",
                "--network",
                "net1",
                "--timeout-ms",
                "700",
            ],
        ] {
            let out = ctl_with(std::slice::from_ref(&url), args, None);
            assert!(out.took < Duration::from_secs(10), "{url} {args:?}: hung");
            let msg = out.failed();
            assert!(msg.contains(&url), "{url} {args:?}: {msg}");
        }
    }
}
