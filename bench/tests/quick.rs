//! End to end: `cni-bench --quick --iterations 3` runs every scenario against
//! both implementations and reports every number. No timing is asserted; only
//! that the numbers are there and positive.
//!
//! Uses the plugins of the profile under test (target/debug under `cargo
//! test`): this checks the bench's plumbing, not our speed - published numbers
//! come from a release build (see BENCHMARKS.md).

use std::process::Command;

use cni_harness::bins;
use serde_json::Value;

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x > 0.0 && x.is_finite(), "{what} = {x}, expected > 0");
    x
}

fn summary(v: &Value, what: &str, n_min: u64) {
    let n = v["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no n in {v}"));
    assert!(n >= n_min, "{what}: n = {n}, expected at least {n_min}");
    for k in ["p50", "p99", "mean", "min", "max"] {
        positive(&v[k], &format!("{what}.{k}"));
    }
    assert!(
        v["p50"].as_f64() <= v["p99"].as_f64() && v["min"].as_f64() <= v["max"].as_f64(),
        "{what}: percentiles out of order: {v}"
    );
}

#[test]
fn quick_run_reports_every_scenario_with_positive_numbers() {
    // Fail early, naming what is missing.
    for p in ["bridge", "host-local", "portmap"] {
        bins::bin(p);
        let reference = std::path::Path::new("/usr/lib/cni").join(p);
        assert!(
            reference.is_file(),
            "{} missing: install the Debian package containernetworking-plugins",
            reference.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("cni-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("plot.svg");
    let saved = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_cni-bench"))
        .args([
            "--quick",
            "--iterations",
            "3",
            "--format",
            "json",
            "--silent",
        ])
        .arg("--ours")
        .arg(bins::plugin_dir())
        .arg("--plot")
        .arg(&svg)
        .arg("--save")
        .arg(&saved)
        .output()
        .expect("run cni-bench");
    assert!(
        out.status.success(),
        "cni-bench failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(report, saved, "--save writes what --format json prints");

    // Every scenario, both commands, both sides.
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let ids: Vec<&str> = scenarios.iter().filter_map(|s| s["id"].as_str()).collect();
    for chain in ["bridge", "masq-portmap"] {
        for k in ["seq", "x10", "x50"] {
            let id = format!("{chain}/{k}");
            assert!(ids.contains(&id.as_str()), "scenario {id} missing: {ids:?}");
        }
    }
    for s in scenarios {
        let id = s["id"].as_str().unwrap();
        let k = s["concurrency"].as_u64().unwrap();
        let plugins: Vec<&str> = s["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let per_side = if k == 1 { 3 } else { k };
        for cmd in ["ADD", "DEL"] {
            for side in ["ours", "reference"] {
                let d = &s[cmd][side];
                let what = format!("{id} {cmd} {side}");
                summary(&d["chain_ms"], &format!("{what} chain_ms"), per_side);
                summary(&d["wall_ms"], &format!("{what} wall_ms"), 1);
                for p in &plugins {
                    summary(&d["plugins_ms"][p], &format!("{what} {p}"), per_side);
                    if k == 1 && cmd == "ADD" {
                        summary(&d["rss_kb"][p], &format!("{what} {p} rss"), 1);
                    }
                }
            }
            positive(&s[cmd]["ratio"]["p50"], &format!("{id} {cmd} ratio p50"));
            positive(&s[cmd]["ratio"]["p99"], &format!("{id} {cmd} ratio p99"));
        }
    }

    // Floors.
    let f = &report["floors"];
    for k in [
        "exec_true_ms",
        "exec_true_rss_kb",
        "veth_del_ip_ms",
        "veth_del_netlink_ms",
    ] {
        summary(&f[k], k, 1);
    }
    for k in [
        "version_ms",
        "version_rss_kb",
        "ipam_add_ms",
        "ipam_del_ms",
        "ipam_rss_kb",
    ] {
        summary(&f[k]["ours"], &format!("{k} ours"), 1);
        summary(&f[k]["reference"], &format!("{k} reference"), 1);
    }

    // Binary sizes and targets.
    let bins_json = report["binaries"].as_array().expect("binaries");
    for name in ["bridge", "host-local", "portmap"] {
        let b = bins_json
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("size of {name} missing"));
        positive(&b["ours_bytes"], &format!("{name} ours_bytes"));
        positive(&b["reference_bytes"], &format!("{name} reference_bytes"));
    }
    let targets = report["targets"].as_array().expect("targets");
    assert!(targets.len() >= 5, "targets: {targets:?}");
    for t in targets {
        positive(&t["value"], &format!("target {}", t["id"]));
        assert!(t["met"].is_boolean(), "target {} not evaluated", t["id"]);
    }
    assert!(report["meta"]["ours_release_build"].is_boolean());
    assert!(report["not_measured"].is_array());

    // The plot is an SVG with a bar per scenario, command and side.
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
    assert!(
        svg_text.matches("<rect").count() >= 2 * 12,
        "too few bars in the plot"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Nothing left behind: no namespace of this run.
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cnit-bench"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
