//! The layer every FHIR request passes: it authenticates the bearer token (when the server
//! has an [`Authenticator`](crate::access::Authenticator)), hands the [`Guard`] to the
//! handler, and records the access in the audit trail once the answer is known.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::{AccessEvent, Guard, Interaction};
use crate::error::FhirError;
use crate::rest::FhirState;

impl FromRequestParts<FhirState> for Guard {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &FhirState) -> Result<Self, Response> {
        match parts.extensions.get::<Guard>() {
            Some(guard) => Ok(guard.clone()),
            None if state.authenticator.is_none() => Ok(Guard::open()),
            None => Err(FhirError::unauthorized("a bearer token is required").into_response()),
        }
    }
}

/// What a request does, from its method and path (relative to the FHIR base): the
/// interaction, the resource type and the id.
pub(crate) fn classify(
    method: &Method,
    path: &str,
) -> (Interaction, Option<String>, Option<String>) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let owned = |s: &str| Some(s.to_owned());
    let m = method.as_str();
    match segments.as_slice() {
        [] if m == "POST" => (Interaction::Batch, None, None),
        [] => (Interaction::SearchSystem, None, None),
        ["metadata"] => (Interaction::Capabilities, None, None),
        ["_history"] => (Interaction::HistorySystem, None, None),
        [op] if op.starts_with('$') => (Interaction::Operation, None, None),
        [t] => {
            let i = match m {
                "POST" => Interaction::Create,
                "PUT" => Interaction::Update,
                "DELETE" => Interaction::Delete,
                _ => Interaction::SearchType,
            };
            (i, owned(t), None)
        }
        [t, "_search"] => (Interaction::SearchType, owned(t), None),
        [t, "_history"] => (Interaction::HistoryType, owned(t), None),
        [t, op] if op.starts_with('$') => (Interaction::Operation, owned(t), None),
        [t, id] => {
            let i = match m {
                "PUT" => Interaction::Update,
                "PATCH" => Interaction::Patch,
                "DELETE" => Interaction::Delete,
                _ => Interaction::Read,
            };
            (i, owned(t), owned(id))
        }
        [t, id, "_history"] => (Interaction::HistoryInstance, owned(t), owned(id)),
        [t, id, "_history", _] => (Interaction::Vread, owned(t), owned(id)),
        [t, id, ..] => (Interaction::Operation, owned(t), owned(id)),
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The layer: authenticate, run, record.
pub(crate) async fn layer(
    State(state): State<FhirState>,
    mut request: Request,
    next: Next,
) -> Response {
    if state.authenticator.is_none() && state.access_log.is_none() {
        // an open API without an audit trail: nothing to check or record (the handlers'
        // `Guard` extractor gives the open guard)
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let (interaction, resource_type, id) = classify(request.method(), &path);
    // The capability statement is public: clients read it to find the authorization server.
    let public = interaction == Interaction::Capabilities;
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let params: Vec<String> = request
        .uri()
        .query()
        .map(|q| {
            let mut names: Vec<String> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect();
            names.dedup();
            names
        })
        .unwrap_or_default();
    let mut guard = Guard {
        principal: None,
        enforced: false,
        source,
    };
    let mut refused = None;
    if let Some(authenticator) = state.authenticator.as_ref().filter(|_| !public) {
        guard.enforced = true;
        match bearer(request.headers()) {
            None => refused = Some("a bearer token is required".to_owned()),
            Some(token) => match authenticator.authenticate(token).await {
                Ok(principal) => guard.principal = Some(Arc::new(principal)),
                Err(failure) => refused = Some(failure.description),
            },
        }
    }
    let response = if let Some(why) = &refused {
        FhirError::unauthorized(why.clone()).into_response()
    } else {
        request.extensions_mut().insert(guard.clone());
        next.run(request).await
    };
    let Some(log) = state.access_log.as_ref().filter(|_| !public) else {
        return response;
    };
    let patient = guard.patient().map(str::to_owned).or_else(|| {
        (resource_type.as_deref() == Some("Patient"))
            .then(|| id.clone())
            .flatten()
    });
    let event = AccessEvent {
        principal: guard.principal.clone(),
        source,
        interaction,
        resource_type,
        id,
        patient,
        params,
        status: response.status().as_u16(),
        detail: refused,
    };
    match log.record(event).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, "the audit trail refused an access record; answering 500");
            FhirError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the access could not be recorded in the audit trail, so nothing is returned",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_route() {
        let c = |m: &str, p: &str| {
            let (i, t, id) = classify(&Method::from_bytes(m.as_bytes()).unwrap(), p);
            (i.code(), t, id)
        };
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(c("GET", "/"), ("search-system", None, None));
        assert_eq!(c("POST", "/"), ("batch", None, None));
        assert_eq!(c("GET", "/metadata"), ("capabilities", None, None));
        assert_eq!(c("GET", "/_history"), ("history-system", None, None));
        assert_eq!(c("POST", "/$convert-data"), ("operation", None, None));
        assert_eq!(c("GET", "/Patient"), ("search-type", s("Patient"), None));
        assert_eq!(c("POST", "/Patient"), ("create", s("Patient"), None));
        assert_eq!(c("PUT", "/Patient"), ("update", s("Patient"), None));
        assert_eq!(c("DELETE", "/Patient"), ("delete", s("Patient"), None));
        assert_eq!(
            c("POST", "/Patient/_search"),
            ("search-type", s("Patient"), None)
        );
        assert_eq!(
            c("GET", "/Patient/_history"),
            ("history-type", s("Patient"), None)
        );
        assert_eq!(c("GET", "/Patient/1"), ("read", s("Patient"), s("1")));
        assert_eq!(c("PATCH", "/Patient/1"), ("patch", s("Patient"), s("1")));
        assert_eq!(
            c("GET", "/Patient/1/_history"),
            ("history-instance", s("Patient"), s("1"))
        );
        assert_eq!(
            c("GET", "/Patient/1/_history/2"),
            ("vread", s("Patient"), s("1"))
        );
        assert_eq!(
            c("GET", "/Patient/1/$everything"),
            ("operation", s("Patient"), s("1"))
        );
        assert_eq!(
            c("POST", "/Patient/$validate"),
            ("operation", s("Patient"), None)
        );
    }
}
