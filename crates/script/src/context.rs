//! What a run works on and gives back: [`Context`], [`Outcome`], [`LogLine`].

use serde_json::{Map, Value};

use crate::data::Data;

/// The data and maps one script run sees, changed in place by the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The message, as `msg`. After the run it holds what the script made of it (also after
    /// an error: whatever was changed before the failure).
    pub data: Data,
    /// `channelMap`: read and written by the script, copied back after a successful run.
    pub channel_map: Map<String, Value>,
    /// `responseMap`: read and written by the script, copied back after a successful run.
    pub response_map: Map<String, Value>,
    /// `sourceMap`: what the source connector recorded; frozen for the script.
    pub source_map: Map<String, Value>,
    /// Lines the script logged with `logger`, appended by each run (also a failed one).
    pub logs: Vec<LogLine>,
}

impl Context {
    /// A context holding `data`, with empty maps and no logs.
    pub fn new(data: Data) -> Self {
        Self {
            data,
            channel_map: Map::new(),
            response_map: Map::new(),
            source_map: Map::new(),
            logs: Vec::new(),
        }
    }
}

/// What a run decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Go on with the message: a filter returned a truthy value, or a transformer finished.
    Accept,
    /// Drop the message: a filter returned a falsy value (or nothing).
    Reject,
}

/// The level of a [`LogLine`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `logger.debug`.
    Debug,
    /// `logger.info`.
    Info,
    /// `logger.warn`.
    Warn,
    /// `logger.error`.
    Error,
}

/// One line a script logged. It may hold patient data: log it at debug level only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Level the script chose.
    pub level: LogLevel,
    /// The text (the arguments, joined by spaces).
    pub text: String,
}
