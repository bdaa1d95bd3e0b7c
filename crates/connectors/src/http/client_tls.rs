//! TLS settings of the HTTP sender: which CAs to trust and an optional client certificate.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[tls]` table of an HTTP sender. Without it, `https://` URLs are checked against the
/// system's trusted CAs.
///
/// ```toml
/// [tls]
/// ca = "/etc/plexus/partner-ca.pem"
/// cert = "/etc/plexus/client.pem"
/// key = "/etc/plexus/client-key.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientTls {
    /// PEM file of the CA certificates to trust *instead of* the system's. Default: the
    /// system's trusted CAs.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM file with a client certificate chain, for mutual TLS (needs `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl HttpClientTls {
    /// Builds the rustls client configuration (TLS 1.3 and 1.2, ring).
    pub fn load(&self) -> Result<rustls::ClientConfig> {
        let roots = match &self.ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in mllp::tls::load_certs(ca)? {
                    roots.add(cert).map_err(|e| {
                        Error::Tls(mllp::Error::TlsFile {
                            path: ca.clone(),
                            reason: format!("bad CA certificate: {e}"),
                        })
                    })?;
                }
                roots
            }
            None => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(mllp::tls::load_certs(cert)?, mllp::tls::load_key(key)?)
                .map_err(|e| {
                    Error::Tls(mllp::Error::TlsFile {
                        path: key.clone(),
                        reason: format!("unusable with the certificate in {}: {e}", cert.display()),
                    })
                }),
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(Error::Config(
                "TLS client certificate and key must be given together".into(),
            )),
        }
    }
}

/// A configuration trusting no CA, for a connector that only speaks plain HTTP.
pub(super) fn without_roots() -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("TLS: {e}")))?
    .with_root_certificates(RootCertStore::empty())
    .with_no_client_auth())
}

/// The system's trusted CAs (`/etc/ssl/certs` and the like, or `SSL_CERT_FILE`).
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(Error::Config(format!(
            "no trusted CA certificates found on this system{detail}; set tls.ca"
        )));
    }
    Ok(roots)
}

/// The pooled HTTP/1.1 client of the senders: TLS from `tls` (or the system roots) for
/// `https` URLs, a connect timeout, idle connections kept a minute.
pub(crate) fn pooled_client(
    tls: Option<&HttpClientTls>,
    https: bool,
    connect_timeout: std::time::Duration,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
> {
    let tls = if https {
        tls.cloned().unwrap_or_default().load()?
    } else {
        // Never used for http://, but the connector type wants one.
        without_roots()?
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_mins(1))
            .build(connector),
    )
}
