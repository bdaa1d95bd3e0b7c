//! OpenID Connect sign-in to the admin API against an external identity provider
//! (`[security.oidc]`).
//!
//! `GET /api/oidc/login` redirects the browser to the provider's authorization endpoint
//! (authorization code flow, `state`, `nonce`, PKCE S256); `GET /api/oidc/callback`
//! exchanges the code at the provider's token endpoint, verifies the ID token (signature
//! with the provider's JWK Set, `iss`, `aud`, `exp`, `nonce`) and answers a session API
//! token of the Plexus user its `username_claim` names, like `POST /api/login`. Roles come
//! from the Plexus user, never from the provider.
//!
//! The provider's metadata is read from `{issuer}/.well-known/openid-configuration` at first
//! use and kept for an hour. Pending sign-ins (state, nonce, PKCE verifier) live in this
//! process's memory for ten minutes and are taken once: the login and the callback must
//! reach the same node (sticky sessions behind a load balancer).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auth::jwks_fetch::{Https, JwksCache, allowed_url, https_client};
use auth::jwt::{Alg, Unverified};
use auth::secret::{digest, random_token};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use serde::Deserialize;
use serde_json::Value;

/// `[security.oidc]`: sign-in with an external OpenID Connect provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (`https://`, or `http://` to the loopback interface); its
    /// metadata is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// The environment variable holding the client secret; none for a public client.
    pub client_secret_env: Option<String>,
    /// This server's callback, `https://admin.example/api/oidc/callback`, exactly as
    /// registered at the provider.
    pub redirect_uri: String,
    /// The scopes asked for. Default: `["openid"]`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim naming the Plexus user. Default: `preferred_username` (then
    /// `sub` when the token has no such claim).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Further parameters of the authorization request, e.g. `{ aud = "https://ehr/fhir" }`
    /// for a SMART on FHIR authorization server. Default: none.
    #[serde(default)]
    pub authorize_params: std::collections::BTreeMap<String, String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned()]
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

/// How long a started sign-in may take.
const PENDING_LIFETIME: Duration = Duration::from_mins(10);
/// The most sign-ins pending at once (expired ones are dropped first).
const MAX_PENDING: usize = 10_000;
/// How long the provider's metadata is kept.
const DISCOVERY_TTL: Duration = Duration::from_hours(1);
/// The largest response read from the provider.
const MAX_BODY: usize = 256 * 1024;
/// Clock skew allowed on `exp` and `iat`, seconds.
const LEEWAY: i64 = 60;

/// Why a sign-in failed.
#[derive(Debug)]
pub enum OidcError {
    /// The sign-in is refused (401): the reason, without secrets.
    Refused(String),
    /// Plexus could not proceed (503): the provider is unreachable or misconfigured.
    Unavailable(String),
}

impl std::fmt::Display for OidcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Unavailable(why) => f.write_str(why),
        }
    }
}

fn refused(why: impl Into<String>) -> OidcError {
    OidcError::Refused(why.into())
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// A started sign-in.
struct Pending {
    nonce: String,
    verifier: String,
    until: Instant,
}

/// The OIDC client of the admin API.
pub struct Oidc {
    config: OidcConfig,
    secret: Option<String>,
    client: Client<Https, Full<Bytes>>,
    jwks: JwksCache,
    discovery: tokio::sync::Mutex<Option<(Instant, Discovery)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The client of `config`; reads the client secret from its environment variable.
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        let issuer = config.issuer.trim_end_matches('/');
        if !allowed_url(issuer) {
            anyhow::bail!(
                "[security.oidc] issuer must be https (or http to the loopback interface)"
            );
        }
        let secret = match &config.client_secret_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("[security.oidc] client_secret_env: ${var} is not set")
            })?),
            None => None,
        };
        if !config.scopes.iter().any(|s| s == "openid") {
            anyhow::bail!("[security.oidc] scopes must include openid");
        }
        let timeout = Duration::from_secs(10);
        Ok(Self {
            secret,
            client: https_client(timeout, "OIDC requests")?,
            jwks: JwksCache::new(DISCOVERY_TTL, timeout)?,
            discovery: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// Starts a sign-in: the URL of the provider's authorization endpoint to send the
    /// browser to.
    pub async fn begin(&self) -> Result<String, OidcError> {
        let discovery = self.discovery().await?;
        let fail = |_| OidcError::Unavailable("the system random generator failed".into());
        let state = random_token(24).map_err(fail)?;
        let nonce = random_token(24).map_err(fail)?;
        let verifier = random_token(48).map_err(fail)?;
        let challenge = digest(&verifier);
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            pending.retain(|_, p| p.until > now);
            if pending.len() >= MAX_PENDING {
                return Err(OidcError::Unavailable(
                    "too many sign-ins pending; try again later".into(),
                ));
            }
            pending.insert(
                digest(&state),
                Pending {
                    nonce: nonce.clone(),
                    verifier,
                    until: now + PENDING_LIFETIME,
                },
            );
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in &self.config.authorize_params {
            query.append_pair(name, value);
        }
        let endpoint = &discovery.authorization_endpoint;
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{sep}{}", query.finish()))
    }

    /// Finishes a sign-in with the callback's `code` and `state`: the Plexus user name the
    /// verified ID token names.
    pub async fn finish(&self, code: &str, state: &str) -> Result<String, OidcError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&digest(state))
            .filter(|p| p.until > Instant::now())
            .ok_or_else(|| refused("unknown, expired or already used state"))?;
        let discovery = self.discovery().await?;
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &self.config.redirect_uri)
                .append_pair("code_verifier", &pending.verifier)
                .append_pair("client_id", &self.config.client_id);
            if let Some(secret) = &self.secret {
                // client_secret_post
                form.append_pair("client_secret", secret);
            }
            form.finish()
        };
        let (status, body) = self.request(&discovery.token_endpoint, Some(form)).await?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let error = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            return Err(refused(format!(
                "the provider refused the code (HTTP {status}, {error})"
            )));
        }
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("the provider answered no id_token"))?;
        let jwt = Unverified::parse(id_token).map_err(|e| refused(format!("id_token: {e}")))?;
        self.check_signature(&discovery, &jwt).await?;
        check_claims(
            &jwt,
            &discovery.issuer,
            &self.config.client_id,
            &pending.nonce,
            now_secs(),
        )?;
        let username = jwt
            .str_claim(&self.config.username_claim)
            .or_else(|| jwt.str_claim("sub"))
            .filter(|u| !u.is_empty() && u.len() <= 128)
            .ok_or_else(|| refused("the id_token names no user"))?;
        Ok(username.to_owned())
    }

    async fn check_signature(
        &self,
        discovery: &Discovery,
        jwt: &Unverified<'_>,
    ) -> Result<(), OidcError> {
        if Alg::parse(&jwt.alg).is_none() {
            return Err(refused(format!(
                "id_token: algorithm {:?} not accepted",
                jwt.alg
            )));
        }
        let keys = self
            .jwks
            .keys(&discovery.jwks_uri, jwt.kid.as_deref())
            .await
            .map_err(|e| OidcError::Unavailable(format!("the provider's JWK Set: {e}")))?;
        let verified = keys
            .iter()
            .filter(|k| jwt.kid.is_none() || k.kid() == jwt.kid.as_deref())
            .any(|k| jwt.verify(k));
        if verified {
            Ok(())
        } else {
            Err(refused("id_token: bad signature or unknown key"))
        }
    }

    /// The provider's metadata, fetched at first use and kept for [`DISCOVERY_TTL`].
    async fn discovery(&self) -> Result<Discovery, OidcError> {
        let mut cached = self.discovery.lock().await;
        if let Some((at, d)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let issuer = self.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let unavailable = |why: String| OidcError::Unavailable(format!("OIDC discovery: {why}"));
        let (status, body) = self.request(&url, None).await?;
        if status != 200 {
            return Err(unavailable(format!("{url} answered HTTP {status}")));
        }
        let d: Discovery = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("{url} is not a provider configuration: {e}")))?;
        if d.issuer != self.config.issuer {
            return Err(unavailable(format!(
                "the provider's issuer is {}, not the configured {}",
                d.issuer, self.config.issuer
            )));
        }
        for endpoint in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri] {
            if !allowed_url(endpoint) {
                return Err(unavailable(format!("endpoint {endpoint} is not https")));
            }
        }
        *cached = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// A GET (no `form`) or a form POST to `url`: status and body.
    async fn request(&self, url: &str, form: Option<String>) -> Result<(u16, Bytes), OidcError> {
        let fail = |why: String| OidcError::Unavailable(format!("{url}: {why}"));
        let uri: hyper::Uri = url.parse().map_err(|_| fail("not a URL".into()))?;
        let builder = hyper::Request::builder()
            .uri(uri)
            .header(hyper::header::ACCEPT, "application/json");
        let request = match form {
            Some(form) => builder
                .method(hyper::Method::POST)
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Full::new(Bytes::from(form))),
            None => builder
                .method(hyper::Method::GET)
                .body(Full::new(Bytes::new())),
        }
        .map_err(|e| fail(e.to_string()))?;
        let work = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(format!("request failed: {e}")))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("body: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(Duration::from_secs(15), work)
            .await
            .map_err(|_| fail("timed out".into()))?
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The ID token's claims: issuer, audience, expiry, issue time and nonce.
fn check_claims(
    jwt: &Unverified<'_>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<(), OidcError> {
    if jwt.str_claim("iss") != Some(issuer) {
        return Err(refused("id_token: wrong issuer"));
    }
    if !jwt.has_audience(client_id) {
        return Err(refused("id_token: wrong audience"));
    }
    let exp = jwt
        .time_claim("exp")
        .ok_or_else(|| refused("id_token: no exp"))?;
    if exp + LEEWAY < now {
        return Err(refused("id_token: expired"));
    }
    if jwt.time_claim("iat").is_some_and(|iat| iat > now + LEEWAY) {
        return Err(refused("id_token: issued in the future"));
    }
    let same = jwt
        .str_claim("nonce")
        .is_some_and(|n| auth::secret::same_digest(&digest(n), &digest(nonce)));
    if !same {
        return Err(refused("id_token: wrong or missing nonce"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::jwt::SigningKey;
    use serde_json::json;

    fn token(claims: &Value) -> (SigningKey, String) {
        let (key, _) = SigningKey::generate().expect("key");
        let t = key.sign("JWT", claims).expect("sign");
        (key, t)
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://idp.example", "aud": "plexus", "sub": "alice",
               "exp": now + 300, "iat": now, "nonce": "n-1"})
    }

    fn check(claims: &Value, now: i64) -> Result<(), OidcError> {
        let (key, t) = token(claims);
        let jwt = Unverified::parse(&t).expect("parse");
        assert!(jwt.verify(key.public()));
        check_claims(&jwt, "https://idp.example", "plexus", "n-1", now)
    }

    #[test]
    fn claims_are_checked() {
        let now = 1_800_000_000;
        assert!(check(&claims(now), now).is_ok());
        let cases = [
            ("iss", json!("https://evil.example"), "wrong issuer"),
            ("aud", json!("other"), "wrong audience"),
            ("exp", json!(now - 3600), "expired"),
            ("iat", json!(now + 3600), "future"),
            ("nonce", json!("n-2"), "nonce"),
        ];
        for (name, value, why) in cases {
            let mut c = claims(now);
            c[name] = value;
            match check(&c, now) {
                Err(OidcError::Refused(r)) => assert!(r.contains(why), "{name}: {r}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let mut c = claims(now);
        c.as_object_mut().expect("object").remove("nonce");
        assert!(matches!(check(&c, now), Err(OidcError::Refused(_))));
        let mut c = claims(now);
        c["aud"] = json!(["x", "plexus"]);
        assert!(check(&c, now).is_ok());
    }

    #[test]
    fn another_key_does_not_verify() {
        let (_, t) = token(&claims(0));
        let (other, _) = SigningKey::generate().expect("key");
        let jwt = Unverified::parse(&t).expect("parse");
        assert!(!jwt.verify(other.public()));
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: OidcConfig = toml::from_str(
            "issuer = \"https://idp.example\"\nclient_id = \"plexus\"\n\
             redirect_uri = \"https://plexus.example/api/oidc/callback\"",
        )
        .expect("config");
        assert_eq!(c.scopes, ["openid"]);
        assert_eq!(c.username_claim, "preferred_username");
        assert!(c.client_secret_env.is_none());
        let bad = toml::from_str::<OidcConfig>(
            "issuer = \"https://idp.example\"\nclient_id = \"p\"\nredirect_uri = \"x\"\nsecret = \"s\"",
        );
        assert!(bad.is_err());
    }

    #[tokio::test]
    async fn the_login_url_carries_pkce_state_and_nonce_and_state_is_single_use() {
        let config: OidcConfig = toml::from_str(
            "issuer = \"https://idp.example\"\nclient_id = \"plexus\"\n\
             redirect_uri = \"https://plexus.example/api/oidc/callback\"\n\
             authorize_params = { aud = \"https://idp.example/fhir\" }",
        )
        .expect("config");
        let oidc = Oidc::new(config).expect("client");
        *oidc.discovery.lock().await = Some((
            Instant::now(),
            Discovery {
                issuer: "https://idp.example".into(),
                authorization_endpoint: "https://idp.example/authorize".into(),
                token_endpoint: "http://127.0.0.1:1/token".into(),
                jwks_uri: "https://idp.example/jwks".into(),
            },
        ));
        let url = oidc.begin().await.expect("begin");
        let (base, query) = url.split_once('?').expect("query");
        assert_eq!(base, "https://idp.example/authorize");
        let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["aud"], "https://idp.example/fhir");
        assert_eq!(q["code_challenge"].len(), 43);
        {
            let pending = oidc.pending.lock().expect("lock");
            let p = &pending[&digest(&q["state"])];
            assert_eq!(p.nonce, q["nonce"]);
            assert_eq!(digest(&p.verifier), q["code_challenge"]);
        }
        // A wrong state is refused before anything is sent; the right one is taken once.
        assert!(matches!(
            oidc.finish("c", "forged").await,
            Err(OidcError::Refused(_))
        ));
        // (the token endpoint refuses connections: the exchange fails, the state is spent)
        assert!(matches!(
            oidc.finish("c", &q["state"]).await,
            Err(OidcError::Unavailable(_))
        ));
        assert!(matches!(
            oidc.finish("c", &q["state"]).await,
            Err(OidcError::Refused(_))
        ));
    }
}
