//! Where the overlay lives in etcd, under `<prefix>` (default `/overlay`):
//!
//! | key | value |
//! |---|---|
//! | `config` | the [`OverlayConfig`](crate::OverlayConfig) |
//! | `subnets/<subnet>` | the [`NodeRecord`](crate::NodeRecord) of the node leasing it, attached to that node's etcd lease |
//!
//! `<subnet>` is the subnet with `-` for `/` (`10.244.3.0-24`). A lease that
//! expires takes the record with it: that is how the others learn a node died.

use cni::Cidr;

pub const DEFAULT_PREFIX: &str = "/overlay";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

/// A subnet's name in keys: `10.244.3.0-24`.
pub fn subnet_id(subnet: &Cidr) -> String {
    format!("{}-{}", subnet.ip(), subnet.prefix())
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let prefix = prefix.trim_end_matches('/');
        let lead = if prefix.starts_with('/') { "" } else { "/" };
        Keys {
            root: format!("{lead}{prefix}/"),
        }
    }

    pub fn config(&self) -> String {
        format!("{}config", self.root)
    }

    pub fn subnets(&self) -> String {
        format!("{}subnets/", self.root)
    }

    pub fn subnet(&self, subnet: &Cidr) -> String {
        format!("{}subnets/{}", self.root, subnet_id(subnet))
    }

    /// The subnet a key under [`Keys::subnets`] names.
    pub fn parse_subnet_key(&self, key: &str) -> Option<Cidr> {
        let id = key.strip_prefix(&self.subnets())?;
        let (ip, len) = id.rsplit_once('-')?;
        let c: Cidr = format!("{ip}/{len}").parse().ok()?;
        (c.ip() == c.network()).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/overlay/");
        let s: Cidr = "10.244.3.0/24".parse().unwrap();
        assert_eq!(k.config(), "/overlay/config");
        assert_eq!(k.subnet(&s), "/overlay/subnets/10.244.3.0-24");
        assert_eq!(k.parse_subnet_key(&k.subnet(&s)), Some(s));
        assert_eq!(k.parse_subnet_key("/overlay/subnets/10.244.3.1-24"), None);
        assert_eq!(k.parse_subnet_key("/other/subnets/10.244.3.0-24"), None);
        assert_eq!(Keys::new("overlay"), k);
    }
}
