//! `CNI_RS_NFT_EXEC=1` sends every change through the `nft` binary: ADD,
//! CHECK and DEL still work and nothing goes over netlink.
//!
//! Its own test binary, with one test: it sets a process-wide variable.

mod common;

use cni_harness::Sandbox;
use common::*;
use nft::masq::{self, MasqRule};
use nft::Attachment;

#[test]
fn exec_only_mode_adds_checks_and_deletes_through_nft() {
    std::env::set_var("CNI_RS_NFT_EXEC", "1");
    let sb = Sandbox::new("nft-exec-only");
    let rules = |ip: &str| {
        [MasqRule {
            ip: ip.parse().unwrap(),
            subnet: "10.88.0.0/24".parse().unwrap(),
        }]
    };
    let (a, b) = (
        Attachment {
            network: "n",
            container_id: "a",
            ifname: "eth0",
        },
        Attachment {
            network: "n",
            container_id: "b",
            ifname: "eth0",
        },
    );
    let before = nft::netlink_batches();
    // The second ADD is the one that would take the netlink fast path.
    in_ns(sb.host(), || masq::add(&a, &rules("10.88.0.5"))).expect("add a");
    in_ns(sb.host(), || masq::add(&b, &rules("10.88.0.6"))).expect("add b");
    in_ns(sb.host(), || masq::check(&b, &rules("10.88.0.6"))).expect("check b");
    in_ns(sb.host(), || masq::del(&b)).expect("del b");
    let err = in_ns(sb.host(), || masq::check(&b, &rules("10.88.0.6"))).unwrap_err();
    assert!(err.is_mismatch(), "{err}");
    in_ns(sb.host(), || masq::check(&a, &rules("10.88.0.5"))).expect("a intact");
    assert_eq!(nft::netlink_batches(), before, "nothing went over netlink");
    let doc = list_table(sb.host(), "inet", masq::TABLE).expect("table");
    assert_eq!(map_elems(&doc, "masq4").len(), 1, "{doc}");
}
