//! DEL, STATUS and GC: best effort, every step tried, errors collected.

use cni::{Command, Error, Request};
use netlink::{Netlink, Netns};

use crate::config::BridgeConf;
use crate::kernel::{self, nl};

/// Runs every step; returns the first error with the others in its details.
fn collect(errors: Vec<Error>) -> Result<(), Error> {
    let mut iter = errors.into_iter();
    match iter.next() {
        None => Ok(()),
        Some(first) => {
            let rest: Vec<String> = iter.map(|e| e.to_string()).collect();
            if rest.is_empty() {
                Err(first)
            } else {
                let details = if first.details.is_empty() {
                    rest.join("; ")
                } else {
                    format!("{}; {}", first.details, rest.join("; "))
                };
                Err(first.with_details(details))
            }
        }
    }
}

pub fn del(req: &Request) -> Result<(), Error> {
    // The plugin config is not consulted: a config ADD would refuse, or one
    // whose ipMasq / macspoofchk changed since ADD, must not leave rules
    // behind or block the teardown (the runtime retries a failing DEL).
    let att = crate::attachment(req)?;
    // Our netfilter sockets stay open until the veth is gone: closing one
    // while the kernel still has to free the deleted rules would wait for
    // that holding the lock the veth's unregistration needs (nft crate docs).
    // Deleting the rules after the veth instead was slower (BENCHMARKS.md).
    let parked = nft::park_sockets();
    let (link, rules) = std::thread::scope(|s| {
        // The kernel needs RCU grace periods both to delete a veth and to
        // free the rules we delete: let them overlap.
        let link = s.spawn(|| delete_container_link(req));
        // Our rules, found by their tag: works when the namespace is gone and
        // without prevResult (the reference leaks its masquerade rules there).
        // In-process over netlink: a rule dump and one batch per table.
        let mut rules = Vec::new();
        if let Err(e) = nft::masq::del(&att) {
            rules.push(kernel::nft(e));
        }
        if let Err(e) = nft::spoofchk::del(&att) {
            rules.push(kernel::nft(e));
        }
        let link = link.join().unwrap_or_else(|_| {
            Err(Error::new(
                cni::ErrorCode::INTERNAL,
                "link deletion panicked",
            ))
        });
        (link, rules)
    });
    // A forked child closes them (and waits, if the kernel isn't done yet).
    drop(parked);
    let mut errors: Vec<Error> = link.err().into_iter().collect();
    if rules.is_empty() {
        // The lease goes last: the address can't be handed to another
        // container while this one's interface or rules still use it. If
        // the rules could not be removed, the lease stays until a retried
        // DEL gets them.
        if let Some(ipam) = &req.config.ipam {
            if let Err(e) = crate::ipam(req, &ipam.plugin_type, Command::Del) {
                errors.push(e);
            }
        }
    }
    errors.extend(rules);
    collect(errors)
}

fn delete_container_link(req: &Request) -> Result<(), Error> {
    let Some(path) = &req.netns else {
        return Ok(());
    };
    // A namespace that is gone took its links with it.
    let Some(ns) = Netns::open_existing(path).map_err(|e| kernel::netns_error(path, e))? else {
        return Ok(());
    };
    // This (scoped) thread makes the container's socket itself: no helper.
    let ctr = Netlink::connect_entering(&ns).map_err(nl)?;
    match ctr.link_by_name(req.ifname()?.as_str()).map_err(nl)? {
        Some(link) => match ctr.delete_link(link.index) {
            Err(e) if !e.is_not_found() => Err(nl(e)),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

pub fn status(req: &Request, conf: &BridgeConf) -> Result<(), Error> {
    // The rules ADD would write must be writable (nft present, kernel support).
    let probes = [
        (
            conf.ip_masq && conf.has_ipam,
            nft::masq::probe as fn() -> nft::Result<()>,
        ),
        (conf.macspoofchk, nft::spoofchk::probe),
    ];
    for (needed, probe) in probes {
        if needed {
            probe().map_err(|e| {
                Error::new(
                    cni::ErrorCode::NOT_AVAILABLE,
                    format!("bridge: nftables unusable: {e}"),
                )
            })?;
        }
    }
    match &req.config.ipam {
        Some(ipam) => crate::ipam(req, &ipam.plugin_type, Command::Status).map(|_| ()),
        None => Ok(()),
    }
}

pub fn gc(req: &Request, conf: &BridgeConf) -> Result<(), Error> {
    // Without the list, everything would look stale: refuse rather than wipe.
    let valid =
        req.config.valid_attachments.as_ref().ok_or_else(|| {
            Error::invalid_config("GC needs cni.dev/valid-attachments in the config")
        })?;
    let keep: Vec<(String, String)> = valid
        .iter()
        .map(|a| (a.container_id.to_string(), a.ifname.to_string()))
        .collect();
    let network = req.config.name.as_str();
    let mut errors = Vec::new();
    if conf.ip_masq {
        if let Err(e) = nft::masq::gc(network, &keep) {
            errors.push(kernel::nft(e));
        }
    }
    if conf.macspoofchk {
        if let Err(e) = nft::spoofchk::gc(network, &keep) {
            errors.push(kernel::nft(e));
        }
    }
    if let Some(ipam) = &req.config.ipam {
        if let Err(e) = crate::ipam(req, &ipam.plugin_type, Command::Gc) {
            errors.push(e);
        }
    }
    collect(errors)
}
