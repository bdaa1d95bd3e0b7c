//! TLS for MLLP with rustls (TLS 1.2 and 1.3, ring): certificates and keys from PEM files,
//! optional client-certificate verification (mutual TLS), reload without dropping
//! connections, and the client certificate's subject as an RFC 4514 string.
//!
//! Errors name the file and the reason, never key material.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// TLS protocol versions offered: 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM file with the server certificate followed by its intermediates.
    pub cert: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file of CA certificates that client certificates must chain to. When set, clients
    /// must present a certificate (mutual TLS) unless `client_cert_optional` is true.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Accept clients without a certificate even though `client_ca` is set (a certificate that
    /// is presented is still verified). Default: false.
    #[serde(default)]
    pub client_cert_optional: bool,
    /// Longest time a TLS handshake may take. Default: 10 s.
    #[serde(default = "default_handshake_timeout", with = "crate::duration")]
    pub handshake_timeout: Duration,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TlsServerConfig {
    /// Settings for a server certificate and key, without client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            client_cert_optional: false,
            handshake_timeout: default_handshake_timeout(),
        }
    }

    /// Reads the files and builds a rustls server configuration.
    pub fn load(&self) -> Result<rustls::ServerConfig> {
        let certs = load_certs(&self.cert)?;
        let key = load_key(&self.key)?;
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| Error::TlsConfig(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let roots = load_roots(ca)?;
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if self.client_cert_optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier.build().map_err(|e| Error::TlsFile {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        builder
            .with_single_cert(certs, key)
            .map_err(|e| Error::TlsFile {
                path: self.key.clone(),
                reason: format!(
                    "unusable with the certificate in {}: {e}",
                    self.cert.display()
                ),
            })
    }
}

/// A server TLS configuration that can be re-read from its files while the server runs.
///
/// Cloning gives another handle to the same configuration. [`reload`](Self::reload) affects
/// new handshakes only; established connections keep the session they negotiated.
#[derive(Debug, Clone)]
pub struct ReloadableTls {
    inner: Arc<ReloadInner>,
}

#[derive(Debug)]
struct ReloadInner {
    settings: TlsServerConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the files named in `settings`.
    pub fn new(settings: TlsServerConfig) -> Result<Self> {
        let current = RwLock::new(Arc::new(settings.load()?));
        Ok(Self {
            inner: Arc::new(ReloadInner { settings, current }),
        })
    }

    /// Re-reads the certificate, key and CA files and uses them for new handshakes. On error
    /// the previous configuration stays in use and the error is returned.
    pub fn reload(&self) -> Result<()> {
        let fresh = Arc::new(self.inner.settings.load()?);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
        tracing::info!(cert = %self.inner.settings.cert.display(), "TLS configuration reloaded");
        Ok(())
    }

    /// The configuration used for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings the files are read from.
    pub fn settings(&self) -> &TlsServerConfig {
        &self.inner.settings
    }

    /// An acceptor for one handshake with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }
}

/// A sender's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// PEM file of CA certificates trusted to sign the server's certificate.
    pub ca: PathBuf,
    /// PEM file with a client certificate chain, for mutual TLS (needs `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against, when it differs from the host
    /// connected to (e.g. connecting by IP address). Default: the configured host.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl TlsClientConfig {
    /// Settings trusting the CAs in `ca`, without a client certificate.
    pub fn new(ca: impl Into<PathBuf>) -> Self {
        Self {
            ca: ca.into(),
            cert: None,
            key: None,
            server_name: None,
        }
    }

    /// Reads the files and builds a rustls client configuration.
    pub fn load(&self) -> Result<rustls::ClientConfig> {
        let roots = load_roots(&self.ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| Error::TlsConfig(e.to_string()))?
            .with_root_certificates(roots);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs = load_certs(cert)?;
                let key_der = load_key(key)?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .map_err(|e| Error::TlsFile {
                        path: key.clone(),
                        reason: format!("unusable with the certificate in {}: {e}", cert.display()),
                    })
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(Error::Config(
                "TLS client certificate and key must be given together".into(),
            )),
        }
    }

    /// The name to verify the server's certificate against.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned())
            .map_err(|e| Error::Config(format!("bad TLS server name {name:?}: {e}")))
    }
}

/// Reads every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let file_error = |reason: String| Error::TlsFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    // The PEM error says what was wrong with the file, never what the key is.
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::TlsFile {
        path: path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| Error::TlsFile {
            path: path.to_owned(),
            reason: format!("bad CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The subject of a DER certificate as an RFC 4514 string, most specific part first
/// (e.g. `CN=lab-system,O=Hospital`), or `None` if the certificate does not parse.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let mut out = String::new();
    for (i, rdn) in cert
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type();
            match x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry()) {
                Ok(name) => out.push_str(name),
                Err(_) => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            if let Ok(value) = attr.as_str() {
                escape_dn_value(value, &mut out);
            } else {
                // Not a plain string type: RFC 4514's hex form.
                out.push('#');
                for b in attr.as_slice() {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }
    Some(out)
}

/// RFC 4514 section 2.4 escaping.
fn escape_dn_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_dn_values() {
        let mut s = String::new();
        escape_dn_value(" Doe, Jane+1 ", &mut s);
        assert_eq!(s, "\\ Doe\\, Jane\\+1\\ ");
        s.clear();
        escape_dn_value("#lab", &mut s);
        assert_eq!(s, "\\#lab");
    }

    #[test]
    fn garbage_is_no_subject() {
        assert_eq!(subject_dn(b"not a certificate"), None);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = TlsServerConfig::new("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
