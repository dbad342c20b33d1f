//! The writes are guarded by what was read: a config write planned from a
//! read is refused by etcd when another admin changed the config, or a
//! node leased a subnet, since; a node removal is refused when the node's
//! record changed since. Refused writes change nothing.

mod common;

use common::*;
use overlay_core::OverlayConfig;
use overlayctl::connect::block_on;
use overlayctl::store::{self, SetOutcome, State};

fn cfg(json: &str) -> OverlayConfig {
    OverlayConfig::parse(json.as_bytes()).unwrap()
}

fn read(env: &Env) -> State {
    block_on(async { store::read_state(&env.connect().await?, &keys()).await }).unwrap()
}

/// Sends a config write planned from `state`: whether etcd applied it.
fn write(env: &Env, state: &State, new: &OverlayConfig) -> bool {
    block_on(async { store::write_config(&env.connect().await?, &keys(), state, new).await })
        .unwrap()
        .0
}

#[test]
fn a_config_write_from_a_stale_read_is_refused() {
    let env = Env::new();
    // Absent when read; another admin creates it meanwhile.
    let stale = read(&env);
    assert!(stale.config.is_none());
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/16"}"#)
        .ok();
    let before = env.snapshot();
    assert!(!write(&env, &stale, &cfg(r#"{"network": "10.96.0.0/12"}"#)));
    assert_eq!(env.snapshot(), before);

    // Present when read; another admin changes it meanwhile.
    let stale = read(&env);
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/15"}"#)
        .ok();
    let before = env.snapshot();
    assert!(!write(
        &env,
        &stale,
        &cfg(r#"{"network": "10.244.0.0/14"}"#)
    ));
    assert_eq!(env.snapshot(), before);
    assert_eq!(
        env.config().unwrap()["network"],
        serde_json::json!("10.244.0.0/15")
    );

    // Read afresh it goes through.
    let fresh = read(&env);
    assert!(write(&env, &fresh, &cfg(r#"{"network": "10.244.0.0/14"}"#)));
    assert_eq!(
        env.config().unwrap()["network"],
        serde_json::json!("10.244.0.0/14")
    );
}

#[test]
fn a_subnet_leased_after_the_read_is_judged_before_the_write() {
    let env = Env::new();
    env.ctl_stdin(&["config", "set", "-"], r#"{"network": "10.244.0.0/16"}"#)
        .ok();
    let shrink = cfg(r#"{"network": "10.244.0.0/17"}"#);
    // No lease outside /17 when read: the plan is to write.
    let stale = read(&env);
    assert_eq!(
        store::plan_config_set(&stale, &shrink, false),
        store::Plan::Write { forced: vec![] }
    );
    // Then a node leases 10.244.200.0/24: the planned write is refused.
    env.put_node(
        &record(
            "late",
            "10.244.200.0/24",
            "192.168.1.9",
            "0a:58:0a:f4:c8:00",
            unix_now(),
        ),
        600,
    );
    let before = env.snapshot();
    assert!(!write(&env, &stale, &shrink));
    assert_eq!(env.snapshot(), before);
    // set_config reads again and refuses, naming the new lease.
    let e =
        block_on(async { store::set_config(&env.connect().await?, &keys(), &shrink, false).await })
            .unwrap_err();
    assert!(e.details.contains("10.244.200.0/24"), "{e:?}");
    assert_eq!(env.snapshot(), before);
    // Forced, it is written.
    let out =
        block_on(async { store::set_config(&env.connect().await?, &keys(), &shrink, true).await })
            .unwrap();
    assert!(
        matches!(&out, SetOutcome::Written { forced, .. } if forced.len() == 1),
        "{out:?}"
    );
}

#[test]
fn a_node_removal_from_a_stale_read_is_refused() {
    let env = Env::new();
    let r = record(
        "node-a",
        "10.244.1.0/24",
        "192.168.1.10",
        "0a:58:0a:f4:01:00",
        5,
    );
    env.put_node(&r, 600);
    let stale = read(&env);
    assert_eq!(stale.node_entries("node-a").len(), 1);
    // overlayd on node-a registers again (a new lease, the same key).
    env.put_node(&r, 600);
    let before = env.snapshot();
    let removed = block_on(async {
        store::remove_entries(&env.connect().await?, &stale.node_entries("node-a")).await
    })
    .unwrap();
    assert!(!removed);
    assert_eq!(env.snapshot(), before);
    // Read afresh it goes through.
    let fresh = read(&env);
    let removed = block_on(async {
        store::remove_entries(&env.connect().await?, &fresh.node_entries("node-a")).await
    })
    .unwrap();
    assert!(removed);
    assert!(env.snapshot().is_empty());
}
