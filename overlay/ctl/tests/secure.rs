//! The global TLS and user options against an etcd started that way.

mod common;

use std::time::Duration;

use cni_harness::certs::TestCerts;
use cni_harness::EtcdServer;
use common::*;

fn timed(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> CtlOutput {
    let out = ctl_with(endpoints, args, stdin);
    assert!(out.took < Duration::from_secs(20), "{args:?}: hung");
    out
}

#[test]
fn tls_with_a_client_certificate() {
    let certs = TestCerts::generate();
    let etcd = EtcdServer::start_tls(certs.etcd_server_tls());
    let ep = etcd.endpoints();
    assert!(ep[0].starts_with("https://"), "{ep:?}");
    let path = |name: &str| certs.path(name).to_string_lossy().into_owned();
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client-key.pem"));
    let good = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    let set = timed(
        &ep,
        &[&good[..], &["config", "set", "-"]].concat(),
        Some(r#"{"network": "10.244.0.0/16"}"#),
    );
    set.ok();
    let got = timed(
        &ep,
        &[&good[..], &["config", "get", "--json"]].concat(),
        None,
    );
    assert_eq!(got.json()["network"], "10.244.0.0/16");

    // Another CA's client certificate, or none: etcd refuses.
    let (rogue, rogue_key) = (path("rogue.pem"), path("rogue-key.pem"));
    let rogue_args = ["--cacert", &ca, "--cert", &rogue, "--key", &rogue_key];
    for args in [&rogue_args[..], &["--cacert", &ca]] {
        let args = [args, &["config", "get", "--timeout-ms", "2000"]].concat();
        let out = timed(&ep, &args, None);
        assert!(out.failed().contains(&ep[0]), "{args:?}: {out:?}");
    }
    // A CA file that cannot be read: exit 1, naming it.
    let missing = path("missing.pem");
    let out = timed(&ep, &["--cacert", &missing, "nodes"], None);
    assert!(out.failed().contains("missing.pem"), "{out:?}");
}

#[test]
fn user_and_password() {
    let etcd = EtcdServer::start();
    let ep = etcd.endpoints();
    rt(async {
        let mut c = etcd_client::Client::connect(&ep, None)
            .await
            .expect("connect");
        c.user_add("root", "root:pw", None)
            .await
            .expect("user root");
        c.user_grant_role("root", "root").await.expect("role root");
        c.auth_enable().await.expect("auth enable");
    });
    let set = timed(
        &ep,
        &["--user", "root:root:pw", "config", "set", "-"],
        Some(r#"{"network": "10.244.0.0/16"}"#),
    );
    set.ok();
    let got = timed(&ep, &["--user", "root:root:pw", "nodes", "--json"], None);
    assert_eq!(got.json(), serde_json::json!([]));
    for args in [
        &["--user", "root:wrong", "config", "get"][..],
        &["config", "get"],
    ] {
        let out = timed(&ep, &[args, &["--timeout-ms", "2000"]].concat(), None);
        out.failed();
    }
}
