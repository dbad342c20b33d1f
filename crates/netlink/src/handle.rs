//! The netlink handle: one route-netlink [`Socket`] bound to one namespace.
//!
//! Requests are `netlink-packet-route` messages, serialized, sent, and the
//! answers read back on the same thread: no async runtime, no connection task
//! (a plugin makes a dozen requests and exits; a runtime's start, its epoll
//! and eventfd round trips per request cost more than the requests).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::socket::{Family, Kernel, Socket, Transport};

/// A route-netlink socket in one network namespace.
///
/// Every method blocks until the kernel has answered. Requests from several
/// threads on one handle are serialized. `T` is the kernel's socket except
/// in tests, which give a [`crate::socket::Fake`] ([`Netlink::with_transport`]).
pub struct Netlink<T = Kernel> {
    sock: Mutex<Socket<T>>,
    netns: PathBuf,
}

impl<T> fmt::Debug for Netlink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish()
    }
}

/// Opens a route socket in the calling thread's namespace.
fn open(context: impl FnOnce() -> String) -> Result<Socket> {
    Socket::open(Family::Route).map_err(|e| Error::io(context(), e))
}

/// An operation and the namespace it acts in, formatted only for an error:
/// `delete link 12 (netns /run/netns/x)`.
struct InNetns<'a> {
    op: &'a dyn fmt::Display,
    netns: &'a Path,
}

impl fmt::Display for InNetns<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (netns {})", self.op, self.netns.display())
    }
}

impl Netlink {
    /// Opens a socket inside `netns`. The socket is created on a short-lived
    /// helper thread that joins the namespace and exits; the socket stays bound
    /// to that namespace and is used from the caller's thread afterwards.
    pub fn connect(netns: &Netns) -> Result<Netlink> {
        let context = || format!("open netlink socket in netns {}", netns.path().display());
        let sock = netns.run_in(|| open(context))??;
        Ok(Netlink::with_socket(sock, netns.path()))
    }

    /// Opens a socket inside `netns` from the calling thread, moved there for
    /// that moment ([`Netns::enter`]): no helper thread. For a plugin's own
    /// threads; never on an async runtime's worker.
    pub fn connect_entering(netns: &Netns) -> Result<Netlink> {
        let sock = {
            let _inside = netns.enter()?;
            open(|| format!("open netlink socket in netns {}", netns.path().display()))?
        };
        Ok(Netlink::with_socket(sock, netns.path()))
    }

    /// Opens a socket in the calling thread's own namespace.
    pub fn connect_current() -> Result<Netlink> {
        let sock = open(|| "open netlink socket in the current netns".to_string())?;
        Ok(Netlink::with_socket(
            sock,
            Path::new("/proc/thread-self/ns/net"),
        ))
    }
}

impl<T: Transport> Netlink<T> {
    fn with_socket(sock: Socket<T>, netns: &Path) -> Netlink<T> {
        Netlink {
            sock: Mutex::new(sock),
            netns: netns.to_path_buf(),
        }
    }

    /// A handle over another transport (a [`crate::socket::Fake`] in tests);
    /// `netns` only names it in messages.
    pub fn with_transport(transport: T, netns: impl AsRef<Path>) -> Netlink<T> {
        Netlink::with_socket(Socket::new(transport), netns.as_ref())
    }

    /// Runs `f` on the transport (a test reads what a fake was sent).
    pub fn inspect<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(self.lock().transport())
    }

    /// The path of the namespace this socket lives in (for messages).
    pub fn netns_path(&self) -> &Path {
        &self.netns
    }

    /// Error context naming the operation and this socket's namespace.
    pub(crate) fn ctx(&self, op: impl fmt::Display) -> String {
        InNetns {
            op: &op,
            netns: &self.netns,
        }
        .to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Socket<T>> {
        self.sock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        op: impl fmt::Display,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let context = InNetns {
            op: &op,
            netns: &self.netns,
        };
        let mut sock = self.lock();
        let answers = if flags & NLM_F_DUMP == NLM_F_DUMP {
            sock.dump(&|seq| encode(msg.clone(), flags, seq), &context)?
        } else {
            let seq = sock.next_seq();
            sock.request(&encode(msg, flags | NLM_F_ACK, seq), seq, &context)?
        };
        drop(sock);
        let mut out = Vec::with_capacity(answers.len());
        for bytes in &answers {
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| Error::protocol(context.to_string(), e.to_string()))?;
            if let NetlinkPayload::InnerMessage(m) = parsed.payload {
                out.push(m);
            }
        }
        Ok(out)
    }
}

/// One request, serialized with sequence number `seq`.
fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    req.finalize();
    let mut out = vec![0u8; req.buffer_len()];
    req.serialize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::fake::{ack, datagram, done, error};
    use crate::socket::{messages, Fake, NLM_F_DUMP_INTR};
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    /// A kernel answer: the route message `m` for request `seq`.
    fn answer(m: RouteNetlinkMessage, seq: u32, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(m));
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        out
    }

    fn link(index: u32, name: &str) -> RouteNetlinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        RouteNetlinkMessage::NewLink(l)
    }

    fn first_seq(req: &[u8]) -> u32 {
        messages(req).next().map(|m| m.seq).unwrap_or(0)
    }

    #[test]
    fn requests_carry_ack_and_a_fresh_sequence_number_and_dumps_do_not() {
        let nl = Netlink::with_transport(
            Fake::new(|req| {
                let m = messages(req).next().expect("a message");
                if m.flags & NLM_F_DUMP == NLM_F_DUMP {
                    vec![datagram(&[
                        answer(link(1, "lo"), m.seq, 2),
                        answer(link(2, "eth0"), m.seq, 2),
                        done(m.seq, 0),
                    ])]
                } else {
                    vec![datagram(&[answer(link(2, "eth0"), m.seq, 0), ack(m.seq)])]
                }
            }),
            "/run/netns/test",
        );
        let l = nl.link_by_name("eth0").expect("get").expect("found");
        assert_eq!((l.index, l.name.as_str()), (2, "eth0"));
        let names: Vec<String> = nl
            .links()
            .expect("dump")
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["lo", "eth0"]);
        let sent: Vec<(u16, u32)> = nl.inspect(|f| {
            f.sent()
                .iter()
                .map(|d| messages(d).map(|m| (m.flags, m.seq)).next().expect("one"))
                .collect()
        });
        assert_eq!(sent[0], (NLM_F_REQUEST | NLM_F_ACK, 1));
        assert_eq!(sent[1], (NLM_F_REQUEST | NLM_F_DUMP, 2));
    }

    #[test]
    fn refusals_name_the_operation_and_the_namespace() {
        let nl = Netlink::with_transport(
            Fake::new(|req| vec![error(first_seq(req), libc::ENODEV)]),
            "/run/netns/x",
        );
        let err = nl.delete_link(12).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.context(), "delete link 12 (netns /run/netns/x)");
        // A get that finds nothing is `None`, not an error.
        assert_eq!(nl.link_by_index(12).expect("get"), None);
    }

    #[test]
    fn a_dump_interrupted_once_is_listed_again() {
        let mut calls = 0;
        let nl = Netlink::with_transport(
            Fake::new(move |req| {
                calls += 1;
                let seq = first_seq(req);
                let flags = if calls == 1 { NLM_F_DUMP_INTR } else { 0 };
                vec![datagram(&[
                    answer(link(calls, "x"), seq, 2 | flags),
                    done(seq, flags),
                ])]
            }),
            "/run/netns/x",
        );
        let links = nl.links().expect("dump");
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].index, 2, "the complete listing");
    }
}
