//! GC and STATUS.

mod common;

use common::{container_id, Fixture};
use serde_json::{json, Value};

fn gc_fixture(version: &str) -> Fixture {
    let f = Fixture::new();
    f.plugins(&["pa", "pb"]);
    f.conflist(
        "10-gcnet.conflist",
        &json!({"cniVersion": version, "name": "gcnet",
                "plugins": [{"type": "pa", "capabilities": {"portMappings": true}}, {"type": "pb"}]}),
    );
    f.conflist(
        "20-other.conflist",
        &json!({"cniVersion": version, "name": "other", "plugins": [{"type": "pa"}]}),
    );
    f
}

#[test]
fn gc_sends_cached_attachments_under_both_keys() {
    let f = gc_fixture("1.1.0");
    let (ns1, ns2, ns3) = (f.netns("one"), f.netns("two"), f.netns("three"));
    f.cnitool(&["add", "gcnet", &ns1]).ok();
    f.cnitool(&["-i", "net1", "add", "gcnet", &ns2]).ok();
    f.cnitool(&["add", "other", &ns3]).ok();
    f.clear_calls();

    let run = f.cnitool_env(&["gc", "gcnet"], &[("CAP_ARGS", r#"{"portMappings":[]}"#)]);
    run.ok();
    assert_eq!(f.call_list(), ["pa GC", "pb GC"]);

    let mut want = vec![
        json!({"containerID": container_id(&ns1), "ifname": "eth0"}),
        json!({"containerID": container_id(&ns2), "ifname": "net1"}),
    ];
    // Cache file name order: <net>-<containerID>-<ifname>.
    want.sort_by_key(|v| format!("{}-{}", v["containerID"], v["ifname"]));
    for c in f.calls() {
        assert_eq!(c.env("CNI_COMMAND"), "GC");
        assert_eq!(c.env("CNI_CONTAINERID"), "");
        assert_eq!(c.env("CNI_NETNS"), "");
        assert_eq!(c.env("CNI_IFNAME"), "");
        assert_eq!(c.env("CNI_ARGS"), "");
        assert_eq!(c.env("CNI_PATH"), f.bin.to_str().unwrap());
        assert_eq!(c.stdin["name"], "gcnet");
        assert_eq!(c.stdin["cniVersion"], "1.1.0");
        assert_eq!(
            c.stdin["cni.dev/valid-attachments"],
            Value::Array(want.clone())
        );
        assert_eq!(c.stdin["cni.dev/attachments"], Value::Array(want.clone()));
        assert!(c.stdin.get("runtimeConfig").is_none());
        assert!(c.stdin.get("prevResult").is_none());
    }
    // Nothing was deleted: the cache entries are all still there.
    assert!(f.cache_file("gcnet", &container_id(&ns1), "eth0").exists());
    assert!(f.cache_file("gcnet", &container_id(&ns2), "net1").exists());

    // After a DEL the attachment is no longer valid.
    f.cnitool(&["del", "gcnet", &ns1]).ok();
    f.clear_calls();
    f.cnitool(&["gc", "gcnet", "/ignored/netns"]).ok();
    let attachments = &f.calls()[0].stdin["cni.dev/valid-attachments"];
    assert_eq!(
        attachments,
        &json!([{"containerID": container_id(&ns2), "ifname": "net1"}])
    );

    // No attachments at all: an empty list, not a missing key.
    f.clear_calls();
    f.cnitool(&["gc", "other"]).ok();
    f.cnitool(&["del", "other", &ns3]).ok();
    f.clear_calls();
    f.cnitool(&["gc", "other"]).ok();
    assert_eq!(f.calls()[0].stdin["cni.dev/valid-attachments"], json!([]));
    assert_eq!(f.calls()[0].stdin["cni.dev/attachments"], json!([]));
}

#[test]
fn gc_keeps_going_after_a_plugin_failure() {
    let f = gc_fixture("1.1.0");
    f.respond_json("pa", "GC", &json!({"code": 5, "msg": "disk on fire"}), 1);
    f.respond_json("pb", "GC", &json!({"code": 11, "msg": "etcd away"}), 1);
    let run = f.cnitool(&["gc", "gcnet"]);
    assert_eq!(run.code, 1);
    assert_eq!(f.call_list(), ["pa GC", "pb GC"]);
    assert!(
        run.stderr
            .contains("plugin pa GC failed: disk on fire (code 5)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("plugin pb GC failed: etcd away (code 11)"),
        "{}",
        run.stderr
    );
}

#[test]
fn gc_below_110_or_disabled_calls_no_plugin() {
    let f = gc_fixture("1.0.0");
    f.cnitool(&["add", "gcnet", &f.netns("a")]).ok();
    f.clear_calls();
    let run = f.cnitool(&["gc", "gcnet"]);
    run.ok();
    assert!(f.calls().is_empty());
    assert!(run.stderr.contains("1.1.0"), "{}", run.stderr);

    let f = Fixture::new();
    f.plugin("pa");
    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "1.1.0", "name": "n", "disableGC": true, "plugins": [{"type": "pa"}]}),
    );
    let run = f.cnitool(&["gc", "n"]);
    run.ok();
    assert!(f.calls().is_empty());
    assert!(run.stderr.contains("disableGC"), "{}", run.stderr);
}

#[test]
fn status_runs_plugins_in_order_and_reports_failure() {
    let f = gc_fixture("1.1.0");
    let run = f.cnitool(&["status", "gcnet"]);
    run.ok();
    assert_eq!(f.call_list(), ["pa STATUS", "pb STATUS"]);
    for c in f.calls() {
        assert_eq!(c.env("CNI_COMMAND"), "STATUS");
        assert_eq!(c.env("CNI_CONTAINERID"), "");
        assert_eq!(c.stdin["name"], "gcnet");
        assert_eq!(c.stdin["cniVersion"], "1.1.0");
    }

    f.respond_json(
        "pa",
        "STATUS",
        &json!({"code": 50, "msg": "no addresses left"}),
        1,
    );
    f.clear_calls();
    let run = f.cnitool(&["status", "gcnet", "/ignored"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("plugin pa STATUS failed: no addresses left (code 50)"),
        "{}",
        run.stderr
    );
    assert_eq!(f.call_list(), ["pa STATUS"]);
}

#[test]
fn status_below_110_calls_no_plugin() {
    let f = gc_fixture("1.0.0");
    let run = f.cnitool(&["status", "gcnet"]);
    run.ok();
    assert!(f.calls().is_empty());
}
