//! CNI specification versions this runtime can drive.

use std::fmt;
use std::str::FromStr;

/// A CNI specification version that cnitool knows how to drive.
///
/// The order of the variants is the order of the versions, so `<`/`>` compare
/// versions. 0.1.0 and 0.2.0 are accepted (libcni still drives them) but only
/// ADD and DEL exist at those versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    /// Every supported version, oldest first.
    pub const ALL: [Version; 7] = [
        Version::V0_1_0,
        Version::V0_2_0,
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest version: what cnitool implements.
    pub const CURRENT: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Exact match against the version strings of [`Version::ALL`].
    pub fn parse(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// CHECK exists from 0.4.0 on.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// From 0.4.0 on, DEL (and CHECK) get the cached ADD result as `prevResult`.
    pub fn has_cached_prev_result(self) -> bool {
        self >= Version::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// The result family: results within one family differ only in
    /// `cniVersion`, so converting between them is a relabel.
    pub(crate) fn family(self) -> Family {
        match self {
            Version::V0_1_0 | Version::V0_2_0 => Family::Legacy,
            Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0 => Family::V04,
            Version::V1_0_0 | Version::V1_1_0 => Family::V1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// 0.1.0 / 0.2.0: `ip4`/`ip6` objects.
    Legacy,
    /// 0.3.x / 0.4.0: `interfaces`, `ips[]` with `version`.
    V04,
    /// 1.x: `ips[]` without `version`; 1.1.0 adds optional fields.
    V1,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Version, String> {
        Version::parse(s).ok_or_else(|| {
            format!(
                "unsupported CNI version {s:?} (supported: {})",
                supported_list()
            )
        })
    }
}

/// "0.1.0, 0.2.0, ..." for messages and help.
pub fn supported_list() -> String {
    Version::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_orders() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
            assert_eq!(v.to_string().parse::<Version>(), Ok(v));
        }
        assert!(Version::V0_3_1 < Version::V0_4_0);
        assert!(Version::V1_0_0 < Version::V1_1_0);
        assert_eq!(Version::parse("1.0"), None);
        assert_eq!(Version::parse("1.2.0"), None);
        assert!("".parse::<Version>().is_err());
    }

    #[test]
    fn command_availability() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(!Version::V0_3_0.has_cached_prev_result());
    }
}
