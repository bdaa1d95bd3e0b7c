//! The crate's errors: [`ParseError`] for expressions that do not parse, [`EvalError`] for
//! evaluations the specification says fail (as opposed to yielding an empty collection).

use thiserror::Error;

/// An expression that does not parse: where (byte offset into the source) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("FHIRPath parse error at byte {position}: {message}")]
pub struct ParseError {
    /// Byte offset in the expression source where the problem was found.
    pub position: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// An evaluation that fails as the specification requires (never a panic).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// A function name this evaluator does not know.
    #[error("unknown function {name}()")]
    UnknownFunction {
        /// The function name as written.
        name: String,
    },
    /// A known function called with the wrong number of arguments.
    #[error("{name}() takes {expected} argument(s), got {got}")]
    WrongArgumentCount {
        /// The function name.
        name: String,
        /// The accepted counts, e.g. "0 or 1".
        expected: &'static str,
        /// The count given.
        got: usize,
    },
    /// A collection with more than one item where a single item is required.
    #[error("{operation} expects at most one item, got {count}")]
    NotSingleton {
        /// The function or operator that required a singleton.
        operation: String,
        /// How many items it got.
        count: usize,
    },
    /// An operand or argument of the wrong type.
    #[error("type error in {operation}: {message}")]
    Type {
        /// The function or operator.
        operation: String,
        /// What was wrong.
        message: String,
    },
    /// An invalid regular expression passed to matches() or replaceMatches().
    #[error("invalid regular expression {pattern:?}: {message}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
    /// An environment variable (`%name`) that is not defined.
    #[error("undefined environment variable %{name}")]
    UndefinedVariable {
        /// The variable name without `%`.
        name: String,
    },
    /// A function this evaluator knows but cannot run (e.g. memberOf needs a terminology server).
    #[error("{name}() is not supported: {reason}")]
    Unsupported {
        /// The function name.
        name: String,
        /// Why, and what to use instead.
        reason: &'static str,
    },
    /// The evaluation grew beyond the evaluator's limits (items produced).
    #[error("evaluation exceeded the limit of {limit} items")]
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },
}
