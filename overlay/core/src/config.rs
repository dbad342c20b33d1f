//! The overlay network's config, at `<prefix>/config` in etcd:
//! `{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1, "port": 8472,
//! "mtu": null, "directRouting": false}`.

use cni::{Cidr, Error};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SUBNET_LEN: u8 = 24;
/// The kernel's (and flannel's) VXLAN port; IANA's is 4789.
pub const DEFAULT_PORT: u16 = 8472;
/// VXLAN network identifiers are 24 bits.
const MAX_VNI: u32 = (1 << 24) - 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverlayConfig {
    /// The cluster network every node subnet is cut from.
    pub network: Cidr,
    #[serde(default = "default_subnet_len")]
    pub subnet_len: u8,
    #[serde(default = "default_vni")]
    pub vni: u32,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The VXLAN device's MTU; `None`: the underlay's minus the encapsulation.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Route straight over the underlay to nodes on the same L2 segment.
    #[serde(default)]
    pub direct_routing: bool,
}

fn default_subnet_len() -> u8 {
    DEFAULT_SUBNET_LEN
}
fn default_vni() -> u32 {
    1
}
fn default_port() -> u16 {
    DEFAULT_PORT
}

impl OverlayConfig {
    /// Parses and validates (code 7 with the reason).
    pub fn parse(json: &[u8]) -> Result<OverlayConfig, Error> {
        let cfg: OverlayConfig = serde_json::from_slice(json)
            .map_err(|e| Error::invalid_config(format!("overlay config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::invalid_config(format!("overlay config: {m}")));
        if !self.network.is_ipv4() {
            return bad(format!(
                "network {} must be IPv4 (an IPv6 overlay is not implemented)",
                self.network
            ));
        }
        if self.network.ip() != self.network.network() {
            return bad(format!("network {} has host bits set", self.network));
        }
        if self.subnet_len <= self.network.prefix() || self.subnet_len > 30 {
            return bad(format!(
                "subnetLen {} must be longer than the network's /{} and at most 30",
                self.subnet_len,
                self.network.prefix()
            ));
        }
        if self.subnet_len - self.network.prefix() > 20 {
            return bad(format!(
                "subnetLen {} cuts {} into more than 2^20 subnets",
                self.subnet_len, self.network
            ));
        }
        if self.vni == 0 || self.vni > MAX_VNI {
            return bad(format!("vni {} must be 1..{MAX_VNI}", self.vni));
        }
        if self.port == 0 {
            return bad("port 0".into());
        }
        if let Some(mtu) = self.mtu {
            if !(576..=65_485).contains(&mtu) {
                return bad(format!("mtu {mtu} must be 576..65485"));
            }
        }
        Ok(())
    }

    /// How many node subnets the network holds.
    pub fn subnet_count(&self) -> u32 {
        1u32 << (self.subnet_len - self.network.prefix())
    }

    /// Why `new` would break nodes that run with `self`, if it would: a
    /// different VNI or port (peers stop understanding each other), a
    /// network that no longer holds every leased subnet, another subnet
    /// length (leased subnets no longer line up).
    pub fn breaking_changes(&self, new: &OverlayConfig, leased: &[Cidr]) -> Vec<String> {
        let mut why = Vec::new();
        if new.vni != self.vni {
            why.push(format!("vni {} -> {}: running nodes keep the old one until restarted, and the two halves can't talk", self.vni, new.vni));
        }
        if new.port != self.port {
            why.push(format!(
                "port {} -> {}: running nodes keep the old port until restarted, and the two halves can't talk",
                self.port, new.port
            ));
        }
        if new.subnet_len != self.subnet_len {
            why.push(format!(
                "subnetLen {} -> {}: leased subnets no longer match the new size",
                self.subnet_len, new.subnet_len
            ));
        }
        let stranded: Vec<String> = leased
            .iter()
            .filter(|s| !new.network.contains(s.ip()) || new.network.prefix() > s.prefix())
            .map(|s| s.to_string())
            .collect();
        if !stranded.is_empty() {
            why.push(format!(
                "network {} -> {} strands leased subnets {}",
                self.network,
                new.network,
                stranded.join(", ")
            ));
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = OverlayConfig::parse(br#"{"network": "10.244.0.0/16"}"#).unwrap();
        assert_eq!(
            (c.subnet_len, c.vni, c.port, c.mtu, c.direct_routing),
            (24, 1, 8472, None, false)
        );
        assert_eq!(c.subnet_count(), 256);
        for bad in [
            r#"{"network": "10.244.0.1/16"}"#,
            r#"{"network": "10.244.0.0/16", "subnetLen": 16}"#,
            r#"{"network": "10.244.0.0/16", "subnetLen": 31}"#,
            r#"{"network": "10.0.0.0/8", "subnetLen": 30}"#,
            r#"{"network": "10.244.0.0/16", "vni": 0}"#,
            r#"{"network": "10.244.0.0/16", "vni": 16777216}"#,
            r#"{"network": "10.244.0.0/16", "mtu": 100}"#,
            r#"{"network": "fd00::/48"}"#,
            r#"{"network": "10.244.0.0/16", "bogus": 1}"#,
            r#"{"subnetLen": 24}"#,
            "not json",
        ] {
            assert!(OverlayConfig::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn breaking_changes_name_each_reason() {
        let old = OverlayConfig::parse(br#"{"network": "10.244.0.0/16"}"#).unwrap();
        let leased: Vec<Cidr> = vec![
            "10.244.1.0/24".parse().unwrap(),
            "10.244.200.0/24".parse().unwrap(),
        ];
        assert!(old.breaking_changes(&old, &leased).is_empty());
        let grow = OverlayConfig::parse(br#"{"network": "10.244.0.0/15"}"#).unwrap();
        assert!(
            old.breaking_changes(&grow, &leased).is_empty(),
            "growing keeps every subnet"
        );
        let shrink = OverlayConfig::parse(br#"{"network": "10.244.0.0/17"}"#).unwrap();
        let why = old.breaking_changes(&shrink, &leased);
        assert_eq!(why.len(), 1);
        assert!(
            why[0].contains("10.244.200.0/24") && !why[0].contains("10.244.1.0/24"),
            "{why:?}"
        );
        let vni = OverlayConfig::parse(br#"{"network": "10.244.0.0/16", "vni": 2, "port": 4789}"#)
            .unwrap();
        assert_eq!(old.breaking_changes(&vni, &leased).len(), 2);
    }
}
