//! Sysctls written and read inside a namespace; the machine's own values
//! must not move.

mod common;

use cni_harness::{run_ok, Sandbox};
use netlink::{ErrorKind, Netns, Sysctl};

/// The machine's own value (this test process runs in the machine's netns and
/// only reads it).
fn machine(key_path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key_path}"))
        .expect("read machine sysctl")
        .trim()
        .to_string()
}

/// The value as seen by `cat` run inside the sandbox namespace.
fn seen_inside(sb: &Sandbox, key_path: &str) -> String {
    run_ok(sb.host_command("cat").arg(format!("/proc/sys/{key_path}")))
        .trim()
        .to_string()
}

#[test]
fn write_and_read_inside_a_netns_only() {
    let sb = Sandbox::new("nl-sysctl");
    let ns = Netns::open(sb.host().path()).expect("open");
    let fwd = "net/ipv4/ip_forward";
    let lo6 = "net/ipv6/conf/lo/disable_ipv6";
    let rpf = "net/ipv4/conf/all/rp_filter";
    let machine_before = [machine(fwd), machine(lo6), machine(rpf)];

    // Dotted key: flip ip_forward to whatever the machine does not have, so a
    // leak into the machine's namespace would show.
    let before = Sysctl::read(&ns, "net.ipv4.ip_forward").expect("read");
    let want = if machine_before[0] == "1" { "0" } else { "1" };
    Sysctl::write(&ns, "net.ipv4.ip_forward", want).expect("write");
    assert_eq!(
        Sysctl::read(&ns, "net.ipv4.ip_forward").expect("read"),
        want
    );
    assert_eq!(seen_inside(&sb, fwd), want, "cat inside the netns agrees");
    assert!(before == "0" || before == "1", "{before:?}");

    // Slash keys (interface names may contain dots) and several at once.
    let lo_want = if machine_before[1] == "1" { "0" } else { "1" };
    let rp_want = if machine_before[2] == "2" { "1" } else { "2" };
    Sysctl::write_all(
        &ns,
        &[(lo6, lo_want), ("net.ipv4.conf.all.rp_filter", rp_want)],
    )
    .expect("write_all");
    assert_eq!(Sysctl::read(&ns, lo6).expect("read"), lo_want);
    assert_eq!(seen_inside(&sb, lo6), lo_want);
    assert_eq!(seen_inside(&sb, rpf), rp_want);

    assert_eq!(
        [machine(fwd), machine(lo6), machine(rpf)],
        machine_before,
        "the machine's own sysctls did not change"
    );
}

#[test]
fn missing_and_invalid_keys() {
    let sb = Sandbox::new("nl-sysctl2");
    let ns = Netns::open(sb.host().path()).expect("open");

    // An interface that exists only elsewhere: its key is missing here.
    let err = Sysctl::read(&ns, "net/ipv6/conf/nosuchdev0/disable_ipv6").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = Sysctl::write(&ns, "net.ipv4.conf.nosuchdev0.forwarding", "1").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("nosuchdev0"), "{err}");
    assert!(
        err.to_string().contains(sb.host().name()),
        "names the netns: {err}"
    );

    let err = Sysctl::write(&ns, "net/../../etc/hostname", "x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    // A value the kernel refuses.
    let err = Sysctl::write(&ns, "net.ipv4.ip_forward", "not-a-number").unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
}

/// `ensure_here` acts on the calling thread's own namespace: run on a thread
/// that joined the sandbox, it writes there once and then sees nothing to do.
#[test]
fn ensure_here_writes_only_when_the_value_differs() {
    let sb = Sandbox::new("nl-ensure");
    let ns = Netns::open(sb.host().path()).expect("open");
    let fwd = "net/ipv4/ip_forward";
    let before = machine(fwd);
    let target = if seen_inside(&sb, fwd) == "1" {
        "0"
    } else {
        "1"
    };
    let wrote = ns
        .run_in(|| Sysctl::ensure_here(fwd, target))
        .expect("enter")
        .expect("ensure");
    assert!(wrote, "first call writes");
    assert_eq!(seen_inside(&sb, fwd), target);
    let again = ns
        .run_in(|| Sysctl::ensure_here(fwd, target))
        .expect("enter")
        .expect("ensure");
    assert!(!again, "second call finds the value in place");
    let read = ns
        .run_in(|| Sysctl::read_here(fwd))
        .expect("enter")
        .expect("read");
    assert_eq!(read, target);
    assert_eq!(machine(fwd), before, "the machine's own value did not move");
}
