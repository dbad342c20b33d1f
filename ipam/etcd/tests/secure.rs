//! etcd behind TLS with client certificates, and etcd with username and
//! password authentication: each a real etcd started that way.

mod common;

use cni_harness::certs::TestCerts;
use cni_harness::EtcdServer;
use common::*;
use serde_json::json;

#[test]
fn tls_with_client_certificates() {
    let certs = TestCerts::generate();
    let etcd = EtcdServer::start_tls(certs.etcd_server_tls());
    let ep = etcd.endpoints();
    assert!(ep[0].starts_with("https://"), "{ep:?}");
    let env = Env::new("eitls");
    let with_tls = |cert: &str, key: &str| {
        let mut c = conf(&ep, "node-a", json!({}));
        c["ipam"]["etcd"]["tls"] = json!({
            "ca": path_str(&certs.path("ca.pem")),
            "cert": path_str(&certs.path(cert)),
            "key": path_str(&certs.path(key)),
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
    no_cert["ipam"]["etcd"]["tls"] = json!({"ca": path_str(&certs.path("ca.pem"))});
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
