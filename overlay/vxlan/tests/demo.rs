//! The README's first command, run quickly (binaries already built) so it
//! can't rot: the cluster demo and the single-node one must finish and say
//! that everything worked and nothing was left.

use std::path::PathBuf;
use std::process::Command;

fn run_demo(args: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("tools/demo.sh"))
        .args(args)
        .env("CNI_DEMO_BIN", cni_harness::bins::target_dir())
        .output()
        .expect("run tools/demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "demo failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn the_cluster_demo_runs_and_leaves_nothing() {
    let text = run_demo(&[]);
    for want in [
        "every node has a route to every other node's subnet",
        "hello from pod web on node-1",
        "node-1 dropped node-2's route after",
        "64 bytes from 10.244.",
        "etcd-ipam handles left: 0",
        "nft rules still tagged for network pods: 0",
        "namespaces of the demo left: 0",
        "overlayd / etcd processes of the demo left: 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let matrix: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('n') && l.contains('-') && l.contains('✓'))
        .collect();
    assert_eq!(matrix.len(), 6, "six rows of the ping matrix:\n{text}");
    assert!(!text.contains('✗'), "a ping failed:\n{text}");
    for node in ["node-1", "node-2", "node-3"] {
        assert!(
            text.contains(&format!("{node}  10.244.")),
            "overlayctl nodes lists {node}:\n{text}"
        );
    }
}

#[test]
fn the_single_node_demo_runs_and_leaves_nothing() {
    let text = run_demo(&["--single-node"]);
    for want in [
        "hello from container a",
        "leases left: 0",
        "still tagged for network demo: 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
