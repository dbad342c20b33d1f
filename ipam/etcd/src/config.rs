//! The etcd-ipam configuration (`ipam` of the network config). Everything is
//! validated here, before any etcd work: every failure is code 7.
//!
//! DEL, GC and CHECK need only [`Base`] (etcd, node, network), so a config
//! whose ranges changed or broke since ADD can still release its addresses.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use cni::{Cidr, Dns, Error, NetConf, NetworkName, Route};
use ipam_core::conf::{
    as_array, as_object, as_str, assign_requested, field, ipam_section, opt_string, range_sets,
    requested_ips, routes, validate_sets,
};
use serde_json::{Map, Value};

use crate::pool::Pool;

pub const DEFAULT_PREFIX: &str = "/cni-ipam";
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;
const MAX_TIMEOUT_MS: u64 = 600_000;

/// How to reach etcd (`ipam.etcd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// The whole invocation's budget: connecting, every round trip, retries.
    pub timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `ipam.etcd.tls`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What every command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub network: NetworkName,
    /// The pool's name in keys (`<prefix>/<pool>/`): `ipam.pool`, else the
    /// network name. Networks naming the same pool share its addresses.
    pub pool: NetworkName,
    pub node: String,
    pub etcd: EtcdConfig,
}

/// What ADD and STATUS need besides.
#[derive(Debug, Clone)]
pub struct Config {
    pub base: Base,
    pub pool: Pool,
    pub routes: Vec<Route>,
    pub dns: Dns,
    /// For each range set, the address requested from it, if any.
    pub requested: Vec<Option<IpAddr>>,
}

/// A node name as a key part: 1-253 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_node(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_config(format!(
            "invalid node name {name:?}: 1 to 253 of A-Z a-z 0-9 . _ -"
        )))
    }
}

fn hostname() -> Result<String, Error> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("cannot read the hostname for ipam.nodeName: {e}")))
}

fn opt_path(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<PathBuf>, Error> {
    Ok(opt_string(obj, key, what)?.map(PathBuf::from))
}

fn endpoints(etcd: &Map<String, Value>) -> Result<Vec<String>, Error> {
    let Some(list) = field(etcd, "endpoints") else {
        return Ok(vec![DEFAULT_ENDPOINT.to_string()]);
    };
    let list = as_array(list, "ipam.etcd.endpoints")?
        .iter()
        .map(|v| as_str(v, "ipam.etcd.endpoints[]").map(str::to_string))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list)
}

fn timeout(etcd: &Map<String, Value>) -> Result<Duration, Error> {
    let ms = match field(etcd, "timeoutMs") {
        None => DEFAULT_TIMEOUT_MS,
        Some(v) => v
            .as_u64()
            .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "ipam.etcd.timeoutMs must be a whole number from 1 to {MAX_TIMEOUT_MS}, got {v}"
                ))
            })?,
    };
    Ok(Duration::from_millis(ms))
}

fn tls(etcd: &Map<String, Value>) -> Result<Option<TlsFiles>, Error> {
    let Some(tls) = field(etcd, "tls") else {
        return Ok(None);
    };
    let tls = as_object(tls, "ipam.etcd.tls")?;
    let what = "ipam.etcd.tls";
    let files = TlsFiles {
        ca: opt_path(tls, "ca", what)?
            .ok_or_else(|| Error::invalid_config("ipam.etcd.tls needs ca (a PEM file)"))?,
        cert: opt_path(tls, "cert", what)?,
        key: opt_path(tls, "key", what)?,
    };
    Ok(Some(files))
}

impl EtcdConfig {
    fn parse(ipam: &Map<String, Value>) -> Result<EtcdConfig, Error> {
        let empty = Map::new();
        let etcd = match field(ipam, "etcd") {
            Some(v) => as_object(v, "ipam.etcd")?,
            None => &empty,
        };
        let cfg = EtcdConfig {
            endpoints: endpoints(etcd)?,
            prefix: opt_string(etcd, "prefix", "ipam.etcd")?
                .unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            timeout: timeout(etcd)?,
            tls: tls(etcd)?,
            username: opt_string(etcd, "username", "ipam.etcd")?,
            password: opt_string(etcd, "password", "ipam.etcd")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The rules every way of building one follows (the plugin's config,
    /// ipamctl's flags): endpoints `http(s)://HOST:PORT`, TLS exactly with
    /// https, cert and key together, a key prefix, no password without a
    /// user. Code 7; the messages name the `ipam.etcd` keys.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::invalid_config(m));
        if self.endpoints.is_empty() {
            return bad("ipam.etcd.endpoints is empty".into());
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
                .map(|r| r.trim_end_matches('/'));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains('/')) {
                return bad(format!(
                    "ipam.etcd.endpoints: {e:?} is not http://HOST:PORT or https://HOST:PORT"
                ));
            }
        }
        if self.prefix.trim_matches('/').is_empty() || self.prefix.contains("//") {
            return bad(format!(
                "ipam.etcd.prefix {:?} must name a key prefix such as /cni-ipam",
                self.prefix
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("ipam.etcd.password without ipam.etcd.username".into());
        }
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if https != self.tls.is_some() {
            return bad("ipam.etcd: https:// endpoints need ipam.etcd.tls (at least ca), and tls needs https:// endpoints".into());
        }
        if self
            .tls
            .as_ref()
            .is_some_and(|t| t.cert.is_some() != t.key.is_some())
        {
            return bad(
                "ipam.etcd.tls: cert and key go together (a client certificate needs its key)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Base {
    /// `ipam.etcd`, `ipam.nodeName` (default: the hostname) and the network name.
    pub fn load(conf: &NetConf) -> Result<Base, Error> {
        let ipam = ipam_section(&conf.raw)?;
        let node = match opt_string(ipam, "nodeName", "ipam")? {
            Some(n) => n,
            None => hostname()?,
        };
        validate_node(&node)?;
        Ok(Base {
            pool: match opt_string(ipam, "pool", "ipam")? {
                Some(p) => p
                    .parse()
                    .map_err(|e: Error| Error::invalid_config(format!("ipam.pool: {}", e.msg)))?,
                None => conf.name.clone(),
            },
            network: conf.name.clone(),
            node,
            etcd: EtcdConfig::parse(ipam)?,
        })
    }
}

fn block_size(ipam: &Map<String, Value>, key: &str) -> Result<Option<u8>, Error> {
    field(ipam, key)
        .map(|v| {
            v.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid_config(format!("ipam.{key} must be a prefix length, got {v}"))
                })
        })
        .transpose()
}

fn exclude(ipam: &Map<String, Value>) -> Result<Vec<Cidr>, Error> {
    let Some(list) = field(ipam, "exclude") else {
        return Ok(Vec::new());
    };
    as_array(list, "ipam.exclude")?
        .iter()
        .map(|v| {
            as_str(v, "ipam.exclude[]")?
                .parse::<Cidr>()
                .map_err(|e| Error::invalid_config(format!("ipam.exclude: {}", e.msg)))
        })
        .collect()
}

impl Config {
    /// Reads and validates the whole config; `env_ip` is CNI_ARGS `IP=`.
    pub fn load(conf: &NetConf, env_ip: Option<&str>) -> Result<Config, Error> {
        let base = Base::load(conf)?;
        let raw = &conf.raw;
        let ipam = ipam_section(raw)?;
        let cfgs = match field(ipam, "ranges") {
            Some(r) => range_sets(r, "ipam.ranges")?,
            None => Vec::new(),
        };
        let sets = validate_sets(&cfgs)?;
        let requested = assign_requested(&sets, &requested_ips(raw, env_ip)?)?;
        let pool = Pool::new(
            sets,
            block_size(ipam, "blockSize")?,
            block_size(ipam, "blockSize6")?,
            exclude(ipam)?,
        )?;
        for ip in requested.iter().flatten() {
            if pool.is_excluded(*ip) {
                return Err(Error::invalid_config(format!(
                    "requested IP address {ip} is in ipam.exclude"
                )));
            }
        }
        let dns = match field(ipam, "dns") {
            Some(v) => serde_json::from_value::<Dns>(v.clone())
                .map_err(|e| Error::invalid_config(format!("ipam.dns: {e}")))?,
            None => Dns::default(),
        };
        Ok(Config {
            base,
            pool,
            routes: routes(ipam)?,
            dns,
            requested,
        })
    }
}
