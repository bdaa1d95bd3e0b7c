//! The routers the binary mounts: the authorization endpoints under `/auth`, and
//! `/.well-known/smart-configuration` to be nested under the FHIR base.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use store::{Grant, Security as _, Timestamp};

use crate::authorize::{authorize, is_fhir_id};
use crate::error::AuthError;
use crate::events::{AuthEvent, AuthEventKind};
use crate::http::{self, Params, bad, no_store_json};
use crate::principal::Role;
use crate::secret::{digest, random_token};
use crate::server::{AuthServer, kind};
use crate::token::{introspect, revoke, token};

impl AuthServer {
    /// The authorization endpoints, at absolute paths: `/auth/authorize` (GET, POST),
    /// `/auth/token`, `/auth/introspect`, `/auth/revoke`, `/auth/launch` (POST),
    /// `/auth/jwks` (GET). Merge it into the HTTP listener's router at its root; serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` to have peer addresses in the
    /// audit events.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/auth/authorize", get(authorize).post(authorize))
            .route("/auth/token", post(token))
            .route("/auth/introspect", post(introspect))
            .route("/auth/revoke", post(revoke))
            .route("/auth/launch", post(launch))
            .route("/auth/jwks", get(jwks))
            .with_state(Arc::clone(self))
    }

    /// `/.well-known/smart-configuration` and `/.well-known/openid-configuration` (GET), to
    /// be nested under the FHIR base path (`Router::new().nest("/fhir", auth.smart_router())`,
    /// or merged into the FHIR router before nesting).
    pub fn smart_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/smart-configuration", get(smart_configuration))
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .with_state(Arc::clone(self))
    }

    /// The SMART configuration document: what this server supports, and nothing else.
    pub fn smart_configuration(&self) -> Value {
        let base = &self.config.auth_base;
        json!({
            "issuer": self.config.issuer,
            "jwks_uri": format!("{base}/jwks"),
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "introspection_endpoint": format!("{base}/introspect"),
            "revocation_endpoint": format!("{base}/revoke"),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "id_token_signing_alg_values_supported": [self.signing_alg().as_str()],
            "scopes_supported": [
                "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
                "offline_access", "online_access",
                "patient/*.rs", "patient/*.cruds", "patient/*.read", "patient/*.write", "patient/*.*",
                "user/*.rs", "user/*.cruds", "user/*.read", "user/*.write", "user/*.*",
                "system/*.rs", "system/*.cruds", "system/*.read", "system/*.write", "system/*.*"
            ],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr", "launch-standalone", "authorize-post",
                "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
                "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
                "sso-openid-connect",
                "permission-offline", "permission-online", "permission-patient", "permission-user",
                "permission-v1", "permission-v2"
            ],
        })
    }
}

async fn smart_configuration(State(server): State<Arc<AuthServer>>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        axum::Json(server.smart_configuration()),
    )
        .into_response()
}

/// `/.well-known/openid-configuration`: the OpenID Connect provider metadata (the same
/// endpoints as the SMART configuration), so that OIDC relying parties can sign users in here.
async fn openid_configuration(State(server): State<Arc<AuthServer>>) -> Response {
    let smart = server.smart_configuration();
    let mut doc = serde_json::Map::new();
    for name in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "id_token_signing_alg_values_supported",
        "scopes_supported",
        "code_challenge_methods_supported",
        "token_endpoint_auth_methods_supported",
        "grant_types_supported",
    ] {
        doc.insert(name.to_owned(), smart[name].clone());
    }
    doc.insert("subject_types_supported".to_owned(), json!(["public"]));
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        axum::Json(Value::Object(doc)),
    )
        .into_response()
}

async fn jwks(State(server): State<Arc<AuthServer>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        server.jwks().to_string(),
    )
        .into_response()
}

/// `POST /auth/launch`: an EHR launch context (`patient`, `encounter`) for a later
/// authorization with `launch=`; the caller shows an API token of an admin or developer.
/// Body: JSON `{"patient": "123", "encounter": "456"}` or the same as a form.
async fn launch(State(server): State<Arc<AuthServer>>, request: Request) -> Response {
    let source = http::peer(&request);
    let result = async {
        let principal = match http::bearer(request.headers()) {
            Some(t) => server.verify_bearer(t).await?,
            None => return Err(AuthError::InvalidToken("no bearer token".into())),
        };
        if !principal
            .roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Developer))
        {
            return Err(AuthError::Forbidden(
                "creating a launch needs the admin or developer role".into(),
            ));
        }
        let form = http::is_form(request.headers());
        let bytes = http::body(request).await?;
        let (patient, encounter) = if form {
            let p = Params::parse(&bytes)?;
            (
                p.get("patient").map(str::to_owned),
                p.get("encounter").map(str::to_owned),
            )
        } else {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|_| bad("the body must be JSON or a form"))?;
            let s = |n: &str| v.get(n).and_then(Value::as_str).map(str::to_owned);
            (s("patient"), s("encounter"))
        };
        for id in [&patient, &encounter].into_iter().flatten() {
            if !is_fhir_id(id) {
                return Err(bad("patient and encounter are FHIR ids"));
            }
        }
        if patient.is_none() {
            return Err(bad("patient is missing"));
        }
        let launch = random_token(24)?;
        let lifetime = server.config.launch_lifetime;
        server
            .store
            .put_grant(Grant {
                kind: kind::LAUNCH.into(),
                key: digest(&launch),
                subject: principal.subject.clone(),
                family: None,
                payload: json!({"patient": patient, "encounter": encounter}),
                expires: Timestamp::now().saturating_add(lifetime),
            })
            .await?;
        server.emit(AuthEvent {
            kind: AuthEventKind::LaunchCreated,
            agent: principal.subject,
            client_id: None,
            source_addr: source.clone(),
            action: "launch".into(),
            patient: patient.clone(),
            detail: None,
        });
        Ok(json!({"launch": launch, "expires_in": lifetime.as_secs()}))
    }
    .await;
    match result {
        Ok(v) => no_store_json(StatusCode::OK, &v),
        Err(e) => {
            if !matches!(e, AuthError::InvalidToken(_)) {
                server.refused("launch", None, None, source.as_deref(), &e.to_string());
            }
            e.into_response()
        }
    }
}
