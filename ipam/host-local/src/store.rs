//! The lease directory, byte for byte the reference's layout, so either
//! implementation can take over the other's leases:
//!
//! - `<dataDir>/<network>/` (mode 0755), created on first ADD;
//! - one file per leased address, named as Go prints the address (dotted
//!   IPv4, RFC 5952 IPv6 - the same text Rust's `Display` gives), holding
//!   `<containerID>\r\n<ifname>` with no trailing newline, mode 0644, created
//!   with O_EXCL so two allocators can never both win an address;
//! - `last_reserved_ip.<set index>`: the address last reserved from that set,
//!   no newline;
//! - `lock`: an empty file (mode 0750, as the reference makes it) that every
//!   operation holds an exclusive `flock` on. A [`Store`] holds the lock for
//!   its whole life, so an ADD is atomic across all its range sets; the
//!   reference takes the same lock per range set, so both can run side by
//!   side.
//!
//! Older reference versions wrote only `<containerID>` into a lease ("legacy"
//! leases); they are read as [`Owner::Legacy`].

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cni::{Error, NetworkName};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Separates container id and ifname in a lease file.
pub const LINE_BREAK: &str = "\r\n";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const LOCK_FILE: &str = "lock";
const DIR_MODE: u32 = 0o755;
const LEASE_MODE: u32 = 0o644;
const LOCK_MODE: u32 = 0o750;

/// Who holds a lease, from the file's content (whitespace-trimmed, as the
/// reference compares it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `<containerID>\r\n<ifname>`.
    Attachment { id: String, ifname: String },
    /// A bare `<containerID>`, written by old reference versions.
    Legacy(String),
    /// An empty file: a writer died between create and write.
    Empty,
}

impl Owner {
    pub fn parse(content: &[u8]) -> Owner {
        let text = String::from_utf8_lossy(content);
        let text = text.trim();
        if text.is_empty() {
            return Owner::Empty;
        }
        match text.split_once(LINE_BREAK) {
            Some((id, ifname)) => Owner::Attachment {
                id: id.to_string(),
                ifname: ifname.to_string(),
            },
            None => Owner::Legacy(text.to_string()),
        }
    }

    /// The file content for an attachment.
    pub fn content(id: &str, ifname: &str) -> String {
        format!("{}{LINE_BREAK}{ifname}", id.trim())
    }

    pub fn is_attachment(&self, id: &str, ifname: &str) -> bool {
        matches!(self, Owner::Attachment { id: i, ifname: f } if i == id && f == ifname)
    }

    pub fn is_legacy(&self, id: &str) -> bool {
        matches!(self, Owner::Legacy(i) if i == id)
    }
}

/// One lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub owner: Owner,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}: {e}", path.display()))
}

/// A network's lease directory, locked for as long as this value lives.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    /// `<data_dir>/<network>`.
    pub fn dir_of(data_dir: &Path, network: &NetworkName) -> PathBuf {
        data_dir.join(network.as_str())
    }

    /// Creates the directory if needed and takes the lock (ADD).
    pub fn create(data_dir: &Path, network: &NetworkName) -> Result<Store, Error> {
        let dir = Store::dir_of(data_dir, network);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|e| io_err("cannot create lease directory", &dir, e))?;
        Store::lock(dir)
    }

    /// Takes the lock of an existing directory; `None` when there is no
    /// directory (nothing was ever leased), which DEL, CHECK and GC must not
    /// create.
    pub fn open_existing(data_dir: &Path, network: &NetworkName) -> Result<Option<Store>, Error> {
        let dir = Store::dir_of(data_dir, network);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Store::lock(dir).map(Some),
            Ok(_) => Err(Error::io(format!(
                "lease directory {} is not a directory",
                dir.display()
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot open lease directory", &dir, e)),
        }
    }

    fn lock(dir: PathBuf) -> Result<Store, Error> {
        let path = dir.join(LOCK_FILE);
        // O_RDONLY|O_CREAT as the reference opens it (flock needs no write access).
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_creat())
            .mode(LOCK_MODE)
            .open(&path)
            .map_err(|e| io_err("cannot open lock file", &path, e))?;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => {
                    return Ok(Store { dir, _lock: lock });
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(Error::io(format!("cannot lock {}: {e}", path.display())))
                }
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lease_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// The addresses that have a lease file, without reading them.
    pub fn leased_ips(&self) -> Result<Vec<IpAddr>, Error> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| io_err("cannot list lease directory", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("cannot list lease directory", &self.dir, e))?;
            if let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(ip);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every lease with its owner, sorted by address. Only files named like
    /// an address are leases; a file that vanished meanwhile is skipped.
    pub fn leases(&self) -> Result<Vec<Lease>, Error> {
        let mut out = Vec::new();
        for ip in self.leased_ips()? {
            let path = self.lease_path(ip);
            match std::fs::read(&path) {
                Ok(content) => out.push(Lease {
                    ip,
                    owner: Owner::parse(&content),
                }),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // A directory named like an address is not a lease.
                Err(e) if e.kind() == ErrorKind::IsADirectory => {}
                Err(e) => return Err(io_err("cannot read lease", &path, e)),
            }
        }
        Ok(out)
    }

    /// Creates the lease file for `ip` with O_EXCL. `Ok(false)` when the
    /// address is already leased.
    pub fn try_reserve(&self, ip: IpAddr, id: &str, ifname: &str) -> Result<bool, Error> {
        let path = self.lease_path(ip);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(LEASE_MODE)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err("cannot create lease", &path, e)),
        };
        if let Err(e) = file.write_all(Owner::content(id, ifname).as_bytes()) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(io_err("cannot write lease", &path, e));
        }
        Ok(true)
    }

    /// Removes the lease of `ip`; a lease that is already gone is fine.
    pub fn release(&self, ip: IpAddr) -> Result<(), Error> {
        let path = self.lease_path(ip);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove lease", &path, e)),
        }
    }

    fn last_reserved_path(&self, set: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"))
    }

    /// Where the round-robin walk of set `set` resumes; `None` when unknown
    /// or unreadable (the walk then starts at the beginning, as in the reference).
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let bytes = std::fs::read(self.last_reserved_path(set)).ok()?;
        String::from_utf8_lossy(&bytes).trim().parse().ok()
    }

    pub fn set_last_reserved(&self, set: usize, ip: IpAddr) -> Result<(), Error> {
        let path = self.last_reserved_path(set);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(LEASE_MODE)
            .open(&path)
            .and_then(|mut f| f.write_all(ip.to_string().as_bytes()))
            .map_err(|e| io_err("cannot write", &path, e))
    }
}

/// O_CREAT for `custom_flags`, so the lock file can be created read-only.
fn libc_o_creat() -> i32 {
    nix::fcntl::OFlag::O_CREAT.bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::mpsc;
    use std::time::Duration;

    fn net() -> NetworkName {
        "net1".parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn owner_format_round_trips_and_reads_legacy_and_empty() {
        assert_eq!(Owner::content("ctr1", "eth0"), "ctr1\r\neth0");
        assert_eq!(
            Owner::parse(b"ctr1\r\neth0"),
            Owner::Attachment {
                id: "ctr1".into(),
                ifname: "eth0".into()
            }
        );
        assert_eq!(
            Owner::parse(b"  ctr1\r\neth0\n"),
            Owner::Attachment {
                id: "ctr1".into(),
                ifname: "eth0".into()
            }
        );
        assert_eq!(Owner::parse(b"oldctr\n"), Owner::Legacy("oldctr".into()));
        assert_eq!(Owner::parse(b" \n"), Owner::Empty);
        let o = Owner::parse(b"ctr1\r\neth0");
        assert!(o.is_attachment("ctr1", "eth0"));
        assert!(!o.is_attachment("ctr1", "eth1"));
        assert!(!o.is_legacy("ctr1"));
        assert!(Owner::parse(b"ctr1").is_legacy("ctr1"));
    }

    #[test]
    fn reserve_writes_the_references_bytes_once() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &net()).unwrap();
        assert_eq!(s.dir(), tmp.path().join("net1"));
        assert!(s.try_reserve(ip("10.0.0.2"), "ctr1", "eth0").unwrap());
        assert!(!s.try_reserve(ip("10.0.0.2"), "ctr2", "eth0").unwrap());
        let f = tmp.path().join("net1/10.0.0.2");
        assert_eq!(std::fs::read(&f).unwrap(), b"ctr1\r\neth0");
        assert_eq!(mode(&f), 0o644);
        assert!(s.try_reserve(ip("fd00::2"), "ctr1", "eth0").unwrap());
        assert!(tmp.path().join("net1/fd00::2").is_file());
        assert_eq!(mode(&tmp.path().join("net1/lock")), 0o750);
        assert_eq!(mode(&tmp.path().join("net1")), 0o755);
    }

    #[test]
    fn ipv6_names_are_gos_rfc5952_text() {
        // Go never compresses a single zero group; neither does Rust.
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &net()).unwrap();
        let a = ip("fd00:0:1:1:1:1:1:1");
        assert!(s.try_reserve(a, "c", "eth0").unwrap());
        assert!(tmp.path().join("net1/fd00:0:1:1:1:1:1:1").is_file());
        assert!(s
            .try_reserve(ip("FD00:0:0:0:0:0:0:A"), "c", "eth0")
            .unwrap());
        assert!(tmp.path().join("net1/fd00::a").is_file());
    }

    #[test]
    fn leases_lists_only_address_files() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &net()).unwrap();
        let d = s.dir().to_path_buf();
        std::fs::write(d.join("10.0.0.3"), b"ctr3\r\neth0").unwrap();
        std::fs::write(d.join("10.0.0.4"), b"old").unwrap();
        std::fs::write(d.join("10.0.0.5"), b"").unwrap();
        std::fs::write(d.join("notes.txt"), b"ctr3\r\neth0").unwrap();
        std::fs::create_dir(d.join("10.0.0.9")).unwrap();
        s.set_last_reserved(0, ip("10.0.0.3")).unwrap();
        let leases = s.leases().unwrap();
        assert_eq!(
            leases,
            vec![
                Lease {
                    ip: ip("10.0.0.3"),
                    owner: Owner::Attachment {
                        id: "ctr3".into(),
                        ifname: "eth0".into()
                    }
                },
                Lease {
                    ip: ip("10.0.0.4"),
                    owner: Owner::Legacy("old".into())
                },
                Lease {
                    ip: ip("10.0.0.5"),
                    owner: Owner::Empty
                },
            ]
        );
        assert_eq!(
            s.leased_ips().unwrap().len(),
            4,
            "the directory counts as taken"
        );
    }

    #[test]
    fn release_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &net()).unwrap();
        assert!(s.try_reserve(ip("10.0.0.2"), "c", "eth0").unwrap());
        s.release(ip("10.0.0.2")).unwrap();
        s.release(ip("10.0.0.2")).unwrap();
        assert!(s.leases().unwrap().is_empty());
    }

    #[test]
    fn last_reserved_is_the_bare_address() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(tmp.path(), &net()).unwrap();
        assert_eq!(s.last_reserved(0), None);
        s.set_last_reserved(0, ip("10.88.0.2")).unwrap();
        s.set_last_reserved(2, ip("fd05::2")).unwrap();
        assert_eq!(
            std::fs::read(s.dir().join("last_reserved_ip.0")).unwrap(),
            b"10.88.0.2"
        );
        assert_eq!(s.last_reserved(0), Some(ip("10.88.0.2")));
        assert_eq!(s.last_reserved(2), Some(ip("fd05::2")));
        s.set_last_reserved(0, ip("10.88.0.3")).unwrap();
        assert_eq!(
            std::fs::read(s.dir().join("last_reserved_ip.0")).unwrap(),
            b"10.88.0.3"
        );
        std::fs::write(s.dir().join("last_reserved_ip.1"), b"garbage").unwrap();
        assert_eq!(s.last_reserved(1), None);
    }

    #[test]
    fn open_existing_does_not_create() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Store::open_existing(tmp.path(), &net()).unwrap().is_none());
        assert!(!tmp.path().join("net1").exists());
        drop(Store::create(tmp.path(), &net()).unwrap());
        assert!(Store::open_existing(tmp.path(), &net()).unwrap().is_some());
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        let e = Store::open_existing(tmp.path(), &"file".parse().unwrap()).unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::IO_FAILURE);
    }

    #[test]
    fn the_lock_excludes_a_second_store_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Store::create(tmp.path(), &net()).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = tmp.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let s = Store::create(&path, &net()).unwrap();
            tx.send(()).unwrap();
            drop(s);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "second store got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("lock released on drop");
        t.join().unwrap();
    }
}
