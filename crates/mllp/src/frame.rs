//! The IO-free MLLP framer: push bytes in, take frames out.
//!
//! An MLLP frame is `0x0B payload 0x1C 0x0D`. The [`Framer`] is a small state machine over an
//! internal buffer; it never blocks and knows nothing about sockets, so the same code serves
//! the tokio codec, the server's read loop, fuzzing and tests.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::{memchr, memchr2};

use crate::error::FrameError;

/// Start of a frame (vertical tab).
pub const START_BLOCK: u8 = 0x0B;
/// First byte of a frame's end (file separator).
pub const END_BLOCK: u8 = 0x1C;
/// Second byte of a frame's end (carriage return).
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Default largest payload accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// How many leading payload bytes of a failed frame are kept in [`Event::Error`] (enough for
/// the MSH segment, so a reject ACK can name the message).
pub const ERROR_HEAD_BYTES: usize = 4096;

/// What the framer found in the bytes pushed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This many bytes outside any frame were discarded (reported when the next frame starts,
    /// or by [`Framer::finish`] at the end of input).
    Skipped(usize),
    /// A complete frame's payload (without the framing bytes).
    Frame(Bytes),
    /// A frame failed.
    Error {
        /// What went wrong.
        error: FrameError,
        /// The first bytes (up to [`ERROR_HEAD_BYTES`]) of the failed frame's payload; message
        /// content, so never log it above `debug`.
        head: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: everything up to the next start byte is skipped and counted.
    Seeking,
    /// Inside a frame whose start byte was at this stream offset.
    InFrame { start: u64 },
    /// After an oversized frame: everything up to the next start byte is dropped uncounted.
    Discarding,
}

/// Splits a byte stream into MLLP frames.
///
/// ```
/// use mllp::{Event, Framer};
///
/// let mut framer = Framer::new();
/// framer.push(b"noise\x0bMSH|^~\\&|A\r\x1c");
/// assert_eq!(framer.next_event(), Some(Event::Skipped(5)));
/// assert_eq!(framer.next_event(), None); // the end is not complete yet
/// framer.push(b"\x0d");
/// assert_eq!(framer.next_event(), Some(Event::Frame("MSH|^~\\&|A\r".into())));
/// ```
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    state: State,
    /// In a frame: how many leading bytes of `buf` are known to be payload.
    scanned: usize,
    /// Skipped bytes not yet reported.
    skipped: usize,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    max_frame_bytes: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer with the default limit of 16 MiB per payload.
    pub fn new() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A framer that rejects payloads longer than `max_frame_bytes`.
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Seeking,
            scanned: 0,
            skipped: 0,
            consumed: 0,
            max_frame_bytes,
        }
    }

    /// The largest payload accepted.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Appends bytes read from the stream. Call [`next_event`](Self::next_event) until it
    /// returns `None` before pushing more, so that memory stays bounded by one frame plus one
    /// pushed chunk.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends an owned buffer, without copying when nothing is buffered.
    pub fn push_buf(&mut self, bytes: BytesMut) {
        if self.buf.is_empty() {
            self.buf = bytes;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Whether a frame has started and not yet ended (used for the server's read timeout).
    pub fn in_frame(&self) -> bool {
        matches!(self.state, State::InFrame { .. })
    }

    /// Bytes held in the buffer (the partial frame and unscanned input).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset of the next byte to be examined: the count of bytes consumed so far.
    pub fn stream_offset(&self) -> u64 {
        self.consumed
    }

    /// The next event from the bytes pushed so far, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.state {
                State::Seeking | State::Discarding => {
                    let counting = self.state == State::Seeking;
                    let Some(i) = memchr(START_BLOCK, &self.buf) else {
                        let n = self.buf.len();
                        if counting {
                            self.skipped += n;
                        }
                        self.advance(n);
                        return None;
                    };
                    if counting {
                        self.skipped += i;
                    }
                    let start = self.consumed + i as u64;
                    self.advance(i + 1);
                    self.state = State::InFrame { start };
                    self.scanned = 0;
                    if self.skipped > 0 {
                        return Some(Event::Skipped(std::mem::take(&mut self.skipped)));
                    }
                }
                State::InFrame { start } => {
                    let found = memchr2(START_BLOCK, END_BLOCK, &self.buf[self.scanned..])
                        .map(|k| self.scanned + k);
                    // Payload bytes before the special byte (or all of them).
                    let known = found.unwrap_or(self.buf.len());
                    if known > self.max_frame_bytes {
                        return Some(self.too_large(start, known));
                    }
                    let Some(j) = found else {
                        self.scanned = known;
                        return None;
                    };
                    if self.buf[j] == START_BLOCK {
                        let head = self.head(j);
                        let new_start = self.consumed + j as u64;
                        self.advance(j + 1);
                        self.state = State::InFrame { start: new_start };
                        self.scanned = 0;
                        return Some(Event::Error {
                            error: FrameError::Cut {
                                offset: start,
                                len: j,
                            },
                            head,
                        });
                    }
                    match self.buf.get(j + 1) {
                        None => {
                            // Wait for the byte after the end block.
                            self.scanned = j;
                            return None;
                        }
                        Some(&CARRIAGE_RETURN) => {
                            let payload = self.buf.split_to(j).freeze();
                            self.consumed += j as u64;
                            self.advance(2);
                            self.state = State::Seeking;
                            self.scanned = 0;
                            return Some(Event::Frame(payload));
                        }
                        // A lone 0x1C is kept as payload: only 0x1C 0x0D ends a frame.
                        Some(_) => self.scanned = j + 1,
                    }
                }
            }
        }
    }

    /// Ends the input (the connection closed): reports a frame left incomplete as
    /// [`FrameError::Truncated`], or trailing skipped bytes, and resets the framer. Call it
    /// after [`next_event`](Self::next_event) has returned `None`.
    pub fn finish(&mut self) -> Option<Event> {
        let event = match self.state {
            State::InFrame { start } => Some(Event::Error {
                error: FrameError::Truncated {
                    offset: start,
                    len: self.buf.len(),
                },
                head: self.head(self.buf.len()),
            }),
            State::Seeking if self.skipped > 0 => Some(Event::Skipped(self.skipped)),
            State::Seeking | State::Discarding => None,
        };
        self.consumed += self.buf.len() as u64;
        self.buf.clear();
        self.state = State::Seeking;
        self.scanned = 0;
        self.skipped = 0;
        event
    }

    fn too_large(&mut self, start: u64, known: usize) -> Event {
        let head = self.head(known);
        self.advance(known);
        self.state = State::Discarding;
        self.scanned = 0;
        Event::Error {
            error: FrameError::TooLarge {
                offset: start,
                limit: self.max_frame_bytes,
            },
            head,
        }
    }

    fn head(&self, len: usize) -> Bytes {
        Bytes::copy_from_slice(&self.buf[..len.min(ERROR_HEAD_BYTES)])
    }

    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n as u64;
    }
}

/// Appends `payload` as one MLLP frame to `dst`.
///
/// Fails if the payload holds a start byte (0x0B) or an end-block byte (0x1C), which would cut
/// or end the frame early at the receiver.
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    if let Some(offset) = memchr2(START_BLOCK, END_BLOCK, payload) {
        return Err(FrameError::ForbiddenByte {
            byte: payload[offset],
            offset,
        });
    }
    dst.reserve(payload.len() + 3);
    dst.put_u8(START_BLOCK);
    dst.put_slice(payload);
    dst.put_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    Ok(())
}

/// `payload` as one MLLP frame (see [`encode_frame`]).
pub fn encode(payload: &[u8]) -> Result<Bytes, FrameError> {
    let mut dst = BytesMut::with_capacity(payload.len() + 3);
    encode_frame(payload, &mut dst)?;
    Ok(dst.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(framer: &mut Framer) -> Vec<Event> {
        std::iter::from_fn(|| framer.next_event()).collect()
    }

    fn frame(p: &[u8]) -> Event {
        Event::Frame(Bytes::copy_from_slice(p))
    }

    #[test]
    fn one_frame_in_one_push() {
        let mut f = Framer::new();
        f.push(b"\x0bMSH|A\r\x1c\x0d");
        assert_eq!(drain(&mut f), vec![frame(b"MSH|A\r")]);
        assert!(!f.in_frame());
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn several_frames_and_garbage() {
        let mut f = Framer::new();
        f.push(b"\r\n\x0ba\x1c\x0d\n\n\n\x0bb\x1c\x0d\x0b\x1c\x0dtail");
        assert_eq!(
            drain(&mut f),
            vec![
                Event::Skipped(2),
                frame(b"a"),
                Event::Skipped(3),
                frame(b"b"),
                frame(b""),
            ]
        );
        assert_eq!(f.finish(), Some(Event::Skipped(4)));
        assert_eq!(f.stream_offset(), 20);
    }

    #[test]
    fn byte_by_byte() {
        let input = b"xx\x0bhello\x1c\x0d\x0bworld\x1c\x0d";
        let mut f = Framer::new();
        let mut events = Vec::new();
        for b in input {
            f.push(&[*b]);
            events.extend(drain(&mut f));
        }
        assert_eq!(
            events,
            vec![Event::Skipped(2), frame(b"hello"), frame(b"world")]
        );
    }

    #[test]
    fn lone_end_block_is_payload() {
        let mut f = Framer::new();
        f.push(b"\x0ba\x1cb\x1c");
        assert_eq!(drain(&mut f), vec![]);
        f.push(b"c\x1c\x0d");
        assert_eq!(drain(&mut f), vec![frame(b"a\x1cb\x1cc")]);
    }

    #[test]
    fn start_byte_inside_frame_cuts_it() {
        let mut f = Framer::new();
        f.push(b"\x0bpartial\x0bwhole\x1c\x0d");
        assert_eq!(
            drain(&mut f),
            vec![
                Event::Error {
                    error: FrameError::Cut { offset: 0, len: 7 },
                    head: Bytes::from_static(b"partial"),
                },
                frame(b"whole"),
            ]
        );
    }

    #[test]
    fn oversized_frame_is_reported_and_skipped() {
        let mut f = Framer::with_max_frame_bytes(4);
        f.push(b"\x0b123");
        assert_eq!(drain(&mut f), vec![]);
        f.push(b"45");
        assert_eq!(
            drain(&mut f),
            vec![Event::Error {
                error: FrameError::TooLarge {
                    offset: 0,
                    limit: 4
                },
                head: Bytes::from_static(b"12345"),
            }]
        );
        assert!(!f.in_frame());
        // The rest of the big frame is dropped without growing the buffer.
        f.push(&[b'x'; 1000]);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.buffered_len(), 0);
        f.push(b"\x1c\x0d\x0bok\x1c\x0d");
        assert_eq!(drain(&mut f), vec![frame(b"ok")]);
    }

    #[test]
    fn frame_exactly_at_the_limit_passes() {
        let mut f = Framer::with_max_frame_bytes(4);
        f.push(b"\x0b1234\x1c\x0d\x0b12345\x1c\x0d\x0bz\x1c\x0d");
        let events = drain(&mut f);
        assert_eq!(events[0], frame(b"1234"));
        assert!(matches!(
            events[1],
            Event::Error {
                error: FrameError::TooLarge { offset: 7, .. },
                ..
            }
        ));
        assert_eq!(events[2], frame(b"z"));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn end_of_input_inside_frame_is_truncated() {
        let mut f = Framer::new();
        f.push(b"ab\x0bMSH|x\x1c");
        assert_eq!(drain(&mut f), vec![Event::Skipped(2)]);
        assert!(f.in_frame());
        assert_eq!(
            f.finish(),
            Some(Event::Error {
                error: FrameError::Truncated { offset: 2, len: 6 },
                head: Bytes::from_static(b"MSH|x\x1c"),
            })
        );
        assert!(!f.in_frame());
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn encode_rejects_framing_bytes() {
        assert_eq!(
            encode(b"a\x1cb"),
            Err(FrameError::ForbiddenByte {
                byte: 0x1c,
                offset: 1
            })
        );
        assert_eq!(
            encode(b"\x0b"),
            Err(FrameError::ForbiddenByte {
                byte: 0x0b,
                offset: 0
            })
        );
        assert_eq!(
            encode(b"MSH").ok(),
            Some(Bytes::from_static(b"\x0bMSH\x1c\x0d"))
        );
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no framing bytes", |b| *b != START_BLOCK && *b != END_BLOCK),
            0..300,
        )
    }

    fn garbage() -> impl Strategy<Value = Vec<u8>> {
        // Anything but a start byte may sit between frames (even 0x1C 0x0D).
        proptest::collection::vec(
            any::<u8>().prop_filter("no start byte", |b| *b != START_BLOCK),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn random_chunking_gives_the_same_frames(
            parts in proptest::collection::vec((garbage(), payload()), 0..12),
            trailing in garbage(),
            cuts in proptest::collection::vec(1usize..64, 0..200),
        ) {
            let mut stream = Vec::new();
            for (g, p) in &parts {
                stream.extend_from_slice(g);
                stream.extend_from_slice(&encode(p).unwrap());
            }
            stream.extend_from_slice(&trailing);

            let mut framer = Framer::with_max_frame_bytes(300);
            let mut events = Vec::new();
            let mut rest = &stream[..];
            let mut cuts = cuts.into_iter();
            while !rest.is_empty() {
                let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                framer.push(&rest[..n]);
                rest = &rest[n..];
                events.extend(drain(&mut framer));
            }
            events.extend(framer.finish());

            let frames: Vec<&[u8]> = events.iter().filter_map(|e| match e {
                Event::Frame(b) => Some(&b[..]),
                _ => None,
            }).collect();
            let expected: Vec<&[u8]> = parts.iter().map(|(_, p)| &p[..]).collect();
            prop_assert_eq!(frames, expected);

            let skipped: usize = events.iter().map(|e| match e {
                Event::Skipped(n) => *n,
                _ => 0,
            }).sum();
            let garbage_len: usize =
                parts.iter().map(|(g, _)| g.len()).sum::<usize>() + trailing.len();
            prop_assert_eq!(skipped, garbage_len);
            let errors = events.iter().filter(|e| matches!(e, Event::Error { .. })).count();
            prop_assert_eq!(errors, 0);
            prop_assert_eq!(framer.stream_offset(), stream.len() as u64);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..50),
        ) {
            let mut framer = Framer::with_max_frame_bytes(100);
            for c in &chunks {
                framer.push(c);
                for e in drain(&mut framer) {
                    if let Event::Frame(p) = e {
                        prop_assert!(p.len() <= 100);
                    }
                }
                // One partial frame (≤ limit + a pending end byte) plus nothing else.
                prop_assert!(framer.buffered_len() <= 101);
            }
            let _ = framer.finish();
        }
    }
}
