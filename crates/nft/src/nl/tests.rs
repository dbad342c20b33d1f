//! The netlink back end against a scripted nf_tables kernel
//! (`netlink::socket::Fake`): what ADD and DEL send, how DEL retries, how
//! dumps are read. No root, no namespace.

use std::sync::{Arc, Mutex};

use netlink::socket::fake::{ack, datagram, done, error};
use netlink::socket::{messages, Fake, Socket, NLM_F_DUMP_INTR};

use super::msg::{attr, comment_udata, nft_attrs, op, MsgBuf, NFNL_MSG_BATCH_BEGIN};
use super::msg::{NFNL_MSG_BATCH_END, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use super::{parse_elems, parse_rule_comments, Attach, Elem, Nl, VERDICT_JUMP};
use crate::engine::Layout;
use crate::plan::{self, Chains, Outcome};
use crate::{masq, Attachment};

const NLM_F_MULTI: u16 = 0x2;

/// The table the fake kernel holds.
#[derive(Debug, Default)]
struct Kernel {
    exists: bool,
    /// (chain, rule comment)
    rules: Vec<(String, Option<String>)>,
    /// Chains without rules.
    empty_chains: Vec<String>,
    /// (map, key, target, comment)
    elems: Vec<(String, Vec<u8>, String, Option<String>)>,
    /// Errno answered to the next batches, in order (0: accept).
    batch_errnos: Vec<i32>,
    /// How many dumps to answer as interrupted first.
    interrupt_dumps: usize,
    batches: usize,
}

fn ty(msg: u16) -> u16 {
    (10 << 8) | msg
}

fn str_attr(data: &[u8], ty: u16) -> Option<String> {
    super::msg::Attrs { data }
        .get(ty)
        .and_then(|a| a.str())
        .map(str::to_string)
}

/// The fake's answers to one datagram.
fn answer(k: &mut Kernel, req: &[u8]) -> Vec<Vec<u8>> {
    let msgs: Vec<_> = messages(req).collect();
    let first = msgs[0];
    if first.ty == NFNL_MSG_BATCH_BEGIN {
        k.batches += 1;
        let errno = if k.batch_errnos.is_empty() {
            0
        } else {
            k.batch_errnos.remove(0)
        };
        let acked: Vec<u32> = msgs
            .iter()
            .filter(|m| m.flags & NLM_F_ACK != 0)
            .map(|m| m.seq)
            .collect();
        if errno != 0 {
            return vec![error(acked[0], errno)];
        }
        for m in &msgs[1..msgs.len() - 1] {
            apply(k, m.ty, nft_attrs(m.bytes).data);
        }
        return vec![datagram(&acked.iter().map(|s| ack(*s)).collect::<Vec<_>>())];
    }
    let family = first.payload()[0];
    let attrs = nft_attrs(first.bytes).data;
    let intr = if k.interrupt_dumps > 0 && first.ty != ty(op::GETCHAIN) {
        k.interrupt_dumps -= 1;
        NLM_F_DUMP_INTR
    } else {
        0
    };
    if !k.exists {
        return vec![error(first.seq, libc::ENOENT)];
    }
    let mut out = Vec::new();
    let mut reply = |msg: u16, flags: u16, fill: &dyn Fn(&mut MsgBuf)| {
        let mut b = MsgBuf::default();
        let s = b.begin_nft(msg, flags, first.seq, family);
        fill(&mut b);
        b.end(s);
        out.push(b.buf);
    };
    if first.ty == ty(op::GETRULE) {
        for (chain, comment) in &k.rules {
            reply(op::NEWRULE, NLM_F_MULTI | intr, &|b| {
                b.attr_str(attr::RULE_TABLE, "t");
                b.attr_str(attr::RULE_CHAIN, chain);
                if let Some(u) = comment.as_deref().and_then(comment_udata) {
                    b.attr(attr::RULE_USERDATA, &u);
                }
            });
        }
        out.push(done(first.seq, intr));
    } else if first.ty == ty(op::GETCHAIN) {
        let name = str_attr(attrs, attr::CHAIN_NAME).unwrap_or_default();
        let exists = k.empty_chains.contains(&name) || k.rules.iter().any(|(c, _)| *c == name);
        if !exists {
            return vec![error(first.seq, libc::ENOENT)];
        }
        reply(op::NEWCHAIN, 0, &|b| b.attr_str(attr::CHAIN_NAME, &name));
        out.push(ack(first.seq));
    } else if first.ty == ty(op::GETSETELEM) {
        let map = str_attr(attrs, attr::SET_ELEM_LIST_SET).unwrap_or_default();
        let mine: Vec<_> = k.elems.iter().filter(|e| e.0 == map).collect();
        // One element per message, as a kernel with a small buffer would.
        for (_, key, target, comment) in mine {
            reply(op::NEWSETELEM, NLM_F_MULTI | intr, &|b| {
                b.attr_str(attr::SET_ELEM_LIST_SET, &map);
                let l = b.nest(attr::SET_ELEM_LIST_ELEMENTS);
                let e = b.nest(attr::LIST_ELEM);
                let kn = b.nest(attr::SET_ELEM_KEY);
                b.attr(attr::DATA_VALUE, key);
                b.nest_end(kn);
                let d = b.nest(attr::SET_ELEM_DATA);
                b.verdict(VERDICT_JUMP, Some(target));
                b.nest_end(d);
                if let Some(u) = comment.as_deref().and_then(comment_udata) {
                    b.attr(attr::SET_ELEM_USERDATA, &u);
                }
                b.nest_end(e);
                b.nest_end(l);
            });
        }
        out.push(done(first.seq, intr));
    }
    vec![datagram(&out)]
}

/// The fake applies a committed batch to its table.
fn apply(k: &mut Kernel, msg_ty: u16, attrs: &[u8]) {
    let a = super::msg::Attrs { data: attrs };
    let elem_key = || {
        let list = a.get(attr::SET_ELEM_LIST_ELEMENTS)?;
        let e = list.nested().get(attr::LIST_ELEM)?;
        let key = e
            .nested()
            .get(attr::SET_ELEM_KEY)?
            .nested()
            .get(attr::DATA_VALUE)?;
        Some(key.data.to_vec())
    };
    if msg_ty == ty(op::DELCHAIN) {
        let name = str_attr(attrs, attr::CHAIN_NAME).unwrap_or_default();
        k.rules.retain(|(c, _)| *c != name);
        k.empty_chains.retain(|c| *c != name);
    } else if msg_ty == ty(op::DELSETELEM) {
        let map = str_attr(attrs, attr::SET_ELEM_LIST_SET).unwrap_or_default();
        let key = elem_key().unwrap_or_default();
        k.elems.retain(|e| !(e.0 == map && e.1 == key));
    } else if msg_ty == ty(op::NEWCHAIN) {
        k.empty_chains
            .push(str_attr(attrs, attr::CHAIN_NAME).unwrap_or_default());
    }
}

type Shared = Arc<Mutex<Kernel>>;

fn nl(kernel: &Shared, layout: &Layout) -> Nl<Fake> {
    let k = Arc::clone(kernel);
    let fake = Fake::new(move |req| answer(&mut k.lock().unwrap(), req));
    Nl::new(Socket::new(fake), layout)
}

/// Each datagram sent, as the names of its messages; batch messages with
/// the flags they carry.
fn sent(nl: &Nl<Fake>) -> Vec<Vec<String>> {
    nl.socket()
        .transport()
        .sent()
        .iter()
        .map(|d| {
            messages(d)
                .map(|m| {
                    let name = match m.ty & 0xff {
                        _ if m.ty == NFNL_MSG_BATCH_BEGIN => "begin",
                        _ if m.ty == NFNL_MSG_BATCH_END => "end",
                        op::NEWCHAIN => "newchain",
                        op::GETCHAIN => "getchain",
                        op::DELCHAIN => "delchain",
                        op::NEWRULE => "newrule",
                        op::GETRULE => "getrule",
                        op::NEWSETELEM => "newsetelem",
                        op::GETSETELEM => "getsetelem",
                        op::DELSETELEM => "delsetelem",
                        _ => "?",
                    };
                    let attrs = nft_attrs(m.bytes).data;
                    let object = match m.ty & 0xff {
                        _ if m.ty >> 8 != 10 => None,
                        op::NEWCHAIN | op::GETCHAIN | op::DELCHAIN => {
                            str_attr(attrs, attr::CHAIN_NAME)
                        }
                        op::NEWRULE => str_attr(attrs, attr::RULE_CHAIN),
                        op::NEWSETELEM | op::GETSETELEM | op::DELSETELEM => {
                            str_attr(attrs, attr::SET_ELEM_LIST_SET)
                        }
                        _ => None,
                    }
                    .map(|o| format!(" {o}"))
                    .unwrap_or_default();
                    format!("{name}{object}")
                })
                .collect()
        })
        .collect()
}

fn table(rules: &[(&str, Option<&str>)], elems: &[(&str, u8, &str, &str)]) -> Shared {
    Arc::new(Mutex::new(Kernel {
        exists: true,
        rules: rules
            .iter()
            .map(|(c, t)| (c.to_string(), t.map(String::from)))
            .collect(),
        elems: elems
            .iter()
            .map(|(m, k, c, t)| {
                (
                    m.to_string(),
                    vec![10, 0, 0, *k],
                    c.to_string(),
                    Some(t.to_string()),
                )
            })
            .collect(),
        ..Kernel::default()
    }))
}

fn del(nl: &mut Nl<Fake>, layout: &Layout, tag: &str, names: &[&str]) -> netlink::Result<Outcome> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    plan::remove(nl, layout, &names, &|c: &Chains| {
        plan::del_pick(layout, tag, &names, c)
    })
}

#[test]
fn del_lists_once_and_sends_one_guarded_batch() {
    let layout = masq::layout();
    let k = table(
        &[
            ("postrouting", None),
            ("masq-x", Some("n/x/eth0")),
            ("masq-x", Some("n/x/eth0")),
            ("masq-y", Some("n/y/eth0")),
        ],
        &[
            ("masq4", 5, "masq-x", "n/x/eth0"),
            ("masq4", 6, "masq-y", "n/y/eth0"),
        ],
    );
    let mut n = nl(&k, &layout);
    let out = del(&mut n, &layout, "n/x/eth0", &["masq-x"]).expect("del");
    assert_eq!(
        out,
        Outcome::Removed {
            count: 0,
            attempts: 1
        }
    );
    assert_eq!(
        sent(&n),
        [
            vec!["getrule"],
            vec!["getsetelem masq4"],
            vec!["getsetelem masq6"],
            vec![
                "begin",
                "newsetelem masq4",
                "delsetelem masq4",
                "delchain masq-x",
                "end"
            ],
        ]
    );
    // The guard re-adds the element exactly as listed: key, jump target,
    // the comment's userdata; without NLM_F_EXCL, so only a changed
    // element fails it.
    let batch = &n.socket().transport().sent()[3];
    let guard = messages(batch).nth(1).unwrap();
    assert_eq!(
        guard.flags & (NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK),
        NLM_F_CREATE | NLM_F_ACK
    );
    let listed = parse_elems(&[guard.bytes.to_vec()]);
    assert_eq!(
        listed,
        [Elem {
            key: vec![10, 0, 0, 5],
            target: Some("masq-x".into()),
            udata: comment_udata("n/x/eth0").unwrap(),
        }]
    );
    let kernel = k.lock().unwrap();
    assert_eq!(kernel.elems.len(), 1, "y's element stays");
    assert!(kernel.rules.iter().all(|(c, _)| c != "masq-x"));
}

#[test]
fn an_expected_chain_without_rules_is_found_by_getchain() {
    let layout = masq::layout();
    let k = table(&[("postrouting", None)], &[]);
    k.lock().unwrap().empty_chains.push("masq-x".into());
    let mut n = nl(&k, &layout);
    del(&mut n, &layout, "n/x/eth0", &["masq-x", "masq-gone"]).expect("del");
    let s = sent(&n);
    assert_eq!(s[1], ["getchain masq-x"]);
    assert_eq!(s[2], ["getchain masq-gone"]);
    assert_eq!(s.last().unwrap(), &["begin", "delchain masq-x", "end"]);
}

#[test]
fn a_raced_batch_is_retried_from_a_fresh_listing() {
    let layout = masq::layout();
    let k = table(&[("masq-x", Some("t"))], &[("masq4", 5, "masq-x", "t")]);
    k.lock().unwrap().batch_errnos = vec![libc::EBUSY, libc::ENOENT];
    let mut n = nl(&k, &layout);
    let out = del(&mut n, &layout, "t", &["masq-x"]).expect("del");
    assert_eq!(
        out,
        Outcome::Removed {
            count: 0,
            attempts: 3
        }
    );
    let s = sent(&n);
    assert_eq!(s.iter().filter(|d| d[0] == "getrule").count(), 3);
    assert_eq!(k.lock().unwrap().batches, 3);
}

#[test]
fn racing_every_time_ends_with_the_kernels_errno_after_the_attempts() {
    let layout = masq::layout();
    let k = table(&[("masq-x", Some("t"))], &[]);
    k.lock().unwrap().batch_errnos = vec![libc::EBUSY; 10];
    let mut n = nl(&k, &layout);
    let err = del(&mut n, &layout, "t", &["masq-x"]).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EBUSY));
    assert_eq!(k.lock().unwrap().batches, plan::ATTEMPTS);
}

#[test]
fn a_refusal_that_is_no_race_is_not_retried() {
    let layout = masq::layout();
    let k = table(&[("masq-x", Some("t"))], &[]);
    k.lock().unwrap().batch_errnos = vec![libc::EPERM];
    let mut n = nl(&k, &layout);
    let err = del(&mut n, &layout, "t", &["masq-x"]).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EPERM));
    assert_eq!(k.lock().unwrap().batches, 1);
}

#[test]
fn no_table_and_nothing_tagged_send_no_batch() {
    let layout = masq::layout();
    let k = Arc::new(Mutex::new(Kernel::default()));
    let mut n = nl(&k, &layout);
    assert_eq!(
        del(&mut n, &layout, "t", &["masq-x"]).unwrap(),
        Outcome::NoTable
    );
    assert_eq!(sent(&n), [vec!["getrule"]]);

    let k = table(
        &[("masq-y", Some("other"))],
        &[("masq4", 6, "masq-y", "other")],
    );
    let mut n = nl(&k, &layout);
    let out = del(&mut n, &layout, "t", &["masq-x"]).unwrap();
    assert_eq!(out, Outcome::NothingToRemove);
    assert_eq!(sent(&n), [vec!["getrule"], vec!["getchain masq-x"]]);
}

#[test]
fn an_interrupted_rule_dump_is_listed_again_before_planning() {
    let layout = masq::layout();
    let k = table(&[("masq-x", Some("t"))], &[]);
    k.lock().unwrap().interrupt_dumps = 1;
    let mut n = nl(&k, &layout);
    del(&mut n, &layout, "t", &["masq-x"]).expect("del");
    let s = sent(&n);
    assert_eq!(s[0], ["getrule"]);
    assert_eq!(s[1], ["getrule"]);
    assert_eq!(k.lock().unwrap().batches, 1);
}

#[test]
fn attach_creates_only_new_objects_in_one_acknowledged_batch() {
    let layout = masq::layout();
    let att = Attachment {
        network: "n",
        container_id: "x",
        ifname: "eth0",
    };
    let rules = [masq::MasqRule {
        ip: "10.88.0.5".parse().unwrap(),
        subnet: "10.88.0.0/24".parse().unwrap(),
    }];
    let st = masq::state(&att, &rules).unwrap();
    let k = table(&[], &[]);
    let mut n = nl(&k, &layout);
    let before = super::netlink_batches();
    assert!(matches!(n.attach(&layout, &st), Attach::Done));
    assert!(super::netlink_batches() > before);
    let chain = masq::chain(&att);
    assert_eq!(
        sent(&n),
        [vec![
            "begin".to_string(),
            format!("newchain {chain}"),
            format!("newrule {chain}"),
            "newsetelem masq4".to_string(),
            "end".to_string(),
        ]]
    );
    let batch = &n.socket().transport().sent()[0];
    let flags: Vec<u16> = messages(batch).map(|m| m.flags & !1).collect();
    assert_eq!(
        flags,
        [
            0,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            NLM_F_ACK | NLM_F_CREATE,
            0
        ],
        "chain created exclusively, rule appended, element added without EXCL"
    );
    // The kernel refuses (e.g. the chain exists after a re-ADD): nothing
    // changed, the caller goes the full way.
    k.lock().unwrap().batch_errnos = vec![libc::EEXIST];
    assert!(matches!(n.attach(&layout, &st), Attach::Refused));
}

#[test]
fn dumps_parse_keys_targets_and_comments_and_skip_the_rest() {
    let mut msgs = Vec::new();
    let mut b = MsgBuf::default();
    let s = b.begin_nft(op::NEWSETELEM, NLM_F_MULTI, 1, 1);
    let l = b.nest(attr::SET_ELEM_LIST_ELEMENTS);
    for (key, code, chain) in [
        (&[1u8, 2, 3, 4][..], VERDICT_JUMP, Some("c1")),
        (&[][..], VERDICT_JUMP, Some("no-key")),
        (&[5, 6, 7, 8][..], super::msg::VERDICT_DROP, None),
    ] {
        let e = b.nest(attr::LIST_ELEM);
        let kn = b.nest(attr::SET_ELEM_KEY);
        if !key.is_empty() {
            b.attr(attr::DATA_VALUE, key);
        }
        b.nest_end(kn);
        let d = b.nest(attr::SET_ELEM_DATA);
        b.verdict(code, chain);
        b.nest_end(d);
        b.nest_end(e);
    }
    b.nest_end(l);
    b.end(s);
    msgs.push(b.buf);
    let elems = parse_elems(&msgs);
    assert_eq!(
        elems,
        [
            Elem {
                key: vec![1, 2, 3, 4],
                target: Some("c1".into()),
                udata: Vec::new()
            },
            Elem {
                key: vec![5, 6, 7, 8],
                target: None,
                udata: Vec::new()
            },
        ]
    );

    let rule = |chain: &str, comment: Option<&str>| {
        let mut b = MsgBuf::default();
        let s = b.begin_nft(op::NEWRULE, NLM_F_MULTI, 1, 1);
        b.attr_str(attr::RULE_CHAIN, chain);
        if let Some(u) = comment.and_then(comment_udata) {
            b.attr(attr::RULE_USERDATA, &u);
        }
        b.end(s);
        b.buf
    };
    let chains = parse_rule_comments(&[
        rule("a", Some("t1")),
        rule("a", None),
        rule("b", Some("t2")),
        b"garbage".to_vec(),
    ]);
    assert_eq!(chains["a"], [Some("t1".to_string()), None]);
    assert_eq!(chains["b"], [Some("t2".to_string())]);
    assert_eq!(chains.len(), 2);
}
