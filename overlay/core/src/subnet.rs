//! Which subnet a node takes.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use cni::Cidr;

use crate::OverlayConfig;

/// The `i`-th node subnet of the network.
fn nth(cfg: &OverlayConfig, i: u32) -> Option<Cidr> {
    let IpAddr::V4(base) = cfg.network.ip() else {
        return None;
    };
    let step = 1u32.checked_shl(32 - u32::from(cfg.subnet_len))?;
    let ip = u32::from(base).checked_add(i.checked_mul(step)?)?;
    Cidr::new(IpAddr::V4(Ipv4Addr::from(ip)), cfg.subnet_len).ok()
}

/// The subnet for a node: `previous` when it is still one of the network's
/// and free (a restart keeps its pods' addresses), else the first free one
/// after a start that depends on the node's name (nodes joining at once
/// rarely race for the same), skipping the network's first subnet (its
/// first address is the network address some tools treat specially).
pub fn pick_subnet(
    cfg: &OverlayConfig,
    node: &str,
    taken: &BTreeSet<Cidr>,
    previous: Option<Cidr>,
) -> Option<Cidr> {
    if let Some(p) = previous {
        let fits =
            p.prefix() == cfg.subnet_len && cfg.network.contains(p.ip()) && p.ip() == p.network();
        if fits && !taken.contains(&p) {
            return Some(p);
        }
    }
    let count = cfg.subnet_count();
    let start = node.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) % count;
    (0..count)
        .map(|k| (start + k) % count)
        .filter(|i| *i != 0 || count == 1)
        .filter_map(|i| nth(cfg, i))
        .find(|s| !taken.contains(s))
}

/// The VXLAN device's own address on a node: the subnet's network address
/// (as flannel does), never handed to a pod.
pub fn vtep_address(subnet: &Cidr) -> IpAddr {
    subnet.network()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> OverlayConfig {
        OverlayConfig::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn previous_subnet_kept_when_free_else_a_free_one() {
        let c = cfg(r#"{"network": "10.244.0.0/16"}"#);
        let prev: Cidr = "10.244.7.0/24".parse().unwrap();
        assert_eq!(
            pick_subnet(&c, "n1", &BTreeSet::new(), Some(prev)),
            Some(prev)
        );
        let taken: BTreeSet<Cidr> = [prev].into();
        let got = pick_subnet(&c, "n1", &taken, Some(prev)).unwrap();
        assert_ne!(got, prev);
        assert_eq!(got.prefix(), 24);
        assert!(c.network.contains(got.ip()));
        // A previous subnet of another size or network is ignored.
        let odd: Cidr = "10.99.7.0/24".parse().unwrap();
        assert_ne!(
            pick_subnet(&c, "n1", &BTreeSet::new(), Some(odd)),
            Some(odd)
        );
    }

    #[test]
    fn every_subnet_but_the_first_is_used_then_none() {
        let c = cfg(r#"{"network": "10.244.0.0/22", "subnetLen": 24}"#);
        let mut taken = BTreeSet::new();
        while let Some(s) = pick_subnet(&c, "n", &taken, None) {
            taken.insert(s);
        }
        let got: Vec<String> = taken.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
        assert_eq!(
            vtep_address(&taken.iter().next().copied().unwrap()).to_string(),
            "10.244.1.0"
        );
    }
}
