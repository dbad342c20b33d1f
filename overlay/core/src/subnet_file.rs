//! The file overlayd writes for the vxlan plugin (default
//! `/run/overlay/subnet.json`), replaced atomically:
//! `{"network": "10.244.0.0/16", "subnet": "10.244.3.0/24", "gateway":
//! "10.244.3.1", "mtu": 1450, "device": "vxlan.1"}`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use cni::{Cidr, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetFile {
    /// The cluster network (pods route it via the gateway).
    pub network: Cidr,
    /// This node's subnet (pods take their addresses from it).
    pub subnet: Cidr,
    pub gateway: IpAddr,
    /// The pods' MTU: the overlay's.
    pub mtu: u32,
    /// The VXLAN device (STATUS checks it exists).
    pub device: String,
}

impl SubnetFile {
    pub fn read(path: &Path) -> Result<SubnetFile, Error> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::new(
                cni::ErrorCode::NOT_AVAILABLE,
                format!(
                    "cannot read the subnet file {}: {e} (is overlayd running on this node?)",
                    path.display()
                ),
            )
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::decoding(format!("subnet file {}: {e}", path.display())))
    }

    /// Writes a temporary file beside `path` and renames it over: a reader
    /// sees the old file or the new one, never half of one.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).unwrap_or_default())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let dir = std::env::temp_dir().join(format!("subnet-file-{}", std::process::id()));
        let path = dir.join("subnet.json");
        let f = SubnetFile {
            network: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.3.0/24".parse().unwrap(),
            gateway: "10.244.3.1".parse().unwrap(),
            mtu: 1450,
            device: "vxlan.1".into(),
        };
        f.write(&path).unwrap();
        assert_eq!(SubnetFile::read(&path).unwrap(), f);
        assert!(!path.with_extension("tmp").exists());
        let e = SubnetFile::read(&dir.join("missing.json")).unwrap_err();
        assert!(e.msg.contains("overlayd"), "{}", e.msg);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
