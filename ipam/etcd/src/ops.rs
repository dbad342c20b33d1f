//! The operations over etcd: each a read-plan-write loop around one guarded
//! transaction ([`plan`](crate::plan) decides what it writes). A conflict
//! re-plans from the state the failed transaction read back in its `else`
//! branch (no extra round trip); a transport failure moves to the next
//! endpoint and reads again; all within the invocation's deadline.

use std::collections::BTreeMap;

use cni::{Cidr, Error};
use etcd_client::{
    Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use crate::etcd::{Etcd, Failure};
use crate::keys::Keys;
use crate::model::{decode, encode, Block, HandleRecord, PoolRecord};
use crate::plan::{
    plan_add, plan_release, AddPlan, AddState, AddWrite, Attachment, Entry, Guard, Need,
    ReleasePlan, ReleaseState, ReleaseWrite,
};
use crate::pool::Pool;

/// A key as text (keys are written as UTF-8 by this crate).
pub fn key_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}

/// A record read from etcd, with the revision that guards a write of it.
pub fn entry<T: for<'de> serde::Deserialize<'de>>(kv: &KeyValue) -> Result<Entry<T>, Error> {
    let key = key_of(kv);
    Ok(Entry {
        value: decode(&key, kv.value())?,
        key,
        mod_revision: kv.mod_revision(),
    })
}

fn prefix(serializable: bool) -> GetOptions {
    let o = GetOptions::new().with_prefix();
    if serializable {
        o.with_serializable()
    } else {
        o
    }
}

fn single(serializable: bool) -> Option<GetOptions> {
    serializable.then(|| GetOptions::new().with_serializable())
}

/// The range responses of a transaction, in order.
pub fn ranges(resp: &TxnResponse) -> Vec<Vec<KeyValue>> {
    resp.op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().to_vec(),
            _ => Vec::new(),
        })
        .collect()
}

/// The reads an ADD starts from (and a failed write reads back): the
/// handle, this node's blocks, the pool record.
fn add_reads(keys: &Keys, handle_key: &str, node: &str, serializable: bool) -> Vec<TxnOp> {
    vec![
        TxnOp::get(handle_key, single(serializable)),
        TxnOp::get(keys.node_blocks(node), Some(prefix(serializable))),
        TxnOp::get(keys.pool(), single(serializable)),
    ]
}

fn parse_add_state(resp: &TxnResponse) -> Result<AddState, Error> {
    let r = ranges(resp);
    let get = |i: usize| r.get(i).map(Vec::as_slice).unwrap_or_default();
    Ok(AddState {
        handle: get(0).first().map(entry).transpose()?,
        my_blocks: get(1).iter().map(entry).collect::<Result<_, _>>()?,
        pool: get(2).first().map(entry).transpose()?,
        claims: None,
        all_blocks: None,
    })
}

async fn read_add_state(
    etcd: &mut Etcd,
    keys: &Keys,
    handle_key: &str,
    node: &str,
) -> Result<AddState, Failure> {
    // Serializable: served by the member alone. A stale answer costs at
    // most a failed compare, never a wrong write.
    let txn = Txn::new().and_then(add_reads(keys, handle_key, node, true));
    Ok(parse_add_state(&etcd.txn(txn).await?)?)
}

/// Every claimed block and its owner.
pub async fn read_claims(etcd: &mut Etcd, keys: &Keys) -> Result<BTreeMap<Cidr, String>, Failure> {
    let resp = etcd.get(keys.claims(), prefix(true)).await?;
    let mut claims = BTreeMap::new();
    for kv in resp.kvs() {
        let key = key_of(kv);
        let cidr = keys
            .parse_claim_key(&key)
            .ok_or_else(|| crate::model::corrupt(&key, "not a block name"))?;
        claims.insert(cidr, String::from_utf8_lossy(kv.value()).into_owned());
    }
    Ok(claims)
}

/// Every block of every node.
pub async fn read_all_blocks(etcd: &mut Etcd, keys: &Keys) -> Result<Vec<Entry<Block>>, Failure> {
    let resp = etcd.get(keys.blocks(), prefix(true)).await?;
    Ok(resp.kvs().iter().map(entry).collect::<Result<_, _>>()?)
}

fn add_txn(keys: &Keys, w: &AddWrite, node: &str) -> Txn {
    let mut when = vec![Compare::create_revision(
        w.handle_key.clone(),
        CompareOp::Equal,
        0,
    )];
    let mut then = Vec::new();
    for b in &w.blocks {
        match &b.guard {
            Guard::Revision(rev) => {
                when.push(Compare::mod_revision(b.key.clone(), CompareOp::Equal, *rev))
            }
            Guard::NewClaim { claim_key } => {
                when.push(Compare::create_revision(
                    claim_key.clone(),
                    CompareOp::Equal,
                    0,
                ));
                when.push(Compare::create_revision(b.key.clone(), CompareOp::Equal, 0));
                then.push(TxnOp::put(claim_key.clone(), node, None));
            }
        }
        then.push(TxnOp::put(b.key.clone(), encode(&b.block), None));
    }
    if let Some(pool) = &w.create_pool {
        when.push(Compare::create_revision(keys.pool(), CompareOp::Equal, 0));
        then.push(TxnOp::put(keys.pool(), encode(pool), None));
    }
    then.push(TxnOp::put(w.handle_key.clone(), encode(&w.handle), None));
    Txn::new()
        .when(when)
        .and_then(then)
        .or_else(add_reads(keys, &w.handle_key, node, false))
}

/// ADD: the attachment's addresses, allocated in one transaction, or the
/// ones it already holds.
pub async fn add(
    etcd: &mut Etcd,
    keys: &Keys,
    pool: &Pool,
    who: Attachment<'_>,
    requested: &[Option<std::net::IpAddr>],
) -> Result<HandleRecord, Error> {
    let handle_key = keys.handle(who.node, who.container_id, who.ifname);
    let mut state: Option<AddState> = None;
    let mut conflicts = 0;
    loop {
        let mut st = match state.take() {
            Some(st) => st,
            None => match read_add_state(etcd, keys, &handle_key, who.node).await {
                Ok(st) => st,
                Err(f) => {
                    etcd.recover(f).await?;
                    continue;
                }
            },
        };
        let outcome = match plan_add(pool, keys, who, requested, &st)? {
            AddPlan::Existing(h) => return Ok(h),
            AddPlan::Read(Need::Claims) => read_claims(etcd, keys).await.map(|c| {
                st.claims = Some(c);
                None
            }),
            AddPlan::Read(Need::AllBlocks) => read_all_blocks(etcd, keys).await.map(|b| {
                st.all_blocks = Some(b);
                None
            }),
            AddPlan::Write(w) => etcd
                .txn(add_txn(keys, &w, who.node))
                .await
                .map(|r| Some((w, r))),
        };
        match outcome {
            Ok(None) => state = Some(st),
            Ok(Some((w, resp))) if resp.succeeded() => return Ok(w.handle),
            Ok(Some((_, resp))) => {
                conflicts += 1;
                etcd.backoff(conflicts).await?;
                state = Some(parse_add_state(&resp)?);
            }
            Err(f) => etcd.recover(f).await?,
        }
    }
}

fn release_reads(keys: &Keys, handle_key: &str, node: &str, serializable: bool) -> Vec<TxnOp> {
    vec![
        TxnOp::get(handle_key, single(serializable)),
        TxnOp::get(keys.node_blocks(node), Some(prefix(serializable))),
    ]
}

fn parse_release_state(resp: &TxnResponse) -> Result<ReleaseState, Error> {
    let r = ranges(resp);
    let mut state = ReleaseState {
        handle: r
            .first()
            .and_then(|kvs| kvs.first())
            .map(entry)
            .transpose()?,
        blocks: BTreeMap::new(),
    };
    for kv in r.get(1).map(Vec::as_slice).unwrap_or_default() {
        let e: Entry<Block> = entry(kv)?;
        state.blocks.insert(e.key.clone(), Some(e));
    }
    Ok(state)
}

fn release_txn(keys: &Keys, w: &ReleaseWrite, node: &str) -> Txn {
    let mut when = vec![Compare::mod_revision(
        w.handle_key.clone(),
        CompareOp::Equal,
        w.handle_revision,
    )];
    let mut then = vec![TxnOp::delete(w.handle_key.clone(), None)];
    for b in &w.blocks {
        when.push(Compare::mod_revision(
            b.key.clone(),
            CompareOp::Equal,
            b.mod_revision,
        ));
        then.push(TxnOp::put(b.key.clone(), encode(&b.value), None));
    }
    Txn::new()
        .when(when)
        .and_then(then)
        .or_else(release_reads(keys, &w.handle_key, node, false))
}

/// Releases one handle (`handles/<owner>/<id>/<ifname>`): deletes it and
/// frees its addresses in one transaction. `Ok(false)`: there was none.
pub async fn release(
    etcd: &mut Etcd,
    keys: &Keys,
    handle_key: &str,
    node: &str,
) -> Result<bool, Error> {
    let mut state: Option<ReleaseState> = None;
    let mut conflicts = 0;
    loop {
        let mut st = match state.take() {
            Some(st) => st,
            None => {
                let txn = Txn::new().and_then(release_reads(keys, handle_key, node, true));
                match etcd.txn(txn).await {
                    Ok(resp) => parse_release_state(&resp)?,
                    Err(f) => {
                        etcd.recover(f).await?;
                        continue;
                    }
                }
            }
        };
        let outcome = match plan_release(keys, &st) {
            ReleasePlan::Nothing => return Ok(false),
            ReleasePlan::Read(missing) => {
                let gets: Vec<TxnOp> = missing
                    .iter()
                    .map(|k| TxnOp::get(k.as_str(), single(true)))
                    .collect();
                etcd.txn(Txn::new().and_then(gets)).await.and_then(|resp| {
                    let found = ranges(&resp);
                    for (i, key) in missing.iter().enumerate() {
                        let e = found
                            .get(i)
                            .and_then(|kvs| kvs.first())
                            .map(entry)
                            .transpose()?;
                        st.blocks.insert(key.clone(), e);
                    }
                    Ok(None)
                })
            }
            ReleasePlan::Write(w) => etcd.txn(release_txn(keys, &w, node)).await.map(Some),
        };
        match outcome {
            Ok(None) => state = Some(st),
            Ok(Some(resp)) if resp.succeeded() => return Ok(true),
            Ok(Some(resp)) => {
                conflicts += 1;
                etcd.backoff(conflicts).await?;
                state = Some(parse_release_state(&resp)?);
            }
            Err(f) => etcd.recover(f).await?,
        }
    }
}

/// The handle keys of a node (`handles/<node>/...`), keys only.
pub async fn node_handle_keys(
    etcd: &mut Etcd,
    keys: &Keys,
    node: &str,
) -> Result<Vec<String>, Error> {
    loop {
        match etcd
            .get(
                keys.node_handles(node),
                GetOptions::new().with_prefix().with_keys_only(),
            )
            .await
        {
            Ok(resp) => return Ok(resp.kvs().iter().map(key_of).collect()),
            Err(f) => etcd.recover(f).await?,
        }
    }
}

/// One handle, read linearizably.
pub async fn read_handle(etcd: &mut Etcd, key: &str) -> Result<Option<Entry<HandleRecord>>, Error> {
    loop {
        match etcd.get(key.to_string(), GetOptions::new()).await {
            Ok(resp) => return resp.kvs().first().map(entry).transpose(),
            Err(f) => etcd.recover(f).await?,
        }
    }
}

/// Everything of one network, from one consistent revision: what ipamctl
/// and STATUS look at.
#[derive(Debug, Clone, Default)]
pub struct NetworkView {
    pub pool: Option<Entry<PoolRecord>>,
    pub claims: BTreeMap<Cidr, String>,
    pub blocks: Vec<Entry<Block>>,
    pub handles: Vec<Entry<HandleRecord>>,
}

/// Reads a network's pool, claims, blocks and handles in one transaction.
pub async fn read_network(etcd: &mut Etcd, keys: &Keys) -> Result<NetworkView, Error> {
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys.pool(), None),
        TxnOp::get(keys.claims(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.blocks(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.handles(), Some(GetOptions::new().with_prefix())),
    ]);
    let resp = loop {
        match etcd.txn(txn.clone()).await {
            Ok(resp) => break resp,
            Err(f) => etcd.recover(f).await?,
        }
    };
    let r = ranges(&resp);
    let get = |i: usize| r.get(i).map(Vec::as_slice).unwrap_or_default();
    let mut claims = BTreeMap::new();
    for kv in get(1) {
        let key = key_of(kv);
        let cidr = keys
            .parse_claim_key(&key)
            .ok_or_else(|| crate::model::corrupt(&key, "not a block name"))?;
        claims.insert(cidr, String::from_utf8_lossy(kv.value()).into_owned());
    }
    Ok(NetworkView {
        pool: get(0).first().map(entry).transpose()?,
        claims,
        blocks: get(2).iter().map(entry).collect::<Result<_, _>>()?,
        handles: get(3).iter().map(entry).collect::<Result<_, _>>()?,
    })
}
