//! The authorization server's state and its non-HTTP interface: construction, token
//! issuing and verification, client authentication, user, client and API-token management.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use store::{AnyStore, Grant, Security as _, Timestamp};

use crate::config::{AuthConfig, StoredClient};
use crate::error::AuthError;
use crate::events::{AuthEvent, AuthEventKind, AuthEvents};
use crate::jwks_fetch::JwksCache;
use crate::jwt::{Alg, PublicKey, SigningKey, Unverified};
use crate::principal::Principal;
use crate::scopes::ScopeSet;
use crate::secret::{digest, random_token};

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
    pub(crate) jwks_cache: JwksCache,
    /// Access tokens whose signature and static claims were checked: SHA-256 → (exp, claims).
    verified: Mutex<HashMap<String, (i64, Arc<Claims>)>>,
}

/// The claims of a JWT.
type Claims = serde_json::Map<String, Value>;

/// The most access tokens remembered as checked.
const VERIFIED_CACHE: usize = 10_000;

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

pub(crate) fn secs(t: Timestamp) -> i64 {
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
            verified: Mutex::new(HashMap::new()),
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
    /// The claims of one of our own JWTs after the checks that do not depend on time:
    /// format, algorithm (the key's, nothing else), key id, signature, issuer, audience.
    /// Tokens that passed are remembered by their SHA-256, so a token used again skips the
    /// signature check (P-384 verification is the costliest step of a request).
    fn signed_claims(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        let fingerprint = digest(token);
        if let Some(claims) = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fingerprint)
        {
            return Ok(Arc::clone(&claims.1));
        }
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
        if !jwt.has_audience(&self.config.issuer) {
            return Err(invalid_token("wrong audience"));
        }
        let exp = jwt
            .time_claim("exp")
            .ok_or_else(|| invalid_token("no exp"))?;
        let claims = Arc::new(jwt.claims);
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CACHE {
            let now = secs(Timestamp::now());
            verified.retain(|_, (exp, _)| *exp + LEEWAY_SECS > now);
            if verified.len() >= VERIFIED_CACHE {
                verified.clear();
            }
        }
        verified.insert(fingerprint, (exp, Arc::clone(&claims)));
        Ok(claims)
    }

    async fn verify_access_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.signed_claims(token)?;
        let str_claim = |n: &str| claims.get(n).and_then(Value::as_str);
        let time_claim = |n: &str| crate::jwt::numeric_date(claims.get(n));
        let now = secs(Timestamp::now());
        let exp = time_claim("exp").ok_or_else(|| invalid_token("no exp"))?;
        if exp + LEEWAY_SECS <= now {
            return Err(invalid_token("expired"));
        }
        if time_claim("nbf").is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(invalid_token("not valid yet"));
        }
        if time_claim("iat").is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(invalid_token("issued in the future"));
        }
        let jti = str_claim("jti").ok_or_else(|| invalid_token("no jti"))?;
        // An access token is valid only while its grant exists: revocation, and the
        // revocation of a whole family, delete it.
        let grant = self
            .store
            .grant(kind::ACCESS, &digest(jti), Timestamp::now())
            .await?
            .ok_or_else(|| invalid_token("revoked"))?;
        let scope = str_claim("scope").unwrap_or_default();
        let scopes = ScopeSet::parse(scope).map_err(|_| invalid_token("bad scope claim"))?;
        let claim = |n: &str| str_claim(n).map(str::to_owned);
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
}
