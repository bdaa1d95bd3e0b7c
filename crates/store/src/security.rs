//! The security tables of the SMART authorization server: users, OAuth clients, and grants
//! (authorization codes, refresh tokens, API tokens, access-token ids, client-assertion
//! `jti`s, launch contexts).
//!
//! Secrets are never stored: a grant's [`Grant::key`] is a SHA-256 (hex or base64url) of the
//! secret the client holds, and a user's password is an argon2id PHC string. Grants expire:
//! an expired grant is as good as absent for [`Security::grant`], [`Security::take_grant`]
//! and [`Security::put_grant`], and [`Security::purge_grants`] removes them.

use std::future::Future;

use crate::error::Result;
use crate::time::Timestamp;

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user name (unique).
    pub name: String,
    /// The password as an argon2id PHC string (`$argon2id$v=19$…`); `None`: no password
    /// login (API tokens or an external identity provider only).
    pub password_hash: Option<String>,
    /// Role names (`admin`, `developer`, …).
    pub roles: Vec<String>,
    /// The user's FHIR resource (`Practitioner/123`), for the `fhirUser` claim.
    pub fhir_user: Option<String>,
    /// A disabled user cannot sign in and its API tokens are refused.
    pub disabled: bool,
    /// When the user was created.
    pub created: Timestamp,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    /// The client id (unique).
    pub client_id: String,
    /// Its settings (redirect URIs, kind, secret hash, JWKS or JWKS URL, allowed scopes…),
    /// as the authorization server writes them.
    pub config: serde_json::Value,
    /// When the client was registered.
    pub created: Timestamp,
}

/// Something the server handed out or saw, that expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// What it is: `code`, `refresh`, `access`, `api-token`, `jti`, `launch`, …
    pub kind: String,
    /// Its key within the kind: a SHA-256 of the secret, never the secret.
    pub key: String,
    /// Whom it was issued to (a user name or a client id).
    pub subject: String,
    /// The family it falls with (a refresh-token chain and its access tokens).
    pub family: Option<String>,
    /// What the server needs to know about it (scopes, client, patient, …; never secrets).
    pub payload: serde_json::Value,
    /// When it stops being valid.
    pub expires: Timestamp,
}

/// Users, clients and grants.
pub trait Security: Send + Sync {
    /// Inserts a user, or replaces the user of that name.
    fn put_user(&self, user: UserRecord) -> impl Future<Output = Result<()>> + Send;

    /// The user of that name.
    fn user(&self, name: &str) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// Every user, by name.
    fn users(&self) -> impl Future<Output = Result<Vec<UserRecord>>> + Send;

    /// Deletes a user; `false` if there was none.
    fn delete_user(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts a client, or replaces the client with that id.
    fn put_client(&self, client: ClientRecord) -> impl Future<Output = Result<()>> + Send;

    /// The client with that id.
    fn client(&self, client_id: &str) -> impl Future<Output = Result<Option<ClientRecord>>> + Send;

    /// Every client, by id.
    fn clients(&self) -> impl Future<Output = Result<Vec<ClientRecord>>> + Send;

    /// Deletes a client; `false` if there was none.
    fn delete_client(&self, client_id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts `grant` unless an unexpired grant has its (kind, key) already, in which case
    /// nothing changes and the answer is `false` (a replayed `jti`, a single-use value). An
    /// expired grant with that (kind, key) is replaced.
    fn put_grant(&self, grant: Grant) -> impl Future<Output = Result<bool>> + Send;

    /// Atomically removes the grant (kind, key) and returns it if it had not expired at
    /// `now`: of two concurrent calls, at most one gets it (authorization codes, refresh
    /// tokens: single use). An expired grant is removed too, and `None` returned.
    fn take_grant(
        &self,
        kind: &str,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Grant>>> + Send;

    /// The grant (kind, key), if it has not expired at `now`.
    fn grant(
        &self,
        kind: &str,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Grant>>> + Send;

    /// The unexpired grants of `kind` issued to `subject`, soonest to expire first (a user's
    /// API tokens, for listing).
    fn grants_of(
        &self,
        kind: &str,
        subject: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Grant>>> + Send;

    /// Removes the grant (kind, key); `false` if there was none.
    fn delete_grant(&self, kind: &str, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Removes every grant of `family` (a refresh-token chain and its access tokens, when a
    /// used code or refresh token is replayed, or the chain is revoked); how many.
    fn delete_family(&self, family: &str) -> impl Future<Output = Result<u64>> + Send;

    /// Removes every grant that expired before `now`; how many.
    fn purge_grants(&self, now: Timestamp) -> impl Future<Output = Result<u64>> + Send;
}

/// Refuses what no backend stores: empty names, kinds or keys.
pub(crate) fn check_nonempty(op: &'static str, what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(crate::StoreError::InvalidArgument {
            op,
            reason: format!("{what} must not be empty"),
        });
    }
    Ok(())
}

/// Roles as stored (a JSON array of names).
pub(crate) fn roles_to_text(roles: &[String]) -> String {
    serde_json::Value::from(roles.to_vec()).to_string()
}

/// Roles as read back.
pub(crate) fn roles_from_text(op: &'static str, text: String) -> Result<Vec<String>> {
    serde_json::from_str(&text).map_err(|_| crate::StoreError::Corrupt {
        op,
        column: "security_user.roles",
        value: text,
    })
}

/// A JSON column as read back.
pub(crate) fn json_from_text(
    op: &'static str,
    column: &'static str,
    text: String,
) -> Result<serde_json::Value> {
    serde_json::from_str(&text).map_err(|_| crate::StoreError::Corrupt {
        op,
        column,
        value: text,
    })
}
