//! `ipamctl handles`: the attachments holding addresses.

use admin_cli::Table;
use cni::Error;
use etcd_ipam::model::HandleRecord;
use serde_json::{json, Value};

use super::Report;
use crate::cli::Filter;
use crate::connect::Target;
use crate::view::read_networks;

/// The handle's addresses, with their prefix length (as results show them).
pub fn addresses(h: &HandleRecord) -> Vec<String> {
    h.ips.iter().map(|ip| ip.address.to_string()).collect()
}

/// A handle as a table row after the network column (node, container,
/// ifname, addresses).
pub fn cells(h: &HandleRecord) -> Vec<String> {
    vec![
        h.node.clone(),
        h.container_id.clone(),
        h.ifname.clone(),
        addresses(h).join(","),
    ]
}

pub fn handle_json(network: &str, h: &HandleRecord) -> Value {
    json!({
        "network": network,
        "node": h.node,
        "containerID": h.container_id,
        "ifname": h.ifname,
        "addresses": addresses(h),
    })
}

pub async fn run(target: &Target, filter: &Filter) -> Result<Report, Error> {
    let mut etcd = target.connect().await?;
    let networks = read_networks(&mut etcd, &target.cfg.prefix, filter.network.as_ref()).await?;
    let mut table = Table::new(&["NETWORK", "NODE", "CONTAINER", "IFNAME", "ADDRESSES"]);
    let mut json = Vec::new();
    for net in &networks {
        let handles = net
            .view
            .handles
            .iter()
            .map(|e| &e.value)
            .filter(|h| filter.node.as_ref().is_none_or(|n| *n == h.node));
        for h in handles {
            table.row([vec![net.name.clone()], cells(h)].concat());
            json.push(handle_json(&net.name, h));
        }
    }
    Ok(Report::new(table.render(), json!({ "handles": json })))
}
