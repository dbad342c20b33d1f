//! The subcommands. Each returns a [`Report`]: the same facts as text and
//! as JSON; the caller prints the one asked for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use admin_cli::Report;
use admin_cli::Table;
use cni::Error;
use overlay_core::{Keys, OverlayConfig};
use serde_json::{json, Value};

use crate::cli::{Command, ConfigCommand, NodeCommand};
use crate::connect::{Etcd, Settings};
use crate::duration;
use crate::store::{self, SetOutcome};

/// Where and until when a command may talk to etcd. Commands connect
/// themselves, after checking their own input.
pub struct Target {
    pub settings: Settings,
    /// The command's start + `--timeout-ms`.
    pub deadline: Instant,
}

impl Target {
    pub async fn connect(&self) -> Result<Etcd, Error> {
        Etcd::connect(&self.settings, self.deadline).await
    }

    pub fn keys(&self) -> Keys {
        Keys::new(&self.settings.prefix)
    }
}

pub async fn run(command: &Command, target: &Target) -> Result<Report, Error> {
    match command {
        Command::Config(ConfigCommand::Get) => config_get(target).await,
        Command::Config(ConfigCommand::Set { file, force }) => {
            config_set(target, file, *force).await
        }
        Command::Nodes => nodes(target).await,
        Command::Node(NodeCommand::Rm { name }) => node_rm(target, name).await,
    }
}

async fn config_get(target: &Target) -> Result<Report, Error> {
    let etcd = target.connect().await?;
    let keys = target.keys();
    let state = store::read_state(&etcd, &keys).await?;
    let Some(stored) = state.config else {
        return Err(Error::plugin(format!(
            "no overlay config at {} (overlayctl config set FILE stores one)",
            keys.config()
        )));
    };
    let (text, json) = match serde_json::from_slice::<Value>(&stored.raw) {
        Ok(v) => (format!("{v:#}\n"), v),
        Err(_) => {
            let raw = String::from_utf8_lossy(&stored.raw).into_owned();
            (format!("{raw}\n"), Value::String(raw))
        }
    };
    let mut report = Report::new(text, json);
    if let Err(why) = stored.parsed {
        report.failure = Some(Error::plugin(format!(
            "the config at {} is invalid: {why}",
            keys.config()
        )));
    }
    Ok(report)
}

/// The new config's bytes: a file, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>, Error> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("cannot read the config from stdin: {e}")))?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))
    }
}

async fn config_set(target: &Target, file: &Path, force: bool) -> Result<Report, Error> {
    let new = OverlayConfig::parse(&read_input(file)?)
        .map_err(|e| Error::invalid_config(format!("{}; nothing written", e.msg)))?;
    let etcd = target.connect().await?;
    let keys = target.keys();
    let config = serde_json::to_value(&new).unwrap_or(Value::Null);
    let outcome = store::set_config(&etcd, &keys, &new, force).await?;
    Ok(match outcome {
        SetOutcome::Unchanged => Report::new(
            format!(
                "{} already holds this config: nothing written\n",
                keys.config()
            ),
            json!({"written": false, "revision": null, "config": config, "forced": []}),
        ),
        SetOutcome::Written { revision, forced } => {
            let mut report = Report::new(
                format!(
                    "config written to {} (revision {revision})\n",
                    keys.config()
                ),
                json!({"written": true, "revision": revision, "config": config, "forced": forced}),
            );
            report.warnings = forced
                .iter()
                .map(|why| format!("written despite: {why}"))
                .collect();
            report
        }
    })
}

/// Unix seconds now (0 if the clock is before 1970).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lease's id as etcdctl prints it.
fn lease_hex(id: i64) -> Option<String> {
    (id != 0).then(|| format!("{id:x}"))
}

async fn nodes(target: &Target) -> Result<Report, Error> {
    let etcd = target.connect().await?;
    let keys = target.keys();
    let state = store::read_state(&etcd, &keys).await?;
    // Each lease once (a node's records share its lease).
    let mut ttls: BTreeMap<i64, Option<u64>> = BTreeMap::new();
    for e in &state.entries {
        if e.lease != 0 && !ttls.contains_key(&e.lease) {
            ttls.insert(e.lease, etcd.lease_ttl(e.lease).await?);
        }
    }
    let now = unix_now();
    let mut rows: Vec<_> = state
        .entries
        .iter()
        .filter_map(|e| e.record.as_ref().ok().map(|r| (r, e.lease)))
        .collect();
    rows.sort_by(|(a, _), (b, _)| (&a.node, a.subnet).cmp(&(&b.node, b.subnet)));
    let mut table = Table::new(&[
        "NODE",
        "SUBNET",
        "PUBLIC IP",
        "VTEP MAC",
        "LEASE AGE",
        "TTL LEFT",
    ]);
    let mut list = Vec::new();
    for (r, lease) in rows {
        let age = (r.since != 0).then(|| now.saturating_sub(r.since));
        let ttl = ttls.get(&lease).copied().flatten();
        let ttl_text = match (lease, ttl) {
            (0, _) => "no lease".to_string(),
            (_, None) => "expired".to_string(),
            (_, Some(t)) => duration::human(t),
        };
        table.row(vec![
            r.node.clone(),
            r.subnet.to_string(),
            r.public_ip.to_string(),
            r.vtep_mac.clone(),
            age.map(duration::human).unwrap_or_else(|| "-".into()),
            ttl_text,
        ]);
        list.push(json!({
            "node": r.node,
            "subnet": r.subnet.to_string(),
            "publicIp": r.public_ip.to_string(),
            "vtepMac": r.vtep_mac,
            "leaseAge": age,
            "ttlLeft": ttl,
            "lease": lease_hex(lease),
        }));
    }
    let mut report = Report::new(table.render(), Value::Array(list));
    report.warnings = state.bad_entries();
    Ok(report)
}

const REREGISTERS: &str = "a running overlayd on that node registers again (its keep-alive holds the lease, and it leases a subnet anew when its record vanishes): node rm is for nodes that are gone";

async fn node_rm(target: &Target, name: &str) -> Result<Report, Error> {
    let etcd = target.connect().await?;
    let removed = store::remove_node(&etcd, &target.keys(), name).await?;
    let mut text = String::new();
    let mut list = Vec::new();
    for e in &removed {
        let subnet = e
            .record
            .as_ref()
            .map(|r| r.subnet.to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            "removed node {name}: subnet {subnet} ({})\n",
            e.key
        ));
        list.push(json!({"key": e.key, "subnet": subnet, "lease": lease_hex(e.lease)}));
    }
    text.push_str(&format!("note: {REREGISTERS}\n"));
    Ok(Report::new(
        text,
        json!({"node": name, "removed": list, "note": REREGISTERS}),
    ))
}
