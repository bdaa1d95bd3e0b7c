//! `POST /` with a Bundle: `batch` (each entry on its own) and `transaction` (all entries
//! in one store transaction: all or nothing).
//!
//! A transaction is planned before anything is written: new ids are given to created
//! resources, `urn:uuid:` (and other `fullUrl`) references are rewritten to them,
//! conditional creates and updates and conditional references (`Patient?identifier=…`) are
//! resolved by searches, then every write goes to the store in one call, in FHIR's order
//! (DELETE, POST, PUT). Reads (GET) run after the commit.

use std::collections::HashMap;

use auth::scopes::Perm;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use store::resources::{Precondition, ResourceWrite, Resources as _, WriteOp, WriteOutcome};

use crate::access::Guard;
use crate::bundle::{BundleWriter, Entry};
use crate::error::{FhirError, Issue};
use crate::format::Return;
use crate::rest::{self, FhirState, Reply, Req};

/// One entry's request.
#[derive(Debug, Clone)]
struct EntryRequest {
    method: String,
    /// The URL relative to the base, without the query.
    path: String,
    /// The query string, if any.
    query: Option<String>,
    resource: Option<Value>,
    full_url: Option<String>,
    if_none_exist: Option<String>,
    if_match: Option<String>,
    if_none_match: Option<String>,
}

/// Handles `POST /` with a batch or transaction Bundle.
pub async fn batch_or_transaction(
    state: &FhirState,
    body: &[u8],
    req: &Req,
) -> Result<Reply, FhirError> {
    let bundle = rest::parse_body(&req.headers, body, Some("Bundle"))?;
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let entries = parse_entries(state, bundle)?;
    match kind.as_str() {
        "batch" => Ok(batch(state, entries, req).await),
        "transaction" => match transaction(state, entries, req).await {
            // A conditional create's match appeared while the transaction was planned:
            // nothing was stored; plan it again, now seeing that match. The entries were
            // consumed (their resources moved into the writes), so they are read again from
            // the body: rarer than a copy of every resource for every transaction.
            Err(e) if e.issues.iter().any(|i| i.code == "transient") => {
                let bundle = rest::parse_body(&req.headers, body, Some("Bundle"))?;
                transaction(state, parse_entries(state, bundle)?, req).await
            }
            other => other,
        },
        other => Err(FhirError::bad_request(format!(
            "POST / takes a Bundle of type batch or transaction, not {other:?}"
        ))),
    }
}

/// The entries of a Bundle; their resources are moved out of it, not copied.
fn parse_entries(state: &FhirState, mut bundle: Value) -> Result<Vec<EntryRequest>, FhirError> {
    let Some(entries) = bundle.get_mut("entry") else {
        return Ok(Vec::new());
    };
    let entries = entries
        .as_array_mut()
        .ok_or_else(|| FhirError::bad_request("Bundle.entry must be an array"))?;
    entries
        .iter_mut()
        .enumerate()
        .map(|(i, e)| {
            let resource = e.get_mut("resource").map(Value::take);
            let request = e.get("request").ok_or_else(|| {
                FhirError::bad_request(format!("Bundle.entry[{i}] has no request"))
            })?;
            let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
            let method = text("method").ok_or_else(|| {
                FhirError::bad_request(format!("Bundle.entry[{i}].request has no method"))
            })?;
            let url = text("url").ok_or_else(|| {
                FhirError::bad_request(format!("Bundle.entry[{i}].request has no url"))
            })?;
            let url = url
                .strip_prefix(&state.config.base_url)
                .map_or(url.as_str(), |rest| rest)
                .trim_start_matches('/');
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (url.to_owned(), None),
            };
            Ok(EntryRequest {
                method,
                path,
                query,
                resource,
                full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
                if_none_exist: text("ifNoneExist"),
                if_match: text("ifMatch"),
                if_none_match: text("ifNoneMatch"),
            })
        })
        .collect()
}

/// The response part of an entry for a reply.
fn response_json(reply: &Reply, base: &str) -> Value {
    let reason = reply.status.canonical_reason().unwrap_or_default();
    let mut response = json!({"status": format!("{} {reason}", reply.status.as_u16())});
    if let Some(path) = reply.location_path() {
        response["location"] = json!(format!("{base}/{path}"));
    }
    if let Some(etag) = reply.etag() {
        response["etag"] = json!(etag);
    }
    if let Some(r) = &reply.resource {
        response["lastModified"] = json!(r.last_updated.to_string());
    }
    response
}

/// The response part of an entry for an error.
fn error_json(error: &FhirError) -> Value {
    let reason = error.status.canonical_reason().unwrap_or_default();
    json!({
        "status": format!("{} {reason}", error.status.as_u16()),
        "outcome": error.outcome(),
    })
}

/// The per-entry request as a [`Req`] (entry-level conditional headers).
fn entry_req(entry: &EntryRequest, outer: &Req) -> Req {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("if-match", &entry.if_match),
        ("if-none-match", &entry.if_none_match),
        ("if-none-exist", &entry.if_none_exist),
    ] {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let query = entry
        .query
        .as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Req {
        query,
        headers,
        format: crate::format::Format::default(),
        prefer: outer.prefer,
        guard: outer.guard.clone(),
    }
}

/// Runs one entry on its own (batch entries, and the reads of a transaction).
async fn run_entry(
    state: &FhirState,
    entry: &mut EntryRequest,
    outer: &Req,
) -> Result<Reply, FhirError> {
    let req = entry_req(entry, outer);
    let segments: Vec<&str> = entry.path.split('/').filter(|s| !s.is_empty()).collect();
    match (entry.method.as_str(), segments.as_slice()) {
        ("GET", [t]) => rest::search(state, Some(t), &req.query, &req).await,
        ("GET", [t, "_history"]) => rest::history(state, Some(t), None, &req).await,
        ("GET", [t, id]) => rest::read(state, t, id, &req).await,
        ("GET", ["Patient", id, "$everything"]) => rest::everything(state, id, &req).await,
        ("GET", [t, id, "_history"]) => rest::history(state, Some(t), Some(id), &req).await,
        ("GET", [t, id, "_history", v]) => rest::vread(state, t, id, v, &req.guard).await,
        ("POST", [t]) => {
            let resource = take_resource(&mut entry.resource, &entry.method, &entry.path, t)?;
            rest::create(
                state,
                t,
                resource,
                entry.if_none_exist.as_deref(),
                &req.guard,
            )
            .await
        }
        ("PUT", [t]) => {
            let resource = take_resource(&mut entry.resource, &entry.method, &entry.path, t)?;
            let query = entry.query.clone().unwrap_or_default();
            rest::conditional_update(state, t, resource, &query, &req.guard).await
        }
        ("PUT", [t, id]) => {
            let resource = take_resource(&mut entry.resource, &entry.method, &entry.path, t)?;
            rest::update(state, t, id, resource, &req).await
        }
        ("DELETE", [t]) => rest::delete(state, t, None, entry.query.as_deref(), &req.guard).await,
        ("DELETE", [t, id]) => rest::delete(state, t, Some(id), None, &req.guard).await,
        ("PATCH", [t, id]) => {
            let body = binary_patch(entry)?;
            let mut req = req.clone();
            req.headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json-patch+json"),
            );
            rest::patch(state, t, id, &body, &req).await
        }
        (m, _) => Err(FhirError::bad_request(format!(
            "{m} {} is not a supported Bundle entry request",
            entry.path
        ))),
    }
}

/// An entry's resource, which must be a `resource_type`.
fn entry_resource<'e>(
    entry: &'e EntryRequest,
    resource_type: &str,
) -> Result<&'e Value, FhirError> {
    check_resource(
        entry.resource.as_ref(),
        &entry.method,
        &entry.path,
        resource_type,
    )
}

/// An entry's resource (its `resource`, `method` and `path`), moved out of the entry: the
/// entry is not written twice.
fn take_resource(
    resource: &mut Option<Value>,
    method: &str,
    path: &str,
    resource_type: &str,
) -> Result<Value, FhirError> {
    check_resource(resource.as_ref(), method, path, resource_type)?;
    Ok(resource.take().unwrap_or_default())
}

fn check_resource<'v>(
    resource: Option<&'v Value>,
    method: &str,
    path: &str,
    resource_type: &str,
) -> Result<&'v Value, FhirError> {
    let resource = resource
        .ok_or_else(|| FhirError::bad_request(format!("{method} {path} has no resource")))?;
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type) {
        return Err(FhirError::bad_request(format!(
            "the resource of {method} {path} is not a {resource_type}"
        )));
    }
    Ok(resource)
}

/// Whether a write entry's response carries the resource.
fn with_resource(req: &Req) -> bool {
    req.prefer.ret == Some(Return::Representation)
}

/// Adds one response entry.
fn push_reply(bundle: &mut BundleWriter, reply: &Reply, req: &Req, base: &str, is_read: bool) {
    let resource = if is_read || with_resource(req) {
        let body = match &reply.body {
            Some(body) => body.as_slice(),
            None => reply
                .resource
                .as_ref()
                .filter(|r| !r.deleted)
                .map_or(&[][..], |r| r.content.as_slice()),
        };
        (!body.is_empty()).then_some(body)
    } else {
        None
    };
    let full_url = reply
        .resource
        .as_ref()
        .map(|r| format!("{base}/{}/{}", r.resource_type, r.id));
    bundle.entry(
        &Entry {
            full_url: full_url.as_deref(),
            resource,
            response: Some(response_json(reply, base)),
            ..Entry::default()
        },
        &req.format,
    );
}

async fn batch(state: &FhirState, entries: Vec<EntryRequest>, req: &Req) -> Reply {
    let base = &state.config.base_url;
    let mut bundle = BundleWriter::new("batch-response", None, &[]);
    for mut entry in entries {
        match run_entry(state, &mut entry, req).await {
            Ok(reply) => push_reply(&mut bundle, &reply, req, base, entry.method == "GET"),
            Err(e) => bundle.entry(
                &Entry {
                    response: Some(error_json(&e)),
                    ..Entry::default()
                },
                &req.format,
            ),
        }
    }
    Reply::body(StatusCode::OK, bundle.finish(&req.format))
}

/// What a transaction entry turned into.
enum Planned {
    /// A write, at this index of the store call.
    Write(usize),
    /// A conditional create that matched an existing resource: nothing to write.
    Existing(Reply),
    /// A read, run after the commit.
    Read,
}

async fn transaction(
    state: &FhirState,
    mut entries: Vec<EntryRequest>,
    req: &Req,
) -> Result<Reply, FhirError> {
    let base = state.config.base_url.clone();
    // 1. Ids of what is created or updated, and where each fullUrl points.
    let mut targets: Vec<Option<(String, String)>> = vec![None; entries.len()];
    let mut existing: Vec<Option<Reply>> = (0..entries.len()).map(|_| None).collect();
    let mut aliases: HashMap<String, String> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (target, found) = target_of(state, entry, &req.guard)
            .await
            .map_err(|e| at_entry(i, e))?;
        if let Some((t, id)) = &target {
            if let Some(j) = targets
                .iter()
                .position(|other| other.as_ref().is_some_and(|(ot, oi)| ot == t && oi == id))
            {
                return Err(at_entry(
                    i,
                    FhirError::bad_request(format!(
                        "{t}/{id} is also the target of Bundle.entry[{j}]; a transaction may change a resource only once"
                    )),
                ));
            }
            if let Some(full_url) = &entry.full_url {
                aliases.insert(full_url.clone(), format!("{t}/{id}"));
            }
        }
        targets[i] = target;
        existing[i] = found;
    }
    // 2. Rewrite references (fullUrl aliases, then conditional references).
    rewrite_all(state, &mut entries, &aliases, &req.guard).await?;
    // 3. The writes, in FHIR's order: DELETE, POST, PUT; then reads.
    let mut writes: Vec<ResourceWrite> = Vec::new();
    let mut planned: Vec<Option<Planned>> = (0..entries.len()).map(|_| None).collect();
    for pass in ["DELETE", "POST", "PUT", "PATCH"] {
        for (i, entry) in entries.iter_mut().enumerate() {
            if entry.method != pass {
                continue;
            }
            if let Some(reply) = existing[i].take() {
                planned[i] = Some(Planned::Existing(reply));
                continue;
            }
            let write = checked_write(state, entry, targets[i].as_ref(), &req.guard)
                .await
                .map_err(|e| at_entry(i, e))?;
            planned[i] = Some(Planned::Write(writes.len()));
            writes.push(write);
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        if planned[i].is_none() {
            if entry.method != "GET" {
                return Err(at_entry(
                    i,
                    FhirError::bad_request(format!(
                        "{} {} is not a supported transaction entry",
                        entry.method, entry.path
                    )),
                ));
            }
            planned[i] = Some(Planned::Read);
        }
    }
    // 4. One atomic write.
    let outcomes = state.store.write(writes).await?;
    if let Some((k, bad)) = outcomes.iter().enumerate().find(|(_, o)| o.is_failure()) {
        let i = planned
            .iter()
            .position(|p| matches!(p, Some(Planned::Write(w)) if *w == k))
            .unwrap_or_default();
        let t = targets[i].as_ref().map_or("resource", |(t, _)| t.as_str());
        return Err(at_entry(i, crate::rest::outcome_error_for(t, bad)));
    }
    let mut outcomes: Vec<Option<WriteOutcome>> = outcomes.into_iter().map(Some).collect();
    // 5. The response, in the order of the request.
    let mut bundle = BundleWriter::new("transaction-response", None, &[]);
    for (i, plan) in planned.into_iter().enumerate() {
        let reply = match plan {
            Some(Planned::Write(k)) => write_reply(outcomes.get_mut(k).and_then(Option::take)),
            Some(Planned::Existing(reply)) => reply,
            Some(Planned::Read) | None => match run_entry(state, &mut entries[i], req).await {
                Ok(reply) => reply,
                Err(e) => {
                    bundle.entry(
                        &Entry {
                            response: Some(error_json(&e)),
                            ..Entry::default()
                        },
                        &req.format,
                    );
                    continue;
                }
            },
        };
        push_reply(&mut bundle, &reply, req, &base, entries[i].method == "GET");
    }
    Ok(Reply::body(StatusCode::OK, bundle.finish(&req.format)))
}

/// Where a write entry goes — `(type, id)`, a new id for a create — and, for a conditional
/// create that matched, the existing resource's reply.
async fn target_of(
    state: &FhirState,
    entry: &EntryRequest,
    guard: &Guard,
) -> Result<(Option<(String, String)>, Option<Reply>), FhirError> {
    let mut found = None;
    let segments: Vec<&str> = entry.path.split('/').filter(|s| !s.is_empty()).collect();
    let target = match (entry.method.as_str(), segments.as_slice()) {
        ("POST", [t]) => {
            rest::check_type(t)?;
            if let Some(cond) = &entry.if_none_exist {
                let search = rest::conditional_search(state, t, cond)?;
                let page = state.store.search(&search).await?;
                match page.matches.as_slice() {
                    [] => Some(((*t).to_owned(), rest::new_id())),
                    [one] => {
                        guard.check_stored(state, t, &one.id, Perm::Read).await?;
                        found = Some(Reply::written(StatusCode::OK, one.clone()));
                        Some((one.resource_type.clone(), one.id.clone()))
                    }
                    _ => {
                        return Err(FhirError::precondition_failed(format!(
                            "ifNoneExist {cond} matches more than one {t}"
                        )));
                    }
                }
            } else {
                Some(((*t).to_owned(), rest::new_id()))
            }
        }
        ("PUT" | "PATCH", [t, id]) => {
            rest::check_type(t)?;
            rest::check_id(id)?;
            Some(((*t).to_owned(), (*id).to_owned()))
        }
        ("PUT", [t]) => {
            rest::check_type(t)?;
            let query = entry.query.clone().unwrap_or_default();
            let search = rest::parse_search_query(state, t, &query)?;
            let page = state.store.search(&search).await?;
            match page.matches.as_slice() {
                [] => Some((
                    (*t).to_owned(),
                    entry
                        .resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str)
                        .map_or_else(rest::new_id, str::to_owned),
                )),
                [one] => Some((one.resource_type.clone(), one.id.clone())),
                _ => {
                    return Err(FhirError::precondition_failed(format!(
                        "conditional update {t}?{query} matches more than one resource"
                    )));
                }
            }
        }
        _ => None,
    };
    Ok((target, found))
}

/// The reply of a transaction entry whose write had this outcome.
fn write_reply(outcome: Option<WriteOutcome>) -> Reply {
    match outcome {
        Some(WriteOutcome::Created(s)) => Reply::written(StatusCode::CREATED, s),
        Some(WriteOutcome::Updated(s) | WriteOutcome::Existing(s)) => {
            Reply::written(StatusCode::OK, s)
        }
        Some(WriteOutcome::Deleted(s)) => Reply::resource(StatusCode::NO_CONTENT, s),
        _ => Reply {
            status: StatusCode::NO_CONTENT,
            resource: None,
            body: None,
            location: false,
            write: false,
        },
    }
}

/// An entry's error, its diagnostics prefixed with the entry's place in the Bundle.
fn at_entry(i: usize, e: FhirError) -> FhirError {
    FhirError {
        issues: e
            .issues
            .into_iter()
            .map(|mut issue| {
                issue.diagnostics = format!("Bundle.entry[{i}]: {}", issue.diagnostics);
                issue
            })
            .collect(),
        ..e
    }
}

/// Rewrites the references of every entry's resource: `fullUrl` aliases to the ids planned
/// for them, conditional references to the one resource they match.
async fn rewrite_all(
    state: &FhirState,
    entries: &mut [EntryRequest],
    aliases: &HashMap<String, String>,
    guard: &Guard,
) -> Result<(), FhirError> {
    for (i, entry) in entries.iter_mut().enumerate() {
        if let Some(resource) = entry.resource.as_mut() {
            let mut conditional = Vec::new();
            rewrite_references(resource, aliases, &mut conditional);
            for reference in conditional {
                let resolved = resolve_conditional(state, &reference, guard)
                    .await
                    .map_err(|e| at_entry(i, e))?;
                let mut one = HashMap::new();
                one.insert(reference, resolved);
                rewrite_references(resource, &one, &mut Vec::new());
            }
        }
    }
    Ok(())
}

/// The store write of one transaction entry (a PATCH applied to the current version),
/// checked against the caller's grant.
async fn checked_write(
    state: &FhirState,
    entry: &mut EntryRequest,
    target: Option<&(String, String)>,
    guard: &Guard,
) -> Result<ResourceWrite, FhirError> {
    let mut write = if entry.method == "PATCH" {
        patch_write(state, entry, target).await?
    } else {
        plan_write(state, entry, target)?
    };
    guard.check_write(state, &mut write).await?;
    Ok(write)
}

/// The store write of one transaction entry.
fn plan_write(
    state: &FhirState,
    entry: &mut EntryRequest,
    target: Option<&(String, String)>,
) -> Result<ResourceWrite, FhirError> {
    let segments: Vec<&str> = entry.path.split('/').filter(|s| !s.is_empty()).collect();
    match (entry.method.as_str(), segments.as_slice(), target) {
        ("POST", [t], Some((_, id))) => {
            let resource = take_resource(&mut entry.resource, &entry.method, &entry.path, t)?;
            let precondition = match &entry.if_none_exist {
                // Planning found no match; if one appears before the commit, the whole
                // transaction fails (other entries may refer to this one's planned id) and is
                // planned again.
                Some(cond) => Precondition::NoneExist(rest::conditional_search(state, t, cond)?),
                None => Precondition::None,
            };
            rest::prepare_write(WriteOp::Create, t, id, resource, precondition)
        }
        ("PUT", [t, ..], Some((_, id))) => {
            let mut resource = take_resource(&mut entry.resource, &entry.method, &entry.path, t)?;
            if let Some(body_id) = resource.get("id").and_then(Value::as_str)
                && body_id != id
            {
                return Err(FhirError::bad_request(format!(
                    "the resource's id {body_id:?} differs from the entry's target id {id:?}"
                )));
            }
            resource["id"] = Value::String(id.clone());
            let precondition =
                match rest::version_precondition("ifMatch", entry.if_match.as_deref())? {
                    Some(v) => Precondition::IfMatch(v),
                    None => Precondition::None,
                };
            rest::prepare_write(WriteOp::Update, t, id, resource, precondition)
        }
        ("DELETE", [t, id], _) => {
            rest::check_type(t)?;
            rest::check_id(id)?;
            Ok(ResourceWrite {
                op: WriteOp::Delete,
                resource_type: (*t).to_owned(),
                id: (*id).to_owned(),
                resource: None,
                index: Vec::new(),
                precondition: Precondition::None,
            })
        }
        ("DELETE", [t], _) => {
            rest::check_type(t)?;
            let query = entry.query.clone().unwrap_or_default();
            Ok(ResourceWrite {
                op: WriteOp::Delete,
                resource_type: (*t).to_owned(),
                id: String::new(),
                resource: None,
                index: Vec::new(),
                precondition: Precondition::Match(rest::parse_search_query(state, t, &query)?),
            })
        }
        _ => Err(FhirError::bad_request(format!(
            "{} {} is not a supported transaction entry",
            entry.method, entry.path
        ))),
    }
}

/// The JSON Patch of a PATCH entry: a Binary resource with `contentType`
/// `application/json-patch+json` and the patch, base64-encoded, in `data`.
fn binary_patch(entry: &EntryRequest) -> Result<Vec<u8>, FhirError> {
    use base64::Engine as _;
    let resource = entry_resource(entry, "Binary")?;
    let ct = resource
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ct.starts_with("application/json-patch+json") {
        return Err(FhirError::unsupported_media_type(format!(
            "a PATCH entry takes a Binary with contentType application/json-patch+json, not {ct:?}"
        )));
    }
    let data = resource
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| FhirError::bad_request("the PATCH entry's Binary has no data"))?;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| {
            FhirError::bad_request(format!("the PATCH entry's Binary.data is not base64: {e}"))
        })
}

/// The store write of a transaction's PATCH entry: the patch applied to the current version,
/// conditional on that version (and on the entry's `ifMatch`).
async fn patch_write(
    state: &FhirState,
    entry: &EntryRequest,
    target: Option<&(String, String)>,
) -> Result<ResourceWrite, FhirError> {
    let Some((t, id)) = target else {
        return Err(FhirError::bad_request(format!(
            "PATCH {} is not a supported transaction entry",
            entry.path
        )));
    };
    let body = binary_patch(entry)?;
    let expected = rest::version_precondition("ifMatch", entry.if_match.as_deref())?;
    rest::patched_write(state, t, id, &body, expected).await
}

/// Rewrites every `reference` found in `aliases`; collects conditional references
/// (`Type?query`) into `conditional`.
fn rewrite_references(
    value: &mut Value,
    aliases: &HashMap<String, String>,
    conditional: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "reference"
                    && let Value::String(s) = v
                {
                    if let Some(target) = aliases.get(s.as_str()) {
                        target.clone_into(s);
                    } else if s.contains('?') && !s.starts_with('#') {
                        conditional.push(s.clone());
                    }
                    continue;
                }
                rewrite_references(v, aliases, conditional);
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite_references(v, aliases, conditional);
            }
        }
        _ => {}
    }
}

/// Resolves `Type?query` to `Type/id`: exactly one match, else 412.
async fn resolve_conditional(
    state: &FhirState,
    reference: &str,
    guard: &Guard,
) -> Result<String, FhirError> {
    let (t, query) = reference.split_once('?').ok_or_else(|| {
        FhirError::bad_request(format!("{reference:?} is not a conditional reference"))
    })?;
    rest::check_type(t)?;
    let mut search = rest::parse_search_query(state, t, query)?;
    // The caller resolves only what they may search.
    let decision = guard.decide(t, Perm::Search)?;
    guard.restrict(t, &decision, &mut search)?;
    let page = state.store.search(&search).await?;
    match page.matches.as_slice() {
        [one] => Ok(format!("{}/{}", one.resource_type, one.id)),
        [] => Err(FhirError::precondition_failed(format!(
            "conditional reference {reference} matches nothing"
        ))),
        _ => Err(FhirError {
            issues: vec![Issue::error(
                "multiple-matches",
                format!("conditional reference {reference} matches more than one resource"),
            )],
            ..FhirError::precondition_failed("")
        }),
    }
}
