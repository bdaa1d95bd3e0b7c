//! Client authentication at the token, introspection and revocation endpoints: client
//! secrets (Basic or POST), JWT assertions (`private_key_jwt`, backend services), public
//! clients.

use serde_json::json;
use store::{Grant, Security as _, Timestamp};

use crate::config::{ClientKind, StoredClient};
use crate::error::{AuthError, OAuthCode};
use crate::jwt::{Alg, PublicKey, Unverified, keys_of_set};
use crate::secret::{digest, same_digest};
use crate::server::{
    AuthServer, AuthenticatedClient, ClientCredentials, JWT_BEARER, LEEWAY_SECS,
    MAX_ASSERTION_SECS, kind, secs,
};

impl AuthServer {
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
}
