//! The bridge's configuration: every key the reference plugin accepts, parsed
//! and validated before anything touches the kernel.

use std::str::FromStr;

use cni::{Error, IfName, Mac, Request};
use serde::Deserialize;
use serde_json::Value;

/// Keys as written in the config (camelCase, as the reference spells them).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Raw {
    bridge: Option<String>,
    is_gateway: bool,
    is_default_gateway: bool,
    force_address: bool,
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    mtu: Option<i64>,
    hairpin_mode: bool,
    promisc_mode: bool,
    vlan: Option<i64>,
    vlan_trunk: Option<Vec<Value>>,
    preserve_default_vlan: Option<bool>,
    macspoofchk: bool,
    #[serde(rename = "enabledad")]
    enable_dad: bool,
    disable_container_interface: bool,
    port_isolation: bool,
}

/// A validated bridge config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConf {
    pub bridge: IfName,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub mtu: Option<u32>,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    pub macspoofchk: bool,
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// The container interface's MAC, when the runtime asked for one.
    pub mac: Option<Mac>,
    /// Whether an `ipam` section is present (L3 mode); else pure L2.
    pub has_ipam: bool,
    /// With `ipMasq`: masquerade only what leaves this network (instead of
    /// what leaves each address's own subnet). Not a config key: set by a
    /// plugin that sets pods up through the bridge (vxlan: the cluster
    /// network, so pod-to-pod traffic across nodes keeps its source).
    pub masq_exempt: Option<cni::Cidr>,
}

pub const DEFAULT_BRIDGE: &str = "cni0";
/// The smallest MTU IPv4 allows; IPv6 needs 1280 but a v4-only net may go lower.
const MIN_MTU: i64 = 68;
const MAX_MTU: i64 = 65535;

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid_config(msg)
}

impl BridgeConf {
    /// Parses the plugin keys and the MAC the runtime may request through
    /// `runtimeConfig.mac`, `args.cni.mac` or CNI_ARGS `MAC=` (in that order).
    pub fn from_request(req: &Request) -> Result<BridgeConf, Error> {
        let raw: Raw = req.config.plugin_config()?;
        let bridge = raw.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE);
        let bridge = IfName::from_str(bridge)
            .map_err(|e| invalid(format!("invalid bridge name: {}", e.msg)))?;
        let mtu = match raw.mtu {
            None | Some(0) => None,
            Some(m) if (MIN_MTU..=MAX_MTU).contains(&m) => Some(m as u32),
            Some(m) => {
                return Err(invalid(format!(
                    "invalid mtu {m}: must be 0 (kernel default) or {MIN_MTU}..{MAX_MTU}"
                )))
            }
        };
        let vlan = raw.vlan.unwrap_or(0);
        if !(0..=4094).contains(&vlan) {
            return Err(invalid(format!(
                "invalid VLAN ID {vlan} (must be between 0 and 4094)"
            )));
        }
        // VLANs need bridge VLAN filtering, which we don't program yet (and
        // these machines' kernels lack): say so instead of half-working.
        if vlan != 0 {
            return Err(Error::unsupported_field(format!(
                "unsupported field: vlan = {vlan} (bridge VLANs are not implemented)"
            )));
        }
        if let Some(trunk) = raw.vlan_trunk.as_ref().filter(|t| !t.is_empty()) {
            return Err(Error::unsupported_field(format!(
                "unsupported field: vlanTrunk = {} (bridge VLANs are not implemented)",
                Value::Array(trunk.clone())
            )));
        }
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(invalid(
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }
        let has_ipam = req.config.ipam.is_some();
        if raw.disable_container_interface && has_ipam {
            return Err(invalid(
                "cannot use IPAM when disableContainerInterface is set",
            ));
        }
        match raw.ip_masq_backend.as_deref() {
            // Both are accepted for compatibility; rules are always nftables.
            None | Some("") | Some("iptables") | Some("nftables") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "unknown ipMasqBackend {other:?} (expected \"nftables\" or \"iptables\")"
                )))
            }
        }
        Ok(BridgeConf {
            bridge,
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            mtu,
            hairpin_mode: raw.hairpin_mode,
            promisc_mode: raw.promisc_mode,
            macspoofchk: raw.macspoofchk,
            enable_dad: raw.enable_dad,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            mac: requested_mac(req)?,
            has_ipam,
            masq_exempt: None,
        })
    }

    /// The masquerade rule of each address: traffic from it to anywhere but
    /// its subnet (or [`BridgeConf::masq_exempt`] of its family).
    pub fn masq_rules<'a>(
        &self,
        addrs: impl Iterator<Item = &'a cni::Cidr>,
    ) -> Vec<nft::masq::MasqRule> {
        addrs
            .map(|a| {
                let subnet = match self.masq_exempt {
                    Some(e) if e.is_ipv4() == a.is_ipv4() => e,
                    _ => *a,
                };
                nft::masq::MasqRule {
                    ip: a.ip(),
                    // A prefix from a valid Cidr can't fail; the address
                    // itself rather than a panic otherwise.
                    subnet: netlink::IpNetwork::new(subnet.network(), subnet.prefix())
                        .unwrap_or_else(|_| a.inner()),
                }
            })
            .collect()
    }
}

fn requested_mac(req: &Request) -> Result<Option<Mac>, Error> {
    let from_json = |v: Option<&Value>, what: &str| -> Result<Option<String>, Error> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("{what} must be a string"))),
        }
    };
    let chosen = match from_json(req.config.capability("mac"), "runtimeConfig.mac")? {
        Some(m) => Some(m),
        None => match from_json(req.config.cni_arg("mac"), "args.cni.mac")? {
            Some(m) => Some(m),
            None => req.args.get("MAC").map(str::to_string),
        },
    };
    let Some(text) = chosen else {
        return Ok(None);
    };
    let mac = Mac::from_str(&text)?;
    if mac.is_multicast() || mac.is_zero() {
        return Err(invalid(format!(
            "MAC {mac} cannot be used for an interface (multicast or zero)"
        )));
    }
    Ok(Some(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::{CniArgs, Command, NetConf, Version};
    use serde_json::json;

    fn req(extra: Value, cni_args: &str) -> Request {
        let mut conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"});
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        Request {
            command: Command::Add,
            container_id: Some("c".parse().unwrap()),
            netns: None,
            ifname: Some("eth0".parse().unwrap()),
            args: CniArgs::parse(cni_args).unwrap(),
            cni_path: vec![],
            stdin: conf.to_string().into_bytes(),
            config: NetConf::parse(conf, Version::V1_0_0).unwrap(),
        }
    }

    fn parse(extra: Value) -> Result<BridgeConf, Error> {
        BridgeConf::from_request(&req(extra, ""))
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.bridge.as_str(), "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.enable_dad && !c.has_ipam);
        assert_eq!(c.mtu, None);
        assert_eq!(c.mac, None);
    }

    #[test]
    fn default_gateway_implies_gateway() {
        let c = parse(json!({"isDefaultGateway": true})).unwrap();
        assert!(c.is_gateway && c.is_default_gateway);
    }

    #[test]
    fn every_reference_key_is_accepted() {
        let c = parse(json!({
            "bridge": "br-test", "isGateway": true, "isDefaultGateway": false,
            "forceAddress": true, "ipMasq": true, "ipMasqBackend": "iptables", "mtu": 1400,
            "hairpinMode": true, "promiscMode": false, "vlan": 0, "vlanTrunk": [],
            "preserveDefaultVlan": true, "macspoofchk": true, "enabledad": true,
            "disableContainerInterface": false, "portIsolation": true,
            "ipam": {"type": "host-local"}
        }))
        .unwrap();
        assert_eq!(c.bridge.as_str(), "br-test");
        assert_eq!(c.mtu, Some(1400));
        assert!(c.force_address && c.ip_masq && c.hairpin_mode && c.macspoofchk);
        assert!(c.enable_dad && c.port_isolation && c.has_ipam);
    }

    #[test]
    fn invalid_configs_are_code_7() {
        for bad in [
            json!({"mtu": -5}),
            json!({"mtu": 20}),
            json!({"mtu": 70000}),
            json!({"mtu": "1500"}),
            json!({"vlan": 5000}),
            json!({"vlan": -1}),
            json!({"bridge": "a-very-long-bridge-name"}),
            json!({"bridge": "br/0"}),
            json!({"hairpinMode": true, "promiscMode": true}),
            json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}}),
            json!({"ipMasqBackend": "ebtables"}),
            json!({"isGateway": "yes"}),
            json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
            json!({"runtimeConfig": {"mac": "nope"}}),
            json!({"runtimeConfig": {"mac": 5}}),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::INVALID_CONFIG, "{bad}: {e}");
        }
    }

    #[test]
    fn vlans_are_refused_as_unsupported_fields() {
        for (cfg, key, value) in [
            (json!({"vlan": 100}), "vlan", "100"),
            (json!({"vlanTrunk": [{"id": 5}]}), "vlanTrunk", "\"id\":5"),
        ] {
            let e = parse(cfg).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::UNSUPPORTED_FIELD);
            assert!(e.msg.contains(key) && e.msg.contains(value), "{}", e.msg);
        }
    }

    #[test]
    fn mac_precedence_runtime_config_then_args_then_cni_args() {
        let all = json!({
            "runtimeConfig": {"mac": "02:00:00:00:00:01"},
            "args": {"cni": {"mac": "02:00:00:00:00:02"}}
        });
        let c = BridgeConf::from_request(&req(all, "MAC=02:00:00:00:00:03")).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:01");
        let args = json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}});
        let c = BridgeConf::from_request(&req(args, "MAC=02:00:00:00:00:03")).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:02");
        let c = BridgeConf::from_request(&req(json!({}), "MAC=02:00:00:00:00:03")).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "02:00:00:00:00:03");
    }
}
