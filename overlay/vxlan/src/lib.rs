//! The `vxlan` plugin: a pod on the overlay. It reads this node's subnet
//! from the file overlayd writes, turns its own config into a bridge config
//! (the node subnet for IPAM, the overlay MTU, the gateway on the bridge, a
//! route to the cluster network, masquerade of what leaves the cluster
//! network) and runs the bridge plugin's own code on it: a pod is set up,
//! checked and torn down exactly as bridge does it.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "podnet", "type": "vxlan",
//!  "subnetFile": "/run/overlay/subnet.json"}
//! ```
//!
//! Bridge keys are passed through (`bridge`, `isDefaultGateway`, `ipMasq`,
//! `hairpinMode`, `mtu`, ...). Defaults that differ from the bridge's:
//! `isGateway` and `isDefaultGateway` true, `ipMasq` true (only traffic
//! leaving the cluster network), `mtu` the overlay's. Without `ipam`,
//! host-local serves the node subnet; an `ipam` section given is used as it
//! is, with `ranges` set to the node subnet when it has none (and, for
//! etcd-ipam, `pool` set to `<network>-<subnet>`: each node subnet is a pool).

use std::path::PathBuf;

use bridge::BridgeConf;
use cni::{CniResult, Error, ErrorCode, NetConf, Plugin, Request};
use overlay_core::SubnetFile;
use serde_json::{json, Map, Value};

pub const DEFAULT_SUBNET_FILE: &str = "/run/overlay/subnet.json";

/// The plugin.
pub struct Vxlan;

fn subnet_file_path(req: &Request) -> Result<PathBuf, Error> {
    match req.config.raw.get("subnetFile") {
        None | Some(Value::Null) => Ok(PathBuf::from(DEFAULT_SUBNET_FILE)),
        Some(Value::String(s)) if !s.is_empty() => Ok(PathBuf::from(s)),
        Some(other) => Err(Error::invalid_config(format!(
            "subnetFile must be a path, got {other}"
        ))),
    }
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

/// The bridge config for this pod. `sf` is `None` for DEL and GC when the
/// subnet file is gone: they need no ranges (IPAM releases by container).
fn bridge_request(req: &Request, sf: Option<&SubnetFile>) -> Result<Request, Error> {
    let mut raw = req
        .config
        .raw
        .as_object()
        .cloned()
        .ok_or_else(|| Error::decoding("network config must be a JSON object"))?;
    raw.remove("subnetFile");
    set_default(&mut raw, "isGateway", json!(true));
    set_default(&mut raw, "isDefaultGateway", json!(true));
    set_default(&mut raw, "ipMasq", json!(true));
    let mut ipam = match raw.get("ipam") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => Map::from_iter([("type".to_string(), json!("host-local"))]),
        Some(other) => {
            return Err(Error::invalid_config(format!(
                "ipam must be an object, got {other}"
            )))
        }
    };
    if let Some(sf) = sf {
        set_default(&mut raw, "mtu", json!(sf.mtu));
        set_default(
            &mut ipam,
            "ranges",
            json!([[{"subnet": sf.subnet.to_string(), "gateway": sf.gateway.to_string()}]]),
        );
        // etcd-ipam: a pool per node subnet (an etcd-ipam pool is one set of
        // ranges for every node that names it).
        if ipam.get("type").and_then(Value::as_str) == Some("etcd-ipam") {
            let pool = format!(
                "{}-{}",
                req.config.name.as_str(),
                overlay_core::subnet_id(&sf.subnet)
            );
            set_default(&mut ipam, "pool", json!(pool));
        }
        set_default(
            &mut ipam,
            "routes",
            json!([{"dst": sf.network.to_string(), "gw": sf.gateway.to_string()}]),
        );
    }
    raw.insert("ipam".into(), Value::Object(ipam));
    let raw = Value::Object(raw);
    let config = NetConf::parse(raw.clone(), req.config.cni_version)?;
    Ok(Request {
        stdin: raw.to_string().into_bytes(),
        config,
        ..req.clone()
    })
}

fn bridge_conf(req: &Request, sf: Option<&SubnetFile>) -> Result<BridgeConf, Error> {
    let mut conf = BridgeConf::from_request(req)?;
    conf.masq_exempt = sf.map(|s| s.network);
    Ok(conf)
}

/// The subnet file, for ADD and CHECK: missing means overlayd has not (yet)
/// leased this node a subnet: try again later.
fn read_for_add(req: &Request) -> Result<SubnetFile, Error> {
    SubnetFile::read(&subnet_file_path(req)?).map_err(|e| match e.code {
        ErrorCode::NOT_AVAILABLE => Error::try_again_later(e.msg),
        _ => e,
    })
}

impl Plugin for Vxlan {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let sf = read_for_add(req)?;
        let breq = bridge_request(req, Some(&sf))?;
        bridge::add(&breq, &bridge_conf(&breq, Some(&sf))?)
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        let sf = SubnetFile::read(&subnet_file_path(req)?).ok();
        bridge::del(&bridge_request(req, sf.as_ref())?)
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let sf = read_for_add(req)?;
        let breq = bridge_request(req, Some(&sf))?;
        bridge::check(&breq, &bridge_conf(&breq, Some(&sf))?)
    }

    /// 50 when the subnet file or the VXLAN device is missing, else the
    /// bridge's STATUS.
    fn status(&self, req: &Request) -> Result<(), Error> {
        let sf = SubnetFile::read(&subnet_file_path(req)?)?;
        let nl = netlink::Netlink::connect_current()
            .map_err(|e| Error::plugin(format!("vxlan: {e}")))?;
        let device = nl
            .link_by_name(&sf.device)
            .map_err(|e| Error::plugin(format!("vxlan: {e}")))?;
        if device.is_none() {
            return Err(Error::new(
                ErrorCode::NOT_AVAILABLE,
                format!(
                    "the overlay device {} is missing (is overlayd running on this node?)",
                    sf.device
                ),
            ));
        }
        let breq = bridge_request(req, Some(&sf))?;
        bridge::status(&breq, &bridge_conf(&breq, Some(&sf))?)
    }

    fn gc(&self, req: &Request) -> Result<(), Error> {
        let sf = SubnetFile::read(&subnet_file_path(req)?).ok();
        let breq = bridge_request(req, sf.as_ref())?;
        bridge::gc(&breq, &bridge_conf(&breq, sf.as_ref())?)
    }

    fn known_args(&self) -> Option<&'static [&'static str]> {
        Some(&["MAC", "IP"])
    }
}
