//! End to end: `cni-bench --quick --only overlay` builds a 3-node simulated
//! cluster (underlay, etcd, an overlayd per node), a join, and the
//! throughput comparison, and reports every number. No timing is asserted;
//! only that the numbers are there, positive, and the counts right.
//!
//! Uses the binaries of the profile under test (target/debug under `cargo
//! test`): this checks the bench's plumbing, not overlayd's speed.

use std::process::{Command, Stdio};

use cni_harness::bins;
use serde_json::Value;

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x > 0.0 && x.is_finite(), "{what} = {x}, expected > 0");
    x
}

#[test]
fn quick_overlay_run_reports_convergence_scale_and_throughput() {
    cni_harness::require_tool("etcd", "etcd-server");
    cni_harness::require_tool("iperf3", "iperf3");
    for b in ["overlayd", "vxlan", "bridge", "host-local", "portmap"] {
        bins::bin(b);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_cni-bench"))
        .args([
            "--quick", "--only", "overlay", "--format", "json", "--silent",
        ])
        .arg("--ours")
        .arg(bins::plugin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cni-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for cni-bench");
    assert!(
        out.status.success(),
        "cni-bench failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let o = &report["overlay"];
    let sizes = o["sizes"].as_array().expect("overlay.sizes");
    assert_eq!(sizes.len(), 1, "--quick measures one size: {sizes:?}");
    let s = &sizes[0];
    let n = s["nodes"].as_u64().expect("nodes");
    assert_eq!(n, 3);
    positive(&s["formation_ms"], "formation_ms");
    for part in ["formation", "join", "all"] {
        let q = &s["event_to_programmed"][part];
        let count = positive(&q["observations"], &format!("{part} observations"));
        let (p50, p99) = (
            positive(&q["p50_ms"], &format!("{part} p50")),
            positive(&q["p99_ms"], &format!("{part} p99")),
        );
        assert!(p50 <= p99, "{part}: p50 {p50} > p99 {p99}");
        if part == "join" {
            // The join is one event at each existing node, at least.
            assert!(count >= n as f64, "join observations {count}");
        }
    }
    let j = &s["join"];
    positive(&j["wall_ms_all_programmed"], "join wall");
    positive(&j["new_node_full_mesh_ms"], "new node full mesh");
    // Every existing node hears of the new record and programs its route,
    // neighbour and FDB entry; the new node programs all three for each.
    let events = positive(&j["watch_events_total"], "watch events per join");
    assert!(events >= n as f64, "watch events per join {events}");
    assert!(
        positive(&j["kernel_changes_per_existing_node"], "changes per node") >= 3.0,
        "{j}"
    );
    assert!(
        positive(&j["kernel_changes_total"], "changes per join") >= (3 * n + 3 * n) as f64,
        "{j}"
    );
    positive(&s["keepalives_per_s"]["nodes"], "keep-alives/s (nodes)");
    positive(&s["keepalives_per_s"]["etcd"], "keep-alives/s (etcd)");
    let k = &s["kernel_entries_per_node"];
    for e in ["routes", "neighbours", "fdb"] {
        assert_eq!(k[e].as_f64(), Some((n - 1) as f64), "{e} per node: {k}");
    }
    positive(&s["overlayd_rss_kb"]["p50"], "overlayd RSS");
    assert_eq!(
        s["overlayd_rss_kb"]["n"].as_u64(),
        Some(n + 1),
        "RSS of each overlayd"
    );

    let t = &o["throughput"];
    assert!(t["mtu"].as_u64().is_some_and(|m| m > 1000), "mtu: {t}");
    for k in [
        "overlay_pod_to_pod_gbit_s",
        "overlay_node_to_node_gbit_s",
        "hand_built_node_to_node_gbit_s",
        "hand_built_pod_to_pod_gbit_s",
    ] {
        assert_eq!(t[k]["n"].as_u64(), Some(1), "{k}: {t}");
        positive(&t[k]["p50"], k);
    }
    positive(&t["ratio_pods_over_hand_built"], "throughput ratio");

    let targets = report["targets"].as_array().expect("targets");
    for id in ["overlay-p99", "overlay-throughput"] {
        let t = targets
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("target {id} missing: {targets:?}"));
        positive(&t["value"], id);
        assert!(t["met"].is_boolean(), "{id} not evaluated");
    }

    // Nothing left behind: no namespace of this run.
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cnit-benchov") && n.contains(&format!("-{pid}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
