//! The errors of the authorization server, and their one mapping to HTTP: RFC 6749 §5.2
//! JSON errors on the token endpoint, RFC 6750 `WWW-Authenticate` for bearer tokens.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An OAuth 2.0 error code (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// The request is malformed (missing or repeated parameter, bad value).
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The code, refresh token or credentials are invalid, expired, revoked or were issued
    /// to another client or redirect URI.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The scope is invalid, unknown, or exceeds what was granted.
    InvalidScope,
    /// The user or server refused.
    AccessDenied,
    /// `response_type` is not `code`.
    UnsupportedResponseType,
    /// Something failed inside the server.
    ServerError,
    /// The bearer token is invalid, expired or revoked.
    InvalidToken,
    /// The token does not allow the request.
    InsufficientScope,
}

impl OAuthCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// Everything that can go wrong in the authorization server.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A bearer token was refused (bad format, signature, algorithm, issuer, audience,
    /// expired, not yet valid, revoked, unknown API token). The reason is for logs and
    /// audit; the client sees only `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// An OAuth error of the token, introspection or revocation endpoint.
    #[error("{}: {description}", code.as_str())]
    OAuth {
        /// The error code.
        code: OAuthCode,
        /// A human-readable description (no secrets).
        description: String,
        /// Whether the client authenticated with HTTP Basic (an `invalid_client` is then
        /// a 401 with `WWW-Authenticate: Basic`).
        basic: bool,
    },
    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request body is larger than the endpoint accepts.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A key could not be read, written or used.
    #[error("signing key: {0}")]
    Key(String),
    /// The configuration or a registration cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Password(String),
}

impl AuthError {
    /// An OAuth error without Basic authentication.
    pub fn oauth(code: OAuthCode, description: impl Into<String>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
            basic: false,
        }
    }

    /// The OAuth code this error is reported as.
    pub fn code(&self) -> OAuthCode {
        match self {
            Self::InvalidToken(_) => OAuthCode::InvalidToken,
            Self::OAuth { code, .. } => *code,
            Self::Forbidden(_) => OAuthCode::InsufficientScope,
            Self::TooLarge(_) => OAuthCode::InvalidRequest,
            Self::Store(_) | Self::Key(_) | Self::Config(_) | Self::Password(_) => {
                OAuthCode::ServerError
            }
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidToken(_)
            | Self::OAuth {
                code: OAuthCode::InvalidClient,
                basic: true,
                ..
            } => StatusCode::UNAUTHORIZED,
            Self::OAuth {
                code: OAuthCode::ServerError,
                ..
            } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::OAuth { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Key(_) | Self::Config(_) | Self::Password(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the client is told (never internal details of server errors).
    fn public_description(&self) -> String {
        match self {
            Self::InvalidToken(_) => "the access token is invalid, expired or revoked".to_owned(),
            Self::OAuth { description, .. } => description.clone(),
            Self::Forbidden(why) => why.clone(),
            Self::TooLarge(n) => format!("the request body is larger than {n} bytes"),
            Self::Store(_) | Self::Key(_) | Self::Config(_) | Self::Password(_) => {
                "internal error".to_owned()
            }
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "authorization server error");
        }
        let body = serde_json::json!({
            "error": self.code().as_str(),
            "error_description": self.public_description(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match &self {
            Self::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"plexus\", error=\"invalid_token\", \
                         error_description=\"the access token is invalid, expired or revoked\"",
                    ),
                );
            }
            Self::Forbidden(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"plexus\", error=\"insufficient_scope\"",
                    ),
                );
            }
            Self::OAuth {
                code: OAuthCode::InvalidClient,
                basic: true,
                ..
            } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"plexus\""),
                );
            }
            _ => {}
        }
        response
    }
}
