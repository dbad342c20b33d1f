//! etcd behind TLS with client certificates, and etcd with username and
//! password authentication: each a real etcd started that way.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use cni_harness::{EtcdServer, ServerTls};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use serde_json::json;

/// A CA, a server certificate for 127.0.0.1, a client certificate, and a
/// second CA's client certificate that etcd must refuse. Written as PEM.
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

#[test]
fn tls_with_client_certificates() {
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
    let env = Env::new("eitls");
    let with_tls = |cert: &str, key: &str| {
        let mut c = conf(&ep, "node-a", json!({}));
        c["ipam"]["etcd"]["tls"] = json!({
            "ca": path_str(&d.join("ca.pem")),
            "cert": path_str(&d.join(cert)),
            "key": path_str(&d.join(key)),
        });
        c["ipam"]["etcd"]["timeoutMs"] = json!(2000);
        c
    };
    let good = with_tls("client.pem", "client-key.pem");
    let r = env.add(&good, "c1").result();
    assert_eq!(addrs(&r).len(), 1);
    assert!(env.del(&good, "c1").success());
    // A client certificate from another CA, or none at all: refused.
    env.add(&with_tls("rogue.pem", "rogue-key.pem"), "c2")
        .expect_error(11);
    let mut no_cert = good.clone();
    no_cert["ipam"]["etcd"]["tls"] = json!({"ca": path_str(&d.join("ca.pem"))});
    env.add(&no_cert, "c3").expect_error(11);
    // Plain HTTP to a TLS port: refused too.
    let mut plain = conf(&[ep[0].replace("https://", "http://")], "node-a", json!({}));
    plain["ipam"]["etcd"]["timeoutMs"] = json!(2000);
    env.add(&plain, "c4").expect_error(11);
}

#[test]
fn username_and_password() {
    let etcd = EtcdServer::start();
    let ep = etcd.endpoints();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = etcd_client::Client::connect(&ep, None)
            .await
            .expect("connect");
        c.user_add("root", "rootpw", None).await.expect("user root");
        c.user_grant_role("root", "root").await.expect("role root");
        c.auth_enable().await.expect("auth enable");
    });
    let env = Env::new("eiauth");
    let with_user = |user: Option<&str>, password: Option<&str>| {
        let mut c = conf(&ep, "node-a", json!({}));
        if let Some(u) = user {
            c["ipam"]["etcd"]["username"] = json!(u);
        }
        if let Some(p) = password {
            c["ipam"]["etcd"]["password"] = json!(p);
        }
        c
    };
    let good = with_user(Some("root"), Some("rootpw"));
    assert_eq!(addrs(&env.add(&good, "c1").result()).len(), 1);
    assert!(env.del(&good, "c1").success());
    for bad in [
        with_user(Some("root"), Some("wrong")),
        with_user(None, None),
    ] {
        let e = env.add(&bad, "c2");
        let err = e.expect_error(7);
        assert!(
            err["msg"].as_str().unwrap().contains("etcd refused"),
            "{err}"
        );
    }
}
