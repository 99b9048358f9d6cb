//! Test certificates: a private CA and a server certificate it issued, as a self-hoster with a
//! team CA has them. For tests of `wss://` here and in the clients (feature `test-pki`); the
//! server itself never generates certificates.
use std::path::{Path, PathBuf};

/// A private CA and a server certificate it issued for `localhost` and 127.0.0.1, as PEM files
/// in `dir`: what a self-hoster with a team CA has.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    pub fn new(dir: &Path, name: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("test certificate");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("test certificate");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("test certificate");
        let key = KeyPair::generate().expect("test certificate");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("test certificate");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("test certificate");
        let pki = TestPki {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.ca, ca.pem()).expect("test certificate");
        std::fs::write(&pki.cert, cert.pem()).expect("test certificate");
        std::fs::write(&pki.key, key.serialize_pem()).expect("test certificate");
        pki
    }
}
