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

/// The bridge's commands with a config the caller built: how a plugin that
/// sets pods up exactly as the bridge does (vxlan) runs the same code.
pub use add::add;
pub use check::check;
pub use del::{del, gc, status};

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        add::add(req, &BridgeConf::from_request(req)?)
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        del::del(req)
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        check::check(req, &BridgeConf::from_request(req)?)
    }

    fn status(&self, req: &Request) -> Result<(), Error> {
        del::status(req, &BridgeConf::from_request(req)?)
    }

    fn gc(&self, req: &Request) -> Result<(), Error> {
        del::gc(req, &BridgeConf::from_request(req)?)
    }

    fn known_args(&self) -> Option<&'static [&'static str]> {
        // MAC is ours; IP is for the IPAM plugin we delegate to.
        Some(&["MAC", "IP"])
    }
}

/// IPAM plugins linked into this binary. One runs in-process instead of
/// being exec'd only when the binary CNI_PATH holds for it is provably the
/// same plugin of this same build (see `cni::delegate_with`);
/// `CNI_RS_EXEC_IPAM=1` always execs.
const IN_PROCESS_IPAM: &[cni::InProcess<'static>] = &[("host-local", &host_local::HostLocal)];

/// Runs the IPAM plugin `plugin_type` for `command`, as `cni::delegate`
/// does, in-process when that is provably the same.
fn ipam(
    req: &Request,
    plugin_type: &str,
    command: cni::Command,
) -> Result<Option<CniResult>, Error> {
    cni::delegate_with(req, plugin_type, command, IN_PROCESS_IPAM)
}

/// The attachment's tag for our nftables rules.
fn attachment<'a>(req: &'a Request) -> Result<nft::Attachment<'a>, Error> {
    Ok(nft::Attachment {
        network: req.config.name.as_str(),
        container_id: req.container_id()?.as_str(),
        ifname: req.ifname()?.as_str(),
    })
}
