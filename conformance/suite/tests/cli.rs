//! The binary's command line and its JSON output format.

use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cni-conformance"))
}

#[test]
fn json_output_has_the_documented_shape() {
    cni_harness::bins::bin("loopback");
    let out = bin()
        .arg("--plugins")
        .arg(cni_harness::bins::plugin_dir())
        .args([
            "--only",
            "ENV-001",
            "VER-001",
            "STATUS-002",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ENV-001", "VER-001", "STATUS-002"]);
    for c in checks {
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "id", "rule", "status"]);
        assert!(["pass", "fail", "n/a"].contains(&c["status"].as_str().unwrap()));
        assert_eq!(c["status"], "pass", "{c}");
    }
}

#[test]
fn a_missing_plugin_makes_its_checks_not_applicable() {
    let empty = std::env::temp_dir().join(format!("cnc-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = bin()
        .arg("--plugins")
        .arg(&empty)
        .args(["--only", "ENV-001,ADD-001", "--format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&empty);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    // Both asked-for checks are reported (an empty list would pass the loop).
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ENV-001", "ADD-001"], "{v}");
    for c in checks {
        assert_eq!(c["status"], "n/a", "{c}");
        assert!(c["detail"].as_str().unwrap().contains("no "), "{c}");
    }
}

#[test]
fn usage_errors_exit_2_and_list_prints_every_check() {
    let out = bin().args(["--only", "ENV-001"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["--plugins", "/tmp", "--only", "NOPE-123"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("--list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() >= 60);
    assert!(text.contains("LIST-001") && text.contains("GC-003"));
}
