//! The conversion error: what made a message impossible to convert, and where.

use std::fmt;

/// Where in the message a problem is: `PID-7`, `OBX[2]-3`, or a whole segment (`MRG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Segment id.
    pub segment: String,
    /// Which segment of that id (1-based).
    pub occurrence: usize,
    /// Field number; 0 for the segment itself.
    pub field: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment)?;
        if self.occurrence > 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        if self.field > 0 {
            write!(f, "-{}", self.field)?;
        }
        Ok(())
    }
}

/// Why a message could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The bytes are not an HL7 v2 message.
    #[error("not an HL7 v2 message: {0}")]
    Parse(#[from] hl7v2::ParseError),
    /// A segment the message type needs is absent.
    #[error("{segment}: required segment missing: {reason}")]
    MissingSegment {
        /// The segment id.
        segment: &'static str,
        /// What needs it.
        reason: String,
    },
    /// A field the conversion needs is empty or invalid.
    #[error("{location}: {reason}")]
    Field {
        /// Where.
        location: Location,
        /// What is wrong with it.
        reason: String,
    },
    /// The message type has no conversion and carries no patient to convert.
    #[error("unsupported message {message_type}: {reason}")]
    Unsupported {
        /// MSH-9 as sent.
        message_type: String,
        /// Why.
        reason: String,
    },
}

impl ConvertError {
    /// The location of a field error, if this is one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Field { location, .. } => Some(location),
            _ => None,
        }
    }
}
