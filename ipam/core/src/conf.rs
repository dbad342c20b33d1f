//! Reading the config keys both IPAM plugins share (`ipam.ranges`, `ipam.routes`,
//! the requested addresses from CNI_ARGS `IP=`, `args.cni.ips` and
//! `runtimeConfig.ips`), exactly as the reference host-local reads them.
//!
//! Keys are matched like Go's `encoding/json`, which the reference uses: an
//! exact match first, else any key equal ignoring ASCII case (`"RANGES"` is
//! `ranges`). A `null` value counts as absent; an empty string for an address
//! counts as absent as it does for Go's `net.IP`. Every failure is code 7.

use std::net::IpAddr;

use cni::{Error, Route};
use serde_json::{Map, Value};

use crate::{check_sets_disjoint, RangeConfig, RangeSet};

/// `obj[key]` matched as Go's decoder does; `null` is absent.
pub fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

pub fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| Error::invalid_config(format!("{what} must be an object, got {v}")))
}

pub fn as_array<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], Error> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| Error::invalid_config(format!("{what} must be a list, got {v}")))
}

pub fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, Error> {
    v.as_str()
        .ok_or_else(|| Error::invalid_config(format!("{what} must be a string, got {v}")))
}

/// A string field where `""` means "not set".
pub fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, Error> {
    field(obj, key)
        .map(|v| as_str(v, &format!("{what}.{key}")))
        .transpose()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string))
}

/// The `ipam` section of the config; the reference refuses a config without one.
pub fn ipam_section(raw: &Value) -> Result<&Map<String, Value>, Error> {
    let top = as_object(raw, "network config")?;
    let ipam = field(top, "ipam")
        .ok_or_else(|| Error::invalid_config("IPAM config missing 'ipam' key"))?;
    as_object(ipam, "ipam")
}

pub fn range_config(v: &Value, what: &str) -> Result<RangeConfig, Error> {
    let obj = as_object(v, what)?;
    let subnet = match field(obj, "subnet") {
        Some(s) => as_str(s, &format!("{what}.subnet"))?.to_string(),
        None => return Err(Error::invalid_config(format!("{what} has no subnet"))),
    };
    Ok(RangeConfig {
        subnet,
        range_start: opt_string(obj, "rangeStart", what)?,
        range_end: opt_string(obj, "rangeEnd", what)?,
        gateway: opt_string(obj, "gateway", what)?,
    })
}

/// A list of range sets (`ipam.ranges`, `runtimeConfig.ipRanges`).
pub fn range_sets(v: &Value, what: &str) -> Result<Vec<Vec<RangeConfig>>, Error> {
    as_array(v, what)?
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let what = format!("{what}[{i}]");
            match set {
                // Go decodes a null set as an empty one, which then fails validation.
                Value::Null => Ok(Vec::new()),
                _ => as_array(set, &what)?
                    .iter()
                    .enumerate()
                    .map(|(j, r)| range_config(r, &format!("{what}[{j}]")))
                    .collect(),
            }
        })
        .collect()
}

/// One requested address: `a.b.c.d`, `v6`, or either with a `/prefix`, which
/// is ignored as the reference ignores it. IPv4-mapped IPv6 is taken as IPv4,
/// as Go canonicalizes it.
pub fn parse_requested(s: &str, source: &str) -> Result<IpAddr, Error> {
    let bad = |why: &str| {
        Error::invalid_config(format!(
            "invalid requested IP address {s:?} in {source}: {why}"
        ))
    };
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
    if let Some(p) = prefix {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u8>().is_ok_and(|n| n <= bits);
        if !ok {
            return Err(bad("invalid prefix length"));
        }
    }
    Ok(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

pub fn requested_list(v: &Value, source: &str) -> Result<Vec<IpAddr>, Error> {
    as_array(v, source)?
        .iter()
        .map(|item| parse_requested(as_str(item, source)?, source))
        .collect()
}

/// Every requested address, in the reference's order: CNI_ARGS `IP=` (one
/// address, or - our extension - a comma-separated list), `args.cni.ips`,
/// `runtimeConfig.ips`.
pub fn requested_ips(raw: &Value, env_ip: Option<&str>) -> Result<Vec<IpAddr>, Error> {
    let mut out = Vec::new();
    if let Some(list) = env_ip {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(parse_requested(item, "CNI_ARGS IP")?);
        }
    }
    let top = as_object(raw, "network config")?;
    if let Some(args) = field(top, "args") {
        let args = as_object(args, "args")?;
        if let Some(cni) = field(args, "cni") {
            let cni = as_object(cni, "args.cni")?;
            if let Some(ips) = field(cni, "ips") {
                out.extend(requested_list(ips, "args.cni.ips")?);
            }
        }
    }
    if let Some(rc) = field(top, "runtimeConfig") {
        let rc = as_object(rc, "runtimeConfig")?;
        if let Some(ips) = field(rc, "ips") {
            out.extend(requested_list(ips, "runtimeConfig.ips")?);
        }
    }
    Ok(out)
}

/// Matches requested addresses to range sets: each must lie in a set (outside
/// the gateway), and a set serves one address per ADD. Duplicates collapse,
/// as they do in the reference's map.
pub fn assign_requested(sets: &[RangeSet], ips: &[IpAddr]) -> Result<Vec<Option<IpAddr>>, Error> {
    let mut out = vec![None; sets.len()];
    for &ip in ips {
        let found = sets
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.range_of(ip).map(|r| (i, r)));
        let Some((idx, range)) = found else {
            return Err(Error::invalid_config(format!(
                "failed to allocate all requested IPs: {ip} is not in any range set"
            )));
        };
        if range.gateway() == Some(ip) {
            return Err(Error::invalid_config(format!(
                "requested ip {ip} is subnet's gateway"
            )));
        }
        match out[idx] {
            None => out[idx] = Some(ip),
            Some(prev) if prev == ip => {}
            Some(prev) => {
                return Err(Error::invalid_config(format!(
                    "failed to allocate all requested IPs: {prev} and {ip} are both in range set {idx}, which serves one address"
                )))
            }
        }
    }
    Ok(out)
}

/// Validates range sets read from a config (in allocation order): each set on
/// its own, then that no two overlap.
pub fn validate_sets(cfgs: &[Vec<RangeConfig>]) -> Result<Vec<RangeSet>, Error> {
    if cfgs.is_empty() {
        return Err(Error::invalid_config("no IP ranges specified"));
    }
    let sets = cfgs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            RangeSet::from_config(c)
                .map_err(|e| Error::invalid_config(format!("invalid range set {i}: {}", e.msg)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_sets_disjoint(&sets)?;
    Ok(sets)
}

/// `ipam.routes`, each validated; none when absent.
pub fn routes(ipam: &Map<String, Value>) -> Result<Vec<Route>, Error> {
    match field(ipam, "routes") {
        Some(r) => as_array(r, "ipam.routes")?
            .iter()
            .map(Route::from_config)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_config(format!("ipam.routes: {}", e.msg))),
        None => Ok(Vec::new()),
    }
}
