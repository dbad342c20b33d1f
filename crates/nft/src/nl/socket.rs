//! A `NETLINK_NETFILTER` socket in the calling thread's network namespace:
//! atomic batches (every message acknowledged, or the whole batch refused)
//! and dumps.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::msg::{
    messages, MsgBuf, NETLINK_NETFILTER, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};

/// A failed netlink exchange: the errno and what we were doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NlError {
    pub errno: i32,
    pub what: String,
}

impl NlError {
    fn os(what: impl Into<String>) -> NlError {
        NlError {
            errno: std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
            what: what.into(),
        }
    }

    /// The kernel has no nf_tables (no netfilter netlink family).
    pub fn nf_tables_absent(&self) -> bool {
        matches!(self.errno, libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT)
    }

    /// `CNI_RS_NFT_EXEC=1` turned the netlink path off.
    pub fn is_disabled(&self) -> bool {
        self.errno == DISABLED
    }

    pub fn detail(&self) -> String {
        if self.is_disabled() {
            return self.what.clone();
        }
        format!(
            "{}: {}",
            self.what,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

/// The errno of [`NlError`]s for "netlink path disabled" (never a kernel's).
pub(crate) const DISABLED: i32 = -1;

/// Whether sockets are parked instead of closed (see [`park_sockets`]).
static PARKING: AtomicBool = AtomicBool::new(false);

/// Parked sockets, and whether any of them committed a deletion.
static PARKED: Mutex<(Vec<OwnedFd>, bool)> = Mutex::new((Vec::new(), false));

/// Keeps the netfilter sockets of this process open after use, until
/// [`release_sockets`] (or exit).
///
/// Why: once a batch deleted rules, the kernel frees them after an RCU grace
/// period (~15 ms here) in a work item. Closing *any* netfilter socket while
/// that is pending makes the close wait for it, holding the nf_tables commit
/// mutex, which a network device's unregistration also takes: a bridge DEL
/// that closed its sockets while its veth was being deleted would wait out
/// the two one after the other. Parked, the sockets are closed after the
/// veth is gone, when the kernel has usually freed the rules on its own.
pub fn park_sockets(on: bool) {
    PARKING.store(on, Ordering::Relaxed);
}

fn parked() -> std::sync::MutexGuard<'static, (Vec<OwnedFd>, bool)> {
    PARKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Closes the parked sockets. If one of them deleted rules, a forked child
/// holds them and closes them, so a wait for the kernel's release (see
/// [`park_sockets`]) falls on the child, not on the plugin's answer: the
/// rules are already gone, only their memory is not freed yet. A one-shot
/// plugin calls this once its own work is done.
pub fn release_sockets() {
    PARKING.store(false, Ordering::Relaxed);
    let (fds, deleted) = std::mem::take(&mut *parked());
    if deleted && !fds.is_empty() {
        let keep: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        hand_to_child(&keep);
    }
    // Our copies close here; a child's keep the sockets open until it exits.
    drop(fds);
}

const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Dump answers come in datagrams of at most 32 KiB.
const RECV_BUF: usize = 64 * 1024;

pub(crate) struct Socket {
    /// `None` only once parked (in drop).
    fd: Option<OwnedFd>,
    seq: u32,
    /// A committed batch deleted objects: closing waits for their release.
    deleted: bool,
}

impl Socket {
    pub fn open() -> Result<Socket, NlError> {
        // SAFETY: plain syscalls on values we own; the fd is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(NlError::os("open a netfilter netlink socket"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs().try_into().unwrap_or(10),
            tv_usec: 0,
        };
        // SAFETY: `tv` outlives the call; the size matches its type.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NlError::os("set the netlink receive timeout"));
        }
        Ok(Socket {
            fd: Some(fd),
            seq: 0,
            deleted: false,
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, buf: &[u8], what: &str) -> Result<(), NlError> {
        // SAFETY: an all-zero sockaddr_nl is valid; pid 0 is the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and addr are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.raw(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(NlError::os(what));
        }
        if n as usize != buf.len() {
            return Err(NlError {
                errno: libc::EMSGSIZE,
                what: what.to_string(),
            });
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], what: &str) -> Result<usize, NlError> {
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.raw(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = NlError::os(what);
                if e.errno == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(NlError {
                    errno: libc::EMSGSIZE,
                    what: format!("{what}: reply truncated"),
                });
            }
            return Ok(n);
        }
    }

    /// Sends `body` (messages built with sequence numbers from
    /// [`Socket::next_seq`], each with `NLM_F_ACK`) as one atomic batch and
    /// waits until the kernel acknowledged every one of `acks`. The first
    /// error refuses the whole batch.
    pub fn commit(
        &mut self,
        body: &MsgBuf,
        acks: &[u32],
        deletes: bool,
        what: &str,
    ) -> Result<(), NlError> {
        let mut buf = MsgBuf::default();
        let begin_seq = self.next_seq();
        let b = buf.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        buf.end(b);
        buf.buf.extend_from_slice(&body.buf);
        let end_seq = self.next_seq();
        let e = buf.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        buf.end(e);
        // The kernel queues every acknowledgement at once when it commits;
        // the default receive buffer (~208 KiB) holds a few hundred. Make
        // room for a large batch (a portmap with many mappings), or the acks
        // are lost (ENOBUFS) after the batch was applied.
        let room = acks.len().saturating_mul(1024).saturating_add(64 * 1024);
        if room > 128 * 1024 {
            let size = libc::c_int::try_from(room).unwrap_or(libc::c_int::MAX);
            // SAFETY: `size` outlives the call; the length matches its type.
            unsafe {
                libc::setsockopt(
                    self.raw(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        self.send(&buf.buf, what)?;
        let mut pending: Vec<u32> = acks.to_vec();
        let mut rx = vec![0u8; RECV_BUF];
        while !pending.is_empty() {
            let n = self.recv(&mut rx, what)?;
            for m in messages(&rx[..n]) {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                match m.error_code() {
                    Some(0) => pending.retain(|s| *s != m.seq),
                    Some(code) => {
                        return Err(NlError {
                            errno: -code,
                            what: what.to_string(),
                        })
                    }
                    None => {}
                }
            }
        }
        self.deleted |= deletes;
        Ok(())
    }

    /// A dump request; returns the attribute area (after nfgenmsg) of every
    /// reply message of type `reply_ty`.
    pub fn dump(
        &mut self,
        msg_ty: u16,
        family: u8,
        attrs: impl FnOnce(&mut MsgBuf),
        what: &str,
    ) -> Result<Vec<Vec<u8>>, NlError> {
        let seq = self.next_seq();
        let mut buf = MsgBuf::default();
        let m = buf.begin_nft(msg_ty, NLM_F_REQUEST | NLM_F_DUMP, seq, family);
        attrs(&mut buf);
        buf.end(m);
        self.send(&buf.buf, what)?;
        let mut out = Vec::new();
        let mut rx = vec![0u8; RECV_BUF];
        loop {
            let n = self.recv(&mut rx, what)?;
            for m in messages(&rx[..n]) {
                if m.seq != seq {
                    continue;
                }
                if m.flags & NLM_F_DUMP_INTR != 0 {
                    // The table changed while the kernel dumped it: the
                    // listing may be incomplete. The caller lists again.
                    return Err(NlError {
                        errno: libc::EINTR,
                        what: format!("{what}: interrupted by a concurrent change"),
                    });
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => match m.error_code() {
                        Some(0) | None => return Ok(out),
                        Some(code) => {
                            return Err(NlError {
                                errno: -code,
                                what: what.to_string(),
                            })
                        }
                    },
                    _ => out.push(m.payload.get(4..).unwrap_or(&[]).to_vec()),
                }
            }
        }
    }

    /// A single get request answered by one message (or an error).
    pub fn get(
        &mut self,
        msg_ty: u16,
        family: u8,
        attrs: impl FnOnce(&mut MsgBuf),
        what: &str,
    ) -> Result<Vec<u8>, NlError> {
        let seq = self.next_seq();
        let mut buf = MsgBuf::default();
        let m = buf.begin_nft(msg_ty, NLM_F_REQUEST | NLM_F_ACK, seq, family);
        attrs(&mut buf);
        buf.end(m);
        self.send(&buf.buf, what)?;
        let mut rx = vec![0u8; RECV_BUF];
        let mut reply = None;
        loop {
            let n = self.recv(&mut rx, what)?;
            for m in messages(&rx[..n]) {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    return match m.error_code() {
                        Some(0) | None => Ok(reply.unwrap_or_default()),
                        Some(code) => Err(NlError {
                            errno: -code,
                            what: what.to_string(),
                        }),
                    };
                }
                reply = Some(m.payload.get(4..).unwrap_or(&[]).to_vec());
            }
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if PARKING.load(Ordering::Relaxed) {
            if let Some(fd) = self.fd.take() {
                let mut p = parked();
                p.0.push(fd);
                p.1 |= self.deleted;
            }
        }
        // Otherwise the OwnedFd closes it now (waiting for a pending release).
    }
}

/// Forks a child that keeps the sockets `keep` open and exits at once,
/// closing them there (and waiting for the kernel's release, if pending). The child closes every other descriptor first, so it
/// holds no pipe the runtime waits on and no lock, and it only makes
/// async-signal-safe calls (the parent may have other threads). A failed fork
/// leaves the sockets to be closed by the caller, with the wait.
fn hand_to_child(keep: &[RawFd]) {
    let mut sorted: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    sorted.sort_unstable();
    // SAFETY: see above; the child never returns into Rust code and touches
    // only `sorted`, allocated before the fork.
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
