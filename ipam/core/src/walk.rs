//! The reference host-local's allocation walk: round-robin through a range set,
//! starting after the last address reserved from it, visiting every address at
//! most once and never the gateway.

use std::net::IpAddr;

use cni::{Error, ErrorCode};

use crate::addr::IpInt;
use crate::range::{Range, RangeSet};

/// Iterates the addresses of a range set, as (address, range index).
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    range: usize,
    cur: Option<IpInt>,
    /// The first address yielded; reaching it again ends the walk.
    first: Option<IpInt>,
    done: bool,
}

impl<'a> RangeIter<'a> {
    /// Starts after `last_reserved` when it lies in the set, else at the start
    /// of the first range.
    pub fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> RangeIter<'a> {
        let after = last_reserved.and_then(|ip| {
            set.ranges()
                .iter()
                .position(|r| r.contains(ip))
                .map(|i| (i, IpInt::from_ip(ip)))
        });
        match after {
            Some((range, ip)) => RangeIter {
                set,
                range,
                cur: Some(ip),
                first: None,
                done: false,
            },
            None => RangeIter {
                set,
                range: 0,
                cur: None,
                first: None,
                done: false,
            },
        }
    }

    fn current_range(&self) -> &'a Range {
        &self.set.ranges()[self.range]
    }

    /// Moves to the next address without regard to the gateway.
    fn step(&mut self) -> IpInt {
        let r = self.current_range();
        match self.cur {
            None => r.start_int(),
            Some(c) if c >= r.end_int() => {
                self.range = (self.range + 1) % self.set.ranges().len();
                self.current_range().start_int()
            }
            Some(c) => c.next().unwrap_or(r.start_int()),
        }
    }
}

impl Iterator for RangeIter<'_> {
    type Item = (IpAddr, usize);

    fn next(&mut self) -> Option<(IpAddr, usize)> {
        loop {
            if self.done {
                return None;
            }
            let ip = self.step();
            self.cur = Some(ip);
            match self.first {
                None => self.first = Some(ip),
                Some(f) if f == ip => {
                    self.done = true;
                    return None;
                }
                Some(_) => {}
            }
            if self.current_range().gateway_int() == Some(ip) {
                continue;
            }
            return Some((ip.to_ip(), self.range));
        }
    }
}

/// The first free address after `last_reserved`, round-robin; code 101 with
/// the reference's message when the set is exhausted.
pub fn next_free(
    set: &RangeSet,
    last_reserved: Option<IpAddr>,
    mut is_taken: impl FnMut(IpAddr) -> bool,
) -> Result<(IpAddr, &Range), Error> {
    RangeIter::new(set, last_reserved)
        .find(|(ip, _)| !is_taken(*ip))
        .map(|(ip, i)| (ip, &set.ranges()[i]))
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NO_ADDRESS,
                format!("no IP addresses available in range set: {set}"),
            )
        })
}

/// Checks a requested address: inside the set, not a gateway, not taken.
pub fn check_requested(
    set: &RangeSet,
    ip: IpAddr,
    is_taken: impl FnOnce(IpAddr) -> bool,
) -> Result<&Range, Error> {
    let range = set.range_of(ip).ok_or_else(|| {
        Error::invalid_config(format!(
            "requested IP address {ip} is not in range set {set}"
        ))
    })?;
    if range.gateway() == Some(ip) {
        return Err(Error::invalid_config(format!(
            "requested IP address {ip} is the gateway of range set {set}"
        )));
    }
    if is_taken(ip) {
        return Err(Error::new(
            ErrorCode::NO_ADDRESS,
            format!("requested IP address {ip} is not available in range set {set}"),
        ));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::RangeConfig;
    use std::collections::HashSet;

    /// (subnet, rangeStart, rangeEnd, gateway)
    type RangeSpec<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn set(ranges: &[RangeSpec]) -> RangeSet {
        let cfgs: Vec<RangeConfig> = ranges
            .iter()
            .map(|(s, a, b, g)| RangeConfig {
                subnet: s.to_string(),
                range_start: a.map(String::from),
                range_end: b.map(String::from),
                gateway: g.map(String::from),
            })
            .collect();
        RangeSet::from_config(&cfgs).unwrap()
    }

    fn ips(it: RangeIter) -> Vec<String> {
        it.map(|(ip, _)| ip.to_string()).collect()
    }

    #[test]
    fn walks_a_small_subnet_skipping_gateway_network_and_broadcast() {
        let s = set(&[("10.0.0.0/29", None, None, None)]);
        assert_eq!(
            ips(RangeIter::new(&s, None)),
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(s.capacity(), 5);
    }

    #[test]
    fn resumes_after_the_last_reserved_and_wraps() {
        let s = set(&[("10.0.0.0/29", None, None, None)]);
        let last = Some("10.0.0.4".parse().unwrap());
        assert_eq!(
            ips(RangeIter::new(&s, last)),
            ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        // A last-reserved address outside the set restarts at the beginning.
        let outside = Some("192.168.0.1".parse().unwrap());
        assert_eq!(ips(RangeIter::new(&s, outside))[0], "10.0.0.2");
    }

    #[test]
    fn walks_across_ranges_round_robin() {
        let s = set(&[
            ("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.11"), None),
            ("10.0.1.0/24", Some("10.0.1.20"), Some("10.0.1.21"), None),
        ]);
        assert_eq!(
            ips(RangeIter::new(&s, Some("10.0.0.11".parse().unwrap()))),
            ["10.0.1.20", "10.0.1.21", "10.0.0.10", "10.0.0.11"]
        );
    }

    #[test]
    fn gateway_at_range_start_is_skipped_even_as_the_first_address() {
        let s = set(&[("10.0.0.0/29", Some("10.0.0.1"), Some("10.0.0.3"), None)]);
        assert_eq!(ips(RangeIter::new(&s, None)), ["10.0.0.2", "10.0.0.3"]);
        let s = set(&[("10.0.0.0/29", None, None, Some("10.0.0.6"))]);
        let all = ips(RangeIter::new(&s, None));
        assert_eq!(
            all,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
        );
    }

    #[test]
    fn ipv6_includes_the_last_address() {
        let s = set(&[("fd00::/126", None, None, None)]);
        assert_eq!(ips(RangeIter::new(&s, None)), ["fd00::2", "fd00::3"]);
    }

    #[test]
    fn next_free_skips_taken_and_reports_exhaustion_with_code_101() {
        let s = set(&[("10.0.0.0/29", None, None, None)]);
        let mut taken: HashSet<IpAddr> = HashSet::new();
        let mut last = None;
        for want in ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"] {
            let (ip, _) = next_free(&s, last, |ip| taken.contains(&ip)).unwrap();
            assert_eq!(ip.to_string(), want);
            taken.insert(ip);
            last = Some(ip);
        }
        let e = next_free(&s, last, |ip| taken.contains(&ip)).unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
        assert_eq!(
            e.msg,
            "no IP addresses available in range set: 10.0.0.1-10.0.0.6"
        );
        // Freeing one makes exactly that one available again.
        taken.remove(&"10.0.0.3".parse().unwrap());
        let (ip, _) = next_free(&s, last, |ip| taken.contains(&ip)).unwrap();
        assert_eq!(ip.to_string(), "10.0.0.3");
    }

    #[test]
    fn huge_ipv6_range_finds_the_first_free_quickly() {
        let s = set(&[("fd00::/64", None, None, None)]);
        let (ip, r) = next_free(&s, None, |_| false).unwrap();
        assert_eq!(ip.to_string(), "fd00::2");
        assert_eq!(r.with_prefix(ip).unwrap().to_string(), "fd00::2/64");

        // Real work in a 2^64 range: the first 5000 addresses are taken, the
        // walk must step over each once and stop at the first free one.
        // "Quickly" is measured in addresses asked about, not in time: a
        // walk that scanned the range, or restarted, would ask far more.
        let taken: HashSet<IpAddr> = (2u16..5002)
            .map(|n| IpAddr::from(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)))
            .collect();
        let mut asked = 0u32;
        let (ip, _) = next_free(&s, None, |ip| {
            asked += 1;
            taken.contains(&ip)
        })
        .unwrap();
        assert_eq!(ip.to_string(), "fd00::138a"); // 5002
        assert_eq!(asked, 5001);

        // From near the end of the range it wraps round to the start (past
        // the gateway ::1) after exactly the addresses in between.
        let last = "fd00::ffff:ffff:ffff:fffd".parse().unwrap();
        let mut seen = Vec::new();
        let (ip, _) = next_free(&s, Some(last), |ip| {
            seen.push(ip.to_string());
            ip.to_string() != "fd00::3"
        })
        .unwrap();
        assert_eq!(ip.to_string(), "fd00::3");
        assert_eq!(
            seen,
            [
                "fd00::ffff:ffff:ffff:fffe",
                "fd00::ffff:ffff:ffff:ffff",
                "fd00::2",
                "fd00::3"
            ]
        );

        // At the very top of the address space (no next address at all).
        let top = set(&[("ffff::/16", None, None, None)]);
        let last = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap();
        let mut seen = Vec::new();
        let (ip, _) = next_free(&top, Some(last), |ip| {
            seen.push(ip.to_string());
            seen.len() < 2
        })
        .unwrap();
        assert_eq!(ip.to_string(), "ffff::2");
        assert_eq!(seen, ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff::2"]);
    }

    #[test]
    fn requested_addresses() {
        let s = set(&[("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.20"), None)]);
        let ok = check_requested(&s, "10.0.0.15".parse().unwrap(), |_| false).unwrap();
        assert_eq!(ok.subnet().to_string(), "10.0.0.0/24");
        let e = check_requested(&s, "10.0.0.15".parse().unwrap(), |_| true).unwrap_err();
        assert_eq!(e.code, ErrorCode::NO_ADDRESS);
        let e = check_requested(&s, "10.0.0.5".parse().unwrap(), |_| false).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_CONFIG);
        let s = set(&[("10.0.0.0/24", None, None, None)]);
        assert!(check_requested(&s, "10.0.0.1".parse().unwrap(), |_| false).is_err());
    }
}
