//! What a source does with each received HL7 v2 payload before and after storing it: read the
//! header, decide the outcome, and build the acknowledgment once the message is on disk.
//!
//! Nothing here touches the network or the store, so every path is unit-tested.

use hl7v2::ack::{AckError, AckMode, AckOptions, Outcome, build_ack, salvage_header, timestamp};
use hl7v2::generated::tables::ErrorCondition;
use hl7v2::validate::Severity;
use hl7v2::{Charset, Delimiters, Message, MessageBuf};

/// The header fields the journal keeps, read from MSH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// MSH-9-1.
    pub message_type: Option<String>,
    /// MSH-9-2.
    pub trigger_event: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// MSH-3-1.
    pub sending_application: Option<String>,
    /// MSH-4-1.
    pub sending_facility: Option<String>,
}

/// A received payload, inspected.
#[derive(Debug)]
pub struct Inspection<'a> {
    /// The message, or its header alone when the whole does not parse; `None` without MSH.
    message: Option<Message<'a>>,
    /// Header fields for the journal.
    pub header: Header,
    /// Accept, or reject because the payload does not parse.
    pub outcome: Outcome,
    /// Why it was rejected, for the journal's error column and the ERR segment.
    pub error: Option<AckError>,
}

/// Reads a payload: a message that parses is accepted; one that does not is rejected with the
/// parse error (its header still read where possible, to answer and to journal it).
pub fn inspect(payload: &[u8]) -> Inspection<'_> {
    match Message::parse(payload) {
        Ok(m) => Inspection {
            header: header(&m),
            message: Some(m),
            outcome: Outcome::Accept,
            error: None,
        },
        Err(e) => {
            let salvaged = salvage_header(payload);
            Inspection {
                header: salvaged.as_ref().map(header).unwrap_or_default(),
                message: salvaged,
                outcome: Outcome::Reject,
                error: Some(AckError::from(&e)),
            }
        }
    }
}

fn header(m: &Message<'_>) -> Header {
    let text = |p: &str| {
        m.value(p)
            .ok()
            .flatten()
            .map(std::borrow::Cow::into_owned)
            .filter(|v| !v.is_empty())
    };
    Header {
        message_type: text("MSH-9-1"),
        trigger_event: text("MSH-9-2"),
        control_id: text("MSH-10"),
        sending_application: text("MSH-3-1"),
        sending_facility: text("MSH-4-1"),
    }
}

impl Inspection<'_> {
    /// Rejects the payload for a reason found outside the parser (e.g. a framing error),
    /// keeping the location of a parse error if there is one.
    #[must_use]
    pub fn reject(mut self, text: String) -> Self {
        self.outcome = Outcome::Reject;
        match self.error.as_mut() {
            Some(e) => e.text = text,
            None => self.error = Some(application_error(text)),
        }
        self
    }

    /// Answers AE/CE with `text`: the message was stored but its processing failed (used when
    /// a channel acknowledges after its destinations).
    #[must_use]
    pub fn fail(mut self, text: String) -> Self {
        self.outcome = Outcome::Error;
        self.error = Some(application_error(text));
        self
    }

    /// The text at `path` of the message, when it parsed and the value is not empty.
    pub fn value(&self, path: &str) -> Option<String> {
        let m = self.message.as_ref()?;
        m.value(path)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(std::borrow::Cow::into_owned)
    }

    /// Copies the header fields the journal keeps into a new message.
    pub fn fill_header(&self, m: &mut store::NewMessage) {
        let h = &self.header;
        m.message_type.clone_from(&h.message_type);
        m.trigger_event.clone_from(&h.trigger_event);
        m.control_id.clone_from(&h.control_id);
        m.sending_application.clone_from(&h.sending_application);
        m.sending_facility.clone_from(&h.sending_facility);
    }

    /// The acknowledgment mode the sender asked for (original when the header is unreadable).
    pub fn mode(&self) -> AckMode {
        self.message.as_ref().map_or(AckMode::Original, AckMode::of)
    }

    /// The acknowledgment to send after the message was stored (`stored_ok`) or not; `None`
    /// when `as_requested` and enhanced mode says this one must not be acknowledged (MSH-15
    /// NE, or ER on success).
    ///
    /// A store failure answers AE/CE ("application internal error"): the sender keeps the
    /// message and sends it again, so nothing is lost.
    pub fn ack(
        &self,
        control_id: &str,
        unix_seconds: i64,
        stored_ok: bool,
        as_requested: bool,
    ) -> Option<Vec<u8>> {
        let mode = self.mode();
        let (outcome, error) = match (self.outcome, stored_ok) {
            (Outcome::Accept, true) => (Outcome::Accept, None),
            (Outcome::Accept, false) => (Outcome::Error, Some(store_failed())),
            (o, _) => (o, self.error.clone()),
        };
        if as_requested && !mode.sends_accept_ack(outcome) {
            return None;
        }
        let now = timestamp(unix_seconds);
        let opts = AckOptions {
            code: mode.code(outcome),
            text: None,
            errors: error.into_iter().collect(),
            control_id,
            timestamp: &now,
        };
        let built = match &self.message {
            Some(m) => build_ack(m, &opts).ok(),
            None => None,
        };
        Some(built.unwrap_or_else(|| headerless_ack(&opts)).encode())
    }
}

/// Seconds since the Unix epoch, for ACK timestamps and stand-in control ids.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The answer to a framing error: an oversized message is rejected (AR) from the header it
/// starts with, so the sender knows why; other framing errors get no answer.
pub fn frame_error_reply(err: &mllp::FrameError, head: &[u8]) -> Option<Vec<u8>> {
    if !matches!(err, mllp::FrameError::TooLarge { .. }) {
        return None;
    }
    inspect(head).reject(err.to_string()).ack(
        &format!("ERR{}", unix_now()),
        unix_now(),
        true,
        false,
    )
}

fn store_failed() -> AckError {
    application_error("the message could not be stored; send it again".into())
}

/// A message-level error (table 0357 code 207) with `text`.
fn application_error(text: String) -> AckError {
    AckError {
        location: None,
        condition: ErrorCondition::ApplicationError,
        severity: Severity::Error,
        text,
    }
}

/// An AR for a payload with no readable MSH: nothing to swap or echo, but the sender still
/// learns it was rejected and why.
fn headerless_ack(opts: &AckOptions<'_>) -> MessageBuf {
    let mut ack = MessageBuf::new(Delimiters::default(), Charset::Utf8);
    let text = opts
        .errors
        .first()
        .map_or("message has no readable MSH segment", |e| e.text.as_str());
    // these paths and values are constants: they cannot fail
    let _ = ack.set("MSH-7", opts.timestamp);
    let _ = ack.set("MSH-9-1", "ACK");
    let _ = ack.set("MSH-10", opts.control_id);
    let _ = ack.set("MSH-11", "P");
    let _ = ack.set("MSH-12", "2.5.1");
    let _ = ack.push_segment("MSA");
    let _ = ack.set("MSA-1", opts.code.code());
    let _ = ack.push_segment("ERR");
    let _ = ack.set("ERR-3-1", ErrorCondition::ApplicationError.code());
    let _ = ack.set("ERR-3-2", ErrorCondition::ApplicationError.text());
    let _ = ack.set("ERR-3-3", "HL70357");
    let _ = ack.set("ERR-4", Severity::Error.code());
    let _ = ack.set("ERR-8", text);
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack_text(payload: &[u8], ok: bool) -> Option<String> {
        inspect(payload)
            .ack("ACK1", 0, ok, true)
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn accepts_and_answers_aa_or_ca() {
        let adt = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|2024||ADT^A01|C1|P|2.5.1\rPID|1\r";
        let i = inspect(adt);
        assert_eq!(i.header.control_id.as_deref(), Some("C1"));
        assert_eq!(i.header.sending_application.as_deref(), Some("LAB"));
        assert!(ack_text(adt, true).unwrap().contains("\rMSA|AA|C1\r"));
        let enhanced = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|2024||ADT^A01|C2|P|2.5.1|||AL|NE\rPID|1\r";
        assert!(ack_text(enhanced, true).unwrap().contains("\rMSA|CA|C2\r"));
        let never = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|2024||ADT^A01|C3|P|2.5.1|||NE|NE\rPID|1\r";
        assert_eq!(ack_text(never, true), None);
        let always = inspect(never)
            .ack("A", 0, true, false)
            .map(|b| String::from_utf8(b).unwrap());
        assert!(always.unwrap().contains("\rMSA|CA|C3\r"));
    }

    #[test]
    fn store_failure_is_an_application_error() {
        let adt = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|2024||ADT^A01|C1|P|2.5.1\rPID|1\r";
        let a = ack_text(adt, false).unwrap();
        assert!(
            a.contains("\rMSA|AE|C1\r") && a.contains("207^Application error^HL70357"),
            "{a}"
        );
    }

    #[test]
    fn unparseable_messages_are_rejected_with_err() {
        let bad = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|2024||ADT^A01|C9|P|2.5.1||||||KLINGON\rPID|1\r";
        let i = inspect(bad);
        assert_eq!(i.outcome, Outcome::Reject);
        assert_eq!(i.header.control_id.as_deref(), Some("C9"));
        let a = ack_text(bad, true).unwrap();
        assert!(a.contains("\rMSA|AR|C9\r") && a.contains("\rERR|"), "{a}");
        assert!(a.contains("KLINGON"), "{a}");
        let garbage = ack_text(b"hello world", true).unwrap();
        assert!(
            garbage.starts_with("MSH|^~\\&|")
                && garbage.contains("\rMSA|AR\r")
                && garbage.contains("\rERR|"),
            "{garbage}"
        );
        assert!(Message::parse(garbage.as_bytes()).is_ok());
    }
}
