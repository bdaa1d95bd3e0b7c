//! Settings of the authorization server, and client registrations.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// Settings of the SMART authorization server.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The FHIR base URL (`https://host/fhir`): the `iss` of tokens and the `aud` they are
    /// for; no trailing slash.
    pub issuer: String,
    /// The public URL of the authorization endpoints (`https://host/auth`): endpoints are
    /// `{auth_base}/authorize`, `{auth_base}/token`, …; no trailing slash. The router
    /// serves them at `/auth/…`, so this must end in `/auth`.
    pub auth_base: String,
    /// Lifetime of access tokens (5 to 60 minutes; default 15).
    pub access_token_lifetime: Duration,
    /// Lifetime of authorization codes (default 60 s).
    pub code_lifetime: Duration,
    /// Lifetime of refresh tokens with `offline_access` (default 30 days).
    pub refresh_lifetime: Duration,
    /// Lifetime of an `online_access` session: its refresh tokens do not outlive it
    /// (default 8 hours).
    pub online_session_lifetime: Duration,
    /// Lifetime of EHR launch contexts (default 5 minutes).
    pub launch_lifetime: Duration,
    /// Time a user has to finish the authorization pages (default 10 minutes).
    pub login_lifetime: Duration,
    /// How long a client's JWK Set fetched from its `jwks_uri` is used (default 5 minutes).
    pub jwks_cache_ttl: Duration,
    /// The signing key (PEM: PKCS#8 P-384 for ES384, or RSA for RS384). `None`: a P-384
    /// key generated once into `data_dir/auth-signing-key.pem` (mode 0600).
    pub signing_key: Option<PathBuf>,
    /// Where a generated key is kept.
    pub data_dir: PathBuf,
}

impl AuthConfig {
    /// Defaults for tokens of the FHIR server at `issuer`, endpoints at `auth_base`.
    pub fn new(
        issuer: impl Into<String>,
        auth_base: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            auth_base: auth_base.into().trim_end_matches('/').to_owned(),
            access_token_lifetime: Duration::from_mins(15),
            code_lifetime: Duration::from_mins(1),
            refresh_lifetime: Duration::from_hours(24 * 30),
            online_session_lifetime: Duration::from_hours(8),
            launch_lifetime: Duration::from_mins(5),
            login_lifetime: Duration::from_mins(10),
            jwks_cache_ttl: Duration::from_mins(5),
            signing_key: None,
            data_dir: data_dir.into(),
        }
    }

    /// The token endpoint URL (the `aud` of client assertions).
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.auth_base)
    }

    pub(crate) fn check(&self) -> Result<(), AuthError> {
        let minutes = self.access_token_lifetime.as_secs() / 60;
        if !(5..=60).contains(&minutes) || !self.access_token_lifetime.as_secs().is_multiple_of(60)
        {
            return Err(AuthError::Config(
                "access_token_lifetime must be whole minutes from 5 to 60".into(),
            ));
        }
        if self.code_lifetime.is_zero() || self.code_lifetime > Duration::from_mins(10) {
            return Err(AuthError::Config(
                "code_lifetime must be above 0 and at most 10 minutes".into(),
            ));
        }
        for (name, url) in [("issuer", &self.issuer), ("auth_base", &self.auth_base)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(AuthError::Config(format!("{name} must be an http(s) URL")));
            }
        }
        if !self.auth_base.ends_with("/auth") {
            return Err(AuthError::Config(
                "auth_base must be the public URL of /auth (ending in /auth)".into(),
            ));
        }
        Ok(())
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// No credentials (a browser or native app); PKCE protects its codes.
    Public,
    /// A client secret (`client_secret_basic` or `client_secret_post`).
    ConfidentialSymmetric,
    /// A signed JWT assertion (`private_key_jwt`), keys from `jwks` or `jwks_uri`; also
    /// backend services (`client_credentials`).
    ConfidentialAsymmetric,
}

/// A client registration, as given to [`crate::AuthServer::register_client`] and kept (with
/// the secret's hash) in the store's client record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The client id.
    pub client_id: String,
    /// A display name for the consent page.
    #[serde(default)]
    pub name: Option<String>,
    /// How it authenticates.
    pub kind: ClientKind,
    /// The redirect URIs, matched exactly (none for a backend service).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted (space-separated; e.g. `launch/patient openid fhirUser
    /// offline_access patient/*.rs`, or `system/*.rs`).
    pub scopes: String,
    /// Its JWK Set, inline (asymmetric clients).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Or the URL of its JWK Set (asymmetric clients).
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// A stored client: the registration and, for symmetric clients, the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredClient {
    #[serde(flatten)]
    pub registration: ClientRegistration,
    #[serde(default)]
    pub secret_sha256: Option<String>,
}
