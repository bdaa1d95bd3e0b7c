//! Errors of this crate: framing errors (from the IO-free framer) and transport errors.

use std::path::PathBuf;
use std::time::Duration;

/// A framing error found by the [`Framer`](crate::Framer) or when encoding a payload.
///
/// Offsets are positions in the byte stream of one connection (0 = its first byte), so a log
/// line can say where the damage is without quoting message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame grew past the configured maximum; its bytes are discarded up to the next start
    /// byte (0x0B).
    #[error("frame starting at stream byte {offset} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Stream offset of the frame's start byte.
        offset: u64,
        /// The configured maximum payload size in bytes.
        limit: usize,
    },
    /// A start byte (0x0B) arrived before the frame's end (0x1C 0x0D): the frame so far is
    /// dropped and the start byte begins a new frame.
    #[error(
        "frame starting at stream byte {offset} was cut after {len} bytes by the start of another frame"
    )]
    Cut {
        /// Stream offset of the cut frame's start byte.
        offset: u64,
        /// Payload bytes received before the cut.
        len: usize,
    },
    /// The input ended (the connection closed) inside a frame.
    #[error("input ended inside the frame starting at stream byte {offset}, after {len} bytes")]
    Truncated {
        /// Stream offset of the frame's start byte.
        offset: u64,
        /// Payload bytes received before the end of input.
        len: usize,
    },
    /// A payload to encode holds a byte that would end or restart the frame (0x0B or 0x1C).
    #[error("payload byte 0x{byte:02X} at offset {offset} cannot be sent inside an MLLP frame")]
    ForbiddenByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the payload.
        offset: usize,
    },
}

/// An error of the MLLP server or client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The byte stream is not valid MLLP (or a payload cannot be framed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `connecting to lab.example:2575`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or CA file could not be read or used. Never holds key material.
    #[error("TLS file {}: {reason}", path.display())]
    TlsFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The TLS configuration could not be built from otherwise readable files.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out, e.g. `waiting for the response`.
        what: &'static str,
        /// The configured limit.
        after: Duration,
    },
    /// The peer closed the connection before answering.
    #[error("connection closed by {peer} before a response frame arrived")]
    ConnectionClosed {
        /// The peer's address.
        peer: String,
    },
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Every attempt allowed by the retry policy failed; holds the last failure.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        last: Box<Error>,
    },
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Self::io("I/O", source)
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
