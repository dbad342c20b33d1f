//! The whole suite against this workspace's plugins: every applicable check
//! must pass (apart from the bugs listed below, reported and not yet fixed
//! outside conformance/), nothing may be n/a, and there are at least 60 checks.

use cni_conformance::report;
use cni_conformance::{run, Options, Status};

/// Checks our plugins fail today because of bugs in code outside
/// conformance/. Each entry names the bug; remove it once fixed (the test
/// fails when a listed check starts passing, so the list stays true).
const KNOWN_BUGS_IN_OURS: &[(&str, &str)] = &[];

#[test]
fn our_plugins_pass_every_applicable_check() {
    for bin in ["loopback", "bridge", "host-local", "portmap", "cnitool"] {
        // Panics with how to build it when missing.
        cni_harness::bins::bin(bin);
    }
    let report = run(&Options::new(cni_harness::bins::plugin_dir())).expect("the suite runs");
    let table = report::table(&report);
    assert!(
        report.outcomes.len() >= 60,
        "only {} checks\n{table}",
        report.outcomes.len()
    );
    let known: Vec<&str> = KNOWN_BUGS_IN_OURS.iter().map(|(id, _)| *id).collect();
    let mut failed = report.ids(Status::Fail);
    failed.sort();
    let mut expected = known.clone();
    expected.sort();
    assert_eq!(
        failed, expected,
        "failing checks differ from the known bugs\n{table}"
    );
    assert!(
        report.ids(Status::NotApplicable).is_empty(),
        "every check applies to our plugins (all spec versions, all commands)\n{table}"
    );
}
