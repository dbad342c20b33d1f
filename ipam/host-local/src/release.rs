//! DEL and GC: removing leases, under the store's lock.

use std::collections::HashSet;
use std::net::IpAddr;

use cni::{Attachment, Error};

use crate::store::{Owner, Store};

/// DEL: removes every lease of (id, ifname); when there is none, removes the
/// container's legacy id-only leases instead (the reference's rule). Only
/// files named like an address are considered, so `last_reserved_ip.*` and
/// `lock` are never removed. Returns what was released. Every removal is
/// tried; failures are reported together (code 5).
pub fn release_attachment(store: &Store, id: &str, ifname: &str) -> Result<Vec<IpAddr>, Error> {
    let leases = store.leases()?;
    let mut doomed: Vec<IpAddr> = leases
        .iter()
        .filter(|l| l.owner.is_attachment(id, ifname))
        .map(|l| l.ip)
        .collect();
    if doomed.is_empty() {
        doomed = leases
            .iter()
            .filter(|l| l.owner.is_legacy(id))
            .map(|l| l.ip)
            .collect();
    }
    remove_all(store, doomed)
}

/// GC: removes the leases whose attachment is not in `valid`. Legacy id-only
/// leases stay when their container id is in `valid`; empty lease files
/// (a writer died mid-way) go. Errors are collected; the rest is still done.
pub fn collect_garbage(store: &Store, valid: &[Attachment]) -> Result<Vec<IpAddr>, Error> {
    let pairs: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let doomed = store
        .leases()?
        .into_iter()
        .filter(|l| match &l.owner {
            Owner::Attachment { id, ifname } => !pairs.contains(&(id.as_str(), ifname.as_str())),
            Owner::Legacy(id) => !ids.contains(id.as_str()),
            Owner::Empty => true,
        })
        .map(|l| l.ip)
        .collect();
    remove_all(store, doomed)
}

fn remove_all(store: &Store, ips: Vec<IpAddr>) -> Result<Vec<IpAddr>, Error> {
    let mut errors = Vec::new();
    let mut done = Vec::new();
    for ip in ips {
        match store.release(ip) {
            Ok(()) => done.push(ip),
            Err(e) => errors.push(e.msg),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(Error::io(errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &"net1".parse().unwrap()).unwrap();
        for (name, content) in files {
            std::fs::write(s.dir().join(name), content).unwrap();
        }
        (tmp, s)
    }

    fn names(s: &Store) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn att(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.parse().unwrap(),
            ifname: ifname.parse().unwrap(),
        }
    }

    #[test]
    fn del_removes_the_attachments_leases_only() {
        let (_t, s) = setup(&[
            ("10.0.0.2", b"c1\r\neth0"),
            ("fd00::2", b"c1\r\neth0"),
            ("10.0.0.3", b"c1\r\nnet1"),
            ("10.0.0.4", b"c2\r\neth0"),
            ("10.0.0.5", b"c1"),
        ]);
        let gone = release_attachment(&s, "c1", "eth0").unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(names(&s), ["10.0.0.3", "10.0.0.4", "10.0.0.5", "lock"]);
        // A second DEL finds no eth0 lease, so (as the reference does) it
        // falls back to the container's legacy id-only lease.
        let gone = release_attachment(&s, "c1", "eth0").unwrap();
        assert_eq!(gone, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(release_attachment(&s, "c1", "eth0").unwrap().is_empty());
        assert_eq!(names(&s), ["10.0.0.3", "10.0.0.4", "lock"]);
    }

    #[test]
    fn del_falls_back_to_legacy_leases_and_never_touches_other_files() {
        // A container id that looks like an address, as the charset allows:
        // the reference's legacy pass would delete last_reserved_ip.0 here.
        let (_t, s) = setup(&[
            ("10.0.0.2", b"10.0.0.2"),
            ("10.0.0.3", b"10.0.0.2\n"),
            ("10.0.0.4", b"10.0.0.2\r\neth5"),
            ("last_reserved_ip.0", b"10.0.0.2"),
            ("note", b"10.0.0.2"),
        ]);
        let gone = release_attachment(&s, "10.0.0.2", "eth9").unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(
            names(&s),
            ["10.0.0.4", "last_reserved_ip.0", "lock", "note"]
        );
    }

    #[test]
    fn gc_keeps_valid_attachments_and_their_legacy_leases() {
        let (_t, s) = setup(&[
            ("10.0.0.2", b"keep\r\neth0"),
            ("10.0.0.3", b"keep\r\nnet1"),
            ("10.0.0.4", b"gone\r\neth0"),
            ("10.0.0.5", b"keep"),
            ("10.0.0.6", b"oldgone"),
            ("10.0.0.7", b""),
            ("last_reserved_ip.0", b"10.0.0.7"),
        ]);
        let mut gone = collect_garbage(&s, &[att("keep", "eth0")]).unwrap();
        gone.sort();
        let want: Vec<IpAddr> = ["10.0.0.3", "10.0.0.4", "10.0.0.6", "10.0.0.7"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(gone, want);
        assert_eq!(
            names(&s),
            ["10.0.0.2", "10.0.0.5", "last_reserved_ip.0", "lock"]
        );
        collect_garbage(&s, &[]).unwrap();
        assert_eq!(names(&s), ["last_reserved_ip.0", "lock"]);
    }
}
