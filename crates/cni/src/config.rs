//! The network configuration a plugin reads on stdin: the keys every plugin
//! shares, parsed and validated, plus the raw JSON for plugin-specific keys.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::names::{ContainerId, IfName, NetworkName};
use crate::result::{CniResult, Dns};
use crate::version::Version;

/// One `{containerID, ifname}` pair from GC's valid-attachments list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: ContainerId,
    pub ifname: IfName,
}

/// The keys every plugin config has. `raw` is the whole config as received,
/// for plugin-specific keys and for delegating to IPAM unchanged.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: Version,
    pub name: NetworkName,
    pub plugin_type: String,
    /// The `ipam` section with its `type`, if any.
    pub ipam: Option<IpamSection>,
    pub dns: Option<Dns>,
    pub runtime_config: Map<String, Value>,
    pub args: Map<String, Value>,
    pub prev_result: Option<CniResult>,
    /// GC only: `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
    pub raw: Value,
}

#[derive(Debug, Clone)]
pub struct IpamSection {
    pub plugin_type: String,
    pub raw: Value,
}

/// Reads only `cniVersion`, for version negotiation before full parsing.
/// `Ok(None)` when the key is absent.
pub fn peek_version(raw: &Value) -> Result<Option<&str>, Error> {
    match raw.get("cniVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::decoding(format!(
            "cniVersion must be a string, got {other}"
        ))),
    }
}

fn field_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid_config(format!("{key} must be a string"))),
    }
}

fn field_map(obj: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(Error::invalid_config(format!("{key} must be an object"))),
    }
}

fn parse_attachments(v: &Value, key: &str) -> Result<Vec<Attachment>, Error> {
    // libcni sends a Go nil slice as `null` when no attachment is valid.
    if v.is_null() {
        return Ok(Vec::new());
    }
    let items = v
        .as_array()
        .ok_or_else(|| Error::invalid_config(format!("{key} must be a list")))?;
    items
        .iter()
        .map(|item| {
            let get = |k: &str| {
                item.get(k).and_then(|s| s.as_str()).ok_or_else(|| {
                    Error::invalid_config(format!("{key}: each entry needs a string {k:?}"))
                })
            };
            let container_id = get("containerID")?
                .parse()
                .map_err(|e: Error| Error::invalid_config(format!("{key}: {}", e.msg)))?;
            let ifname = get("ifname")?
                .parse()
                .map_err(|e: Error| Error::invalid_config(format!("{key}: {}", e.msg)))?;
            Ok(Attachment {
                container_id,
                ifname,
            })
        })
        .collect()
}

impl NetConf {
    /// Parses and validates a config whose version was already negotiated.
    pub fn parse(raw: Value, version: Version) -> Result<NetConf, Error> {
        let obj = raw
            .as_object()
            .ok_or_else(|| Error::decoding("network config must be a JSON object"))?;
        let name = field_str(obj, "name")?
            .ok_or_else(|| Error::invalid_config("network config has no name"))?
            .parse::<NetworkName>()?;
        let plugin_type = field_str(obj, "type")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid_config("network config has no type"))?
            .to_string();
        let ipam = match obj.get("ipam") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(v @ Value::Object(m)) => {
                let t = m
                    .get("type")
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::invalid_config("ipam section has no type"))?;
                Some(IpamSection {
                    plugin_type: t.to_string(),
                    raw: v.clone(),
                })
            }
            Some(_) => return Err(Error::invalid_config("ipam must be an object")),
        };
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v.clone())
                    .map_err(|e| Error::invalid_config(format!("invalid dns: {e}")))?,
            ),
        };
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniResult::from_json(v, version)?),
        };
        let valid_attachments = match (
            obj.get("cni.dev/valid-attachments"),
            obj.get("cni.dev/attachments"),
        ) {
            (Some(v), _) => Some(parse_attachments(v, "cni.dev/valid-attachments")?),
            (None, Some(v)) => Some(parse_attachments(v, "cni.dev/attachments")?),
            (None, None) => None,
        };
        Ok(NetConf {
            cni_version: version,
            name,
            plugin_type,
            ipam,
            dns,
            runtime_config: field_map(obj, "runtimeConfig")?,
            args: field_map(obj, "args")?,
            prev_result,
            valid_attachments,
            raw,
        })
    }

    /// Deserializes the plugin-specific view of the config (serde struct with the
    /// plugin's own keys). A type mismatch is an invalid config (code 7).
    pub fn plugin_config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.raw.clone())
            .map_err(|e| Error::invalid_config(format!("invalid {} config: {e}", self.plugin_type)))
    }

    /// A runtimeConfig capability, if the runtime sent it.
    pub fn capability(&self, key: &str) -> Option<&Value> {
        self.runtime_config.get(key).filter(|v| !v.is_null())
    }

    /// `args.cni.<key>` (the config-level counterpart of CNI_ARGS).
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.args.get("cni").and_then(|c| c.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"cniVersion": "1.0.0", "name": "net1", "type": "bridge"})
    }

    #[test]
    fn parses_the_common_keys() {
        let mut v = base();
        v["ipam"] = json!({"type": "host-local", "subnet": "10.0.0.0/24"});
        v["dns"] = json!({"nameservers": ["1.1.1.1"]});
        v["runtimeConfig"] = json!({"portMappings": [{"hostPort": 80}]});
        v["args"] = json!({"cni": {"ips": ["10.0.0.5"]}});
        v["capabilities"] = json!({"portMappings": true});
        let c = NetConf::parse(v, Version::V1_0_0).unwrap();
        assert_eq!(c.name.as_str(), "net1");
        assert_eq!(c.plugin_type, "bridge");
        assert_eq!(c.ipam.as_ref().unwrap().plugin_type, "host-local");
        assert_eq!(c.ipam.as_ref().unwrap().raw["subnet"], "10.0.0.0/24");
        assert_eq!(c.dns.as_ref().unwrap().nameservers, vec!["1.1.1.1"]);
        assert!(c.capability("portMappings").is_some());
        assert!(c.capability("ips").is_none());
        assert_eq!(c.cni_arg("ips").unwrap()[0], "10.0.0.5");
        assert!(c.prev_result.is_none());
        assert!(c.valid_attachments.is_none());
    }

    #[test]
    fn invalid_common_keys_are_code_7() {
        let cases = [
            json!({"cniVersion": "1.0.0", "type": "bridge"}),
            json!({"cniVersion": "1.0.0", "name": "bad name", "type": "bridge"}),
            json!({"cniVersion": "1.0.0", "name": "n"}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": ""}),
            json!({"cniVersion": "1.0.0", "name": 5, "type": "x"}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "ipam": {"subnet": "x"}}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "ipam": []}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "runtimeConfig": []}),
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "dns": {"nameservers": 1}}),
        ];
        for c in cases {
            let e = NetConf::parse(c.clone(), Version::V1_0_0).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::INVALID_CONFIG, "{c}");
        }
    }

    #[test]
    fn empty_ipam_object_means_no_ipam() {
        let mut v = base();
        v["ipam"] = json!({});
        assert!(NetConf::parse(v, Version::V1_0_0).unwrap().ipam.is_none());
    }

    #[test]
    fn prev_result_is_parsed_at_the_configs_version() {
        let mut v = base();
        v["cniVersion"] = json!("0.4.0");
        v["prevResult"] = json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.0.0.2/24"}]
        });
        let c = NetConf::parse(v.clone(), Version::V0_4_0).unwrap();
        assert_eq!(
            c.prev_result.unwrap().ips[0].address.to_string(),
            "10.0.0.2/24"
        );
        v["prevResult"]["ips"][0]["version"] = json!("6");
        let e = NetConf::parse(v, Version::V0_4_0).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::DECODING_FAILURE);
    }

    #[test]
    fn both_attachment_key_spellings() {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let mut v = base();
            v["cniVersion"] = json!("1.1.0");
            v[key] = json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]);
            let c = NetConf::parse(v, Version::V1_1_0).unwrap();
            let a = c.valid_attachments.unwrap();
            assert_eq!(a.len(), 2, "{key}");
            assert_eq!(a[1].container_id.as_str(), "c2");
            assert_eq!(a[1].ifname.as_str(), "net1");
        }
        let mut v = base();
        v["cni.dev/valid-attachments"] = json!([{"containerID": "c1"}]);
        assert!(NetConf::parse(v, Version::V1_1_0).is_err());
        let mut v = base();
        v["cni.dev/valid-attachments"] = json!(null);
        assert_eq!(
            NetConf::parse(v, Version::V1_1_0)
                .unwrap()
                .valid_attachments,
            Some(vec![]),
            "null (a Go nil slice) means: nothing is valid"
        );
        let mut v = base();
        v["cni.dev/valid-attachments"] = json!([]);
        assert_eq!(
            NetConf::parse(v, Version::V1_1_0)
                .unwrap()
                .valid_attachments,
            Some(vec![])
        );
    }

    #[test]
    fn plugin_specific_view() {
        #[derive(serde::Deserialize)]
        struct Br {
            #[serde(default)]
            mtu: Option<u32>,
        }
        let mut v = base();
        v["mtu"] = json!(1400);
        let c = NetConf::parse(v.clone(), Version::V1_0_0).unwrap();
        assert_eq!(c.plugin_config::<Br>().unwrap().mtu, Some(1400));
        v["mtu"] = json!(-5);
        let c = NetConf::parse(v, Version::V1_0_0).unwrap();
        let e = c.plugin_config::<Br>().err().unwrap();
        assert_eq!(e.code, crate::ErrorCode::INVALID_CONFIG);
    }

    #[test]
    fn peek_version_reads_only_the_version() {
        assert_eq!(
            peek_version(&json!({"cniVersion": "0.3.1"})).unwrap(),
            Some("0.3.1")
        );
        assert_eq!(peek_version(&json!({})).unwrap(), None);
        assert!(peek_version(&json!({"cniVersion": 1})).is_err());
    }
}
