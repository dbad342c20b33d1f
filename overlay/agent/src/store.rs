//! The daemon's etcd: connecting (TLS, auth), reading the config, listing
//! the node records, and this node's registration under its lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cni::Cidr;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};
use overlay_core::{pick_subnet, Keys, NodeRecord, OverlayConfig};

use crate::cli::Args;

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub async fn connect(args: &Args) -> Result<Client, String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
    if let Some(ca) = &args.etcd_cacert {
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(c), Some(k)) = (&args.etcd_cert, &args.etcd_key) {
            tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
        }
        opts = opts.with_tls(tls);
    }
    if let Some(user) = &args.etcd_user {
        let (u, p) = user.split_once(':').unwrap_or((user, ""));
        opts = opts.with_user(u, p);
    }
    Client::connect(&args.etcd_endpoints, Some(opts))
        .await
        .map_err(|e| format!("connect to etcd {}: {e}", args.etcd_endpoints.join(",")))
}

pub async fn read_config(
    client: &mut Client,
    keys: &Keys,
) -> Result<Option<OverlayConfig>, String> {
    let resp = client
        .get(keys.config(), None)
        .await
        .map_err(|e| e.to_string())?;
    resp.kvs()
        .first()
        .map(|kv| OverlayConfig::parse(kv.value()).map_err(|e| e.msg))
        .transpose()
}

/// A node record as listed, with what guards a write of it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: NodeRecord,
    pub mod_revision: i64,
}

/// Every node record and the revision they were read at.
pub async fn list(
    client: &mut Client,
    keys: &Keys,
) -> Result<(i64, BTreeMap<Cidr, Listed>), String> {
    let resp = client
        .get(keys.subnets(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| e.to_string())?;
    let rev = resp.header().map_or(0, |h| h.revision());
    let mut out = BTreeMap::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        let (Some(subnet), Ok(record)) =
            (keys.parse_subnet_key(&key), NodeRecord::parse(kv.value()))
        else {
            tracing::warn!(%key, "ignoring a node record that does not parse");
            continue;
        };
        out.insert(
            subnet,
            Listed {
                record,
                mod_revision: kv.mod_revision(),
            },
        );
    }
    Ok((rev, out))
}

/// This node's subnet under its lease.
#[derive(Debug, Clone)]
pub struct Registration {
    pub lease: i64,
    pub subnet: Cidr,
    pub key: String,
    pub record: NodeRecord,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Leases a subnet for this node: the one its record still holds (a restart
/// within the TTL), else `previous` (from the subnet file) when free, else a
/// free one. One create-if-absent (or guarded takeover) transaction.
#[allow(clippy::too_many_arguments)]
pub async fn register(
    client: &mut Client,
    keys: &Keys,
    cfg: &OverlayConfig,
    node: &str,
    public_ip: IpAddr,
    mac: &str,
    ttl: i64,
    previous: Option<Cidr>,
) -> Result<Registration, String> {
    for _ in 0..10 {
        let (_, listed) = list(client, keys).await?;
        let mine = listed
            .iter()
            .find(|(s, l)| l.record.node == node && cfg.network.contains(s.ip()));
        let taken: BTreeSet<Cidr> = listed.keys().copied().collect();
        let subnet = match mine {
            Some((s, _)) => *s,
            None => pick_subnet(cfg, node, &taken, previous)
                .ok_or_else(|| format!("no free /{} left in {}", cfg.subnet_len, cfg.network))?,
        };
        let key = keys.subnet(&subnet);
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| e.to_string())?
            .id();
        let record = NodeRecord {
            node: node.to_string(),
            public_ip,
            vtep_mac: mac.to_string(),
            subnet,
            since: now(),
        };
        let guard = match mine {
            Some((_, l)) => Compare::mod_revision(key.clone(), CompareOp::Equal, l.mod_revision),
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let put = TxnOp::put(
            key.clone(),
            serde_json::to_vec(&record).unwrap_or_default(),
            Some(PutOptions::new().with_lease(lease)),
        );
        let resp = client
            .txn(Txn::new().when([guard]).and_then([put]))
            .await
            .map_err(|e| e.to_string())?;
        if resp.succeeded() {
            return Ok(Registration {
                lease,
                subnet,
                key,
                record,
            });
        }
        let _ = client.lease_revoke(lease).await;
    }
    Err("could not lease a subnet: every attempt raced with another node".into())
}

/// Rewrites this node's record (a new VTEP MAC) under the same lease.
pub async fn republish(client: &mut Client, reg: &Registration) -> Result<(), String> {
    client
        .put(
            reg.key.clone(),
            serde_json::to_vec(&reg.record).unwrap_or_default(),
            Some(PutOptions::new().with_lease(reg.lease)),
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
