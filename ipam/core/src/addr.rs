//! Address arithmetic on a 128-bit integer, with the family kept beside it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }
}

/// An address as an integer in its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpInt {
    pub value: u128,
    pub family: IpFamily,
}

impl IpInt {
    pub fn from_ip(ip: IpAddr) -> IpInt {
        match ip {
            IpAddr::V4(v4) => IpInt {
                value: u128::from(u32::from(v4)),
                family: IpFamily::V4,
            },
            IpAddr::V6(v6) => IpInt {
                value: u128::from(v6),
                family: IpFamily::V6,
            },
        }
    }

    pub fn to_ip(self) -> IpAddr {
        match self.family {
            // Values stay within 32 bits for V4 by construction (see `max`).
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(self.value as u32)),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(self.value)),
        }
    }

    fn max(family: IpFamily) -> u128 {
        match family {
            IpFamily::V4 => u128::from(u32::MAX),
            IpFamily::V6 => u128::MAX,
        }
    }

    /// The next address, `None` past the end of the family.
    pub fn next(self) -> Option<IpInt> {
        (self.value < IpInt::max(self.family)).then(|| IpInt {
            value: self.value + 1,
            family: self.family,
        })
    }

    pub fn prev(self) -> Option<IpInt> {
        self.value.checked_sub(1).map(|value| IpInt {
            value,
            family: self.family,
        })
    }

    /// The network address of `self` with a prefix of `len` bits.
    pub fn network(self, len: u8) -> IpInt {
        IpInt {
            value: self.value & !host_mask(self.family, len),
            family: self.family,
        }
    }

    /// The last address of the network of `self` with a prefix of `len` bits.
    pub fn last_in(self, len: u8) -> IpInt {
        IpInt {
            value: self.value | host_mask(self.family, len),
            family: self.family,
        }
    }
}

/// The host bits of a prefix of `len` bits in `family`.
fn host_mask(family: IpFamily, len: u8) -> u128 {
    let host_bits = u32::from(family.bits().saturating_sub(len));
    let mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    mask & IpInt::max(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpInt {
        IpInt::from_ip(s.parse().unwrap())
    }

    #[test]
    fn next_and_prev_cross_octets_and_stop_at_the_ends() {
        assert_eq!(
            ip("10.0.0.255").next().unwrap().to_ip().to_string(),
            "10.0.1.0"
        );
        assert_eq!(
            ip("10.0.1.0").prev().unwrap().to_ip().to_string(),
            "10.0.0.255"
        );
        assert!(ip("255.255.255.255").next().is_none());
        assert!(ip("0.0.0.0").prev().is_none());
        assert_eq!(
            ip("fd00::ffff").next().unwrap().to_ip().to_string(),
            "fd00::1:0"
        );
        assert!(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            .next()
            .is_none());
    }

    #[test]
    fn network_and_last() {
        assert_eq!(ip("10.1.2.3").network(16).to_ip().to_string(), "10.1.0.0");
        assert_eq!(
            ip("10.1.2.3").last_in(16).to_ip().to_string(),
            "10.1.255.255"
        );
        assert_eq!(ip("10.1.2.3").network(0).to_ip().to_string(), "0.0.0.0");
        assert_eq!(ip("10.1.2.3").last_in(32).to_ip().to_string(), "10.1.2.3");
        assert_eq!(
            ip("fd00::1:2").network(112).to_ip().to_string(),
            "fd00::1:0"
        );
        assert_eq!(
            ip("fd00::1:2").last_in(112).to_ip().to_string(),
            "fd00::1:ffff"
        );
        assert_eq!(ip("fd00::1").network(0).to_ip().to_string(), "::");
    }
}
