//! ADD, CHECK and DEL of a conflist against fake plugins.

mod common;

use base64::Engine;
use common::{container_id, mode, Fixture};
use serde_json::{json, Value};

const CAP_ARGS: &str = r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000},"unused":true}"#;
const CNI_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAME=web";

fn pa_result() -> Value {
    json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
           "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}]})
}

fn pc_result() -> Value {
    json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
           "ips": [{"address": "10.1.0.2/24", "interface": 0}],
           "dns": {"nameservers": ["10.1.0.1"]}})
}

/// net1: pa (portMappings) -> pb (no capabilities) -> pc (bandwidth).
fn three_plugins(version: &str) -> Fixture {
    let f = Fixture::new();
    f.plugins(&["pa", "pb", "pc"]);
    f.conflist(
        "10-net1.conflist",
        &json!({
            "cniVersion": version,
            "name": "net1",
            "plugins": [
                {"type": "pa", "capabilities": {"portMappings": true, "bandwidth": false}, "bridge": "cni0"},
                {"type": "pb"},
                {"type": "pc", "capabilities": {"bandwidth": true}}
            ]
        }),
    );
    f.respond_json("pa", "ADD", &pa_result(), 0);
    f.respond_json("pc", "ADD", &pc_result(), 0);
    f
}

fn add(f: &Fixture, netns: &str) -> common::Run {
    f.cnitool_env(
        &["add", "net1", netns],
        &[("CAP_ARGS", CAP_ARGS), ("CNI_ARGS", CNI_ARGS)],
    )
}

#[test]
fn add_runs_plugins_in_order_chaining_prev_result() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    let run = add(&f, &ns);
    run.ok();
    assert_eq!(run.json(), pc_result());
    assert_eq!(f.call_list(), ["pa ADD", "pb ADD", "pc ADD"]);

    let calls = f.calls();
    let cid = container_id(&ns);
    for c in &calls {
        assert_eq!(c.env("CNI_COMMAND"), "ADD");
        assert_eq!(c.env("CNI_CONTAINERID"), cid);
        assert_eq!(c.env("CNI_NETNS"), ns);
        assert_eq!(c.env("CNI_IFNAME"), "eth0");
        assert_eq!(c.env("CNI_ARGS"), CNI_ARGS);
        assert_eq!(c.env("CNI_PATH"), f.bin.to_str().unwrap());
        // The plugin inherits cnitool's environment.
        assert_eq!(c.env("FAKE_STATE"), f.state.to_str().unwrap());
        assert_eq!(c.stdin["name"], "net1");
        assert_eq!(c.stdin["cniVersion"], "1.0.0");
        assert!(c.stdin.get("capabilities").is_none(), "{}", c.stdin);
    }
    assert!(calls[0].stdin.get("prevResult").is_none());
    assert_eq!(calls[0].stdin["bridge"], "cni0");
    assert_eq!(calls[1].stdin["prevResult"], pa_result());
    // pb printed no cniVersion: it is taken to be the config's.
    assert_eq!(
        calls[2].stdin["prevResult"],
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "pb"}]})
    );
}

#[test]
fn runtime_config_holds_only_declared_capabilities() {
    let f = three_plugins("1.0.0");
    add(&f, &f.netns("a")).ok();
    let calls = f.calls();
    let caps: Value = serde_json::from_str(CAP_ARGS).unwrap();
    assert_eq!(
        calls[0].stdin["runtimeConfig"],
        json!({"portMappings": caps["portMappings"]})
    );
    assert!(calls[1].stdin.get("runtimeConfig").is_none());
    assert_eq!(
        calls[2].stdin["runtimeConfig"],
        json!({"bandwidth": caps["bandwidth"]})
    );

    // Without CAP_ARGS nobody gets a runtimeConfig.
    f.clear_calls();
    f.cnitool(&["add", "net1", &f.netns("b")]).ok();
    assert!(f
        .calls()
        .iter()
        .all(|c| c.stdin.get("runtimeConfig").is_none()));
}

#[test]
fn add_writes_the_cache_in_libcni_format() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    let cid = container_id(&ns);
    let file = f.cache_file("net1", &cid, "eth0");
    assert_eq!(mode(&f.cache.join("results")), 0o700);
    assert_eq!(mode(&file), 0o600);

    let text = std::fs::read_to_string(&file).unwrap();
    let cached: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = cached
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    assert!(
        text.starts_with(r#"{"kind":"cniCacheV1","containerId":"#),
        "{text}"
    );
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], cid);
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["networkName"], "net1");
    assert_eq!(cached["netns"], ns);
    assert_eq!(
        cached["cniArgs"],
        json!([["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]])
    );
    assert_eq!(
        cached["capabilityArgs"],
        serde_json::from_str::<Value>(CAP_ARGS).unwrap()
    );
    assert_eq!(cached["result"], pc_result());
    let config = base64::engine::general_purpose::STANDARD
        .decode(cached["config"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        config,
        std::fs::read(f.netd.join("10-net1.conflist")).unwrap()
    );
}

#[test]
fn del_runs_in_reverse_with_cached_result_and_removes_cache() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    let file = f.cache_file("net1", &container_id(&ns), "eth0");
    assert!(file.exists());
    f.clear_calls();

    let run = f.cnitool_env(
        &["del", "net1", &ns],
        &[("CAP_ARGS", CAP_ARGS), ("CNI_ARGS", CNI_ARGS)],
    );
    run.ok();
    assert_eq!(run.stdout, "");
    assert_eq!(f.call_list(), ["pc DEL", "pb DEL", "pa DEL"]);
    for c in f.calls() {
        assert_eq!(c.env("CNI_COMMAND"), "DEL");
        assert_eq!(c.env("CNI_NETNS"), ns);
        assert_eq!(c.env("CNI_ARGS"), CNI_ARGS);
        assert_eq!(c.stdin["prevResult"], pc_result());
    }
    assert!(f.calls()[0].stdin["runtimeConfig"]
        .get("bandwidth")
        .is_some());
    assert!(!file.exists());

    // A second DEL still succeeds (no cache now: no prevResult).
    f.clear_calls();
    f.cnitool(&["del", "net1", &ns]).ok();
    assert_eq!(f.call_list(), ["pc DEL", "pb DEL", "pa DEL"]);
    assert!(f
        .calls()
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
}

#[test]
fn del_with_corrupt_cache_succeeds_without_prev_result() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    let file = f.cache_file("net1", &container_id(&ns), "eth0");
    for garbage in [
        "{ this is not json",
        r#"{"kind":"cniCacheV1","result":{"cniVersion":"99"}}"#,
        "",
    ] {
        std::fs::write(&file, garbage).unwrap();
        f.clear_calls();
        let run = f.cnitool(&["del", "net1", &ns]);
        run.ok();
        assert!(run.stderr.contains("without prevResult"), "{}", run.stderr);
        assert_eq!(f.call_list(), ["pc DEL", "pb DEL", "pa DEL"]);
        assert!(f
            .calls()
            .iter()
            .all(|c| c.stdin.get("prevResult").is_none()));
        assert!(!file.exists());
    }
}

#[test]
fn del_with_missing_cache_succeeds() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("never-added");
    let run = f.cnitool(&["del", "net1", &ns]);
    run.ok();
    assert_eq!(f.call_list(), ["pc DEL", "pb DEL", "pa DEL"]);
    assert!(f
        .calls()
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
}

#[test]
fn del_without_netns_needs_a_container_id() {
    let f = three_plugins("1.0.0");
    let run = f.cnitool(&["del", "net1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(f.calls().is_empty());

    f.cnitool(&["del", "net1", "--container-id", "abc123"]).ok();
    for c in f.calls() {
        assert_eq!(c.env("CNI_NETNS"), "");
        assert_eq!(c.env("CNI_CONTAINERID"), "abc123");
    }
}

#[test]
fn del_converts_the_cached_result_to_the_config_version() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    // The configuration moves to 0.4.0 after the ADD.
    let conflist = f.netd.join("10-net1.conflist");
    let text = std::fs::read_to_string(&conflist)
        .unwrap()
        .replace("\"1.0.0\"", "\"0.4.0\"");
    std::fs::write(&conflist, text).unwrap();
    f.clear_calls();
    f.cnitool(&["del", "net1", &ns]).ok();
    let prev = &f.calls()[0].stdin["prevResult"];
    assert_eq!(prev["cniVersion"], "0.4.0");
    assert_eq!(prev["ips"][0]["version"], "4");
}

#[test]
fn del_below_040_gets_no_prev_result_but_cache_is_removed() {
    let f = three_plugins("0.3.1");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    let file = f.cache_file("net1", &container_id(&ns), "eth0");
    assert!(file.exists());
    f.clear_calls();
    f.cnitool(&["del", "net1", &ns]).ok();
    assert_eq!(f.call_list(), ["pc DEL", "pb DEL", "pa DEL"]);
    assert!(f
        .calls()
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
    assert!(!file.exists());
}

#[test]
fn failing_del_keeps_the_cache() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    f.respond_json("pb", "DEL", &json!({"code": 11, "msg": "try later"}), 1);
    f.clear_calls();
    let run = f.cnitool(&["del", "net1", &ns]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("plugin pb DEL failed: try later (code 11)"),
        "{}",
        run.stderr
    );
    assert_eq!(f.call_list(), ["pc DEL", "pb DEL"]);
    assert!(f.cache_file("net1", &container_id(&ns), "eth0").exists());
}

#[test]
fn add_stops_at_the_first_failing_plugin() {
    let f = three_plugins("1.0.0");
    f.respond_json(
        "pb",
        "ADD",
        &json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad subnet", "details": "10.0.0.0/33 is not a network"}),
        1,
    );
    let ns = f.netns("a");
    let run = add(&f, &ns);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(
            "cnitool: plugin pb ADD failed: bad subnet (code 7): 10.0.0.0/33 is not a network"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cnitool del"), "{}", run.stderr);
    // libcni does not roll back: no DEL, and pc never ran.
    assert_eq!(f.call_list(), ["pa ADD", "pb ADD"]);
    assert!(!f.cache_file("net1", &container_id(&ns), "eth0").exists());
}

#[test]
fn garbage_from_plugins_is_reported_not_panicked_on() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");

    f.respond("pb", "ADD", "Segmentation fault (core dumped)", 139);
    let run = add(&f, &ns);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugin pb ADD failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Segmentation fault"), "{}", run.stderr);

    f.respond("pb", "ADD", "", 1);
    f.stderr_of("pb", "ADD", "boom on stderr");
    let run = add(&f, &ns);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("exited with status 1: boom on stderr"),
        "{}",
        run.stderr
    );

    f.respond("pb", "ADD", "all good!", 0);
    let run = add(&f, &ns);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugin pb ADD failed: invalid result"),
        "{}",
        run.stderr
    );

    f.respond("pb", "ADD", "\u{0}\u{1}\u{2}", 0);
    assert_eq!(add(&f, &ns).code, 1);
    f.respond("pb", "ADD", r#"{"cniVersion":"42.0.0"}"#, 0);
    assert_eq!(add(&f, &ns).code, 1);
    assert!(!f.cache_file("net1", &container_id(&ns), "eth0").exists());
}

#[test]
fn plugin_stderr_is_passed_through() {
    let f = three_plugins("1.0.0");
    f.stderr_of("pa", "ADD", "hello from pa\n");
    let run = add(&f, &f.netns("a"));
    run.ok();
    assert!(run.stderr.contains("hello from pa"), "{}", run.stderr);
    assert!(!run.stdout.contains("hello"));
}

#[test]
fn check_runs_in_order_with_the_cached_result() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    f.clear_calls();
    let run = f.cnitool_env(&["check", "net1", &ns], &[("CAP_ARGS", CAP_ARGS)]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert_eq!(f.call_list(), ["pa CHECK", "pb CHECK", "pc CHECK"]);
    for c in f.calls() {
        assert_eq!(c.env("CNI_COMMAND"), "CHECK");
        assert_eq!(c.stdin["prevResult"], pc_result());
    }
    assert!(f.calls()[0].stdin.get("runtimeConfig").is_some());

    // CHECK stops at the first failure.
    f.respond_json("pa", "CHECK", &json!({"code": 100, "msg": "veth gone"}), 1);
    f.clear_calls();
    let run = f.cnitool(&["check", "net1", &ns]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("plugin pa CHECK failed: veth gone (code 100)"),
        "{}",
        run.stderr
    );
    assert_eq!(f.call_list(), ["pa CHECK"]);
}

#[test]
fn check_is_rejected_below_040() {
    let f = three_plugins("0.3.1");
    let ns = f.netns("a");
    add(&f, &ns).ok();
    f.clear_calls();
    let run = f.cnitool(&["check", "net1", &ns]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("CHECK"), "{}", run.stderr);
    assert!(run.stderr.contains("0.3.1"), "{}", run.stderr);
    assert!(f.calls().is_empty());
}

#[test]
fn check_without_cache_fails_and_disable_check_skips() {
    let f = three_plugins("1.0.0");
    let run = f.cnitool(&["check", "net1", &f.netns("never")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no cached result"), "{}", run.stderr);
    assert!(f.calls().is_empty());

    f.conflist(
        "10-net1.conflist",
        &json!({"cniVersion": "1.0.0", "name": "net1", "disableCheck": true, "plugins": [{"type": "pa"}]}),
    );
    let run = f.cnitool(&["check", "net1", &f.netns("never")]);
    run.ok();
    assert!(run.stderr.contains("disableCheck"), "{}", run.stderr);
    assert!(f.calls().is_empty());
}

#[test]
fn missing_plugin_binary_fails_before_anything_runs() {
    let f = three_plugins("1.0.0");
    std::fs::remove_file(f.bin.join("pc")).unwrap();
    let run = f.cnitool(&["add", "net1", &f.netns("a")]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("\"pc\""), "{}", run.stderr);
    assert!(f.calls().is_empty());

    // Non-executable files and CNI_PATH order.
    let other = f.root.join("bin2");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(f.bin.join("pc"), "#!/bin/sh\nexit 9\n").unwrap(); // mode 0644: skipped
    std::fs::copy(f.bin.join("pb"), other.join("pc")).unwrap();
    let text = std::fs::read_to_string(other.join("pc"))
        .unwrap()
        .replace("name=pb", "name=pc");
    std::fs::write(other.join("pc"), text).unwrap();
    let path = format!("{}:{}", f.bin.display(), other.display());
    let run = f.cnitool_env(&["add", "net1", &f.netns("a")], &[("CNI_PATH", &path)]);
    run.ok();
    assert_eq!(f.call_list(), ["pa ADD", "pb ADD", "pc ADD"]);
    assert_eq!(f.calls()[2].env("CNI_PATH"), path);
}

#[test]
fn timeout_kills_a_hung_plugin() {
    let f = three_plugins("1.0.0");
    f.sleep_in("pb", "ADD", 60);
    let start = std::time::Instant::now();
    let run = f.cnitool_env(
        &["add", "net1", &f.netns("a")],
        &[("CNI_PLUGIN_TIMEOUT", "0.5")],
    );
    assert_eq!(run.code, 1);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        run.stderr
            .contains("plugin pb ADD failed: timed out after 0.5s"),
        "{}",
        run.stderr
    );
    assert_eq!(f.call_list(), ["pa ADD", "pb ADD"]);

    let run = f.cnitool_env(
        &["add", "net1", &f.netns("a")],
        &[("CNI_PLUGIN_TIMEOUT", "soon")],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn relative_netns_and_ifname_choices() {
    let f = three_plugins("1.0.0");
    f.cnitool(&["add", "net1", "netns/rel"]).ok();
    let abs = f.root.join("netns/rel").to_string_lossy().into_owned();
    let c = &f.calls()[0];
    assert_eq!(c.env("CNI_NETNS"), abs);
    assert_eq!(c.env("CNI_CONTAINERID"), container_id(&abs));

    f.clear_calls();
    f.cnitool_env(&["add", "net1", &abs], &[("CNI_IFNAME", "net7")])
        .ok();
    assert_eq!(f.calls()[0].env("CNI_IFNAME"), "net7");
    assert!(f.cache_file("net1", &container_id(&abs), "net7").exists());

    f.clear_calls();
    f.cnitool_env(
        &["-i", "net8", "add", "net1", &abs],
        &[("CNI_IFNAME", "net7")],
    )
    .ok();
    assert_eq!(f.calls()[0].env("CNI_IFNAME"), "net8");

    let run = f.cnitool_env(
        &["add", "net1", &abs],
        &[("CNI_IFNAME", "way-too-long-name0")],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn bad_cni_args_or_cap_args_are_usage_errors() {
    let f = three_plugins("1.0.0");
    let ns = f.netns("a");
    for (k, v) in [
        ("CNI_ARGS", "NOEQUALS"),
        ("CNI_ARGS", "A=1;"),
        ("CAP_ARGS", "[1,2]"),
        ("CAP_ARGS", "{broken"),
    ] {
        let run = f.cnitool_env(&["add", "net1", &ns], &[(k, v)]);
        assert_eq!(run.code, 2, "{k}={v}: {}", run.stderr);
        assert!(run.stderr.contains(k), "{}", run.stderr);
    }
    assert!(f.calls().is_empty());
}
