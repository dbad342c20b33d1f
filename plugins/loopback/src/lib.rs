//! The `loopback` plugin: brings `lo` up in the container namespace.
//!
//! Like the reference plugin it always acts on `lo` whatever CNI_IFNAME says,
//! reports `lo` with its addresses, passes a `prevResult` through unchanged when
//! chained, and treats a missing namespace on DEL as success.

use cni::{CniResult, Error, Interface, IpConfig, Plugin, Request};
use netlink::{Netlink, Netns};

/// The plugin. Stateless: everything it needs is in the request.
pub struct Loopback;

const LO: &str = "lo";

/// A kernel failure as a CNI error (code 100), keeping netlink's context.
fn kernel(e: netlink::Error) -> Error {
    Error::plugin(format!("loopback: {e}"))
}

fn netns_error(path: &std::path::Path, e: netlink::Error) -> Error {
    Error::invalid_netns(format!("cannot open network namespace {}", path.display()))
        .with_details(e.to_string())
}

fn open_netns(req: &Request) -> Result<Netns, Error> {
    let path = req.netns()?;
    Netns::open(path).map_err(|e| netns_error(path, e))
}

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let ns = open_netns(req)?;
        let nl = Netlink::connect(&ns).map_err(kernel)?;
        let lo = nl.require_link(LO).map_err(kernel)?;
        if !lo.up {
            nl.set_up(lo.index).map_err(kernel)?;
        }
        if let Some(prev) = &req.config.prev_result {
            // Chained after another plugin: hand its result on untouched.
            return Ok(prev.clone());
        }
        let mut addrs = nl.addresses(lo.index).map_err(kernel)?;
        // IPv4 first, as the reference reports them; one of each family.
        addrs.sort_by_key(|a| !a.is_ipv4());
        addrs.dedup_by_key(|a| a.is_ipv4());
        Ok(CniResult {
            interfaces: vec![Interface {
                name: LO.into(),
                mac: Some("00:00:00:00:00:00".into()),
                mtu: Some(lo.mtu),
                sandbox: Some(req.netns()?.display().to_string()),
                ..Default::default()
            }],
            ips: addrs
                .into_iter()
                .map(|a| IpConfig {
                    address: a.into(),
                    gateway: None,
                    interface: Some(0),
                })
                .collect(),
            ..Default::default()
        })
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        // No namespace, or one that is gone: nothing left to undo.
        let Some(path) = &req.netns else {
            return Ok(());
        };
        let Some(ns) = Netns::open_existing(path).map_err(|e| netns_error(path, e))? else {
            return Ok(());
        };
        let nl = Netlink::connect(&ns).map_err(kernel)?;
        match nl.link_by_name(LO).map_err(kernel)? {
            Some(lo) if lo.up => nl.set_down(lo.index).map_err(kernel),
            _ => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let ns = open_netns(req)?;
        let nl = Netlink::connect(&ns).map_err(kernel)?;
        let lo = nl.require_link(LO).map_err(kernel)?;
        if !lo.up {
            return Err(Error::check_failed("loopback interface is down"));
        }
        Ok(())
    }
}
