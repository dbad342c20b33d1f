//! What `nft -j list table` says about one of our tables: chains, rules (with
//! their comments = owner tags) and verdict-map elements (with the chain they
//! jump to). Only our own tables are ever parsed, so other tools' rules (which
//! may use expressions this parser would not know) never reach it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedChain {
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub prio: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedRule {
    pub chain: String,
    pub comment: Option<String>,
    pub expr: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedElem {
    /// The key without its `{"elem": {...}}` wrapper, as `delete element` wants it.
    pub key: Value,
    pub comment: Option<String>,
    /// The chain a `jump`/`goto` verdict leads to.
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ListedMap {
    pub elems: Vec<ListedElem>,
}

/// One table's contents.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Listing {
    pub chains: BTreeMap<String, ListedChain>,
    /// In listing order (which is rule order within a chain).
    pub rules: Vec<ListedRule>,
    pub maps: BTreeMap<String, ListedMap>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadOutput, "parse nft listing", detail)
}

fn str_field(o: &Value, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The chain a verdict (`{"jump": {"target": "x"}}` / goto) leads to.
fn verdict_target(v: &Value) -> Option<String> {
    ["jump", "goto"]
        .iter()
        .find_map(|k| v.get(*k))
        .and_then(|j| j.get("target"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn parse_elem(item: &Value) -> Result<ListedElem> {
    // A map element is `[key, data]`; the key may be wrapped in
    // `{"elem": {"val": key, "comment": ...}}`.
    let pair = item
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| bad(format!("map element is not a [key, data] pair: {item}")))?;
    let (key, comment) = match pair[0].get("elem") {
        Some(wrapped) => (
            wrapped
                .get("val")
                .cloned()
                .ok_or_else(|| bad(format!("element without val: {item}")))?,
            str_field(wrapped, "comment"),
        ),
        None => (pair[0].clone(), None),
    };
    Ok(ListedElem {
        key,
        comment,
        target: verdict_target(&pair[1]),
    })
}

impl Listing {
    /// Parses `{"nftables": [...]}`, keeping the objects of `family table`.
    pub fn parse(doc: &Value, family: &str, table: &str) -> Result<Listing> {
        let objects = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no \"nftables\" array"))?;
        let ours = |o: &Value| {
            o.get("family").and_then(Value::as_str) == Some(family)
                && o.get("table").and_then(Value::as_str) == Some(table)
        };
        let mut listing = Listing::default();
        for obj in objects {
            if let Some(c) = obj.get("chain").filter(|c| ours(c)) {
                let name = str_field(c, "name").ok_or_else(|| bad("chain without name"))?;
                listing.chains.insert(
                    name,
                    ListedChain {
                        kind: str_field(c, "type"),
                        hook: str_field(c, "hook"),
                        prio: c.get("prio").and_then(Value::as_i64),
                    },
                );
            } else if let Some(r) = obj.get("rule").filter(|r| ours(r)) {
                listing.rules.push(ListedRule {
                    chain: str_field(r, "chain").ok_or_else(|| bad("rule without chain"))?,
                    comment: str_field(r, "comment"),
                    expr: r.get("expr").cloned().unwrap_or(Value::Null),
                });
            } else if let Some(m) = obj.get("map").filter(|m| ours(m)) {
                let name = str_field(m, "name").ok_or_else(|| bad("map without name"))?;
                let elems = match m.get("elem") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => {
                        items.iter().map(parse_elem).collect::<Result<Vec<_>>>()?
                    }
                    Some(other) => return Err(bad(format!("map {name}: elem is {other}"))),
                };
                listing.maps.insert(name, ListedMap { elems });
            }
        }
        Ok(listing)
    }

    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_chains_rules_and_map_elements() {
        let doc = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "t", "handle": 1}},
            {"map": {"family": "inet", "name": "m4", "table": "t", "type": "ipv4_addr", "map": "verdict",
                "elem": [
                    [{"elem": {"val": "10.0.0.5", "comment": "n/c/eth0"}}, {"jump": {"target": "a1"}}],
                    [{"concat": ["tcp", 80]}, {"goto": {"target": "a2"}}]
                ]}},
            {"map": {"family": "inet", "name": "empty", "table": "t", "type": "ipv4_addr", "map": "verdict"}},
            {"chain": {"family": "inet", "table": "t", "name": "post", "type": "nat", "hook": "postrouting", "prio": 100}},
            {"chain": {"family": "inet", "table": "t", "name": "a1"}},
            {"chain": {"family": "inet", "table": "other", "name": "x"}},
            {"rule": {"family": "inet", "table": "t", "chain": "a1", "comment": "n/c/eth0", "expr": [{"masquerade": null}]}},
            {"rule": {"family": "inet", "table": "t", "chain": "post", "expr": [{"accept": null}]}}
        ]});
        let l = Listing::parse(&doc, "inet", "t").unwrap();
        assert_eq!(l.chains.len(), 2);
        assert_eq!(l.chains["post"].hook.as_deref(), Some("postrouting"));
        assert_eq!(l.chains["post"].prio, Some(100));
        assert_eq!(l.chains["a1"].hook, None);
        assert_eq!(l.rules.len(), 2);
        assert_eq!(
            l.rules_of("a1").next().unwrap().comment.as_deref(),
            Some("n/c/eth0")
        );
        let m4 = &l.maps["m4"].elems;
        assert_eq!(m4[0].key, json!("10.0.0.5"));
        assert_eq!(m4[0].comment.as_deref(), Some("n/c/eth0"));
        assert_eq!(m4[0].target.as_deref(), Some("a1"));
        assert_eq!(m4[1].key, json!({"concat": ["tcp", 80]}));
        assert_eq!(m4[1].target.as_deref(), Some("a2"));
        assert!(l.maps["empty"].elems.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Listing::parse(&json!({}), "inet", "t").is_err());
        let doc = json!({"nftables": [
            {"map": {"family": "inet", "table": "t", "name": "m", "elem": [["only-key"]]}}
        ]});
        assert!(Listing::parse(&doc, "inet", "t").is_err());
    }
}
