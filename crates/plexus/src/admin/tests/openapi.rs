//! The document: it describes exactly the routes the router serves, every operation
//! completely, and is valid OpenAPI 3.1; [`Api`] checks answers against it.

use std::collections::BTreeSet;
use std::path::Path as FsPath;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use store::{MessageId, Status, Timestamp};
use tower::ServiceExt as _;

use crate::admin::{OPENAPI, filter_from, routes};

pub(super) fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} leads nowhere"));
            resolve(doc, target)
        }
        None => v,
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.extend(x.as_str());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The parameters of an operation: the path item's, then the operation's.
fn parameters<'a>(doc: &'a Value, path: &str, method: &str) -> Vec<&'a Value> {
    let item = &doc["paths"][path];
    item.get("parameters")
        .into_iter()
        .chain(item[method].get("parameters"))
        .flat_map(|p| p.as_array().into_iter().flatten())
        .map(|p| resolve(doc, p))
        .collect()
}

#[test]
fn openapi_documents_exactly_the_routes() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.path.to_owned(), r.verb.openapi_key().to_owned()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in HTTP_METHODS {
            if item.get(m).is_some() {
                documented.insert((path.clone(), m.to_owned()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routes missing from openapi.json: {undocumented:?}; documented but not routed: {unserved:?}"
    );
}

#[test]
fn openapi_operations_are_complete() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        resolve(&doc, &json!({ "$ref": r }));
    }
    let mut ids = BTreeSet::new();
    for route in routes() {
        let (path, method) = (route.path, route.verb.openapi_key());
        let op = &doc["paths"][path][method];
        let name = format!("{} {path}", method.to_uppercase());
        assert!(
            ids.insert(
                op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: operationId"))
            ),
            "{name}: operationId used twice"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: no summary"
        );
        assert!(
            op["description"].as_str().is_some_and(|s| s.len() > 40),
            "{name}: no description worth the name"
        );
        let responses = op["responses"].as_object().unwrap();
        // a success: 200, or the 302 of a redirect (`/api/oidc/login`)
        assert!(
            responses.contains_key("200") || responses.contains_key("302"),
            "{name}: no 200 (or 302) response"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{name} {status}: description"
            );
            let error = status.starts_with('4') || status.starts_with('5');
            if error && path.starts_with("/api/") {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{name} {status}: errors are {{\"error\": ...}}"
                );
            }
        }
        // the path's {parameters} are declared, and nothing else is in: path
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = parameters(&doc, path, method)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{name}: path parameters are required");
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(in_path, declared, "{name}: path parameters");
    }
}

/// The query parameters the document gives an operation, with a valid sample value each.
fn documented_query(doc: &Value, path: &str, method: &str) -> Vec<(String, String)> {
    parameters(doc, path, method)
        .into_iter()
        .filter(|p| p["in"] == "query")
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let value = match name {
                "status" => "sent".to_owned(),
                "from" | "to" => "2026-01-01T00:00:00Z".to_owned(),
                "original" | "before" => "01JH8Z6XKQ3V5S0Y7T2M4N9B1C".to_owned(),
                "limit" => "5".to_owned(),
                _ => "x".to_owned(),
            };
            // the metadata pattern: one concrete key
            let name = if name == "meta.KEY" { "meta.MRN" } else { name };
            (name.to_owned(), value)
        })
        .collect()
}

#[test]
fn search_parameters_are_the_documented_ones() {
    let doc = doc();
    let documented = documented_query(&doc, "/api/messages", "get");
    let names: BTreeSet<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "before",
            "channel",
            "control_id",
            "event",
            "from",
            "limit",
            "meta.MRN",
            "original",
            "status",
            "to",
            "type"
        ])
    );
    // each one alone, and all together, is accepted
    for p in &documented {
        filter_from(std::slice::from_ref(p)).unwrap_or_else(|e| panic!("{p:?}: {}", e.1));
    }
    let all = filter_from(&documented).unwrap();
    assert_eq!(all.metadata, vec![("MRN".into(), "x".into())]);
    assert_eq!(all.status, Some(Status::Sent));
    // reprocessing takes the same search, plus `destinations`
    let mut reprocess = documented_query(&doc, "/api/messages/reprocess", "post");
    assert!(reprocess.iter().any(|(n, _)| n == "destinations"));
    reprocess.retain(|(n, _)| n != "destinations");
    assert_eq!(reprocess, documented);
    for bad in [
        ("destinations", "lab"),
        ("mrn", "1"),
        ("meta.", "1"),
        ("status", "sending"),
        ("from", "yesterday"),
        ("limit", "-1"),
        ("before", "42"),
    ] {
        let e = filter_from(&[(bad.0.into(), bad.1.into())]).unwrap_err();
        assert_eq!(e.0, 400, "{bad:?}");
    }
}

#[test]
fn openapi_is_valid_for_openapi_spec_validator() {
    let root = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(python) = python::venv_python(&root) else {
        return;
    };
    let file = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.readers import read_from_filename\n\
             validate(read_from_filename(sys.argv[1])[0])\n\
             print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[path = "../../../../../tests/support/python.rs"]
mod python;

// ---------------------------------------------------------------------------------------
// Answers checked against the document

/// Checks `v` against `schema`, strictly: an object may hold only the properties its schema
/// documents (a field added to a response must be documented).
#[allow(clippy::too_many_lines)] // one keyword after the other
fn check_schema(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        match r {
            "#/components/schemas/MessageId"
                if v.as_str()
                    .and_then(|s| s.parse::<MessageId>().ok())
                    .is_none() =>
            {
                errors.push(format!("{at}: {v} is not a message id"));
            }
            "#/components/schemas/Timestamp"
                if v.as_str()
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .is_none() =>
            {
                errors.push(format!("{at}: {v} is not an RFC 3339 time"));
            }
            _ => {}
        }
        check_schema(doc, resolve(doc, schema), v, at, errors);
        return;
    }
    if let Some(any) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
        let ok = any.as_array().unwrap().iter().any(|s| {
            let mut e = Vec::new();
            check_schema(doc, s, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: {v} matches none of {any}"));
        }
        return;
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = schema.get("enum")
        && !e.as_array().unwrap().contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {e}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{at}: bad type {t}"),
        };
        let is = |ty: &str| match ty {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => panic!("{at}: unknown type {ty}"),
        };
        if !types.iter().any(|ty| is(ty)) {
            errors.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_i64), v.as_i64())
        && n < min
    {
        errors.push(format!("{at}: {n} < {min}"));
    }
    if let Value::Object(m) = v {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !m.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: required {r} is missing"));
            }
        }
        if let Some(props) = props {
            for (k, x) in m {
                match props.get(k) {
                    Some(s) => check_schema(doc, s, x, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: field {k:?} is not documented")),
                }
            }
        }
    }
    if let Value::Array(items) = v {
        let prefix = schema.get("prefixItems").and_then(Value::as_array);
        for (i, x) in items.iter().enumerate() {
            let s = match prefix.and_then(|p| p.get(i)) {
                Some(s) => s,
                None => match schema.get("items") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{at}[{i}]: no item allowed here"));
                        continue;
                    }
                    Some(s) => s,
                    None => continue,
                },
            };
            check_schema(doc, s, x, &format!("{at}[{i}]"), errors);
        }
        for (key, ok) in [
            (
                "minItems",
                Box::new(|n: usize| items.len() >= n) as Box<dyn Fn(usize) -> bool>,
            ),
            ("maxItems", Box::new(|n: usize| items.len() <= n)),
        ] {
            if let Some(n) = schema.get(key).and_then(Value::as_u64)
                && !ok(n as usize)
            {
                errors.push(format!("{at}: {key} {n}, has {}", items.len()));
            }
        }
    }
}

/// The document's path template (and its literal-segment count) that `path` matches best.
fn match_path<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|template| {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (a, b) in t.iter().zip(&segments) {
                if a.starts_with('{') {
                    if b.is_empty() {
                        return None;
                    }
                } else if a == b {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max()
        .map(|(_, t)| t)
}

/// An answer of the router.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) content_type: String,
    body: bytes::Bytes,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` of an error answer.
    pub(super) fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// The router, and the document every answer is checked against.
pub(super) struct Api {
    app: Router,
    doc: Value,
}

impl Api {
    pub(super) fn new(app: Router) -> Self {
        Self { app, doc: doc() }
    }

    pub(super) async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let answer = Answer {
            status,
            content_type,
            body,
        };
        self.check(method, uri, &answer);
        answer
    }

    /// Checks an answer against the document.
    pub(super) fn check(&self, method: &str, uri: &str, a: &Answer) {
        let name = format!("{method} {uri} -> {}", a.status);
        let path = uri.split('?').next().unwrap();
        let op = match_path(&self.doc, path)
            .and_then(|t| self.doc["paths"][t].get(method.to_lowercase()));
        let Some(op) = op else {
            // the fallbacks: no such endpoint, or not with this method
            assert!(
                matches!(a.status, 404 | 405),
                "{name}: undocumented endpoint answered"
            );
            assert!(a.json()["error"].is_string(), "{name}: {}", a.text());
            return;
        };
        let Some(response) = op["responses"].get(a.status.to_string()) else {
            panic!("{name}: status not documented: {}", a.text());
        };
        let response = resolve(&self.doc, response);
        let content = response["content"].as_object().unwrap();
        let media = a.content_type.split(';').next().unwrap().trim();
        let schema = &content
            .get(media)
            .unwrap_or_else(|| panic!("{name}: content type {media} not documented"))["schema"];
        let value = if media == "application/json" {
            a.json()
        } else {
            Value::String(a.text())
        };
        let mut errors = Vec::new();
        check_schema(&self.doc, schema, &value, "$", &mut errors);
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{value:#}");
    }

    pub(super) async fn get(&self, uri: &str) -> Value {
        let a = self.call("GET", uri, None).await;
        assert_eq!(a.status, 200, "GET {uri}: {}", a.text());
        a.json()
    }

    pub(super) async fn post(&self, uri: &str, body: Option<&str>) -> Value {
        let a = self.call("POST", uri, body).await;
        assert_eq!(a.status, 200, "POST {uri}: {}", a.text());
        a.json()
    }

    /// Calls an endpoint that must fail with `status`; returns the error text.
    pub(super) async fn fails(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        status: u16,
    ) -> String {
        let a = self.call(method, uri, body).await;
        assert_eq!(a.status, status, "{method} {uri}: {}", a.text());
        a.error()
    }

    /// The ids a search lists, in order.
    pub(super) async fn search(&self, query: &str) -> Vec<String> {
        ids(&self.get(&format!("/api/messages?{query}")).await["messages"])
    }
}

pub(super) fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The curl examples of `docs/admin-api.md`: (method, path, query parameter names).
fn doc_examples() -> Vec<(String, String, Vec<String>)> {
    let text = include_str!("../../../../../docs/admin-api.md").replace("\\\n", " ");
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with("curl ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let method = if line.contains("-X POST") {
            "POST"
        } else {
            "GET"
        };
        let url = words
            .iter()
            .map(|w| w.trim_matches('\''))
            .find_map(|w| w.strip_prefix("http://127.0.0.1:8080"))
            .unwrap_or_else(|| panic!("no admin URL in {line:?}"));
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split('=').next().unwrap().to_owned())
            .collect();
        for pair in words.windows(2).filter(|w| w[0] == "--data-urlencode") {
            params.push(
                pair[1]
                    .trim_matches('\'')
                    .split('=')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        out.push((method.to_owned(), path.to_owned(), params));
    }
    out
}

#[test]
fn the_docs_show_every_endpoint_with_documented_parameters() {
    let doc = doc();
    let examples = doc_examples();
    let mut shown = BTreeSet::new();
    for (method, path, params) in &examples {
        let template = match_path(&doc, path).unwrap_or_else(|| panic!("{path}: no such path"));
        let m = method.to_lowercase();
        assert!(
            doc["paths"][template].get(&m).is_some(),
            "{method} {path}: not an endpoint"
        );
        let known: BTreeSet<String> = parameters(&doc, template, &m)
            .into_iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        for p in params {
            let name = if p.starts_with("meta.") {
                "meta.KEY"
            } else {
                p.as_str()
            };
            assert!(
                known.contains(name),
                "{method} {path}: parameter {p} is not documented"
            );
        }
        shown.insert((template.to_owned(), m));
    }
    for r in routes() {
        assert!(
            shown.contains(&(r.path.to_owned(), r.verb.openapi_key().to_owned())),
            "docs/admin-api.md has no example of {} {}",
            r.verb.openapi_key(),
            r.path
        );
    }
}
