//! Reading many messages from a stream: files of concatenated messages and batches
//! (`FHS`/`BHS` … `BTS`/`FTS`), one message at a time, in bounded memory.

use std::io::{BufRead, ErrorKind as IoKind};

use memchr::memchr2;

use crate::error::{ErrorKind, ParseError, Result};

/// The default largest message [`MessageReader`] accepts (64 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// One message read from a stream, with where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage<B> {
    /// The message bytes, segment terminators included, exactly as in the stream.
    pub bytes: B,
    /// Byte offset of the message's first byte in the stream.
    pub offset: u64,
    /// 1-based position of the message in the stream.
    pub number: usize,
    /// 1-based line of the message's first segment (`\r\n` counts as one line end).
    pub line: u64,
}

/// The batch envelope segments seen so far, as raw bytes without terminators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The `FHS` segment, if any.
    pub file_header: Option<Vec<u8>>,
    /// The last `BHS` segment, if any.
    pub batch_header: Option<Vec<u8>>,
    /// The last `BTS` segment, if any.
    pub batch_trailer: Option<Vec<u8>>,
    /// The `FTS` segment, if any.
    pub file_trailer: Option<Vec<u8>>,
    /// Batches opened (BHS) so far.
    pub batches: usize,
}

/// Splits a stream into messages at each `MSH`, never holding more than one message (plus a
/// read buffer) in memory.
///
/// Segment terminators may be `\r`, `\n` or `\r\n`; a leading UTF-8 byte-order mark and blank
/// lines between messages are skipped. Batch envelope segments end the current message and are
/// kept in [`Envelope`]; a `BTS-1` or `FTS-1` count that disagrees with what was read is
/// reported as an error. Lines before the first MSH and messages over the size limit are
/// reported as errors and skipped; reading goes on with the next message.
#[derive(Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent flags of the line state machine"
)]
pub struct MessageReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` handed out by the last call, dropped on the next.
    handed_out: usize,
    /// Stream offset of `buf[0]`.
    buf_offset: u64,
    /// Bytes consumed from the stream so far.
    consumed: u64,
    max_message: usize,
    started: bool,
    in_message: bool,
    /// Dropping lines until the next MSH (after garbage or an oversized message).
    discarding: bool,
    number: usize,
    in_batch: usize,
    envelope: Envelope,
    pending_error: Option<ParseError>,
    /// Line number of the line `read_line` returns next.
    next_line: u64,
    /// Whether the last line read ended in `\r` (so a lone `\n` next is its CRLF's end).
    after_cr: bool,
    /// Line of the current message's MSH.
    msg_line: u64,
    /// Line of the line last returned by `read_line`.
    last_line: u64,
}

impl<R: BufRead> MessageReader<R> {
    /// A reader with the default message size limit.
    pub fn new(inner: R) -> Self {
        Self::with_max_message(inner, DEFAULT_MAX_MESSAGE)
    }

    /// A reader that rejects messages longer than `max_message` bytes.
    pub fn with_max_message(inner: R, max_message: usize) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(8192),
            handed_out: 0,
            buf_offset: 0,
            consumed: 0,
            max_message,
            started: false,
            in_message: false,
            discarding: false,
            number: 0,
            in_batch: 0,
            envelope: Envelope::default(),
            pending_error: None,
            next_line: 1,
            after_cr: false,
            msg_line: 1,
            last_line: 1,
        }
    }

    /// The batch envelope read so far.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Reads the next message, borrowing it from the reader's buffer.
    pub fn next_message(&mut self) -> Option<Result<RawMessage<&[u8]>>> {
        if self.handed_out > 0 {
            self.buf.drain(..self.handed_out);
            self.buf_offset += self.handed_out as u64;
            self.handed_out = 0;
            if self.buf.is_empty() {
                // an envelope segment may have followed the message: it was consumed, not kept
                self.buf_offset = self.consumed;
            }
        }
        if let Some(e) = self.pending_error.take() {
            return Some(Err(e));
        }
        loop {
            let start = match self.read_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) if self.in_message => {
                    let len = self.buf.len();
                    return Some(Ok(self.hand_out(len, None)));
                }
                Ok(None) => return None,
                Ok(Some(start)) => start,
            };
            let line = &self.buf[start..];
            // read_line stops at the first terminator byte, so only the last byte can be one
            let content_len = line.len() - usize::from(matches!(line.last(), Some(b'\r' | b'\n')));
            let line_offset = self.buf_offset + start as u64;
            let id = <[u8; 3]>::try_from(&line[..content_len.min(3)]).unwrap_or_default();
            match &id {
                _ if content_len == 0 => {
                    if !self.in_message {
                        self.truncate(start);
                    }
                }
                b"MSH" => {
                    self.discarding = false;
                    if self.in_message {
                        return Some(Ok(self.hand_out(start, Some(self.last_line))));
                    }
                    self.msg_line = self.last_line;
                    self.buf.drain(..start);
                    self.buf_offset += start as u64;
                    self.in_message = true;
                }
                b"FHS" | b"BHS" | b"BTS" | b"FTS" => {
                    let seg = line[..content_len].to_vec();
                    self.truncate(start);
                    self.discarding = false;
                    let pending = usize::from(self.in_message);
                    self.record_envelope(id, seg, pending, line_offset);
                    if self.in_message {
                        return Some(Ok(self.hand_out(start, None)));
                    }
                    if let Some(e) = self.pending_error.take() {
                        return Some(Err(e));
                    }
                }
                _ if self.in_message => {}
                _ => {
                    let head = String::from_utf8_lossy(&line[..content_len.min(16)]).into_owned();
                    self.truncate(start);
                    if !self.discarding {
                        self.discarding = true;
                        return Some(Err(ParseError::new(
                            ErrorKind::NoMsh(head),
                            line_offset as usize,
                        )));
                    }
                }
            }
            if self.buf.len() > self.max_message {
                let at = self.buf_offset as usize;
                self.truncate(0);
                self.in_message = false;
                self.discarding = true;
                return Some(Err(too_long(self.max_message, at)));
            }
        }
    }

    fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
        if self.buf.is_empty() {
            self.buf_offset = self.consumed;
        }
    }

    /// Hands out the first `len` bytes as a message; `next` is the line of the MSH that
    /// follows them in the buffer, if one does.
    fn hand_out(&mut self, len: usize, next: Option<u64>) -> RawMessage<&[u8]> {
        self.number += 1;
        self.in_batch += 1;
        self.handed_out = len;
        self.in_message = next.is_some();
        let line = self.msg_line;
        if let Some(next) = next {
            self.msg_line = next;
        }
        RawMessage {
            bytes: &self.buf[..len],
            offset: self.buf_offset,
            number: self.number,
            line,
        }
    }

    /// Keeps an envelope segment and checks the counts in BTS-1 and FTS-1; `pending` is the
    /// number of messages read but not yet handed out (they belong to the batch).
    fn record_envelope(&mut self, id: [u8; 3], seg: Vec<u8>, pending: usize, offset: u64) {
        let count = count_field(&seg);
        let mismatch = |what: &str, declared: usize, read: usize| {
            ParseError::new(
                ErrorKind::Limit(format!("{what} declares {declared} but {read} were read")),
                offset as usize,
            )
        };
        match &id {
            b"FHS" => self.envelope.file_header = Some(seg),
            b"BHS" => {
                self.envelope.batches += 1;
                self.in_batch = 0;
                self.envelope.batch_header = Some(seg);
            }
            b"BTS" => {
                let read = self.in_batch + pending;
                if let Some(declared) = count.filter(|&n| n != read) {
                    self.pending_error =
                        Some(mismatch("BTS-1 (batch message count)", declared, read));
                }
                self.envelope.batch_trailer = Some(seg);
            }
            _ => {
                if let Some(declared) = count.filter(|&n| n != self.envelope.batches) {
                    self.pending_error = Some(mismatch(
                        "FTS-1 (file batch count)",
                        declared,
                        self.envelope.batches,
                    ));
                }
                self.envelope.file_trailer = Some(seg);
            }
        }
    }

    /// Appends one line (up to and including its first terminator byte) to `buf`; returns
    /// where it starts, or `None` at the end of the stream.
    fn read_line(&mut self) -> Result<Option<usize>> {
        let start = self.buf.len();
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
                    return Err(ParseError::new(
                        ErrorKind::Io(e.to_string()),
                        self.consumed as usize,
                    ));
                }
            };
            if available.is_empty() {
                return Ok((self.buf.len() > start).then_some(start));
            }
            let mut from = 0;
            if !self.started {
                self.started = true;
                if available.starts_with(b"\xEF\xBB\xBF") {
                    from = 3;
                    if self.buf.is_empty() {
                        self.buf_offset = 3;
                    }
                }
            }
            let chunk = &available[from..];
            let (take, done) = match memchr2(b'\r', b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if done {
                let lone_lf =
                    take == 1 && chunk[0] == b'\n' && self.buf.len() == start && self.after_cr;
                self.after_cr = chunk[take - 1] == b'\r';
                if !lone_lf {
                    self.last_line = self.next_line;
                    self.next_line += 1;
                }
            }
            self.buf.extend_from_slice(&chunk[..take]);
            self.inner.consume(from + take);
            self.consumed += (from + take) as u64;
            if done {
                return Ok(Some(start));
            }
            if self.buf.len() - start > self.max_message {
                return Err(self.skip_long_line());
            }
        }
    }

    /// Drops the rest of a line that outgrew the limit, so memory stays bounded.
    fn skip_long_line(&mut self) -> ParseError {
        let at = self.buf_offset as usize;
        while let Ok(available) = self.inner.fill_buf() {
            if available.is_empty() {
                break;
            }
            let (take, done) = match memchr2(b'\r', b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            self.inner.consume(take);
            self.consumed += take as u64;
            if done {
                break;
            }
        }
        self.truncate(0);
        self.in_message = false;
        self.discarding = true;
        too_long(self.max_message, at)
    }
}

impl<R: BufRead> Iterator for MessageReader<R> {
    type Item = Result<RawMessage<Vec<u8>>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().map(|r| {
            r.map(|m| RawMessage {
                bytes: m.bytes.to_vec(),
                offset: m.offset,
                number: m.number,
                line: m.line,
            })
        })
    }
}

fn too_long(max: usize, at: usize) -> ParseError {
    ParseError::new(
        ErrorKind::Limit(format!(
            "message longer than {max} bytes; skipped to the next MSH"
        )),
        at,
    )
}

/// Reads field 1 of an envelope segment (`BTS-1`, `FTS-1`) as a count.
fn count_field(seg: &[u8]) -> Option<usize> {
    let sep = *seg.get(3)?;
    let field = seg.get(4..)?.split(|&b| b == sep).next()?;
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type ReadResult = (Vec<std::result::Result<(u64, String), String>>, Envelope);

    fn read_all(input: &[u8], max: usize) -> ReadResult {
        read_lines(input, max).0
    }

    fn read_lines(input: &[u8], max: usize) -> (ReadResult, Vec<u64>) {
        // a tiny buffer makes every line cross read boundaries
        let mut r =
            MessageReader::with_max_message(std::io::BufReader::with_capacity(7, input), max);
        let mut out = Vec::new();
        let mut lines = Vec::new();
        while let Some(m) = r.next_message() {
            if let Ok(m) = &m {
                lines.push(m.line);
            }
            out.push(
                m.map(|m| (m.offset, String::from_utf8_lossy(m.bytes).into_owned()))
                    .map_err(|e| e.to_string()),
            );
        }
        ((out, r.envelope().clone()), lines)
    }

    #[test]
    fn splits_messages_with_any_terminator_and_keeps_bytes() {
        let input =
            b"\xEF\xBB\xBF\r\nMSH|^~\\&|A\r\nPID|1\r\n\r\nMSH|^~\\&|B\nPID|2\nMSH|^~\\&|C\rPID|3";
        let ((out, _), lines) = read_lines(input, 1 << 20);
        assert_eq!(lines, vec![2, 5, 7]);
        let got: Vec<_> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            vec![
                (5, "MSH|^~\\&|A\r\nPID|1\r\n\r\n".to_owned()),
                (26, "MSH|^~\\&|B\nPID|2\n".to_owned()),
                (43, "MSH|^~\\&|C\rPID|3".to_owned()),
            ]
        );
    }

    #[test]
    fn reads_batches_and_checks_counts() {
        let good = b"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|1\rMSH|^~\\&|2\rBTS|2\rBHS|^~\\&\rMSH|^~\\&|3\rBTS|1\rFTS|2\r";
        let (out, env) = read_all(good, 1 << 20);
        assert_eq!(out.len(), 3);
        // offsets point at each MSH, also after envelope segments
        for m in &out {
            let (offset, bytes) = m.as_ref().unwrap();
            let at = usize::try_from(*offset).unwrap();
            assert_eq!(&good[at..at + bytes.len()], bytes.as_bytes());
        }
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(env.batches, 2);
        assert_eq!(env.batch_trailer.as_deref(), Some(&b"BTS|1"[..]));
        let bad = b"BHS|^~\\&\rMSH|^~\\&|1\rBTS|3\r";
        let (out, _) = read_all(bad, 1 << 20);
        assert!(out[0].is_ok());
        assert!(out[1].as_ref().unwrap_err().contains("BTS-1"), "{out:?}");
    }

    #[test]
    fn reports_garbage_and_oversize_then_goes_on() {
        let input = b"hello\rworld\rMSH|^~\\&|1\rOBX|xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\rMSH|^~\\&|2\rPID|1\r";
        let (out, _) = read_all(input, 40);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[0].as_ref().unwrap_err().contains("MSH"));
        assert!(out[1].as_ref().unwrap_err().contains("longer than 40"));
        assert_eq!(out[2].as_ref().unwrap().1, "MSH|^~\\&|2\rPID|1\r");
    }
}
