//! # connectors — the edges of a channel other than MLLP
//!
//! A channel receives messages from a *source* and delivers them to *destinations*. This crate
//! holds the sources and destinations that do not speak MLLP (that is the `mllp` crate):
//!
//! | kind | source | destination |
//! | --- | --- | --- |
//! | HTTP | [`http::HttpListener`] (POST body in, receipt out) | [`http::HttpSender`] |
//! | files | [`file::FileReader`] (polls a directory) | [`file::FileWriter`] |
//! | PostgreSQL | — | [`database::PgWriter`] (one prepared statement per message) |
//! | FHIR | — | [`fhir::FhirSender`] (POSTs a transaction Bundle to a FHIR base URL) |
//!
//! Each connector is a serde configuration struct (`XxxConfig`, unknown keys refused, every
//! field documented with its default) that builds the running value. Sources hand each message
//! to a [`Submit`] as an [`Inbound`] and answer the sender with the [`Receipt`]; destinations
//! implement [`Destination`] and fail with [`SendError::Retryable`] (try again later) or
//! [`SendError::Permanent`] (dead-letter now). File names, HTTP headers and SQL parameters are
//! [`Template`]s such as `${PID-3-1}_${date:%Y%m%d}.hl7`, filled from [`Fields`].
//!
//! The crate knows nothing about HL7 parsing or storage: the engine supplies [`Fields`] and
//! [`Submit`]. TLS files are loaded with the `mllp` crate's helpers (rustls with ring).
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::SystemTime;
//! use connectors::{Destination, Template};
//! use connectors::file::FileWriterConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let writer = FileWriterConfig {
//!     directory: dir.path().to_owned(),
//!     name: Template::parse("${PID-3-1}_${messageId}.hl7")?,
//!     ..FileWriterConfig::default()
//! }
//! .build()?;
//! let fields = HashMap::from([
//!     ("PID-3-1".to_owned(), "12345".to_owned()),
//!     ("messageId".to_owned(), "01J0".to_owned()),
//! ]);
//! let delivered = writer.send(b"MSH|^~\\&|...", &fields).await?;
//! assert!(dir.path().join("12345_01J0.hl7").exists(), "{}", delivered.detail);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod database;
pub mod error;
pub mod fhir;
pub mod file;
pub mod http;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub use error::{Error, Result};
use futures_util::future::BoxFuture;
pub use template::{Template, TemplateError};

/// Looks up values for templates: message fields by HL7 path (`"PID-3-1"`), and names like
/// `"messageId"` or `"channel"` that the engine provides. `None` renders as an empty string.
pub trait Fields: Send + Sync {
    /// The value of `name`, if there is one.
    fn field(&self, name: &str) -> Option<String>;
}

impl<S: std::hash::BuildHasher + Send + Sync> Fields for HashMap<String, String, S> {
    fn field(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Fields for BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// No fields at all: every lookup is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFields;

impl Fields for NoFields {
    fn field(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Why a destination could not deliver a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Might work later (connection refused, timeout, HTTP 503, database down): retry.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will not work by retrying (HTTP 400, constraint violation, bad file name): dead-letter.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    /// True for [`SendError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The explanation, without the retryable/permanent prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(m) | Self::Permanent(m) => m,
        }
    }
}

/// What a destination reports after delivering a message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The peer's answer, if it gave one (an HTTP response body).
    pub response: Option<Vec<u8>>,
    /// The answer's media type, if known.
    pub content_type: Option<String>,
    /// One line for the message's history: `HTTP 200 OK`, `wrote /data/out/x.hl7`, `1 row`.
    pub detail: String,
}

impl fmt::Debug for Delivered {
    /// Shows the response's length, never its bytes (they may hold patient data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivered")
            .field("response_len", &self.response.as_ref().map(Vec::len))
            .field("content_type", &self.content_type)
            .field("detail", &self.detail)
            .finish()
    }
}

/// A message a source received, as handed to the engine.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// The message, exactly as received.
    pub bytes: Vec<u8>,
    /// The sender's address (`ip:port`), for network sources.
    pub peer_addr: Option<String>,
    /// The subject of the client's TLS certificate (RFC 4514, e.g. `CN=lab,O=Hospital`),
    /// under mutual TLS.
    pub tls_subject: Option<String>,
    /// Where it came from inside the source: the file name, or the URL path and query.
    pub origin: Option<String>,
    /// The media type the sender declared (HTTP `Content-Type`).
    pub content_type: Option<String>,
}

impl fmt::Debug for Inbound {
    /// Shows the message's length, never its bytes (they may hold patient data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("len", &self.bytes.len())
            .field("peer_addr", &self.peer_addr)
            .field("tls_subject", &self.tls_subject)
            .field("origin", &self.origin)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// The engine's answer to an [`Inbound`].
///
/// Sources read it the way an MLLP sender reads AA, AR and AE (see `docs/connectors.md`):
///
/// | receipt | meaning | HTTP listener | file reader |
/// | --- | --- | --- | --- |
/// | `accepted` | stored durably | 200 | move, delete or leave |
/// | refused, with `message_id` | stored, but refused (does not parse, say): sending it again will not help | 422 | to `error_directory` |
/// | refused, no `message_id` | not stored (the store failed): send it again later | 503 | left for the next poll |
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// True once the message is stored and taken; false if it was refused or could not be
    /// stored.
    pub accepted: bool,
    /// The id the message was stored under; `None` if it was not stored.
    pub message_id: Option<String>,
    /// Why it was not accepted.
    pub error: Option<String>,
    /// What to answer the sender with (an HL7 ACK, say), if anything.
    pub response: Option<Vec<u8>>,
    /// The media type of `response`.
    pub response_content_type: Option<String>,
}

impl Receipt {
    /// An accepted message with its id.
    pub fn accepted(message_id: impl Into<String>) -> Self {
        Self {
            accepted: true,
            message_id: Some(message_id.into()),
            ..Self::default()
        }
    }

    /// A message stored under `message_id` but refused, and why: sending it again will not
    /// help.
    pub fn refused(message_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            accepted: false,
            message_id: Some(message_id.into()),
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// A message that could not be stored, and why: the sender should send it again later.
    pub fn not_stored(error: impl Into<String>) -> Self {
        Self {
            accepted: false,
            message_id: None,
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// True if the message was neither accepted nor stored, so sending it again later may
    /// succeed.
    pub fn retry_later(&self) -> bool {
        !self.accepted && self.message_id.is_none()
    }

    /// The same receipt with a response for the sender.
    #[must_use]
    pub fn with_response(mut self, response: Vec<u8>, content_type: Option<String>) -> Self {
        self.response = Some(response);
        self.response_content_type = content_type;
        self
    }
}

impl fmt::Debug for Receipt {
    /// Shows the response's length, never its bytes (they may hold patient data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("accepted", &self.accepted)
            .field("message_id", &self.message_id)
            .field("error", &self.error)
            .field("response_len", &self.response.as_ref().map(Vec::len))
            .field("response_content_type", &self.response_content_type)
            .finish()
    }
}

/// Where sources hand their messages: the engine's intake.
pub trait Submit: Send + Sync {
    /// Stores (or refuses) one message and says which.
    fn submit(&self, inbound: Inbound) -> BoxFuture<'_, Receipt>;
}

/// A channel destination: delivers one message, or says whether trying again could help.
///
/// [`http::HttpSender`], [`file::FileWriter`] and [`database::PgWriter`] implement it.
pub trait Destination: Send + Sync {
    /// Delivers `bytes` (the message as the channel made it); `fields` fill the templates.
    fn send<'a>(
        &'a self,
        bytes: &'a [u8],
        fields: &'a dyn Fields,
    ) -> BoxFuture<'a, Result<Delivered, SendError>>;
}
