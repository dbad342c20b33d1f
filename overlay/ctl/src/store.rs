//! What overlayctl reads and writes in etcd (the layout is
//! [`overlay_core::Keys`]'): the config and every node record, read at one
//! revision; the config written in one transaction guarded by that read;
//! a node's records deleted in one transaction guarded likewise.

use cni::{Cidr, Error};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use overlay_core::{Keys, NodeRecord, OverlayConfig};

use crate::connect::Etcd;

/// The config key as read.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    pub raw: Vec<u8>,
    /// The config, or why the stored bytes are none.
    pub parsed: Result<OverlayConfig, String>,
    pub mod_revision: i64,
}

/// One key under `<prefix>/subnets/` as read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// The subnet the key names (`None`: a key of no subnet).
    pub subnet: Option<Cidr>,
    /// The node record, or why the value is none.
    pub record: Result<NodeRecord, String>,
    /// The etcd lease the key is attached to (0: none).
    pub lease: i64,
    pub mod_revision: i64,
}

/// The overlay as read at one revision.
#[derive(Debug, Clone)]
pub struct State {
    pub revision: i64,
    pub config: Option<StoredConfig>,
    /// In key order.
    pub entries: Vec<Entry>,
}

impl State {
    /// The subnets the keys name (what is leased).
    pub fn leased(&self) -> Vec<Cidr> {
        self.entries.iter().filter_map(|e| e.subnet).collect()
    }

    /// The entries holding `node`'s records.
    pub fn node_entries(&self, node: &str) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.record.as_ref().is_ok_and(|r| r.node == node))
            .collect()
    }

    /// A note for each key that is no valid node record.
    pub fn bad_entries(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match (&e.record, e.subnet) {
                (Err(why), _) => Some(format!("{} holds no node record: {why}", e.key)),
                (Ok(_), None) => Some(format!("{} names no subnet", e.key)),
                (Ok(_), Some(_)) => None,
            })
            .collect()
    }
}

fn get_response(r: Option<TxnOpResponse>) -> Result<etcd_client::GetResponse, Error> {
    match r {
        Some(TxnOpResponse::Get(g)) => Ok(g),
        _ => Err(Error::plugin("etcd answered a read with something else")),
    }
}

/// The config and every node record, at one revision (one transaction of
/// two reads).
pub async fn read_state(etcd: &Etcd, keys: &Keys) -> Result<State, Error> {
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys.config(), None),
        TxnOp::get(keys.subnets(), Some(GetOptions::new().with_prefix())),
    ]);
    let r = etcd.txn(txn).await?;
    let revision = r.header().map(|h| h.revision()).unwrap_or_default();
    let mut ops = r.op_responses().into_iter();
    let config = get_response(ops.next())?
        .kvs()
        .first()
        .map(|kv| StoredConfig {
            raw: kv.value().to_vec(),
            parsed: OverlayConfig::parse(kv.value()).map_err(|e| e.msg),
            mod_revision: kv.mod_revision(),
        });
    let entries = get_response(ops.next())?
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            Entry {
                subnet: keys.parse_subnet_key(&key),
                record: NodeRecord::parse(kv.value()).map_err(|e| e.msg),
                lease: kv.lease(),
                mod_revision: kv.mod_revision(),
                key,
            }
        })
        .collect();
    Ok(State {
        revision,
        config,
        entries,
    })
}

/// What `config set` makes of a new config, given the state read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The same config is stored: nothing to write.
    Unchanged,
    /// Write it; `forced` holds the reasons it breaks nodes (only with force).
    Write { forced: Vec<String> },
    /// It would break running nodes, for these reasons.
    Refuse(Vec<String>),
}

/// Why `new` would break the nodes of `state`: the stored config's
/// [`OverlayConfig::breaking_changes`] for the leased subnets; without a
/// (valid) stored config, every leased subnet that does not fit `new`.
pub fn breaking_changes(state: &State, new: &OverlayConfig) -> Vec<String> {
    let leased = state.leased();
    let mut why = match state.config.as_ref().map(|c| &c.parsed) {
        Some(Ok(old)) => old.breaking_changes(new, &leased),
        Some(Err(invalid)) => vec![format!(
            "the stored config is invalid ({invalid}): cannot tell what the change breaks"
        )],
        None => {
            let misfits: Vec<String> = leased
                .iter()
                .filter(|s| s.prefix() != new.subnet_len || !new.network.contains(s.ip()))
                .map(|s| s.to_string())
                .collect();
            if misfits.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "no config is stored, but leased subnets {} are not /{} subnets of network {}",
                    misfits.join(", "),
                    new.subnet_len,
                    new.network
                )]
            }
        }
    };
    // A key that names no subnet may still be a node's lease.
    for e in state.entries.iter().filter(|e| e.subnet.is_none()) {
        why.push(format!(
            "{} names no subnet: cannot tell whether the change strands it",
            e.key
        ));
    }
    why
}

pub fn plan_config_set(state: &State, new: &OverlayConfig, force: bool) -> Plan {
    if state
        .config
        .as_ref()
        .is_some_and(|c| c.parsed.as_ref() == Ok(new))
    {
        return Plan::Unchanged;
    }
    let why = breaking_changes(state, new);
    if why.is_empty() || force {
        Plan::Write { forced: why }
    } else {
        Plan::Refuse(why)
    }
}

/// The config as stored: compact JSON with every default spelled out (a
/// later default of overlayd's cannot change a running network).
pub fn config_bytes(cfg: &OverlayConfig) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(cfg).map_err(|e| Error::plugin(format!("cannot encode the config: {e}")))
}

/// Writes `new`, guarded by `state`: etcd applies the write only while the
/// config key is as read (absent, or at its mod revision) and no key under
/// `subnets/` was created or changed since (a subnet leased meanwhile
/// could be one the new config strands). `Ok(false)`: the guard failed,
/// nothing was written. `Ok(true)`: written, at the revision in the second
/// field.
pub async fn write_config(
    etcd: &Etcd,
    keys: &Keys,
    state: &State,
    new: &OverlayConfig,
) -> Result<(bool, i64), Error> {
    let config_unchanged = match &state.config {
        Some(c) => Compare::mod_revision(keys.config(), CompareOp::Equal, c.mod_revision),
        None => Compare::create_revision(keys.config(), CompareOp::Equal, 0),
    };
    let no_new_lease =
        Compare::mod_revision(keys.subnets(), CompareOp::Less, state.revision + 1).with_prefix();
    let txn = Txn::new()
        .when(vec![config_unchanged, no_new_lease])
        .and_then(vec![TxnOp::put(keys.config(), config_bytes(new)?, None)]);
    let r = etcd.txn(txn).await?;
    let revision = r.header().map(|h| h.revision()).unwrap_or_default();
    Ok((r.succeeded(), revision))
}

/// What `config set` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    Unchanged,
    /// Written at `revision`; `forced` as in [`Plan::Write`].
    Written {
        revision: i64,
        forced: Vec<String>,
    },
}

/// Why `config set` refused: the reasons, each on a line of the details.
pub fn refusal(why: &[String]) -> Error {
    Error::plugin(
        "refused: the new config would break running nodes; nothing written (--force writes it anyway)",
    )
    .with_details(why.join("\n"))
}

/// Guard failures in a row `set_config` takes (each after a subnet was
/// leased meanwhile) before it gives up.
const SET_ATTEMPTS: u32 = 10;

/// Reads, plans and writes `new`. When the guard fails because a subnet was
/// leased meanwhile it reads and plans again; when the config itself
/// changed since the first read (another admin), it refuses: the change
/// was judged against a config that is no longer there.
pub async fn set_config(
    etcd: &Etcd,
    keys: &Keys,
    new: &OverlayConfig,
    force: bool,
) -> Result<SetOutcome, Error> {
    let mut state = read_state(etcd, keys).await?;
    let first = state.config.as_ref().map(|c| c.mod_revision);
    for _ in 0..SET_ATTEMPTS {
        let forced = match plan_config_set(&state, new, force) {
            Plan::Unchanged => return Ok(SetOutcome::Unchanged),
            Plan::Refuse(why) => return Err(refusal(&why)),
            Plan::Write { forced } => forced,
        };
        if let (true, revision) = write_config(etcd, keys, &state, new).await? {
            return Ok(SetOutcome::Written { revision, forced });
        }
        state = read_state(etcd, keys).await?;
        if state.config.as_ref().map(|c| c.mod_revision) != first {
            return Err(Error::plugin(format!(
                "{} changed while this command ran (another admin?): nothing written; look at it (config get) and run again",
                keys.config()
            )));
        }
    }
    Err(Error::try_again_later(format!(
        "node records under {} kept changing: nothing written; run again",
        keys.subnets()
    )))
}

/// Deletes `entries` in one transaction, guarded by their mod revisions
/// as read. `Ok(false)`: one of them changed or vanished meanwhile, nothing
/// was deleted.
pub async fn remove_entries(etcd: &Etcd, entries: &[&Entry]) -> Result<bool, Error> {
    let compares: Vec<Compare> = entries
        .iter()
        .map(|e| Compare::mod_revision(e.key.as_str(), CompareOp::Equal, e.mod_revision))
        .collect();
    let deletes: Vec<TxnOp> = entries
        .iter()
        .map(|e| TxnOp::delete(e.key.as_str(), None))
        .collect();
    let r = etcd
        .txn(Txn::new().when(compares).and_then(deletes))
        .await?;
    Ok(r.succeeded())
}

/// Removes every record of `node` (read, then [`remove_entries`]); the
/// entries removed.
pub async fn remove_node(etcd: &Etcd, keys: &Keys, node: &str) -> Result<Vec<Entry>, Error> {
    let state = read_state(etcd, keys).await?;
    let entries = state.node_entries(node);
    if entries.is_empty() {
        return Err(Error::plugin(format!(
            "no node {node:?} under {} (overlayctl nodes lists them)",
            keys.subnets()
        )));
    }
    if !remove_entries(etcd, &entries).await? {
        return Err(Error::plugin(format!(
            "the record of node {node} changed while this command ran (is its overlayd running?): nothing removed"
        )));
    }
    Ok(entries.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> OverlayConfig {
        OverlayConfig::parse(json.as_bytes()).unwrap()
    }

    fn entry(subnet: &str, node: &str) -> Entry {
        let keys = Keys::new("/overlay");
        let s: Cidr = subnet.parse().unwrap();
        Entry {
            key: keys.subnet(&s),
            subnet: Some(s),
            record: Ok(NodeRecord {
                node: node.into(),
                public_ip: "192.168.1.1".parse().unwrap(),
                vtep_mac: "0a:00:00:00:00:01".into(),
                subnet: s,
                since: 1,
            }),
            lease: 7,
            mod_revision: 3,
        }
    }

    fn state(config: Option<&str>, entries: Vec<Entry>) -> State {
        State {
            revision: 9,
            config: config.map(|c| StoredConfig {
                raw: c.as_bytes().to_vec(),
                parsed: OverlayConfig::parse(c.as_bytes()).map_err(|e| e.msg),
                mod_revision: 2,
            }),
            entries,
        }
    }

    #[test]
    fn plans() {
        let net16 = r#"{"network": "10.244.0.0/16"}"#;
        let s = state(Some(net16), vec![entry("10.244.200.0/24", "a")]);
        assert_eq!(plan_config_set(&s, &cfg(net16), false), Plan::Unchanged);
        let grow = cfg(r#"{"network": "10.244.0.0/15"}"#);
        assert_eq!(
            plan_config_set(&s, &grow, false),
            Plan::Write { forced: vec![] }
        );
        let shrink = cfg(r#"{"network": "10.244.0.0/17"}"#);
        let Plan::Refuse(why) = plan_config_set(&s, &shrink, false) else {
            panic!("a shrink stranding 10.244.200.0/24 is refused");
        };
        assert!(why[0].contains("10.244.200.0/24"), "{why:?}");
        assert_eq!(
            plan_config_set(&s, &shrink, true),
            Plan::Write { forced: why }
        );
    }

    #[test]
    fn without_a_stored_config_leased_subnets_must_fit() {
        let s = state(None, vec![entry("10.9.3.0/24", "a")]);
        let Plan::Refuse(why) = plan_config_set(&s, &cfg(r#"{"network": "10.244.0.0/16"}"#), false)
        else {
            panic!("a lease outside the network is refused");
        };
        assert!(why[0].contains("10.9.3.0/24"), "{why:?}");
        let fits = cfg(r#"{"network": "10.9.0.0/16"}"#);
        assert_eq!(
            plan_config_set(&s, &fits, false),
            Plan::Write { forced: vec![] }
        );
        let other_len = cfg(r#"{"network": "10.9.0.0/16", "subnetLen": 25}"#);
        assert!(matches!(
            plan_config_set(&s, &other_len, false),
            Plan::Refuse(_)
        ));
    }

    #[test]
    fn an_invalid_stored_config_or_an_odd_key_needs_force() {
        let new = cfg(r#"{"network": "10.244.0.0/16"}"#);
        let s = state(Some("{junk"), vec![]);
        assert!(matches!(plan_config_set(&s, &new, false), Plan::Refuse(_)));
        let mut odd = entry("10.244.3.0/24", "a");
        odd.key = "/overlay/subnets/what".into();
        odd.subnet = None;
        let s = state(None, vec![odd]);
        let Plan::Refuse(why) = plan_config_set(&s, &new, false) else {
            panic!("an unreadable key is refused");
        };
        assert!(why[0].contains("/overlay/subnets/what"), "{why:?}");
        assert_eq!(s.bad_entries().len(), 1);
    }

    #[test]
    fn node_entries_match_the_name() {
        let s = state(
            None,
            vec![
                entry("10.244.1.0/24", "a"),
                entry("10.244.2.0/24", "ab"),
                entry("10.244.3.0/24", "a"),
            ],
        );
        let keys: Vec<&str> = s.node_entries("a").iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "/overlay/subnets/10.244.1.0-24",
                "/overlay/subnets/10.244.3.0-24"
            ]
        );
        assert!(s.node_entries("b").is_empty());
    }
}
