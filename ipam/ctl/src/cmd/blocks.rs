//! `ipamctl blocks`: every claimed block, its node and how full it is.

use admin_cli::Table;
use cni::Error;
use etcd_ipam::usage::usage;
use serde_json::json;

use super::Report;
use crate::cli::Filter;
use crate::connect::Target;
use crate::view::read_networks;

pub async fn run(target: &Target, filter: &Filter) -> Result<Report, Error> {
    let mut etcd = target.connect().await?;
    let networks = read_networks(&mut etcd, &target.cfg.prefix, filter.network.as_ref()).await?;
    let mut table = Table::new(&["NETWORK", "BLOCK", "NODE", "USED", "CAPACITY"]);
    let mut json = Vec::new();
    for net in &networks {
        let mut blocks = usage(&net.pool, &net.view).blocks;
        blocks.retain(|b| filter.node.as_ref().is_none_or(|n| *n == b.node));
        // Address order reads better than key order (node, then block name).
        blocks.sort_by_key(|b| b.cidr);
        for b in &blocks {
            table.row(vec![
                net.name.clone(),
                b.cidr.to_string(),
                b.node.clone(),
                b.used.to_string(),
                b.capacity.to_string(),
            ]);
            json.push(json!({
                "network": net.name,
                "block": b.cidr.to_string(),
                "node": b.node,
                "used": b.used,
                "capacity": b.capacity,
            }));
        }
    }
    Ok(Report::new(table.render(), json!({ "blocks": json })))
}
