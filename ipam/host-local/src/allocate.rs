//! ADD: one address per range set, under the store's lock.
//!
//! Per set, in order: an address this attachment already holds in the set is
//! returned as is (a retried ADD is idempotent; the reference fails with
//! "duplicate allocation" instead); else the requested address is reserved;
//! else the reference's round-robin walk from `last_reserved_ip.<set>` takes
//! the first free address. If any set fails, every lease this ADD created is
//! removed before the error is returned, so a failed ADD leaves no lease
//! behind (`last_reserved_ip.*` may have moved on, as in the reference).

use std::collections::HashSet;
use std::net::IpAddr;

use cni::{Error, ErrorCode, IpConfig};
use ipam_core::{next_free, Range, RangeSet};

use crate::config::Config;
use crate::store::{Lease, Store};

/// What one range set gave.
struct Got {
    ip: IpAddr,
    /// Reserved by this ADD (as opposed to held from an earlier one).
    new: bool,
}

/// Allocates for (id, ifname) from every range set of `cfg`.
pub fn allocate(
    store: &Store,
    cfg: &Config,
    id: &str,
    ifname: &str,
) -> Result<Vec<IpConfig>, Error> {
    let leases = store.leases()?;
    let mut taken: HashSet<IpAddr> = store.leased_ips()?.into_iter().collect();
    let mut created: Vec<IpAddr> = Vec::new();
    let mut out = Vec::new();
    for (idx, set) in cfg.sets.iter().enumerate() {
        let got = allocate_one(
            store,
            set,
            idx,
            cfg.requested[idx],
            &leases,
            &taken,
            id,
            ifname,
        )
        .and_then(|got| {
            let range = set.range_of(got.ip).ok_or_else(|| {
                Error::new(
                    ErrorCode::INTERNAL,
                    format!("{} is outside its range set", got.ip),
                )
            })?;
            Ok((ip_config(range, got.ip)?, got))
        });
        match got {
            Ok((conf, got)) => {
                if got.new {
                    created.push(got.ip);
                    taken.insert(got.ip);
                }
                out.push(conf);
            }
            Err(e) => {
                rollback(store, &created);
                return Err(Error {
                    msg: format!("failed to allocate for range {idx}: {}", e.msg),
                    ..e
                });
            }
        }
    }
    Ok(out)
}

fn ip_config(range: &Range, ip: IpAddr) -> Result<IpConfig, Error> {
    Ok(IpConfig {
        address: range.with_prefix(ip)?,
        gateway: range.gateway(),
        interface: None,
    })
}

/// Removes the leases a failed ADD created. Errors are reported on stderr
/// only: the ADD error is what the runtime must see.
fn rollback(store: &Store, created: &[IpAddr]) {
    for &ip in created {
        if let Err(e) = store.release(ip) {
            eprintln!("host-local: rollback: {e}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn allocate_one(
    store: &Store,
    set: &RangeSet,
    idx: usize,
    requested: Option<IpAddr>,
    leases: &[Lease],
    taken: &HashSet<IpAddr>,
    id: &str,
    ifname: &str,
) -> Result<Got, Error> {
    let in_set = |l: &&Lease| set.range_of(l.ip).is_some();
    if let Some(held) = leases
        .iter()
        .filter(in_set)
        .find(|l| l.owner.is_attachment(id, ifname))
    {
        return match requested {
            Some(r) if r != held.ip => Err(Error::plugin(format!(
                "{id}/{ifname} already holds {} in range set {set}, not the requested {r}; DEL it first",
                held.ip
            ))),
            _ => Ok(Got {
                ip: held.ip,
                new: false,
            }),
        };
    }
    if let Some(old) = leases.iter().filter(in_set).find(|l| l.owner.is_legacy(id)) {
        // A pre-ifname lease of this container: we cannot tell which
        // interface it was for, so, like the reference, refuse.
        return Err(Error::plugin(format!(
            "{} has been allocated to {id}, duplicate allocation is not allowed",
            old.ip
        )));
    }
    let ip = match requested {
        Some(r) => {
            if taken.contains(&r) || !store.try_reserve(r, id, ifname)? {
                return Err(Error::new(
                    ErrorCode::NO_ADDRESS,
                    format!("requested IP address {r} is not available in range set {set}"),
                ));
            }
            r
        }
        None => {
            let mut failure: Option<Error> = None;
            let found = next_free(set, store.last_reserved(idx), |ip| {
                if taken.contains(&ip) {
                    return true;
                }
                match store.try_reserve(ip, id, ifname) {
                    Ok(won) => !won,
                    Err(e) => {
                        // Stop the walk here; the error is returned below.
                        failure = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            found?.0
        }
    };
    if let Err(e) = store.set_last_reserved(idx, ip) {
        let _ = store.release(ip);
        return Err(e);
    }
    Ok(Got { ip, new: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(dir: &std::path::Path, ranges: serde_json::Value, env_ip: Option<&str>) -> Config {
        let raw = json!({"cniVersion": "1.0.0", "name": "net1", "type": "host-local",
                         "ipam": {"type": "host-local", "dataDir": dir, "ranges": ranges}});
        Config::parse(&raw, "net1".parse().unwrap(), env_ip).unwrap()
    }

    fn addrs(ips: &[IpConfig]) -> Vec<String> {
        ips.iter().map(|i| i.address.to_string()).collect()
    }

    fn files(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn one_address_per_set_round_robin() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(
            tmp.path(),
            json!([[{"subnet": "10.0.0.0/29"}], [{"subnet": "fd00::/125"}]]),
            None,
        );
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        let a = allocate(&s, &c, "c1", "eth0").unwrap();
        assert_eq!(addrs(&a), ["10.0.0.2/29", "fd00::2/125"]);
        assert_eq!(a[0].gateway.unwrap().to_string(), "10.0.0.1");
        assert_eq!(a[1].gateway.unwrap().to_string(), "fd00::1");
        let b = allocate(&s, &c, "c2", "eth0").unwrap();
        assert_eq!(addrs(&b), ["10.0.0.3/29", "fd00::3/125"]);
        s.release("10.0.0.2".parse().unwrap()).unwrap();
        let d = allocate(&s, &c, "c3", "eth0").unwrap();
        assert_eq!(
            addrs(&d)[0],
            "10.0.0.4/29",
            "round robin does not reuse .2 yet"
        );
    }

    #[test]
    fn retry_returns_what_is_held_without_reserving_more() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), json!([[{"subnet": "10.0.0.0/24"}]]), None);
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        let a = allocate(&s, &c, "c1", "eth0").unwrap();
        let b = allocate(&s, &c, "c1", "eth0").unwrap();
        assert_eq!(a, b);
        assert_eq!(s.leases().unwrap().len(), 1);
        // Another ifname of the same container is another attachment.
        let n = allocate(&s, &c, "c1", "net1").unwrap();
        assert_ne!(n, a);
        // A retry asking for another address than the held one is refused.
        let c2 = cfg(
            tmp.path(),
            json!([[{"subnet": "10.0.0.0/24"}]]),
            Some("10.0.0.50"),
        );
        let e = allocate(&s, &c2, "c1", "eth0").unwrap_err();
        assert!(e.msg.contains("already holds 10.0.0.2"), "{}", e.msg);
        assert_eq!(s.leases().unwrap().len(), 2);
    }

    #[test]
    fn a_failing_set_rolls_back_the_earlier_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(
            tmp.path(),
            json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.5", "rangeEnd": "10.1.0.5"}]]),
            None,
        );
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        allocate(&s, &c, "c1", "eth0").unwrap();
        let before = files(&s);
        let e = allocate(&s, &c, "c2", "eth0").unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
        assert_eq!(
            e.msg,
            "failed to allocate for range 1: no IP addresses available in range set: 10.1.0.5-10.1.0.5"
        );
        assert_eq!(files(&s), before, "c2's address from set 0 was released");
        assert_eq!(s.leases().unwrap().len(), 2);
        // A retry that fails (here: a third set was added and is full) keeps
        // the addresses the attachment already held; only new ones go.
        let c3 = cfg(
            tmp.path(),
            json!([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.5", "rangeEnd": "10.1.0.5"}],
                   [{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.5", "rangeEnd": "10.2.0.5"}]]),
            None,
        );
        std::fs::write(s.dir().join("10.2.0.5"), b"other\r\neth0").unwrap();
        let e = allocate(&s, &c3, "c1", "eth0").unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
        assert!(
            e.msg.starts_with("failed to allocate for range 2:"),
            "{}",
            e.msg
        );
        let held: Vec<_> = s
            .leases()
            .unwrap()
            .into_iter()
            .filter(|l| l.owner.is_attachment("c1", "eth0"))
            .collect();
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn requested_addresses_are_reserved_or_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(
            tmp.path(),
            json!([[{"subnet": "10.0.0.0/24"}]]),
            Some("10.0.0.77"),
        );
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        assert_eq!(
            addrs(&allocate(&s, &c, "c1", "eth0").unwrap()),
            ["10.0.0.77/24"]
        );
        assert_eq!(s.last_reserved(0), Some("10.0.0.77".parse().unwrap()));
        let e = allocate(&s, &c, "c2", "eth0").unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
        assert!(
            e.msg
                .contains("requested IP address 10.0.0.77 is not available"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn legacy_leases_of_the_container_are_refused_like_the_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), json!([[{"subnet": "10.0.0.0/24"}]]), None);
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        std::fs::write(s.dir().join("10.0.0.9"), b"c1").unwrap();
        let e = allocate(&s, &c, "c1", "eth0").unwrap_err();
        assert!(e.msg.contains("duplicate allocation"), "{}", e.msg);
        assert_eq!(s.leases().unwrap().len(), 1);
    }

    #[test]
    fn foreign_files_count_as_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), json!([[{"subnet": "10.0.0.0/29"}]]), None);
        let s = Store::create(&c.data_dir, &c.network).unwrap();
        std::fs::create_dir(s.dir().join("10.0.0.2")).unwrap();
        std::fs::write(s.dir().join("10.0.0.3"), b"").unwrap();
        assert_eq!(
            addrs(&allocate(&s, &c, "c1", "eth0").unwrap()),
            ["10.0.0.4/29"]
        );
    }
}
