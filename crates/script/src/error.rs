//! [`ScriptError`]: what went wrong in a script, and where.

use std::fmt;

/// The kind of a [`ScriptError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptErrorKind {
    /// The source does not compile (a syntax error).
    Compile,
    /// The script threw (a `TypeError`, `throw new Error(...)`, a thrown string, ...).
    Exception,
    /// The script ran past [`Limits::time`](crate::Limits::time) and was stopped.
    Timeout,
    /// The script went past [`Limits::memory_bytes`](crate::Limits::memory_bytes) and was stopped.
    OutOfMemory,
    /// A call to the Plexus script API failed (invalid HL7 given to `msg.replace`, a bad path,
    /// a method that does not apply to the data type), or the sandbox itself failed.
    Api,
}

impl ScriptErrorKind {
    /// A short lower-case name, e.g. `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compile => "compile",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out_of_memory",
            Self::Api => "api",
        }
    }
}

impl fmt::Display for ScriptErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from compiling or running a script, located in the user's own source.
///
/// Displays as `script 'xyz' line 3: TypeError: cannot read property 'x' of null` (without
/// ` line N` when no line is known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    /// What kind of failure.
    pub kind: ScriptErrorKind,
    /// The message, e.g. `TypeError: cannot read property 'x' of null`.
    pub message: String,
    /// The script's name as given to [`Sandbox::compile`](crate::Sandbox::compile).
    pub script: String,
    /// 1-based line in the script's source, when known.
    pub line: Option<u32>,
    /// 1-based column in that line, when known (approximate on lines holding non-ASCII text).
    pub column: Option<u32>,
}

impl ScriptError {
    /// An error with no location.
    pub fn new(kind: ScriptErrorKind, script: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            script: script.to_owned(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "script '{}'", self.script)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_with_and_without_a_line() {
        let mut e = ScriptError::new(ScriptErrorKind::Exception, "xyz", "TypeError: boom");
        assert_eq!(e.to_string(), "script 'xyz': TypeError: boom");
        e.line = Some(3);
        e.column = Some(7);
        assert_eq!(e.to_string(), "script 'xyz' line 3: TypeError: boom");
    }
}
