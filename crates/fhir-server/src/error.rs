//! Errors as FHIR OperationOutcomes with the HTTP status that fits them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One issue of an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: &'static str,
    /// An IssueType code (`invalid`, `not-found`, `deleted`, `conflict`, …).
    pub code: &'static str,
    /// Human-readable text (never PHI from another resource, never a stack trace).
    pub diagnostics: String,
    /// Where in the resource or request, when known (`Patient.name[0].family`).
    pub expression: Option<String>,
}

impl Issue {
    /// An `error` issue.
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: "error",
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// An `information` issue.
    pub fn info(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: "information",
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }
}

/// A failed request: an HTTP status and the OperationOutcome issues explaining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The issues (at least one).
    pub issues: Vec<Issue>,
}

impl FhirError {
    /// A status with one `error` issue.
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            status,
            issues: vec![Issue::error(code, diagnostics)],
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", diagnostics)
    }

    /// 404: no such resource type, resource or version.
    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", diagnostics)
    }

    /// 410: the resource was deleted.
    pub fn gone(resource_type: &str, id: &str) -> Self {
        Self::new(
            StatusCode::GONE,
            "deleted",
            format!("{resource_type}/{id} has been deleted"),
        )
    }

    /// 409: a version conflict or a conflicting id.
    pub fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", diagnostics)
    }

    /// 412: a precondition (`If-Match`, a conditional operation's search) failed.
    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", diagnostics)
    }

    /// 422: the resource is not valid.
    pub fn unprocessable(issues: Vec<Issue>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues,
        }
    }

    /// 401: no valid credentials (the answer carries `WWW-Authenticate: Bearer`).
    pub fn unauthorized(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "login", diagnostics)
    }

    /// 403: the credentials do not allow this.
    pub fn forbidden(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", diagnostics)
    }

    /// 405: the interaction is not supported here.
    pub fn method_not_allowed(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "not-supported", diagnostics)
    }

    /// 406: a format we do not produce (XML, for now).
    pub fn not_acceptable(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "not-supported", diagnostics)
    }

    /// 415: a body in a format we do not read.
    pub fn unsupported_media_type(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            diagnostics,
        )
    }

    /// 500: the store failed. The detail is logged (it holds no PHI: store errors name
    /// operations and ids, not content); the client gets a generic text.
    pub fn internal(error: &store::StoreError) -> Self {
        tracing::error!(%error, "FHIR request failed in the store");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the server could not complete the request; see the server log",
        )
    }

    /// The OperationOutcome resource.
    pub fn outcome(&self) -> Value {
        outcome(&self.issues)
    }
}

impl From<store::StoreError> for FhirError {
    fn from(error: store::StoreError) -> Self {
        match &error {
            // Searches the blind indexes of encryption at rest cannot answer.
            store::StoreError::UnsupportedWithEncryption { feature, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                format!("{feature} is not supported with encryption at rest"),
            ),
            _ => Self::internal(&error),
        }
    }
}

/// An OperationOutcome with these issues.
pub fn outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "severity": i.severity,
                "code": i.code,
                "diagnostics": i.diagnostics,
            });
            if let Some(e) = &i.expression {
                v["expression"] = json!([e]);
            }
            v
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.outcome()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::FHIR_JSON),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}
