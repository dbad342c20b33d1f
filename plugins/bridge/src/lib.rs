//! The `bridge` plugin: a veth pair whose container end is born inside the
//! container namespace and whose host end joins a Linux bridge; addresses from
//! the IPAM plugin, the gateway on the bridge, and masquerade / MAC spoof
//! checks as nftables rules in tables we own, tagged per attachment.
//!
//! ADD allocates first (nothing is created when IPAM fails) and undoes every
//! step it made when a later one fails; DEL tries every step, collects the
//! errors, and succeeds when things are already gone.

mod add;
mod check;
mod config;
mod del;
mod kernel;

use cni::{CniResult, Error, Plugin, Request};

pub use config::BridgeConf;

/// The plugin.
pub struct Bridge;

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        add::add(req)
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        del::del(req)
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        check::check(req)
    }

    fn status(&self, req: &Request) -> Result<(), Error> {
        del::status(req)
    }

    fn gc(&self, req: &Request) -> Result<(), Error> {
        del::gc(req)
    }

    fn known_args(&self) -> Option<&'static [&'static str]> {
        // MAC is ours; IP is for the IPAM plugin we delegate to.
        Some(&["MAC", "IP"])
    }
}

/// The attachment's tag for our nftables rules.
fn attachment<'a>(req: &'a Request) -> Result<nft::Attachment<'a>, Error> {
    Ok(nft::Attachment {
        network: req.config.name.as_str(),
        container_id: req.container_id()?.as_str(),
        ifname: req.ifname()?.as_str(),
    })
}
