//! Spec versions as the suite tests them.

use std::cmp::Ordering;

/// The versions the suite exercises, oldest first (0.1.0 and 0.2.0 predate
/// the result type every check reads and are never chosen).
pub const KNOWN: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version the suite knows.
pub const NEWEST: &str = "1.1.0";

fn parts(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((a, b, c))
}

/// Whether `v` is a `major.minor.patch` version string.
pub fn well_formed(v: &str) -> bool {
    parts(v).is_some()
}

/// Numeric comparison; malformed versions sort first.
pub fn cmp(a: &str, b: &str) -> Ordering {
    parts(a).cmp(&parts(b))
}

pub fn at_least(v: &str, min: &str) -> bool {
    cmp(v, min) != Ordering::Less
}

/// Results before 1.0.0 carry `ips[].version`.
pub fn has_ip_version(v: &str) -> bool {
    cmp(v, "1.0.0") == Ordering::Less
}

/// 1.1.0 added interface `mtu`/`socketPath`/`pciID` and route
/// `mtu`/`advmss`/`priority`/`table`/`scope`.
pub fn has_v1_1_fields(v: &str) -> bool {
    at_least(v, "1.1.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically() {
        assert_eq!(cmp("0.10.0", "0.4.0"), Ordering::Greater);
        assert_eq!(cmp("1.1.0", "1.1.0"), Ordering::Equal);
        assert!(at_least("1.1.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(has_ip_version("0.4.0") && !has_ip_version("1.0.0"));
        assert!(!well_formed("1.0") && well_formed("0.3.1"));
    }
}
