//! Fetching the JWK Sets of backend-service clients registered with a `jwks_uri`, with a
//! cache: a set is fetched again after its TTL, or at once (at most every few seconds) when
//! an assertion names a `kid` the cached set does not have (the client rotated its keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::jwt::{PublicKey, keys_of_set};

/// The largest JWK Set read (bytes).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The least time between two fetches of one URL.
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// The connector of [`https_client`].
pub type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Fetches and caches JWK Sets.
pub struct JwksCache {
    client: Client<Https, Empty<Bytes>>,
    ttl: Duration,
    timeout: Duration,
    entries: Mutex<HashMap<String, (Instant, Vec<PublicKey>)>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: `https`, or `http` to the loopback interface (tests,
/// a sidecar).
pub fn allowed_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => {
            matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
        }
        _ => false,
    }
}

/// An HTTP/1.1 client for `http` and `https` URLs, trusting the system's CAs (a warning
/// naming `purpose` when there are none), with a connect timeout. Also used for the admin
/// API's OIDC requests.
pub fn https_client<B>(
    timeout: Duration,
    purpose: &str,
) -> Result<Client<Https, B>, crate::AuthError>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no trusted CA certificates found: https {purpose} will fail");
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| crate::AuthError::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl JwksCache {
    /// A cache keeping sets for `ttl`, with the system's trusted CAs for https.
    pub fn new(ttl: Duration, timeout: Duration) -> Result<Self, crate::AuthError> {
        Ok(Self {
            client: https_client(timeout, "jwks_uri fetches")?,
            ttl,
            timeout,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The keys at `url`: from the cache if fresh (and holding `kid`, when given), else
    /// fetched. A failed fetch gives the stale keys if any, else an error text.
    pub async fn keys(&self, url: &str, kid: Option<&str>) -> Result<Vec<PublicKey>, String> {
        if !allowed_url(url) {
            return Err("the jwks_uri must be https".into());
        }
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(url)
            .cloned();
        if let Some((at, keys)) = &cached {
            let fresh = at.elapsed() < self.ttl;
            let has_kid = kid.is_none_or(|k| keys.iter().any(|key| key.kid() == Some(k)));
            if fresh && (has_kid || at.elapsed() < MIN_REFETCH) {
                return Ok(keys.clone());
            }
        }
        match self.fetch(url).await {
            Ok(keys) => {
                self.entries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(url.to_owned(), (Instant::now(), keys.clone()));
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching a client's jwks_uri failed");
                cached.map(|(_, k)| k).ok_or(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<PublicKey>, String> {
        let uri: hyper::Uri = url.parse().map_err(|_| "bad jwks_uri".to_owned())?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let work = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("jwks_uri request failed: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("jwks_uri answered {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("jwks_uri body: {e}"))?
                .to_bytes();
            let set: serde_json::Value =
                serde_json::from_slice(&body).map_err(|_| "jwks_uri is not JSON".to_owned())?;
            Ok(keys_of_set(&set))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| "jwks_uri timed out".to_owned())?
    }
}
