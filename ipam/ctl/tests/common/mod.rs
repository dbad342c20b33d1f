//! Shared by the ipamctl tests: a real etcd (the harness fixture), the real
//! etcd-ipam plugin binary to populate it, the ipamctl binary, and an
//! independent look at what etcd holds (the etcd-ipam library's one-revision
//! read).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use cni::Cidr;
use cni_harness::ctl::run_ctl;
pub use cni_harness::ctl::CtlOutput;
use cni_harness::{bins, PluginCall, PluginOutput, Sandbox};
use etcd_ipam::config::EtcdConfig;
use etcd_ipam::etcd::{block_on, Etcd};
use etcd_ipam::keys::Keys;
use etcd_ipam::model::{Block, HandleRecord, PoolRecord};
use etcd_ipam::ops::{read_network, NetworkView};
use etcd_ipam::plan::Entry;
use serde_json::{json, Value};

pub const NET: &str = "net1";

/// A container namespace for CNI_NETNS (IPAM never enters it, but the
/// dispatcher wants a real one) and a private lock directory.
pub struct Env {
    pub sandbox: Sandbox,
    pub locks: tempfile::TempDir,
    pub endpoints: Vec<String>,
}

impl Env {
    pub fn new(tag: &str, endpoints: Vec<String>) -> Env {
        let mut sandbox = Sandbox::new(tag);
        sandbox.add_container();
        Env {
            sandbox,
            locks: tempfile::tempdir().expect("temp dir"),
            endpoints,
        }
    }

    fn call(&self, command: &str, conf: &Value, id: &str, ifname: &str) -> PluginOutput {
        PluginCall::new(bins::bin("etcd-ipam"), command)
            .container(id, &self.sandbox.container(0).path(), ifname)
            .env(
                "CNI_ETCD_IPAM_LOCK_DIR",
                &self.locks.path().to_string_lossy(),
            )
            .config(conf)
            .run_here()
    }

    /// ADD through the plugin; the addresses it returned (with prefix).
    pub fn add(&self, conf: &Value, id: &str, ifname: &str) -> Vec<String> {
        let r = self.call("ADD", conf, id, ifname).result();
        r["ips"]
            .as_array()
            .unwrap_or_else(|| panic!("no ips in {r}"))
            .iter()
            .map(|ip| ip["address"].as_str().expect("address").to_string())
            .collect()
    }

    pub fn add_fails(&self, conf: &Value, id: &str, code: u64) {
        self.call("ADD", conf, id, "eth0").expect_error(code);
    }

    pub fn del(&self, conf: &Value, id: &str, ifname: &str) {
        let out = self.call("DEL", conf, id, ifname);
        assert!(out.success(), "DEL {id}/{ifname}: {out:?}");
    }

    /// A plugin config of network `net` for `node`, `ipam` keys merged over
    /// the defaults (one IPv4 range 10.80.0.0/16).
    pub fn conf(&self, net: &str, node: &str, extra: Value) -> Value {
        let mut ipam = json!({
            "type": "etcd-ipam",
            "nodeName": node,
            "etcd": {"endpoints": self.endpoints, "prefix": "/cni-ipam", "timeoutMs": 5000},
            "ranges": [[{"subnet": "10.80.0.0/16"}]],
        });
        if let (Some(base), Some(extra)) = (ipam.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        json!({"cniVersion": "1.1.0", "name": net, "type": "etcd-ipam", "ipam": ipam})
    }

    /// Runs ipamctl against this etcd.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        ctl_with(&self.endpoints, args, None)
    }

    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> CtlOutput {
        ctl_with(&self.endpoints, args, Some(stdin))
    }

    /// How the library reaches this etcd.
    pub fn etcd_config(&self) -> EtcdConfig {
        EtcdConfig {
            endpoints: self.endpoints.clone(),
            prefix: "/cni-ipam".into(),
            timeout: Duration::from_secs(10),
            tls: None,
            username: None,
            password: None,
        }
    }

    /// A connection for the library's operations (within 10 s).
    pub async fn connect(&self) -> Result<Etcd, cni::Error> {
        let cfg = self.etcd_config();
        Etcd::connect(&cfg, std::time::Instant::now() + cfg.timeout).await
    }

    /// Everything of network `net`, read at one revision.
    pub fn state(&self, net: &str) -> State {
        let view = block_on(async {
            let mut etcd = self.connect().await?;
            read_network(&mut etcd, &Keys::new("/cni-ipam", net)).await
        })
        .expect("read the network");
        State::from(view)
    }
}

/// ipamctl's tables, read back from its output.
pub trait Tables {
    /// The tables printed (exit 0 asserted), split at blank lines; each a
    /// list of rows of cells (cells hold no spaces), heading first.
    fn tables(&self) -> Vec<Vec<Vec<String>>>;
}

impl Tables for CtlOutput {
    fn tables(&self) -> Vec<Vec<Vec<String>>> {
        self.ok()
            .split("\n\n")
            .map(|t| {
                t.lines()
                    .map(|l| l.split_whitespace().map(str::to_string).collect())
                    .collect()
            })
            .collect()
    }
}

/// Runs ipamctl against `endpoints`.
pub fn ctl_with(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> CtlOutput {
    run_ctl("ipamctl", endpoints, args, stdin)
}

/// A network's keys and values with their mod revisions: equal states mean
/// nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub pool: Option<Entry<PoolRecord>>,
    pub claims: BTreeMap<Cidr, String>,
    pub blocks: Vec<Entry<Block>>,
    pub handles: Vec<Entry<HandleRecord>>,
}

impl From<NetworkView> for State {
    fn from(v: NetworkView) -> State {
        State {
            pool: v.pool,
            claims: v.claims,
            blocks: v.blocks,
            handles: v.handles,
        }
    }
}

impl State {
    /// `node/container/ifname` of every handle, in key order.
    pub fn handle_ids(&self) -> Vec<String> {
        self.handles.iter().map(|h| h.value.id()).collect()
    }

    /// Every allocation of every block: address -> holder.
    pub fn allocations(&self) -> BTreeMap<String, String> {
        self.blocks
            .iter()
            .flat_map(|b| b.value.allocations.iter())
            .map(|(ip, h)| (ip.to_string(), h.clone()))
            .collect()
    }

    pub fn handle(&self, id: &str) -> &HandleRecord {
        &self
            .handles
            .iter()
            .find(|h| h.value.id() == id)
            .unwrap_or_else(|| panic!("no handle {id}: {self:#?}"))
            .value
    }
}

/// `10.80.3.7/16` -> `10.80.3.7`.
pub fn bare(address: &str) -> String {
    address.split('/').next().unwrap_or(address).to_string()
}

/// The block (`/prefix`) an IPv4 address is in, as `a.b.c.d/prefix`.
pub fn block_of(address: &str, prefix: u32) -> String {
    let ip: std::net::Ipv4Addr = bare(address).parse().expect("IPv4 address");
    let mask = u32::MAX << (32 - prefix);
    format!(
        "{}/{prefix}",
        std::net::Ipv4Addr::from(u32::from(ip) & mask)
    )
}

/// Strings of a JSON array of strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}
