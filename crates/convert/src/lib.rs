//! # convert — HL7 v2 to FHIR R4, without I/O
//!
//! This crate turns an HL7 v2 message into a FHIR R4 `transaction` Bundle, following the
//! HL7 v2-to-FHIR Implementation Guide: its vocabulary, segment, data type and message maps
//! are generated from the IG's spreadsheets (`cargo xtask codegen`, see [`tables`]); the data
//! type conversions (XPN, XAD, XTN, CX, CWE, DTM, ED, …) and the segment handlers are written
//! here. It never touches a socket or a file: callers hand it bytes or a parsed
//! [`hl7v2::Message`].
//!
//! The Bundle is deterministic (the same message gives byte-identical JSON: ids are
//! name-based UUIDs of the identifiers a resource is known by) and idempotent on a FHIR
//! server: a Patient is written with `PUT Patient?identifier=system|value`, an Encounter by
//! its visit number, orders, reports and appointments by their placer/filler numbers, and
//! resources without an identifier with `PUT Type/<uuid>` of a key made of their parents'
//! identifiers, so a re-sent message updates instead of duplicating. A Provenance points at
//! the source message. Fields that carry data but are not mapped are listed in
//! [`Conversion::unmapped`] (where, how long, never the value), never silently dropped.
//!
//! Resources are built in a small JSON tree of the crate's own (static keys, sorted vectors,
//! message text held inline up to 30 bytes instead of in a `String`; values without escape
//! sequences or non-ASCII bytes are read straight from the message's bytes);
//! [`convert_bytes_to_json`] writes the Bundle from it straight to JSON bytes (the fast form,
//! for callers that send or store the Bundle), [`convert_bytes`] moves it into a
//! `serde_json::Value` (for callers that inspect it).
//!
//! ```
//! let raw = b"MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101120000+0100||ADT^A01^ADT_A01|C1|P|2.5.1\r\
//! PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r\
//! PV1|1|I|W1^101^A||||||||||||||||V42^^^HOSP^VN\r";
//! let out = convert::convert_bytes(raw, &convert::Options::default())?;
//! let entries = out.bundle["entry"].as_array().expect("entries");
//! assert_eq!(entries[0]["resource"]["resourceType"], "Patient");
//! assert_eq!(entries[0]["request"]["url"], "Patient?identifier=HOSP|12345");
//! assert_eq!(entries[0]["resource"]["gender"], "female");
//! assert!(entries.iter().any(|e| e["resource"]["resourceType"] == "Provenance"));
//! # Ok::<(), convert::ConvertError>(())
//! ```

#![forbid(unsafe_code)]

#[macro_use]
mod tree;
mod ctx;
mod datatypes;
mod error;
pub mod generated;
mod ids;
mod message;
mod resources;
pub mod tables;
mod text;
mod time;

use std::fmt;

pub use error::ConvertError;
use serde_json::Value;

/// How a conversion behaves where the message leaves a choice.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The offset (`+02:00`) of times that carry none. Without it, MSH-7's offset is used;
    /// without that either, such a time is cut to its date and reported as unmapped.
    pub default_timezone: Option<String>,
    /// Identifier systems of assigning authorities, by namespace id (HD-1): `("HOSP",
    /// "urn:oid:1.2.3")`. Other authorities give `urn:oid:` for ISO universal ids, else the
    /// namespace id itself (whitespace percent-encoded).
    pub identifier_systems: Vec<(String, String)>,
    /// Also carry the unmapped content (location and text) as extensions of the Provenance.
    pub unmapped_extensions: bool,
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The FHIR R4 `transaction` Bundle.
    pub bundle: Value,
    /// Content of the message that no FHIR element received.
    pub unmapped: Vec<Unmapped>,
}

/// Why a piece of the message is in the unmapped report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmappedReason {
    /// A field carrying data that no handler maps.
    NotMapped,
    /// A segment no handler reads (a Z-segment, or one outside the supported maps).
    Segment,
    /// A value that is not valid for its data type (an impossible date, a non-number).
    Invalid,
    /// A code the IG's concept map does not list, so the FHIR element stays empty.
    UnknownCode,
    /// An identifier a second resource of the same message also carries: the later resource is
    /// written without it, so conditional updates keep finding one match.
    DuplicateIdentifier,
    /// A time of day without a time zone (none in the value, MSH-7 or the options): kept as
    /// the date only.
    TimeWithoutZone,
    /// A field FHIR requires a value for is empty (an OBX without OBX-3): the element is
    /// written with a data-absent-reason extension instead of a value.
    MissingRequired,
}

impl UnmappedReason {
    /// A short text for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotMapped => "no mapping",
            Self::Segment => "segment not mapped",
            Self::Invalid => "invalid value",
            Self::UnknownCode => "code not in the IG concept map",
            Self::TimeWithoutZone => "time without zone cut to date",
            Self::MissingRequired => "required field empty, written as data absent",
            Self::DuplicateIdentifier => {
                "identifier already used by another resource of the message"
            }
        }
    }
}

/// One piece of the message that did not make it into the Bundle. Holds where it is and how
/// long it is, never the value itself (the value may be PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Segment id, e.g. `PID` or `ZPI`.
    pub segment: String,
    /// Which segment of that id (1-based).
    pub occurrence: usize,
    /// Field number (0 for a whole segment).
    pub field: usize,
    /// Number of repetitions of the field carrying data (for a whole segment: the number of
    /// its fields carrying data).
    pub repetitions: usize,
    /// Length in bytes of the raw (escaped) value.
    pub length: usize,
    /// Why it is reported.
    pub reason: UnmappedReason,
    /// Where the IG maps this field, when it does (`Patient.extension[2].valueCodeableConcept`).
    pub ig_target: Option<String>,
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.segment)?;
        if self.occurrence > 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        if self.field > 0 {
            write!(f, "-{}", self.field)?;
        }
        write!(f, ": {} ({} bytes", self.reason.as_str(), self.length)?;
        if self.field > 0 && self.repetitions > 1 {
            write!(f, ", {} repetitions", self.repetitions)?;
        }
        f.write_str(")")?;
        if let Some(t) = &self.ig_target {
            write!(f, "; the IG maps it to {t}")?;
        }
        Ok(())
    }
}

/// The result of a conversion, with the Bundle written as JSON.
#[derive(Debug, Clone)]
pub struct JsonConversion {
    /// The FHIR R4 `transaction` Bundle as compact JSON (the bytes `serde_json::to_vec` writes
    /// for [`Conversion::bundle`]).
    pub json: Vec<u8>,
    /// Content of the message that no FHIR element received.
    pub unmapped: Vec<Unmapped>,
}

/// Converts raw message bytes (CR, LF or CRLF segment ends; a UTF-8 byte order mark is
/// skipped).
pub fn convert_bytes(raw: &[u8], opts: &Options) -> Result<Conversion, ConvertError> {
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let msg = hl7v2::Message::parse(raw)?;
    v2_to_fhir(&msg, opts)
}

/// Converts raw message bytes straight to the Bundle's JSON, the fastest form when the Bundle
/// is sent or stored rather than inspected: no `serde_json::Value` tree is built.
pub fn convert_bytes_to_json(raw: &[u8], opts: &Options) -> Result<JsonConversion, ConvertError> {
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let msg = hl7v2::Message::parse(raw)?;
    let (entries, unmapped) = message::convert(&msg, opts)?;
    // a Bundle's JSON is 5–7 times its message: one allocation, no regrowth copies (capped
    // below the size malloc would map pages for)
    let mut json = Vec::with_capacity((raw.len() * 8).min(96 * 1024));
    message::write_bundle(&entries, &mut json);
    Ok(JsonConversion { json, unmapped })
}

/// Converts a parsed message.
pub fn v2_to_fhir(msg: &hl7v2::Message<'_>, opts: &Options) -> Result<Conversion, ConvertError> {
    let (entries, unmapped) = message::convert(msg, opts)?;
    Ok(Conversion {
        bundle: message::bundle(entries).into_serde(),
        unmapped,
    })
}
