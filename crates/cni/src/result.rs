//! The ADD result, held once as the 1.1.0 superset and converted to exactly the
//! version a config asks for. Runtimes reject a result whose version differs
//! from their config's, so conversion happens on every output.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::names::Cidr;
use crate::version::Version;

/// An interface the plugin created or touched.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    /// 1.1.0+
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; absent for host interfaces.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// 1.1.0+
    #[serde(default)]
    pub socket_path: Option<String>,
    /// 1.1.0+
    #[serde(default, rename = "pciID")]
    pub pci_id: Option<String>,
}

/// One address assigned to an interface (`interface` indexes `interfaces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: Cidr,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
}

/// A route to install in the container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    pub dst: Option<Cidr>,
    pub gw: Option<IpAddr>,
    /// 1.1.0+
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

/// DNS settings, as in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A plugin's result, version-independent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::decoding(format!("invalid result: {what}: {e}"))
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decode_err(key, format!("expected a string, got {other}"))),
    }
}

fn opt_u32(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| decode_err(key, format!("expected a non-negative integer, got {v}"))),
    }
}

fn opt_ip(obj: &Map<String, Value>, key: &str) -> Result<Option<IpAddr>, Error> {
    opt_str(obj, key)?
        .map(|s| s.parse::<IpAddr>().map_err(|e| decode_err(key, e)))
        .transpose()
}

fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| decode_err(what, "expected an object"))
}

fn as_array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(decode_err(key, "expected an array")),
    }
}

impl Route {
    fn from_json(v: &Value) -> Result<Route, Error> {
        let obj = as_object(v, "routes[]")?;
        let dst = opt_str(obj, "dst")?
            .ok_or_else(|| decode_err("routes[].dst", "missing"))?
            .parse::<Cidr>()
            .map_err(|e| decode_err("routes[].dst", e.msg))?;
        let scope = opt_u32(obj, "scope")?
            .map(|s| u8::try_from(s).map_err(|e| decode_err("routes[].scope", e)))
            .transpose()?;
        Ok(Route {
            dst: Some(dst),
            gw: opt_ip(obj, "gw")?,
            mtu: opt_u32(obj, "mtu")?,
            advmss: opt_u32(obj, "advmss")?,
            priority: opt_u32(obj, "priority")?,
            table: opt_u32(obj, "table")?,
            scope,
        })
    }

    /// Parses a route from a config (`ipam.routes`, ...): same shape as a result's.
    pub fn from_config(v: &Value) -> Result<Route, Error> {
        Route::from_json(v).map_err(|e| Error::invalid_config(e.msg))
    }

    fn to_json(&self, version: Version) -> Value {
        let mut obj = Map::new();
        if let Some(dst) = self.dst {
            obj.insert("dst".into(), dst.to_string().into());
        }
        if let Some(gw) = self.gw {
            obj.insert("gw".into(), gw.to_string().into());
        }
        if version.has_v1_1_fields() {
            for (k, v) in [
                ("mtu", self.mtu),
                ("advmss", self.advmss),
                ("priority", self.priority),
                ("table", self.table),
                ("scope", self.scope.map(u32::from)),
            ] {
                if let Some(v) = v {
                    obj.insert(k.into(), v.into());
                }
            }
        }
        Value::Object(obj)
    }
}

impl CniResult {
    /// Parses a result (or `prevResult`) written at `version`. Fields of later
    /// versions are accepted and kept; `ips[].version`, when present, must agree
    /// with the address family.
    pub fn from_json(value: &Value, version: Version) -> Result<CniResult, Error> {
        let _ = version; // every supported version parses with the same rules
        let obj = as_object(value, "result")?;
        let mut result = CniResult::default();
        for iface in as_array(obj, "interfaces")? {
            let i: Interface =
                serde_json::from_value(iface.clone()).map_err(|e| decode_err("interfaces[]", e))?;
            result.interfaces.push(Interface {
                mac: i.mac.filter(|m| !m.is_empty()),
                sandbox: i.sandbox.filter(|s| !s.is_empty()),
                ..i
            });
        }
        for ip in as_array(obj, "ips")? {
            let o = as_object(ip, "ips[]")?;
            let address = opt_str(o, "address")?
                .ok_or_else(|| decode_err("ips[].address", "missing"))?
                .parse::<Cidr>()
                .map_err(|e| decode_err("ips[].address", e.msg))?;
            if let Some(fam) = opt_str(o, "version")? {
                let want = if address.is_ipv4() { "4" } else { "6" };
                if fam != want {
                    return Err(decode_err(
                        "ips[].version",
                        format!("{fam:?} does not match address {address}"),
                    ));
                }
            }
            let interface = match o.get("interface") {
                None | Some(Value::Null) => None,
                Some(v) => {
                    let idx = v
                        .as_u64()
                        .ok_or_else(|| decode_err("ips[].interface", "expected an index"))?;
                    let idx = usize::try_from(idx).map_err(|e| decode_err("ips[].interface", e))?;
                    if idx >= result.interfaces.len() {
                        return Err(decode_err(
                            "ips[].interface",
                            format!(
                                "index {idx} but only {} interfaces",
                                result.interfaces.len()
                            ),
                        ));
                    }
                    Some(idx)
                }
            };
            result.ips.push(IpConfig {
                address,
                gateway: opt_ip(o, "gateway")?,
                interface,
            });
        }
        for r in as_array(obj, "routes")? {
            result.routes.push(Route::from_json(r)?);
        }
        if let Some(dns) = obj.get("dns").filter(|d| !d.is_null()) {
            result.dns = serde_json::from_value(dns.clone()).map_err(|e| decode_err("dns", e))?;
        }
        Ok(result)
    }

    /// The result in exactly `version`'s shape, with `cniVersion` set.
    pub fn to_json(&self, version: Version) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), i.name.clone().into());
                if let Some(mac) = &i.mac {
                    o.insert("mac".into(), mac.clone().into());
                }
                if version.has_v1_1_fields() {
                    if let Some(mtu) = i.mtu {
                        o.insert("mtu".into(), mtu.into());
                    }
                }
                if let Some(sb) = &i.sandbox {
                    o.insert("sandbox".into(), sb.clone().into());
                }
                if version.has_v1_1_fields() {
                    if let Some(p) = &i.socket_path {
                        o.insert("socketPath".into(), p.clone().into());
                    }
                    if let Some(p) = &i.pci_id {
                        o.insert("pciID".into(), p.clone().into());
                    }
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if version.has_ip_version_field() {
                    o.insert(
                        "version".into(),
                        if ip.address.is_ipv4() { "4" } else { "6" }.into(),
                    );
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), i.into());
                }
                o.insert("address".into(), ip.address.to_string().into());
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), gw.to_string().into());
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self.routes.iter().map(|r| r.to_json(version)).collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        if !interfaces.is_empty() {
            out.insert("interfaces".into(), interfaces.into());
        }
        if !ips.is_empty() {
            out.insert("ips".into(), ips.into());
        }
        if !routes.is_empty() {
            out.insert("routes".into(), routes.into());
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).unwrap_or_else(|_| json!({})),
        );
        Value::Object(out)
    }

    /// Converts a result from one version's JSON to another's.
    pub fn convert(value: &Value, from: Version, to: Version) -> Result<Value, Error> {
        Ok(CniResult::from_json(value, from)?.to_json(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_v110() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:00:00:01"},
                {"name": "veth1", "mac": "0a:58:0a:00:00:02", "mtu": 1400},
                {"name": "eth0", "mac": "0a:58:0a:00:00:03", "mtu": 1400,
                 "sandbox": "/run/netns/c1", "socketPath": "/s", "pciID": "0000:00:01.0"}
            ],
            "ips": [
                {"interface": 2, "address": "10.0.0.3/24", "gateway": "10.0.0.1"},
                {"interface": 2, "address": "fd00::3/64", "gateway": "fd00::1"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1300, "advmss": 1260,
                 "priority": 10, "table": 100, "scope": 0},
                {"dst": "::/0"}
            ],
            "dns": {"nameservers": ["10.0.0.53"], "domain": "cluster.local",
                    "search": ["svc.cluster.local"], "options": ["ndots:5"]}
        })
    }

    #[test]
    fn v110_round_trips_exactly() {
        let v = full_v110();
        let r = CniResult::from_json(&v, Version::V1_1_0).unwrap();
        assert_eq!(r.to_json(Version::V1_1_0), v);
    }

    #[test]
    fn down_to_100_drops_the_11_fields() {
        let out = CniResult::convert(&full_v110(), Version::V1_1_0, Version::V1_0_0).unwrap();
        assert_eq!(out["cniVersion"], "1.0.0");
        assert!(out["interfaces"][1].get("mtu").is_none());
        assert!(out["interfaces"][2].get("socketPath").is_none());
        assert!(out["interfaces"][2].get("pciID").is_none());
        assert_eq!(out["interfaces"][2]["sandbox"], "/run/netns/c1");
        assert_eq!(
            out["routes"][0],
            json!({"dst": "0.0.0.0/0", "gw": "10.0.0.1"})
        );
        assert!(out["ips"][0].get("version").is_none());
        assert_eq!(out["dns"]["domain"], "cluster.local");
    }

    #[test]
    fn down_to_04_and_03x_adds_ip_versions() {
        for to in [Version::V0_4_0, Version::V0_3_1, Version::V0_3_0] {
            let out = CniResult::convert(&full_v110(), Version::V1_1_0, to).unwrap();
            assert_eq!(out["cniVersion"], to.as_str());
            assert_eq!(out["ips"][0]["version"], "4");
            assert_eq!(out["ips"][1]["version"], "6");
            assert_eq!(out["ips"][1]["interface"], 2);
            assert!(out["interfaces"][1].get("mtu").is_none());
            assert!(out["routes"][0].get("priority").is_none());
        }
    }

    #[test]
    fn up_from_030_to_110_drops_ip_versions() {
        let v = json!({
            "cniVersion": "0.3.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"version": "4", "interface": 0, "address": "192.168.1.5/16"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.0.1"}],
            "dns": {}
        });
        let out = CniResult::convert(&v, Version::V0_3_0, Version::V1_1_0).unwrap();
        assert_eq!(
            out,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
                "ips": [{"interface": 0, "address": "192.168.1.5/16"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.0.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn every_pair_of_versions_converts_and_keeps_core_fields() {
        for from in Version::ALL {
            let src = CniResult::from_json(&full_v110(), Version::V1_1_0)
                .unwrap()
                .to_json(from);
            for to in Version::ALL {
                let out = CniResult::convert(&src, from, to).unwrap();
                assert_eq!(out["cniVersion"], to.as_str());
                assert_eq!(out["ips"][1]["address"], "fd00::3/64");
                assert_eq!(out["ips"][0]["gateway"], "10.0.0.1");
                assert_eq!(out["interfaces"][2]["name"], "eth0");
                assert_eq!(out["routes"][0]["gw"], "10.0.0.1");
                assert_eq!(out["dns"]["nameservers"][0], "10.0.0.53");
                assert_eq!(
                    out["ips"][0].get("version").is_some(),
                    to.has_ip_version_field()
                );
            }
        }
    }

    #[test]
    fn empty_result_still_has_dns_and_version() {
        let out = CniResult::default().to_json(Version::V1_0_0);
        assert_eq!(out, json!({"cniVersion": "1.0.0", "dns": {}}));
        let back = CniResult::from_json(&out, Version::V1_0_0).unwrap();
        assert_eq!(back, CniResult::default());
    }

    #[test]
    fn malformed_results_are_decoding_errors() {
        let cases = [
            json!([]),
            json!({"ips": [{"address": "10.0.0.1"}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "version": "6"}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "interface": 0}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "interface": -1}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "gateway": "nope"}]}),
            json!({"ips": {}}),
            json!({"interfaces": [{"mac": "x"}]}),
            json!({"routes": [{"gw": "10.0.0.1"}]}),
            json!({"routes": [{"dst": "0.0.0.0/0", "mtu": -5}]}),
            json!({"routes": [{"dst": "0.0.0.0/0", "scope": 300}]}),
            json!({"dns": {"nameservers": "1.1.1.1"}}),
        ];
        for c in cases {
            let e = CniResult::from_json(&c, Version::V1_0_0).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::DECODING_FAILURE, "{c}");
        }
    }

    #[test]
    fn empty_mac_and_sandbox_mean_absent() {
        let v = json!({"interfaces": [{"name": "br0", "mac": "", "sandbox": ""}]});
        let r = CniResult::from_json(&v, Version::V0_4_0).unwrap();
        assert_eq!(r.interfaces[0].mac, None);
        assert_eq!(r.interfaces[0].sandbox, None);
        assert_eq!(
            r.to_json(Version::V0_4_0)["interfaces"][0],
            json!({"name": "br0"})
        );
    }
}
