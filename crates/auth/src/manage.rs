//! Managing users, clients and API tokens (for the CLI and the admin API), and purging
//! expired grants.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use store::{ClientRecord, Grant, Security as _, Timestamp, UserRecord};

use crate::config::{ClientKind, ClientRegistration, StoredClient};
use crate::error::AuthError;
use crate::events::{AuthEvent, AuthEventKind};
use crate::jwt::keys_of_set;
use crate::principal::Role;
use crate::scopes::ScopeSet;
use crate::secret::{digest, random_token};
use crate::server::{API_TOKEN_PREFIX, AuthServer, kind};

impl AuthServer {
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
    /// token's SHA-256, as [`Principal::token_id`](crate::Principal::token_id) gives it.
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
