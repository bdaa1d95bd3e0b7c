//! Bad input gets a located error, never a panic, and huge inputs stay cheap.

use hl7v2::{ErrorKind, Message, MessageReader};

fn err(input: &[u8]) -> hl7v2::ParseError {
    Message::parse(input).expect_err("should not parse")
}

#[test]
fn empty_input() {
    for input in [&b""[..], b"\xEF\xBB\xBF", b"\r\n\r\n"] {
        assert_eq!(err(input).kind, ErrorKind::Empty);
    }
}

#[test]
fn no_msh() {
    let e = err(b"PID|1||123\r");
    assert!(
        matches!(e.kind, ErrorKind::NoMsh(ref s) if s.starts_with("PID")),
        "{e}"
    );
    assert_eq!(e.location.offset, 0);
    let e = err(b"\r\nhello world");
    assert_eq!(e.location.offset, 2);
}

#[test]
fn bad_delimiters() {
    for (input, offset) in [
        (&b"MSH"[..], 3),
        (b"MSHA^~\\&|", 3),
        (b"MSH|^", 4),
        (b"MSH|^^\\&|", 5),
        (b"MSH|||", 4),
    ] {
        let e = err(input);
        assert!(
            matches!(
                e.kind,
                ErrorKind::BadDelimiters(_) | ErrorKind::Truncated(_)
            ),
            "{input:?}: {e}"
        );
        assert_eq!(e.location.offset, offset, "{input:?}: {e}");
        assert_eq!(e.location.segment.as_deref(), Some("MSH"));
    }
}

#[test]
fn truncated_and_bad_segments() {
    let e = err(b"MSH|^~\\&|A\rPI\r");
    assert!(matches!(e.kind, ErrorKind::BadSegmentId(_)), "{e}");
    assert_eq!((e.location.offset, e.location.segment_index), (11, Some(1)));
    let e = err(b"MSH|^~\\&|A\rpid|1\r");
    assert!(matches!(e.kind, ErrorKind::BadSegmentId(_)), "{e}");
    let e = err(b"MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r");
    assert_eq!(e.kind, ErrorKind::SecondMsh);
    assert_eq!(e.location.segment_index, Some(2));
    // a message cut after MSH-2 still parses: its missing fields are validation errors
    let msg = Message::parse(b"MSH|^~\\&").expect("minimal MSH");
    let issues = hl7v2::validate::validate(&msg);
    assert!(issues.iter().any(|i| i.location.field == Some(10)));
}

#[test]
fn invalid_utf8_is_located() {
    let input = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\rPID|1||123||DO\xFFE\r";
    let e = err(input);
    assert!(
        matches!(e.kind, ErrorKind::InvalidByte { byte: 0xFF, .. }),
        "{e}"
    );
    let at = input.iter().position(|&b| b == 0xFF).expect("bad byte");
    assert_eq!(e.location.offset, at);
    assert_eq!(e.location.path(), "PID-5");
    assert_eq!(e.location.segment_index, Some(1));
}

#[test]
fn bytes_outside_declared_charsets() {
    let ascii = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1||||||ASCII\rPID|1||\xC3\xA9\r";
    assert!(matches!(
        err(ascii).kind,
        ErrorKind::InvalidByte {
            charset: "ASCII",
            ..
        }
    ));
    let unknown = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1||||||ISO IR87\rPID|1\r";
    let e = err(unknown);
    assert!(
        matches!(e.kind, ErrorKind::UnsupportedCharset(ref c) if c == "ISO IR87"),
        "{e}"
    );
    assert_eq!(e.location.path(), "MSH-18");
    let latin1 = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1||||||8859/1\rPID|1||||M\xDCLLER\r";
    let msg = Message::parse(latin1).expect("latin-1");
    assert_eq!(msg.value("PID-5").expect("path").as_deref(), Some("MÜLLER"));
}

#[test]
fn hundred_thousand_fields() {
    let mut input = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\rZZZ".to_vec();
    for i in 0..100_000 {
        input.extend_from_slice(format!("|{i}").as_bytes());
    }
    let msg = Message::parse(&input).expect("parses");
    assert_eq!(
        msg.value("ZZZ-100000").expect("path").as_deref(),
        Some("99999")
    );
    assert_eq!(msg.value("ZZZ-100001").expect("path"), None);
    let seg = msg.segment("ZZZ", 1).expect("segment");
    assert_eq!(seg.field_count(), 100_000);
    let _ = hl7v2::validate::validate(&msg);
}

#[test]
fn deeply_repeated_components() {
    let mut input = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\rPID|1||".to_vec();
    input.extend(std::iter::repeat_n(b"~^&".iter().copied(), 200_000).flatten());
    input.extend_from_slice(b"END");
    let msg = Message::parse(&input).expect("parses");
    assert_eq!(
        msg.value("PID-3[200001]-2-2").expect("path").as_deref(),
        Some("END")
    );
    let field = msg.get("PID-3").expect("path").expect("present");
    assert_eq!(field.children().count(), 200_001);
    let _ = hl7v2::validate::validate(&msg);
    let _ = hl7v2::json::to_json(&msg).expect("json");
}

#[test]
fn reader_bounds_memory_on_a_line_without_end() {
    // 8 MiB of bytes with no terminator and a 1 MiB limit: an error, then the next message
    let mut input = b"MSH|^~\\&|A\rOBX|".to_vec();
    input.extend(std::iter::repeat_n(b'x', 8 << 20));
    input.extend_from_slice(b"\rMSH|^~\\&|B\rPID|1\r");
    let mut r = MessageReader::with_max_message(std::io::BufReader::new(&input[..]), 1 << 20);
    let first = r.next_message().expect("item");
    assert!(
        matches!(first, Err(ref e) if matches!(e.kind, ErrorKind::Limit(_))),
        "{first:?}"
    );
    let second = r.next_message().expect("item").expect("message");
    assert_eq!(second.bytes, b"MSH|^~\\&|B\rPID|1\r");
}

/// A stream that makes `total` bytes of concatenated messages on the fly.
struct Generated {
    message: Vec<u8>,
    pos: usize,
    left: usize,
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            let chunk = (self.message.len() - self.pos)
                .min(buf.len() - n)
                .min(self.left);
            buf[n..n + chunk].copy_from_slice(&self.message[self.pos..self.pos + chunk]);
            self.pos = (self.pos + chunk) % self.message.len();
            self.left -= chunk;
            n += chunk;
        }
        Ok(n)
    }
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn streaming_64_mib_keeps_memory_flat() {
    let message =
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||123^^^H^MR||DOE^JANE\rPV1|1|I\r"
            .to_vec();
    let total = 64 << 20;
    let expected = total / message.len();
    let left = expected * message.len();
    let source = Generated {
        message,
        pos: 0,
        left,
    };
    let before = peak_rss_kb();
    let mut reader = MessageReader::new(std::io::BufReader::with_capacity(1 << 16, source));
    let mut count = 0;
    while let Some(m) = reader.next_message() {
        let m = m.expect("message");
        assert!(Message::parse(m.bytes).is_ok());
        count += 1;
    }
    assert_eq!(count, expected);
    if let (Some(before), Some(after)) = (before, peak_rss_kb()) {
        // the whole stream is 64 MiB; reading it must not grow the process by more than a few MiB
        assert!(
            after.saturating_sub(before) < 32 * 1024,
            "peak RSS grew from {before} kB to {after} kB"
        );
    }
}
