//! cnitool driving our real loopback plugin in a throwaway namespace, as a
//! runtime would: ADD, CHECK and DEL with the libcni result cache.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use cni_harness::{bins, Netns, Sandbox};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

struct Fixture {
    sb: Sandbox,
    dir: PathBuf,
}

impl Fixture {
    fn new(tag: &str, conflist: Value) -> Fixture {
        let mut sb = Sandbox::new(tag);
        sb.add_container();
        let dir = std::env::temp_dir().join(format!("cnitool-lo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        std::fs::write(dir.join("net.d/10-lo.conflist"), conflist.to_string()).unwrap();
        Fixture { sb, dir }
    }

    fn ctr(&self) -> &Netns {
        self.sb.container(0)
    }

    fn cnitool(&self, args: &[&str]) -> Output {
        // Make sure the plugin we drive is built (cargo builds cnitool for its
        // own tests, loopback only with the workspace).
        bins::bin("loopback");
        self.sb
            .host_command(env!("CARGO_BIN_EXE_cnitool"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.dir.join("net.d"))
            .env("CNI_PATH", bins::plugin_dir())
            .env("CNI_CACHE_DIR", self.dir.join("cache"))
            .output()
            .unwrap()
    }

    fn cache_file(&self, net: &str) -> PathBuf {
        let path = self.ctr().path();
        let digest = Sha512::digest(path.to_string_lossy().as_bytes());
        let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
        self.dir
            .join("cache/results")
            .join(format!("{net}-cnitool-{hex}-eth0"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cnitool failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lo_up(ns: &Netns) -> bool {
    ns.ip_json(&["link", "show", "lo"])[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_check_del_with_the_result_cache() {
    let f = Fixture::new(
        "cnitool-lo",
        json!({"cniVersion": "1.1.0", "name": "lonet", "plugins": [{"type": "loopback"}]}),
    );
    let netns = f.ctr().path().display().to_string();
    assert!(!lo_up(f.ctr()));

    let result: Value = serde_json::from_str(&ok(&f.cnitool(&["add", "lonet", &netns]))).unwrap();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["interfaces"][0]["name"], "lo");
    assert_eq!(result["interfaces"][0]["sandbox"], netns);
    assert_eq!(result["ips"][0]["address"], "127.0.0.1/8");
    assert!(lo_up(f.ctr()), "ADD brought lo up");

    let cache = f.cache_file("lonet");
    assert!(cache.is_file(), "cache written at {}", cache.display());
    assert_eq!(mode(&cache), 0o600);
    assert_eq!(mode(cache.parent().unwrap()), 0o700);
    let entry: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(entry["kind"], "cniCacheV1");
    assert_eq!(entry["networkName"], "lonet");
    assert_eq!(entry["ifName"], "eth0");
    assert_eq!(entry["result"], result);

    ok(&f.cnitool(&["check", "lonet", &netns]));
    // CHECK sees tampering.
    f.ctr().ip(&["link", "set", "lo", "down"]);
    assert!(!f.cnitool(&["check", "lonet", &netns]).status.success());
    f.ctr().ip(&["link", "set", "lo", "up"]);

    ok(&f.cnitool(&["del", "lonet", &netns]));
    assert!(!lo_up(f.ctr()), "DEL brought lo down");
    assert!(!cache.exists(), "cache removed after DEL");
    // DEL again, with no cache left, still succeeds.
    ok(&f.cnitool(&["del", "lonet", &netns]));
}

#[test]
fn every_version_of_the_list_round_trips_and_corrupt_cache_does_not_block_del() {
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let f = Fixture::new(
            "cnitool-ver",
            json!({"cniVersion": version, "name": "lonet", "plugins": [{"type": "loopback"}]}),
        );
        let netns = f.ctr().path().display().to_string();
        let result: Value =
            serde_json::from_str(&ok(&f.cnitool(&["add", "lonet", &netns]))).unwrap();
        assert_eq!(result["cniVersion"], version);
        std::fs::write(f.cache_file("lonet"), b"{ not json").unwrap();
        ok(&f.cnitool(&["del", "lonet", &netns]));
        assert!(
            !lo_up(f.ctr()),
            "{version}: DEL ran despite the corrupt cache"
        );
        assert!(!f.cache_file("lonet").exists());
    }
}

#[test]
fn del_after_the_namespace_is_gone_succeeds() {
    let mut f = Fixture::new(
        "cnitool-gone",
        json!({"cniVersion": "1.0.0", "name": "lonet", "plugins": [{"type": "loopback"}]}),
    );
    let netns = f.ctr().path().display().to_string();
    ok(&f.cnitool(&["add", "lonet", &netns]));
    let cache = f.cache_file("lonet");
    assert!(cache.exists());
    f.sb.container_mut(0).delete();
    ok(&f.cnitool(&["del", "lonet", &netns]));
    assert!(!cache.exists());
}
