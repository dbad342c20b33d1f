//! Shared fixture for the host-local integration tests: a sandbox (the plugin
//! runs in its host netns, CNI_NETNS names its container netns) and a temp
//! data dir. Nothing touches /var/lib/cni.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cni_harness::{PluginCall, PluginOutput, Sandbox};
use serde_json::{json, Value};

pub const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// What the reference (containernetworking-plugins 1.1.1) speaks, from 0.3.0 on.
pub const REFERENCE_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
pub const NET: &str = "hlnet";

pub fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_host-local"))
}

/// The Debian reference binary; the test fails (never skips) without it.
pub fn reference() -> PathBuf {
    let p = PathBuf::from("/usr/lib/cni/host-local");
    assert!(
        p.is_file(),
        "{} is missing: install the Debian package `containernetworking-plugins`",
        p.display()
    );
    p
}

pub struct Fixture {
    pub sb: Sandbox,
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        let mut sb = Sandbox::new(tag);
        sb.add_container();
        Fixture {
            sb,
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A data dir under the temp dir (several per test are fine).
    pub fn data_dir(&self, which: &str) -> PathBuf {
        self.tmp.path().join(which)
    }

    pub fn net_dir(&self, which: &str) -> PathBuf {
        self.data_dir(which).join(NET)
    }

    /// `{cniVersion, name, type, ipam: {type, dataDir, ..ipam}}`.
    pub fn conf(&self, which: &str, version: &str, ipam: Value) -> Value {
        let mut ipam = ipam;
        ipam["type"] = json!("host-local");
        if ipam.get("dataDir").is_none() {
            ipam["dataDir"] = json!(self.data_dir(which));
        }
        json!({"cniVersion": version, "name": NET, "type": "host-local", "ipam": ipam})
    }

    pub fn call(&self, bin: &Path, cmd: &str, id: &str, ifname: &str, conf: &Value) -> PluginCall {
        PluginCall::new(bin, cmd)
            .container(id, &self.sb.container(0).path(), ifname)
            .config(conf)
    }

    pub fn run(&self, bin: &Path, cmd: &str, id: &str, ifname: &str, conf: &Value) -> PluginOutput {
        self.call(bin, cmd, id, ifname, conf).run_in(self.sb.host())
    }

    pub fn add(&self, id: &str, conf: &Value) -> Value {
        self.run(&ours(), "ADD", id, "eth0", conf).result()
    }

    /// STATUS or GC the way libcni calls them: empty container variables.
    pub fn run_netwide(&self, bin: &Path, cmd: &str, conf: &Value) -> PluginOutput {
        PluginCall::new(bin, cmd)
            .env("CNI_CONTAINERID", "")
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "")
            .config(conf)
            .run_in(self.sb.host())
    }
}

/// Every file of a directory (recursively) with its bytes; empty when the
/// directory does not exist.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let e = e.expect("dir entry");
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Only the lease files (named like an address): name -> content.
pub fn leases(dir: &Path) -> BTreeMap<String, String> {
    snapshot(dir)
        .into_iter()
        .filter(|(k, _)| k.parse::<std::net::IpAddr>().is_ok())
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// The addresses of a result, as strings.
pub fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|i| i["address"].as_str().expect("address").to_string())
                .collect()
        })
        .unwrap_or_default()
}
