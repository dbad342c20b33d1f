//! CHECK and STATUS: read-only looks at the leases.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use cni::{CniResult, Error, ErrorCode};
use nix::unistd::{access, AccessFlags};

use crate::config::Config;
use crate::store::Store;

/// CHECK: the attachment must hold at least one lease (its own, or failing
/// that a legacy id-only one, as the reference accepts). With a prevResult,
/// its addresses must also be the ones leased: every prevResult address that
/// lies in one of our range sets must be leased to this attachment, and every
/// lease of the attachment must be in prevResult (code 102 otherwise).
pub fn check(
    store: Option<&Store>,
    cfg: &Config,
    id: &str,
    ifname: &str,
    prev: Option<&CniResult>,
) -> Result<(), Error> {
    let leases = match store {
        Some(s) => s.leases()?,
        None => Vec::new(),
    };
    let mut held: BTreeSet<IpAddr> = leases
        .iter()
        .filter(|l| l.owner.is_attachment(id, ifname))
        .map(|l| l.ip)
        .collect();
    if held.is_empty() {
        held = leases
            .iter()
            .filter(|l| l.owner.is_legacy(id))
            .map(|l| l.ip)
            .collect();
    }
    if held.is_empty() {
        return Err(Error::check_failed(format!(
            "host-local: Failed to find address added by container {id}"
        ))
        .with_details(format!("no lease of {id}/{ifname}")));
    }
    let Some(prev) = prev else {
        return Ok(());
    };
    let reported: BTreeSet<IpAddr> = prev.ips.iter().map(|i| i.address.ip()).collect();
    let show = |s: &BTreeSet<IpAddr>| {
        s.iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for ip in &reported {
        let ours = cfg.sets.iter().any(|s| s.range_of(*ip).is_some());
        if ours && !held.contains(ip) {
            return Err(Error::check_failed(format!(
                "prevResult address {ip} is not leased to {id}/{ifname} (it holds {})",
                show(&held)
            )));
        }
    }
    for ip in &held {
        if !reported.contains(ip) {
            return Err(Error::check_failed(format!(
                "{id}/{ifname} holds {ip}, which prevResult does not list (it lists {})",
                show(&reported)
            )));
        }
    }
    Ok(())
}

fn not_available(msg: String) -> Error {
    Error::new(ErrorCode::NOT_AVAILABLE, msg)
}

/// Whether a lease directory can be created at or used as `dir`: the
/// directory itself when it exists, else its nearest existing ancestor, must
/// be a directory we may write to.
fn usable_dir(dir: &Path) -> Result<(), Error> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => {
                return access(at, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    not_available(format!(
                        "data directory {} is not writable: {e}",
                        at.display()
                    ))
                });
            }
            Ok(_) => {
                return Err(not_available(format!(
                    "data directory {}: {} is not a directory",
                    dir.display(),
                    at.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match at.parent() {
                Some(p) => at = p,
                None => {
                    return Err(not_available(format!(
                        "data directory {}: {e}",
                        dir.display()
                    )))
                }
            },
            Err(e) => {
                return Err(not_available(format!(
                    "data directory {}: {e}",
                    at.display()
                )))
            }
        }
    }
}

/// STATUS: code 50 when the data directory is unusable or a range set has no
/// free address (an ADD would fail), else success.
pub fn status(cfg: &Config) -> Result<(), Error> {
    let dir = Store::dir_of(&cfg.data_dir, &cfg.network);
    usable_dir(&dir)?;
    let leased = match Store::open_existing(&cfg.data_dir, &cfg.network)
        .map_err(|e| not_available(e.msg))?
    {
        Some(store) => store.leased_ips().map_err(|e| not_available(e.msg))?,
        None => Vec::new(),
    };
    for (idx, set) in cfg.sets.iter().enumerate() {
        let used = leased
            .iter()
            .filter(|ip| {
                set.range_of(**ip)
                    .is_some_and(|r| r.gateway() != Some(**ip))
            })
            .count();
        if set.capacity() <= used as u128 {
            return Err(not_available(format!(
                "no IP addresses available in range set {idx}: {set}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::Version;
    use serde_json::json;

    fn cfg(dir: &Path, subnet: &str) -> Config {
        let raw = json!({"cniVersion": "1.1.0", "name": "net1", "type": "host-local",
                         "ipam": {"type": "host-local", "dataDir": dir,
                                  "ranges": [[{"subnet": subnet}], [{"subnet": "fd00::/64"}]]}});
        Config::parse(&raw, "net1".parse().unwrap(), None).unwrap()
    }

    fn prev(addrs: &[&str]) -> CniResult {
        let ips: Vec<_> = addrs.iter().map(|a| json!({"address": a})).collect();
        CniResult::from_json(&json!({"cniVersion": "1.0.0", "ips": ips}), Version::V1_0_0).unwrap()
    }

    #[test]
    fn check_needs_a_lease_and_matching_prev_result() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), "10.0.0.0/24");
        let e = check(None, &c, "c1", "eth0", None).unwrap_err();
        assert_eq!(e.code, ErrorCode::CHECK_FAILED);
        let s = Store::create(tmp.path(), &c.network).unwrap();
        std::fs::write(s.dir().join("10.0.0.2"), b"c1\r\neth0").unwrap();
        std::fs::write(s.dir().join("fd00::2"), b"c1\r\neth0").unwrap();
        check(Some(&s), &c, "c1", "eth0", None).unwrap();
        check(
            Some(&s),
            &c,
            "c1",
            "eth0",
            Some(&prev(&["10.0.0.2/24", "fd00::2/64"])),
        )
        .unwrap();
        // Addresses outside our ranges (another plugin's) are not ours to judge.
        check(
            Some(&s),
            &c,
            "c1",
            "eth0",
            Some(&prev(&["10.0.0.2/24", "fd00::2/64", "192.168.1.1/24"])),
        )
        .unwrap();
        for bad in [
            vec!["10.0.0.3/24", "fd00::2/64"],
            vec!["10.0.0.2/24"],
            vec![],
        ] {
            let e = check(Some(&s), &c, "c1", "eth0", Some(&prev(&bad))).unwrap_err();
            assert_eq!(e.code, ErrorCode::CHECK_FAILED, "{bad:?}");
        }
        let e = check(Some(&s), &c, "c1", "eth1", None).unwrap_err();
        assert_eq!(e.code, ErrorCode::CHECK_FAILED);
        // A legacy lease satisfies CHECK, as in the reference.
        std::fs::write(s.dir().join("10.0.0.9"), b"old").unwrap();
        check(Some(&s), &c, "old", "eth3", None).unwrap();
    }

    #[test]
    fn status_reports_exhaustion_and_unusable_dirs_as_50() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(&tmp.path().join("not/yet/there"), "10.0.0.0/30");
        status(&c).unwrap();
        let dir = Store::create(&c.data_dir, &c.network)
            .unwrap()
            .dir()
            .to_path_buf();
        // 10.0.0.0/30: only .2 is allocatable (.1 is the gateway).
        std::fs::write(dir.join("10.0.0.1"), b"someone").unwrap();
        status(&c).unwrap();
        std::fs::write(dir.join("10.0.0.2"), b"c1\r\neth0").unwrap();
        let e = status(&c).unwrap_err();
        assert_eq!(e.code, ErrorCode::NOT_AVAILABLE);
        assert!(
            e.msg.contains("range set 0: 10.0.0.1-10.0.0.2"),
            "{}",
            e.msg
        );

        std::fs::write(tmp.path().join("file"), b"").unwrap();
        let c = cfg(&tmp.path().join("file/sub"), "10.0.0.0/24");
        assert_eq!(status(&c).unwrap_err().code, ErrorCode::NOT_AVAILABLE);
    }
}
