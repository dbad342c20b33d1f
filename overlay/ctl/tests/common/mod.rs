//! Shared by the overlayctl tests: a real etcd (the harness fixture),
//! node records put there as overlayd puts them (the JSON of a
//! `NodeRecord`, attached to a lease), the overlayctl binary, and a look at
//! etcd's keys that does not go through overlayctl.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cni_harness::ctl::run_ctl;
pub use cni_harness::ctl::CtlOutput;
use cni_harness::EtcdServer;
use etcd_client::{Client, GetOptions, PutOptions};
use overlay_core::{Keys, NodeRecord};
use overlayctl::connect::{Etcd, Settings};
use serde_json::Value;

pub const PREFIX: &str = "/overlay";

/// Runs `f` on a current-thread runtime.
pub fn rt<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub fn keys() -> Keys {
    Keys::new(PREFIX)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A record as overlayd writes it.
pub fn record(node: &str, subnet: &str, ip: &str, mac: &str, since: u64) -> NodeRecord {
    NodeRecord {
        node: node.into(),
        public_ip: ip.parse().expect("ip"),
        vtep_mac: mac.into(),
        subnet: subnet.parse().expect("subnet"),
        since,
    }
}

pub struct Env {
    pub etcd: EtcdServer,
    pub endpoints: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let etcd = EtcdServer::start();
        let endpoints = etcd.endpoints();
        Env { etcd, endpoints }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.endpoints, None)
            .await
            .expect("connect to the etcd fixture")
    }

    /// Grants a lease of `ttl` seconds and puts `r` at its subnet's key
    /// with it, as overlayd does; the lease id.
    pub fn put_node(&self, r: &NodeRecord, ttl: i64) -> i64 {
        rt(async {
            let mut c = self.client().await;
            let lease = c.lease_grant(ttl, None).await.expect("lease").id();
            let json = serde_json::to_vec(r).expect("record json");
            c.put(
                keys().subnet(&r.subnet),
                json,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .expect("put record");
            lease
        })
    }

    /// Puts any value at any key (no lease).
    pub fn put_raw(&self, key: &str, value: &str) {
        rt(async {
            let mut c = self.client().await;
            c.put(key, value, None).await.expect("put");
        })
    }

    /// A key's value and mod revision.
    pub fn raw(&self, key: &str) -> Option<(String, i64)> {
        rt(async {
            let mut c = self.client().await;
            let r = c.get(key, None).await.expect("get");
            r.kvs().first().map(|kv| {
                (
                    String::from_utf8_lossy(kv.value()).into_owned(),
                    kv.mod_revision(),
                )
            })
        })
    }

    /// Every key under the prefix with its value and mod revision: equal
    /// snapshots mean nothing was written.
    pub fn snapshot(&self) -> Vec<(String, String, i64)> {
        rt(async {
            let mut c = self.client().await;
            let r = c
                .get(PREFIX, Some(GetOptions::new().with_prefix()))
                .await
                .expect("get prefix");
            r.kvs()
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        String::from_utf8_lossy(kv.value()).into_owned(),
                        kv.mod_revision(),
                    )
                })
                .collect()
        })
    }

    /// The stored config as JSON.
    pub fn config(&self) -> Option<Value> {
        self.raw(&keys().config())
            .map(|(v, _)| serde_json::from_str(&v).expect("stored config is JSON"))
    }

    pub fn settings(&self) -> Settings {
        Settings::plain(self.endpoints.clone(), PREFIX, Duration::from_secs(10))
    }

    /// overlayctl's own connection (for the library's functions), 10 s.
    pub async fn connect(&self) -> Result<Etcd, cni::Error> {
        Etcd::connect(&self.settings(), Instant::now() + Duration::from_secs(10)).await
    }

    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        ctl_with(&self.endpoints, args, None)
    }

    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> CtlOutput {
        ctl_with(&self.endpoints, args, Some(stdin))
    }
}

/// overlayctl's table, read back from its output.
pub trait TableRows {
    /// The table printed (exit 0 asserted): rows of cells (split at two or
    /// more spaces), heading first.
    fn table(&self) -> Vec<Vec<String>>;
}

impl TableRows for CtlOutput {
    fn table(&self) -> Vec<Vec<String>> {
        self.ok()
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }
}

/// Runs overlayctl against `endpoints`.
pub fn ctl_with(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> CtlOutput {
    run_ctl("overlayctl", endpoints, args, stdin)
}
