//! `plugin_main!` as a plugin uses it: the example binary it builds answers
//! the dispatcher's commands and carries its build marker.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/noop_plugin`: `cargo test` builds the examples
/// before it runs any test, next to the `deps/` directory this test runs from.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under target/<profile>/deps");
    let path = profile_dir.join("examples/noop_plugin");
    assert!(
        path.exists(),
        "{} was not built: run the whole `cargo test -p cni` (it builds examples) or `cargo build --examples`",
        path.display()
    );
    path
}

#[test]
fn the_example_answers_version_with_every_supported_version() {
    let out = Command::new(example())
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .output()
        .expect("run the example plugin");
    assert!(out.status.success(), "VERSION failed: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("VERSION answers JSON");
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .expect("supportedVersions is a list")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for want in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.contains(&want), "{want} missing from {versions:?}");
    }
}

#[test]
fn the_example_reports_a_missing_command_as_a_cni_error() {
    let out = Command::new(example()).env_clear().output().expect("run");
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("error JSON on stdout");
    assert_eq!(v["code"], 4, "{v}");
}

#[test]
fn the_example_carries_its_build_marker() {
    let path = example();
    assert!(cni::marker::binary_is(&path, "noop_plugin"));
    assert!(
        !cni::marker::binary_is(&path, "bridge"),
        "the marker names the binary"
    );
}
