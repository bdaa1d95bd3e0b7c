//! Acknowledgments: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR), with ERR segments
//! that carry the error location (ERR-2), the table 0357 condition (ERR-3) and the severity
//! (ERR-4).

use crate::charset::Charset;
use crate::error::{ErrorKind, Location, ParseError, Result};
use crate::generated::tables::ErrorCondition;
use crate::message::Message;
use crate::owned::MessageBuf;
use crate::structure::version_key;
use crate::validate::{Issue, Severity};

/// An acknowledgment code (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: original mode, application accept.
    ApplicationAccept,
    /// `AE`: original mode, application error.
    ApplicationError,
    /// `AR`: original mode, application reject.
    ApplicationReject,
    /// `CA`: enhanced mode, commit accept.
    CommitAccept,
    /// `CE`: enhanced mode, commit error.
    CommitError,
    /// `CR`: enhanced mode, commit reject.
    CommitReject,
}

impl AckCode {
    /// The two-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Self::ApplicationAccept => "AA",
            Self::ApplicationError => "AE",
            Self::ApplicationReject => "AR",
            Self::CommitAccept => "CA",
            Self::CommitError => "CE",
            Self::CommitReject => "CR",
        }
    }

    /// Parses a two-letter code.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "AA" => Self::ApplicationAccept,
            "AE" => Self::ApplicationError,
            "AR" => Self::ApplicationReject,
            "CA" => Self::CommitAccept,
            "CE" => Self::CommitError,
            "CR" => Self::CommitReject,
            _ => return None,
        })
    }

    /// Whether the code says the message was accepted.
    pub fn is_accept(self) -> bool {
        matches!(self, Self::ApplicationAccept | Self::CommitAccept)
    }
}

/// The outcome to acknowledge, independent of the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Accept,
    /// Not accepted because of an error in the message (the sender should not resend it as is).
    Error,
    /// Rejected (unsupported type, version, processing id, or the receiver cannot take it).
    Reject,
}

/// When an acknowledgment is wanted (HL7 table 0155, MSH-15/MSH-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCondition {
    /// `AL`: always.
    Always,
    /// `NE`: never.
    Never,
    /// `ER`: only on error or reject.
    ErrorOnly,
    /// `SU`: only on success.
    SuccessOnly,
}

impl AckCondition {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "AL" => Self::Always,
            "NE" => Self::Never,
            "ER" => Self::ErrorOnly,
            "SU" => Self::SuccessOnly,
            _ => return None,
        })
    }

    /// Whether an acknowledgment is due for this outcome.
    pub fn wants(self, outcome: Outcome) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::ErrorOnly => outcome != Outcome::Accept,
            Self::SuccessOnly => outcome == Outcome::Accept,
        }
    }
}

/// The acknowledgment mode a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15 and MSH-16 empty: one application acknowledgment, AA/AE/AR.
    Original,
    /// MSH-15 or MSH-16 set: an accept (commit) acknowledgment CA/CE/CR as MSH-15 asks, and an
    /// application acknowledgment later as MSH-16 asks.
    Enhanced {
        /// MSH-15 (empty means always, as the standard says).
        accept: AckCondition,
        /// MSH-16 (empty means always).
        application: AckCondition,
    },
}

impl AckMode {
    /// The mode of a message, from MSH-15 and MSH-16.
    pub fn of(msg: &Message<'_>) -> Self {
        let read = |f: usize| {
            msg.segment_at(0)
                .and_then(|s| s.field(f))
                .and_then(|e| e.text().ok())
                .map(|t| t.trim().to_owned())
                .unwrap_or_default()
        };
        let (accept, application) = (read(15), read(16));
        if accept.is_empty() && application.is_empty() {
            return Self::Original;
        }
        Self::Enhanced {
            accept: AckCondition::parse(&accept).unwrap_or(AckCondition::Always),
            application: AckCondition::parse(&application).unwrap_or(AckCondition::Always),
        }
    }

    /// The code the receiver's first acknowledgment carries for an outcome: AA/AE/AR in
    /// original mode, CA/CE/CR (the accept acknowledgment) in enhanced mode.
    pub fn code(self, outcome: Outcome) -> AckCode {
        match (self, outcome) {
            (Self::Original, Outcome::Accept) => AckCode::ApplicationAccept,
            (Self::Original, Outcome::Error) => AckCode::ApplicationError,
            (Self::Original, Outcome::Reject) => AckCode::ApplicationReject,
            (Self::Enhanced { .. }, Outcome::Accept) => AckCode::CommitAccept,
            (Self::Enhanced { .. }, Outcome::Error) => AckCode::CommitError,
            (Self::Enhanced { .. }, Outcome::Reject) => AckCode::CommitReject,
        }
    }

    /// Whether the first acknowledgment is to be sent at all for this outcome (always in
    /// original mode; as MSH-15 asks in enhanced mode).
    pub fn sends_accept_ack(self, outcome: Outcome) -> bool {
        match self {
            Self::Original => true,
            Self::Enhanced { accept, .. } => accept.wants(outcome),
        }
    }
}

/// One ERR segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// Where the error is (ERR-2); `None` for message-level errors.
    pub location: Option<Location>,
    /// The table 0357 condition (ERR-3).
    pub condition: ErrorCondition,
    /// Severity (ERR-4).
    pub severity: Severity,
    /// Diagnostic text (ERR-8, user message).
    pub text: String,
}

impl From<&Issue> for AckError {
    fn from(i: &Issue) -> Self {
        Self {
            location: Some(i.location.clone()),
            condition: i.condition,
            severity: i.severity,
            text: i.message.clone(),
        }
    }
}

impl From<&ParseError> for AckError {
    fn from(e: &ParseError) -> Self {
        Self {
            location: Some(e.location.clone()).filter(|l| l.segment.is_some()),
            condition: match e.kind {
                ErrorKind::InvalidByte { .. }
                | ErrorKind::BadEscape(_)
                | ErrorKind::Unencodable(..) => ErrorCondition::DataTypeError,
                ErrorKind::BadSegmentId(_) | ErrorKind::SecondMsh | ErrorKind::NoMsh(_) => {
                    ErrorCondition::SegmentSequenceError
                }
                _ => ErrorCondition::ApplicationError,
            },
            severity: Severity::Error,
            text: e.to_string(),
        }
    }
}

/// What goes into an acknowledgment besides the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOptions<'t> {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-3 text message, if any.
    pub text: Option<&'t str>,
    /// One ERR segment each.
    pub errors: Vec<AckError>,
    /// MSH-10 of the acknowledgment.
    pub control_id: &'t str,
    /// MSH-7 of the acknowledgment, e.g. from [`timestamp`].
    pub timestamp: &'t str,
}

/// Builds the acknowledgment of a message: the sending and receiving application and facility
/// swapped, MSH-9 `ACK^<event>^ACK`, the processing id, version and charset copied, MSA-2 = the
/// original control id, and one ERR segment per error (ERR-1 also filled for versions before
/// 2.5, which read it instead of ERR-2/3).
pub fn build_ack(msg: &Message<'_>, opts: &AckOptions<'_>) -> Result<MessageBuf> {
    let enc = msg.encoding();
    let msh = msg.segment_at(0);
    let raw = |f: usize| msh.and_then(|s| s.field(f)).map_or(&b""[..], |e| e.raw());
    // answer in the message's charset when it is one we write; an unsupported MSH-18 (the very
    // reason a message may be rejected) must not make the ACK unreadable too
    let msh18 = raw(18)
        .split(|&b| b == enc.delimiters.repetition)
        .next()
        .unwrap_or_default();
    let charset = Charset::from_msh18(msh18).unwrap_or(Charset::Utf8);
    let mut ack = MessageBuf::new(enc.delimiters, charset);
    for (to, from) in [(3, 5), (4, 6), (5, 3), (6, 4), (11, 11), (12, 12)] {
        if !raw(from).is_empty() {
            ack.set_raw(&format!("MSH-{to}"), raw(from))?;
        }
    }
    ack.set("MSH-7", opts.timestamp)?;
    ack.set("MSH-9-1", "ACK")?;
    if let Some(ev) = msg.trigger_event() {
        ack.set("MSH-9-2", &ev)?;
    }
    let version = msg.version().unwrap_or_default();
    let v = version_key(&version);
    if v.is_empty() || v >= vec![2, 3, 1] {
        ack.set("MSH-9-3", "ACK")?;
    }
    ack.set("MSH-10", opts.control_id)?;
    if raw(11).is_empty() {
        ack.set("MSH-11", "P")?;
    }
    if raw(12).is_empty() {
        ack.set("MSH-12", "2.5.1")?;
    }
    if matches!(AckMode::of(msg), AckMode::Enhanced { .. }) {
        // an acknowledgment is never itself acknowledged
        ack.set("MSH-15", "NE")?;
        ack.set("MSH-16", "NE")?;
    }
    ack.push_segment("MSA")?;
    ack.set("MSA-1", opts.code.code())?;
    if let Some(id) = msh.and_then(|s| s.field(10)) {
        ack.set_raw("MSA-2", id.raw())?;
    }
    if let Some(text) = opts.text {
        ack.set("MSA-3", &truncate(text, 80))?;
    }
    let legacy = !v.is_empty() && v < vec![2, 5];
    for (n, err) in opts.errors.iter().enumerate() {
        ack.push_segment("ERR")?;
        let p = |f: &str| format!("ERR[{}]-{f}", n + 1);
        if let Some(loc) = err.location.as_ref().filter(|l| l.segment.is_some()) {
            let seq = loc.segment_index.map_or(1, |i| occurrence(msg, i));
            let parts = [
                loc.segment.clone().unwrap_or_default(),
                seq.to_string(),
                loc.field.map(|f| f.to_string()).unwrap_or_default(),
                loc.repetition
                    .or(loc.field.map(|_| 1))
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                loc.component.map(|c| c.to_string()).unwrap_or_default(),
                loc.subcomponent.map(|c| c.to_string()).unwrap_or_default(),
            ];
            for (i, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                ack.set(&p(&format!("2-{}", i + 1)), part)?;
            }
            if legacy {
                for (i, part) in parts
                    .iter()
                    .take(3)
                    .enumerate()
                    .filter(|(_, p)| !p.is_empty())
                {
                    ack.set(&p(&format!("1-{}", i + 1)), part)?;
                }
            }
        }
        if legacy {
            ack.set(&p("1-4-1"), err.condition.code())?;
            ack.set(&p("1-4-2"), err.condition.text())?;
            ack.set(&p("1-4-3"), "HL70357")?;
        }
        ack.set(&p("3-1"), err.condition.code())?;
        ack.set(&p("3-2"), err.condition.text())?;
        ack.set(&p("3-3"), "HL70357")?;
        ack.set(&p("4"), err.severity.code())?;
        if !err.text.is_empty() {
            ack.set(&p("8"), &truncate(&err.text, 250))?;
        }
    }
    Ok(ack)
}

/// The most telling text of a received acknowledgment: ERR-8 (user message), else MSA-3
/// (text message) when there is no ERR-8; `None` when the one read is empty.
pub fn ack_text(ack: &Message<'_>) -> Option<String> {
    ack.value("ERR-8")
        .ok()
        .flatten()
        .or_else(|| ack.value("MSA-3").ok().flatten())
        .map(std::borrow::Cow::into_owned)
        .filter(|t| !t.is_empty())
}

/// The MSH segment of a message that does not parse as a whole (a bad segment further on,
/// bytes that do not fit its character set, an unknown MSH-18), read leniently so that it can
/// still be acknowledged with AR/CR. `None` when even the MSH is unreadable.
pub fn salvage_header(input: &[u8]) -> Option<Message<'_>> {
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n' && !matches!(b, 0xEF | 0xBB | 0xBF))?;
    let line = &input[start..];
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    // Latin-1 accepts every byte, so only the structure of the MSH line itself can fail.
    Message::parse_inner(&line[..end], start, Some(crate::Charset::Latin1)).ok()
}

/// Which occurrence of its id the segment at `index` is (1-based), as ERR-2.2 wants.
fn occurrence(msg: &Message<'_>, index: usize) -> usize {
    let Some(seg) = msg.segment_at(index) else {
        return 1;
    };
    msg.segments()
        .take(index + 1)
        .filter(|s| s.id() == seg.id())
        .count()
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Formats seconds since the Unix epoch as an HL7 timestamp in UTC: `YYYYMMDDHHMMSS+0000`.
pub fn timestamp(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}+0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_text_prefers_err_8_then_msa_3() {
        let both = b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5.1\rMSA|AE|C1|short\rERR|||207|E||||long\r";
        assert_eq!(
            ack_text(&Message::parse(both).unwrap()).as_deref(),
            Some("long")
        );
        let msa = b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5.1\rMSA|AR|C1|refused\r";
        assert_eq!(
            ack_text(&Message::parse(msa).unwrap()).as_deref(),
            Some("refused")
        );
        let none = b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5.1\rMSA|AA|C1\r";
        assert_eq!(ack_text(&Message::parse(none).unwrap()), None);
    }

    const ADT: &[u8] = b"MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5.1\rEVN|A01\rPID|1\r";

    #[test]
    fn original_mode_ack_swaps_and_carries_errors() {
        let msg = Message::parse(ADT).unwrap();
        assert_eq!(AckMode::of(&msg), AckMode::Original);
        let err = AckError {
            location: Some(Location {
                segment_index: Some(2),
                segment: Some("PID".into()),
                field: Some(5),
                ..Location::default()
            }),
            condition: ErrorCondition::RequiredFieldMissing,
            severity: Severity::Error,
            text: "PATIENT_NAME is empty".into(),
        };
        let opts = AckOptions {
            code: AckMode::of(&msg).code(Outcome::Error),
            text: Some("bad"),
            errors: vec![err],
            control_id: "A1",
            timestamp: "20240101120001",
        };
        let ack = build_ack(&msg, &opts).unwrap().encode();
        assert_eq!(
            String::from_utf8(ack).unwrap(),
            "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|20240101120001||ACK^A01^ACK|A1|P|2.5.1\r\
             MSA|AE|CTRL1|bad\r\
             ERR||PID^1^5^1|101^Required field missing^HL70357|E||||PATIENT_NAME is empty\r"
        );
    }

    #[test]
    fn enhanced_mode_uses_commit_codes() {
        let raw = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X9|P|2.4|||AL|ER\rPID|1\r";
        let msg = Message::parse(raw).unwrap();
        let mode = AckMode::of(&msg);
        assert_eq!(
            mode,
            AckMode::Enhanced {
                accept: AckCondition::Always,
                application: AckCondition::ErrorOnly
            }
        );
        assert_eq!(mode.code(Outcome::Accept), AckCode::CommitAccept);
        assert_eq!(mode.code(Outcome::Reject), AckCode::CommitReject);
        let opts = AckOptions {
            code: mode.code(Outcome::Accept),
            text: None,
            errors: vec![],
            control_id: "Z",
            timestamp: "2024",
        };
        let ack = String::from_utf8(build_ack(&msg, &opts).unwrap().encode()).unwrap();
        assert_eq!(
            ack,
            "MSH|^~\\&|C|D|A|B|2024||ACK^R01^ACK|Z|P|2.4|||NE|NE\rMSA|CA|X9\r"
        );
        let never = Message::parse(b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|X|P|2.4|||ER|NE\r").unwrap();
        assert!(!AckMode::of(&never).sends_accept_ack(Outcome::Accept));
        assert!(AckMode::of(&never).sends_accept_ack(Outcome::Error));
    }

    #[test]
    fn legacy_versions_get_err1() {
        let msg = Message::parse(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.3\rPID|1\r").unwrap();
        let err = AckError {
            location: Some(Location {
                segment_index: Some(1),
                segment: Some("PID".into()),
                field: Some(3),
                ..Location::default()
            }),
            condition: ErrorCondition::RequiredFieldMissing,
            severity: Severity::Error,
            text: String::new(),
        };
        let opts = AckOptions {
            code: AckCode::ApplicationError,
            text: None,
            errors: vec![err],
            control_id: "Z",
            timestamp: "2024",
        };
        let ack = String::from_utf8(build_ack(&msg, &opts).unwrap().encode()).unwrap();
        assert!(
            ack.contains("MSH|^~\\&|C|D|A|B|2024||ACK^A01|Z|P|2.3\r"),
            "{ack}"
        );
        assert!(ack.contains("ERR|PID^1^3^101&Required field missing&HL70357|PID^1^3^1|101^Required field missing^HL70357|E\r"), "{ack}");
    }

    #[test]
    fn salvages_headers_of_bad_messages() {
        let raw = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X7|P|2.5||||||KLINGON\rPID|\xFF\r";
        assert!(Message::parse(raw).is_err());
        let msh = salvage_header(raw).unwrap();
        assert_eq!(msh.control_id().as_deref(), Some("X7"));
        let opts = AckOptions {
            code: AckCode::ApplicationReject,
            text: None,
            errors: vec![],
            control_id: "A",
            timestamp: "2024",
        };
        let ack = build_ack(&msh, &opts).unwrap().encode();
        assert!(
            Message::parse(&ack).is_ok(),
            "{}",
            String::from_utf8_lossy(&ack)
        );
        assert!(salvage_header(b"garbage").is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101000000+0000");
        assert_eq!(timestamp(1_709_210_096), "20240229123456+0000");
    }
}
