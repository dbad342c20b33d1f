//! End to end: `cni-bench --quick --iterations 3` runs every scenario against
//! both implementations (and etcd-ipam against a real etcd of 1 and of 3
//! members, beside host-local) and reports every number. No timing is
//! asserted; only that the numbers are there, positive and counted right.
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
    cni_harness::require_tool("etcd", "etcd-server");
    bins::bin("etcd-ipam");
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
    let not_measured = report["not_measured"].as_array().expect("not_measured");
    assert!(
        !not_measured
            .iter()
            .any(|n| n["what"].as_str().unwrap_or("").contains("etcd")),
        "etcd-ipam was measured: {not_measured:?}"
    );
    for id in [
        "etcd-rate-10-nodes",
        "etcd-rate-10-nodes-cluster",
        "etcd-seq-vs-floor",
        "etcd-seq-vs-floor-cluster",
    ] {
        assert!(
            targets.iter().any(|t| t["id"] == id),
            "target {id} missing: {targets:?}"
        );
    }

    // etcd-ipam: every client count, every store, every ADD and DEL counted.
    let e = &report["etcd_ipam"];
    let levels = e["levels"].as_array().expect("etcd_ipam.levels");
    let level_ids: Vec<&str> = levels.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(
        level_ids,
        ["etcd-ipam/seq", "etcd-ipam/x10", "etcd-ipam/x50"],
        "etcd-ipam levels"
    );
    for l in levels {
        let id = l["id"].as_str().unwrap();
        let clients = l["clients"].as_u64().unwrap();
        let want = clients * l["per_client"].as_u64().unwrap() * l["rounds"].as_u64().unwrap();
        assert!(want >= clients, "{id}: {l}");
        assert_eq!(l["nodes"].as_u64(), Some(clients.min(10)), "{id} nodes");
        for store in ["etcd_1_member", "etcd_3_members", "host_local"] {
            let d = &l[store];
            let what = format!("{id} {store}");
            for k in ["add_ms", "del_ms"] {
                summary(&d[k], &format!("{what} {k}"), want);
                assert_eq!(d[k]["n"].as_u64(), Some(want), "{what} {k}: one per ADD");
            }
            summary(&d["add_phase_ms"], &format!("{what} add_phase_ms"), 1);
            positive(
                &d["allocations_per_s"],
                &format!("{what} allocations_per_s"),
            );
            positive(&d["releases_per_s"], &format!("{what} releases_per_s"));
            summary(&d["add_cpu_ms"], &format!("{what} add_cpu_ms"), want);
            let cpu = &d["cpu_ms_per_add"];
            positive(&cpu["plugin"], &format!("{what} plugin CPU per ADD"));
            positive(&cpu["total"], &format!("{what} CPU per ADD"));
            let etcd = cpu["etcd"].as_f64().expect("etcd CPU per ADD");
            // Clock ticks: a short quick round may read 0 for etcd; host-local
            // has no etcd at all.
            if store == "host_local" {
                assert_eq!(etcd, 0.0, "{what}: no etcd behind host-local");
            } else {
                assert!(etcd >= 0.0, "{what}: etcd CPU {etcd}");
            }
        }
    }
    for store in ["etcd_1_member", "etcd_3_members"] {
        summary(
            &e["first_add_claims_block_ms"][store],
            &format!("first ADD {store}"),
            1,
        );
        let f = &e["floor"][store];
        for k in ["connect_ms", "put_txn_ms", "connect_put_ms", "read_txn_ms"] {
            summary(&f[k], &format!("etcd floor {store} {k}"), 3);
        }
        let floor = positive(&f["floor_ms"], &format!("{store} floor_ms"));
        let put = f["connect_put_ms"]["p50"].as_f64().unwrap();
        assert!(floor > put, "{store}: the floor includes the process start");
        positive(&f["seq_add_p50_over_floor"], &format!("{store} ratio"));
    }
    positive(&e["cpu_share_this_run"], "etcd-ipam cpu_share_this_run");
    let other = e["cpu_share_other_processes"]
        .as_f64()
        .expect("cpu_share_other_processes");
    assert!(
        (0.0..=1.0).contains(&other),
        "other processes' CPU share {other}"
    );
    for k in ["exec_true_ms", "version_ms"] {
        summary(&e["floor"][k], &format!("etcd floor {k}"), 3);
    }
    for k in ["etcd_ipam_add", "host_local_add"] {
        summary(&e["rss_kb"][k], &format!("rss {k}"), 1);
    }

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
