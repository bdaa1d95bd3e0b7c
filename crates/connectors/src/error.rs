//! Errors of building or running a connector. Failures to deliver one message are
//! [`SendError`](crate::SendError)s instead.

use std::path::PathBuf;

/// An error building, starting or running a connector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `binding 0.0.0.0:8080`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory named in the configuration is missing or not a directory.
    #[error("{what} {}: {reason}", path.display())]
    Directory {
        /// Which setting, e.g. `file reader directory`.
        what: &'static str,
        /// The path configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate, key or CA file could not be used (never holds key material).
    #[error(transparent)]
    Tls(#[from] mllp::Error),
    /// The database refused the connection or the statement.
    #[error("database: {0}")]
    Database(String),
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

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
