//! The admin operations behind `ipamctl` that look across nodes or write:
//! which networks live under a prefix, which handles of a node no container
//! holds any more (and releasing them), and releasing a node that is gone.
//!
//! Every change is one transaction guarded by what was read: a leaked handle
//! goes through [`ops::release`](crate::ops::release) (one transaction per
//! handle, like DEL), a node release deletes all the node's keys at once.
//! Planning is pure ([`plan_node_release`]); the etcd parts only read and
//! write.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cni::{Cidr, Error};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnResponse,
};

use crate::etcd::{Etcd, Failure};
use crate::keys::Keys;
use crate::model::{corrupt, encode, Block, HandleRecord};
use crate::ops::{self, entry, key_of, ranges};
use crate::plan::Entry;

/// `<prefix>/`, normalised exactly as [`Keys::new`] does it (a trailing `/`
/// dropped, a leading one added), so that `<root><network>/` is a network's
/// [`Keys::root`].
pub fn prefix_root(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let lead = if prefix.starts_with('/') { "" } else { "/" };
    format!("{lead}{prefix}/")
}

/// The network a `<root><network>/pool` key belongs to.
fn network_of_pool_key(root: &str, key: &[u8]) -> Option<String> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(root)?;
    let network = rest.strip_suffix("/pool")?;
    (!network.is_empty() && !network.contains('/')).then(|| network.to_string())
}

/// Retries a read through failovers until it succeeds or the deadline passes.
async fn get(etcd: &mut Etcd, key: String, options: GetOptions) -> Result<Vec<KeyValue>, Error> {
    loop {
        match etcd.get(key.clone(), options.clone()).await {
            Ok(resp) => return Ok(resp.kvs().to_vec()),
            Err(f) => etcd.recover(f).await?,
        }
    }
}

/// The networks under `prefix`, in name order: those with a pool record
/// (written by a network's first claim). Keys only: values may be many.
pub async fn list_networks(etcd: &mut Etcd, prefix: &str) -> Result<Vec<String>, Error> {
    let root = prefix_root(prefix);
    let kvs = get(
        etcd,
        root.clone(),
        GetOptions::new().with_prefix().with_keys_only(),
    )
    .await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| network_of_pool_key(&root, kv.key()))
        .collect())
}

/// The handles of `node`, read linearizably, in key order.
pub async fn read_node_handles(
    etcd: &mut Etcd,
    keys: &Keys,
    node: &str,
) -> Result<Vec<Entry<HandleRecord>>, Error> {
    get(
        etcd,
        keys.node_handles(node),
        GetOptions::new().with_prefix(),
    )
    .await?
    .iter()
    .map(entry)
    .collect()
}

/// What still runs on a node, as the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alive {
    /// Container ids (a list from the runtime): each keeps every handle of
    /// its own, whatever the interface.
    Containers(BTreeSet<String>),
    /// `(container id, ifname)` pairs (a runtime's result cache): each keeps
    /// exactly that handle.
    Attachments(BTreeSet<(String, String)>),
}

impl Alive {
    /// Whether a live container still holds `handle`.
    pub fn holds(&self, handle: &HandleRecord) -> bool {
        match self {
            Alive::Containers(ids) => ids.contains(&handle.container_id),
            Alive::Attachments(pairs) => {
                pairs.contains(&(handle.container_id.clone(), handle.ifname.clone()))
            }
        }
    }
}

/// The handles no live container holds: the node's leaks.
pub fn leaks<'a>(
    handles: &'a [Entry<HandleRecord>],
    alive: &Alive,
) -> Vec<&'a Entry<HandleRecord>> {
    handles.iter().filter(|h| !alive.holds(&h.value)).collect()
}

/// Releases each handle in its own transaction ([`ops::release`]: the handle
/// deleted and its addresses freed together). Keeps going after a failure,
/// so one bad handle does not keep the others leaked. `Ok(false)`: the
/// handle was gone already (its container's DEL came first).
pub async fn release_handles(
    etcd: &mut Etcd,
    keys: &Keys,
    handles: &[&Entry<HandleRecord>],
) -> Vec<Result<bool, Error>> {
    let mut outcomes = Vec::with_capacity(handles.len());
    for h in handles {
        outcomes.push(ops::release(etcd, keys, &h.key, &h.value.node).await);
    }
    outcomes
}

/// What one node holds in one network, and every other node's blocks (where
/// its borrowed addresses are), all read at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHoldings {
    /// The claims naming the node; the value is the claimed block.
    pub claims: Vec<Entry<Cidr>>,
    /// `blocks/<node>/...`
    pub blocks: Vec<Entry<Block>>,
    /// `handles/<node>/...`
    pub handles: Vec<Entry<HandleRecord>>,
    /// The blocks of every other node.
    pub other_blocks: Vec<Entry<Block>>,
}

/// The one transaction of a node release, and what it leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRelease {
    pub claims: Vec<Entry<Cidr>>,
    pub blocks: Vec<Entry<Block>>,
    /// Deleted only with `force` (empty otherwise: the release is refused
    /// while there are any).
    pub handles: Vec<Entry<HandleRecord>>,
    /// Other nodes' blocks that lent the node's handles an address, with
    /// those addresses taken out (written with the read revision as guard).
    pub lenders: Vec<Entry<Block>>,
    /// Addresses of the node's blocks that other nodes' handles hold, with
    /// the holder's handle id. With `force` their blocks go all the same:
    /// once claimed again, such an address can be handed out twice.
    pub stranded: Vec<(IpAddr, String)>,
    /// The highest mod revision read under `blocks/<node>/` and
    /// `handles/<node>/` (0 when empty): the transaction requires every key
    /// there to be no newer, so nothing was added or changed since the read.
    pub blocks_revision: i64,
    pub handles_revision: i64,
}

impl NodeRelease {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.blocks.is_empty() && self.handles.is_empty()
    }
}

/// The addresses of `node`'s blocks held by other nodes' handles.
fn stranded_addresses(node: &str, blocks: &[Entry<Block>]) -> Vec<(IpAddr, String)> {
    let own = format!("{node}/");
    blocks
        .iter()
        .flat_map(|b| b.value.allocations.iter())
        .filter(|(_, holder)| !holder.starts_with(&own))
        .map(|(ip, holder)| (*ip, holder.clone()))
        .collect()
}

/// Other nodes' blocks with the addresses that `handles` borrowed from them
/// taken out (only where the block still names that handle).
fn free_borrowed(
    handles: &[Entry<HandleRecord>],
    other_blocks: &[Entry<Block>],
) -> Vec<Entry<Block>> {
    let mut borrowed: BTreeMap<IpAddr, String> = BTreeMap::new();
    for h in handles {
        for ip in &h.value.ips {
            borrowed.insert(ip.address.ip(), h.value.id());
        }
    }
    other_blocks
        .iter()
        .filter_map(|b| {
            let mut b = b.clone();
            let before = b.value.allocations.len();
            b.value
                .allocations
                .retain(|ip, holder| borrowed.get(ip) != Some(holder));
            (b.value.allocations.len() != before).then_some(b)
        })
        .collect()
}

fn max_revision<T>(entries: &[Entry<T>]) -> i64 {
    entries.iter().map(|e| e.mod_revision).max().unwrap_or(0)
}

fn listed<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = items.iter().take(SHOWN).map(show).collect();
    if items.len() > SHOWN {
        names.push(format!("and {} more", items.len() - SHOWN));
    }
    names.join(", ")
}

/// Plans the release of `node` (a node that is gone). Refused (code 100,
/// the reason in the message) while the node still holds handles, or while
/// its blocks hold addresses of other nodes' handles, unless `force`.
pub fn plan_node_release(
    node: &str,
    holdings: &NodeHoldings,
    force: bool,
) -> Result<NodeRelease, Error> {
    let stranded = stranded_addresses(node, &holdings.blocks);
    if !force && !holdings.handles.is_empty() {
        return Err(Error::plugin(format!(
            "node {node} still holds {} handle(s): {}; release them first (ipamctl leaks ... --release) or pass --force to release them with the node",
            holdings.handles.len(),
            listed(&holdings.handles, |h| h.value.id()),
        )));
    }
    if !force && !stranded.is_empty() {
        return Err(Error::plugin(format!(
            "blocks of node {node} hold {} address(es) of other nodes' handles: {}; once the blocks are claimed again those addresses could be handed out twice. Release those handles first, or pass --force",
            stranded.len(),
            listed(&stranded, |(ip, holder)| format!("{ip} ({holder})")),
        )));
    }
    let handles = if force {
        holdings.handles.clone()
    } else {
        Vec::new()
    };
    Ok(NodeRelease {
        claims: holdings.claims.clone(),
        blocks: holdings.blocks.clone(),
        lenders: free_borrowed(&handles, &holdings.other_blocks),
        handles,
        stranded,
        blocks_revision: max_revision(&holdings.blocks),
        handles_revision: max_revision(&holdings.handles),
    })
}

fn parse_holdings(keys: &Keys, node: &str, resp: &TxnResponse) -> Result<NodeHoldings, Error> {
    let r = ranges(resp);
    let get = |i: usize| r.get(i).map(Vec::as_slice).unwrap_or_default();
    let mut holdings = NodeHoldings::default();
    for kv in get(0) {
        if kv.value() != node.as_bytes() {
            continue;
        }
        let key = key_of(kv);
        let block = keys
            .parse_claim_key(&key)
            .ok_or_else(|| corrupt(&key, "not a block name"))?;
        holdings.claims.push(Entry {
            key,
            value: block,
            mod_revision: kv.mod_revision(),
        });
    }
    let mine = keys.node_blocks(node);
    for kv in get(1) {
        let block: Entry<Block> = entry(kv)?;
        if block.key.starts_with(&mine) {
            holdings.blocks.push(block);
        } else {
            holdings.other_blocks.push(block);
        }
    }
    holdings.handles = get(2).iter().map(entry).collect::<Result<_, _>>()?;
    Ok(holdings)
}

/// Reads the node's claims, every block and the node's handles in one
/// transaction (one revision).
pub async fn read_holdings(
    etcd: &mut Etcd,
    keys: &Keys,
    node: &str,
) -> Result<NodeHoldings, Error> {
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys.claims(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.blocks(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(
            keys.node_handles(node),
            Some(GetOptions::new().with_prefix()),
        ),
    ]);
    loop {
        match etcd.txn(txn.clone()).await {
            Ok(resp) => return parse_holdings(keys, node, &resp),
            Err(f) => etcd.recover(f).await?,
        }
    }
}

/// The transaction: delete the claims (each unchanged since the read), the
/// node's blocks and handles (no key under their prefixes newer than the
/// read: none added, none changed), and give back the borrowed addresses
/// (each lender block unchanged since the read).
fn node_release_txn(keys: &Keys, node: &str, plan: &NodeRelease) -> Txn {
    let mut when = Vec::new();
    let mut then = Vec::new();
    for c in &plan.claims {
        when.push(Compare::mod_revision(
            c.key.clone(),
            CompareOp::Equal,
            c.mod_revision,
        ));
        then.push(TxnOp::delete(c.key.clone(), None));
    }
    for b in &plan.lenders {
        when.push(Compare::mod_revision(
            b.key.clone(),
            CompareOp::Equal,
            b.mod_revision,
        ));
        then.push(TxnOp::put(b.key.clone(), encode(&b.value), None));
    }
    // A range compare holds for every key in the range; over an empty range
    // it compares revision 0, so "< newest read + 1" also holds for a prefix
    // that was (and still is) empty.
    when.push(
        Compare::mod_revision(
            keys.node_blocks(node),
            CompareOp::Less,
            plan.blocks_revision + 1,
        )
        .with_prefix(),
    );
    when.push(
        Compare::mod_revision(
            keys.node_handles(node),
            CompareOp::Less,
            plan.handles_revision + 1,
        )
        .with_prefix(),
    );
    then.push(TxnOp::delete(
        keys.node_blocks(node),
        Some(DeleteOptions::new().with_prefix()),
    ));
    if !plan.handles.is_empty() {
        then.push(TxnOp::delete(
            keys.node_handles(node),
            Some(DeleteOptions::new().with_prefix()),
        ));
    }
    Txn::new().when(when).and_then(then)
}

/// etcd caps the operations of one transaction (`--max-txn-ops`, 128 by
/// default); say so instead of quoting the bare refusal.
fn explain_refusal(e: Error, plan: &NodeRelease) -> Error {
    if !e.msg.contains("too many operations") {
        return e;
    }
    let msg = format!(
        "{}: releasing the node in one transaction takes {} claims and {} lender blocks, more than etcd's --max-txn-ops allows",
        e.msg,
        plan.claims.len(),
        plan.lenders.len()
    );
    Error { msg, ..e }
}

/// Sends the transaction of `plan` once: `Ok(true)` written, `Ok(false)`
/// refused by its guards (something changed since the read).
pub async fn send_node_release(
    etcd: &mut Etcd,
    keys: &Keys,
    node: &str,
    plan: &NodeRelease,
) -> Result<bool, Failure> {
    match etcd.txn(node_release_txn(keys, node, plan)).await {
        Ok(resp) => Ok(resp.succeeded()),
        Err(Failure::Fatal(e)) => Err(Failure::Fatal(explain_refusal(e, plan))),
        Err(f) => Err(f),
    }
}

/// Releases `node` of one network in one transaction: its claims and blocks
/// and, with `force`, its handles (their borrowed addresses given back to
/// the lenders' blocks). Refused as [`plan_node_release`] says. A conflict
/// (something changed since the read) reads and plans again, within the
/// deadline. Returns what was released (empty: the node held nothing).
pub async fn release_node(
    etcd: &mut Etcd,
    keys: &Keys,
    node: &str,
    force: bool,
) -> Result<NodeRelease, Error> {
    let mut conflicts = 0;
    // A transaction whose answer was lost may have been applied: when the
    // next read finds the node empty, that was (most likely) this write.
    let mut unanswered: Option<NodeRelease> = None;
    loop {
        let holdings = read_holdings(etcd, keys, node).await?;
        let plan = plan_node_release(node, &holdings, force)?;
        if plan.is_empty() {
            return Ok(unanswered.unwrap_or(plan));
        }
        match send_node_release(etcd, keys, node, &plan).await {
            Ok(true) => return Ok(plan),
            Ok(false) => {
                conflicts += 1;
                etcd.backoff(conflicts).await?;
            }
            Err(f) => {
                unanswered = Some(plan);
                etcd.recover(f).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HandleIp;

    fn block(key: &str, rev: i64, cidr: &str, node: &str, allocs: &[(&str, &str)]) -> Entry<Block> {
        Entry {
            key: key.into(),
            mod_revision: rev,
            value: Block {
                cidr: cidr.parse().unwrap(),
                node: node.into(),
                allocations: allocs
                    .iter()
                    .map(|(ip, h)| (ip.parse().unwrap(), h.to_string()))
                    .collect(),
            },
        }
    }

    fn handle(
        node: &str,
        id: &str,
        ip: &str,
        owner: &str,
        blk: &str,
        rev: i64,
    ) -> Entry<HandleRecord> {
        Entry {
            key: format!("/p/n/handles/{node}/{id}/eth0"),
            mod_revision: rev,
            value: HandleRecord {
                node: node.into(),
                container_id: id.into(),
                ifname: "eth0".into(),
                ips: vec![HandleIp {
                    address: format!("{ip}/16").parse().unwrap(),
                    gateway: None,
                    owner: owner.into(),
                    block: blk.parse().unwrap(),
                }],
            },
        }
    }

    #[test]
    fn prefix_root_matches_the_keys_of_a_network() {
        for p in ["/cni-ipam", "/cni-ipam/", "cni-ipam", "/a/b/"] {
            let root = prefix_root(p);
            assert_eq!(Keys::new(p, "net1").root(), format!("{root}net1/"), "{p}");
        }
    }

    #[test]
    fn networks_are_the_parents_of_pool_keys() {
        let root = "/cni-ipam/";
        assert_eq!(
            network_of_pool_key(root, b"/cni-ipam/net1/pool"),
            Some("net1".into())
        );
        for other in [
            &b"/cni-ipam/net1/claims/10.0.0.0-26"[..],
            b"/cni-ipam/net1/handles/n/pool",
            b"/cni-ipam//pool",
            b"/other/net1/pool",
            b"/cni-ipam/net1/pool2",
        ] {
            assert_eq!(network_of_pool_key(root, other), None);
        }
    }

    #[test]
    fn a_container_list_keeps_every_interface_a_cache_exactly_one() {
        let hs = vec![
            handle("a", "c1", "10.0.0.2", "a", "10.0.0.0/26", 5),
            handle("a", "c2", "10.0.0.3", "a", "10.0.0.0/26", 6),
        ];
        let ids = Alive::Containers(["c1".to_string()].into());
        let left: Vec<&str> = leaks(&hs, &ids)
            .iter()
            .map(|h| h.value.container_id.as_str())
            .collect();
        assert_eq!(left, ["c2"]);
        let pairs = Alive::Attachments([("c2".to_string(), "eth1".to_string())].into());
        assert_eq!(leaks(&hs, &pairs).len(), 2, "c2/eth1 is not c2/eth0");
        assert!(leaks(&hs, &Alive::Containers(["c1".into(), "c2".into()].into())).is_empty());
    }

    #[test]
    fn refused_while_the_node_holds_handles_unless_forced() {
        let holdings = NodeHoldings {
            blocks: vec![block(
                "/p/n/blocks/a/10.0.0.0-26",
                7,
                "10.0.0.0/26",
                "a",
                &[("10.0.0.2", "a/c1/eth0")],
            )],
            handles: vec![handle("a", "c1", "10.0.0.2", "a", "10.0.0.0/26", 7)],
            ..Default::default()
        };
        let e = plan_node_release("a", &holdings, false).unwrap_err();
        assert!(
            e.msg.contains("still holds 1 handle(s): a/c1/eth0"),
            "{}",
            e.msg
        );
        let plan = plan_node_release("a", &holdings, true).unwrap();
        assert_eq!(plan.handles.len(), 1);
        assert_eq!((plan.blocks_revision, plan.handles_revision), (7, 7));
        assert!(plan.stranded.is_empty() && plan.lenders.is_empty());
    }

    #[test]
    fn refused_while_its_blocks_lend_to_other_nodes_unless_forced() {
        let holdings = NodeHoldings {
            blocks: vec![block(
                "/p/n/blocks/a/10.0.0.0-26",
                7,
                "10.0.0.0/26",
                "a",
                &[("10.0.0.9", "b/c9/eth0")],
            )],
            ..Default::default()
        };
        let e = plan_node_release("a", &holdings, false).unwrap_err();
        assert!(e.msg.contains("10.0.0.9 (b/c9/eth0)"), "{}", e.msg);
        let plan = plan_node_release("a", &holdings, true).unwrap();
        assert_eq!(
            plan.stranded,
            [("10.0.0.9".parse().unwrap(), "b/c9/eth0".into())]
        );
        assert_eq!(
            plan.handles_revision, 0,
            "no handles: the prefix must stay empty"
        );
    }

    #[test]
    fn forced_handles_give_their_borrowed_addresses_back() {
        let holdings = NodeHoldings {
            handles: vec![handle("b", "c9", "10.0.0.9", "a", "10.0.0.0/26", 9)],
            other_blocks: vec![
                block(
                    "/p/n/blocks/a/10.0.0.0-26",
                    9,
                    "10.0.0.0/26",
                    "a",
                    &[("10.0.0.2", "a/c1/eth0"), ("10.0.0.9", "b/c9/eth0")],
                ),
                block(
                    "/p/n/blocks/c/10.0.1.0-26",
                    4,
                    "10.0.1.0/26",
                    "c",
                    &[("10.0.1.2", "c/c2/eth0")],
                ),
            ],
            ..Default::default()
        };
        let plan = plan_node_release("b", &holdings, true).unwrap();
        assert_eq!(plan.lenders.len(), 1, "only the lender changes");
        let lender = &plan.lenders[0];
        assert_eq!(lender.mod_revision, 9, "guarded by the revision read");
        assert_eq!(
            lender.value.allocations.values().collect::<Vec<_>>(),
            ["a/c1/eth0"]
        );
    }

    #[test]
    fn a_node_with_nothing_plans_nothing() {
        let plan = plan_node_release("z", &NodeHoldings::default(), false).unwrap();
        assert!(plan.is_empty());
    }
}
