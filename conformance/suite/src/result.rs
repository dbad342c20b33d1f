//! Reading results: the shape each spec version prescribes, and comparing two
//! results for equivalence. Written from the spec, independent of any
//! plugin's own types.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::version;

/// `a.b.c.d/len` or `x::y/len`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// The network address of `ip/len`.
pub fn network_of(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Whether `ip` is inside `cidr`.
pub fn contains(cidr: &str, ip: IpAddr) -> bool {
    match parse_cidr(cidr) {
        Some((net, len)) => {
            net.is_ipv4() == ip.is_ipv4() && network_of(net, len) == network_of(ip, len)
        }
        None => false,
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    // 6 octets for Ethernet; 20 for InfiniBand: both are "a hardware address".
    (parts.len() == 6 || parts.len() == 20)
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn uint(v: &Value) -> bool {
    v.is_u64()
}

fn strings(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}

/// What kind of plugin produced the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An interface or chained plugin: full result.
    Main,
    /// A delegated IPAM plugin: no `interfaces`, no `ips[].interface`.
    Ipam,
}

/// Checks a result against the shape of spec `version`: `cniVersion` equal to
/// it; interfaces with a name, a MAC if any, 1.1.0-only keys only at 1.1.0;
/// ips in CIDR with `version` exactly before 1.0.0, gateways of the same
/// family, interface indexes inside `interfaces`; routes in CIDR; dns lists of
/// strings.
pub fn shape(res: &Value, version: &str, kind: Kind) -> Result<(), String> {
    let obj = res.as_object().ok_or("result is not a JSON object")?;
    match obj.get("cniVersion").and_then(Value::as_str) {
        Some(v) if v == version => {}
        other => {
            return Err(format!(
                "result cniVersion is {other:?}, config asked {version:?}"
            ))
        }
    }
    let new_fields = version::has_v1_1_fields(version);
    let mut n_ifaces = None;
    match obj.get("interfaces") {
        None | Some(Value::Null) => {}
        Some(_) if kind == Kind::Ipam => {
            return Err("an IPAM result must not have \"interfaces\"".into())
        }
        Some(Value::Array(list)) => {
            for (i, itf) in list.iter().enumerate() {
                let o = itf
                    .as_object()
                    .ok_or(format!("interfaces[{i}] is not an object"))?;
                let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(format!("interfaces[{i}] has no name"));
                }
                if let Some(m) = o.get("mac") {
                    if !m.as_str().is_some_and(|m| m.is_empty() || is_mac(m)) {
                        return Err(format!("interfaces[{i}].mac {m} is not a hardware address"));
                    }
                }
                if o.get("sandbox")
                    .is_some_and(|s| !s.is_string() && !s.is_null())
                {
                    return Err(format!("interfaces[{i}].sandbox is not a string"));
                }
                for key in ["mtu", "socketPath", "pciID"] {
                    if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                        if !new_fields {
                            return Err(format!(
                                "interfaces[{i}].{key} exists only from 1.1.0, result is {version}"
                            ));
                        }
                        let good = if key == "mtu" { uint(v) } else { v.is_string() };
                        if !good {
                            return Err(format!("interfaces[{i}].{key} has the wrong type: {v}"));
                        }
                    }
                }
            }
            n_ifaces = Some(list.len());
        }
        Some(other) => return Err(format!("interfaces is not a list: {other}")),
    }
    if let Some(ips) = obj.get("ips").filter(|v| !v.is_null()) {
        let list = ips.as_array().ok_or("ips is not a list")?;
        for (i, ip) in list.iter().enumerate() {
            let o = ip.as_object().ok_or(format!("ips[{i}] is not an object"))?;
            let addr = o
                .get("address")
                .and_then(Value::as_str)
                .ok_or(format!("ips[{i}] has no address"))?;
            let (a, _) = parse_cidr(addr)
                .ok_or(format!("ips[{i}].address {addr:?} is not in CIDR notation"))?;
            if let Some(gw) = o.get("gateway").filter(|v| !v.is_null()) {
                let g: IpAddr = gw
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or(format!("ips[{i}].gateway {gw} is not an IP address"))?;
                if g.is_ipv4() != a.is_ipv4() {
                    return Err(format!(
                        "ips[{i}].gateway {g} is not of the family of {addr}"
                    ));
                }
            }
            match (version::has_ip_version(version), o.get("version")) {
                (true, Some(Value::String(v))) => {
                    let want = if a.is_ipv4() { "4" } else { "6" };
                    if v != want {
                        return Err(format!(
                            "ips[{i}].version is {v:?} but {addr} needs {want:?}"
                        ));
                    }
                }
                (true, other) => {
                    let has = other.map_or("none".to_string(), |v| v.to_string());
                    return Err(format!(
                        "ips[{i}] needs \"version\" 4|6 in a {version} result, has {has}"
                    ));
                }
                (false, Some(v)) => {
                    return Err(format!(
                        "ips[{i}] has \"version\" {v}, which 1.0.0 removed (result is {version})"
                    ))
                }
                (false, None) => {}
            }
            match o.get("interface").filter(|v| !v.is_null()) {
                Some(_) if kind == Kind::Ipam => {
                    return Err(format!(
                        "ips[{i}] of an IPAM result must not have \"interface\""
                    ))
                }
                Some(idx) => {
                    let idx = idx
                        .as_u64()
                        .ok_or(format!("ips[{i}].interface {idx} is not an index"))?;
                    if n_ifaces.is_none_or(|n| idx as usize >= n) {
                        return Err(format!(
                            "ips[{i}].interface {idx} is outside interfaces (length {})",
                            n_ifaces.unwrap_or(0)
                        ));
                    }
                }
                None => {}
            }
        }
    }
    if let Some(routes) = obj.get("routes").filter(|v| !v.is_null()) {
        let list = routes.as_array().ok_or("routes is not a list")?;
        for (i, r) in list.iter().enumerate() {
            let o = r
                .as_object()
                .ok_or(format!("routes[{i}] is not an object"))?;
            let dst = o
                .get("dst")
                .and_then(Value::as_str)
                .ok_or(format!("routes[{i}] has no dst"))?;
            let (d, _) = parse_cidr(dst).ok_or(format!("routes[{i}].dst {dst:?} is not CIDR"))?;
            if let Some(gw) = o.get("gw").filter(|v| !v.is_null()) {
                let g: IpAddr = gw
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or(format!("routes[{i}].gw {gw} is not an IP address"))?;
                if g.is_ipv4() != d.is_ipv4() {
                    return Err(format!("routes[{i}].gw {g} is not of the family of {dst}"));
                }
            }
            for key in ["mtu", "advmss", "priority", "table", "scope"] {
                if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                    if !new_fields {
                        return Err(format!(
                            "routes[{i}].{key} exists only from 1.1.0, result is {version}"
                        ));
                    }
                    if !uint(v) {
                        return Err(format!("routes[{i}].{key} is not an unsigned integer: {v}"));
                    }
                }
            }
        }
    }
    if let Some(dns) = obj.get("dns").filter(|v| !v.is_null()) {
        let o = dns.as_object().ok_or("dns is not an object")?;
        for key in ["nameservers", "search", "options"] {
            if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                if !strings(v) {
                    return Err(format!("dns.{key} is not a list of strings: {v}"));
                }
            }
        }
        if let Some(ns) = o.get("nameservers").and_then(Value::as_array) {
            for n in ns {
                if n.as_str().and_then(|s| s.parse::<IpAddr>().ok()).is_none() {
                    return Err(format!("dns.nameservers entry {n} is not an IP address"));
                }
            }
        }
        if o.get("domain")
            .is_some_and(|d| !d.is_string() && !d.is_null())
        {
            return Err("dns.domain is not a string".into());
        }
    }
    Ok(())
}

/// Drops `null`s and empty lists, objects and strings, recursively: the spec
/// treats an absent optional field and an empty one alike.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let n = normalize(x);
                let empty = match &n {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    Value::String(s) => s.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Whether `got` carries the same interfaces, ips, routes and dns as `want`.
pub fn equivalent(got: &Value, want: &Value) -> Result<(), String> {
    let (g, w) = (normalize(got), normalize(want));
    for key in ["interfaces", "ips", "routes", "dns"] {
        if g.get(key) != w.get(key) {
            return Err(format!(
                "{key} differs: got {}, expected {}",
                g.get(key).unwrap_or(&Value::Null),
                w.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    Ok(())
}

/// The result's interface named `name` with sandbox `netns`: its index.
pub fn container_iface(res: &Value, name: &str, netns: &str) -> Result<usize, String> {
    let list = res["interfaces"]
        .as_array()
        .ok_or("result has no interfaces list")?;
    list.iter()
        .position(|i| i["name"].as_str() == Some(name) && i["sandbox"].as_str() == Some(netns))
        .ok_or_else(|| {
            format!(
                "result lists no interface {name:?} with sandbox {netns:?}: {}",
                res["interfaces"]
            )
        })
}

/// The addresses of `ips[]` (without prefix).
pub fn ips(res: &Value) -> Vec<IpAddr> {
    res["ips"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|i| i["address"].as_str().and_then(parse_cidr).map(|(a, _)| a))
                .collect()
        })
        .unwrap_or_default()
}

/// The first IPv4 address of `ips[]`.
pub fn ipv4(res: &Value) -> Result<IpAddr, String> {
    ips(res)
        .into_iter()
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| format!("result has no IPv4 address: {}", res["ips"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_per_version() {
        let mut r = json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:00:00:02", "sandbox": "/run/netns/x"}],
            "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        shape(&r, "0.4.0", Kind::Main).unwrap();
        assert!(shape(&r, "1.0.0", Kind::Main).is_err());
        r["cniVersion"] = json!("1.0.0");
        assert!(shape(&r, "1.0.0", Kind::Main)
            .unwrap_err()
            .contains("removed"));
        r["ips"][0].as_object_mut().unwrap().remove("version");
        shape(&r, "1.0.0", Kind::Main).unwrap();
        r["interfaces"][0]["mtu"] = json!(1500);
        assert!(shape(&r, "1.0.0", Kind::Main).is_err());
        r["cniVersion"] = json!("1.1.0");
        shape(&r, "1.1.0", Kind::Main).unwrap();
        r["ips"][0]["interface"] = json!(1);
        assert!(shape(&r, "1.1.0", Kind::Main).is_err());
        assert!(shape(&r, "1.1.0", Kind::Ipam).is_err());
    }

    #[test]
    fn equivalence_ignores_empty_fields() {
        let a = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}});
        let b =
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "gateway": null}]});
        equivalent(&a, &b).unwrap();
        let c = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24"}]});
        assert!(equivalent(&a, &c).is_err());
    }

    #[test]
    fn cidr_helpers() {
        assert!(contains("10.77.0.0/24", "10.77.0.9".parse().unwrap()));
        assert!(!contains("10.77.0.0/24", "10.78.0.9".parse().unwrap()));
        assert!(parse_cidr("10.0.0.1/33").is_none());
        assert_eq!(
            network_of("fd00::5".parse().unwrap(), 64),
            "fd00::".parse::<IpAddr>().unwrap()
        );
    }
}
