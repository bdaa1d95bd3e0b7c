//! The engine's errors.

use std::path::PathBuf;

/// A channel file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or folder cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid channel.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An error about a step or a file the channel refers to, located at the channel file.
    pub(crate) fn at(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

/// An engine operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A channel file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A script could not be compiled or its runtime started.
    #[error("channel {channel}: {source}")]
    Script {
        /// The channel.
        channel: String,
        /// The error.
        source: script::ScriptError,
    },
    /// No channel with that name is deployed.
    #[error("no channel named {0:?} is deployed")]
    UnknownChannel(String),
    /// No stored message with that id (never stored, or pruned).
    #[error("no message {0}")]
    UnknownMessage(store::MessageId),
    /// No destination with that name or number.
    #[error("channel {channel} has no destination {destination:?}")]
    UnknownDestination {
        /// The channel.
        channel: String,
        /// What was asked for.
        destination: String,
    },
    /// The operation does not fit the channel's state.
    #[error("channel {channel}: {reason}")]
    State {
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },
    /// A connector could not be started (a port in use, a bad certificate...).
    #[error("channel {channel}: {what}: {reason}")]
    Connector {
        /// The channel.
        channel: String,
        /// Which connector.
        what: String,
        /// Why.
        reason: String,
    },
    /// Other IO (archives, files).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
