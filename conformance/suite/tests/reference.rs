//! The whole suite against the reference Go plugins (Debian package
//! containernetworking-plugins, /usr/lib/cni, spec up to 1.0.0): the checks
//! they fail are exactly the reference bugs the README lists, and the
//! 1.1.0-only checks (STATUS, GC, 1.1.0 results) are n/a. A change on either
//! side shows up here.

use std::path::Path;

use cni_conformance::report;
use cni_conformance::{run, Options, Status};

const REFERENCE: &str = "/usr/lib/cni";

/// The checks the reference plugins fail; conformance/README.md explains each.
const REFERENCE_FAILURES: &[&str] = &[
    "CFG-008", "VER-002", "VER-020", "VER-021", "VER-022", "DEL-015", "DEL-019", "CHK-014",
    "ERR-002", "ERR-004", "ERR-007", "ERR-009", "LIST-013",
];

#[test]
fn reference_plugins_fail_exactly_the_known_reference_bugs() {
    for p in ["loopback", "bridge", "host-local", "portmap"] {
        assert!(
            Path::new(REFERENCE).join(p).is_file(),
            "{REFERENCE}/{p} is missing: install the Debian package containernetworking-plugins \
             (apt-get install containernetworking-plugins)"
        );
    }
    cni_harness::bins::bin("cnitool");
    let report = run(&Options::new(REFERENCE)).expect("the suite runs");
    let table = report::table(&report);
    let mut failed = report.ids(Status::Fail);
    failed.sort();
    let mut expected = REFERENCE_FAILURES.to_vec();
    expected.sort();
    assert_eq!(
        failed, expected,
        "the reference's failures changed\n{table}"
    );
    for o in &report.outcomes {
        // ERR-011 judges only a plugin that refuses "vlan" with code 2; the
        // reference supports VLANs (or fails with 999 where the kernel lacks
        // bridge VLAN filtering).
        if o.status == Status::NotApplicable && o.id != "ERR-011" {
            assert!(
                o.detail.contains("1.1.0"),
                "{} is n/a for another reason than the reference's missing spec 1.1.0: {}\n{table}",
                o.id,
                o.detail
            );
        }
    }
    assert!(report.count(Status::Pass) > 100, "{table}");
}
