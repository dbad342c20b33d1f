//! The sandbox must remove every namespace it made, also when a test panics.

use cni_harness::{PluginCall, Sandbox};

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[test]
fn namespaces_exist_while_alive_and_vanish_on_drop() {
    let mut sb = Sandbox::new("sb-drop");
    sb.add_container();
    sb.add_container();
    let names: Vec<String> = [sb.host(), sb.container(0), sb.container(1)]
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    for n in &names {
        assert!(netns_exists(n), "{n} exists");
    }
    // The host namespace has lo up, containers start with lo down as a runtime's do.
    assert!(sb.host().ip(&["link", "show", "lo"]).contains("UP"));
    assert!(!sb.container(0).ip(&["link", "show", "lo"]).contains(",UP"));
    drop(sb);
    for n in &names {
        assert!(!netns_exists(n), "{n} removed");
    }
}

#[test]
fn namespaces_vanish_when_the_test_panics() {
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let mut sb = Sandbox::new("sb-panic");
        sb.add_container();
        names.lock().unwrap().extend([
            sb.host().name().to_string(),
            sb.container(0).name().to_string(),
        ]);
        panic!("test failure inside the sandbox");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 2);
    for n in &names {
        assert!(!netns_exists(n), "{n} removed after panic");
    }
}

#[test]
fn commands_run_inside_the_host_namespace() {
    let sb = Sandbox::new("sb-cmd");
    sb.host().ip(&["link", "add", "sbtest0", "type", "bridge"]);
    // `ip link` run through the sandbox sees the bridge; the machine's own netns does not.
    let out = sb
        .host_command("ip")
        .args(["-br", "link"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sbtest0"));
    let here = std::process::Command::new("ip")
        .args(["-br", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&here.stdout).contains("sbtest0"));
}

#[test]
fn plugin_call_passes_env_and_stdin_and_unset_removes_variables() {
    let sb = Sandbox::new("sb-plugin");
    let script = std::env::temp_dir().join(format!("cni-harness-echo-{}", std::process::id()));
    std::fs::write(
        &script,
        "#!/bin/sh\nread -r line\nprintf '{\"cmd\":\"%s\",\"id\":\"%s\",\"netns\":\"%s\",\"stdin\":%s}' \"$CNI_COMMAND\" \"${CNI_CONTAINERID-unset}\" \"$(readlink /proc/self/ns/net)\" \"$line\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let out = PluginCall::new(&script, "ADD")
        .container("c1", &sb.host().path(), "eth0")
        .unset("CNI_CONTAINERID")
        .stdin("{\"a\":1}\n")
        .run_in(sb.host());
    let v = out.result();
    std::fs::remove_file(&script).unwrap();
    assert_eq!(v["cmd"], "ADD");
    assert_eq!(v["id"], "unset");
    assert_eq!(v["stdin"]["a"], 1);
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        v["netns"],
        own.display().to_string(),
        "ran inside the sandbox"
    );
    // Not just "not ours" (an empty readlink would do): exactly the
    // sandbox's host namespace, whose inode its bind mount carries.
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(sb.host().path()).unwrap().ino();
    assert_eq!(
        v["netns"],
        format!("net:[{ino}]"),
        "ran in {}",
        sb.host().name()
    );
}
