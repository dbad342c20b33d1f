//! Looking at what plugins did, from the outside: `ip -j` in the namespaces,
//! `nft list ruleset` in the host namespace (iptables-nft rules show there
//! too), `ping` between namespaces. Nothing here changes state except the
//! explicit tampering helpers checks use.

use std::net::IpAddr;
use std::process::Command;

use cni_harness::{require_tool, Netns};
use serde_json::Value;

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n <ns> <args>`; an error when it fails.
pub fn ip(ns: &Netns, args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").arg("-n").arg(ns.name()).args(args))
}

/// `ip -n <ns> -j <args>` parsed.
pub fn ip_json(ns: &Netns, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = run(Command::new("ip")
        .arg("-n")
        .arg(ns.name())
        .arg("-j")
        .args(args))?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(v)) => Ok(v),
        Ok(other) => Ok(vec![other]),
        Err(e) => Err(format!("ip -j {args:?}: {e}")),
    }
}

/// Every link of the namespace, with details (`ip -d link`).
pub fn links(ns: &Netns) -> Result<Vec<Value>, String> {
    ip_json(ns, &["-d", "link", "show"])
}

/// The link named `name`, if any.
pub fn link(ns: &Netns, name: &str) -> Result<Option<Value>, String> {
    Ok(links(ns)?
        .into_iter()
        .find(|l| l["ifname"].as_str() == Some(name)))
}

pub fn link_names(ns: &Netns) -> Result<Vec<String>, String> {
    Ok(links(ns)?
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect())
}

/// Whether the link is administratively up.
pub fn is_up(link: &Value) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

/// `ip/prefix` of every address on `dev` (link-local IPv6 included).
pub fn addrs(ns: &Netns, dev: &str) -> Result<Vec<String>, String> {
    let v = ip_json(ns, &["addr", "show", "dev", dev])?;
    let mut out = Vec::new();
    for l in v {
        if let Some(infos) = l["addr_info"].as_array() {
            for a in infos {
                if let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    out.push(format!("{ip}/{len}"));
                }
            }
        }
    }
    Ok(out)
}

/// The main routing table of one family.
pub fn routes(ns: &Netns, v6: bool) -> Result<Vec<Value>, String> {
    ip_json(ns, &[if v6 { "-6" } else { "-4" }, "route", "show"])
}

/// Whether the namespace has a route to `dst` (CIDR; `0.0.0.0/0` and `::/0`
/// match `default`) via `gw` when given.
pub fn has_route(ns: &Netns, dst: &str, gw: Option<&str>) -> Result<bool, String> {
    let Some((ip, len)) = crate::result::parse_cidr(dst) else {
        return Err(format!("route dst {dst:?} is not CIDR"));
    };
    let net = crate::result::network_of(ip, len);
    let want = if len == 0 {
        "default".to_string()
    } else if (ip.is_ipv4() && len == 32) || (ip.is_ipv6() && len == 128) {
        net.to_string()
    } else {
        format!("{net}/{len}")
    };
    let table = routes(ns, ip.is_ipv6())?;
    Ok(table.iter().any(|r| {
        r["dst"].as_str() == Some(want.as_str())
            && gw.is_none_or(|g| {
                r["gateway"].as_str().and_then(|x| x.parse::<IpAddr>().ok())
                    == g.parse::<IpAddr>().ok()
            })
    }))
}

/// The host namespace's nftables ruleset as text (iptables-nft rules too).
pub fn ruleset(ns: &Netns) -> Result<String, String> {
    require_tool("nft", "nftables");
    run(ns.command("nft").args(["list", "ruleset"]))
}

/// Whether `text` mentions `ip` as a whole address (10.0.0.2 does not match
/// inside 10.0.0.20).
pub fn mentions(text: &str, ip: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(ip) {
        let start = from + pos;
        let end = start + ip.len();
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(end).copied();
        let v6 = ip.contains(':');
        let part_before = before.is_some_and(|c| {
            if v6 {
                c.is_ascii_hexdigit() || c == b':'
            } else {
                c.is_ascii_digit() || c == b'.'
            }
        });
        let part_after = match after {
            Some(c) if v6 => c.is_ascii_hexdigit() || c == b':',
            Some(c) if c.is_ascii_digit() => true,
            Some(b'.') => bytes.get(end + 1).is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        };
        if !part_before && !part_after {
            return true;
        }
        from = end;
    }
    false
}

/// One ping from `ns` to `ip` (IPv4 or IPv6).
pub fn ping(ns: &Netns, ip: &str) -> Result<(), String> {
    require_tool("ping", "iputils-ping");
    let out = ns
        .command("ping")
        .args(["-c", "1", "-W", "2", ip])
        .output()
        .map_err(|e| format!("cannot run ping: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ping {ip} from {} failed: {}",
            ns.name(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_addresses_only() {
        assert!(mentions("ip saddr 10.0.0.2 masquerade", "10.0.0.2"));
        assert!(mentions("dnat to 10.0.0.2:80", "10.0.0.2"));
        assert!(mentions("-s 10.0.0.2/32", "10.0.0.2"));
        assert!(!mentions("ip saddr 10.0.0.20", "10.0.0.2"));
        assert!(!mentions("ip saddr 110.0.0.2", "10.0.0.2"));
        assert!(mentions("fd00::2 ", "fd00::2"));
        assert!(!mentions("fd00::21", "fd00::2"));
    }
}
