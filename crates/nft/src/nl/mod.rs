//! nf_tables over netlink, in-process, for the two hot paths: ADD on a node
//! where our table exists (create the attachment's chains, rules and map
//! elements) and DEL (find what the attachment owns, delete it in one
//! guarded batch). Everything else (the first ADD that creates the table,
//! a re-ADD, CHECK, GC, repair) still goes through `nft` and its JSON, which
//! stays the reference for what our rules look like.
//!
//! Exec'ing `nft` costs ~3 ms and ~5 MiB per batch; a batch here costs a few
//! hundred microseconds. The messages are what `nft` itself sends (see
//! [`compile`]); a test compares the kernel's bytecode for both.

pub(crate) mod compile;
pub(crate) mod msg;
mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use socket::{park_sockets, release_sockets};

pub(crate) use socket::NlError;

use msg::{
    attr, comment_udata, op as m, udata_comment, MsgBuf, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE,
    NLM_F_EXCL, NLM_F_REQUEST, VERDICT_JUMP,
};
use socket::Socket;

use crate::engine::{AttState, Layout};

/// How many times DEL lists and tries again when its batch raced with
/// another change of the table.
const DEL_ATTEMPTS: usize = 3;

/// Batches committed over netlink by this process (tests use it to tell
/// which way a change went).
static COMMITS: AtomicUsize = AtomicUsize::new(0);

/// How many batches this process committed in-process over netlink.
pub fn netlink_batches() -> usize {
    COMMITS.load(Ordering::Relaxed)
}

/// `CNI_RS_NFT_EXEC=1` makes every change go through `nft` again: a way out
/// should a kernel refuse something the netlink path sends.
fn disabled() -> bool {
    std::env::var_os("CNI_RS_NFT_EXEC").is_some_and(|v| v == "1")
}

/// A batch being written: messages plus the sequence numbers to be acked.
struct Batch<'s> {
    sock: &'s mut Socket,
    body: MsgBuf,
    acks: Vec<u32>,
    family: u8,
    deletes: bool,
}

impl<'s> Batch<'s> {
    fn new(sock: &'s mut Socket, family: u8) -> Batch<'s> {
        Batch {
            sock,
            body: MsgBuf::default(),
            acks: Vec::new(),
            family,
            deletes: false,
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
        self.deletes = true;
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
        self.deletes = true;
    }

    fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    fn commit(self, what: &str) -> Result<(), NlError> {
        self.sock
            .commit(&self.body, &self.acks, self.deletes, what)?;
        COMMITS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The attachment's objects, all new, as one batch: its chains, their
/// tagged rules, the map elements leading to them. `None` when something in
/// it can't be expressed here (then `nft` does it); `Some(Err)` when the
/// kernel refused (table or map missing, chain exists, key taken): nothing
/// was changed then.
pub(crate) fn attach(layout: &Layout, st: &AttState) -> Option<Result<(), NlError>> {
    if disabled() {
        return None;
    }
    let family = compile::nfproto(layout.family);
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
        elems.push((e.map, compile::key_bytes(&def.key_type, &e.key)?, &e.chain));
    }
    let mut sock = match Socket::open() {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    let mut b = Batch::new(&mut sock, family);
    for c in &st.chains {
        b.create_chain(layout.table, &c.name);
    }
    for (chain, exprs) in &rules {
        b.append_rule(layout.table, chain, exprs, &udata);
    }
    for (map, key, chain) in &elems {
        b.add_element(layout.table, map, key, chain, &udata);
    }
    Some(b.commit(&format!("add {} for {}", layout.what, st.tag)))
}

/// A verdict-map element as the kernel lists it.
struct Elem {
    key: Vec<u8>,
    target: Option<String>,
    udata: Vec<u8>,
}

fn parse_elems(payloads: &[Vec<u8>]) -> Vec<Elem> {
    let mut out = Vec::new();
    for p in payloads {
        let attrs = msg::Attrs { data: p };
        let Some(list) = attrs.get(attr::SET_ELEM_LIST_ELEMENTS) else {
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

/// chain -> the comments of its rules, for one table.
fn rule_tags(
    sock: &mut Socket,
    family: u8,
    table: &str,
) -> Result<BTreeMap<String, Vec<Option<String>>>, NlError> {
    let replies = sock.dump(
        m::GETRULE,
        family,
        |b| b.attr_str(attr::RULE_TABLE, table),
        &format!("list the rules of table {table}"),
    );
    let replies = or_when_absent(replies, Vec::new())?;
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for p in &replies {
        let attrs = msg::Attrs { data: p };
        let Some(chain) = attrs.get(attr::RULE_CHAIN).and_then(|a| a.str()) else {
            continue;
        };
        let comment = attrs
            .get(attr::RULE_USERDATA)
            .and_then(|u| udata_comment(u.data));
        out.entry(chain.to_string()).or_default().push(comment);
    }
    Ok(out)
}

fn chain_exists(sock: &mut Socket, family: u8, table: &str, chain: &str) -> Result<bool, NlError> {
    let r = sock.get(
        m::GETCHAIN,
        family,
        |b| {
            b.attr_str(attr::CHAIN_TABLE, table);
            b.attr_str(attr::CHAIN_NAME, chain);
        },
        &format!("look up chain {chain}"),
    );
    or_when_absent(r.map(|_| true), false)
}

/// ENOENT (no such table, chain or map) means "nothing there".
fn or_when_absent<T>(r: Result<T, NlError>, nothing: T) -> Result<T, NlError> {
    match r {
        Err(e) if e.errno == libc::ENOENT => Ok(nothing),
        other => other,
    }
}

fn map_elems(sock: &mut Socket, family: u8, table: &str, map: &str) -> Result<Vec<Elem>, NlError> {
    let r = sock.dump(
        m::GETSETELEM,
        family,
        |b| {
            b.attr_str(attr::SET_ELEM_LIST_TABLE, table);
            b.attr_str(attr::SET_ELEM_LIST_SET, map);
        },
        &format!("list map {map}"),
    );
    or_when_absent(r.map(|p| parse_elems(&p)), Vec::new())
}

/// Removes one attachment: the chains named `names` and every chain of the
/// layout's whose rules carry `tag`, and the map elements that jump to them.
/// Each element delete is guarded by re-adding it exactly as listed, so a key
/// another attachment took over since the listing fails the batch (then we
/// list again) instead of losing that attachment's element.
pub(crate) fn detach(layout: &Layout, tag: &str, names: &[String]) -> Result<(), NlError> {
    let family = compile::nfproto(layout.family);
    let table = layout.table;
    if disabled() {
        return Err(NlError {
            errno: socket::DISABLED,
            what: "netlink disabled by CNI_RS_NFT_EXEC=1".into(),
        });
    }
    let mut sock = Socket::open()?;
    let mut last = None;
    for _ in 0..DEL_ATTEMPTS {
        let rules = match rule_tags(&mut sock, family, table) {
            Ok(r) => r,
            // Interrupted by a concurrent change: list again.
            Err(e) if e.errno == libc::EINTR => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut chains: BTreeSet<String> = BTreeSet::new();
        for (chain, comments) in &rules {
            let att = layout.att_prefixes.iter().any(|p| chain.starts_with(p));
            if att && comments.iter().any(|c| c.as_deref() == Some(tag)) {
                chains.insert(chain.clone());
            }
        }
        for n in names {
            if rules.contains_key(n) || chain_exists(&mut sock, family, table, n)? {
                chains.insert(n.clone());
            }
        }
        if chains.is_empty() {
            // Elements can only jump to existing chains: nothing is left.
            return Ok(());
        }
        let mut listed = Vec::new();
        let mut interrupted = None;
        for map in &layout.maps {
            match map_elems(&mut sock, family, table, map.name) {
                Ok(elems) => listed.extend(
                    elems
                        .into_iter()
                        .filter(|e| e.target.as_ref().is_some_and(|t| chains.contains(t)))
                        .map(|e| (map.name, e)),
                ),
                Err(e) if e.errno == libc::EINTR => interrupted = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = interrupted {
            last = Some(e);
            continue;
        }
        let mut b = Batch::new(&mut sock, family);
        for (map, e) in &listed {
            if let Some(target) = &e.target {
                b.add_element(table, map, &e.key, target, &e.udata);
                b.delete_element(table, map, &e.key);
            }
        }
        for c in &chains {
            b.delete_chain(table, c);
        }
        if b.is_empty() {
            return Ok(());
        }
        match b.commit(&format!("delete {} of {tag}", layout.what)) {
            Ok(()) => return Ok(()),
            // Changed under us (an element taken over or gone, a chain
            // deleted or still referenced): look again.
            Err(e) if matches!(e.errno, libc::EBUSY | libc::ENOENT | libc::EEXIST) => {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(NlError {
        errno: libc::EAGAIN,
        what: format!("delete {} of {tag}", layout.what),
    }))
}
