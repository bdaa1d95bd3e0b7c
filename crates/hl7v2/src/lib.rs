//! # hl7v2 — HL7 version 2 messages, without I/O
//!
//! This crate is Plexus' HL7 v2 library: it parses any v2.x message (2.1 through 2.8.2) with
//! the delimiters the message declares, reads values by the paths integration engineers use
//! (`PID-5-1`, `PID-3[2]-1`, `OBX[3]-5`), walks message structures (groups such as ORU_R01's
//! ORDER_OBSERVATION), builds and modifies messages, validates them with located errors,
//! produces original- and enhanced-mode ACKs, and reads files and batches of many messages as
//! a stream. It never touches a socket or a file descriptor itself: callers hand it bytes or
//! a [`std::io::BufRead`].
//!
//! Parsing borrows the input: it records where each segment starts and ends and copies no
//! field text. Fields are located when read, and escape sequences are decoded only when a
//! value is read as text.
//!
//! ```
//! use hl7v2::Message;
//!
//! let raw = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ORU^R01^ORU_R01|C42|P|2.5.1\r\
//! PID|1||12345^^^HOSP^MR~999^^^SSA^SS||DOE^JANE\r\
//! OBX|1|NM|GLU^Glucose||95|mg/dL\r\
//! OBX|2|ST|NOTE||fasting \\T\\ rested\r";
//! let msg = Message::parse(raw)?;
//! assert_eq!(msg.value("PID-5-1")?.as_deref(), Some("DOE"));
//! assert_eq!(msg.value("PID-3[2]-4")?.as_deref(), Some("SSA"));
//! assert_eq!(msg.value("OBX[2]-5")?.as_deref(), Some("fasting & rested"));
//! assert_eq!(msg.control_id().as_deref(), Some("C42"));
//! # Ok::<(), hl7v2::ParseError>(())
//! ```

#![forbid(unsafe_code)]

pub mod charset;
pub mod delims;
pub mod error;
pub mod escape;
pub mod message;
pub mod owned;
pub mod path;
pub mod reader;

pub use charset::Charset;
pub use delims::Delimiters;
pub use error::{ErrorKind, Location, ParseError, Result};
pub use message::{Element, Encoding, Level, Message, Segment, Terminator};
pub use owned::{MessageBuf, SegmentBuf};
pub use path::Path;
pub use reader::{Envelope, MessageReader, RawMessage};
pub mod ack;
pub mod defs;
pub mod generated;
pub mod json;
pub mod structure;
pub mod validate;
