//! The CNI commands, wired to config, lock and etcd.

use std::collections::BTreeSet;
use std::net::IpAddr;

use std::time::Instant;

use cni::{CniResult, Error, ErrorCode, IpConfig, Plugin, Request};

use crate::config::{Base, Config};
use crate::etcd::{block_on, Etcd};
use crate::keys::Keys;
use crate::lock::{NodeLock, LOCK_DIR};
use crate::model::HandleRecord;
use crate::ops;
use crate::plan::Attachment;

/// The etcd-ipam IPAM plugin.
pub struct EtcdIpam;

/// CNI_ARGS keys we read (the common K8S_* ones are always accepted).
const KNOWN_ARGS: &[&str] = &["IP"];

/// The lock directory; tests point it elsewhere with this variable.
fn lock_dir() -> std::path::PathBuf {
    std::env::var_os("CNI_ETCD_IPAM_LOCK_DIR")
        .map(Into::into)
        .unwrap_or_else(|| LOCK_DIR.into())
}

fn keys(base: &Base) -> Keys {
    Keys::new(&base.etcd.prefix, base.pool.as_str())
}

fn ips_of(h: &HandleRecord) -> Vec<IpConfig> {
    h.ips
        .iter()
        .map(|ip| IpConfig {
            address: ip.address,
            gateway: ip.gateway,
            interface: None,
        })
        .collect()
}

impl Plugin for EtcdIpam {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let start = Instant::now();
        let cfg = Config::load(&req.config, req.args.get("IP"))?;
        let (id, ifname) = (req.container_id()?, req.ifname()?);
        let base = &cfg.base;
        let deadline = start + base.etcd.timeout;
        let _lock = NodeLock::acquire(&lock_dir(), base.pool.as_str(), &base.node, deadline)?;
        let who = Attachment {
            node: &base.node,
            container_id: id.as_str(),
            ifname: ifname.as_str(),
        };
        let handle = block_on(async {
            let mut etcd = Etcd::connect(&base.etcd, deadline).await?;
            ops::add(&mut etcd, &keys(base), &cfg.pool, who, &cfg.requested).await
        })?;
        Ok(CniResult {
            ips: ips_of(&handle),
            routes: cfg.routes,
            dns: cfg.dns,
            ..Default::default()
        })
    }

    /// Needs only the etcd settings, the node and the network: a config whose
    /// ranges changed since ADD still releases its addresses.
    fn del(&self, req: &Request) -> Result<(), Error> {
        let start = Instant::now();
        let base = Base::load(&req.config)?;
        let (id, ifname) = (req.container_id()?, req.ifname()?);
        let deadline = start + base.etcd.timeout;
        let _lock = NodeLock::acquire(&lock_dir(), base.pool.as_str(), &base.node, deadline)?;
        let keys = keys(&base);
        let handle_key = keys.handle(&base.node, id.as_str(), ifname.as_str());
        block_on(async {
            let mut etcd = Etcd::connect(&base.etcd, deadline).await?;
            ops::release(&mut etcd, &keys, &handle_key, &base.node).await
        })
        .map(drop)
    }

    /// The handle must exist and hold exactly the prevResult's addresses of
    /// this pool (code 102 otherwise).
    fn check(&self, req: &Request) -> Result<(), Error> {
        let start = Instant::now();
        let cfg = Config::load(&req.config, None)?;
        let base = &cfg.base;
        let (id, ifname) = (req.container_id()?, req.ifname()?);
        let keys = keys(base);
        let handle_key = keys.handle(&base.node, id.as_str(), ifname.as_str());
        let handle = block_on(async {
            let mut etcd = Etcd::connect(&base.etcd, start + base.etcd.timeout).await?;
            ops::read_handle(&mut etcd, &handle_key).await
        })?
        .ok_or_else(|| {
            Error::check_failed(format!(
                "etcd-ipam: no addresses allocated to {id}/{ifname} on node {} ({handle_key})",
                base.node
            ))
        })?;
        let held: BTreeSet<IpAddr> = handle.value.ips.iter().map(|i| i.address.ip()).collect();
        if let Some(prev) = &req.config.prev_result {
            let ours = |ip: &IpAddr| cfg.pool.sets().iter().any(|s| s.range_of(*ip).is_some());
            let reported: BTreeSet<IpAddr> = prev
                .ips
                .iter()
                .map(|i| i.address.ip())
                .filter(ours)
                .collect();
            if reported != held {
                return Err(Error::check_failed(format!(
                    "{id}/{ifname} holds {held:?} in etcd, prevResult lists {reported:?}"
                )));
            }
        }
        Ok(())
    }

    /// 50 when etcd can't be reached within the timeout, or when the pool has
    /// no address left for this node.
    fn status(&self, req: &Request) -> Result<(), Error> {
        let start = Instant::now();
        let cfg = Config::load(&req.config, None)?;
        let base = &cfg.base;
        let unavailable =
            |e: Error| Error::new(ErrorCode::NOT_AVAILABLE, e.msg).with_details(e.details);
        let view = block_on(async {
            let mut etcd = Etcd::connect(&base.etcd, start + base.etcd.timeout).await?;
            ops::read_network(&mut etcd, &keys(base)).await
        })
        .map_err(|e| match e.code {
            ErrorCode::TRY_AGAIN_LATER => unavailable(e),
            _ => e,
        })?;
        crate::usage::check_available(&cfg.pool, &view, &base.node).map_err(unavailable)
    }

    /// Releases this node's handles of this network whose attachment is not
    /// in `cni.dev/valid-attachments` (required: code 7 without it). Keeps
    /// going after a failed release and reports the first failure.
    fn gc(&self, req: &Request) -> Result<(), Error> {
        let start = Instant::now();
        let base = Base::load(&req.config)?;
        let valid = req.config.valid_attachments.as_deref().ok_or_else(|| {
            Error::invalid_config("GC needs cni.dev/valid-attachments (the list may be empty)")
        })?;
        let keep: BTreeSet<String> = valid
            .iter()
            .map(|a| format!("{}/{}", a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        let deadline = start + base.etcd.timeout;
        let _lock = NodeLock::acquire(&lock_dir(), base.pool.as_str(), &base.node, deadline)?;
        let keys = keys(&base);
        block_on(async {
            let mut etcd = Etcd::connect(&base.etcd, deadline).await?;
            let prefix = keys.node_handles(&base.node);
            let mut first_error = None;
            for key in ops::node_handle_keys(&mut etcd, &keys, &base.node).await? {
                let attachment = key.strip_prefix(&prefix).unwrap_or_default();
                if keep.contains(attachment) {
                    continue;
                }
                if let Err(e) = ops::release(&mut etcd, &keys, &key, &base.node).await {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn known_args(&self) -> Option<&'static [&'static str]> {
        Some(KNOWN_ARGS)
    }
}
