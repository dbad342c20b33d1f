//! CNI results as JSON values: reading a plugin's ADD output, and converting a
//! cached result to the configuration's version (as libcni's GetAsVersion).

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::version::{Family, Version};

/// The version of a result, from its `cniVersion`.
pub fn result_version(result: &Value) -> Result<Version, String> {
    match result.get("cniVersion") {
        Some(Value::String(s)) => {
            Version::parse(s).ok_or_else(|| format!("unsupported result cniVersion {s:?}"))
        }
        Some(_) => Err("result 'cniVersion' is not a string".into()),
        None => Err("result has no 'cniVersion'".into()),
    }
}

/// Reads a plugin's ADD output. It must be a JSON object. As libcni does, a
/// result without (or with an empty) `cniVersion` is taken to be at the
/// configuration's version, and gets that `cniVersion` set.
pub fn parse_add_output(stdout: &[u8], conf_version: Version) -> Result<Value, String> {
    let text = String::from_utf8_lossy(stdout);
    let mut value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "output is not JSON ({e}): {:?}",
            crate::exec::excerpt(stdout)
        )
    })?;
    let obj = value.as_object_mut().ok_or_else(|| {
        format!(
            "output is not a JSON object: {:?}",
            crate::exec::excerpt(stdout)
        )
    })?;
    let missing = match obj.get("cniVersion") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => return Err("result 'cniVersion' is not a string".into()),
    };
    if missing {
        obj.insert(
            "cniVersion".into(),
            Value::String(conf_version.as_str().into()),
        );
    }
    result_version(&value)?;
    Ok(value)
}

/// Converts a result to `to`, as libcni does before handing a cached result to
/// CHECK or DEL:
/// - within 0.3.0/0.3.1/0.4.0, within 1.0.0/1.1.0, and within 0.1.0/0.2.0 only
///   `cniVersion` changes;
/// - 0.3.x/0.4.0 -> 1.x drops `ips[].version`;
/// - 1.x -> 0.3.x/0.4.0 adds `ips[].version` ("4" or "6" from the address) and
///   drops the interface fields 0.4.0 lacks (`mtu`, `socketPath`, `pciID`).
///
/// Conversions to or from 0.1.0/0.2.0 across families are not implemented.
pub fn convert(result: &Value, to: Version) -> Result<Value, String> {
    let from = result_version(result)?;
    let mut out = result.clone();
    let Some(obj) = out.as_object_mut() else {
        return Err("result is not a JSON object".into());
    };
    obj.insert("cniVersion".into(), Value::String(to.as_str().into()));
    match (from.family(), to.family()) {
        (a, b) if a == b => {}
        (Family::V04, Family::V1) => {
            if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                    ip.remove("version");
                }
            }
        }
        (Family::V1, Family::V04) => {
            if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                    let family = match ip.get("address") {
                        Some(Value::String(addr)) => ip_family(addr)?,
                        _ => return Err("an 'ips' entry has no 'address'".into()),
                    };
                    ip.insert("version".into(), Value::String(family.into()));
                }
            }
            if let Some(Value::Array(ifs)) = obj.get_mut("interfaces") {
                for intf in ifs.iter_mut().filter_map(Value::as_object_mut) {
                    intf.remove("mtu");
                    intf.remove("socketPath");
                    intf.remove("pciID");
                }
            }
        }
        _ => return Err(format!("cnitool cannot convert a {from} result to {to}")),
    }
    Ok(out)
}

/// "4" or "6" for an "addr/len" string.
fn ip_family(cidr: &str) -> Result<&'static str, String> {
    let addr = cidr.split('/').next().unwrap_or_default();
    if addr.parse::<Ipv4Addr>().is_ok() {
        Ok("4")
    } else if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        Ok("6")
    } else {
        Err(format!("invalid address {cidr:?} in result"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_output_gets_config_version_when_missing() {
        let r = parse_add_output(br#"{"ips": []}"#, Version::V1_0_0).unwrap();
        assert_eq!(r, json!({"cniVersion": "1.0.0", "ips": []}));
        let r = parse_add_output(br#" {"cniVersion": "", "x": 1} "#, Version::V0_4_0).unwrap();
        assert_eq!(r["cniVersion"], "0.4.0");
        let r = parse_add_output(br#"{"cniVersion": "0.3.1"}"#, Version::V1_0_0).unwrap();
        assert_eq!(r["cniVersion"], "0.3.1");
    }

    #[test]
    fn add_output_garbage_is_an_error() {
        assert!(parse_add_output(b"", Version::V1_0_0).is_err());
        assert!(parse_add_output(b"hello", Version::V1_0_0).is_err());
        assert!(parse_add_output(b"[1,2]", Version::V1_0_0).is_err());
        assert!(parse_add_output(b"null", Version::V1_0_0).is_err());
        assert!(parse_add_output(br#"{"cniVersion": "7.0.0"}"#, Version::V1_0_0).is_err());
        assert!(parse_add_output(br#"{"cniVersion": 1}"#, Version::V1_0_0).is_err());
        assert!(parse_add_output(&[0xff, 0xfe, b'{'], Version::V1_0_0).is_err());
    }

    #[test]
    fn convert_between_families() {
        let v1 = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "aa", "mtu": 1400, "sandbox": "/ns", "socketPath": "/s", "pciID": "p"}],
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0},
                    {"address": "fd00::2/64"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["1.1.1.1"]}
        });
        let v04 = convert(&v1, Version::V0_4_0).unwrap();
        assert_eq!(
            v04,
            json!({
                "cniVersion": "0.4.0",
                "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/ns"}],
                "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0},
                        {"version": "6", "address": "fd00::2/64"}],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {"nameservers": ["1.1.1.1"]}
            })
        );
        let back = convert(&v04, Version::V1_0_0).unwrap();
        assert_eq!(back["cniVersion"], "1.0.0");
        assert!(back["ips"][0].get("version").is_none());
        assert_eq!(back["ips"][1]["address"], "fd00::2/64");
        assert_eq!(convert(&v1, Version::V1_1_0).unwrap(), v1);
        assert_eq!(
            convert(&v1, Version::V1_0_0).unwrap()["interfaces"][0]["mtu"],
            1400
        );
        assert_eq!(
            convert(&v04, Version::V0_3_1).unwrap()["cniVersion"],
            "0.3.1"
        );
    }

    #[test]
    fn convert_refuses_what_it_cannot_do() {
        let legacy = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}});
        assert!(convert(&legacy, Version::V1_0_0).is_err());
        assert_eq!(
            convert(&legacy, Version::V0_1_0).unwrap()["cniVersion"],
            "0.1.0"
        );
        let bad = json!({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]});
        assert!(convert(&bad, Version::V0_4_0).is_err());
        assert!(convert(&json!({"ips": []}), Version::V1_0_0).is_err());
        assert!(convert(&json!("str"), Version::V1_0_0).is_err());
    }
}
