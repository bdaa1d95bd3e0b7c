//! The admin REST API (JSON over HTTP, described by `openapi.json` served at
//! `/openapi.json`), `/metrics` in the Prometheus format, and `/healthz` / `/readyz`.
//!
//! Every endpoint but `/healthz`, `/readyz`, `/metrics` and `/openapi.json` needs a bearer
//! API token of a user whose roles allow it (see [`auth::principal::Role`]): 401 without a
//! valid token, 403 when the roles do not allow the action. Message views, reprocessing,
//! configuration changes and refused requests are recorded in the audit trail.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use auth::audit::{AuditFacts, Outcome, What, Who};
use auth::principal::AdminAction;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use bytes::Bytes;
use engine::{ChannelConfig, ChannelState, Engine, EngineError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{
    Audit as _, DEFAULT_LIST_LIMIT, Journal as _, MAX_LIST_LIMIT, MessageFilter, MessageId,
    MessageSummary, Queues as _, Security as _, Status, Timestamp,
};

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The folder of channel files (for `deploy`).
    pub channels_dir: Option<PathBuf>,
    /// Checks bearer tokens; `None` serves everyone (`[security] admin_auth = false`).
    pub auth: Option<Arc<auth::AuthServer>>,
    /// The audit trail; `None` records nothing.
    pub audit: Option<Arc<crate::security::AuditTrail>>,
    /// Sign-in with an external OpenID Connect provider; `None` when not configured.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
}

#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the tests compare the routes with openapi.json")
)]
impl Verb {
    /// The method's key in an OpenAPI path item (`get`, `post`).
    pub(crate) fn openapi_key(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
        }
    }
}

/// One endpoint: method, path (axum and OpenAPI write parameters the same way, `{name}`) and
/// handler.
pub(crate) struct Route {
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the tests compare the routes with openapi.json")
    )]
    pub(crate) verb: Verb,
    pub(crate) path: &'static str,
    handler: MethodRouter<AdminState>,
    /// What a caller's roles must allow; `None` for the public endpoints.
    pub(crate) action: Option<AdminAction>,
}

fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    Route {
        verb,
        path,
        handler: on(verb.filter(), handler),
        action: action_of(verb, path),
    }
}

/// The action an endpoint performs, for the role check.
fn action_of(verb: Verb, path: &str) -> Option<AdminAction> {
    use AdminAction as A;
    if !path.starts_with("/api/") || path == "/api/login" || path.starts_with("/api/oidc/") {
        return None;
    }
    Some(match (verb, path) {
        (_, p) if p.contains("reprocess") => A::Reprocess,
        (_, p) if p.starts_with("/api/audit") => A::ViewAudit,
        (Verb::Get, p) if p.starts_with("/api/messages") => A::ViewMessages,
        (Verb::Post, p) if p.ends_with("/deploy") || p.ends_with("/undeploy") => A::DeployChannels,
        (Verb::Post, _) => A::ControlChannels,
        (Verb::Get, _) => A::ViewChannels,
    })
}

/// Every endpoint of the API. [`router`] serves exactly these, and a test checks that
/// `openapi.json` documents exactly these: add a route here and document it there.
pub(crate) fn routes() -> Vec<Route> {
    use Verb::{Get, Post};
    vec![
        at(Get, "/healthz", healthz),
        at(Get, "/readyz", readyz),
        at(Get, "/metrics", metrics),
        at(Get, "/openapi.json", openapi),
        at(Get, "/api/channels", list_channels),
        at(Get, "/api/channels/{name}", show_channel),
        at(Post, "/api/channels/{name}/deploy", deploy),
        at(Post, "/api/channels/{name}/undeploy", undeploy),
        at(Post, "/api/channels/{name}/start", start),
        at(Post, "/api/channels/{name}/stop", stop),
        at(Post, "/api/channels/{name}/pause", pause),
        at(Post, "/api/channels/{name}/prune", prune),
        at(
            Post,
            "/api/channels/{name}/destinations/{destination}/pause",
            pause_destination,
        ),
        at(
            Post,
            "/api/channels/{name}/destinations/{destination}/resume",
            resume_destination,
        ),
        at(Get, "/api/messages", search_messages),
        at(Post, "/api/messages/reprocess", reprocess_matching),
        at(Get, "/api/messages/{id}", show_message),
        at(Post, "/api/messages/{id}/reprocess", reprocess_one),
        at(Get, "/api/queues", queues),
        at(Post, "/api/login", login),
        at(Get, "/api/audit", audit_search),
        at(Get, "/api/oidc/login", oidc_login),
        at(Get, "/api/oidc/callback", oidc_callback),
    ]
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, route| {
            let handler = match route.action {
                Some(action) => route
                    .handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        (state.clone(), action),
                        guard,
                    )),
                None => route.handler,
            };
            r.route(route.path, handler)
        })
        .fallback(|uri: Uri| async move {
            ApiError(StatusCode::NOT_FOUND, format!("no endpoint {}", uri.path()))
        })
        .method_not_allowed_fallback(|uri: Uri| async move {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} does not take this method", uri.path()),
            )
        })
        .with_state(state)
}

/// A refused request: its status and why.
type Refusal = (StatusCode, String);

/// The address of the client a request came from (for the audit record), when the listener
/// recorded it.
fn client_ip(request: &axum::extract::Request) -> Option<String> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The role check of one endpoint, and its audit record.
async fn guard(
    State((state, action)): State<(AdminState, AdminAction)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let source = client_ip(&request);
    let path = request.uri().path().to_owned();
    let (principal, refused) = match &state.auth {
        Some(auth) => authenticate(auth, request.headers(), action).await,
        None => (None, None),
    };
    let response = if let Some((status, why)) = &refused {
        let mut r = ApiError(*status, why.clone()).into_response();
        if *status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    } else {
        next.run(request).await
    };
    // Patient data (messages), reprocessing, configuration changes and every refusal.
    let audited = refused.is_some()
        || matches!(
            action,
            AdminAction::ViewMessages
                | AdminAction::Reprocess
                | AdminAction::DeployChannels
                | AdminAction::ControlChannels
                | AdminAction::ViewAudit
        );
    match &state.audit {
        Some(audit) if audited => {
            let who = principal.as_ref().map_or(Who::Anonymous, Who::Principal);
            let status = response.status().as_u16();
            let reason = refused.as_ref().map(|(_, why)| why.as_str());
            let recorded =
                record_access(audit, who, action, &path, source.as_deref(), status, reason).await;
            match recorded {
                Ok(()) => response,
                Err(e) => {
                    tracing::error!(error = %e, "the audit trail refused a record; answering 500");
                    ApiError(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the access could not be recorded in the audit trail".to_owned(),
                    )
                    .into_response()
                }
            }
        }
        _ => response,
    }
}

/// The caller of a request with `headers` and, if refused, why: 401 without a valid token, 403 when its
/// roles do not allow `action`.
async fn authenticate(
    auth: &auth::AuthServer,
    headers: &axum::http::HeaderMap,
    action: AdminAction,
) -> (Option<auth::Principal>, Option<Refusal>) {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        let why = "a bearer API token is required".to_owned();
        return (None, Some((StatusCode::UNAUTHORIZED, why)));
    };
    match auth.verify_bearer(&token).await {
        Ok(p) if p.may(action) => (Some(p), None),
        Ok(p) => {
            let why = format!("the roles of {} do not allow this", p.subject);
            (Some(p), Some((StatusCode::FORBIDDEN, why)))
        }
        Err(e) => (None, Some((StatusCode::UNAUTHORIZED, e.to_string()))),
    }
}

/// Writes the audit record of one admin request.
async fn record_access(
    audit: &crate::security::AuditTrail,
    who: Who<'_>,
    action: AdminAction,
    path: &str,
    source: Option<&str>,
    status: u16,
    refused: Option<&str>,
) -> Result<(), String> {
    let object = path.trim_start_matches("/api/");
    let message = path
        .strip_prefix("/api/messages/")
        .map(|rest| rest.trim_end_matches("/reprocess"));
    let mut facts = match (action, message) {
        (AdminAction::ViewMessages, Some(id)) => AuditFacts::message_view(who, id),
        (AdminAction::Reprocess, Some(id)) => AuditFacts::reprocess(who, id),
        (AdminAction::DeployChannels | AdminAction::ControlChannels, _) => {
            AuditFacts::config_change(who, object)
        }
        _ => AuditFacts::admin_action(who, action, What::Config(object)),
    }
    .from_addr(source);
    let status_text = format!("HTTP {status}");
    if status >= 400 {
        facts = facts.failed(
            Outcome::from_http_status(status),
            refused.unwrap_or(&status_text),
        );
    }
    audit.record(facts).await
}

/// An error answered as `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::UnknownChannel(_)
            | EngineError::UnknownDestination { .. }
            | EngineError::UnknownMessage(_) => StatusCode::NOT_FOUND,
            EngineError::Config(_) | EngineError::Script { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::State { .. } | EngineError::Connector { .. } => StatusCode::CONFLICT,
            EngineError::Store(_) | EngineError::Io { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, e.to_string())
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        Self(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

type ApiResult<T> = Result<T, ApiError>;

/// Path parameters, refused in the API's error shape.
struct ApiPath<T>(T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| bad_request(e.body_text()))
    }
}

/// The query string as (name, value) pairs in order, refused in the API's error shape.
struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| bad_request(e.body_text()))
    }
}

/// How long a session token of `POST /api/login` lives.
const SESSION: std::time::Duration = std::time::Duration::from_hours(8);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// `POST /api/login`: a password sign-in (argon2id) that answers a session API token.
async fn login(
    State(s): State<AdminState>,
    request: axum::extract::Request,
) -> ApiResult<Json<serde_json::Value>> {
    let source = client_ip(&request);
    let body = axum::body::to_bytes(request.into_body(), 64 << 10)
        .await
        .map_err(|_| bad_request("the body is larger than 64 KiB"))?;
    let Some(auth) = &s.auth else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "sign-in is off: the admin API runs without authorization".to_owned(),
        ));
    };
    let Login { username, password } = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "the body is not {{\"username\", \"password\"}}: {e}"
        ))
    })?;
    if username.len() > 128 || password.len() > 1024 {
        return Err(bad_request("user name or password too long"));
    }
    let user = s.engine.store().user(&username).await?;
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    // Verified even for an unknown user (against no hash), so timing tells nothing.
    let ok = tokio::task::spawn_blocking(move || {
        auth::secret::verify_password(&password, hash.as_deref())
    })
    .await
    .unwrap_or(false);
    if let Some(audit) = &s.audit {
        let mut facts = AuditFacts::login(&username, ok).from_addr(source.as_deref());
        if !ok {
            facts = facts.failed(Outcome::MinorFailure, "wrong user name or password");
        }
        audit
            .record(facts)
            .await
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
    }
    if !ok {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".to_owned(),
        ));
    }
    let token = auth
        .create_api_token(&username, "session", "", SESSION)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(
        json!({"token": token, "expires_in": SESSION.as_secs()}),
    ))
}

/// `GET /api/oidc/login`: a redirect to the identity provider's sign-in page.
async fn oidc_login(State(s): State<AdminState>) -> ApiResult<Response> {
    let Some(oidc) = &s.oidc else {
        return Err(oidc_off());
    };
    let url = oidc.begin().await.map_err(|e| match e {
        crate::oidc::OidcError::Refused(why) => ApiError(StatusCode::UNAUTHORIZED, why),
        crate::oidc::OidcError::Unavailable(why) => ApiError(StatusCode::SERVICE_UNAVAILABLE, why),
    })?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

fn oidc_off() -> ApiError {
    ApiError(
        StatusCode::CONFLICT,
        "OIDC sign-in is not configured ([security.oidc]) or the admin API runs without authorization"
            .to_owned(),
    )
}

/// `GET /api/oidc/callback?code&state`: the provider's answer; a session API token of the
/// Plexus user the verified ID token names.
async fn oidc_callback(
    State(s): State<AdminState>,
    Params(params): Params,
    request: axum::extract::Request,
) -> ApiResult<Json<serde_json::Value>> {
    let source = client_ip(&request);
    let (Some(oidc), Some(auth)) = (&s.oidc, &s.auth) else {
        return Err(oidc_off());
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let result = match (param("code"), param("state"), param("error")) {
        (_, _, Some(error)) => Err(crate::oidc::OidcError::Refused(format!(
            "the provider answered {:?}",
            error.chars().take(64).collect::<String>()
        ))),
        (Some(code), Some(state), None) if code.len() <= 4096 && state.len() <= 256 => {
            oidc.finish(code, state).await
        }
        _ => Err(crate::oidc::OidcError::Refused(
            "code and state are required".to_owned(),
        )),
    };
    // The user must exist in Plexus and be enabled: roles are Plexus's, not the provider's.
    let result = match result {
        Ok(name) => match s.engine.store().user(&name).await? {
            Some(u) if !u.disabled => Ok(name),
            _ => Err((
                name,
                crate::oidc::OidcError::Refused("no enabled Plexus user of this name".to_owned()),
            )),
        },
        Err(e) => Err(("unknown".to_owned(), e)),
    };
    let (who, ok) = match &result {
        Ok(name) => (name.as_str(), true),
        Err((name, _)) => (name.as_str(), false),
    };
    let reason = match &result {
        Ok(_) => String::new(),
        Err((_, e)) => format!("OIDC sign-in: {e}"),
    };
    if let Some(audit) = &s.audit {
        let mut facts = AuditFacts::login(who, ok).from_addr(source.as_deref());
        if !ok {
            facts = facts.failed(Outcome::MinorFailure, &reason);
        }
        audit
            .record(facts)
            .await
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
    }
    let username = result.map_err(|(_, e)| match e {
        crate::oidc::OidcError::Refused(why) => ApiError(StatusCode::UNAUTHORIZED, why),
        crate::oidc::OidcError::Unavailable(why) => {
            tracing::warn!(reason = %why, "OIDC sign-in failed");
            ApiError(
                StatusCode::UNAUTHORIZED,
                format!("the identity provider could not be used: {why}"),
            )
        }
    })?;
    let token = auth
        .create_api_token(&username, "session", "", SESSION)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(
        json!({"token": token, "expires_in": SESSION.as_secs()}),
    ))
}

/// `GET /api/audit`: the audit trail, newest first, for auditors (read only: nothing in
/// the API changes it). Each search is itself recorded.
async fn audit_search(
    State(s): State<AdminState>,
    Params(params): Params,
) -> ApiResult<Json<serde_json::Value>> {
    let mut q = store::AuditQuery::default();
    let mut seen = HashSet::new();
    for (k, v) in &params {
        if !seen.insert(k.as_str()) {
            return Err(bad_request(format!("parameter {k:?} is given twice")));
        }
        let time = || {
            v.parse::<Timestamp>()
                .map_err(|e| bad_request(format!("{k}: {e} (RFC 3339)")))
        };
        match k.as_str() {
            "patient" if v.contains('/') => q.patient = Some(v.clone()),
            "patient" => q.patient = Some(format!("Patient/{v}")),
            "agent" => q.agent = Some(v.clone()),
            "outcome" => q.outcome = Some(v.clone()),
            "action" => q.action = Some(v.clone()),
            "subtype" => q.subtype = Some(v.clone()),
            "since" => q.since = Some(time()?),
            "until" => q.until = Some(time()?),
            "before" => {
                q.before_seq =
                    Some(v.parse().map_err(|_| {
                        bad_request(format!("before={v} is not a sequence number"))
                    })?);
            }
            "limit" => {
                let max = store::audit::MAX_AUDIT_LIMIT;
                q.limit = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|l| (1..=max).contains(l))
                        .ok_or_else(|| bad_request(format!("limit must be 1 to {max}")))?,
                );
            }
            other => return Err(bad_request(format!("unknown parameter {other:?}"))),
        }
    }
    let entries = s.engine.store().audit_search(&q).await?;
    let entries: Vec<serde_json::Value> =
        entries.iter().map(crate::audit_cli::entry_json).collect();
    Ok(Json(json!({ "entries": entries })))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let probe = MessageFilter {
        limit: Some(1),
        ..MessageFilter::default()
    };
    match s.engine.store().list(&probe).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let depths = s.engine.queue_depths().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.engine.metrics().render(&depths),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Serialize)]
struct ChannelView {
    name: String,
    description: String,
    state: ChannelState,
    source: Option<String>,
    file: String,
    destinations: Vec<DestinationView>,
    stats: Option<engine::metrics::ChannelStats>,
}

#[derive(Serialize)]
struct DestinationView {
    number: u16,
    name: String,
    paused: bool,
    queue: Option<store::QueueDepth>,
}

async fn channel_view(engine: &Engine, ch: &engine::Channel) -> ChannelView {
    let mut destinations = Vec::new();
    for d in &ch.pipeline.destinations {
        destinations.push(DestinationView {
            number: d.number,
            name: d.name.clone(),
            paused: ch.destination_paused(d.number),
            queue: engine.store().queue_depth(&ch.queue(d.number)).await.ok(),
        });
    }
    ChannelView {
        name: ch.name().to_owned(),
        description: ch.config.description.clone(),
        state: ch.state(),
        source: ch.source_addr().map(|a| a.to_string()),
        file: ch.config.file.display().to_string(),
        destinations,
        stats: engine.metrics().stats(ch.name()),
    }
}

async fn list_channels(State(s): State<AdminState>) -> Json<Vec<ChannelView>> {
    let mut out = Vec::new();
    for ch in s.engine.channels() {
        out.push(channel_view(&s.engine, &ch).await);
    }
    Json(out)
}

async fn show_channel(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelView>> {
    let ch = s.engine.channel(&name)?;
    Ok(Json(channel_view(&s.engine, &ch).await))
}

/// A channel's state after an operation (`null` once undeployed).
#[derive(Serialize)]
struct ChannelStateView {
    channel: String,
    state: Option<ChannelState>,
}

fn state_of(engine: &Engine, name: String) -> Json<ChannelStateView> {
    let state = engine.channel(&name).map(|c| c.state()).ok();
    Json(ChannelStateView {
        channel: name,
        state,
    })
}

/// Finds the file of channel `name` in the channels folder: `name.toml`, or the file whose
/// `name` key says so. Other files that do not parse are passed over (one broken file must not
/// keep the others from being deployed) and named in the answer if `name` is not found.
fn channel_file(dir: &std::path::Path, name: &str) -> ApiResult<ChannelConfig> {
    let invalid =
        |e: engine::ConfigError| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    let direct = dir.join(format!("{name}.toml"));
    if direct.is_file() {
        let c = ChannelConfig::load(&direct).map_err(invalid)?;
        if c.name == name {
            return Ok(c);
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the channels folder {}: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && *p != direct)
        .collect();
    files.sort();
    let mut found: Option<ChannelConfig> = None;
    let mut unreadable = Vec::new();
    for f in files {
        match ChannelConfig::load(&f) {
            Ok(c) if c.name == name => {
                if let Some(first) = &found {
                    return Err(ApiError(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "channel {name:?} is defined in both {} and {}",
                            first.file.display(),
                            f.display()
                        ),
                    ));
                }
                found = Some(c);
            }
            Ok(_) => {}
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    found.ok_or_else(|| {
        let mut message = format!("no channel named {name:?} in {}", dir.display());
        if !unreadable.is_empty() {
            let _ = write!(
                message,
                " (files that could not be read: {})",
                unreadable.join("; ")
            );
        }
        ApiError(StatusCode::NOT_FOUND, message)
    })
}

async fn deploy(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelStateView>> {
    let Some(dir) = &s.channels_dir else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "no channels folder is configured (plexus.toml `channels`)".into(),
        ));
    };
    // the name becomes part of a file path: nothing but a valid channel name goes there
    if !engine::config::valid_name(&name) {
        return Err(bad_request(format!("{name:?} is not a valid channel name")));
    }
    let config = channel_file(dir, &name)?;
    s.engine.deploy(config).await?;
    Ok(state_of(&s.engine, name))
}

async fn undeploy(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelStateView>> {
    s.engine.undeploy(&name).await?;
    Ok(state_of(&s.engine, name))
}

async fn start(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelStateView>> {
    s.engine.start(&name)?;
    Ok(state_of(&s.engine, name))
}

async fn stop(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelStateView>> {
    s.engine.stop(&name).await?;
    Ok(state_of(&s.engine, name))
}

async fn pause(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelStateView>> {
    s.engine.pause(&name).await?;
    Ok(state_of(&s.engine, name))
}

async fn prune(
    State(s): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<engine::ops::PruneReport>> {
    let ch = s.engine.channel(&name)?;
    Ok(Json(s.engine.prune(&name, &ch.config.retention).await?))
}

#[derive(Serialize)]
struct DestinationStateView {
    channel: String,
    destination: String,
    paused: bool,
}

async fn pause_destination(
    State(s): State<AdminState>,
    ApiPath((channel, destination)): ApiPath<(String, String)>,
) -> ApiResult<Json<DestinationStateView>> {
    set_destination_paused(&s.engine, channel, destination, true)
}

async fn resume_destination(
    State(s): State<AdminState>,
    ApiPath((channel, destination)): ApiPath<(String, String)>,
) -> ApiResult<Json<DestinationStateView>> {
    set_destination_paused(&s.engine, channel, destination, false)
}

fn set_destination_paused(
    engine: &Engine,
    channel: String,
    destination: String,
    paused: bool,
) -> ApiResult<Json<DestinationStateView>> {
    engine.pause_destination(&channel, &destination, paused)?;
    Ok(Json(DestinationStateView {
        channel,
        destination,
        paused,
    }))
}

/// Builds a search filter from query parameters; `meta.KEY=VALUE` filters on metadata (one
/// parameter per key; every pair must match). A parameter given twice is refused.
fn filter_from(params: &[(String, String)]) -> ApiResult<MessageFilter> {
    let mut f = MessageFilter::default();
    let time = |v: &str| -> ApiResult<Timestamp> {
        v.parse::<Timestamp>()
            .map_err(|e| bad_request(format!("{e} (RFC 3339, e.g. 2026-01-31T08:00:00Z)")))
    };
    let id = |v: &str| -> ApiResult<MessageId> {
        v.parse::<MessageId>()
            .map_err(|e| bad_request(e.to_string()))
    };
    let mut seen = HashSet::new();
    for (k, v) in params {
        if !seen.insert(k.as_str()) {
            return Err(bad_request(format!(
                "search parameter {k:?} is given twice"
            )));
        }
        match k.as_str() {
            "channel" => f.channel = Some(v.clone()),
            "status" => {
                f.status = Some(v.to_uppercase().parse::<Status>().map_err(|e| {
                    bad_request(format!(
                        "{e} (one of RECEIVED, FILTERED, TRANSFORMED, QUEUED, SENT, ERROR)"
                    ))
                })?);
            }
            "type" => f.message_type = Some(v.clone()),
            "event" => f.trigger_event = Some(v.clone()),
            "control_id" => f.control_id = Some(v.clone()),
            "from" => f.received_from = Some(time(v)?),
            "to" => f.received_to = Some(time(v)?),
            "original" => f.original_id = Some(id(v)?),
            "limit" => {
                f.limit = Some(v.parse().map_err(|_| {
                    bad_request(format!(
                        "limit {v:?} is not a whole number (at most {MAX_LIST_LIMIT} are listed)"
                    ))
                })?);
            }
            "before" => f.before_id = Some(id(v)?),
            other => match other.strip_prefix("meta.") {
                Some(key) if !key.is_empty() => f.metadata.push((key.to_owned(), v.clone())),
                _ => return Err(bad_request(format!("unknown search parameter {other:?}"))),
            },
        }
    }
    f.metadata.sort();
    Ok(f)
}

#[derive(Serialize)]
struct SearchResult {
    messages: Vec<MessageSummary>,
    /// The `before` of the next page; `null` when this page is the last.
    next_before: Option<MessageId>,
}

async fn search_messages(
    State(s): State<AdminState>,
    Params(params): Params,
) -> ApiResult<Json<SearchResult>> {
    let f = filter_from(&params)?;
    let rows = s.engine.store().list(&f).await?;
    let page = f.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT) as usize;
    let next_before = if rows.len() < page || page == 0 {
        None
    } else {
        rows.last().map(|r| r.id)
    };
    Ok(Json(SearchResult {
        messages: rows,
        next_before,
    }))
}

#[derive(Serialize)]
struct MessageView {
    summary: MessageSummary,
    metadata: Vec<(String, String)>,
    destinations: Vec<store::DestinationStatus>,
    content: Vec<ContentView>,
}

#[derive(Serialize)]
struct ContentView {
    destination: store::Destination,
    stage: store::Stage,
    created_at: Timestamp,
    /// `text` (UTF-8, as is) or `hex` (any other bytes).
    encoding: &'static str,
    data: String,
}

fn message_id(text: &str) -> ApiResult<MessageId> {
    text.parse()
        .map_err(|e: store::ParseValueError| bad_request(e.to_string()))
}

async fn show_message(
    State(s): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageView>> {
    let id = message_id(&id)?;
    let m = s
        .engine
        .store()
        .get(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no message {id}")))?;
    let content = m
        .content
        .into_iter()
        .map(|c| {
            let (encoding, data) = engine::ops::text_or_hex(c.bytes);
            ContentView {
                destination: c.destination,
                stage: c.stage,
                created_at: c.created_at,
                encoding,
                data,
            }
        })
        .collect();
    Ok(Json(MessageView {
        summary: m.summary,
        metadata: m.metadata,
        destinations: m.destinations,
        content,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ReprocessBody {
    /// Only to these destinations (names or numbers).
    destinations: Option<Vec<String>>,
}

/// The destinations a reprocessing goes to: from the body (`{"destinations": [...]}`, any
/// or no content type) or the `destinations` query parameter (comma-separated, repeatable),
/// not both; `None` means every destination. Removes `destinations` from `params`.
fn reprocess_destinations(
    params: &mut Vec<(String, String)>,
    body: &Bytes,
) -> ApiResult<Option<Vec<String>>> {
    let mut from_query: Option<Vec<String>> = None;
    params.retain(|(k, v)| {
        if k != "destinations" {
            return true;
        }
        from_query
            .get_or_insert_with(Vec::new)
            .extend(v.split(',').map(|d| d.trim().to_owned()));
        false
    });
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ReprocessBody>(body)
            .map_err(|e| bad_request(format!("request body: {e}")))?
            .destinations
    };
    let chosen = match (from_query, from_body) {
        (Some(_), Some(_)) => {
            return Err(bad_request(
                "give destinations in the body or in the query, not both",
            ));
        }
        (q, b) => q.or(b),
    };
    if let Some(list) = &chosen
        && (list.is_empty() || list.iter().any(String::is_empty))
    {
        return Err(bad_request(
            "destinations must name at least one destination, and no empty name",
        ));
    }
    Ok(chosen)
}

async fn reprocess_one(
    State(s): State<AdminState>,
    ApiPath(id): ApiPath<String>,
    Params(mut params): Params,
    body: Bytes,
) -> ApiResult<Json<engine::ops::Reprocessed>> {
    let id = message_id(&id)?;
    let only = reprocess_destinations(&mut params, &body)?;
    if let Some((k, _)) = params.first() {
        return Err(bad_request(format!("unknown parameter {k:?}")));
    }
    Ok(Json(s.engine.reprocess(id, only.as_deref()).await?))
}

#[derive(Serialize)]
struct ReprocessMatchingResult {
    count: usize,
    reprocessed: Vec<engine::ops::Reprocessed>,
    failed: Vec<engine::ops::ReprocessFailure>,
}

async fn reprocess_matching(
    State(s): State<AdminState>,
    Params(mut params): Params,
    body: Bytes,
) -> ApiResult<Json<ReprocessMatchingResult>> {
    let only = reprocess_destinations(&mut params, &body)?;
    let f = filter_from(&params)?;
    // `limit` and `before` page through a search; they do not choose messages
    let choosing = MessageFilter {
        limit: None,
        before_id: None,
        ..f.clone()
    };
    if choosing == MessageFilter::default() {
        return Err(bad_request(
            "give at least one search parameter besides limit and before (e.g. channel, from, to); refusing to reprocess everything",
        ));
    }
    let report = s.engine.reprocess_matching(&f, only.as_deref()).await?;
    Ok(Json(ReprocessMatchingResult {
        count: report.reprocessed.len(),
        reprocessed: report.reprocessed,
        failed: report.failed,
    }))
}

#[derive(Serialize)]
struct QueueView {
    channel: String,
    destination: String,
    queue: String,
    paused: bool,
    depth: store::QueueDepth,
}

#[derive(Serialize)]
struct QueuesView {
    queues: Vec<QueueView>,
}

async fn queues(State(s): State<AdminState>) -> ApiResult<Json<QueuesView>> {
    let mut out = Vec::new();
    for ch in s.engine.channels() {
        for d in &ch.pipeline.destinations {
            let queue = ch.queue(d.number);
            let depth = s.engine.store().queue_depth(&queue).await?;
            out.push(QueueView {
                channel: ch.name().to_owned(),
                destination: d.name.clone(),
                queue,
                paused: ch.destination_paused(d.number),
                depth,
            });
        }
    }
    Ok(Json(QueuesView { queues: out }))
}

#[cfg(test)]
pub(crate) mod tests;
