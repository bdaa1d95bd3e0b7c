//! Shared pieces of the HTTP endpoints: bounded bodies, form parameters, client
//! credentials from a request, the peer address, JSON answers that are never cached.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{AuthError, OAuthCode};
use crate::server::ClientCredentials;

/// The largest request body of the auth endpoints.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest parameter value accepted (a client assertion is the longest legitimate one).
pub const MAX_PARAM: usize = 16 * 1024;
/// The most parameters in one request.
pub const MAX_PARAMS: usize = 64;

/// Parameters of a query or form, each name once.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes: a repeated name, too many or too
    /// long parameters are `invalid_request` (RFC 6749 §3.1: no parameter more than once).
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if out.len() >= MAX_PARAMS {
                return Err(bad("too many parameters"));
            }
            if k.len() > 64 || v.len() > MAX_PARAM {
                return Err(bad("parameter too long"));
            }
            if out.iter().any(|(name, _)| *name == k) {
                return Err(bad(&format!("parameter {k} given more than once")));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(out))
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `invalid_request`.
    pub fn require(&self, name: &str) -> Result<&str, AuthError> {
        self.get(name)
            .ok_or_else(|| bad(&format!("parameter {name} is missing")))
    }
}

pub(crate) fn bad(why: &str) -> AuthError {
    AuthError::oauth(OAuthCode::InvalidRequest, why)
}

/// The body of `request`, at most [`MAX_BODY`] bytes (else 413).
pub async fn body(request: Request) -> Result<Bytes, AuthError> {
    if request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(AuthError::TooLarge(MAX_BODY));
    }
    axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| AuthError::TooLarge(MAX_BODY))
}

/// Whether the request says its body is a form.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The form body of a POST (`invalid_request` if it is not a form).
pub async fn form(request: Request) -> Result<Params, AuthError> {
    if !is_form(request.headers()) {
        return Err(bad("the body must be application/x-www-form-urlencoded"));
    }
    Params::parse(&body(request).await?)
}

/// The peer's address, when the server was started with connect info.
pub fn peer(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn url_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client credentials of a request: `Authorization: Basic`, and the body's
/// `client_id`, `client_secret`, `client_assertion_type`, `client_assertion`.
pub fn credentials(headers: &HeaderMap, params: &Params) -> Result<ClientCredentials, AuthError> {
    let mut creds = ClientCredentials {
        client_id: params.get("client_id").map(str::to_owned),
        secret: params.get("client_secret").map(str::to_owned),
        ..ClientCredentials::default()
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| bad("bad Authorization header"))?;
        if let Some((scheme, rest)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("basic")
        {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AuthError::OAuth {
                    code: OAuthCode::InvalidClient,
                    description: "bad Basic credentials".into(),
                    basic: true,
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| AuthError::OAuth {
                code: OAuthCode::InvalidClient,
                description: "bad Basic credentials".into(),
                basic: true,
            })?;
            creds.basic = Some((url_decode(id), url_decode(secret)));
        }
    }
    match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (Some(t), Some(a)) => creds.assertion = Some((t.to_owned(), a.to_owned())),
        (None, None) => {}
        _ => {
            return Err(bad(
                "client_assertion_type and client_assertion go together",
            ));
        }
    }
    Ok(creds)
}

/// A JSON answer with `Cache-Control: no-store`.
pub fn no_store_json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
