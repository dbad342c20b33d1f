//! The netlink handle: one blocking rtnetlink socket bound to one namespace.
//!
//! Requests are `netlink-packet-route` messages, serialized, sent, and the
//! answers read back on the same thread: no async runtime, no connection task
//! (a plugin makes a dozen requests and exits; a runtime's start, its epoll
//! and eventfd round trips per request cost more than the requests).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Room for one datagram from the kernel: dumps come in skbs of at most
/// 32 KiB; anything larger is reported as truncated.
const RECV_BUF: usize = 64 * 1024;

/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// How many times an interrupted dump is asked for.
const DUMP_ATTEMPTS: usize = 3;

/// A route-netlink socket in one network namespace.
///
/// Every method blocks until the kernel has answered. Requests from several
/// threads on one handle are serialized.
pub struct Netlink {
    conn: Mutex<Conn>,
    netns: PathBuf,
}

struct Conn {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish()
    }
}

/// Creates a route-netlink socket in the namespace of the calling thread.
pub(crate) fn open_socket(context: &str) -> Result<OwnedFd> {
    // SAFETY: plain syscalls; the descriptor is owned right away.
    let fd = unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if raw < 0 {
            return Err(Error::io(context, std::io::Error::last_os_error()));
        }
        OwnedFd::from_raw_fd(raw)
    };
    // Strict checking makes the kernel honour the filters in dump requests
    // (e.g. the link index of an address dump) instead of dumping the whole
    // namespace for us to filter. Kernels before 4.20 lack the option; the
    // filters are applied on our side as well, so that only costs time.
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call; the length matches its type.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_GET_STRICT_CHK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

impl Netlink {
    fn new(fd: OwnedFd, netns: PathBuf) -> Netlink {
        Netlink {
            conn: Mutex::new(Conn {
                fd,
                seq: 0,
                // Zeroed allocation: pages the kernel's answers never reach
                // are never touched (no page faults for a buffer mostly idle).
                buf: vec![0u8; RECV_BUF],
            }),
            netns,
        }
    }

    /// Opens a socket inside `netns`. The socket is created on a short-lived
    /// helper thread that joins the namespace and exits; the socket stays bound
    /// to that namespace and is used from the caller's thread afterwards.
    pub fn connect(netns: &Netns) -> Result<Netlink> {
        let context = format!("open netlink socket in netns {}", netns.path().display());
        let fd = netns.run_in(|| open_socket(&context))??;
        Ok(Netlink::new(fd, netns.path().to_path_buf()))
    }

    /// Opens a socket inside `netns` from the calling thread, moved there for
    /// that moment ([`Netns::enter`]): no helper thread. For a plugin's own
    /// threads; never on an async runtime's worker.
    pub fn connect_entering(netns: &Netns) -> Result<Netlink> {
        let context = format!("open netlink socket in netns {}", netns.path().display());
        let fd = {
            let _inside = netns.enter()?;
            open_socket(&context)?
        };
        Ok(Netlink::new(fd, netns.path().to_path_buf()))
    }

    /// Opens a socket in the calling thread's own namespace.
    pub fn connect_current() -> Result<Netlink> {
        let fd = open_socket("open netlink socket in the current netns")?;
        Ok(Netlink::new(fd, PathBuf::from("/proc/thread-self/ns/net")))
    }

    /// The path of the namespace this socket lives in (for messages).
    pub fn netns_path(&self) -> &std::path::Path {
        &self.netns
    }

    /// Error context naming the operation and this socket's namespace.
    pub(crate) fn ctx(&self, op: impl std::fmt::Display) -> String {
        format!("{op} (netns {})", self.netns.display())
    }

    /// Sends `msg` with `flags` (`NLM_F_REQUEST` is added; without
    /// `NLM_F_DUMP`, `NLM_F_ACK` too) and returns the messages the kernel
    /// answered with: every message of a dump up to its end, or whatever
    /// precedes the acknowledgement (a get's reply, an echo). A refusal is an
    /// error carrying the kernel's errno, in the context of `op`.
    pub(crate) fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl std::fmt::Display,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        if flags & NLM_F_DUMP != NLM_F_DUMP {
            return Ok(self.request_once(msg, flags, &op)?.0);
        }
        // A dump cut short by a concurrent change (NLM_F_DUMP_INTR) may miss
        // entries: ask again, a few times.
        for _ in 0..DUMP_ATTEMPTS - 1 {
            match self.request_once(msg.clone(), flags, &op)? {
                (answers, false) => return Ok(answers),
                (_, true) => continue,
            }
        }
        Ok(self.request_once(msg, flags, &op)?.0)
    }

    /// One exchange; the flag says whether a dump was interrupted.
    fn request_once(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn std::fmt::Display,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut interrupted = false;
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        conn.seq = conn.seq.wrapping_add(1);
        let seq = conn.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        let fd = conn.fd.as_raw_fd();
        let context = || self.ctx(op);
        send_to_kernel(fd, &out).map_err(|e| Error::io(context(), e))?;
        let mut answers = Vec::new();
        loop {
            let n = recv_from_kernel(fd, &mut conn.buf).map_err(|e| Error::io(context(), e))?;
            if n > conn.buf.len() {
                return Err(Error::protocol(context(), "reply truncated"));
            }
            let mut data = &conn.buf[..n];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if len < 16 || len > data.len() {
                    return Err(Error::protocol(context(), "malformed reply"));
                }
                let this = &data[..len];
                let aligned = (len + 3) & !3;
                data = data.get(aligned..).unwrap_or(&[]);
                let reply_seq = u32::from_ne_bytes([this[8], this[9], this[10], this[11]]);
                if reply_seq != seq {
                    // A late answer to an earlier request: not ours.
                    continue;
                }
                if u16::from_ne_bytes([this[6], this[7]]) & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(this)
                    .map_err(|e| Error::protocol(context(), e.to_string()))?;
                match parsed.payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Error(e) => {
                        let code = e.raw_code();
                        if code != 0 {
                            return Err(Error::nack(context(), code));
                        }
                        // The acknowledgement ends every request that is not a dump.
                        if !dump {
                            return Ok((answers, interrupted));
                        }
                    }
                    NetlinkPayload::Done(d) => {
                        if d.code != 0 {
                            return Err(Error::nack(context(), d.code));
                        }
                        return Ok((answers, interrupted));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Sends one datagram of requests to the kernel.
pub(crate) fn send_to_kernel(fd: RawFd, buf: &[u8]) -> std::io::Result<()> {
    // SAFETY: an all-zero sockaddr_nl is valid; pid 0 is the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `buf` and `kernel` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one datagram; returns its full length, which exceeds
/// `buf.len()` when it did not fit (`MSG_TRUNC`).
pub(crate) fn recv_from_kernel(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
