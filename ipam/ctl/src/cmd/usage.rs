//! `ipamctl usage`: per range set and per node, how much of the pool is
//! claimed and used.

use admin_cli::Table;
use cni::{Error, NetworkName};
use etcd_ipam::usage::{usage, NodeUsage, SetUsage};
use serde_json::{json, Value};

use super::Report;
use crate::connect::Target;
use crate::view::{count, read_networks};

fn set_json(s: &SetUsage) -> Value {
    json!({
        "ranges": s.ranges,
        "blockSize": s.block_size,
        "capacity": count(s.capacity),
        "used": s.used,
        "blocksClaimed": s.blocks_claimed,
        "blocksTotal": count(s.blocks_total),
    })
}

fn node_json(node: &str, n: &NodeUsage) -> Value {
    json!({
        "node": node,
        "blocks": n.blocks,
        "capacity": n.capacity,
        "used": n.used,
        "handles": n.handles,
    })
}

pub async fn run(target: &Target, only: Option<&NetworkName>) -> Result<Report, Error> {
    let mut etcd = target.connect().await?;
    let networks = read_networks(&mut etcd, &target.cfg.prefix, only).await?;
    let mut sets = Table::new(&["NETWORK", "RANGES", "BLOCK", "CAPACITY", "USED", "BLOCKS"]);
    let mut nodes = Table::new(&["NETWORK", "NODE", "BLOCKS", "CAPACITY", "USED", "HANDLES"]);
    let mut json = Vec::new();
    for net in &networks {
        let u = usage(&net.pool, &net.view);
        for s in &u.sets {
            sets.row(vec![
                net.name.clone(),
                s.ranges.clone(),
                format!("/{}", s.block_size),
                s.capacity.to_string(),
                s.used.to_string(),
                format!("{}/{}", s.blocks_claimed, s.blocks_total),
            ]);
        }
        for (node, n) in &u.nodes {
            nodes.row(vec![
                net.name.clone(),
                node.clone(),
                n.blocks.to_string(),
                n.capacity.to_string(),
                n.used.to_string(),
                n.handles.to_string(),
            ]);
        }
        json.push(json!({
            "network": net.name,
            "sets": u.sets.iter().map(set_json).collect::<Vec<_>>(),
            "nodes": u.nodes.iter().map(|(node, n)| node_json(node, n)).collect::<Vec<_>>(),
        }));
    }
    let text = format!("{}\n{}", sets.render(), nodes.render());
    Ok(Report::new(text, json!({ "networks": json })))
}
