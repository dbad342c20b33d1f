//! One-shot questions to the kernel of the calling thread's namespace, with
//! no message types beyond the few fields asked for. For a plugin whose only
//! netlink work is a lookup (portmap asks where a container address is
//! routed), parsing the one attribute wanted by hand keeps
//! netlink-packet-route's parsers out of its binary (smaller, fewer pages
//! touched at start; BENCHMARKS.md).

use std::ffi::CStr;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::socket::{messages, Family, Socket, Transport, NLM_F_ACK, NLM_F_REQUEST};

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTN_UNICAST: u8 = 1;
/// nlmsghdr (16) + rtmsg (12).
const HEADERS: usize = 28;

/// The output interface (index) of the route the kernel picks for packets
/// to `ip` (`ip route get`): one `RTM_GETROUTE` lookup through the policy
/// rules and tables. `None` when nothing routes there (unreachable) or the
/// answer is not a unicast route (local, broadcast, blackhole, ...).
pub fn route_oif(ip: IpAddr) -> Result<Option<u32>> {
    let what = format!("get route to {ip}");
    let mut sock = Socket::open(Family::Route).map_err(|e| Error::io(&what, e))?;
    route_oif_on(&mut sock, ip)
}

fn route_oif_on<T: Transport>(sock: &mut Socket<T>, ip: IpAddr) -> Result<Option<u32>> {
    let what = format!("get route to {ip}");
    let (family, addr, bits): (u8, Vec<u8>, u8) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec(), 32),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec(), 128),
    };
    let seq = sock.next_seq();
    let len = (HEADERS + 4 + addr.len()) as u32;
    let mut req = Vec::with_capacity(len as usize);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
                                                // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    req.extend_from_slice(&[family, bits, 0, 0, 0, 0, 0, 0]);
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&((4 + addr.len()) as u16).to_ne_bytes());
    req.extend_from_slice(&RTA_DST.to_ne_bytes());
    req.extend_from_slice(&addr);
    match sock.request(&req, seq, &what) {
        Ok(answers) => match answers.first() {
            Some(route) => parse_route(route, &what),
            None => Ok(None),
        },
        Err(e) if matches!(e.errno(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `RTA_OIF` of an `RTM_NEWROUTE` answer when it is a unicast route.
fn parse_route(msg: &[u8], what: &str) -> Result<Option<u32>> {
    let bad = || Error::protocol(what, "malformed reply");
    let m = messages(msg).next().ok_or_else(bad)?;
    if m.ty != RTM_NEWROUTE {
        return Err(bad());
    }
    let rtm_type = *m.bytes.get(16 + 7).ok_or_else(bad)?;
    if rtm_type != RTN_UNICAST {
        return Ok(None);
    }
    let mut attrs = m.bytes.get(HEADERS..).unwrap_or(&[]);
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return Err(bad());
        }
        if kind == RTA_OIF && len == 8 {
            let oif = u32::from_ne_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]);
            return Ok(Some(oif));
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Ok(None)
}

/// The name of interface `index` in the calling thread's namespace
/// (`if_indextoname`), `None` when there is no such interface.
///
/// Not an `RTM_GETLINK` on a netlink socket: that request takes the RTNL
/// lock, which concurrent link creations (other containers' ADDs) hold for
/// milliseconds; the `SIOCGIFNAME` ioctl behind `if_indextoname` only reads
/// under RCU.
pub fn ifname(index: u32) -> Result<Option<String>> {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname writes at most
    // (the name and its NUL); nothing else is passed.
    let found = !unsafe { libc::if_indextoname(index, name.as_mut_ptr().cast()) }.is_null();
    if !found {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return match errno {
            libc::ENXIO | libc::ENODEV => Ok(None),
            _ => Err(Error::os(format!("name of interface {index}"), errno)),
        };
    }
    let name = CStr::from_bytes_until_nul(&name)
        .map_err(|_| Error::protocol(format!("name of interface {index}"), "no NUL"))?;
    Ok(Some(name.to_string_lossy().into_owned()))
}

/// (The kernel side is tested in `tests/route.rs`, inside a sandbox.)
#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::fake::{ack, datagram, error, message};
    use crate::socket::Fake;

    fn route(rtm_type: u8, oif: u32) -> Vec<u8> {
        let mut body = vec![2, 32, 0, 0, 254, 2, 0, rtm_type, 0, 0, 0, 0];
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&RTA_OIF.to_ne_bytes());
        body.extend_from_slice(&oif.to_ne_bytes());
        body
    }

    fn lookup(answer: impl Fn(u32) -> Vec<u8> + Send + 'static) -> (Result<Option<u32>>, Vec<u8>) {
        let mut sock = Socket::new(Fake::new(move |req| {
            vec![answer(messages(req).next().map(|m| m.seq).unwrap_or(0))]
        }));
        let r = route_oif_on(&mut sock, "10.0.0.7".parse().unwrap());
        let sent = sock.transport().sent()[0].clone();
        (r, sent)
    }

    #[test]
    fn the_request_is_an_acknowledged_getroute_for_the_host_address() {
        let (_, sent) = lookup(ack);
        let m = messages(&sent).next().expect("one message");
        assert_eq!(m.ty, RTM_GETROUTE);
        assert_eq!(m.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&m.bytes[16..18], &[libc::AF_INET as u8, 32]);
        assert_eq!(&m.bytes[HEADERS + 4..], &[10, 0, 0, 7]);
    }

    #[test]
    fn answers_are_read_without_panicking() {
        let ok =
            |t: u8| move |seq| datagram(&[message(RTM_NEWROUTE, 0, seq, &route(t, 7)), ack(seq)]);
        assert_eq!(lookup(ok(RTN_UNICAST)).0.unwrap(), Some(7));
        assert_eq!(lookup(ok(2)).0.unwrap(), None, "RTN_LOCAL");
        assert_eq!(lookup(|seq| error(seq, libc::ENETUNREACH)).0.unwrap(), None);
        assert!(lookup(|seq| error(seq, libc::EPERM)).0.is_err());
        let whole = message(RTM_NEWROUTE, 0, 1, &route(RTN_UNICAST, 7));
        for cut in 0..whole.len() {
            let _ = parse_route(&whole[..cut], "t");
        }
    }
}
