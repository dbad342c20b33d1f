//! The in-process back end: nf_tables over netlink for the two hot paths,
//! ADD on a node where our table exists (create the attachment's chains,
//! rules and map elements: [`Nl::attach`]) and DEL (list the table and apply
//! the removal `crate::plan` computed: [`Nl`] as a [`plan::Backend`]).
//! Everything else (the first ADD that creates the table, a re-ADD, CHECK,
//! GC, repair) goes through `nft` and its JSON, which stays the reference
//! for what our rules look like.
//!
//! The messages are what `nft` itself sends (see [`compile`]; the kernel
//! test compares the bytecode of both, and the golden files it captured let
//! the unit tests compare ours without root). Every datagram goes through
//! `netlink::socket::Socket` (sequence numbers, acknowledgements, dump
//! retries); the messages are written here and only here.

pub(crate) mod compile;
pub(crate) mod msg;
mod park;

#[cfg(test)]
mod golden;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use netlink::socket::{Socket, Transport};

pub use park::{park_sockets, Parked};

use msg::{
    attr, comment_udata, nft_attrs, op as m, udata_comment, MsgBuf, NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST, VERDICT_JUMP,
};
use park::Parkable;

use crate::engine::{AttState, Layout};
use crate::plan::{self, Applied, Chains, Removal};

/// Batches committed over netlink by this process (tests use it to tell
/// which way a change went).
static COMMITS: AtomicUsize = AtomicUsize::new(0);

/// How many batches this process committed in-process over netlink.
pub fn netlink_batches() -> usize {
    COMMITS.load(Ordering::Relaxed)
}

/// A transport the back end tells when a committed batch deleted objects
/// (the kernel's socket then closes by the parking rules; a fake ignores it).
pub(crate) trait Committed: Transport {
    fn deleted_objects(&mut self) {}
}

impl Committed for netlink::socket::Fake {}

/// How the create-only ADD batch ended.
#[derive(Debug)]
pub(crate) enum Attach {
    Done,
    /// The kernel refused it (table or map missing, chain exists, key
    /// taken) or could not be asked: nothing was changed.
    Refused,
    /// Something in it can't be expressed here: `nft` has to do it.
    Unsupported,
}

/// A verdict-map element as the kernel lists it; re-added exactly so by the
/// guard before its delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elem {
    pub key: Vec<u8>,
    pub target: Option<String>,
    pub udata: Vec<u8>,
}

impl plan::Listed for Elem {
    fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

/// A netfilter socket and the table family (`NFPROTO_*`) of one layout.
pub(crate) struct Nl<T: Committed = Parkable> {
    sock: Socket<T>,
    family: u8,
}

impl Nl {
    /// A socket in the calling thread's namespace, for `layout`'s table.
    pub fn open(layout: &Layout) -> netlink::Result<Nl> {
        let transport = Parkable::open()
            .map_err(|e| netlink::Error::from_io("open a netfilter netlink socket", e))?;
        Ok(Nl::new(Socket::new(transport), layout))
    }
}

impl<T: Committed> Nl<T> {
    pub fn new(sock: Socket<T>, layout: &Layout) -> Nl<T> {
        Nl {
            sock,
            family: compile::nfproto(layout.family),
        }
    }

    #[cfg(test)]
    pub fn socket(&self) -> &Socket<T> {
        &self.sock
    }

    /// The attachment's objects, all new, as one batch: its chains, their
    /// tagged rules, the map elements leading to them.
    pub fn attach(&mut self, layout: &Layout, st: &AttState) -> Attach {
        let Some((rules, elems, udata)) = encode_attachment(layout, st) else {
            return Attach::Unsupported;
        };
        let mut b = Batch::new(&mut self.sock, self.family);
        for c in &st.chains {
            b.create_chain(layout.table, &c.name);
        }
        for (chain, exprs) in &rules {
            b.append_rule(layout.table, chain, exprs, &udata);
        }
        for (map, key, chain) in &elems {
            b.add_element(layout.table, map, key, chain, &udata);
        }
        match b.commit(&format!("add {} for {}", layout.what, st.tag)) {
            Ok(()) => Attach::Done,
            Err(_) => Attach::Refused,
        }
    }

    /// A dump of `msg` filtered by the attributes `attrs` writes; ENOENT
    /// (no such table or map) is `None`.
    fn dump(
        &mut self,
        msg: u16,
        attrs: &dyn Fn(&mut MsgBuf),
        what: &str,
    ) -> netlink::Result<Option<Vec<Vec<u8>>>> {
        let family = self.family;
        let build = |seq| {
            let mut b = MsgBuf::default();
            let s = b.begin_nft(
                msg,
                NLM_F_REQUEST | netlink::socket::NLM_F_DUMP,
                seq,
                family,
            );
            attrs(&mut b);
            b.end(s);
            b.buf
        };
        absent_is_none(self.sock.dump(&build, &what))
    }

    fn chain_exists(&mut self, table: &str, chain: &str) -> netlink::Result<bool> {
        let seq = self.sock.next_seq();
        let mut b = MsgBuf::default();
        let s = b.begin_nft(m::GETCHAIN, NLM_F_REQUEST | NLM_F_ACK, seq, self.family);
        b.attr_str(attr::CHAIN_TABLE, table);
        b.attr_str(attr::CHAIN_NAME, chain);
        b.end(s);
        let found = self
            .sock
            .request(&b.buf, seq, &format_args!("look up chain {chain}"));
        Ok(absent_is_none(found)?.is_some())
    }
}

/// ENOENT (no such table, chain or map) means "nothing there".
fn absent_is_none<T>(r: netlink::Result<T>) -> netlink::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Rules (chain, expressions), elements (map, key, target chain) and the
/// tag's userdata of an attachment; `None` when something in it can't be
/// expressed here.
#[allow(clippy::type_complexity)]
fn encode_attachment<'a>(
    layout: &Layout,
    st: &'a AttState,
) -> Option<(
    Vec<(&'a str, Vec<u8>)>,
    Vec<(&'static str, Vec<u8>, &'a str)>,
    Vec<u8>,
)> {
    let udata = comment_udata(&st.tag)?;
    let mut rules = Vec::new();
    for c in &st.chains {
        for r in &c.rules {
            rules.push((
                c.name.as_str(),
                compile::rule_expressions(layout.family, r)?,
            ));
        }
    }
    let mut elems = Vec::new();
    for e in &st.elems {
        let def = layout.maps.iter().find(|m| m.name == e.map)?;
        elems.push((
            e.map,
            compile::key_bytes(&def.key_type, &e.key)?,
            e.chain.as_str(),
        ));
    }
    Some((rules, elems, udata))
}

impl<T: Committed> plan::Backend for Nl<T> {
    type Elem = Elem;
    type Error = netlink::Error;

    /// A rule dump of the table (chains with rules), plus a `GETCHAIN` for
    /// each expected chain not seen there (an empty chain has no rule).
    fn chains(&mut self, layout: &Layout, expected: &[String]) -> netlink::Result<Option<Chains>> {
        let table = layout.table;
        let Some(rules) = self.dump(
            m::GETRULE,
            &|b| b.attr_str(attr::RULE_TABLE, table),
            &format!("list the rules of table {table}"),
        )?
        else {
            return Ok(None);
        };
        let mut chains = parse_rule_comments(&rules);
        for name in expected {
            if !chains.contains_key(name) && self.chain_exists(table, name)? {
                chains.insert(name.clone(), Vec::new());
            }
        }
        Ok(Some(chains))
    }

    fn elements(&mut self, layout: &Layout, map: &'static str) -> netlink::Result<Vec<Elem>> {
        let table = layout.table;
        let listed = self.dump(
            m::GETSETELEM,
            &|b| {
                b.attr_str(attr::SET_ELEM_LIST_TABLE, table);
                b.attr_str(attr::SET_ELEM_LIST_SET, map);
            },
            &format!("list map {map}"),
        )?;
        Ok(parse_elems(&listed.unwrap_or_default()))
    }

    fn apply(
        &mut self,
        layout: &Layout,
        removal: &Removal<Elem>,
    ) -> netlink::Result<Applied<netlink::Error>> {
        let table = layout.table;
        let mut b = Batch::new(&mut self.sock, self.family);
        for (map, e) in &removal.elems {
            if let Some(target) = &e.target {
                b.add_element(table, map, &e.key, target, &e.udata);
                b.delete_element(table, map, &e.key);
            }
        }
        for c in &removal.chains {
            b.delete_chain(table, c);
        }
        match b.commit(&format!(
            "delete {} chains {:?}",
            layout.what, removal.chains
        )) {
            Ok(()) => {
                self.sock.transport_mut().deleted_objects();
                Ok(Applied::Done)
            }
            Err(e) if matches!(e.errno(), Some(libc::EBUSY | libc::ENOENT | libc::EEXIST)) => {
                Ok(Applied::Raced(e))
            }
            Err(e) => Err(e),
        }
    }
}

/// chain -> the comments of its rules, from a rule dump.
fn parse_rule_comments(answers: &[Vec<u8>]) -> Chains {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for msg in answers {
        let attrs = nft_attrs(msg);
        let Some(chain) = attrs.get(attr::RULE_CHAIN).and_then(|a| a.str()) else {
            continue;
        };
        let comment = attrs
            .get(attr::RULE_USERDATA)
            .and_then(|u| udata_comment(u.data));
        out.entry(chain.to_string()).or_default().push(comment);
    }
    out
}

/// The elements of an element dump (those without a key are skipped).
fn parse_elems(answers: &[Vec<u8>]) -> Vec<Elem> {
    let mut out = Vec::new();
    for msg in answers {
        let Some(list) = nft_attrs(msg).get(attr::SET_ELEM_LIST_ELEMENTS) else {
            continue;
        };
        for e in list.nested().filter(|a| a.ty == attr::LIST_ELEM) {
            let mut elem = Elem {
                key: Vec::new(),
                target: None,
                udata: Vec::new(),
            };
            for a in e.nested() {
                match a.ty {
                    attr::SET_ELEM_KEY => {
                        if let Some(v) = a.nested().get(attr::DATA_VALUE) {
                            elem.key = v.data.to_vec();
                        }
                    }
                    attr::SET_ELEM_DATA => {
                        let verdict = a.nested().get(attr::DATA_VERDICT);
                        let chain = verdict
                            .and_then(|v| v.nested().get(attr::VERDICT_CHAIN))
                            .and_then(|c| c.str());
                        let code = verdict
                            .and_then(|v| v.nested().get(attr::VERDICT_CODE))
                            .and_then(|c| c.i32());
                        if code == Some(VERDICT_JUMP) {
                            elem.target = chain.map(str::to_string);
                        }
                    }
                    attr::SET_ELEM_USERDATA => elem.udata = a.data.to_vec(),
                    _ => {}
                }
            }
            if !elem.key.is_empty() {
                out.push(elem);
            }
        }
    }
    out
}

/// One atomic batch being written: messages, each acknowledged, between
/// `NFNL_MSG_BATCH_BEGIN` and `_END`.
struct Batch<'s, T: Committed> {
    sock: &'s mut Socket<T>,
    body: MsgBuf,
    acks: Vec<u32>,
    family: u8,
}

impl<'s, T: Committed> Batch<'s, T> {
    /// Starts a batch: its begin message takes the next sequence number,
    /// so the batch's numbers run from there to its end message.
    fn new(sock: &'s mut Socket<T>, family: u8) -> Batch<'s, T> {
        let mut body = MsgBuf::default();
        let first = sock.next_seq();
        let b = body.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        body.end(b);
        Batch {
            sock,
            body,
            acks: vec![first],
            family,
        }
    }

    fn begin(&mut self, msg: u16, flags: u16) -> usize {
        let seq = self.sock.next_seq();
        self.acks.push(seq);
        self.body
            .begin_nft(msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq, self.family)
    }

    fn create_chain(&mut self, table: &str, chain: &str) {
        let s = self.begin(m::NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL);
        self.body.attr_str(attr::CHAIN_TABLE, table);
        self.body.attr_str(attr::CHAIN_NAME, chain);
        self.body.end(s);
    }

    fn delete_chain(&mut self, table: &str, chain: &str) {
        let s = self.begin(m::DELCHAIN, 0);
        self.body.attr_str(attr::CHAIN_TABLE, table);
        self.body.attr_str(attr::CHAIN_NAME, chain);
        self.body.end(s);
    }

    fn append_rule(&mut self, table: &str, chain: &str, exprs: &[u8], udata: &[u8]) {
        let s = self.begin(m::NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        self.body.attr_str(attr::RULE_TABLE, table);
        self.body.attr_str(attr::RULE_CHAIN, chain);
        self.body.buf.extend_from_slice(exprs);
        self.body.attr(attr::RULE_USERDATA, udata);
        self.body.end(s);
    }

    /// Adds `key : jump target` (no `NLM_F_EXCL`: a no-op when the same
    /// element exists, `EBUSY` when the key leads elsewhere).
    fn add_element(&mut self, table: &str, map: &str, key: &[u8], target: &str, udata: &[u8]) {
        let s = self.begin(m::NEWSETELEM, NLM_F_CREATE);
        self.body.attr_str(attr::SET_ELEM_LIST_TABLE, table);
        self.body.attr_str(attr::SET_ELEM_LIST_SET, map);
        let list = self.body.nest(attr::SET_ELEM_LIST_ELEMENTS);
        let e = self.body.nest(attr::LIST_ELEM);
        let k = self.body.nest(attr::SET_ELEM_KEY);
        self.body.attr(attr::DATA_VALUE, key);
        self.body.nest_end(k);
        let d = self.body.nest(attr::SET_ELEM_DATA);
        self.body.verdict(VERDICT_JUMP, Some(target));
        self.body.nest_end(d);
        if !udata.is_empty() {
            self.body.attr(attr::SET_ELEM_USERDATA, udata);
        }
        self.body.nest_end(e);
        self.body.nest_end(list);
        self.body.end(s);
    }

    fn delete_element(&mut self, table: &str, map: &str, key: &[u8]) {
        let s = self.begin(m::DELSETELEM, 0);
        self.body.attr_str(attr::SET_ELEM_LIST_TABLE, table);
        self.body.attr_str(attr::SET_ELEM_LIST_SET, map);
        let list = self.body.nest(attr::SET_ELEM_LIST_ELEMENTS);
        let e = self.body.nest(attr::LIST_ELEM);
        let k = self.body.nest(attr::SET_ELEM_KEY);
        self.body.attr(attr::DATA_VALUE, key);
        self.body.nest_end(k);
        self.body.nest_end(e);
        self.body.nest_end(list);
        self.body.end(s);
    }

    /// Ends the batch, sends it and waits until the kernel acknowledged
    /// every message; the first refusal refuses them all.
    fn commit(self, what: &str) -> netlink::Result<()> {
        let Batch {
            sock,
            mut body,
            acks,
            ..
        } = self;
        // acks[0] is the begin message's number, which asks for no ack.
        let (first, acked) = (acks[0], &acks[1..]);
        let last = sock.next_seq();
        let e = body.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            last,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        body.end(e);
        sock.batch(&body.buf, first..=last, acked, &what)?;
        COMMITS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
