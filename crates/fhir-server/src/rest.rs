//! The FHIR RESTful interactions: read, vread, create, update, patch, delete, history,
//! search, and the operations `$everything` and `$validate`.
//!
//! Each interaction is a plain async function from a [`Req`] to a [`Reply`], so the HTTP
//! handlers and the entries of a batch share one implementation.

use std::sync::Arc;

use auth::scopes::{Decision, Perm};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fhir::search::{Filter, Predicate, SearchRequest, Test, TotalMode};
use serde_json::{Value, json};
use store::resources::{
    HistoryMethod, HistoryQuery, Precondition, ResourceWrite, Resources as _, StoredResource,
    WriteOp, WriteOutcome,
};
use store::{AnyStore, Timestamp};

use crate::access::Guard;
use crate::bundle::{BundleWriter, Entry};
use crate::error::{FhirError, Issue, outcome};
use crate::format::{Format, Prefer, RESULT_PARAMS, Return, Summary};
use crate::{FHIR_JSON, FhirConfig};

/// What every interaction shares.
#[derive(Clone)]
pub struct FhirState {
    /// The store.
    pub store: Arc<AnyStore>,
    /// Settings.
    pub config: Arc<FhirConfig>,
    /// Verifies bearer tokens; `None` serves without authorization.
    pub authenticator: Option<Arc<dyn crate::access::Authenticator>>,
    /// Where every access is recorded; `None` records nothing.
    pub access_log: Option<Arc<dyn crate::access::AccessLog>>,
}

/// One request, as the interactions see it.
#[derive(Debug, Clone, Default)]
pub struct Req {
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The answer's shape.
    pub format: Format,
    /// The `Prefer` header.
    pub prefer: Prefer,
    /// The caller's access rights.
    pub guard: Guard,
}

impl Req {
    /// Reads the query string and headers; fails with 406/400 on a format we cannot answer.
    pub fn new(raw_query: Option<&str>, headers: HeaderMap) -> Result<Self, FhirError> {
        let query: Vec<(String, String)> = raw_query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let format = Format::from_request(&query, &headers)?;
        let prefer = Prefer::from_headers(&headers);
        Ok(Self {
            query,
            headers,
            format,
            prefer,
            guard: Guard::open(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The answer of an interaction, before it becomes an HTTP response or a batch entry.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The resource version the answer is about (gives ETag, Last-Modified, Location).
    pub resource: Option<StoredResource>,
    /// The body, when it is not the resource (a Bundle, an OperationOutcome).
    pub body: Option<Vec<u8>>,
    /// Whether to send `Location`.
    pub location: bool,
    /// For writes: the body is chosen by `Prefer: return=`.
    pub write: bool,
}

impl Reply {
    /// A read's answer: the resource version, no `Location`.
    pub fn resource(status: StatusCode, stored: StoredResource) -> Self {
        Self {
            status,
            resource: Some(stored),
            body: None,
            location: false,
            write: false,
        }
    }

    /// A write's answer: the version written, with `Location`, the body chosen by `Prefer`.
    pub fn written(status: StatusCode, stored: StoredResource) -> Self {
        Self {
            status,
            resource: Some(stored),
            body: None,
            location: true,
            write: true,
        }
    }

    /// An answer whose body is not a resource version (a Bundle, an OperationOutcome).
    pub fn body(status: StatusCode, body: Vec<u8>) -> Self {
        Self {
            status,
            resource: None,
            body: Some(body),
            location: false,
            write: false,
        }
    }

    /// `W/"version"` of the resource, if any.
    pub fn etag(&self) -> Option<String> {
        self.resource
            .as_ref()
            .map(|r| format!("W/\"{}\"", r.version))
    }

    /// `Type/id/_history/version` of the resource, relative to the base.
    pub fn location_path(&self) -> Option<String> {
        self.resource
            .as_ref()
            .filter(|_| self.location)
            .map(|r| format!("{}/{}/_history/{}", r.resource_type, r.id, r.version))
    }

    /// The body to send: a Bundle or OperationOutcome body or the resource (moved out, not
    /// copied; the resource shaped as asked), an OperationOutcome, or nothing. The resource
    /// keeps everything but its content (the headers come from it).
    fn take_body(&mut self, req: &Req) -> Vec<u8> {
        if let Some(body) = self.body.take() {
            return body;
        }
        let Some(stored) = &mut self.resource else {
            return Vec::new();
        };
        let ret = if self.write {
            req.prefer.ret.unwrap_or_default()
        } else {
            Return::Representation
        };
        match ret {
            Return::Minimal => Vec::new(),
            Return::OperationOutcome => req.format.to_bytes(&outcome(&[Issue::info(
                "informational",
                format!(
                    "{}/{} version {} stored",
                    stored.resource_type, stored.id, stored.version
                ),
            )])),
            Return::Representation if stored.deleted => Vec::new(),
            Return::Representation => req
                .format
                .resource_body(std::mem::take(&mut stored.content)),
        }
    }

    /// The HTTP response.
    pub fn into_http(mut self, req: &Req, base: &str) -> Response {
        let body = self.take_body(req);
        let mut headers = HeaderMap::new();
        if !body.is_empty() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        }
        if let Some(etag) = self.etag().and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(stored) = &self.resource
            && let Ok(v) = HeaderValue::from_str(&http_date(stored.last_updated))
        {
            headers.insert(header::LAST_MODIFIED, v);
        }
        if let Some(path) = self.location_path()
            && let Ok(v) = HeaderValue::from_str(&format!("{base}/{path}"))
        {
            headers.insert(header::LOCATION, v.clone());
            headers.insert(header::CONTENT_LOCATION, v);
        }
        (self.status, headers, body).into_response()
    }
}

/// An HTTP date (`Wed, 25 Nov 2026 19:00:00 GMT`).
pub fn http_date(t: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(t.as_micros())
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

/// Checks a resource type in a URL: 404 if FHIR R4 has no such (concrete) type.
pub fn check_type(resource_type: &str) -> Result<(), FhirError> {
    if fhir::defs::is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(FhirError::not_found(format!(
            "unknown resource type {resource_type:?}"
        )))
    }
}

/// Checks a logical id: `[A-Za-z0-9\-\.]{1,64}`, else 400.
pub fn check_id(id: &str) -> Result<(), FhirError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::bad_request(format!(
            "{id:?} is not a valid resource id ([A-Za-z0-9-.], 1 to 64 characters)"
        )))
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A new server-assigned id.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// Parses a request body as a resource of `resource_type` (any type when `None`).
pub fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
    resource_type: Option<&str>,
) -> Result<Value, FhirError> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !crate::format::is_json_mime(ct)
    {
        return Err(FhirError::unsupported_media_type(format!(
            "Content-Type {ct} is not supported; send application/fhir+json"
        )));
    }
    parse_resource(body, resource_type)
}

/// Parses JSON bytes as a resource of `resource_type` (any type when `None`).
pub fn parse_resource(body: &[u8], resource_type: Option<&str>) -> Result<Value, FhirError> {
    if body.is_empty() {
        return Err(FhirError::bad_request("the request has no body"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Some(actual) = value.get("resourceType").and_then(Value::as_str) else {
        return Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            "the body is not a FHIR resource: it has no resourceType",
        ));
    };
    if let Some(expected) = resource_type
        && actual != expected
    {
        return Err(FhirError::bad_request(format!(
            "the body is a {actual}, but the URL names {expected}"
        )));
    }
    Ok(value)
}

/// Validates a resource for a write: 422 with the validator's issues when invalid.
pub fn validate(resource: &Value) -> Result<(), FhirError> {
    fhir::validate::validate(resource).map_err(|issues| {
        FhirError::unprocessable(issues.iter().map(crate::validation_issue).collect())
    })
}

/// The search index rows of a resource that the store keeps.
pub fn index(resource: &Value) -> Result<Vec<fhir::index::IndexEntry>, FhirError> {
    fhir::index::extract_stored(resource)
        .map_err(|e| FhirError::unprocessable(vec![Issue::error("processing", e.to_string())]))
}

/// A write of `resource` (validated and indexed here).
pub fn prepare_write(
    op: WriteOp,
    resource_type: &str,
    id: &str,
    mut resource: Value,
    precondition: Precondition,
) -> Result<ResourceWrite, FhirError> {
    resource["id"] = Value::String(id.to_owned());
    validate(&resource)?;
    let index = index(&resource)?;
    Ok(ResourceWrite {
        op,
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        resource: Some(resource),
        index,
        precondition,
    })
}

/// Runs one write and returns its outcome.
async fn write_one(
    state: &FhirState,
    guard: &Guard,
    mut write: ResourceWrite,
) -> Result<WriteOutcome, FhirError> {
    guard.check_write(state, &mut write).await?;
    let mut outcomes = state.store.write(vec![write]).await?;
    outcomes
        .pop()
        .ok_or_else(|| FhirError::bad_request("the store returned no outcome"))
}

/// `If-Match: W/"3"` → 3.
fn if_match(req: &Req) -> Result<Option<u64>, FhirError> {
    version_precondition("If-Match", req.header("if-match"))
}

/// The version an `If-Match` header or a Bundle entry's `ifMatch` (`what`) names, if given;
/// 400 when it is not a version ETag.
pub fn version_precondition(what: &str, value: Option<&str>) -> Result<Option<u64>, FhirError> {
    let Some(v) = value else {
        return Ok(None);
    };
    parse_etag(v).map(Some).ok_or_else(|| {
        FhirError::bad_request(format!("{what} {v:?} is not a version ETag like W/\"3\""))
    })
}

/// `W/"3"` or `"3"` or `3` → 3.
pub fn parse_etag(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse().ok()
}

/// Parses a search for `resource_type` from decoded query pairs, honouring
/// `Prefer: handling=lenient` (unknown parameters are then dropped).
pub fn parse_search(
    state: &FhirState,
    resource_type: Option<&str>,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<SearchRequest, FhirError> {
    // A reference given as an absolute URL on this server is a local `Type/id`.
    let own = format!("{}/", state.config.base_url);
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !RESULT_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.replace(&own, "")))
        .collect();
    let options = fhir::search::SearchOptions {
        default_count: state.config.default_count,
        max_count: state.config.max_count,
    };
    loop {
        match fhir::search::parse(resource_type, &pairs, &options) {
            Ok(request) => return Ok(request),
            Err(e @ fhir::search::SearchError::UnknownParameter { .. }) if lenient => {
                let fhir::search::SearchError::UnknownParameter { param, .. } = &e else {
                    return Err(FhirError::bad_request(e.to_string()));
                };
                let before = pairs.len();
                pairs.retain(|(k, _)| k != param);
                if pairs.len() == before {
                    return Err(FhirError::bad_request(e.to_string()));
                }
            }
            Err(e) => return Err(FhirError::bad_request(e.to_string())),
        }
    }
}

/// A search given as a query string (`If-None-Exist`, conditional URLs).
pub fn parse_search_query(
    state: &FhirState,
    resource_type: &str,
    query: &str,
) -> Result<SearchRequest, FhirError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        return Err(FhirError::bad_request(
            "a conditional operation needs search parameters",
        ));
    }
    let mut search = parse_search(state, Some(resource_type), &pairs, false)?;
    search.count = 2;
    search.offset = 0;
    search.total = TotalMode::None;
    Ok(search)
}

/// A conditional operation's search (`If-None-Exist`, `ifNoneExist`): `identifier=x`, or
/// `Patient?identifier=x` as some clients send it.
pub fn conditional_search(
    state: &FhirState,
    resource_type: &str,
    cond: &str,
) -> Result<SearchRequest, FhirError> {
    let query = cond.split_once('?').map_or(cond, |(_, q)| q);
    parse_search_query(state, resource_type, query.trim())
}

// ---------------------------------------------------------------------------------------
// The interactions.

/// `GET [type]/[id]`.
pub async fn read(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    req: &Req,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    check_id(id)?;
    req.guard
        .check_stored(state, resource_type, id, Perm::Read)
        .await?;
    let stored = state
        .store
        .read(resource_type, id, None)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{resource_type}/{id} is not known")))?;
    if stored.deleted {
        return Err(FhirError::gone(resource_type, id));
    }
    if let Some(inm) = req.header("if-none-match")
        && parse_etag(inm) == Some(stored.version)
    {
        return Ok(not_modified(stored));
    }
    if let Some(ims) = req.header("if-modified-since")
        && let Ok(since) = chrono::DateTime::parse_from_rfc2822(ims)
    {
        // Last-Modified has whole seconds: compare at that precision.
        if stored.last_updated.as_micros() / 1_000_000 <= since.timestamp() {
            return Ok(not_modified(stored));
        }
    }
    Ok(Reply::resource(StatusCode::OK, stored))
}

fn not_modified(stored: StoredResource) -> Reply {
    Reply {
        status: StatusCode::NOT_MODIFIED,
        resource: Some(stored),
        body: Some(Vec::new()),
        location: false,
        write: false,
    }
}

/// `GET [type]/[id]/_history/[vid]`.
pub async fn vread(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    version: &str,
    guard: &Guard,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    check_id(id)?;
    guard
        .check_stored(state, resource_type, id, Perm::Read)
        .await?;
    let v: u64 = version
        .parse()
        .map_err(|_| FhirError::bad_request(format!("{version:?} is not a version number")))?;
    let stored = state
        .store
        .read(resource_type, id, Some(v))
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{resource_type}/{id} has no version {v}")))?;
    if stored.deleted {
        return Err(FhirError::new(
            StatusCode::GONE,
            "deleted",
            format!("version {v} of {resource_type}/{id} is a deletion"),
        ));
    }
    Ok(Reply::resource(StatusCode::OK, stored))
}

/// `POST [type]` (with `If-None-Exist` for a conditional create).
pub async fn create(
    state: &FhirState,
    resource_type: &str,
    resource: Value,
    if_none_exist: Option<&str>,
    guard: &Guard,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    let precondition = match if_none_exist {
        Some(q) => Precondition::IfNoneExist(conditional_search(state, resource_type, q)?),
        None => Precondition::None,
    };
    let id = new_id();
    let write = prepare_write(WriteOp::Create, resource_type, &id, resource, precondition)?;
    match write_one(state, guard, write).await? {
        WriteOutcome::Created(stored) => Ok(Reply::written(StatusCode::CREATED, stored)),
        WriteOutcome::Existing(stored) => Ok(Reply::written(StatusCode::OK, stored)),
        other => Err(outcome_error_for(resource_type, &other)),
    }
}

/// The error for a write outcome that is not a success.
pub fn outcome_error_for(resource_type: &str, outcome: &WriteOutcome) -> FhirError {
    match outcome {
        WriteOutcome::MultipleMatches => FhirError::precondition_failed(format!(
            "the conditional search matched more than one {resource_type}"
        )),
        WriteOutcome::VersionConflict(Some(v)) => {
            FhirError::precondition_failed(format!("version conflict: the current version is {v}"))
        }
        WriteOutcome::VersionConflict(None) => {
            FhirError::precondition_failed("version conflict: the resource does not exist")
        }
        WriteOutcome::NotFound => FhirError::not_found(format!("no such {resource_type}")),
        WriteOutcome::MatchAppeared(r) => FhirError::new(
            StatusCode::CONFLICT,
            "transient",
            format!(
                "{}/{} was created concurrently and matches this conditional create; nothing was stored, send the request again",
                r.resource_type, r.id
            ),
        ),
        _ => FhirError::conflict("unexpected write outcome"),
    }
}

/// `PUT [type]/[id]` (create-on-update, `If-Match`).
pub async fn update(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    resource: Value,
    req: &Req,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    check_id(id)?;
    match resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(FhirError::bad_request(format!(
                "the body's id {body_id:?} differs from the URL's id {id:?}"
            )));
        }
        None => {
            return Err(FhirError::bad_request(
                "an update needs the resource's id in the body",
            ));
        }
    }
    let precondition = match if_match(req)? {
        Some(v) => Precondition::IfMatch(v),
        None => Precondition::None,
    };
    let write = prepare_write(WriteOp::Update, resource_type, id, resource, precondition)?;
    written(resource_type, write_one(state, &req.guard, write).await?)
}

fn written(resource_type: &str, outcome: WriteOutcome) -> Result<Reply, FhirError> {
    match outcome {
        WriteOutcome::Created(stored) => Ok(Reply::written(StatusCode::CREATED, stored)),
        WriteOutcome::Updated(stored) => Ok(Reply::written(StatusCode::OK, stored)),
        other => Err(outcome_error_for(resource_type, &other)),
    }
}

/// `PUT [type]?search`: update the one match, or create when none matches.
pub async fn conditional_update(
    state: &FhirState,
    resource_type: &str,
    resource: Value,
    query: &str,
    guard: &Guard,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    let search = parse_search_query(state, resource_type, query)?;
    let id = match resource.get("id").and_then(Value::as_str) {
        Some(id) => {
            check_id(id)?;
            id.to_owned()
        }
        None => new_id(),
    };
    // Where the search matches, the store writes to the match; the id must then agree.
    let page = state.store.search(&search).await?;
    if let [only] = page.matches.as_slice()
        && resource.get("id").is_some()
        && only.id != id
    {
        return Err(FhirError::bad_request(format!(
            "the body's id {id:?} differs from the matching resource's id {:?}",
            only.id
        )));
    }
    let write = prepare_write(
        WriteOp::Update,
        resource_type,
        &id,
        resource,
        Precondition::Match(search),
    )?;
    written(resource_type, write_one(state, guard, write).await?)
}

/// `PATCH [type]/[id]` with a JSON Patch (`application/json-patch+json`).
pub async fn patch(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    body: &[u8],
    req: &Req,
) -> Result<Reply, FhirError> {
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json-patch+json") {
        return Err(FhirError::unsupported_media_type(format!(
            "PATCH takes a JSON Patch (Content-Type application/json-patch+json), not {ct:?}"
        )));
    }
    let expected = if_match(req)?;
    let write = patched_write(state, resource_type, id, body, expected).await?;
    match write_one(state, &req.guard, write).await? {
        WriteOutcome::Updated(stored) => Ok(Reply::written(StatusCode::OK, stored)),
        WriteOutcome::VersionConflict(_) if expected.is_none() => Err(FhirError::conflict(
            "the resource changed while the patch was applied; try again",
        )),
        other => Err(outcome_error_for(resource_type, &other)),
    }
}

/// The update a JSON Patch (`body`) makes of the current version of a resource: validated,
/// indexed, and conditional on that version (`expected`, from `If-Match`, must be it).
pub async fn patched_write(
    state: &FhirState,
    resource_type: &str,
    id: &str,
    body: &[u8],
    expected: Option<u64>,
) -> Result<ResourceWrite, FhirError> {
    check_type(resource_type)?;
    check_id(id)?;
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| FhirError::bad_request(format!("the body is not a JSON Patch: {e}")))?;
    let current = state
        .store
        .read(resource_type, id, None)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{resource_type}/{id} is not known")))?;
    if current.deleted {
        return Err(FhirError::gone(resource_type, id));
    }
    if let Some(v) = expected
        && v != current.version
    {
        return Err(FhirError::precondition_failed(format!(
            "version conflict: the current version is {}",
            current.version
        )));
    }
    let mut resource: Value = serde_json::from_slice(&current.content)
        .map_err(|e| FhirError::bad_request(format!("the stored resource is not JSON: {e}")))?;
    json_patch::patch(&mut resource, &patch).map_err(|e| {
        FhirError::unprocessable(vec![Issue::error(
            "processing",
            format!("the patch cannot be applied: {e}"),
        )])
    })?;
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type)
        || resource.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(FhirError::unprocessable(vec![Issue::error(
            "processing",
            "a patch may not change the resource's type or id",
        )]));
    }
    strip_version_meta(&mut resource);
    prepare_write(
        WriteOp::Update,
        resource_type,
        id,
        resource,
        Precondition::IfMatch(current.version),
    )
}

/// Removes `meta.versionId` and `meta.lastUpdated` (the store sets them), and `meta` itself
/// when nothing else is left in it (FHIR JSON has no empty objects).
pub fn strip_version_meta(resource: &mut Value) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let empty = obj
        .get_mut("meta")
        .and_then(Value::as_object_mut)
        .is_some_and(|meta| {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            meta.is_empty()
        });
    if empty {
        obj.remove("meta");
    }
}

/// `DELETE [type]/[id]`, or `DELETE [type]?search` when `query` is given.
pub async fn delete(
    state: &FhirState,
    resource_type: &str,
    id: Option<&str>,
    query: Option<&str>,
    guard: &Guard,
) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    let (id, precondition) = match (id, query) {
        (Some(id), _) => {
            check_id(id)?;
            (id.to_owned(), Precondition::None)
        }
        (None, Some(q)) => (
            String::new(),
            Precondition::Match(parse_search_query(state, resource_type, q)?),
        ),
        (None, None) => {
            return Err(FhirError::method_not_allowed(
                "DELETE on a type needs search parameters (conditional delete)",
            ));
        }
    };
    let write = ResourceWrite {
        op: WriteOp::Delete,
        resource_type: resource_type.to_owned(),
        id,
        resource: None,
        index: Vec::new(),
        precondition,
    };
    match write_one(state, guard, write).await? {
        WriteOutcome::Deleted(stored) => {
            let text = format!("{}/{} deleted", stored.resource_type, stored.id);
            Ok(Reply {
                resource: Some(stored),
                ..Reply::body(
                    StatusCode::OK,
                    serde_json::to_vec(&outcome(&[Issue::info("informational", text)]))
                        .unwrap_or_default(),
                )
            })
        }
        WriteOutcome::NotFound => Ok(Reply::body(
            StatusCode::OK,
            serde_json::to_vec(&outcome(&[Issue::info(
                "informational",
                "nothing to delete",
            )]))
            .unwrap_or_default(),
        )),
        other => Err(outcome_error_for(resource_type, &other)),
    }
}

/// The query string of a page link: the search's own parameters, then `_count`/`_offset`.
fn page_query(req: &Req, count: usize, offset: usize) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &req.query {
        if k != "_offset" && k != "_count" {
            s.append_pair(k, v);
        }
    }
    s.append_pair("_count", &count.to_string());
    s.append_pair("_offset", &offset.to_string());
    s.finish()
}

/// `GET [type]?…`, `POST [type]/_search`, `GET /?…` (system search when `resource_type`
/// is `None`).
pub async fn search(
    state: &FhirState,
    resource_type: Option<&str>,
    params: &[(String, String)],
    req: &Req,
) -> Result<Reply, FhirError> {
    if let Some(t) = resource_type {
        check_type(t)?;
    }
    let mut request = parse_search(state, resource_type, params, req.prefer.lenient)?;
    if req.format.summary == Summary::Count {
        request.count = 0;
        request.total = TotalMode::Accurate;
    }
    match resource_type {
        Some(t) => {
            let decision = req.guard.decide(t, Perm::Search)?;
            req.guard.restrict(t, &decision, &mut request)?;
        }
        None => req.guard.require_all_types(Perm::Search)?,
    }
    let mut page = state.store.search(&request).await?;
    page.included = req
        .guard
        .filter_included(state, std::mem::take(&mut page.included))
        .await?;
    let base = &state.config.base_url;
    let path = match resource_type {
        Some(t) => format!("{base}/{t}"),
        None => base.clone(),
    };
    let mut links = vec![(
        "self",
        format!("{path}?{}", page_query(req, request.count, request.offset)),
    )];
    let more = match page.total {
        Some(total) => {
            (request.offset + page.matches.len()) < usize::try_from(total).unwrap_or(usize::MAX)
        }
        None => request.count > 0 && page.matches.len() == request.count,
    };
    if more && request.count > 0 {
        links.push((
            "next",
            format!(
                "{path}?{}",
                page_query(req, request.count, request.offset + request.count)
            ),
        ));
    }
    if request.offset > 0 && request.count > 0 {
        links.push((
            "previous",
            format!(
                "{path}?{}",
                page_query(
                    req,
                    request.count,
                    request.offset.saturating_sub(request.count)
                )
            ),
        ));
    }
    let mut bundle = BundleWriter::new("searchset", page.total, &links);
    for (resources, mode) in [(&page.matches, "match"), (&page.included, "include")] {
        for r in resources {
            let full_url = format!("{base}/{}/{}", r.resource_type, r.id);
            bundle.entry(
                &Entry {
                    full_url: Some(&full_url),
                    resource: Some(&r.content),
                    search_mode: Some(mode),
                    ..Entry::default()
                },
                &req.format,
            );
        }
    }
    Ok(Reply::body(StatusCode::OK, bundle.finish(&req.format)))
}

/// `GET [type]/[id]/_history`, `GET [type]/_history`, `GET /_history`.
pub async fn history(
    state: &FhirState,
    resource_type: Option<&str>,
    id: Option<&str>,
    req: &Req,
) -> Result<Reply, FhirError> {
    if let Some(t) = resource_type {
        check_type(t)?;
    }
    if let Some(id) = id {
        check_id(id)?;
    }
    let mut query = HistoryQuery {
        resource_type: resource_type.map(str::to_owned),
        id: id.map(str::to_owned),
        since: None,
        count: state.config.default_count,
        offset: 0,
    };
    for (k, v) in &req.query {
        match k.as_str() {
            "_since" => {
                query.since = Some(parse_instant(v).ok_or_else(|| {
                    FhirError::bad_request(format!("_since={v} is not an instant"))
                })?);
            }
            "_count" => {
                query.count = v
                    .parse::<usize>()
                    .map_err(|_| FhirError::bad_request(format!("_count={v} is not a number")))?
                    .min(state.config.max_count);
            }
            "_offset" => {
                query.offset = v
                    .parse()
                    .map_err(|_| FhirError::bad_request(format!("_offset={v} is not a number")))?;
            }
            k if RESULT_PARAMS.contains(&k) => {}
            "_at" | "_list" | "_sort" => {
                return Err(FhirError::bad_request(format!(
                    "history parameter {k} is not supported"
                )));
            }
            other => {
                return Err(FhirError::bad_request(format!(
                    "unknown history parameter {other}"
                )));
            }
        }
    }
    history_access(state, resource_type, id, &req.guard).await?;
    if let (Some(t), Some(i)) = (resource_type, id)
        && state.store.read(t, i, None).await?.is_none()
    {
        return Err(FhirError::not_found(format!("{t}/{i} is not known")));
    }
    let page = state.store.history(&query).await?;
    let base = &state.config.base_url;
    let path = match (resource_type, id) {
        (Some(t), Some(i)) => format!("{base}/{t}/{i}/_history"),
        (Some(t), None) => format!("{base}/{t}/_history"),
        _ => format!("{base}/_history"),
    };
    let mut links = vec![(
        "self",
        format!("{path}?{}", page_query(req, query.count, query.offset)),
    )];
    if ((query.offset + page.versions.len()) as u64) < page.total && query.count > 0 {
        links.push((
            "next",
            format!(
                "{path}?{}",
                page_query(req, query.count, query.offset + query.count)
            ),
        ));
    }
    let mut bundle = BundleWriter::new("history", Some(page.total), &links);
    for v in &page.versions {
        let full_url = format!("{base}/{}/{}", v.resource_type, v.id);
        let (method, url, status) = match v.method {
            HistoryMethod::Create => ("POST", v.resource_type.clone(), "201 Created"),
            HistoryMethod::Update => ("PUT", format!("{}/{}", v.resource_type, v.id), "200 OK"),
            HistoryMethod::Delete => (
                "DELETE",
                format!("{}/{}", v.resource_type, v.id),
                "204 No Content",
            ),
        };
        bundle.entry(
            &Entry {
                full_url: Some(&full_url),
                resource: (!v.deleted).then_some(v.content.as_slice()),
                request: Some(json!({"method": method, "url": url})),
                response: Some(json!({
                    "status": status,
                    "etag": format!("W/\"{}\"", v.version),
                    "lastModified": v.last_updated.to_string(),
                })),
                ..Entry::default()
            },
            &req.format,
        );
    }
    Ok(Reply::body(StatusCode::OK, bundle.finish(&req.format)))
}

/// Whether the caller may read this history: an instance's needs read access to it, a
/// type's or the system's an unrestricted scope (their entries are not filtered).
async fn history_access(
    state: &FhirState,
    resource_type: Option<&str>,
    id: Option<&str>,
    guard: &Guard,
) -> Result<(), FhirError> {
    match (resource_type, id) {
        (Some(t), Some(i)) => guard.check_stored(state, t, i, Perm::Read).await,
        (Some(t), None) => {
            if matches!(guard.decide(t, Perm::Search)?, Decision::All) {
                Ok(())
            } else {
                Err(FhirError::forbidden(format!(
                    "the history of all {t} resources needs an unrestricted scope on {t}"
                )))
            }
        }
        _ => guard.require_all_types(Perm::Search),
    }
}

/// An instant or dateTime with a time zone, as a timestamp (`_since`).
pub fn parse_instant(v: &str) -> Option<Timestamp> {
    if let Ok(t) = v.parse::<Timestamp>() {
        return Some(t);
    }
    // A date or partial dateTime: its first millisecond.
    fhir::index::date_range(v).map(|(low, _)| Timestamp::from_micros(low.saturating_mul(1000)))
}

/// `GET Patient/[id]/$everything`: the patient and every resource of its compartment.
pub async fn everything(state: &FhirState, id: &str, req: &Req) -> Result<Reply, FhirError> {
    let found = everything_resources(state, id, req).await?;
    let base = &state.config.base_url;
    let mut bundle = BundleWriter::new(
        "searchset",
        Some(found.len() as u64),
        &[("self", format!("{base}/Patient/{id}/$everything"))],
    );
    for r in &found {
        let full_url = format!("{base}/{}/{}", r.resource_type, r.id);
        bundle.entry(
            &Entry {
                full_url: Some(&full_url),
                resource: Some(&r.content),
                search_mode: Some("match"),
                ..Entry::default()
            },
            &req.format,
        );
    }
    Ok(Reply::body(StatusCode::OK, bundle.finish(&req.format)))
}

/// The resources of `Patient/[id]/$everything` (the Patient first) that the caller's guard
/// lets it see; also what `Patient/[id]/$ccd` writes its document from.
pub async fn everything_resources(
    state: &FhirState,
    id: &str,
    req: &Req,
) -> Result<Vec<StoredResource>, FhirError> {
    check_id(id)?;
    let patient = read(
        state,
        "Patient",
        id,
        &Req {
            guard: req.guard.clone(),
            ..Req::default()
        },
    )
    .await?;
    let Some(patient) = patient.resource else {
        return Err(FhirError::not_found(format!("Patient/{id} is not known")));
    };
    let mut found: Vec<StoredResource> = vec![patient];
    for resource_type in fhir::defs::resource_types() {
        let params = fhir::defs::patient_compartment(resource_type);
        if params.is_empty() || *resource_type == "Patient" {
            continue;
        }
        // Types the caller may not search are left out, restricted ones confined.
        let Ok(decision) = req.guard.decide(resource_type, Perm::Search) else {
            continue;
        };
        let mut request = SearchRequest {
            resource_type: Some((*resource_type).to_owned()),
            filters: vec![Filter {
                any: params
                    .iter()
                    .map(|p| Predicate {
                        param: (*p).to_owned(),
                        test: Test::Reference {
                            target_type: Some("Patient".to_owned()),
                            id: id.to_owned(),
                        },
                    })
                    .collect(),
            }],
            count: state.config.everything_limit,
            total: TotalMode::None,
            ..SearchRequest::default()
        };
        if req
            .guard
            .restrict(resource_type, &decision, &mut request)
            .is_err()
        {
            continue;
        }
        let page = state.store.search(&request).await?;
        found.extend(page.matches);
    }
    Ok(found)
}

/// `POST [type]/$validate` (or `[type]/[id]/$validate`), optionally `?profile=`: an
/// OperationOutcome, 200 whether or not the resource is valid.
pub fn validate_op(resource_type: &str, body: &[u8], req: &Req) -> Result<Reply, FhirError> {
    check_type(resource_type)?;
    let value = parse_resource(body, None)?;
    // A Parameters resource carries the resource in the parameter `resource`.
    let (resource, mut profile) = if value.get("resourceType").and_then(Value::as_str)
        == Some("Parameters")
        && resource_type != "Parameters"
    {
        let params = value
            .get("parameter")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let resource = params
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
            .and_then(|p| p.get("resource"))
            .cloned()
            .ok_or_else(|| FhirError::bad_request("Parameters has no `resource` parameter"))?;
        let profile = params
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("profile"))
            .and_then(|p| p.get("valueUri").or_else(|| p.get("valueCanonical")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        (resource, profile)
    } else {
        (value, None)
    };
    if let Some((_, p)) = req.query.iter().find(|(k, _)| k == "profile") {
        profile = Some(p.clone());
    }
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type) {
        return Err(FhirError::bad_request(format!(
            "the resource to validate is not a {resource_type}"
        )));
    }
    let mut issues: Vec<Issue> = match fhir::validate::validate(&resource) {
        Ok(()) => Vec::new(),
        Err(issues) => issues.iter().map(crate::validation_issue).collect(),
    };
    if let Some(profile) = &profile {
        match fhir::validate::validate_profile(&resource, profile) {
            Ok(()) => {}
            Err(more) => issues.extend(more.iter().map(crate::validation_issue)),
        }
    }
    if issues.is_empty() {
        issues.push(Issue::info("informational", "the resource is valid"));
    }
    Ok(Reply::body(
        StatusCode::OK,
        req.format.to_bytes(&outcome(&issues)),
    ))
}
