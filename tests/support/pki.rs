//! A test certificate authority (rcgen): a CA and the server and client certificates it
//! signs, written as PEM files. Shared by the test crates through
//! `#[path = "../../../../tests/support/pki.rs"] mod pki;`.

use std::path::{Path, PathBuf};

/// A CA and certificates it signs, written as PEM files.
pub struct Pki {
    pub ca_cert: PathBuf,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_cert, cert.pem()).unwrap();
        Self {
            ca_cert,
            ca: rcgen::Issuer::new(params, key),
            dir: dir.to_owned(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1: (cert path, key path).
    pub fn server(&self, file: &str) -> (PathBuf, PathBuf) {
        self.leaf(file, &[], true)
    }

    /// A client certificate with subject O=`org`, CN=`cn`.
    pub fn client(&self, file: &str, cn: &str, org: &str) -> (PathBuf, PathBuf) {
        self.leaf(
            file,
            &[
                (rcgen::DnType::OrganizationName, org),
                (rcgen::DnType::CommonName, cn),
            ],
            false,
        )
    }

    fn leaf(&self, file: &str, dn: &[(rcgen::DnType, &str)], server: bool) -> (PathBuf, PathBuf) {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
        let names = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names).unwrap();
        // The default name holds a CN; start empty so the subject has exactly `dn`, in order.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in dn {
            params.distinguished_name.push(ty.clone(), *value);
        }
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}
