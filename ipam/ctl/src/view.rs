//! Reading networks for the read-only commands: each network at one
//! revision, with its pool as stored in etcd (ipamctl has no CNI config).

use cni::{Error, NetworkName};
use etcd_ipam::admin::list_networks;
use etcd_ipam::etcd::Etcd;
use etcd_ipam::keys::Keys;
use etcd_ipam::ops::{self, NetworkView};
use etcd_ipam::pool::Pool;
use serde_json::Value;

/// One network: everything under `<prefix>/<name>/`, and its pool.
pub struct Network {
    pub name: String,
    pub view: NetworkView,
    pub pool: Pool,
}

async fn read_network(etcd: &mut Etcd, prefix: &str, name: &str) -> Result<Network, Error> {
    let keys = Keys::new(prefix, name);
    let view = ops::read_network(etcd, &keys).await?;
    let Some(record) = &view.pool else {
        return Err(Error::plugin(format!(
            "no network {name} under {prefix}: {} does not exist (no node has claimed a block of it)",
            keys.pool()
        )));
    };
    let pool = Pool::from_record(&record.value)
        .map_err(|e| Error::plugin(format!("{} holds no valid pool: {}", keys.pool(), e.msg)))?;
    Ok(Network {
        name: name.to_string(),
        view,
        pool,
    })
}

/// `only`, or every network under the prefix (in name order).
pub async fn read_networks(
    etcd: &mut Etcd,
    prefix: &str,
    only: Option<&NetworkName>,
) -> Result<Vec<Network>, Error> {
    let names = match only {
        Some(name) => vec![name.to_string()],
        None => list_networks(etcd, prefix).await?,
    };
    let mut networks = Vec::with_capacity(names.len());
    for name in names {
        networks.push(read_network(etcd, prefix, &name).await?);
    }
    Ok(networks)
}

/// A count as JSON: a number while it fits in 64 bits (what JSON readers
/// take exactly), else its decimal digits as a string (IPv6 ranges).
pub fn count(n: u128) -> Value {
    match u64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_beyond_64_bits_are_strings() {
        assert_eq!(count(65533), serde_json::json!(65533));
        assert_eq!(
            count(1 << 80),
            serde_json::json!("1208925819614629174706176")
        );
    }
}
