//! The authorization server's state and its non-HTTP interface: construction, token
//! issuing and verification, client authentication, user, client and API-token management.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use store::{AnyStore, ClientRecord, Grant, Security as _, Timestamp, UserRecord};

use crate::config::{AuthConfig, ClientKind, ClientRegistration, StoredClient};
use crate::error::{AuthError, OAuthCode};
use crate::events::{AuthEvent, AuthEventKind, AuthEvents};
use crate::jwks_fetch::JwksCache;
use crate::jwt::{Alg, PublicKey, SigningKey, Unverified, keys_of_set};
use crate::principal::{Principal, Role};
use crate::scopes::ScopeSet;
use crate::secret::{digest, random_token, same_digest};

/// Clock skew tolerated on `exp`, `nbf` and `iat` (seconds).
pub const LEEWAY_SECS: i64 = 30;
/// The longest a client assertion may live (SMART Backend Services: 5 minutes).
pub const MAX_ASSERTION_SECS: i64 = 300;
/// The prefix of Plexus API tokens.
pub const API_TOKEN_PREFIX: &str = "plx_";
/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Grant kinds in the store.
pub(crate) mod kind {
    pub const CODE: &str = "code";
    pub const USED_CODE: &str = "used-code";
    pub const REFRESH: &str = "refresh";
    pub const USED_REFRESH: &str = "used-refresh";
    pub const ACCESS: &str = "access";
    pub const API_TOKEN: &str = "api-token";
    pub const JTI: &str = "jti";
    pub const LAUNCH: &str = "launch";
    pub const PENDING: &str = "pending";
}

/// The SMART on FHIR authorization server.
pub struct AuthServer {
    pub(crate) config: AuthConfig,
    pub(crate) store: Arc<AnyStore>,
    key: SigningKey,
    events: Arc<dyn AuthEvents>,
    jwks_cache: JwksCache,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.config.issuer)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What the client shows to authenticate at the token, introspection or revocation
/// endpoint.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClientCredentials {
    /// `client_id` from the body.
    pub client_id: Option<String>,
    /// `client_id:client_secret` from an `Authorization: Basic` header.
    pub basic: Option<(String, String)>,
    /// `client_secret` from the body.
    pub secret: Option<String>,
    /// `client_assertion_type` and `client_assertion` from the body.
    pub assertion: Option<(String, String)>,
}

/// A client after authentication.
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedClient {
    pub client: StoredClient,
    /// Whether it proved possession of a credential (not a public client).
    pub confidential: bool,
}

/// What a token is issued for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Issue {
    pub subject: String,
    pub client_id: String,
    pub scope: ScopeSet,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    pub fhir_user: Option<String>,
    pub nonce: Option<String>,
    /// The family of grants the tokens belong to.
    pub family: String,
    /// A refresh token to issue, and until when it is valid (`None`: no refresh token).
    pub refresh_until: Option<Timestamp>,
    /// Where the refresh family ends (online sessions).
    pub session_end: Option<Timestamp>,
    /// The scope the refresh token carries (the original grant; access may be narrower).
    pub refresh_scope: Option<ScopeSet>,
    /// The peer address of the token request, for the audit event.
    pub source: Option<String>,
}

fn secs(t: Timestamp) -> i64 {
    t.as_micros().div_euclid(1_000_000)
}

fn invalid_token(reason: &str) -> AuthError {
    AuthError::InvalidToken(reason.to_owned())
}

impl AuthServer {
    /// The server for `config`, on `store` (users, clients and grants live there), telling
    /// `events` what happens. Loads the signing key, or generates it on first use.
    pub fn new(
        config: AuthConfig,
        store: Arc<AnyStore>,
        events: Arc<dyn AuthEvents>,
    ) -> Result<Arc<Self>, AuthError> {
        config.check()?;
        let generated = config.data_dir.join("auth-signing-key.pem");
        let key = SigningKey::load_or_generate(config.signing_key.as_deref(), &generated)?;
        let jwks_cache = JwksCache::new(config.jwks_cache_ttl, Duration::from_secs(10))?;
        tracing::info!(
            alg = key.alg().as_str(),
            kid = key.kid(),
            "SMART authorization server ready"
        );
        Ok(Arc::new(Self {
            config,
            store,
            key,
            events,
            jwks_cache,
        }))
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The server's public JWK Set (served at `/auth/jwks`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.public().to_jwk()]})
    }

    /// The public half of the signing key.
    pub(crate) fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// The server's token-signing algorithm.
    pub fn signing_alg(&self) -> Alg {
        self.key.alg()
    }

    pub(crate) fn emit(&self, event: AuthEvent) {
        tracing::info!(
            event = event.kind.as_str(),
            agent = %event.agent,
            client_id = event.client_id.as_deref().unwrap_or(""),
            action = %event.action,
            detail = event.detail.as_deref().unwrap_or(""),
            "auth event"
        );
        self.events.record(event);
    }

    /// Reports a refusal.
    pub(crate) fn refused(
        &self,
        action: &str,
        agent: Option<&str>,
        client_id: Option<&str>,
        source: Option<&str>,
        reason: &str,
    ) {
        self.emit(AuthEvent {
            kind: AuthEventKind::TokenRefused,
            agent: agent.unwrap_or("anonymous").to_owned(),
            client_id: client_id.map(str::to_owned),
            source_addr: source.map(str::to_owned),
            action: action.to_owned(),
            patient: None,
            detail: Some(reason.to_owned()),
        });
    }

    // ---- bearer tokens -----------------------------------------------------------------

    /// The caller a bearer token stands for: a SMART access token this server issued
    /// (signature with the server's key and algorithm, `iss`, `aud`, `exp`/`nbf`/`iat`
    /// with 30 s leeway, and not revoked), or a Plexus API token (`plx_…`) of an enabled
    /// user. Refusals are [`AuthError::InvalidToken`] (401) and are reported to the events.
    pub async fn verify_bearer(&self, token: &str) -> Result<Principal, AuthError> {
        let result = if token.starts_with(API_TOKEN_PREFIX) {
            self.verify_api_token(token).await
        } else {
            self.verify_access_token(token).await
        };
        if let Err(AuthError::InvalidToken(reason)) = &result {
            self.refused("bearer", None, None, None, reason);
        }
        result
    }

    async fn verify_api_token(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > 256 {
            return Err(invalid_token("API token too long"));
        }
        let now = Timestamp::now();
        let grant = self
            .store
            .grant(kind::API_TOKEN, &digest(token), now)
            .await?
            .ok_or_else(|| invalid_token("unknown, expired or revoked API token"))?;
        let user = self
            .store
            .user(&grant.subject)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| invalid_token("the API token's user is gone or disabled"))?;
        let scopes = ScopeSet::parse(grant.payload["scope"].as_str().unwrap_or_default())
            .map_err(|_| invalid_token("stored API token scope is invalid"))?;
        Ok(Principal {
            subject: user.name,
            client_id: None,
            fhir_user: user.fhir_user,
            scopes,
            patient: None,
            encounter: None,
            token_id: Some(grant.key),
            roles: user.roles.iter().filter_map(|r| r.parse().ok()).collect(),
        })
    }

    /// Checks signature, algorithm and standard claims of one of our own JWTs; the claims.
    fn check_own_jwt<'a>(
        &self,
        token: &'a str,
        audience: &str,
    ) -> Result<Unverified<'a>, AuthError> {
        let jwt = Unverified::parse(token).map_err(|e| invalid_token(&e))?;
        if jwt.alg != self.key.alg().as_str() {
            return Err(invalid_token("algorithm not accepted"));
        }
        if jwt.kid.as_deref().is_some_and(|k| k != self.key.kid()) {
            return Err(invalid_token("unknown key id"));
        }
        if !jwt.verify(self.key.public()) {
            return Err(invalid_token("bad signature"));
        }
        if jwt.str_claim("iss") != Some(self.config.issuer.as_str()) {
            return Err(invalid_token("wrong issuer"));
        }
        if !jwt.has_audience(audience) {
            return Err(invalid_token("wrong audience"));
        }
        let now = secs(Timestamp::now());
        let exp = jwt
            .time_claim("exp")
            .ok_or_else(|| invalid_token("no exp"))?;
        if exp + LEEWAY_SECS <= now {
            return Err(invalid_token("expired"));
        }
        if jwt
            .time_claim("nbf")
            .is_some_and(|nbf| nbf > now + LEEWAY_SECS)
        {
            return Err(invalid_token("not valid yet"));
        }
        if jwt
            .time_claim("iat")
            .is_some_and(|iat| iat > now + LEEWAY_SECS)
        {
            return Err(invalid_token("issued in the future"));
        }
        Ok(jwt)
    }

    async fn verify_access_token(&self, token: &str) -> Result<Principal, AuthError> {
        let jwt = self.check_own_jwt(token, &self.config.issuer)?;
        let jti = jwt
            .str_claim("jti")
            .ok_or_else(|| invalid_token("no jti"))?;
        // An access token is valid only while its grant exists: revocation, and the
        // revocation of a whole family, delete it.
        let grant = self
            .store
            .grant(kind::ACCESS, &digest(jti), Timestamp::now())
            .await?
            .ok_or_else(|| invalid_token("revoked"))?;
        let scope = jwt.str_claim("scope").unwrap_or_default();
        let scopes = ScopeSet::parse(scope).map_err(|_| invalid_token("bad scope claim"))?;
        let claim = |n: &str| jwt.str_claim(n).map(str::to_owned);
        Ok(Principal {
            subject: claim("sub").unwrap_or(grant.subject),
            client_id: claim("client_id"),
            fhir_user: claim("fhirUser"),
            scopes,
            patient: claim("patient"),
            encounter: claim("encounter"),
            token_id: Some(jti.to_owned()),
            roles: Vec::new(),
        })
    }

    // ---- issuing ---------------------------------------------------------------------

    /// Signs an access token (and stores its grant), a refresh token and an ID token as
    /// `issue` asks; the token response.
    pub(crate) async fn issue(&self, issue: &Issue) -> Result<Value, AuthError> {
        let now = Timestamp::now();
        let lifetime = self.config.access_token_lifetime;
        let mut exp_at = now.saturating_add(lifetime);
        if let Some(end) = issue.session_end {
            exp_at = exp_at.min(end);
        }
        let jti = random_token(18)?;
        let scope = issue.scope.to_string();
        let mut claims = json!({
            "iss": self.config.issuer,
            "sub": issue.subject,
            "aud": self.config.issuer,
            "exp": secs(exp_at),
            "iat": secs(now),
            "jti": jti,
            "scope": scope,
            "client_id": issue.client_id,
        });
        for (name, value) in [
            ("patient", &issue.patient),
            ("encounter", &issue.encounter),
            ("fhirUser", &issue.fhir_user),
        ] {
            if let Some(v) = value {
                claims[name] = v.clone().into();
            }
        }
        let access_token = self.key.sign("at+jwt", &claims)?;
        self.store
            .put_grant(Grant {
                kind: kind::ACCESS.into(),
                key: digest(&jti),
                subject: issue.subject.clone(),
                family: Some(issue.family.clone()),
                payload: json!({"client_id": issue.client_id}),
                expires: exp_at.saturating_add(Duration::from_secs(LEEWAY_SECS as u64)),
            })
            .await?;
        let mut response = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": (secs(exp_at) - secs(now)).max(0),
            "scope": scope,
        });
        if let Some(p) = &issue.patient {
            response["patient"] = p.clone().into();
            response["need_patient_banner"] = true.into();
        }
        if let Some(e) = &issue.encounter {
            response["encounter"] = e.clone().into();
        }
        if let Some(until) = issue.refresh_until {
            let refresh = random_token(32)?;
            let refresh_scope = issue.refresh_scope.as_ref().unwrap_or(&issue.scope);
            self.store
                .put_grant(Grant {
                    kind: kind::REFRESH.into(),
                    key: digest(&refresh),
                    subject: issue.subject.clone(),
                    family: Some(issue.family.clone()),
                    payload: json!({
                        "client_id": issue.client_id,
                        "scope": refresh_scope.to_string(),
                        "patient": issue.patient,
                        "encounter": issue.encounter,
                        "fhir_user": issue.fhir_user,
                        "session_end": issue.session_end.map(Timestamp::as_micros),
                    }),
                    expires: until,
                })
                .await?;
            response["refresh_token"] = refresh.into();
        }
        if issue.scope.has("openid") && (issue.scope.has("fhirUser") || issue.scope.has("profile"))
        {
            response["id_token"] = self.id_token(issue, now, exp_at)?.into();
        }
        self.emit(AuthEvent {
            kind: AuthEventKind::TokenIssued,
            agent: issue.subject.clone(),
            client_id: Some(issue.client_id.clone()),
            source_addr: issue.source.clone(),
            action: "token".into(),
            patient: issue.patient.clone(),
            detail: Some(scope),
        });
        Ok(response)
    }

    /// An OpenID Connect ID token for `issue` (aud = the client; `fhirUser` absolute).
    fn id_token(
        &self,
        issue: &Issue,
        now: Timestamp,
        exp_at: Timestamp,
    ) -> Result<String, AuthError> {
        let mut id = json!({
            "iss": self.config.issuer,
            "sub": issue.subject,
            "aud": issue.client_id,
            "exp": secs(exp_at),
            "iat": secs(now),
        });
        if let Some(u) = &issue.fhir_user {
            // SMART: fhirUser is the absolute URL of the user's FHIR resource
            id["fhirUser"] = format!("{}/{u}", self.config.issuer).into();
        }
        if let Some(n) = &issue.nonce {
            id["nonce"] = n.clone().into();
        }
        self.key.sign("JWT", &id)
    }

    // ---- clients ---------------------------------------------------------------------

    pub(crate) async fn stored_client(
        &self,
        client_id: &str,
    ) -> Result<Option<StoredClient>, AuthError> {
        if client_id.is_empty() || client_id.len() > 256 {
            return Ok(None);
        }
        let Some(record) = self.store.client(client_id).await? else {
            return Ok(None);
        };
        serde_json::from_value(record.config)
            .map(Some)
            .map_err(|e| AuthError::Config(format!("stored client {client_id:?}: {e}")))
    }

    /// Authenticates the client of a token, introspection or revocation request.
    pub(crate) async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<AuthenticatedClient, AuthError> {
        let basic = creds.basic.is_some();
        let fail = |why: &str| AuthError::OAuth {
            code: OAuthCode::InvalidClient,
            description: why.to_owned(),
            basic,
        };
        let methods = usize::from(creds.basic.is_some())
            + usize::from(creds.secret.is_some())
            + usize::from(creds.assertion.is_some());
        if methods > 1 {
            return Err(AuthError::oauth(
                OAuthCode::InvalidRequest,
                "more than one client authentication method",
            ));
        }
        if let Some((id, secret)) = &creds.basic {
            if creds.client_id.as_ref().is_some_and(|c| c != id) {
                return Err(fail("client_id differs from the Basic credentials"));
            }
            return self
                .check_secret(id, secret)
                .await
                .map_err(|()| fail("client authentication failed"))
                .map(|client| AuthenticatedClient {
                    client,
                    confidential: true,
                });
        }
        if let Some(secret) = &creds.secret {
            let id = creds
                .client_id
                .as_deref()
                .ok_or_else(|| fail("client_id missing"))?;
            return self
                .check_secret(id, secret)
                .await
                .map_err(|()| fail("client authentication failed"))
                .map(|client| AuthenticatedClient {
                    client,
                    confidential: true,
                });
        }
        if let Some((assertion_type, assertion)) = &creds.assertion {
            if assertion_type != JWT_BEARER {
                return Err(fail("unsupported client_assertion_type"));
            }
            let client = self
                .check_assertion(creds.client_id.as_deref(), assertion)
                .await
                .map_err(|why| fail(&why))?;
            return Ok(AuthenticatedClient {
                client,
                confidential: true,
            });
        }
        let id = creds
            .client_id
            .as_deref()
            .ok_or_else(|| fail("client_id missing"))?;
        match self.stored_client(id).await? {
            Some(client) if client.registration.kind == ClientKind::Public => {
                Ok(AuthenticatedClient {
                    client,
                    confidential: false,
                })
            }
            Some(_) => Err(fail("this client must authenticate")),
            None => Err(fail("unknown client")),
        }
    }

    async fn check_secret(&self, client_id: &str, secret: &str) -> Result<StoredClient, ()> {
        let client = self.stored_client(client_id).await.ok().flatten();
        let expected = client
            .as_ref()
            .filter(|c| c.registration.kind == ClientKind::ConfidentialSymmetric)
            .and_then(|c| c.secret_sha256.clone());
        // compare even for an unknown client, so the answer takes as long
        let given = digest(secret);
        let ok = same_digest(&given, expected.as_deref().unwrap_or("-"));
        match (ok && expected.is_some(), client) {
            (true, Some(c)) => Ok(c),
            _ => Err(()),
        }
    }

    /// Checks a JWT client assertion (RFC 7523, SMART Backend Services): signed RS384 or
    /// ES384 by a key of the client's JWK Set, `iss` = `sub` = client id, `aud` = the
    /// token endpoint, `exp` in the future and at most 5 minutes ahead, `jti` never seen.
    async fn check_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
    ) -> Result<StoredClient, String> {
        let jwt = Unverified::parse(assertion)?;
        let alg = Alg::parse(&jwt.alg).ok_or("assertion algorithm must be RS384 or ES384")?;
        let iss = jwt.str_claim("iss").ok_or("assertion has no iss")?;
        if jwt.str_claim("sub") != Some(iss) {
            return Err("assertion iss and sub must both be the client id".into());
        }
        if client_id.is_some_and(|c| c != iss) {
            return Err("client_id differs from the assertion's iss".into());
        }
        let client = self
            .stored_client(iss)
            .await
            .map_err(|e| e.to_string())?
            .filter(|c| c.registration.kind == ClientKind::ConfidentialAsymmetric)
            .ok_or("unknown client, or not registered for private_key_jwt")?;
        let keys: Vec<PublicKey> = match (&client.registration.jwks, &client.registration.jwks_uri)
        {
            (Some(set), _) => keys_of_set(set),
            (None, Some(url)) => self.jwks_cache.keys(url, jwt.kid.as_deref()).await?,
            (None, None) => Vec::new(),
        };
        let verified = keys
            .iter()
            .filter(|k| k.alg() == alg)
            .filter(|k| jwt.kid.is_none() || k.kid() == jwt.kid.as_deref())
            .any(|k| jwt.verify(k));
        if !verified {
            return Err("assertion signature does not verify with the client's keys".into());
        }
        if !jwt.has_audience(&self.config.token_endpoint()) {
            return Err("assertion aud must be the token endpoint".into());
        }
        let now = secs(Timestamp::now());
        let exp = jwt.time_claim("exp").ok_or("assertion has no exp")?;
        if exp + LEEWAY_SECS <= now {
            return Err("assertion expired".into());
        }
        if exp > now + MAX_ASSERTION_SECS + LEEWAY_SECS {
            return Err("assertion exp more than 5 minutes ahead".into());
        }
        if jwt
            .time_claim("nbf")
            .is_some_and(|nbf| nbf > now + LEEWAY_SECS)
        {
            return Err("assertion not valid yet".into());
        }
        let jti = jwt.str_claim("jti").ok_or("assertion has no jti")?;
        if jti.is_empty() || jti.len() > 256 {
            return Err("assertion jti missing or too long".into());
        }
        let fresh = self
            .store
            .put_grant(Grant {
                kind: kind::JTI.into(),
                key: digest(&format!("{iss}\u{0}{jti}")),
                subject: iss.to_owned(),
                family: None,
                payload: json!({}),
                expires: Timestamp::from_micros((exp + LEEWAY_SECS).saturating_mul(1_000_000)),
            })
            .await
            .map_err(|e| e.to_string())?;
        if !fresh {
            return Err("assertion jti was used before".into());
        }
        Ok(client)
    }

    // ---- management ------------------------------------------------------------------

    /// Creates or replaces a user with an argon2id hash of `password` (`None`: no password
    /// login), its roles and its FHIR resource (`Practitioner/123`).
    pub async fn add_user(
        &self,
        name: &str,
        password: Option<&str>,
        roles: &[Role],
        fhir_user: Option<&str>,
    ) -> Result<(), AuthError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Config(
                "user names are 1 to 128 printable characters".into(),
            ));
        }
        let password_hash = match password {
            Some(p) => {
                let p = p.to_owned();
                Some(
                    tokio::task::spawn_blocking(move || crate::secret::hash_password(&p))
                        .await
                        .map_err(|e| AuthError::Password(e.to_string()))??,
                )
            }
            None => None,
        };
        self.store
            .put_user(UserRecord {
                name: name.to_owned(),
                password_hash,
                roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
                fhir_user: fhir_user.map(str::to_owned),
                disabled: false,
                created: Timestamp::now(),
            })
            .await?;
        Ok(())
    }

    /// Registers (or replaces) a client. For a confidential-symmetric client a new secret
    /// is generated and returned (only its SHA-256 is stored: show it once).
    pub async fn register_client(
        &self,
        registration: ClientRegistration,
    ) -> Result<Option<String>, AuthError> {
        let r = &registration;
        let bad = |why: &str| {
            Err(AuthError::Config(format!(
                "client {:?}: {why}",
                r.client_id
            )))
        };
        if r.client_id.is_empty()
            || r.client_id.len() > 128
            || !r
                .client_id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':')
        {
            return bad("client ids are 1 to 128 visible ASCII characters without ':'");
        }
        if ScopeSet::parse(&r.scopes).is_err() {
            return bad("invalid scopes");
        }
        for uri in &r.redirect_uris {
            if !(uri.starts_with("https://") || uri.starts_with("http://")) || uri.contains('#') {
                return bad("redirect URIs are absolute http(s) URLs without a fragment");
            }
        }
        if r.kind == ClientKind::ConfidentialAsymmetric {
            match (&r.jwks, &r.jwks_uri) {
                (Some(set), None) if !keys_of_set(set).is_empty() => {}
                (None, Some(url)) if crate::jwks_fetch::allowed_url(url) => {}
                _ => {
                    return bad(
                        "an asymmetric client needs a jwks with an RS384 or ES384 key, or an https jwks_uri",
                    );
                }
            }
        }
        let secret = match r.kind {
            ClientKind::ConfidentialSymmetric => Some(random_token(32)?),
            _ => None,
        };
        let stored = StoredClient {
            secret_sha256: secret.as_deref().map(digest),
            registration,
        };
        let config = serde_json::to_value(&stored).map_err(|e| AuthError::Config(e.to_string()))?;
        self.store
            .put_client(ClientRecord {
                client_id: stored.registration.client_id.clone(),
                config,
                created: Timestamp::now(),
            })
            .await?;
        Ok(secret)
    }

    /// Creates an API token (`plx_…`, 32 random bytes) for `user` with `scopes` (FHIR
    /// scopes, e.g. `user/*.rs`; may be empty for admin-API use), valid for `lifetime`.
    /// Only its SHA-256 is stored: the token is shown once.
    pub async fn create_api_token(
        &self,
        user: &str,
        name: &str,
        scopes: &str,
        lifetime: Duration,
    ) -> Result<String, AuthError> {
        if self.store.user(user).await?.is_none_or(|u| u.disabled) {
            return Err(AuthError::Config(format!("no enabled user {user:?}")));
        }
        let parsed = ScopeSet::parse(scopes).map_err(|e| AuthError::Config(e.to_string()))?;
        let token = format!("{API_TOKEN_PREFIX}{}", random_token(32)?);
        let now = Timestamp::now();
        self.store
            .put_grant(Grant {
                kind: kind::API_TOKEN.into(),
                key: digest(&token),
                subject: user.to_owned(),
                family: None,
                payload: json!({"name": name, "scope": parsed.to_string(), "created": now.as_micros()}),
                expires: now.saturating_add(lifetime),
            })
            .await?;
        self.emit(AuthEvent {
            kind: AuthEventKind::TokenIssued,
            agent: user.to_owned(),
            client_id: None,
            source_addr: None,
            action: "api-token".into(),
            patient: None,
            detail: Some(format!("API token {name:?}")),
        });
        Ok(token)
    }

    /// The unexpired API tokens of `user`: (token id, name, expiry). The id is the
    /// token's SHA-256, as [`Principal::token_id`] gives it.
    pub async fn api_tokens(
        &self,
        user: &str,
    ) -> Result<Vec<(String, String, Timestamp)>, AuthError> {
        Ok(self
            .store
            .grants_of(kind::API_TOKEN, user, Timestamp::now())
            .await?
            .into_iter()
            .map(|g| {
                let name = g.payload["name"].as_str().unwrap_or_default().to_owned();
                (g.key, name, g.expires)
            })
            .collect())
    }

    /// Revokes an API token by its id (see [`AuthServer::api_tokens`]); `false` if unknown.
    pub async fn revoke_api_token(&self, token_id: &str) -> Result<bool, AuthError> {
        Ok(self.store.delete_grant(kind::API_TOKEN, token_id).await?)
    }

    /// Disables (or enables again) a user: a disabled user cannot sign in and its API
    /// tokens are refused. `false` if there is no such user.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, AuthError> {
        let Some(mut user) = self.store.user(name).await? else {
            return Ok(false);
        };
        user.disabled = disabled;
        self.store.put_user(user).await?;
        Ok(true)
    }

    /// Deletes a user and its API tokens. `false` if there was no such user.
    pub async fn remove_user(&self, name: &str) -> Result<bool, AuthError> {
        for grant in self
            .store
            .grants_of(kind::API_TOKEN, name, Timestamp::now())
            .await?
        {
            self.store.delete_grant(kind::API_TOKEN, &grant.key).await?;
        }
        Ok(self.store.delete_user(name).await?)
    }

    /// Runs [`AuthServer::purge`] every `every` until the task is aborted.
    pub fn spawn_purge(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match server.purge().await {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "expired grants purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging expired grants failed"),
                }
            }
        })
    }

    /// Removes expired grants (call now and then; expired grants are ignored anyway).
    pub async fn purge(&self) -> Result<u64, AuthError> {
        Ok(self.store.purge_grants(Timestamp::now()).await?)
    }
}
