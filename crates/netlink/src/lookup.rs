//! One-shot questions to the kernel of the calling thread's namespace, on a
//! plain blocking socket: no runtime, no connection task, no message types
//! beyond the few fields asked for. For a plugin whose only netlink work is
//! one lookup (portmap asks where a container address is routed), a
//! [`Netlink`](crate::Netlink) handle would cost more than the question:
//! measured, ~380 KiB of peak RSS (its runtime and parsers) for two requests.

use std::ffi::CStr;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};
use crate::handle::{open_socket, recv_from_kernel, send_to_kernel};

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTN_UNICAST: u8 = 1;
/// nlmsghdr (16) + rtmsg (12).
const HEADERS: usize = 28;

fn os_err(what: &str) -> Error {
    let e = std::io::Error::last_os_error();
    Error::os(what, e.raw_os_error().unwrap_or(libc::EIO))
}

/// The output interface (index) of the route the kernel picks for packets
/// to `ip` (`ip route get`): one `RTM_GETROUTE` lookup through the policy
/// rules and tables. `None` when nothing routes there (unreachable) or the
/// answer is not a unicast route (local, broadcast, blackhole, ...).
pub fn route_oif(ip: IpAddr) -> Result<Option<u32>> {
    let what = format!("get route to {ip}");
    let (family, addr, bits): (u8, Vec<u8>, u8) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec(), 32),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec(), 128),
    };
    let mut req = Vec::with_capacity(HEADERS + 4 + addr.len());
    let len = (HEADERS + 4 + addr.len()) as u32;
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's
                                                // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    req.extend_from_slice(&[family, bits, 0, 0, 0, 0, 0, 0]);
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&((4 + addr.len()) as u16).to_ne_bytes());
    req.extend_from_slice(&RTA_DST.to_ne_bytes());
    req.extend_from_slice(&addr);

    let fd = open_socket(&what)?;
    send_to_kernel(fd.as_raw_fd(), &req).map_err(|e| Error::io(&what, e))?;
    let mut buf = vec![0u8; 8192];
    let n = recv_from_kernel(fd.as_raw_fd(), &mut buf).map_err(|e| Error::io(&what, e))?;
    if n > buf.len() {
        return Err(Error::protocol(&what, "reply truncated"));
    }
    parse_reply(&buf[..n], &what)
}

/// The answer to our one request: a route (its `RTA_OIF`) or an error.
fn parse_reply(data: &[u8], what: &str) -> Result<Option<u32>> {
    let bad = || Error::protocol(what, "malformed reply");
    let field = |at: usize, len: usize| data.get(at..at + len).ok_or_else(bad);
    let msg_len = u32::from_ne_bytes(field(0, 4)?.try_into().map_err(|_| bad())?) as usize;
    let ty = u16::from_ne_bytes(field(4, 2)?.try_into().map_err(|_| bad())?);
    let msg = data.get(..msg_len).ok_or_else(bad)?;
    match ty {
        NLMSG_ERROR => {
            let code = i32::from_ne_bytes(field(16, 4)?.try_into().map_err(|_| bad())?);
            match -code {
                0 => Ok(None),
                libc::ENETUNREACH | libc::EHOSTUNREACH => Ok(None),
                errno => Err(Error::os(what, errno)),
            }
        }
        RTM_NEWROUTE => {
            let rtm_type = *msg.get(16 + 7).ok_or_else(bad)?;
            if rtm_type != RTN_UNICAST {
                return Ok(None);
            }
            let mut attrs = msg.get(HEADERS..).unwrap_or(&[]);
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
        _ => Err(bad()),
    }
}

/// The name of interface `index` in the calling thread's namespace
/// (`if_indextoname`), `None` when there is no such interface.
pub fn ifname(index: u32) -> Result<Option<String>> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname writes at most.
    let ret = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if ret.is_null() {
        let e = os_err(&format!("name of interface {index}"));
        return match e.errno() {
            Some(libc::ENXIO) | Some(libc::ENODEV) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let s = unsafe { CStr::from_ptr(name.as_ptr()) };
    Ok(Some(s.to_string_lossy().into_owned()))
}

/// (The kernel side is tested in `tests/route.rs`, inside a sandbox.)
#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&[0; 10]);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn replies_are_read_without_panicking() {
        let mut route = vec![2, 32, 0, 0, 254, 2, 0, RTN_UNICAST, 0, 0, 0, 0];
        route.extend_from_slice(&8u16.to_ne_bytes());
        route.extend_from_slice(&RTA_OIF.to_ne_bytes());
        route.extend_from_slice(&7u32.to_ne_bytes());
        let ok = reply(RTM_NEWROUTE, &route);
        assert_eq!(parse_reply(&ok, "t").unwrap(), Some(7));
        let mut local = route.clone();
        local[7] = 2; // RTN_LOCAL
        assert_eq!(
            parse_reply(&reply(RTM_NEWROUTE, &local), "t").unwrap(),
            None
        );
        let unreach = reply(NLMSG_ERROR, &(-libc::ENETUNREACH).to_ne_bytes());
        assert_eq!(parse_reply(&unreach, "t").unwrap(), None);
        let perm = reply(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        assert!(parse_reply(&perm, "t").is_err());
        for cut in 0..ok.len() {
            let _ = parse_reply(&ok[..cut], "t");
        }
    }
}
