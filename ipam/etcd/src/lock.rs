//! The node-local lock that serialises this node's allocations.
//!
//! Without it, concurrent ADDs on one node would all update the same block
//! and lose to each other's compare-and-swap (30 at once: ~450 attempts).
//! With it, a node's ADDs follow each other and conflict only with other
//! nodes (borrowing, claiming) and admin changes; the transaction stays the
//! guarantee, the lock only spares the retries. The wait is bounded by the
//! invocation's timeout.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni::Error;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where the lock files live (a tmpfs: a reboot forgets them, as it should).
pub const LOCK_DIR: &str = "/run/cni-etcd-ipam";

/// Held for the life of the value; released on drop (and by the kernel when
/// the process dies).
pub struct NodeLock {
    _lock: Flock<File>,
}

/// `<dir>/<network>@<node>.lock`: one lock per network and node, so
/// simulated nodes on one machine don't wait for each other.
pub fn lock_path(dir: &Path, network: &str, node: &str) -> PathBuf {
    dir.join(format!("{network}@{node}.lock"))
}

impl NodeLock {
    /// Takes the lock, polling until `deadline` (code 11 past it).
    pub fn acquire(
        dir: &Path,
        network: &str,
        node: &str,
        deadline: Instant,
    ) -> Result<NodeLock, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("cannot create {}: {e}", dir.display())))?;
        let path = lock_path(dir, network, node);
        let mut pause = Duration::from_micros(200);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io(format!("cannot open {}: {e}", path.display())))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(NodeLock { _lock: lock }),
                Err((_, Errno::EWOULDBLOCK)) | Err((_, Errno::EINTR)) => {}
                Err((_, e)) => {
                    return Err(Error::io(format!("cannot lock {}: {e}", path.display())))
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::try_again_later(format!(
                    "{} is held by another etcd-ipam on this node past the timeout",
                    path.display()
                )));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}
