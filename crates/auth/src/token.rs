//! The token endpoint (authorization code with PKCE, refresh with rotation, client
//! credentials with a JWT assertion), introspection (RFC 7662) and revocation (RFC 7009).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::{Grant, Security as _, Timestamp};

use crate::config::ClientKind;
use crate::error::{AuthError, OAuthCode};
use crate::events::{AuthEvent, AuthEventKind};
use crate::http::{self, Params, no_store_json};
use crate::jwt::Unverified;
use crate::scopes::{Level, ScopeSet};
use crate::secret::{digest, is_code_verifier, pkce_challenge, random_token, same_digest};
use crate::server::{AuthServer, AuthenticatedClient, Issue, kind};

fn grant_err(why: &str) -> AuthError {
    AuthError::oauth(OAuthCode::InvalidGrant, why)
}

fn scope_err(why: &str) -> AuthError {
    AuthError::oauth(OAuthCode::InvalidScope, why)
}

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn time_of(v: &Value) -> Option<Timestamp> {
    v.as_i64().map(Timestamp::from_micros)
}

/// `POST /auth/token`.
pub(crate) async fn token(State(server): State<Arc<AuthServer>>, request: Request) -> Response {
    let source = http::peer(&request);
    let headers = request.headers().clone();
    let result = async {
        let params = http::form(request).await?;
        let creds = http::credentials(&headers, &params)?;
        let grant_type = params.require("grant_type")?.to_owned();
        let client = server.authenticate_client(&creds).await;
        let client = match client {
            Ok(c) => c,
            Err(e) => return Err((e, grant_type, creds.client_id.or(creds.basic.map(|b| b.0)))),
        };
        let id = client.client.registration.client_id.clone();
        let answer = match grant_type.as_str() {
            "authorization_code" => {
                authorization_code(&server, &client, &params, source.clone()).await
            }
            "refresh_token" => refresh_token(&server, &client, &params, source.clone()).await,
            "client_credentials" => {
                client_credentials(&server, &client, &params, source.clone()).await
            }
            _ => Err(AuthError::oauth(
                OAuthCode::UnsupportedGrantType,
                "grant_type must be authorization_code, refresh_token or client_credentials",
            )),
        };
        answer.map_err(|e| (e, grant_type, Some(id)))
    }
    .await;
    match result {
        Ok(body) => no_store_json(StatusCode::OK, &body),
        Err((e, grant_type, client_id)) => {
            let reason = e.to_string();
            server.refused(
                &grant_type,
                client_id.as_deref(),
                client_id.as_deref(),
                source.as_deref(),
                &reason,
            );
            e.into_response()
        }
    }
    .into_response()
}

// An error before grant_type is known (body too large, not a form) still needs the tuple.
impl From<AuthError> for (AuthError, String, Option<String>) {
    fn from(e: AuthError) -> Self {
        (e, "token".to_owned(), None)
    }
}

async fn authorization_code(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
    source: Option<String>,
) -> Result<Value, AuthError> {
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.require("code_verifier")?;
    let store = &server.store;
    let now = Timestamp::now();
    let key = digest(code);
    let Some(grant) = store.take_grant(kind::CODE, &key, now).await? else {
        if let Some(used) = store.grant(kind::USED_CODE, &key, now).await?
            && let Some(family) = used.payload["family"].as_str()
        {
            let n = store.delete_family(family).await?;
            server.emit(AuthEvent {
                kind: AuthEventKind::Revoked,
                agent: used.subject.clone(),
                client_id: opt_string(&used.payload["client_id"]),
                source_addr: source.clone(),
                action: "authorization_code".into(),
                patient: None,
                detail: Some(format!(
                    "authorization code reused: {n} grants of its family revoked"
                )),
            });
        }
        return Err(grant_err(
            "the code is invalid, expired or was used already",
        ));
    };
    let p = &grant.payload;
    let family = p["family"].as_str().unwrap_or_default().to_owned();
    let family_end = time_of(&p["family_end"]).unwrap_or(grant.expires);
    store
        .put_grant(Grant {
            kind: kind::USED_CODE.into(),
            key,
            subject: grant.subject.clone(),
            family: None,
            payload: json!({"family": family, "client_id": p["client_id"]}),
            expires: family_end,
        })
        .await?;
    let client_id = &client.client.registration.client_id;
    if p["client_id"].as_str() != Some(client_id) {
        return Err(grant_err("the code was issued to another client"));
    }
    if p["redirect_uri"].as_str() != Some(redirect_uri) {
        return Err(grant_err(
            "redirect_uri differs from the authorization request's",
        ));
    }
    let challenge = p["code_challenge"].as_str().unwrap_or_default();
    if !is_code_verifier(verifier) || !same_digest(&pkce_challenge(verifier), challenge) {
        return Err(grant_err(
            "PKCE code_verifier does not match the code_challenge",
        ));
    }
    let scope = ScopeSet::parse(p["scope"].as_str().unwrap_or_default())
        .map_err(|_| grant_err("stored scope is invalid"))?;
    let session_end = time_of(&p["session_end"]);
    let refresh_until = if scope.has("offline_access") {
        Some(now.saturating_add(server.config.refresh_lifetime))
    } else if scope.has("online_access") {
        session_end
    } else {
        None
    };
    server
        .issue(&Issue {
            subject: grant.subject.clone(),
            client_id: client_id.clone(),
            scope,
            patient: opt_string(&p["patient"]),
            encounter: opt_string(&p["encounter"]),
            fhir_user: opt_string(&p["fhir_user"]),
            nonce: opt_string(&p["nonce"]),
            family,
            refresh_until,
            session_end,
            refresh_scope: None,
            source,
        })
        .await
}

async fn refresh_token(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
    source: Option<String>,
) -> Result<Value, AuthError> {
    let token = params.require("refresh_token")?;
    let store = &server.store;
    let now = Timestamp::now();
    let key = digest(token);
    let client_id = &client.client.registration.client_id;
    // Check client and scope on a look first, so a refused request does not use the token up.
    if let Some(peek) = store.grant(kind::REFRESH, &key, now).await? {
        if peek.payload["client_id"].as_str() != Some(client_id) {
            return Err(grant_err("the refresh token was issued to another client"));
        }
        if let Some(requested) = params.get("scope") {
            let original = ScopeSet::parse(peek.payload["scope"].as_str().unwrap_or_default())
                .map_err(|_| grant_err("stored scope is invalid"))?;
            let requested = ScopeSet::parse(requested).map_err(|e| scope_err(&e.to_string()))?;
            if !original.includes(&requested) {
                return Err(scope_err("a refresh may narrow the scope, never widen it"));
            }
        }
    }
    let Some(grant) = store.take_grant(kind::REFRESH, &key, now).await? else {
        if let Some(used) = store.grant(kind::USED_REFRESH, &key, now).await?
            && let Some(family) = used.payload["family"].as_str()
        {
            let n = store.delete_family(family).await?;
            server.emit(AuthEvent {
                kind: AuthEventKind::Revoked,
                agent: used.subject.clone(),
                client_id: opt_string(&used.payload["client_id"]),
                source_addr: source.clone(),
                action: "refresh_token".into(),
                patient: None,
                detail: Some(format!(
                    "used refresh token replayed: {n} grants of its family revoked"
                )),
            });
        }
        return Err(grant_err(
            "the refresh token is invalid, expired, revoked or was used already",
        ));
    };
    let p = &grant.payload;
    let family = grant.family.clone().unwrap_or_default();
    store
        .put_grant(Grant {
            kind: kind::USED_REFRESH.into(),
            key,
            subject: grant.subject.clone(),
            family: None,
            payload: json!({"family": family, "client_id": p["client_id"]}),
            expires: grant.expires,
        })
        .await?;
    if p["client_id"].as_str() != Some(client_id) {
        return Err(grant_err("the refresh token was issued to another client"));
    }
    let original = ScopeSet::parse(p["scope"].as_str().unwrap_or_default())
        .map_err(|_| grant_err("stored scope is invalid"))?;
    let scope = match params.get("scope") {
        Some(s) => {
            let requested = ScopeSet::parse(s).map_err(|e| scope_err(&e.to_string()))?;
            if !original.includes(&requested) {
                return Err(scope_err("a refresh may narrow the scope, never widen it"));
            }
            requested
        }
        None => original.clone(),
    };
    let session_end = time_of(&p["session_end"]);
    let refresh_until = match session_end {
        Some(end) => Some(end),
        None => Some(now.saturating_add(server.config.refresh_lifetime)),
    };
    server
        .issue(&Issue {
            subject: grant.subject.clone(),
            client_id: client_id.clone(),
            scope,
            patient: opt_string(&p["patient"]),
            encounter: opt_string(&p["encounter"]),
            fhir_user: opt_string(&p["fhir_user"]),
            nonce: None,
            family,
            refresh_until,
            session_end,
            refresh_scope: Some(original),
            source,
        })
        .await
}

async fn client_credentials(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
    source: Option<String>,
) -> Result<Value, AuthError> {
    let registration = &client.client.registration;
    if registration.kind != ClientKind::ConfidentialAsymmetric || !client.confidential {
        return Err(AuthError::oauth(
            OAuthCode::UnauthorizedClient,
            "client_credentials needs a client registered for private_key_jwt",
        ));
    }
    let requested =
        ScopeSet::parse(params.require("scope")?).map_err(|e| scope_err(&e.to_string()))?;
    if !requested.other.is_empty() || requested.resources.iter().any(|s| s.level != Level::System) {
        return Err(scope_err(
            "backend services may ask for system/ scopes only",
        ));
    }
    let allowed = ScopeSet::parse(&registration.scopes).unwrap_or_default();
    let granted = allowed.grantable(&requested);
    if granted.resources.is_empty() {
        return Err(scope_err(
            "none of the requested scopes is allowed for this client",
        ));
    }
    server
        .issue(&Issue {
            subject: registration.client_id.clone(),
            client_id: registration.client_id.clone(),
            scope: granted,
            family: random_token(16)?,
            source,
            ..Issue::default()
        })
        .await
}

/// `POST /auth/introspect` (RFC 7662): the caller authenticates as a confidential client.
pub(crate) async fn introspect(
    State(server): State<Arc<AuthServer>>,
    request: Request,
) -> Response {
    let source = http::peer(&request);
    let headers = request.headers().clone();
    let result = async {
        let params = http::form(request).await?;
        let creds = http::credentials(&headers, &params)?;
        let client = server.authenticate_client(&creds).await?;
        if !client.confidential {
            return Err(AuthError::oauth(
                OAuthCode::InvalidClient,
                "introspection needs a confidential client",
            ));
        }
        let token = params.require("token")?;
        introspection(&server, token).await
    }
    .await;
    match result {
        Ok(v) => no_store_json(StatusCode::OK, &v),
        Err(e) => {
            server.refused("introspect", None, None, source.as_deref(), &e.to_string());
            e.into_response()
        }
    }
}

async fn introspection(server: &AuthServer, token: &str) -> Result<Value, AuthError> {
    let inactive = json!({"active": false});
    let now = Timestamp::now();
    if token.starts_with(crate::server::API_TOKEN_PREFIX) {
        return Ok(match server.verify_bearer(token).await {
            Ok(p) => json!({
                "active": true, "token_type": "api-token", "sub": p.subject,
                "scope": p.scopes.to_string(), "iss": server.config.issuer,
            }),
            Err(AuthError::InvalidToken(_)) => inactive,
            Err(e) => return Err(e),
        });
    }
    if token.contains('.') {
        return Ok(match server.verify_bearer(token).await {
            Ok(p) => {
                let jwt = Unverified::parse(token).map_err(AuthError::InvalidToken)?;
                let mut v = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": p.scopes.to_string(),
                    "client_id": p.client_id,
                    "sub": p.subject,
                    "iss": server.config.issuer,
                    "aud": server.config.issuer,
                    "exp": jwt.time_claim("exp"),
                    "iat": jwt.time_claim("iat"),
                    "jti": p.token_id,
                });
                for (name, value) in [
                    ("patient", p.patient),
                    ("encounter", p.encounter),
                    ("fhirUser", p.fhir_user),
                ] {
                    if let Some(x) = value {
                        v[name] = x.into();
                    }
                }
                v
            }
            Err(AuthError::InvalidToken(_)) => inactive,
            Err(e) => return Err(e),
        });
    }
    if token.len() <= 256
        && let Some(g) = server
            .store
            .grant(kind::REFRESH, &digest(token), now)
            .await?
    {
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": g.payload["scope"],
            "client_id": g.payload["client_id"],
            "sub": g.subject,
            "exp": g.expires.as_micros().div_euclid(1_000_000),
        }));
    }
    Ok(inactive)
}

/// `POST /auth/revoke` (RFC 7009): a refresh token revokes its whole family (and the
/// access tokens issued from it), an access token itself. Always 200 for a token the
/// client does not own or that is unknown.
pub(crate) async fn revoke(State(server): State<Arc<AuthServer>>, request: Request) -> Response {
    let source = http::peer(&request);
    let headers = request.headers().clone();
    let result = async {
        let params = http::form(request).await?;
        let creds = http::credentials(&headers, &params)?;
        let client = server.authenticate_client(&creds).await?;
        let token = params.require("token")?;
        let client_id = client.client.registration.client_id;
        let store = &server.store;
        let now = Timestamp::now();
        let mut revoked = 0;
        if token.len() <= 256
            && let Some(g) = store.grant(kind::REFRESH, &digest(token), now).await?
            && g.payload["client_id"].as_str() == Some(client_id.as_str())
        {
            revoked = match &g.family {
                Some(f) => store.delete_family(f).await?,
                None => u64::from(store.delete_grant(kind::REFRESH, &g.key).await?),
            };
        } else if let Ok(jwt) = Unverified::parse(token)
            && jwt.verify(server_key(&server))
            && jwt.str_claim("client_id") == Some(client_id.as_str())
            && let Some(jti) = jwt.str_claim("jti")
        {
            revoked = u64::from(store.delete_grant(kind::ACCESS, &digest(jti)).await?);
        }
        if revoked > 0 {
            server.emit(AuthEvent {
                kind: AuthEventKind::Revoked,
                agent: client_id.clone(),
                client_id: Some(client_id),
                source_addr: source.clone(),
                action: "revoke".into(),
                patient: None,
                detail: Some(format!("{revoked} grants revoked")),
            });
        }
        Ok::<_, AuthError>(())
    }
    .await;
    match result {
        Ok(()) => no_store_json(StatusCode::OK, &json!({})),
        Err(e) => {
            server.refused("revoke", None, None, source.as_deref(), &e.to_string());
            e.into_response()
        }
    }
}

fn server_key(server: &AuthServer) -> &crate::jwt::PublicKey {
    server.public_key()
}

/// How long a family of grants from an authorization lives at most.
pub(crate) fn family_lifetime(server: &AuthServer, scope: &ScopeSet) -> Duration {
    if scope.has("offline_access") {
        server.config.refresh_lifetime
    } else if scope.has("online_access") {
        server.config.online_session_lifetime
    } else {
        server.config.access_token_lifetime
    }
}
