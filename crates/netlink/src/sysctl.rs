//! Per-namespace sysctls, read and written under /proc/sys from a helper thread
//! that has joined the namespace (/proc/sys/net follows the thread's netns).

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Sysctl access inside a network namespace.
///
/// Keys are either slash-separated (`net/ipv6/conf/eth0.100/disable_ipv6`,
/// needed when an interface name contains a dot) or dot-separated
/// (`net.ipv4.ip_forward`).
#[derive(Debug, Clone, Copy)]
pub struct Sysctl;

/// The /proc/sys path of `key`; refuses keys that could leave /proc/sys.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let context = || format!("sysctl key {key:?}");
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return Err(Error::invalid(context(), "empty"));
    }
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(Error::invalid(
                context(),
                "empty, '.' or '..' path component",
            ));
        }
        if part.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::invalid(context(), "whitespace or control character"));
        }
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

impl Sysctl {
    /// Sets `key` in the calling thread's own namespace to `value` unless it
    /// already has it; returns whether it wrote. No helper thread: a plugin's
    /// own namespace is the node's (ip_forward, route_localnet, accept_ra).
    pub fn ensure_here(key: &str, value: &str) -> Result<bool> {
        let path = sysctl_path(key)?;
        let context = || format!("write sysctl {key}={value} in the current netns");
        if let Ok(cur) = std::fs::read_to_string(&path) {
            if cur.trim_end_matches('\n') == value {
                return Ok(false);
            }
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| Error::io(context(), e))?;
        Ok(true)
    }

    /// Writes `key` in the calling thread's own namespace without reading it
    /// first: for keys of a link just created, which certainly need it.
    pub fn write_here(key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| {
                Error::io(
                    format!("write sysctl {key}={value} in the current netns"),
                    e,
                )
            })
    }

    /// Reads `key` in the calling thread's own namespace.
    pub fn read_here(key: &str) -> Result<String> {
        let path = sysctl_path(key)?;
        std::fs::read_to_string(&path)
            .map(|v| v.trim_end_matches('\n').to_string())
            .map_err(|e| Error::io(format!("read sysctl {key} in the current netns"), e))
    }

    /// Reads `key` inside `netns`, trailing newline removed.
    pub fn read(netns: &Netns, key: &str) -> Result<String> {
        let path = sysctl_path(key)?;
        let context = || format!("read sysctl {key} in netns {}", netns.path().display());
        let value = netns
            .run_in(|| std::fs::read_to_string(&path))?
            .map_err(|e| Error::io(context(), e))?;
        Ok(value.trim_end_matches('\n').to_string())
    }

    /// Writes `value` to `key` inside `netns`.
    pub fn write(netns: &Netns, key: &str, value: &str) -> Result<()> {
        Sysctl::write_all(netns, &[(key, value)])
    }

    /// Writes several keys in order on one helper thread; stops at the first
    /// failure.
    pub fn write_all(netns: &Netns, pairs: &[(&str, &str)]) -> Result<()> {
        let paths = pairs
            .iter()
            .map(|(k, _)| sysctl_path(k))
            .collect::<Result<Vec<_>>>()?;
        netns.run_in(|| {
            for ((key, value), path) in pairs.iter().zip(&paths) {
                let written = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(value.as_bytes()));
                if let Err(e) = written {
                    return Err(Error::io(
                        format!(
                            "write sysctl {key}={value} in netns {}",
                            netns.path().display()
                        ),
                        e,
                    ));
                }
            }
            Ok(())
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_and_slashes() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").expect("path"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv6/conf/eth0.100/disable_ipv6").expect("path"),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/disable_ipv6")
        );
        assert_eq!(
            sysctl_path("/net/ipv4/ip_forward").expect("path"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "",
            "net/../../etc/passwd",
            "net..ipv4",
            "net/./x",
            "net/ipv4/a b",
            "/",
        ] {
            let err = sysctl_path(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
