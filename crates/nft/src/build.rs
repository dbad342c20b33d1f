//! Small constructors over the `nftables` crate's types, so rule sets read
//! like nft syntax, and the batch type every operation fills.
//!
//! Rules are built in the canonical form `nft -j list` prints them back in
//! (explicit `==`, plain address for a full-length prefix, no dependency
//! matches that nft would hide), so CHECK can compare what it reads with what
//! it would write.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use nftables::expr::{
    CTDir, Elem, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Prefix, Verdict, CT,
};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement, VerdictMap, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::{json, Value};

pub(crate) type Stmt = Statement<'static>;
pub(crate) type Expr = Expression<'static>;

pub(crate) fn s(v: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(v.into()))
}

pub(crate) fn num(n: u16) -> Expr {
    Expression::Number(u32::from(n))
}

pub(crate) fn payload(protocol: &str, field: &str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.to_string()),
            field: Cow::Owned(field.to_string()),
        },
    )))
}

pub(crate) fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(crate) fn ct(key: &str, dir: Option<CTDir>) -> Expr {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Owned(key.to_string()),
        family: None,
        dir,
    }))
}

pub(crate) fn fib_daddr_type() -> Expr {
    let mut flags = HashSet::new();
    flags.insert(FibFlag::Daddr);
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags,
    }))
}

pub(crate) fn concat(items: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Concat(items))
}

/// An address, or `addr/len` for a network; full-length prefixes are written
/// as the plain address, as nft lists them.
pub(crate) fn net(n: IpNetwork) -> Expr {
    let max = if n.is_ipv4() { 32 } else { 128 };
    if n.prefix() == max {
        s(n.ip().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(s(n.network().to_string())),
            len: u32::from(n.prefix()),
        }))
    }
}

pub(crate) fn addr(ip: IpAddr) -> Expr {
    s(ip.to_string())
}

pub(crate) fn matches(left: Expr, op: Operator, right: Expr) -> Stmt {
    Statement::Match(Match { left, right, op })
}

pub(crate) fn eq(left: Expr, right: Expr) -> Stmt {
    matches(left, Operator::EQ, right)
}

pub(crate) fn ne(left: Expr, right: Expr) -> Stmt {
    matches(left, Operator::NEQ, right)
}

pub(crate) fn vmap(key: Expr, map: &str) -> Stmt {
    Statement::VerdictMap(VerdictMap {
        key,
        data: s(format!("@{map}")),
    })
}

pub(crate) fn jump(chain: &str) -> Stmt {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    })
}

pub(crate) fn jump_verdict(chain: &str) -> Expr {
    Expression::Verdict(Verdict::Jump(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    }))
}

pub(crate) fn masquerade() -> Stmt {
    Statement::Masquerade(None)
}

pub(crate) fn dnat(to: IpAddr, port: u16) -> Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(addr(to)),
        family: Some(match to {
            IpAddr::V4(_) => nftables::stmt::NATFamily::IP,
            IpAddr::V6(_) => nftables::stmt::NATFamily::IP6,
        }),
        port: Some(num(port)),
        flags: None,
    }))
}

/// `ip` or `ip6`, for payload matches of an address's family.
pub(crate) fn ip_proto(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

pub(crate) fn family_name(f: NfFamily) -> &'static str {
    match f {
        NfFamily::IP => "ip",
        NfFamily::IP6 => "ip6",
        NfFamily::INet => "inet",
        NfFamily::ARP => "arp",
        NfFamily::Bridge => "bridge",
        NfFamily::NetDev => "netdev",
    }
}

/// A base chain's hook: chain type, hook and priority.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hook {
    pub kind: NfChainType,
    pub hook: NfHook,
    pub prio: i32,
}

/// The commands of one atomic batch, in order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    cmds: Vec<Value>,
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Serializing these plain data types can't fail (no maps with non-string
    // keys, no foreign Serialize impls); a null would make nft refuse the
    // batch with a clear message rather than us panicking.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// `{"nftables": [...]}`, what `nft -j -f -` reads.
    pub fn to_json(&self) -> Value {
        json!({ "nftables": self.cmds })
    }

    #[cfg(test)]
    pub fn commands(&self) -> &[Value] {
        &self.cmds
    }

    fn push(&mut self, cmd: NfCmd<'static>) {
        self.cmds.push(to_value(&cmd));
    }

    pub fn append(&mut self, other: Batch) {
        self.cmds.extend(other.cmds);
    }

    pub fn add_table(&mut self, family: NfFamily, name: &str) {
        self.push(NfCmd::Add(NfListObject::Table(Table {
            family,
            name: Cow::Owned(name.to_string()),
            handle: None,
        })));
    }

    fn chain(family: NfFamily, table: &str, name: &str, hook: Option<Hook>) -> Chain<'static> {
        Chain {
            family,
            table: Cow::Owned(table.to_string()),
            name: Cow::Owned(name.to_string()),
            newname: None,
            handle: None,
            _type: hook.map(|h| h.kind),
            hook: hook.map(|h| h.hook),
            prio: hook.map(|h| h.prio),
            dev: None,
            policy: hook.map(|_| NfChainPolicy::Accept),
        }
    }

    pub fn add_chain(&mut self, family: NfFamily, table: &str, name: &str, hook: Option<Hook>) {
        self.push(NfCmd::Add(NfListObject::Chain(Batch::chain(
            family, table, name, hook,
        ))));
    }

    /// `create chain`: like `add`, but fails when the chain exists.
    pub fn create_chain(&mut self, family: NfFamily, table: &str, name: &str) {
        self.push(NfCmd::Create(NfListObject::Chain(Batch::chain(
            family, table, name, None,
        ))));
    }

    pub fn flush_chain(&mut self, family: NfFamily, table: &str, name: &str) {
        self.push(NfCmd::Flush(FlushObject::Chain(Batch::chain(
            family, table, name, None,
        ))));
    }

    pub fn delete_chain(&mut self, family: NfFamily, table: &str, name: &str) {
        self.push(NfCmd::Delete(NfListObject::Chain(Batch::chain(
            family, table, name, None,
        ))));
    }

    pub fn add_rule(
        &mut self,
        family: NfFamily,
        table: &str,
        chain: &str,
        expr: Vec<Stmt>,
        comment: Option<&str>,
    ) {
        self.push(NfCmd::Add(NfListObject::Rule(Rule {
            family,
            table: Cow::Owned(table.to_string()),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: comment.map(|c| Cow::Owned(c.to_string())),
        })));
    }

    /// `add map <family> <table> <name> { type <key_type> : verdict; }`.
    ///
    /// Raw JSON: the crate's `SetType` has no `verdict`, so a verdict map
    /// can't be described with its `Map` type.
    pub fn add_verdict_map(&mut self, family: NfFamily, table: &str, name: &str, key_type: &Value) {
        self.cmds.push(json!({"add": {"map": {
            "family": family_name(family),
            "table": table,
            "name": name,
            "type": key_type,
            "map": "verdict",
        }}}));
    }

    /// `add element ... { key comment "<comment>" : jump <chain> }`.
    pub fn add_jump_element(
        &mut self,
        family: NfFamily,
        table: &str,
        map: &str,
        key: Expr,
        chain: &str,
        comment: &str,
    ) {
        let keyed = Expression::Named(NamedExpression::Elem(Elem {
            val: Box::new(key),
            timeout: None,
            expires: None,
            comment: Some(Cow::Owned(comment.to_string())),
            counter: None,
        }));
        self.push(NfCmd::Add(NfListObject::Element(Element {
            family,
            table: Cow::Owned(table.to_string()),
            name: Cow::Owned(map.to_string()),
            elem: Cow::Owned(vec![Expression::List(vec![keyed, jump_verdict(chain)])]),
        })));
    }

    /// `delete element ... { key }`, the key as JSON (as listed by nft).
    /// `add element` of an element exactly as listed (`key : jump target`):
    /// a no-op when it is still there, EEXIST (failing the whole batch) when
    /// the key now leads elsewhere. Put before a delete of the same key, it
    /// makes the delete conditional on the element being the one we listed.
    pub fn guard_element(
        &mut self,
        family: NfFamily,
        table: &str,
        map: &str,
        key: &Value,
        target: &str,
        comment: Option<&str>,
    ) {
        let mut elem = serde_json::Map::new();
        elem.insert("val".into(), key.clone());
        if let Some(c) = comment {
            elem.insert("comment".into(), c.into());
        }
        self.cmds.push(json!({"add": {"element": {
            "family": family_name(family),
            "table": table,
            "name": map,
            "elem": [[{"elem": elem}, {"jump": {"target": target}}]],
        }}}));
    }

    pub fn delete_element(&mut self, family: NfFamily, table: &str, map: &str, key: &Value) {
        self.cmds.push(json!({"delete": {"element": {
            "family": family_name(family),
            "table": table,
            "name": map,
            "elem": [key],
        }}}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_written_as_nft_lists_them() {
        let host: IpNetwork = "10.88.0.5/32".parse().unwrap();
        assert_eq!(to_value(&net(host)), json!("10.88.0.5"));
        let subnet: IpNetwork = "10.88.0.5/24".parse().unwrap();
        assert_eq!(
            to_value(&net(subnet)),
            json!({"prefix": {"addr": "10.88.0.0", "len": 24}})
        );
        let v6: IpNetwork = "fd00:0:0:1::5/64".parse().unwrap();
        assert_eq!(
            to_value(&net(v6)),
            json!({"prefix": {"addr": "fd00:0:0:1::", "len": 64}})
        );
    }

    #[test]
    fn statements_serialize_like_nft_json() {
        assert_eq!(to_value(&masquerade()), json!({"masquerade": null}));
        assert_eq!(
            to_value(&dnat("fd00::5".parse().unwrap(), 80)),
            json!({"dnat": {"addr": "fd00::5", "family": "ip6", "port": 80}})
        );
        assert_eq!(
            to_value(&vmap(payload("ip", "saddr"), "m4")),
            json!({"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@m4"}})
        );
        assert_eq!(to_value(&jump("x")), json!({"jump": {"target": "x"}}));
        assert_eq!(
            to_value(&eq(fib_daddr_type(), s("local"))),
            json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
        );
    }

    #[test]
    fn batch_commands() {
        let mut b = Batch::default();
        b.add_table(NfFamily::INet, "t");
        b.add_verdict_map(NfFamily::INet, "t", "m", &json!("ipv4_addr"));
        b.add_jump_element(NfFamily::INet, "t", "m", s("10.0.0.1"), "c", "n/c/e");
        b.delete_element(NfFamily::INet, "t", "m", &json!("10.0.0.1"));
        let j = b.to_json();
        assert_eq!(
            j["nftables"][0],
            json!({"add": {"table": {"family": "inet", "name": "t"}}})
        );
        assert_eq!(j["nftables"][1]["add"]["map"]["map"], "verdict");
        let elem = &j["nftables"][2]["add"]["element"]["elem"][0];
        assert_eq!(elem[0]["elem"]["val"], "10.0.0.1");
        assert_eq!(elem[0]["elem"]["comment"], "n/c/e");
        assert_eq!(elem[1], json!({"jump": {"target": "c"}}));
        assert_eq!(
            j["nftables"][3],
            json!({"delete": {"element": {"family": "inet", "table": "t", "name": "m", "elem": ["10.0.0.1"]}}})
        );
    }
}
