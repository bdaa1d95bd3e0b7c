//! A tokio codec over the [`Framer`]: `Framed<TcpStream, MllpCodec>` reads payloads and writes
//! frames.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, FrameError};
use crate::frame::{Event, Framer, encode_frame};

/// MLLP as a [`Decoder`] (items are payloads) and an [`Encoder`] (of payloads).
///
/// Bytes between frames are skipped and counted ([`skipped_bytes`](Self::skipped_bytes)). Any
/// framing error is returned as [`Error::Frame`]; `tokio_util`'s `FramedRead` ends the stream
/// after an error, which suits a client reading one response. A server that wants to go on
/// after a cut frame uses the [`Framer`] directly.
#[derive(Debug, Default)]
pub struct MllpCodec {
    framer: Framer,
    skipped: u64,
}

impl MllpCodec {
    /// A codec with the default 16 MiB payload limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that rejects payloads longer than `max_frame_bytes`.
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        Self {
            framer: Framer::with_max_frame_bytes(max_frame_bytes),
            skipped: 0,
        }
    }

    /// Bytes skipped outside frames so far.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// The underlying framer (e.g. to ask whether a frame is in progress).
    pub fn framer(&self) -> &Framer {
        &self.framer
    }

    fn next_payload(&mut self) -> Result<Option<Bytes>, Error> {
        while let Some(event) = self.framer.next_event() {
            match event {
                Event::Frame(payload) => return Ok(Some(payload)),
                Event::Skipped(n) => self.note_skipped(n),
                Event::Error { error, .. } => return Err(error.into()),
            }
        }
        Ok(None)
    }

    fn note_skipped(&mut self, n: usize) {
        self.skipped += n as u64;
        tracing::debug!(bytes = n, "skipped bytes outside MLLP frames");
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        if !src.is_empty() {
            self.framer.push_buf(src.split());
        }
        self.next_payload()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        if let Some(payload) = self.decode(src)? {
            return Ok(Some(payload));
        }
        match self.framer.finish() {
            Some(Event::Error { error, .. }) => Err(error.into()),
            Some(Event::Skipped(n)) => {
                self.note_skipped(n);
                Ok(None)
            }
            Some(Event::Frame(payload)) => Ok(Some(payload)),
            None => Ok(None),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = Error;

    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), Error> {
        encode_frame(payload.as_ref(), dst).map_err(|e: FrameError| e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_calls_and_reports_truncation() {
        let mut codec = MllpCodec::new();
        let mut src = BytesMut::from(&b"junk\x0bone\x1c"[..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(b"\x0d\x0btwo\x1c\x0d\x0bthr");
        assert_eq!(
            codec.decode(&mut src).unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            codec.decode(&mut src).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert_eq!(codec.skipped_bytes(), 4);
        let err = codec.decode_eof(&mut src).unwrap_err();
        assert!(matches!(
            err,
            Error::Frame(FrameError::Truncated { len: 3, .. })
        ));
    }

    #[test]
    fn encodes_payloads() {
        let mut codec = MllpCodec::new();
        let mut dst = BytesMut::new();
        codec.encode(&b"MSA|AA|1"[..], &mut dst).unwrap();
        assert_eq!(&dst[..], b"\x0bMSA|AA|1\x1c\x0d");
        assert!(codec.encode(&b"\x1c"[..], &mut dst).is_err());
    }

    #[test]
    fn oversized_frame_is_an_error() {
        let mut codec = MllpCodec::with_max_frame_bytes(2);
        let mut src = BytesMut::from(&b"\x0babc"[..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(Error::Frame(FrameError::TooLarge { limit: 2, .. }))
        ));
    }
}
