//! The FHIR server destination: POSTs each message (a FHIR `transaction` or `batch` Bundle,
//! as the engine's `to-fhir` step makes from HL7 v2) to a FHIR base URL — Plexus' own FHIR
//! API or any other server.
//!
//! ```toml
//! [destination.fhir]
//! base_url = "http://127.0.0.1:8080/fhir"
//! token_env = "FHIR_TOKEN"        # optional: `Authorization: Bearer $FHIR_TOKEN`
//! timeout = "30s"
//! [destination.fhir.tls]          # optional, as for the HTTP sender
//! ca = "/etc/plexus/fhir-ca.pem"
//! ```
//!
//! A 2xx answer is delivered (the transaction-response Bundle is kept as the response).
//! 408, 429, 5xx, connection failures and timeouts are retried through the destination's
//! queue; any other status fails the message permanently, with the OperationOutcome's
//! diagnostics as the error.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::HttpClientTls;
use crate::{Delivered, Destination, Fields, SendError};

/// The media type of the request and of the answers asked for.
const FHIR_JSON: &str = "application/fhir+json";

/// Settings of a [`FhirSender`] (`[destination.fhir]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirSenderConfig {
    /// The server's base URL (`https://fhir.example/r4`); the Bundle is POSTed to it.
    pub base_url: String,
    /// The name of an environment variable holding a bearer token; read when the channel is
    /// deployed. Default: no `Authorization` header.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Longest time for the whole exchange; past it the message is retried. Default: 30 s.
    #[serde(default = "default_timeout", with = "mllp::duration")]
    pub timeout: Duration,
    /// HTTPS settings. Default: the system's trusted CAs, no client certificate.
    #[serde(default)]
    pub tls: Option<HttpClientTls>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The most of a response kept (a transaction-response Bundle, an OperationOutcome).
const MAX_RESPONSE: usize = 16 << 20;

impl FhirSenderConfig {
    /// Settings for `base_url`, everything else default.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token_env: None,
            timeout: default_timeout(),
            tls: None,
        }
    }

    /// Checks the settings, reads the token and the TLS files, and makes the sender. Must be
    /// called inside a tokio runtime.
    pub fn build(&self) -> Result<FhirSender> {
        FhirSender::new(self)
    }
}

/// POSTs Bundles to a FHIR server over a pool of kept-alive connections.
#[derive(Clone)]
pub struct FhirSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl fmt::Debug for FhirSender {
    /// Leaves out the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirSender")
            .field("uri", &self.uri)
            .field("authorization", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl FhirSender {
    /// Checks the settings and makes the sender.
    pub fn new(config: &FhirSenderConfig) -> Result<Self> {
        let bad = |what: &str| Error::Config(format!("FHIR destination: {what}"));
        let url = config.base_url.trim_end_matches('/');
        let uri: Uri = url
            .parse()
            .map_err(|e| bad(&format!("base_url {:?}: {e}", config.base_url)))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("base_url must start with http:// or https://")),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("base_url has no host"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(
                "base_url must not hold a user name or password; use token_env",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("base_url must not have a query"));
        }
        if !https && config.tls.is_some() {
            return Err(bad("tls is set but base_url is http://"));
        }
        if config.timeout.is_zero() {
            return Err(bad("timeout must be above 0"));
        }
        let authorization = match &config.token_env {
            None => None,
            Some(var) => {
                let token = std::env::var(var).map_err(|_| {
                    bad(&format!(
                        "token_env: the environment variable {var} is not set"
                    ))
                })?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(bad(&format!("token_env: {var} is empty")));
                }
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| bad(&format!("token_env: {var} holds characters HTTP forbids")))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client =
            crate::http::client_tls::pooled_client(config.tls.as_ref(), https, config.timeout)?;
        Ok(Self {
            client,
            uri,
            authorization,
            timeout: config.timeout,
        })
    }

    /// POSTs `bundle` to the base URL.
    ///
    /// 2xx: [`Delivered`] with the response Bundle. 408, 429, 5xx, a connection failure or a
    /// timeout: [`SendError::Retryable`]. Any other status: [`SendError::Permanent`] with
    /// the OperationOutcome's diagnostics.
    pub async fn send(&self, bundle: &[u8]) -> Result<Delivered, SendError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))
            .header(ACCEPT, HeaderValue::from_static(FHIR_JSON));
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(bundle)))
            .map_err(|e| SendError::Permanent(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    SendError::Retryable(format!("POST {}: {}", self.uri, chain(&e)))
                })?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes);
            Ok::<_, SendError>((status, content_type, body))
        };
        let (status, content_type, body) = match tokio::time::timeout(self.timeout, exchange).await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(SendError::Retryable(format!(
                    "POST {}: no complete response within {:?}",
                    self.uri, self.timeout
                )));
            }
        };
        let code = status.as_u16();
        let status_line = format!(
            "HTTP {code} {}",
            status.canonical_reason().unwrap_or_default()
        );
        if status.is_success() {
            let body = body.ok().filter(|b| !b.is_empty());
            return Ok(Delivered {
                detail: format!("{status_line}{}", summary(body.as_deref())),
                response: body.map(|b| b.to_vec()),
                content_type,
            });
        }
        let why = body
            .ok()
            .and_then(|b| outcome_diagnostics(&b))
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let message = format!("POST {} answered {status_line}{why}", self.uri);
        if matches!(code, 408 | 429) || status.is_server_error() {
            Err(SendError::Retryable(message))
        } else {
            Err(SendError::Permanent(message))
        }
    }
}

impl Destination for FhirSender {
    fn send<'a>(
        &'a self,
        bytes: &'a [u8],
        _fields: &'a dyn Fields,
    ) -> BoxFuture<'a, Result<Delivered, SendError>> {
        Box::pin(FhirSender::send(self, bytes))
    }
}

/// The issues of an OperationOutcome as one line: `error invalid: text; …` (at most 1,000
/// characters, control characters replaced).
pub fn outcome_diagnostics(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if value.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let issues = value.get("issue")?.as_array()?;
    let parts: Vec<String> = issues
        .iter()
        .map(|i| {
            let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or_default();
            let mut text = s("diagnostics").to_owned();
            if text.is_empty() {
                i.pointer("/details/text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .clone_into(&mut text);
            }
            format!("{} {}: {text}", s("severity"), s("code"))
        })
        .collect();
    let joined: String = parts
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    Some(joined)
}

/// ` (transaction-response, 4 entries)` for a Bundle answer.
fn summary(body: Option<&[u8]>) -> String {
    let Some(value) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
        return String::new();
    };
    match (
        value.get("type").and_then(Value::as_str),
        value.get("entry").and_then(Value::as_array),
    ) {
        (Some(t), Some(e)) => format!(" ({t}, {} entries)", e.len()),
        _ => String::new(),
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let c: FhirSenderConfig =
            toml::from_str("base_url = \"https://fhir.example/r4\"\ntoken_env = \"T\"").unwrap();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.token_env.as_deref(), Some("T"));
        assert!(toml::from_str::<FhirSenderConfig>("base_url = \"x\"\nurl = \"y\"").is_err());
    }

    #[tokio::test]
    async fn build_refuses_bad_settings() {
        for (url, extra) in [
            ("ftp://h/fhir", ""),
            ("http://user:pw@h/fhir", ""),
            ("http://h/fhir?x=1", ""),
            ("http://h/fhir", "[tls]\nca = \"ca.pem\""),
            (
                "http://h/fhir",
                "token_env = \"PLEXUS_TEST_SURELY_UNSET_VARIABLE\"",
            ),
            ("http://h/fhir", "timeout = \"0s\""),
        ] {
            let config: FhirSenderConfig =
                toml::from_str(&format!("base_url = \"{url}\"\n{extra}")).unwrap();
            assert!(FhirSender::new(&config).is_err(), "{url} {extra}");
        }
    }

    /// A local server answering by path: `/ok` 200 with a Bundle, `/busy` 503, `/bad` 422
    /// with an OperationOutcome; it records the Authorization header it saw.
    async fn peer() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::post;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/ok",
                post(move |headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    record.lock().expect("lock").push(auth);
                    r#"{"resourceType":"Bundle","type":"transaction-response","entry":[{},{}]}"#
                }),
            )
            .route("/busy", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route(
                "/bad",
                post(|| async {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Patient.gender: unknown code"}]}"#,
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(crate::http::serve(
            listener,
            app,
            crate::http::ServeOptions::default(),
            std::future::pending(),
        ));
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn statuses_map_to_delivered_retryable_and_permanent() {
        let (base, seen) = peer().await;
        let mut config = FhirSenderConfig::new(format!("{base}/ok"));
        // PATH is always set; its value stands in for a token.
        config.token_env = Some("PATH".into());
        let ok = config
            .build()
            .expect("sender")
            .send(b"{}")
            .await
            .expect("delivered");
        assert_eq!(ok.detail, "HTTP 200 OK (transaction-response, 2 entries)");
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(
            seen.lock().expect("lock").as_slice(),
            [format!("Bearer {}", path.trim())]
        );

        let busy = FhirSenderConfig::new(format!("{base}/busy"))
            .build()
            .expect("sender");
        let e = busy.send(b"{}").await.expect_err("503");
        assert!(e.is_retryable() && e.message().contains("503"), "{e}");

        let bad = FhirSenderConfig::new(format!("{base}/bad"))
            .build()
            .expect("sender");
        let e = bad.send(b"{}").await.expect_err("422");
        assert!(!e.is_retryable(), "{e}");
        assert!(
            e.message()
                .contains("error invalid: Patient.gender: unknown code"),
            "{e}"
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let down = FhirSenderConfig::new(format!("http://127.0.0.1:{port}/fhir"))
            .build()
            .expect("sender");
        let e = down.send(b"{}").await.expect_err("refused");
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn diagnostics_of_an_outcome() {
        let body = br#"{"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"invalid","diagnostics":"Patient.birthDate: bad\ndate"},
            {"severity":"warning","code":"processing","details":{"text":"other"}}]}"#;
        assert_eq!(
            outcome_diagnostics(body).as_deref(),
            Some("error invalid: Patient.birthDate: bad date; warning processing: other")
        );
        assert_eq!(outcome_diagnostics(b"{\"resourceType\":\"Patient\"}"), None);
        assert_eq!(outcome_diagnostics(b"<html>"), None);
    }
}
