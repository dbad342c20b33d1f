//! Shared by the etcd-ipam integration tests: a real etcd (the harness
//! fixture), configs, plugin calls, and a look at what etcd holds.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cni_harness::{bins, PluginCall, PluginOutput, Sandbox};
use serde_json::{json, Value};

pub const NET: &str = "net1";

/// A container namespace for CNI_NETNS (IPAM never touches it, but the
/// dispatcher requires a real namespace other than its own) and a private
/// lock directory.
pub struct Env {
    pub sandbox: Sandbox,
    pub locks: tempfile::TempDir,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let mut sandbox = Sandbox::new(tag);
        sandbox.add_container();
        Env {
            sandbox,
            locks: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn netns(&self) -> PathBuf {
        self.sandbox.container(0).path()
    }

    /// A plugin call for `command` as `node`'s runtime makes it.
    pub fn call(&self, command: &str, conf: &Value, id: &str, ifname: &str) -> PluginCall {
        PluginCall::new(bins::bin("etcd-ipam"), command)
            .container(id, &self.netns(), ifname)
            .env(
                "CNI_ETCD_IPAM_LOCK_DIR",
                &self.locks.path().to_string_lossy(),
            )
            .config(conf)
    }

    pub fn add(&self, conf: &Value, id: &str) -> PluginOutput {
        self.call("ADD", conf, id, "eth0").run_here()
    }

    pub fn del(&self, conf: &Value, id: &str) -> PluginOutput {
        self.call("DEL", conf, id, "eth0").run_here()
    }

    /// GC/STATUS: no container variables.
    pub fn call_net(&self, command: &str, conf: &Value) -> PluginOutput {
        PluginCall::new(bins::bin("etcd-ipam"), command)
            .env(
                "CNI_ETCD_IPAM_LOCK_DIR",
                &self.locks.path().to_string_lossy(),
            )
            .config(conf)
            .run_here()
    }
}

/// An etcd-ipam config for `node` with `ipam` keys merged over the defaults
/// (one IPv4 range 10.80.0.0/16).
pub fn conf(endpoints: &[String], node: &str, extra: Value) -> Value {
    let mut ipam = json!({
        "type": "etcd-ipam",
        "nodeName": node,
        "etcd": {"endpoints": endpoints, "prefix": "/cni-ipam", "timeoutMs": 5000},
        "ranges": [[{"subnet": "10.80.0.0/16"}]],
    });
    if let (Some(base), Some(extra)) = (ipam.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"cniVersion": "1.1.0", "name": NET, "type": "etcd-ipam", "ipam": ipam})
}

/// The addresses (without prefix) an ADD result lists.
pub fn addrs(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips in {result}"))
        .iter()
        .map(|ip| {
            let a = ip["address"].as_str().expect("address");
            a.split('/').next().unwrap_or(a).to_string()
        })
        .collect()
}

/// Every key under `prefix` and its value, read with a real etcd client.
pub fn dump(endpoints: &[String], prefix: &str) -> BTreeMap<String, Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = etcd_client::Client::connect(endpoints, None)
            .await
            .expect("connect to etcd");
        let resp = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .expect("get");
        resp.kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let v = serde_json::from_slice(kv.value())
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(kv.value()).into()));
                (key, v)
            })
            .collect()
    })
}

/// Keys of one kind (`handles`, `blocks`, `claims`) of network NET.
pub fn of_kind(all: &BTreeMap<String, Value>, kind: &str) -> BTreeMap<String, Value> {
    let p = format!("/cni-ipam/{NET}/{kind}/");
    all.iter()
        .filter(|(k, _)| k.starts_with(&p))
        .map(|(k, v)| (k[p.len()..].to_string(), v.clone()))
        .collect()
}

/// Total allocations recorded in blocks.
pub fn allocations(all: &BTreeMap<String, Value>) -> usize {
    of_kind(all, "blocks")
        .values()
        .map(|b| b["allocations"].as_object().map_or(0, |m| m.len()))
        .sum()
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The gRPC calls etcd has answered, by method (`Txn`, `Range`, ...), from
/// its `/metrics` on the (plain HTTP) client URL.
pub fn grpc_calls(endpoint: &str) -> BTreeMap<String, u64> {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to etcd /metrics");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request /metrics");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read /metrics");
    let mut calls = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
    {
        let method = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64);
        *calls.entry(method).or_insert(0) += n;
    }
    calls
}

/// The calls between two [`grpc_calls`] readings, nonzero ones only.
pub fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(m, n)| (m.clone(), n - before.get(m).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}
