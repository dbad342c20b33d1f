//! Spec versions and what each one allows.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A CNI spec version this suite speaks. Only supported versions can be
/// represented; anything else is rejected when parsing (code 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    /// Every version we support, oldest first.
    pub const ALL: [Version; 5] = [
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest version we speak.
    pub const LATEST: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK was introduced in 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// STATUS and GC were introduced in 1.1.0.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// 0.3.x and 0.4.0 results carry `ips[].version`; 1.0.0 dropped it.
    pub fn has_ip_version_field(self) -> bool {
        self < Version::V1_0_0
    }

    /// 1.1.0 added interface `mtu`/`socketPath`/`pciID` and route
    /// `mtu`/`advmss`/`priority`/`table`/`scope`.
    pub fn has_v1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }

    /// The supported versions as strings, for VERSION replies.
    pub fn supported_strings() -> Vec<&'static str> {
        Version::ALL.iter().map(|v| v.as_str()).collect()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::incompatible_version(format!("unsupported CNI version {s:?}",)).with_details(
                    format!(
                        "supported versions: {}",
                        Version::supported_strings().join(", ")
                    ),
                )
            })
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares two dotted version strings numerically ("0.10.0" > "0.4.0").
/// Non-numeric parts compare as 0, so garbage never panics.
pub fn compare_version_strings(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (pa, pb) = (parts(a), parts(b));
    let len = pa.len().max(pb.len());
    for i in 0..len {
        let (x, y) = (
            pa.get(i).copied().unwrap_or(0),
            pb.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => continue,
            other => return other,
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_round_trips() {
        for v in Version::ALL {
            assert_eq!(v.as_str().parse::<Version>().unwrap(), v);
            assert_eq!(v.to_string(), v.as_str());
        }
    }

    #[test]
    fn rejects_unsupported_versions_with_code_1() {
        for bad in ["0.1.0", "0.2.0", "1.2.0", "", "1.0", "v1.0.0", "1.0.0 "] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.code, crate::ErrorCode::INCOMPATIBLE_VERSION, "{bad}");
            assert!(err.details.contains("1.1.0"));
        }
    }

    #[test]
    fn capabilities_per_version() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(Version::V0_4_0.has_ip_version_field());
        assert!(!Version::V1_0_0.has_ip_version_field());
        assert!(!Version::V1_0_0.has_v1_1_fields());
        assert!(Version::V1_1_0.has_v1_1_fields());
    }

    #[test]
    fn serde_uses_the_dotted_string() {
        let v: Version = serde_json::from_str("\"0.4.0\"").unwrap();
        assert_eq!(v, Version::V0_4_0);
        assert_eq!(
            serde_json::to_string(&Version::V1_1_0).unwrap(),
            "\"1.1.0\""
        );
        assert!(serde_json::from_str::<Version>("\"9.9.9\"").is_err());
    }

    #[test]
    fn version_strings_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_version_strings("0.10.0", "0.4.0"), Greater);
        assert_eq!(compare_version_strings("1.0.0", "1.0"), Equal);
        assert_eq!(compare_version_strings("0.3.1", "1.1.0"), Less);
        assert_eq!(compare_version_strings("x", "0.0.0"), Equal);
    }
}
