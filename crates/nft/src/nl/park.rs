//! Parking: netfilter sockets kept open after use, then closed by a forked
//! child.
//!
//! Why: once a batch deleted rules, the kernel frees them after an RCU grace
//! period, in a work item. Closing *any* netfilter socket while that is
//! pending waits for it, holding the nf_tables commit mutex, which a network
//! device's unregistration also takes. A bridge DEL that closed its socket
//! while its veth was being deleted would wait out the two one after the
//! other; parked, the sockets are closed once the veth is gone, when the
//! kernel has usually freed the rules on its own, and by a child, so any
//! wait left is the child's, not the plugin's answer (the rules are gone as
//! soon as the batch is acknowledged; only their memory is not freed yet).
//! Measured in BENCHMARKS.md.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use netlink::socket::{Family, Kernel, Transport};

/// How many [`Parked`] guards are alive.
static PARKING: AtomicUsize = AtomicUsize::new(0);

/// Parked sockets, and whether any of them committed a deletion.
static PARKED: Mutex<(Vec<Kernel>, bool)> = Mutex::new((Vec::new(), false));

fn parked() -> std::sync::MutexGuard<'static, (Vec<Kernel>, bool)> {
    PARKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// While alive, this process's netfilter sockets stay open after use; when
/// it is dropped (on every return path) they are closed, through a forked
/// child if one of them deleted something.
#[derive(Debug)]
#[must_use = "the sockets are released when the guard is dropped"]
pub struct Parked {
    _private: (),
}

/// Parks the netfilter sockets of this process until the returned guard is
/// dropped. A one-shot plugin takes it before a DEL and drops it once its own
/// kernel work is done (the bridge: after its veth is gone).
pub fn park_sockets() -> Parked {
    PARKING.fetch_add(1, Ordering::Relaxed);
    Parked { _private: () }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if PARKING.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let (socks, deleted) = std::mem::take(&mut *parked());
        if deleted && !socks.is_empty() {
            let keep: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
            hand_to_child(&keep);
        }
        // Our copies close here; a child's keep the sockets open until it exits.
        drop(socks);
    }
}

/// The netfilter transport of the netlink back end: the kernel's socket,
/// parked instead of closed while a [`Parked`] guard is alive.
#[derive(Debug)]
pub(crate) struct Parkable {
    /// `None` only once parked (in drop).
    kernel: Option<Kernel>,
    /// A committed batch deleted objects: closing waits for their release.
    deleted: bool,
}

impl Parkable {
    pub fn open() -> io::Result<Parkable> {
        Ok(Parkable {
            kernel: Some(Kernel::open(Family::Netfilter)?),
            deleted: false,
        })
    }

    fn kernel(&mut self) -> io::Result<&mut Kernel> {
        self.kernel
            .as_mut()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }
}

impl Transport for Parkable {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.kernel()?.send(datagram)
    }

    fn recv(&mut self) -> io::Result<&[u8]> {
        self.kernel()?.recv()
    }

    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        self.kernel()?.reserve(bytes)
    }
}

impl super::Committed for Parkable {
    fn deleted_objects(&mut self) {
        self.deleted = true;
    }
}

impl Drop for Parkable {
    fn drop(&mut self) {
        if PARKING.load(Ordering::Relaxed) > 0 {
            if let Some(kernel) = self.kernel.take() {
                let mut p = parked();
                p.0.push(kernel);
                p.1 |= self.deleted;
            }
        }
        // Otherwise the socket closes now (waiting for a pending release).
    }
}

/// Forks a child that keeps the sockets `keep` open and exits at once,
/// closing them there (and waiting for the kernel's release, if pending).
/// The child closes every other descriptor first, so it holds no pipe the
/// runtime waits on and no lock, and it only makes async-signal-safe calls
/// (the parent may have other threads). A failed fork leaves the sockets to
/// be closed by the caller, with the wait.
fn hand_to_child(keep: &[RawFd]) {
    let mut sorted: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    sorted.sort_unstable();
    // SAFETY: fork in a possibly multi-threaded process: the child only
    // makes async-signal-safe calls (close_range / close, _exit), never
    // returns into Rust code and touches only `sorted`, allocated before
    // the fork. The parent goes on as if nothing happened.
    unsafe {
        if libc::fork() == 0 {
            let close_range = |first: u32, last: u32| {
                let done = libc::syscall(
                    libc::SYS_close_range,
                    libc::c_long::from(first),
                    libc::c_long::from(last),
                    0 as libc::c_long,
                ) == 0;
                if !done {
                    // Kernels before 5.9 (or a seccomp filter): one by one,
                    // up to the descriptors a plugin can have open.
                    for fd in first..=last.min(4095) {
                        libc::close(fd as libc::c_int);
                    }
                }
            };
            let mut next = 0u32;
            for &fd in &sorted {
                if fd > next {
                    close_range(next, fd - 1);
                }
                next = fd.saturating_add(1);
            }
            close_range(next, u32::MAX);
            libc::_exit(0);
        }
    }
}
