//! Errors with the location where they were found.

use std::fmt;

/// Where in a message something was found. Numbers are 1-based as HL7 counts them; the segment
/// index is 0-based (its position in the message) and `offset` is a byte offset in the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Byte offset in the parsed input.
    pub offset: usize,
    /// 0-based position of the segment in the message.
    pub segment_index: Option<usize>,
    /// Segment id, e.g. `PID`.
    pub segment: Option<String>,
    /// 1-based field number.
    pub field: Option<usize>,
    /// 1-based repetition number.
    pub repetition: Option<usize>,
    /// 1-based component number.
    pub component: Option<usize>,
    /// 1-based subcomponent number.
    pub subcomponent: Option<usize>,
}

impl Location {
    /// A location that only knows its byte offset.
    pub fn at(offset: usize) -> Self {
        Self {
            offset,
            ..Self::default()
        }
    }

    /// The location as an HL7 path, e.g. `PID[1]-3[2]-1`, or `byte 17` when no segment is known.
    pub fn path(&self) -> String {
        use std::fmt::Write as _;
        let Some(seg) = &self.segment else {
            return format!("byte {}", self.offset);
        };
        let mut s = seg.clone();
        if let Some(f) = self.field {
            let _ = write!(s, "-{f}");
            if let Some(r) = self.repetition.filter(|&r| r > 1) {
                let _ = write!(s, "[{r}]");
            }
            if let Some(c) = self.component {
                let _ = write!(s, "-{c}");
                if let Some(sc) = self.subcomponent {
                    let _ = write!(s, "-{sc}");
                }
            }
        }
        s
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.segment_index, &self.segment) {
            (Some(i), Some(_)) => write!(
                f,
                "{} (segment {}, byte {})",
                self.path(),
                i + 1,
                self.offset
            ),
            _ => write!(f, "byte {}", self.offset),
        }
    }
}

/// What went wrong while parsing or decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The input holds no bytes (or only a byte-order mark and blank lines).
    #[error("empty input")]
    Empty,
    /// The first segment is not MSH (or FHS/BHS where a batch is allowed).
    #[error("message does not start with an MSH segment (found {0:?})")]
    NoMsh(String),
    /// MSH-1/MSH-2 are missing, repeat a character or use one that cannot be a delimiter.
    #[error("bad delimiters: {0}")]
    BadDelimiters(&'static str),
    /// Input ends in the middle of something.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// A segment id is not three upper-case letters or digits.
    #[error(
        "bad segment id {0:?}: expected three upper-case letters or digits followed by the field separator"
    )]
    BadSegmentId(String),
    /// A second MSH inside what should be one message.
    #[error(
        "a second MSH segment starts another message; read many messages with hl7v2::MessageReader"
    )]
    SecondMsh,
    /// MSH-18 names a character set this library does not decode.
    #[error("unsupported character set {0:?} in MSH-18 (supported: ASCII, 8859/1, UNICODE UTF-8)")]
    UnsupportedCharset(String),
    /// Bytes that are not valid in the message's character set.
    #[error("byte 0x{byte:02X} is not valid {charset}")]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// The declared (or default) character set.
        charset: &'static str,
    },
    /// An escape sequence that is not closed or not understood.
    #[error("bad escape sequence: {0}")]
    BadEscape(String),
    /// A path such as `PID-3[2]-1` that does not parse.
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A value cannot be represented in the message's character set.
    #[error("character {0:?} cannot be encoded in {1}")]
    Unencodable(char, &'static str),
    /// An input exceeds a configured limit.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Reading the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(String),
}

/// What went wrong and where (the contents of a [`ParseError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where.
    pub location: Location,
}

/// A parse or decode error with its location. Boxed, so that results stay small on the hot
/// path; read `kind` and `location` through it as if they were its own fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at {}", .0.kind, .0.location)]
pub struct ParseError(Box<ErrorDetail>);

impl std::ops::Deref for ParseError {
    type Target = ErrorDetail;

    fn deref(&self) -> &ErrorDetail {
        &self.0
    }
}

impl std::ops::DerefMut for ParseError {
    fn deref_mut(&mut self) -> &mut ErrorDetail {
        &mut self.0
    }
}

impl ParseError {
    /// An error at a byte offset.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        Self::located(kind, Location::at(offset))
    }

    /// An error at a location.
    pub fn located(kind: ErrorKind, location: Location) -> Self {
        Self(Box::new(ErrorDetail { kind, location }))
    }

    /// Adds the segment to the location.
    #[must_use]
    pub fn in_segment(mut self, index: usize, id: &str) -> Self {
        self.location.segment_index = Some(index);
        self.location.segment = Some(id.to_owned());
        self
    }
}

/// Result alias of this crate.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;
