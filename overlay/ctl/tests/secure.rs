//! The global TLS and user options against an etcd started that way.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use cni_harness::{EtcdServer, ServerTls};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

/// A CA, a server certificate for 127.0.0.1 and a client certificate it
/// signed, and a client certificate of another CA. Written as PEM.
fn make_certs(dir: &Path) {
    let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).expect("write pem");
    let make_ca = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        let cert = p.self_signed(&key).expect("ca cert");
        (cert, key)
    };
    let leaf = |usage: ExtendedKeyUsagePurpose, ca: &(rcgen::Certificate, KeyPair)| {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &ca.0, &ca.1).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let ca = make_ca();
    write("ca.pem", ca.0.pem());
    let (c, k) = leaf(ExtendedKeyUsagePurpose::ServerAuth, &ca);
    write("server.pem", c);
    write("server-key.pem", k);
    let (c, k) = leaf(ExtendedKeyUsagePurpose::ClientAuth, &ca);
    write("client.pem", c);
    write("client-key.pem", k);
    let rogue = make_ca();
    let (c, k) = leaf(ExtendedKeyUsagePurpose::ClientAuth, &rogue);
    write("rogue.pem", c);
    write("rogue-key.pem", k);
}

fn timed(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Ctl {
    let t = Instant::now();
    let out = ctl_with(endpoints, args, stdin);
    assert!(t.elapsed() < Duration::from_secs(20), "{args:?}: hung");
    out
}

#[test]
fn tls_with_a_client_certificate() {
    let certs = tempfile::tempdir().expect("temp dir");
    let d = certs.path();
    make_certs(d);
    let etcd = EtcdServer::start_tls(ServerTls {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server-key.pem"),
        client_cert_auth: true,
    });
    let ep = etcd.endpoints();
    assert!(ep[0].starts_with("https://"), "{ep:?}");
    let path = |name: &str| d.join(name).to_string_lossy().into_owned();
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
