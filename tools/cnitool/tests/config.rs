//! Finding the network configuration, version choice, command line.

mod common;

use base64::Engine;
use common::{container_id, Fixture};
use serde_json::{json, Value};

#[test]
fn conflist_chosen_by_name_then_file_name_order() {
    let f = Fixture::new();
    f.plugins(&["first", "second", "third", "conf"]);
    f.conflist(
        "30-c.conflist",
        &json!({"cniVersion": "1.0.0", "name": "y", "plugins": [{"type": "third"}]}),
    );
    f.conflist(
        "20-b.conflist",
        &json!({"cniVersion": "1.0.0", "name": "y", "plugins": [{"type": "second"}]}),
    );
    f.conflist(
        "10-a.conflist",
        &json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "first"}]}),
    );
    // A .conf with the same name loses to any conflist.
    f.conflist(
        "05-y.conf",
        &json!({"cniVersion": "1.0.0", "name": "y", "type": "conf"}),
    );
    // A broken unrelated file is skipped with a note.
    f.netd_file("15-broken.conflist", "{ nope");

    let run = f.cnitool(&["add", "y", &f.netns("a")]);
    run.ok();
    assert_eq!(f.call_list(), ["second ADD"]);
    assert!(run.stderr.contains("15-broken.conflist"), "{}", run.stderr);

    f.clear_calls();
    f.cnitool(&["add", "x", &f.netns("a")]).ok();
    assert_eq!(f.call_list(), ["first ADD"]);

    let run = f.cnitool(&["add", "nosuch", &f.netns("a")]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("no network configuration named \"nosuch\""),
        "{}",
        run.stderr
    );
}

#[test]
fn old_conf_is_lifted_to_a_one_plugin_list() {
    let f = Fixture::new();
    f.plugin("ptp");
    let conf = json!({"cniVersion": "0.4.0", "name": "old", "type": "ptp", "ipMasq": true,
                      "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}});
    f.conflist("10-old.conf", &conf);
    let ns = f.netns("a");
    let run = f.cnitool(&["add", "old", &ns]);
    run.ok();
    assert_eq!(
        run.json(),
        json!({"cniVersion": "0.4.0", "interfaces": [{"name": "ptp"}]})
    );
    let call = &f.calls()[0];
    assert_eq!(call.stdin, conf);

    let cached: Value = serde_json::from_slice(
        &std::fs::read(f.cache_file("old", &container_id(&ns), "eth0")).unwrap(),
    )
    .unwrap();
    let config = base64::engine::general_purpose::STANDARD
        .decode(cached["config"].as_str().unwrap())
        .unwrap();
    let lifted: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        lifted,
        json!({"cniVersion": "0.4.0", "name": "old", "plugins": [conf]})
    );

    // .json files are lifted too; CHECK works on the lifted 0.4.0 list.
    f.clear_calls();
    f.cnitool(&["check", "old", &ns]).ok();
    assert_eq!(f.call_list(), ["ptp CHECK"]);
}

#[test]
fn plugins_from_the_network_directory_are_appended() {
    let f = Fixture::new();
    f.plugins(&["main", "extra"]);
    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "main"}]}),
    );
    std::fs::create_dir(f.netd.join("n")).unwrap();
    std::fs::write(
        f.netd.join("n/50-extra.conf"),
        r#"{"type": "extra", "k": 1}"#,
    )
    .unwrap();
    f.cnitool(&["add", "n", &f.netns("a")]).ok();
    assert_eq!(f.call_list(), ["main ADD", "extra ADD"]);
    let extra = &f.calls()[1].stdin;
    assert_eq!(extra["name"], "n");
    assert_eq!(extra["k"], 1);
}

#[test]
fn highest_supported_version_is_used() {
    let f = Fixture::new();
    f.plugin("p");
    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "1.1.0", "2.0.0"], "name": "n",
                "plugins": [{"type": "p", "cniVersion": "0.3.0"}]}),
    );
    let run = f.cnitool(&["add", "n", &f.netns("a")]);
    run.ok();
    assert_eq!(f.calls()[0].stdin["cniVersion"], "1.1.0");
    assert!(f.calls()[0].stdin.get("cniVersions").is_none());
    assert_eq!(run.json()["cniVersion"], "1.1.0");

    f.conflist(
        "10-n.conflist",
        &json!({"cniVersion": "3.0.0", "name": "n", "plugins": [{"type": "p"}]}),
    );
    let run = f.cnitool(&["add", "n", &f.netns("a")]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("3.0.0"), "{}", run.stderr);
}

#[test]
fn invalid_matching_configuration_is_a_config_error() {
    let f = Fixture::new();
    f.plugin("p");
    for bad in [
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}),
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "p", "capabilities": []}]}),
        json!({"cniVersion": "1.0.0", "name": "n", "disableGC": "maybe", "plugins": [{"type": "p"}]}),
    ] {
        f.conflist("10-n.conflist", &bad);
        let run = f.cnitool(&["add", "n", &f.netns("a")]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
    }
    let run = f.cnitool(&["add", "bad/name", &f.netns("a")]);
    assert_eq!(run.code, 2);
    assert!(f.calls().is_empty());
}

#[test]
fn help_and_usage() {
    let f = Fixture::new();
    for args in [&["--help"][..], &["-h"], &["help"], &["add", "--help"]] {
        let run = f.cnitool(args);
        run.ok();
        for word in [
            "NETCONFPATH",
            "CNI_PATH",
            "CAP_ARGS",
            "CNI_CACHE_DIR",
            "EXIT STATUS",
        ] {
            assert!(run.stdout.contains(word), "help lacks {word}");
        }
    }
    let run = f.cnitool(&["--version"]);
    run.ok();
    assert!(run.stdout.contains("1.1.0"));

    for args in [
        &[][..],
        &["frobnicate", "n", "/x"],
        &["add", "n"],
        &["add", "n", "/x", "y"],
        &["--nope"],
    ] {
        let run = f.cnitool(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.contains("--help"), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn missing_config_dir_is_a_config_error() {
    let f = Fixture::new();
    let run = f.cnitool_env(
        &["add", "n", "/x"],
        &[("NETCONFPATH", "/nonexistent/cnitool/net.d")],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no network configurations found"),
        "{}",
        run.stderr
    );
}
