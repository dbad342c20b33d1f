//! The one netlink socket of the project, for every family we speak: route
//! (links, addresses, routes, neighbours: [`crate::Netlink`],
//! [`crate::lookup`]) and netfilter (the `nft` crate's nf_tables batches and
//! dumps).
//!
//! Two layers:
//! - a [`Transport`] moves datagrams: [`Kernel`] is a real socket
//!   (`netlink-sys` underneath, in the namespace of the thread that opened
//!   it), [`Fake`] a scripted kernel that records what it was sent, for
//!   tests without root;
//! - a [`Socket`] holds the rules of the conversation, written here once:
//!   sequence numbers, which answers belong to a request, acknowledgements
//!   (all of a batch's), the end of a dump and a dump asked again when a
//!   concurrent change interrupted it.
//!
//! Requests are bytes: callers encode them (netlink-packet-route for route
//! messages, the `nft` crate's encoder for nf_tables) with a sequence number
//! from [`Socket::next_seq`], and get whole answer messages back.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::RangeInclusive;

use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::SocketAddr;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};

/// `NLMSG_ERROR`: an acknowledgement (errno 0) or a refusal.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
/// Set on dump answers when the dumped table changed meanwhile.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

/// `struct nlmsghdr`: length, type, flags, sequence number, port id.
pub const HEADER_LEN: usize = 16;

/// How many times a dump is asked for when a concurrent change keeps
/// interrupting it (its answer may then miss entries).
pub const DUMP_ATTEMPTS: usize = 3;

/// Room for one datagram from the kernel: dump answers come in skbs of at
/// most 32 KiB; anything larger is reported as truncated.
const RECV_BUF: usize = 64 * 1024;

/// Queue space one acknowledgement takes in the socket's receive buffer
/// (the skb's truesize, not the 36 bytes of the message).
const ACK_ROOM: usize = 1024;

/// Below this the default receive buffer (~208 KiB) holds every answer.
const DEFAULT_ROOM: usize = 128 * 1024;

/// The kernel answers every request we make while the request is being sent
/// (route and netfilter requests run synchronously in `sendmsg`), so a
/// receive that waits this long waits for something that will never come.
const RECV_TIMEOUT_SECS: i64 = 10;

/// The netlink families we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `NETLINK_ROUTE`: links, addresses, routes, neighbours, FDB.
    Route,
    /// `NETLINK_NETFILTER`: nf_tables.
    Netfilter,
}

/// How datagrams reach the kernel and come back.
pub trait Transport {
    /// Sends one datagram (one or more whole messages) to the kernel.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Waits for the next datagram from the kernel.
    fn recv(&mut self) -> io::Result<&[u8]>;

    /// Makes room for `bytes` of answers queued at once (a large batch's
    /// acknowledgements, which the kernel queues before we read any).
    fn reserve(&mut self, bytes: usize) -> io::Result<()>;
}

/// A real netlink socket, bound to the network namespace of the thread that
/// opened it for its whole life.
#[derive(Debug)]
pub struct Kernel {
    sock: netlink_sys::Socket,
    /// Zeroed allocation: pages the kernel's answers never reach are never
    /// touched (no page faults for a buffer mostly idle).
    buf: Vec<u8>,
}

impl Kernel {
    /// Opens a socket of `family` in the calling thread's network namespace.
    pub fn open(family: Family) -> io::Result<Kernel> {
        let sock = netlink_sys::Socket::new(match family {
            Family::Route => NETLINK_ROUTE,
            Family::Netfilter => NETLINK_NETFILTER,
        })?;
        setsockopt(
            &sock,
            sockopt::ReceiveTimeout,
            &TimeVal::new(RECV_TIMEOUT_SECS, 0),
        )?;
        if family == Family::Route {
            // Strict checking makes the kernel honour the filters in dump
            // requests (e.g. the link index of an address dump) instead of
            // dumping the whole namespace for us to filter. Kernels before
            // 4.20 lack the option; our callers filter the answers as well,
            // so there it only costs time.
            match sock.set_netlink_get_strict_chk(true) {
                Err(e) if e.raw_os_error() != Some(libc::ENOPROTOOPT) => return Err(e),
                _ => {}
            }
        }
        Ok(Kernel {
            sock,
            buf: vec![0u8; RECV_BUF],
        })
    }
}

impl std::os::fd::AsRawFd for Kernel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

impl Transport for Kernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let kernel = SocketAddr::new(0, 0);
        let sent = loop {
            match self.sock.send_to(datagram, &kernel, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if sent != datagram.len() {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<&[u8]> {
        let n = loop {
            // MSG_TRUNC: the datagram's full length even when it did not fit.
            match self.sock.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the kernel in {RECV_TIMEOUT_SECS} s"),
                    ))
                }
                other => break other?,
            }
        };
        if n > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer truncated: larger than the receive buffer",
            ));
        }
        Ok(&self.buf[..n])
    }

    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        // SO_RCVBUFFORCE passes rmem_max but needs CAP_NET_ADMIN (which
        // whoever changes nf_tables has); without it, SO_RCVBUF up to rmem_max.
        match setsockopt(&self.sock, sockopt::RcvBufForce, &bytes) {
            Ok(()) => Ok(()),
            Err(_) => self.sock.set_rx_buf_sz(bytes),
        }
    }
}

/// One message of a datagram, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// What follows the netlink header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// For `NLMSG_ERROR` and `NLMSG_DONE`: the errno the kernel put first in
    /// the payload (negative, 0 for an acknowledgement); `None` when the
    /// payload is too short to hold one.
    pub fn error_code(&self) -> Option<i32> {
        Some(i32::from_ne_bytes(
            self.payload().get(..4)?.try_into().ok()?,
        ))
    }
}

/// The messages of a datagram, in order. A length that is shorter than a
/// header or runs past the datagram ends the iteration there; [`rest`]
/// then holds what was not read.
///
/// [`rest`]: Messages::rest
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    data: &'a [u8],
}

/// Splits a datagram into its messages.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { data: datagram }
}

impl<'a> Messages<'a> {
    /// What was not read: empty after the last message of a well-formed
    /// datagram, the malformed part otherwise.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let data = self.data;
        let header = data.get(..HEADER_LEN)?;
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < HEADER_LEN || len > data.len() {
            return None;
        }
        self.data = data.get((len + 3) & !3..).unwrap_or(&[]);
        Some(Message {
            ty: u16::from_ne_bytes([header[4], header[5]]),
            flags: u16::from_ne_bytes([header[6], header[7]]),
            seq: u32::from_ne_bytes([header[8], header[9], header[10], header[11]]),
            bytes: &data[..len],
        })
    }
}

/// What ends an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Every sequence number in the list acknowledged.
    Acks,
    /// `NLMSG_DONE` of the one dump request.
    Done,
}

/// A netlink conversation over a transport: the kernel's by default.
///
/// Every exchange sends one datagram and reads until its answers are
/// complete; answers carrying other sequence numbers (late ones to an
/// earlier exchange that ended at its first error) are skipped.
#[derive(Debug)]
pub struct Socket<T = Kernel> {
    transport: T,
    seq: u32,
}

impl Socket<Kernel> {
    /// Opens a socket of `family` in the calling thread's network namespace.
    pub fn open(family: Family) -> io::Result<Socket> {
        Kernel::open(family).map(Socket::new)
    }
}

impl<T: Transport> Socket<T> {
    pub fn new(transport: T) -> Socket<T> {
        Socket { transport, seq: 0 }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The sequence number for the next message sent.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request, encoded with sequence number `seq` and
    /// `NLM_F_ACK`, and returns the messages that precede its
    /// acknowledgement (a get's answer, an echo). A refusal is an error
    /// carrying the kernel's errno, in the context of `op`.
    pub fn request(&mut self, req: &[u8], seq: u32, op: &dyn fmt::Display) -> Result<Vec<Vec<u8>>> {
        self.exchange(req, seq..=seq, &[seq], End::Acks, op)
            .map(|(answers, _)| answers)
    }

    /// Sends a batch of messages numbered `seqs`, of which those in `acked`
    /// carry `NLM_F_ACK`, and waits until each of those is acknowledged. A
    /// refusal of any message of `seqs` ends it with that error (for an
    /// nf_tables batch: the whole batch was refused).
    pub fn batch(
        &mut self,
        datagram: &[u8],
        seqs: RangeInclusive<u32>,
        acked: &[u32],
        op: &dyn fmt::Display,
    ) -> Result<Vec<Vec<u8>>> {
        // The kernel queues every acknowledgement before we read the first.
        let room = acked
            .len()
            .saturating_mul(ACK_ROOM)
            .saturating_add(RECV_BUF);
        if room > DEFAULT_ROOM {
            self.transport
                .reserve(room)
                .map_err(|e| Error::io(op.to_string(), e))?;
        }
        self.exchange(datagram, seqs, acked, End::Acks, op)
            .map(|(answers, _)| answers)
    }

    /// A dump: `build(seq)` encodes the request (with `NLM_F_DUMP`); returns
    /// every answer up to `NLMSG_DONE`. A dump a concurrent change
    /// interrupted (`NLM_F_DUMP_INTR`) may miss entries: it is asked again,
    /// up to [`DUMP_ATTEMPTS`] times, and then is an error of kind
    /// [`crate::ErrorKind::Interrupted`].
    pub fn dump(
        &mut self,
        build: &dyn Fn(u32) -> Vec<u8>,
        op: &dyn fmt::Display,
    ) -> Result<Vec<Vec<u8>>> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let (answers, interrupted) =
                self.exchange(&build(seq), seq..=seq, &[], End::Done, op)?;
            if !interrupted {
                return Ok(answers);
            }
        }
        Err(Error::interrupted(
            op.to_string(),
            format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times in a row"),
        ))
    }

    fn exchange(
        &mut self,
        datagram: &[u8],
        seqs: RangeInclusive<u32>,
        acked: &[u32],
        end: End,
        op: &dyn fmt::Display,
    ) -> Result<(Vec<Vec<u8>>, bool)> {
        exchange(&mut self.transport, datagram, seqs, acked, end, op)
    }
}

/// Sends `datagram` and reads answers numbered within `seqs` until `end`;
/// returns them (without acknowledgements and `NLMSG_DONE`) and whether any
/// said the dump was interrupted. Over `dyn Transport`: one copy of the
/// conversation in a binary, whatever transports it uses.
fn exchange(
    transport: &mut dyn Transport,
    datagram: &[u8],
    seqs: RangeInclusive<u32>,
    acked: &[u32],
    end: End,
    op: &dyn fmt::Display,
) -> Result<(Vec<Vec<u8>>, bool)> {
    let context = || op.to_string();
    transport
        .send(datagram)
        .map_err(|e| Error::io(context(), e))?;
    let mut pending: Vec<u32> = acked.to_vec();
    let mut answers = Vec::new();
    let mut interrupted = false;
    loop {
        let received = transport.recv().map_err(|e| Error::io(context(), e))?;
        let mut split = messages(received);
        for m in split.by_ref() {
            if !seqs.contains(&m.seq) {
                continue;
            }
            interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
            match (m.ty, m.error_code()) {
                (NLMSG_ERROR | NLMSG_DONE, None) => {
                    return Err(Error::protocol(context(), "answer without its errno"))
                }
                (NLMSG_ERROR | NLMSG_DONE, Some(code)) if code != 0 => {
                    return Err(Error::nack(context(), code))
                }
                (NLMSG_ERROR, Some(_)) => {
                    pending.retain(|s| *s != m.seq);
                    if end == End::Done || pending.is_empty() {
                        return Ok((answers, interrupted));
                    }
                }
                (NLMSG_DONE, Some(_)) => {
                    if end == End::Done {
                        return Ok((answers, interrupted));
                    }
                }
                _ => answers.push(m.bytes.to_vec()),
            }
        }
        if !split.rest().is_empty() {
            return Err(Error::protocol(context(), "malformed answer"));
        }
    }
}

/// What a [`Fake`] kernel answers to a datagram: the datagrams it queues.
pub type Script = dyn FnMut(&[u8]) -> Vec<Vec<u8>> + Send;

/// A scripted kernel, for tests without root: [`Transport::send`] records
/// the datagram and queues what the script answers to it; [`Transport::recv`]
/// hands the queued datagrams out in order (and fails when none is left,
/// where the kernel would make the caller wait forever).
pub struct Fake {
    script: Box<Script>,
    sent: Vec<Vec<u8>>,
    queued: VecDeque<Vec<u8>>,
    current: Vec<u8>,
    reserved: Vec<usize>,
}

impl fmt::Debug for Fake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fake")
            .field("sent", &self.sent.len())
            .field("queued", &self.queued.len())
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl Fake {
    /// A kernel that answers each datagram sent with the datagrams
    /// `script` returns for it (see the builders in [`fake`]).
    pub fn new(script: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> Fake {
        Fake {
            script: Box::new(script),
            sent: Vec::new(),
            queued: VecDeque::new(),
            current: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// Every datagram sent, in order.
    pub fn sent(&self) -> &[Vec<u8>] {
        &self.sent
    }

    /// Every receive-buffer size asked for.
    pub fn reserved(&self) -> &[usize] {
        &self.reserved
    }
}

impl Transport for Fake {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.sent.push(datagram.to_vec());
        let answers = (self.script)(datagram);
        self.queued.extend(answers);
        Ok(())
    }

    fn recv(&mut self) -> io::Result<&[u8]> {
        self.current = self.queued.pop_front().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the fake kernel has no answer queued",
            )
        })?;
        Ok(&self.current)
    }

    fn reserve(&mut self, bytes: usize) -> io::Result<()> {
        self.reserved.push(bytes);
        Ok(())
    }
}

/// Answers for a [`Fake`] script, as the kernel writes them.
pub mod fake {
    use super::{HEADER_LEN, NLMSG_DONE, NLMSG_ERROR};

    /// A message: header (length filled in) and `payload`, padded to 4 bytes.
    pub fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u32;
        let mut m = Vec::with_capacity(HEADER_LEN + payload.len() + 3);
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    /// `NLMSG_ERROR` for `seq` with `errno` (positive; 0 is an acknowledgement),
    /// followed by a copy of a request header as the kernel appends it.
    pub fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut payload = (-errno).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; HEADER_LEN]);
        message(NLMSG_ERROR, 0, seq, &payload)
    }

    /// The acknowledgement of `seq`.
    pub fn ack(seq: u32) -> Vec<u8> {
        error(seq, 0)
    }

    /// The end of dump `seq`; `flags` may carry `NLM_F_DUMP_INTR`.
    pub fn done(seq: u32, flags: u16) -> Vec<u8> {
        message(NLMSG_DONE, flags | 0x2, seq, &0i32.to_ne_bytes())
    }

    /// Several messages in one datagram.
    pub fn datagram(msgs: &[Vec<u8>]) -> Vec<u8> {
        msgs.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{ack, datagram, done, error, message};
    use super::*;
    use std::sync::{Arc, Mutex};

    const RTM_NEWLINK: u16 = 16;

    /// The messages of a datagram we sent: (type, flags, seq).
    fn headers(datagram: &[u8]) -> Vec<(u16, u16, u32)> {
        messages(datagram).map(|m| (m.ty, m.flags, m.seq)).collect()
    }

    fn request_bytes(ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        message(ty, flags, seq, &[0; 16])
    }

    #[test]
    fn a_request_returns_what_precedes_its_ack_and_skips_stale_answers() {
        let mut sock = Socket::new(Fake::new(|req| {
            let seq = messages(req).next().map(|m| m.seq).unwrap_or(0);
            vec![
                // A late refusal of an earlier request, then ours.
                error(seq.wrapping_sub(1), libc::EBUSY),
                datagram(&[message(RTM_NEWLINK, 0, seq, b"link"), ack(seq)]),
            ]
        }));
        let seq = sock.next_seq();
        let answers = sock
            .request(
                &request_bytes(18, NLM_F_REQUEST | NLM_F_ACK, seq),
                seq,
                &"get link",
            )
            .expect("request");
        assert_eq!(answers.len(), 1);
        assert_eq!(&answers[0][HEADER_LEN..], b"link");
        assert_eq!(sock.transport().sent().len(), 1);
    }

    #[test]
    fn a_refusal_carries_the_errno_and_the_context() {
        let mut sock = Socket::new(Fake::new(|req| {
            let seq = messages(req).next().map(|m| m.seq).unwrap_or(0);
            vec![error(seq, libc::EEXIST)]
        }));
        let seq = sock.next_seq();
        let err = sock
            .request(
                &request_bytes(16, NLM_F_REQUEST | NLM_F_ACK, seq),
                seq,
                &"create link br0",
            )
            .unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert_eq!(err.context(), "create link br0");
    }

    #[test]
    fn a_batch_waits_for_every_ack_across_datagrams_and_sizes_the_buffer() {
        let n = 300u32;
        let mut sock = Socket::new(Fake::new(move |req| {
            let seqs: Vec<u32> = messages(req).map(|m| m.seq).collect();
            // Begin and end carry no NLM_F_ACK: no answer for them; the
            // others acknowledged in two datagrams.
            let acks: Vec<Vec<u8>> = seqs[1..seqs.len() - 1].iter().map(|s| ack(*s)).collect();
            let (a, b) = acks.split_at(acks.len() / 2);
            vec![datagram(a), datagram(b)]
        }));
        let first = sock.next_seq();
        let mut d = request_bytes(0x10, NLM_F_REQUEST, first);
        let mut acked = Vec::new();
        for _ in 0..n {
            let s = sock.next_seq();
            acked.push(s);
            d.extend(request_bytes(0x0a06, NLM_F_REQUEST | NLM_F_ACK, s));
        }
        let last = sock.next_seq();
        d.extend(request_bytes(0x11, NLM_F_REQUEST, last));
        sock.batch(&d, first..=last, &acked, &"batch")
            .expect("batch");
        assert_eq!(sock.transport().sent().len(), 1);
        assert_eq!(headers(&sock.transport().sent()[0]).len(), n as usize + 2);
        let want = n as usize * ACK_ROOM + RECV_BUF;
        assert_eq!(sock.transport().reserved(), [want]);
    }

    #[test]
    fn a_small_batch_keeps_the_default_buffer() {
        let mut sock = Socket::new(Fake::new(|req| {
            messages(req)
                .filter(|m| m.flags & NLM_F_ACK != 0)
                .map(|m| ack(m.seq))
                .collect()
        }));
        let s = sock.next_seq();
        sock.batch(&request_bytes(1, NLM_F_ACK, s), s..=s, &[s], &"b")
            .expect("batch");
        assert!(sock.transport().reserved().is_empty());
    }

    #[test]
    fn a_batch_refused_at_its_begin_message_is_an_error() {
        // No CAP_NET_ADMIN: the kernel refuses the batch header and reads
        // nothing else, so no acknowledgement ever comes.
        let mut sock = Socket::new(Fake::new(|req| {
            let first = messages(req).next().map(|m| m.seq).unwrap_or(0);
            vec![error(first, libc::EPERM)]
        }));
        let (b, s, e) = (sock.next_seq(), sock.next_seq(), sock.next_seq());
        let mut d = request_bytes(0x10, NLM_F_REQUEST, b);
        d.extend(request_bytes(1, NLM_F_ACK, s));
        d.extend(request_bytes(0x11, NLM_F_REQUEST, e));
        let err = sock.batch(&d, b..=e, &[s], &"b").unwrap_err();
        assert_eq!(err.errno(), Some(libc::EPERM));
    }

    #[test]
    fn a_batch_error_in_the_middle_ends_it_with_that_errno() {
        let mut sock = Socket::new(Fake::new(|req| {
            let seqs: Vec<u32> = messages(req).map(|m| m.seq).collect();
            vec![datagram(&[
                ack(seqs[1]),
                error(seqs[2], libc::EBUSY),
                error(seqs[3], libc::ENOENT),
            ])]
        }));
        let b = sock.next_seq();
        let mut d = request_bytes(0x10, 1, b);
        let mut acked = Vec::new();
        for _ in 0..3 {
            let s = sock.next_seq();
            acked.push(s);
            d.extend(request_bytes(1, NLM_F_ACK, s));
        }
        let e = sock.next_seq();
        d.extend(request_bytes(0x11, 1, e));
        let err = sock.batch(&d, b..=e, &acked, &"b").unwrap_err();
        assert_eq!(err.errno(), Some(libc::EBUSY));
    }

    #[test]
    fn a_dump_reads_every_datagram_up_to_done() {
        let mut sock = Socket::new(Fake::new(|req| {
            let seq = messages(req).next().map(|m| m.seq).unwrap_or(0);
            vec![
                datagram(&[
                    message(RTM_NEWLINK, 2, seq, b"a"),
                    message(RTM_NEWLINK, 2, seq, b"b"),
                ]),
                datagram(&[message(RTM_NEWLINK, 2, seq, b"c"), done(seq, 0)]),
            ]
        }));
        let answers = sock
            .dump(
                &|seq| request_bytes(18, NLM_F_REQUEST | NLM_F_DUMP, seq),
                &"list links",
            )
            .expect("dump");
        let payloads: Vec<&[u8]> = answers
            .iter()
            .map(|a| &a[HEADER_LEN..HEADER_LEN + 1])
            .collect();
        assert_eq!(payloads, [b"a", b"b", b"c"]);
    }

    #[test]
    fn an_interrupted_dump_is_asked_again_with_a_new_sequence_number() {
        let calls = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&calls);
        let mut sock = Socket::new(Fake::new(move |req| {
            let seq = messages(req).next().map(|m| m.seq).unwrap_or(0);
            let mut n = seen.lock().unwrap();
            *n += 1;
            let flags = if *n == 1 { NLM_F_DUMP_INTR } else { 0 };
            vec![datagram(&[
                message(RTM_NEWLINK, 2 | flags, seq, &[*n as u8]),
                done(seq, flags),
            ])]
        }));
        let answers = sock
            .dump(&|seq| request_bytes(18, NLM_F_DUMP, seq), &"list")
            .expect("dump");
        assert_eq!(*calls.lock().unwrap(), 2);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0][HEADER_LEN], 2, "the second, complete answer");
        let seqs: Vec<u32> = sock
            .transport()
            .sent()
            .iter()
            .map(|d| headers(d)[0].2)
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn a_dump_interrupted_every_time_is_an_error() {
        let mut sock = Socket::new(Fake::new(|req| {
            let seq = messages(req).next().map(|m| m.seq).unwrap_or(0);
            vec![done(seq, NLM_F_DUMP_INTR)]
        }));
        let err = sock
            .dump(&|seq| request_bytes(18, NLM_F_DUMP, seq), &"list rules")
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Interrupted, "{err}");
        assert_eq!(sock.transport().sent().len(), DUMP_ATTEMPTS);
    }

    #[test]
    fn a_refused_dump_and_a_failing_done_are_errors() {
        for answer in [
            |seq| error(seq, libc::ENOENT),
            |seq| message(NLMSG_DONE, 2, seq, &(-libc::ENOBUFS).to_ne_bytes()),
        ] as [fn(u32) -> Vec<u8>; 2]
        {
            let mut sock = Socket::new(Fake::new(move |req| {
                vec![answer(messages(req).next().map(|m| m.seq).unwrap_or(0))]
            }));
            let err = sock
                .dump(&|seq| request_bytes(18, NLM_F_DUMP, seq), &"list")
                .unwrap_err();
            assert!(err.errno().is_some(), "{err}");
        }
    }

    #[test]
    fn malformed_answers_and_silence_are_errors_not_hangs() {
        let mut sock = Socket::new(Fake::new(|_| vec![vec![40, 0, 0, 0, 2, 0]]));
        let s = sock.next_seq();
        let err = sock
            .request(&request_bytes(1, NLM_F_ACK, s), s, &"x")
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Protocol, "{err}");
        let mut sock = Socket::new(Fake::new(|_| Vec::new()));
        let s = sock.next_seq();
        let err = sock
            .request(&request_bytes(1, NLM_F_ACK, s), s, &"x")
            .unwrap_err();
        assert!(err.to_string().contains("no answer queued"), "{err}");
    }

    /// Two messages, for the splitting tests.
    fn two() -> Vec<u8> {
        datagram(&[message(16, 0, 1, &[1; 20]), message(16, 0, 2, &[2; 20])])
    }

    fn set_u32(buf: &mut [u8], at: usize, v: u32) {
        buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn corrupted_message_lengths_stop_the_split_there() {
        let good = two();
        let one = good.len() / 2;
        assert_eq!(one, 36);
        let seqs = |buf: &[u8]| messages(buf).map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&good), [1, 2]);
        // nlmsg_len shorter than the header (0, 15) or longer than the
        // datagram: that message and all after it are refused, the messages
        // before it are kept, and the rest is reported.
        for (at, bad) in [
            (0, 0),
            (0, 15),
            (0, u32::MAX),
            (0, good.len() as u32 + 1),
            (one, 0),
            (one, 15),
            (one, one as u32 + 4),
        ] {
            let mut buf = good.clone();
            set_u32(&mut buf, at, bad);
            let want: &[u32] = if at == 0 { &[] } else { &[1] };
            assert_eq!(seqs(&buf), want, "nlmsg_len {bad} at {at}");
            let mut split = messages(&buf);
            split.by_ref().for_each(drop);
            assert_eq!(split.rest().len(), buf.len() - at, "rest for {bad} at {at}");
        }
        // A length that runs into the next message swallows it as payload:
        // one message, never a second one read from the middle.
        let mut buf = good.clone();
        set_u32(&mut buf, 0, good.len() as u32);
        let msgs: Vec<_> = messages(&buf).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].payload().len(), good.len() - HEADER_LEN);
        // Cut anywhere short of its length, a message is not read at all.
        for cut in 0..one {
            assert_eq!(messages(&good[..cut]).count(), 0, "cut at {cut}");
        }
        // An error message whose payload is too short for the errno.
        let short = message(NLMSG_ERROR, 0, 9, &[0xff, 0xff]);
        let m = messages(&short[..HEADER_LEN + 2]).next().unwrap();
        assert_eq!(m.error_code(), None);
    }
}
