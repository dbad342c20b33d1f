//! A throwaway PKI for TLS tests, as PEM files in a temporary directory
//! (removed on drop): a CA, a server certificate for 127.0.0.1 and a client
//! certificate it signed, and a client certificate of another CA ("rogue")
//! that a server trusting only the first CA must refuse.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};

use crate::etcd::ServerTls;

/// The PEM files, by name: `ca.pem`; `server.pem` and `server-key.pem`;
/// `client.pem` and `client-key.pem`; `rogue.pem` and `rogue-key.pem`.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// Generates every certificate and key anew (fresh keys per test).
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        write_all(dir.path());
        TestCerts { dir }
    }

    /// The path of one of the files (see [`TestCerts`]).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// An etcd serving `server.pem` and requiring a client certificate
    /// signed by `ca.pem`.
    pub fn etcd_server_tls(&self) -> ServerTls {
        ServerTls {
            ca: self.path("ca.pem"),
            cert: self.path("server.pem"),
            key: self.path("server-key.pem"),
            client_cert_auth: true,
        }
    }
}

type Authority = (Certificate, KeyPair);

fn new_ca() -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("ca cert");
    (cert, key)
}

/// A certificate for localhost and 127.0.0.1 that `ca` signed, for `usage`;
/// the certificate and its key as PEM.
fn leaf(usage: ExtendedKeyUsagePurpose, ca: &Authority) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.0, &ca.1).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write_all(dir: &Path) {
    let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).expect("write pem");
    let ca = new_ca();
    write("ca.pem", ca.0.pem());
    let (cert, key) = leaf(ExtendedKeyUsagePurpose::ServerAuth, &ca);
    write("server.pem", cert);
    write("server-key.pem", key);
    let (cert, key) = leaf(ExtendedKeyUsagePurpose::ClientAuth, &ca);
    write("client.pem", cert);
    write("client-key.pem", key);
    let rogue = new_ca();
    let (cert, key) = leaf(ExtendedKeyUsagePurpose::ClientAuth, &rogue);
    write("rogue.pem", cert);
    write("rogue-key.pem", key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_pem_and_goes_away_with_the_certs() {
        let certs = TestCerts::generate();
        for (file, kind) in [
            ("ca.pem", "CERTIFICATE"),
            ("server.pem", "CERTIFICATE"),
            ("server-key.pem", "PRIVATE KEY"),
            ("client.pem", "CERTIFICATE"),
            ("client-key.pem", "PRIVATE KEY"),
            ("rogue.pem", "CERTIFICATE"),
            ("rogue-key.pem", "PRIVATE KEY"),
        ] {
            let pem = std::fs::read_to_string(certs.path(file)).expect(file);
            assert!(
                pem.starts_with(&format!("-----BEGIN {kind}-----")),
                "{file}: {pem}"
            );
        }
        let tls = certs.etcd_server_tls();
        assert!(tls.client_cert_auth && tls.ca.is_file());
        let dir = certs.path("");
        drop(certs);
        assert!(!dir.exists(), "{}", dir.display());
    }
}
