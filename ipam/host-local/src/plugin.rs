//! The CNI commands, wired to config, store and allocator.

use cni::{CniResult, Dns, Error, Plugin, Request};

use crate::config::{self, Config};
use crate::store::Store;
use crate::{allocate, dns, inspect, release};

/// The host-local IPAM plugin.
pub struct HostLocal;

/// CNI_ARGS keys we read (the common K8S_* ones are always accepted).
const KNOWN_ARGS: &[&str] = &["IP"];

fn load(req: &Request) -> Result<Config, Error> {
    Config::load(&req.config, req.args.get("IP"))
}

impl Plugin for HostLocal {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        // Everything that can be wrong with the input fails here, before the
        // lease directory is touched.
        let cfg = load(req)?;
        let dns = match &cfg.resolv_conf {
            Some(path) => dns::load(path)?,
            None => Dns::default(),
        };
        let id = req.container_id()?;
        let ifname = req.ifname()?;
        let store = Store::create(&cfg.data_dir, &cfg.network)?;
        let ips = allocate::allocate(&store, &cfg, id.as_str(), ifname.as_str())?;
        drop(store);
        Ok(CniResult {
            ips,
            routes: cfg.routes,
            dns,
            ..Default::default()
        })
    }

    /// Needs only `ipam.dataDir` from the config, so a config whose ranges
    /// changed or broke since ADD can still release its leases. No directory
    /// means nothing to release.
    fn del(&self, req: &Request) -> Result<(), Error> {
        let data_dir = config::data_dir(&req.config.raw)?;
        let (id, ifname) = (req.container_id()?, req.ifname()?);
        match Store::open_existing(&data_dir, &req.config.name)? {
            Some(store) => {
                release::release_attachment(&store, id.as_str(), ifname.as_str()).map(drop)
            }
            None => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let cfg = load(req)?;
        let (id, ifname) = (req.container_id()?, req.ifname()?);
        let store = Store::open_existing(&cfg.data_dir, &cfg.network)?;
        inspect::check(
            store.as_ref(),
            &cfg,
            id.as_str(),
            ifname.as_str(),
            req.config.prev_result.as_ref(),
        )
    }

    fn status(&self, req: &Request) -> Result<(), Error> {
        inspect::status(&load(req)?)
    }

    /// Releases this network's leases whose attachment is not in
    /// `cni.dev/valid-attachments`. Without that list we refuse (code 7)
    /// rather than guess that nothing is valid.
    fn gc(&self, req: &Request) -> Result<(), Error> {
        let data_dir = config::data_dir(&req.config.raw)?;
        let valid = req.config.valid_attachments.as_deref().ok_or_else(|| {
            Error::invalid_config("GC needs cni.dev/valid-attachments (the list may be empty)")
        })?;
        match Store::open_existing(&data_dir, &req.config.name)? {
            Some(store) => release::collect_garbage(&store, valid).map(drop),
            None => Ok(()),
        }
    }

    fn known_args(&self) -> Option<&'static [&'static str]> {
        Some(KNOWN_ARGS)
    }
}
