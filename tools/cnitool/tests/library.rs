//! The library API as a conformance suite would use it.

mod common;

use cnitool::conf::load_network_conf;
use cnitool::{Attachment, Error, GcAttachment, Runtime, Version};
use common::Fixture;
use serde_json::json;

fn attachment(cid: &str) -> Attachment {
    Attachment {
        container_id: cid.into(),
        netns: format!("/run/netns/{cid}"),
        ifname: "eth0".into(),
        cni_args: vec![("A".into(), "1".into())],
        capability_args: json!({"portMappings": [{"hostPort": 1}]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

#[test]
fn runtime_add_del_and_gc_with_explicit_valid_set() {
    let f = Fixture::new();
    f.plugin("pa");
    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "1.1.0", "name": "n",
                "plugins": [{"type": "pa", "capabilities": {"portMappings": true}}]}),
    );
    let list = load_network_conf(&f.netd, "n").unwrap();
    assert_eq!(list.cni_version, Version::V1_1_0);
    let rt = Runtime::new(vec![f.bin.clone()], f.cache.clone());

    let report = rt.add(&list, &attachment("c1")).unwrap();
    assert_eq!(
        report.result,
        Some(json!({"cniVersion": "1.1.0", "interfaces": [{"name": "pa"}]}))
    );
    rt.add(&list, &attachment("c2")).unwrap();
    f.clear_calls();

    // As libcni's GCNetworkList: c2 is not valid, so it gets a DEL built from
    // its cache entry, then every plugin gets GC with the valid set.
    let valid = [GcAttachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }];
    let report = rt.gc(&list, &valid).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("stale attachment c2")),
        "{:?}",
        report.notes
    );
    assert_eq!(f.call_list(), ["pa DEL", "pa GC"]);
    let calls = f.calls();
    assert_eq!(calls[0].env("CNI_CONTAINERID"), "c2");
    assert_eq!(calls[0].env("CNI_NETNS"), "/run/netns/c2");
    assert_eq!(calls[0].env("CNI_ARGS"), "A=1");
    assert_eq!(
        calls[0].stdin["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 1}]})
    );
    assert_eq!(calls[0].stdin["prevResult"]["interfaces"][0]["name"], "pa");
    assert_eq!(
        calls[1].stdin["cni.dev/valid-attachments"],
        json!([{"containerID": "c1", "ifname": "eth0"}])
    );
    assert!(f.cache_file("n", "c1", "eth0").exists());
    assert!(!f.cache_file("n", "c2", "eth0").exists());
}

#[test]
fn runtime_errors_carry_plugin_and_code() {
    let f = Fixture::new();
    f.plugin("pa");
    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "pa"}]}),
    );
    f.respond_json("pa", "ADD", &json!({"code": 7, "msg": "nope"}), 1);
    let list = load_network_conf(&f.netd, "n").unwrap();
    let rt = Runtime::new(vec![f.bin.clone()], f.cache.clone());
    match rt.add(&list, &attachment("c1")) {
        Err(Error::Plugin {
            plugin_type,
            command,
            failure,
        }) => {
            assert_eq!(plugin_type, "pa");
            assert_eq!(command, cnitool::Command::Add);
            assert_eq!(failure.code(), Some(7));
        }
        other => panic!("{other:?}"),
    }
    let bad = Attachment {
        container_id: "bad id".into(),
        ..attachment("x")
    };
    assert_eq!(
        rt.add(&list, &bad).unwrap_err().exit_code(),
        cnitool::EXIT_USAGE
    );
}
