//! Ranges and range sets as the reference host-local defines them, with the
//! same defaults: gateway = network + 1, rangeStart = network + 1, rangeEnd =
//! the last address (IPv4: the one before broadcast).

use std::fmt;
use std::net::IpAddr;

use cni::{Cidr, Error};
use serde::Deserialize;

use crate::addr::{IpFamily, IpInt};

/// One range as written in a config (`ipam.ranges[i][j]`, or the legacy flat keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConfig {
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A validated range: every address in `start..=end` lies in `subnet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    subnet: Cidr,
    network: IpInt,
    prefix: u8,
    start: IpInt,
    end: IpInt,
    gateway: Option<IpInt>,
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, Error> {
    s.parse()
        .map_err(|_| Error::invalid_config(format!("invalid {what} {s:?}: not an IP address")))
}

impl Range {
    /// Validates a configured range and fills in the defaults.
    pub fn from_config(cfg: &RangeConfig) -> Result<Range, Error> {
        let subnet: Cidr = cfg.subnet.parse()?;
        let family = IpFamily::of(subnet.ip());
        let addr = IpInt::from_ip(subnet.ip());
        let prefix = subnet.prefix();
        let network = addr.network(prefix);
        if network != addr {
            return Err(Error::invalid_config(format!(
                "network {} has host bits set: for a prefix of {prefix} the network address is {}",
                cfg.subnet,
                network.to_ip()
            )));
        }
        if prefix > family.bits() - 2 {
            return Err(Error::invalid_config(format!(
                "network {} is too small to allocate from",
                cfg.subnet
            )));
        }
        let last = network.last_in(prefix);
        let mut range = Range {
            subnet,
            network,
            prefix,
            start: network.next().unwrap_or(network),
            end: match family {
                IpFamily::V4 => last.prev().unwrap_or(last),
                IpFamily::V6 => last,
            },
            gateway: None,
        };
        let in_subnet = |what: &str, s: &str| -> Result<IpInt, Error> {
            let ip = IpInt::from_ip(parse_ip(what, s)?);
            if ip.family != family || ip.network(prefix) != network {
                return Err(Error::invalid_config(format!(
                    "{what} {s} is not in network {}",
                    cfg.subnet
                )));
            }
            Ok(ip)
        };
        if let Some(s) = &cfg.range_start {
            range.start = in_subnet("rangeStart", s)?;
        }
        if let Some(s) = &cfg.range_end {
            range.end = in_subnet("rangeEnd", s)?;
        }
        if range.start > range.end {
            return Err(Error::invalid_config(format!(
                "rangeStart {} is after rangeEnd {}",
                range.start.to_ip(),
                range.end.to_ip()
            )));
        }
        range.gateway = Some(match &cfg.gateway {
            Some(s) => {
                let gw = IpInt::from_ip(parse_ip("gateway", s)?);
                if gw.family != family {
                    return Err(Error::invalid_config(format!(
                        "gateway {s} is not of the family of network {}",
                        cfg.subnet
                    )));
                }
                gw
            }
            None => network.next().unwrap_or(network),
        });
        Ok(range)
    }

    pub fn family(&self) -> IpFamily {
        self.network.family
    }

    /// The subnet with its network address (`10.0.0.0/24`).
    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn start(&self) -> IpAddr {
        self.start.to_ip()
    }

    pub fn end(&self) -> IpAddr {
        self.end.to_ip()
    }

    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway.map(IpInt::to_ip)
    }

    pub(crate) fn start_int(&self) -> IpInt {
        self.start
    }

    pub(crate) fn end_int(&self) -> IpInt {
        self.end
    }

    pub(crate) fn gateway_int(&self) -> Option<IpInt> {
        self.gateway
    }

    /// Whether `ip` may be handed out from this range (inside start..=end).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = IpInt::from_ip(ip);
        ip.family == self.family() && self.start <= ip && ip <= self.end
    }

    /// `ip` with this range's prefix length, as a result reports it.
    pub fn with_prefix(&self, ip: IpAddr) -> Result<Cidr, Error> {
        Cidr::new(ip, self.prefix)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.family() == other.family() && self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start.to_ip(), self.end.to_ip())
    }
}

/// Ranges one address is taken from (one address per set per ADD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(Vec<Range>);

impl RangeSet {
    /// Validates a configured set: not empty, one family, no overlaps.
    pub fn from_config(cfgs: &[RangeConfig]) -> Result<RangeSet, Error> {
        if cfgs.is_empty() {
            return Err(Error::invalid_config("empty range set"));
        }
        let ranges = cfgs
            .iter()
            .map(Range::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let family = ranges[0].family();
        if ranges.iter().any(|r| r.family() != family) {
            return Err(Error::invalid_config(
                "a range set mixes IPv4 and IPv6 ranges",
            ));
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(b) {
                    return Err(Error::invalid_config(format!("ranges {a} and {b} overlap")));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    pub fn family(&self) -> IpFamily {
        self.0[0].family()
    }

    /// The range `ip` belongs to, if any.
    pub fn range_of(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// How many addresses the set can hand out (gateways excluded).
    pub fn capacity(&self) -> u128 {
        self.0
            .iter()
            .map(|r| {
                let n = r.end.value - r.start.value + 1;
                let gw_inside = r.gateway.is_some_and(|g| r.start <= g && g <= r.end);
                n - u128::from(gw_inside)
            })
            .sum()
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Rejects overlaps between the range sets of one config.
pub fn check_sets_disjoint(sets: &[RangeSet]) -> Result<(), Error> {
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(Error::invalid_config(format!(
                    "range set {i} overlaps with range set {j}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(subnet: &str) -> RangeConfig {
        RangeConfig {
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_match_the_reference() {
        let r = Range::from_config(&cfg("10.1.0.0/16")).unwrap();
        assert_eq!(r.start().to_string(), "10.1.0.1");
        assert_eq!(r.end().to_string(), "10.1.255.254");
        assert_eq!(r.gateway().unwrap().to_string(), "10.1.0.1");
        assert_eq!(r.subnet().to_string(), "10.1.0.0/16");
        assert_eq!(r.to_string(), "10.1.0.1-10.1.255.254");
        let r = Range::from_config(&cfg("fd00:1::/64")).unwrap();
        assert_eq!(r.start().to_string(), "fd00:1::1");
        assert_eq!(r.end().to_string(), "fd00:1::ffff:ffff:ffff:ffff");
        assert_eq!(r.gateway().unwrap().to_string(), "fd00:1::1");
    }

    #[test]
    fn explicit_bounds_and_gateway() {
        let r = Range::from_config(&RangeConfig {
            subnet: "10.0.0.0/24".into(),
            range_start: Some("10.0.0.100".into()),
            range_end: Some("10.0.0.200".into()),
            gateway: Some("10.0.0.254".into()),
        })
        .unwrap();
        assert!(r.contains("10.0.0.100".parse().unwrap()));
        assert!(r.contains("10.0.0.200".parse().unwrap()));
        assert!(!r.contains("10.0.0.99".parse().unwrap()));
        assert!(!r.contains("fd00::1".parse().unwrap()));
        assert_eq!(r.gateway().unwrap().to_string(), "10.0.0.254");
    }

    #[test]
    fn invalid_ranges_are_code_7() {
        let bad = [
            cfg("10.0.0.1/24"),
            cfg("10.0.0.0/31"),
            cfg("10.0.0.0/32"),
            cfg("fd00::/127"),
            cfg("10.0.0.0"),
            cfg("nonsense"),
            RangeConfig {
                range_start: Some("10.0.1.1".into()),
                ..cfg("10.0.0.0/24")
            },
            RangeConfig {
                range_end: Some("10.0.1.1".into()),
                ..cfg("10.0.0.0/24")
            },
            RangeConfig {
                range_end: Some("x".into()),
                ..cfg("10.0.0.0/24")
            },
            RangeConfig {
                range_start: Some("10.0.0.50".into()),
                range_end: Some("10.0.0.40".into()),
                ..cfg("10.0.0.0/24")
            },
            RangeConfig {
                gateway: Some("fd00::1".into()),
                ..cfg("10.0.0.0/24")
            },
        ];
        for c in bad {
            let e = Range::from_config(&c).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::INVALID_CONFIG, "{c:?}");
        }
    }

    #[test]
    fn range_sets_reject_empty_mixed_and_overlapping() {
        assert!(RangeSet::from_config(&[]).is_err());
        assert!(RangeSet::from_config(&[cfg("10.0.0.0/24"), cfg("fd00::/64")]).is_err());
        assert!(RangeSet::from_config(&[cfg("10.0.0.0/16"), cfg("10.0.5.0/24")]).is_err());
        let two = RangeSet::from_config(&[
            RangeConfig {
                range_end: Some("10.0.0.100".into()),
                ..cfg("10.0.0.0/24")
            },
            RangeConfig {
                range_start: Some("10.0.0.101".into()),
                ..cfg("10.0.0.0/24")
            },
        ])
        .unwrap();
        assert_eq!(two.ranges().len(), 2);
        let a = RangeSet::from_config(&[cfg("10.0.0.0/24")]).unwrap();
        let b = RangeSet::from_config(&[cfg("10.0.0.0/25")]).unwrap();
        assert!(check_sets_disjoint(&[a.clone(), b]).is_err());
        let c = RangeSet::from_config(&[cfg("10.0.1.0/24")]).unwrap();
        assert!(check_sets_disjoint(&[a, c]).is_ok());
    }
}
