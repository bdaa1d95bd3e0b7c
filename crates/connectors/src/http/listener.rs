//! The HTTP listener source: each POST body on the configured path is one message.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use mllp::{ReloadableTls, TlsServerConfig};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket};
use tracing::Instrument as _;

use super::server::{PeerConn, ServeOptions, serve};
use crate::error::{Error, Result};
use crate::{Inbound, Receipt, Submit};

/// Settings of an [`HttpListener`] (`type = "http"` under `[source]`).
///
/// ```toml
/// bind = "0.0.0.0:8080"
/// path = "/hl7"
/// max_body_bytes = 16777216
/// content_types = ["application/hl7-v2", "text/plain"]
///
/// [tls]                       # optional; the same table as an MLLP listener's
/// cert = "/etc/plexus/server.pem"
/// key = "/etc/plexus/server-key.pem"
/// client_ca = "/etc/plexus/clients-ca.pem"   # mutual TLS
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListenerConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:8080` (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The one URL path that receives messages (`POST`); other paths answer 404.
    /// Default: `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// HTTPS: server certificate and key, and with `client_ca`, mutual TLS (the client
    /// certificate's subject goes with each message). Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
    /// Largest request body accepted; larger ones are answered 413. Default: 16 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Media types accepted in `Content-Type` (compared without parameters such as
    /// `charset`, ignoring case); others are answered 415. Default: empty, any type.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Longest time to receive a request's headers, and then its body. Default: 30 s.
    #[serde(default = "default_read_timeout", with = "mllp::duration")]
    pub read_timeout: Duration,
    /// Most connections open at once; further ones are closed at once. Default: 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Peer addresses and networks allowed to connect (`["10.0.0.0/8"]`); others are
    /// closed at once. Default: empty, everyone.
    #[serde(default)]
    pub allow: mllp::allow::IpAllowList,
}

fn default_path() -> String {
    "/".to_owned()
}
fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    1024
}

impl HttpListenerConfig {
    /// Settings for `bind`, everything else default.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            path: default_path(),
            tls: None,
            max_body_bytes: default_max_body_bytes(),
            content_types: Vec::new(),
            read_timeout: default_read_timeout(),
            max_connections: default_max_connections(),
            allow: mllp::allow::IpAllowList::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        if !self.path.starts_with('/') || self.path.contains(['?', '#']) {
            return Err(Error::Config(format!(
                "HTTP listener path {:?} must start with `/` and hold no `?` or `#`",
                self.path
            )));
        }
        if self.max_body_bytes == 0 || self.max_connections == 0 || self.read_timeout.is_zero() {
            return Err(Error::Config(
                "HTTP listener max_body_bytes, max_connections and read_timeout must be above 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Receives messages as HTTP POST bodies and answers with the engine's [`Receipt`].
///
/// | situation | status |
/// | --- | --- |
/// | accepted | 200, the receipt's response (or `{"accepted":true,"message_id":…}`) |
/// | stored but refused by the engine | 422, the receipt's response (or `{"error":…}`) |
/// | not stored (send it again later) | 503, the receipt's response (or `{"error":…}`) |
/// | empty body | 400 |
/// | other path | 404 |
/// | not POST | 405 with `Allow: POST` |
/// | body not received within `read_timeout` | 408 |
/// | body over `max_body_bytes` | 413 |
/// | `Content-Type` not in `content_types` | 415 |
///
/// Errors are JSON objects `{"error": "..."}`; an accepted message's id is also in the
/// `X-Message-Id` header.
pub struct HttpListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: HttpListenerConfig,
    submit: Arc<dyn Submit>,
    tls: Option<ReloadableTls>,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the request handler shares.
#[derive(Clone)]
struct AppState {
    submit: Arc<dyn Submit>,
    config: Arc<HttpListenerConfig>,
}

impl HttpListener {
    /// Checks the settings, loads the TLS files and binds the socket. Must be called inside a
    /// tokio runtime.
    pub fn bind(config: HttpListenerConfig, submit: Arc<dyn Submit>) -> Result<Self> {
        config.validate()?;
        let tls = config.tls.clone().map(ReloadableTls::new).transpose()?;
        let bind_error = |e| Error::io(format!("binding {}", config.bind), e);
        let socket = if config.bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(config.bind).map_err(bind_error)?;
        let listener = socket.listen(1024).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            config,
            submit,
            tls,
        })
    }

    /// The address listened on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to reload the certificate, key and CA files (e.g. on SIGHUP), with TLS.
    pub fn tls(&self) -> Option<ReloadableTls> {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests in progress
    /// finish (their messages submitted and answered), closes idle connections and returns.
    /// Dropping the future instead aborts every connection at once.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Self {
            listener,
            local_addr,
            config,
            submit,
            tls,
        } = self;
        let config = Arc::new(config);
        let router = Router::new().fallback(receive).with_state(AppState {
            submit,
            config: Arc::clone(&config),
        });
        tracing::info!(addr = %local_addr, path = %config.path, tls = tls.is_some(), "HTTP listener started");
        let options = ServeOptions {
            tls,
            read_timeout: config.read_timeout,
            max_connections: config.max_connections,
            allow: config.allow.clone(),
        };
        serve(listener, router, options, shutdown).await;
        tracing::info!(addr = %local_addr, "HTTP listener stopped");
        Ok(())
    }
}

/// An answer other than success, as a JSON error.
struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

async fn receive(
    State(state): State<AppState>,
    Extension(conn): Extension<Arc<PeerConn>>,
    request: Request,
) -> Response {
    let span = tracing::info_span!("http_request", peer = %conn.addr);
    match take_message(&state.config, &conn, request)
        .instrument(span.clone())
        .await
    {
        Ok(inbound) => {
            let len = inbound.bytes.len();
            let receipt = state.submit.submit(inbound).instrument(span.clone()).await;
            span.in_scope(|| {
                if receipt.accepted {
                    tracing::info!(
                        bytes = len,
                        message_id = receipt.message_id.as_deref(),
                        "message accepted"
                    );
                } else {
                    tracing::warn!(
                        bytes = len,
                        error = receipt.error.as_deref(),
                        "message refused"
                    );
                }
            });
            receipt_response(receipt)
        }
        Err(problem) => {
            span.in_scope(|| {
                tracing::info!(status = problem.status.as_u16(), reason = %problem.message, "request refused");
            });
            problem.into_response()
        }
    }
}

/// Checks the request and reads its body.
async fn take_message(
    config: &HttpListenerConfig,
    conn: &PeerConn,
    request: Request,
) -> Result<Inbound, Problem> {
    if request.uri().path() != config.path {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("nothing here; POST messages to {}", config.path),
        ));
    }
    if request.method() != Method::POST {
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed; POST the message", request.method()),
        ));
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !config.content_types.is_empty() {
        let essence = content_type
            .as_deref()
            .map(|ct| ct.split(';').next().unwrap_or_default().trim());
        if !essence.is_some_and(|e| {
            config
                .content_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(e))
        }) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {} is not accepted; use one of: {}",
                    content_type.as_deref().unwrap_or("(none)"),
                    config.content_types.join(", ")
                ),
            ));
        }
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes", config.max_body_bytes),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(too_large());
    }
    let origin = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned());
    let body = Limited::new(request.into_body(), config.max_body_bytes);
    let bytes = match tokio::time::timeout(config.read_timeout, body.collect()).await {
        Err(_) => {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {:?}", config.read_timeout),
            ));
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("reading the body failed: {e}"),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    if bytes.is_empty() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "the body is empty"));
    }
    Ok(Inbound {
        bytes: bytes.to_vec(),
        peer_addr: Some(conn.addr.to_string()),
        tls_subject: conn.tls_subject.clone(),
        origin,
        content_type,
    })
}

/// The one place a receipt becomes an HTTP answer.
fn receipt_response(receipt: Receipt) -> Response {
    let status = if receipt.accepted {
        StatusCode::OK
    } else if receipt.retry_later() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut response = match receipt.response {
        Some(body) => {
            let content_type = receipt
                .response_content_type
                .as_deref()
                .and_then(|ct| HeaderValue::from_str(ct).ok())
                .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
            (status, [(CONTENT_TYPE, content_type)], body).into_response()
        }
        None if receipt.accepted => {
            let body = serde_json::json!({
                "accepted": true,
                "message_id": receipt.message_id,
            });
            (
                status,
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body.to_string(),
            )
                .into_response()
        }
        None => {
            let body = serde_json::json!({
                "error": receipt.error.as_deref().unwrap_or("the message was refused"),
                "message_id": receipt.message_id,
            });
            (
                status,
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body.to_string(),
            )
                .into_response()
        }
    };
    if let Some(id) = receipt
        .message_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        response.headers_mut().insert("x-message-id", id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let c: HttpListenerConfig = toml::from_str(
            r#"
            bind = "127.0.0.1:8080"
            path = "/hl7"
            content_types = ["application/hl7-v2"]
            [tls]
            cert = "s.pem"
            key = "k.pem"
            client_ca = "ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.max_body_bytes, 16 << 20);
        assert_eq!(c.read_timeout, Duration::from_secs(30));
        assert!(c.tls.unwrap().client_ca.is_some());
        assert!(toml::from_str::<HttpListenerConfig>("bind = \"x\"").is_err());
        let mut bad = HttpListenerConfig::new("127.0.0.1:0".parse().unwrap());
        bad.path = "hl7".into();
        assert!(bad.validate().is_err());
    }
}
