//! The HTTP sender destination: sends each message as a request body.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client_tls::{self, HttpClientTls};
use crate::error::{Error, Result};
use crate::{Delivered, Destination, Fields, SendError, Template};

/// Settings of an [`HttpSender`] (`type = "http"` under `[[destination]]`).
///
/// ```toml
/// url = "https://partner.example/hl7/inbound"
/// method = "POST"
/// content_type = "application/hl7-v2"
/// timeout = "30s"
/// retry_on = [408, 429, "5xx"]
///
/// [headers]
/// Authorization = "Bearer 8f1c…"
/// X-Patient-Id = "${PID-3-1}"
/// X-Message-Id = "${messageId}"
///
/// [tls]                      # optional
/// ca = "/etc/plexus/partner-ca.pem"
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSenderConfig {
    /// Where to send: an `http://` or `https://` URL (no user name or password in it; use an
    /// `Authorization` header).
    pub url: String,
    /// The request method. Default: `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers; each value is a [`Template`]. A value that renders to
    /// something HTTP does not allow (a line break, say) fails the message permanently.
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// The body's `Content-Type`. Default: `application/hl7-v2`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Longest time for the whole exchange: connecting, sending, and receiving the
    /// response. Past it the message is retried. Default: 30 s.
    #[serde(default = "default_timeout", with = "mllp::duration")]
    pub timeout: Duration,
    /// HTTPS settings. Default: the system's trusted CAs, no client certificate.
    #[serde(default)]
    pub tls: Option<HttpClientTls>,
    /// Response statuses that mean "try again later": codes (`503`) or classes (`"5xx"`).
    /// Any other status that is not 2xx fails the message permanently.
    /// Default: `[408, 429, "5xx"]`.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<StatusMatch>,
    /// Largest response body kept; a larger one is dropped (the message still counts as
    /// delivered on a 2xx). Default: 16 MiB.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_content_type() -> String {
    "application/hl7-v2".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retry_on() -> Vec<StatusMatch> {
    vec![
        StatusMatch::Code(408),
        StatusMatch::Code(429),
        StatusMatch::Class(5),
    ]
}
fn default_max_response_bytes() -> usize {
    16 << 20
}

impl HttpSenderConfig {
    /// Settings for `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            content_type: default_content_type(),
            timeout: default_timeout(),
            tls: None,
            retry_on: default_retry_on(),
            max_response_bytes: default_max_response_bytes(),
        }
    }

    /// Checks the settings, loads the TLS files and makes the sender.
    pub fn build(&self) -> Result<HttpSender> {
        HttpSender::new(self.clone())
    }
}

impl fmt::Debug for HttpSenderConfig {
    /// Leaves out header values, which may hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSenderConfig")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("content_type", &self.content_type)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field("retry_on", &self.retry_on)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// A response status to retry on: one code, or a class such as `"5xx"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this status, e.g. 503.
    Code(u16),
    /// Every status of a class: 4 for `"4xx"`, 5 for `"5xx"`.
    Class(u8),
}

impl StatusMatch {
    /// True if `status` is matched.
    pub fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(code) => code == status,
            Self::Class(class) => status / 100 == u16::from(class),
        }
    }
}

impl Serialize for StatusMatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Code(code) => serializer.serialize_u16(*code),
            Self::Class(class) => serializer.serialize_str(&format!("{class}xx")),
        }
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;

        impl Visitor<'_> for StatusVisitor {
            type Value = StatusMatch;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status such as 503, or a class such as \"5xx\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusMatch, E> {
                match u16::try_from(v) {
                    Ok(code @ 100..=599) => Ok(StatusMatch::Code(code)),
                    _ => Err(E::custom(format!("{v} is not an HTTP status (100-599)"))),
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusMatch, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusMatch, E> {
                if let Ok(code) = v.parse::<i64>() {
                    return self.visit_i64(code);
                }
                match v.as_bytes() {
                    [class @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                        Ok(StatusMatch::Class(class - b'0'))
                    }
                    _ => Err(E::custom(format!(
                        "{v:?} is not an HTTP status or class such as \"5xx\""
                    ))),
                }
            }
        }

        deserializer.deserialize_any(StatusVisitor)
    }
}

/// Sends messages to one URL over a pool of kept-alive connections.
#[derive(Clone)]
pub struct HttpSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    method: Method,
    content_type: HeaderValue,
    headers: Vec<(HeaderName, Template)>,
    config: HttpSenderConfig,
}

impl fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSender")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpSender {
    /// Checks the settings, loads the TLS files and makes the sender. Must be called inside
    /// a tokio runtime.
    pub fn new(config: HttpSenderConfig) -> Result<Self> {
        let bad = |what: &str| Error::Config(format!("HTTP sender: {what}"));
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| bad(&format!("url {:?}: {e}", config.url)))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("url must start with http:// or https://")),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("url has no host"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(
                "url must not hold a user name or password; use an Authorization header",
            ));
        }
        if !https && config.tls.is_some() {
            return Err(bad("tls is set but the url is http://"));
        }
        let method = Method::from_bytes(config.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad(&format!("method {:?} is not an HTTP method", config.method)))?;
        let content_type = HeaderValue::from_str(&config.content_type)
            .map_err(|_| bad(&format!("content_type {:?}", config.content_type)))?;
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(&format!("header name {name:?}")))?;
                if value.is_constant() {
                    HeaderValue::from_str(value.source())
                        .map_err(|_| bad(&format!("header {name} has a character HTTP forbids")))?;
                }
                Ok((name, value.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        if config.timeout.is_zero() {
            return Err(bad("timeout must be above 0"));
        }
        let client = client_tls::pooled_client(config.tls.as_ref(), https, config.timeout)?;
        Ok(Self {
            client,
            uri,
            method,
            content_type,
            headers,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &HttpSenderConfig {
        &self.config
    }

    /// Sends `body` with the configured headers (templates filled from `fields`).
    ///
    /// 2xx: [`Delivered`] with the response body. A status in `retry_on`, a connection
    /// failure or a timeout: [`SendError::Retryable`] (the peer may or may not have received
    /// the message: delivery is at least once). Any other status: [`SendError::Permanent`].
    pub async fn send(&self, body: &[u8], fields: &dyn Fields) -> Result<Delivered, SendError> {
        let now = SystemTime::now();
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, self.content_type.clone());
        for (name, template) in &self.headers {
            let value = HeaderValue::from_str(&template.render(fields, now)).map_err(|_| {
                SendError::Permanent(format!(
                    "header {name} rendered to a value with characters HTTP forbids"
                ))
            })?;
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| SendError::Permanent(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                SendError::Retryable(format!("{} {}: {}", self.method, self.uri, chain(&e)))
            })?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), self.config.max_response_bytes)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes);
            Ok::<_, SendError>((status, content_type, body))
        };
        let (status, content_type, body) =
            match tokio::time::timeout(self.config.timeout, exchange).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(SendError::Retryable(format!(
                        "{} {}: no complete response within {:?}",
                        self.method, self.uri, self.config.timeout
                    )));
                }
            };
        let status_line = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        if status.is_success() {
            return Ok(match body {
                Ok(body) => Delivered {
                    response: (!body.is_empty()).then(|| body.to_vec()),
                    content_type,
                    detail: status_line,
                },
                // The peer said it took the message; only its answer is lost.
                Err(e) => Delivered {
                    response: None,
                    content_type: None,
                    detail: format!("{status_line} (response body dropped: {e})"),
                },
            });
        }
        let message = format!(
            "{} {} answered {status_line}{}",
            self.method,
            self.uri,
            body.map(|b| excerpt(&b)).unwrap_or_default()
        );
        if self.retryable(status) {
            Err(SendError::Retryable(message))
        } else {
            Err(SendError::Permanent(message))
        }
    }

    fn retryable(&self, status: StatusCode) -> bool {
        self.config
            .retry_on
            .iter()
            .any(|m| m.matches(status.as_u16()))
    }
}

impl Destination for HttpSender {
    fn send<'a>(
        &'a self,
        bytes: &'a [u8],
        fields: &'a dyn Fields,
    ) -> BoxFuture<'a, Result<Delivered, SendError>> {
        Box::pin(HttpSender::send(self, bytes, fields))
    }
}

/// An error with its causes: hyper's own message ("client error (Connect)") says little.
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

/// The start of an error response body, for the error message: `: <first 200 characters>`,
/// control characters replaced.
fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(": {}", cleaned.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let c: HttpSenderConfig = toml::from_str(
            r#"
            url = "https://partner.example/in"
            retry_on = [503, "4xx"]
            [headers]
            Authorization = "Bearer secret-token"
            X-Patient = "${PID-3-1}"
            "#,
        )
        .unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.retry_on, [StatusMatch::Code(503), StatusMatch::Class(4)]);
        assert!(StatusMatch::Class(4).matches(404));
        assert!(!StatusMatch::Class(4).matches(500));
        assert!(!format!("{c:?}").contains("secret-token"));
        let d: HttpSenderConfig = toml::from_str("url = \"http://h/\"").unwrap();
        assert_eq!(d.retry_on, default_retry_on());
        for bad in [
            "retry_on = [700]",
            r#"retry_on = ["6xx"]"#,
            r#"retry_on = ["5x"]"#,
        ] {
            assert!(
                toml::from_str::<HttpSenderConfig>(&format!("url = \"http://h/\"\n{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn build_refuses_bad_settings() {
        for (url, extra) in [
            ("ftp://h/", ""),
            ("http://user:pw@h/", ""),
            ("http:///x", ""),
            ("http://h/", "method = \"GE T\""),
            ("http://h/", "[tls]\nca = \"ca.pem\""),
            ("http://h/", "[headers]\n\"bad header\" = \"x\""),
        ] {
            let config: HttpSenderConfig =
                toml::from_str(&format!("url = \"{url}\"\n{extra}")).unwrap();
            assert!(HttpSender::new(config).is_err(), "{url} {extra}");
        }
    }
}
