//! The record a node publishes for the others: enough to reach its pods.

use std::net::IpAddr;

use cni::{Cidr, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub node: String,
    /// The underlay address VXLAN packets to this node go to.
    pub public_ip: IpAddr,
    /// The MAC of its VXLAN device (`aa:bb:cc:dd:ee:ff`).
    pub vtep_mac: String,
    pub subnet: Cidr,
    /// Unix seconds when this node took its current lease.
    #[serde(default)]
    pub since: u64,
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6], Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || Error::invalid_config(format!("invalid MAC {s:?}"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

impl NodeRecord {
    pub fn mac(&self) -> Result<[u8; 6], Error> {
        parse_mac(&self.vtep_mac)
    }

    pub fn parse(json: &[u8]) -> Result<NodeRecord, Error> {
        serde_json::from_slice(json).map_err(|e| Error::decoding(format!("node record: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_json_and_mac() {
        let r = NodeRecord {
            node: "n1".into(),
            public_ip: "192.168.100.2".parse().unwrap(),
            vtep_mac: "0a:58:0a:f4:01:00".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            since: 5,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"node":"n1","publicIp":"192.168.100.2","vtepMac":"0a:58:0a:f4:01:00","subnet":"10.244.1.0/24","since":5}"#
        );
        assert_eq!(NodeRecord::parse(json.as_bytes()).unwrap(), r);
        assert_eq!(r.mac().unwrap(), [0x0a, 0x58, 0x0a, 0xf4, 1, 0]);
        for bad in [
            "",
            "0a:58:0a:f4:01",
            "0a:58:0a:f4:01:zz",
            "0a:58:0a:f4:01:000",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
