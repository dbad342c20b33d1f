//! `ipamctl node release`: give back the blocks of a node that is gone.

use cni::{Error, NetworkName};
use etcd_ipam::admin::{release_node, NodeRelease};
use etcd_ipam::keys::Keys;
use serde_json::{json, Value};

use super::Report;
use crate::connect::Target;

fn stranded_warnings(plan: &NodeRelease) -> Vec<String> {
    plan.stranded
        .iter()
        .map(|(ip, holder)| {
            format!(
                "{ip} stays with handle {holder} but its block was released: once the block is claimed again, {ip} can be handed out twice (release {holder} soon)"
            )
        })
        .collect()
}

fn release_json(network: &str, node: &str, plan: &NodeRelease) -> Value {
    json!({
        "network": network,
        "node": node,
        "claims": plan.claims.iter().map(|c| c.value.to_string()).collect::<Vec<_>>(),
        "blocks": plan.blocks.iter().map(|b| b.value.cidr.to_string()).collect::<Vec<_>>(),
        "handles": plan.handles.iter().map(|h| h.value.id()).collect::<Vec<_>>(),
        "lenderBlocks": plan.lenders.iter().map(|b| b.value.cidr.to_string()).collect::<Vec<_>>(),
        "stranded": plan.stranded.iter()
            .map(|(ip, holder)| json!({"address": ip.to_string(), "handle": holder}))
            .collect::<Vec<_>>(),
    })
}

fn release_text(network: &str, node: &str, plan: &NodeRelease) -> String {
    if plan.is_empty() {
        return format!("node {node} holds nothing in network {network}: nothing to release\n");
    }
    let mut text = format!(
        "released node {node} of network {network}: {} claim(s), {} block(s), {} handle(s)\n",
        plan.claims.len(),
        plan.blocks.len(),
        plan.handles.len()
    );
    if !plan.lenders.is_empty() {
        let lenders: Vec<String> = plan
            .lenders
            .iter()
            .map(|b| b.value.cidr.to_string())
            .collect();
        text.push_str(&format!(
            "borrowed addresses given back to blocks {}\n",
            lenders.join(", ")
        ));
    }
    text
}

pub async fn release(
    target: &Target,
    node: &str,
    network: &NetworkName,
    force: bool,
) -> Result<Report, Error> {
    let mut etcd = target.connect().await?;
    let keys = Keys::new(&target.cfg.prefix, network.as_str());
    let plan = release_node(&mut etcd, &keys, node, force).await?;
    let mut report = Report::new(
        release_text(network.as_str(), node, &plan),
        release_json(network.as_str(), node, &plan),
    );
    report.warnings = stranded_warnings(&plan);
    Ok(report)
}
