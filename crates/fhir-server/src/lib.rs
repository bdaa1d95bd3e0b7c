//! # fhir-server — the FHIR R4 REST API of Plexus
//!
//! This crate serves the FHIR R4 RESTful API (read, vread, create, update, patch, delete,
//! history, search, batch and transaction, `/metadata`, `$everything`, `$validate`) over
//! axum, on the same store as the message journal ([`store::AnyStore`]: SQLite or
//! PostgreSQL). Every write is validated against the FHIR R4 definitions
//! ([`fhir::validate`]), its search index rows are extracted ([`fhir::index`]) and stored in
//! the same transaction, and every search is SQL over those index rows. Errors are
//! OperationOutcomes with the status FHIR prescribes (400, 404, 410, 409, 412, 422, …).
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<store::AnyStore>) -> std::io::Result<()> {
//! let config = fhir_server::FhirConfig::new("http://127.0.0.1:8081/fhir");
//! let app = fhir_server::mount("/fhir", store, config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

pub mod access;
pub mod bundle;
pub mod capability;
pub mod convert_ops;
pub mod error;
pub mod format;
pub mod rest;
pub mod synth;
pub mod transaction;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use store::AnyStore;

mod guarded;

pub use access::{AccessEvent, AccessLog, AuthFailure, Authenticator, Guard, Interaction};
pub use error::{FhirError, Issue};
pub use rest::{FhirState, Reply, Req};

/// The media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Settings of the FHIR API.
#[derive(Debug, Clone)]
pub struct FhirConfig {
    /// The base URL clients use (`http://host:port/fhir`), for `fullUrl`, `Location` and
    /// paging links; no trailing slash.
    pub base_url: String,
    /// Page size of a search without `_count`.
    pub default_count: usize,
    /// The largest page size; a larger `_count` is reduced to it.
    pub max_count: usize,
    /// The most resources of one type `$everything` returns.
    pub everything_limit: usize,
    /// The largest request body (a transaction Bundle), in bytes.
    pub max_body_bytes: usize,
    /// The OAuth endpoints of the authorization server, announced in the
    /// CapabilityStatement's `rest.security`; `None` when the API is open.
    pub oauth: Option<OAuthUris>,
}

/// Where clients get and manage SMART tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthUris {
    /// The authorization endpoint.
    pub authorize: String,
    /// The token endpoint.
    pub token: String,
    /// The introspection endpoint (RFC 7662).
    pub introspect: String,
    /// The revocation endpoint (RFC 7009).
    pub revoke: String,
}

impl FhirConfig {
    /// Defaults for a server at `base_url`: pages of 20 (at most 1,000), bodies up to
    /// 64 MiB.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            default_count: 20,
            max_count: 1000,
            everything_limit: 10_000,
            max_body_bytes: 64 << 20,
            oauth: None,
        }
    }
}

/// The FHIR API at `prefix` (`/fhir`): [`router`] nested there, and the base with a trailing
/// slash (`/fhir/`, where some clients POST their Bundles) answered the same as the base.
pub fn mount(prefix: &str, store: Arc<AnyStore>, config: FhirConfig) -> Router {
    mount_with(prefix, store, config, Security::default())
}

/// Who may call the API and where accesses are recorded.
#[derive(Clone, Default)]
pub struct Security {
    /// Verifies bearer tokens; `None` serves everyone (no authorization).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Records every access (the audit trail); `None` records nothing.
    pub access_log: Option<Arc<dyn AccessLog>>,
    /// Routes served under the base without a token and not recorded
    /// (`/.well-known/smart-configuration`).
    pub public_routes: Option<Router>,
}

/// [`mount`] with authorization and an access log.
pub fn mount_with(
    prefix: &str,
    store: Arc<AnyStore>,
    config: FhirConfig,
    security: Security,
) -> Router {
    use tower::ServiceExt as _;
    let inner = router_with(store, config, security);
    let at_base = inner.clone();
    Router::new().nest(prefix, inner).route_service(
        &format!("{prefix}/"),
        tower::service_fn(move |mut req: axum::extract::Request| {
            let service = at_base.clone();
            async move {
                let path = req
                    .uri()
                    .query()
                    .map_or_else(|| "/".to_owned(), |q| format!("/?{q}"));
                if let Ok(uri) = path.parse() {
                    *req.uri_mut() = uri;
                }
                service.oneshot(req).await
            }
        }),
    )
}

/// The FHIR API, to be nested at the base path (`/fhir`); see [`mount`].
pub fn router(store: Arc<AnyStore>, config: FhirConfig) -> Router {
    router_with(store, config, Security::default())
}

/// [`router`] with authorization and an access log.
pub fn router_with(store: Arc<AnyStore>, config: FhirConfig, security: Security) -> Router {
    let limit = config.max_body_bytes;
    let public_routes = security.public_routes.unwrap_or_default();
    let state = FhirState {
        store,
        config: Arc::new(config),
        authenticator: security.authenticator,
        access_log: security.access_log,
    };
    Router::new()
        .route("/metadata", get(metadata))
        .route("/", get(system_search).post(batch))
        .route("/_history", get(system_history))
        .route(
            "/{type}",
            get(type_get)
                .post(type_post)
                .put(type_put)
                .delete(type_delete),
        )
        .route(
            "/{type}/{id}",
            get(instance_get)
                .post(instance_post)
                .put(instance_put)
                .patch(instance_patch)
                .delete(instance_delete),
        )
        .route("/{type}/{id}/{op}", get(operation).post(operation))
        .route("/{type}/{id}/_history/{vid}", get(vread))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guarded::layer,
        ))
        .with_state(state)
        .merge(public_routes)
}

/// The OperationOutcome issue for a validator issue.
pub fn validation_issue(issue: &fhir::validate::Issue) -> Issue {
    Issue {
        severity: issue.severity.as_str(),
        code: issue.code.as_str(),
        diagnostics: issue.message.clone(),
        expression: Some(issue.path.clone()),
    }
}

/// Turns an interaction's result into the HTTP response.
fn respond(state: &FhirState, req: &Req, result: Result<Reply, FhirError>) -> Response {
    match result {
        Ok(reply) => reply.into_http(req, &state.config.base_url),
        Err(e) => e.into_response(),
    }
}

/// Reads the request (query, headers) or answers its format error.
macro_rules! request {
    ($query:expr, $headers:expr) => {
        match Req::new($query.as_deref(), $headers) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        }
    };
    ($query:expr, $headers:expr, $guard:expr) => {
        match Req::new($query.as_deref(), $headers) {
            Ok(req) => Req {
                guard: $guard,
                ..req
            },
            Err(e) => return e.into_response(),
        }
    };
}

async fn not_found() -> Response {
    FhirError::not_found("no such FHIR endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    FhirError::method_not_allowed("this interaction is not supported on this URL").into_response()
}

async fn metadata(
    State(state): State<FhirState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers);
    let body = req.format.to_bytes(&capability::statement(&state.config));
    respond(&state, &req, Ok(Reply::body(StatusCode::OK, body)))
}

async fn system_search(
    State(state): State<FhirState>,
    guard: Guard,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::search(&state, None, &req.query, &req).await;
    respond(&state, &req, result)
}

async fn system_history(
    State(state): State<FhirState>,
    guard: Guard,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::history(&state, None, None, &req).await;
    respond(&state, &req, result)
}

async fn batch(
    State(state): State<FhirState>,
    guard: Guard,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    let result = transaction::batch_or_transaction(&state, &body, &req).await;
    respond(&state, &req, result)
}

async fn type_get(
    State(state): State<FhirState>,
    guard: Guard,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::search(&state, Some(&resource_type), &req.query, &req).await;
    respond(&state, &req, result)
}

async fn type_post(
    State(state): State<FhirState>,
    guard: Guard,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    if resource_type == "$convert-data" {
        let result = convert_ops::convert_data(&body, &req);
        return respond(&state, &req, result);
    }
    let result = async {
        let resource = rest::parse_body(&req.headers, &body, Some(&resource_type))?;
        let if_none_exist = req
            .headers
            .get("if-none-exist")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        rest::create(
            &state,
            &resource_type,
            resource,
            if_none_exist.as_deref(),
            &req.guard,
        )
        .await
    }
    .await;
    respond(&state, &req, result)
}

async fn type_put(
    State(state): State<FhirState>,
    guard: Guard,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = q.clone().unwrap_or_default();
    let req = request!(q, headers, guard);
    let result = async {
        let resource = rest::parse_body(&req.headers, &body, Some(&resource_type))?;
        rest::conditional_update(&state, &resource_type, resource, &query, &req.guard).await
    }
    .await;
    respond(&state, &req, result)
}

async fn type_delete(
    State(state): State<FhirState>,
    guard: Guard,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = q.clone().filter(|q| !q.is_empty());
    let req = request!(q, headers, guard);
    let result = rest::delete(&state, &resource_type, None, query.as_deref(), &req.guard).await;
    respond(&state, &req, result)
}

async fn instance_get(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = match id.as_str() {
        "_history" => rest::history(&state, Some(&resource_type), None, &req).await,
        "_search" => Err(FhirError::method_not_allowed("_search takes POST")),
        op if op.starts_with('$') => Err(FhirError::not_found(format!(
            "operation {op} is not supported on a type with GET"
        ))),
        _ => rest::read(&state, &resource_type, &id, &req).await,
    };
    respond(&state, &req, result)
}

async fn instance_post(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    let result = match id.as_str() {
        "_search" => search_post(&state, &resource_type, &body, &req).await,
        "$validate" => rest::validate_op(&resource_type, &body, &req),
        _ => Err(FhirError::method_not_allowed(
            "POST on a resource instance is not supported; use PUT to update",
        )),
    };
    respond(&state, &req, result)
}

/// `POST [type]/_search`: parameters from the form body and the query string.
async fn search_post(
    state: &FhirState,
    resource_type: &str,
    body: &[u8],
    req: &Req,
) -> Result<Reply, FhirError> {
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !body.is_empty() && !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(FhirError::unsupported_media_type(format!(
            "_search takes application/x-www-form-urlencoded, not {ct:?}"
        )));
    }
    let mut params = req.query.clone();
    params.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    let req = Req {
        query: params.clone(),
        ..req.clone()
    };
    rest::search(state, Some(resource_type), &params, &req).await
}

async fn instance_put(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    let result = async {
        let resource = rest::parse_body(&req.headers, &body, Some(&resource_type))?;
        rest::update(&state, &resource_type, &id, resource, &req).await
    }
    .await;
    respond(&state, &req, result)
}

async fn instance_patch(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::patch(&state, &resource_type, &id, &body, &req).await;
    respond(&state, &req, result)
}

async fn instance_delete(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::delete(&state, &resource_type, Some(&id), None, &req.guard).await;
    respond(&state, &req, result)
}

/// `GET|POST [type]/[id]/{op}`: instance history (GET), `Patient/[id]/$everything`,
/// `Patient/[id]/$ccd` (GET) and `$validate` (POST).
async fn operation(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id, op)): Path<(String, String, String)>,
    method: axum::http::Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = request!(q, headers, guard);
    let post = method == axum::http::Method::POST;
    let result = match op.as_str() {
        "_history" if !post => rest::history(&state, Some(&resource_type), Some(&id), &req).await,
        "$everything" if resource_type == "Patient" => rest::everything(&state, &id, &req).await,
        "$ccd" if resource_type == "Patient" && !post => {
            return convert_ops::ccd(&state, &id, &req).await;
        }
        "$validate" if post => rest::validate_op(&resource_type, &body, &req),
        _ => Err(FhirError::not_found(format!(
            "{op} is not supported on {resource_type}"
        ))),
    };
    respond(&state, &req, result)
}

async fn vread(
    State(state): State<FhirState>,
    guard: Guard,
    Path((resource_type, id, vid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = request!(q, headers, guard);
    let result = rest::vread(&state, &resource_type, &id, &vid, &req.guard).await;
    respond(&state, &req, result)
}
