//! [`MessageBuf`]: an owned message to build or modify, then encode.

use crate::charset::Charset;
use crate::delims::Delimiters;
use crate::error::{ErrorKind, ParseError, Result};
use crate::escape::escape;
use crate::message::{Element, Encoding, Message, Terminator};
use crate::path::Path;

/// One segment of a [`MessageBuf`]: its id and the raw (escaped) bytes of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBuf {
    id: String,
    /// `fields[0]` is field 1. For MSH/FHS/BHS, field 1 is the field separator itself and
    /// field 2 the encoding characters, as HL7 numbers them.
    fields: Vec<Vec<u8>>,
    /// The bytes that ended this segment in a parsed input, when they differ from the
    /// message's terminator (mixed `\r` and `\r\n`, blank lines).
    after: Option<Vec<u8>>,
}

impl SegmentBuf {
    /// The segment id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Number of fields.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// Raw bytes of field `n` (1-based).
    pub fn field_raw(&self, n: usize) -> Option<&[u8]> {
        self.fields.get(n.checked_sub(1)?).map(Vec::as_slice)
    }

    fn is_header(&self) -> bool {
        matches!(self.id.as_str(), "MSH" | "FHS" | "BHS")
    }
}

/// An owned HL7 v2 message: build one from scratch or from a parsed [`Message`], change
/// values by path, then [`encode`](MessageBuf::encode) it.
///
/// Encoding a `MessageBuf` made from a parsed message gives back the input bytes (same
/// delimiters and terminator; the byte-order mark, blank lines and terminators before the
/// first and after the last segment are kept as they were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuf {
    enc: Encoding,
    segments: Vec<SegmentBuf>,
    terminator: Terminator,
    /// Written before the first segment (a byte-order mark, blank lines).
    head: Vec<u8>,
    /// Written after the last segment (its terminator, blank lines).
    tail: Vec<u8>,
}

impl MessageBuf {
    /// A message holding only `MSH|^~\&` with the given delimiters and charset (MSH-18 is set
    /// when the charset is not the UTF-8 default).
    pub fn new(delimiters: Delimiters, charset: Charset) -> Self {
        let msh = SegmentBuf {
            id: "MSH".into(),
            fields: vec![vec![delimiters.field], delimiters.encoding_characters()],
            after: None,
        };
        let mut m = Self {
            enc: Encoding {
                delimiters,
                charset,
            },
            segments: vec![msh],
            terminator: Terminator::Cr,
            head: Vec::new(),
            tail: Terminator::Cr.bytes().to_vec(),
        };
        if charset != Charset::Utf8 {
            m.segments[0].fields.resize(18, Vec::new());
            m.segments[0].fields[17] = charset.code().as_bytes().to_vec();
        }
        m
    }

    /// Delimiters and charset.
    pub fn encoding(&self) -> Encoding {
        self.enc
    }

    /// The segments.
    pub fn segments(&self) -> &[SegmentBuf] {
        &self.segments
    }

    /// Sets the segment terminator used by [`encode`](Self::encode).
    pub fn set_terminator(&mut self, terminator: Terminator, trailing: bool) {
        self.terminator = terminator;
        self.tail = if trailing {
            terminator.bytes().to_vec()
        } else {
            Vec::new()
        };
    }

    /// Appends an empty segment; returns its 0-based index.
    pub fn push_segment(&mut self, id: &str) -> Result<usize> {
        let seg = new_segment(id)?;
        self.segments.push(seg);
        Ok(self.segments.len() - 1)
    }

    /// Inserts an empty segment at a 0-based index (after MSH).
    pub fn insert_segment(&mut self, index: usize, id: &str) -> Result<()> {
        if index == 0 || index > self.segments.len() {
            return Err(limit(format!(
                "cannot insert a segment at position {index}: MSH stays first"
            )));
        }
        self.segments.insert(index, new_segment(id)?);
        Ok(())
    }

    /// Inserts a segment given as its text in this message's delimiters (`ZPI|1|A^B`, taken as
    /// already escaped) at a 0-based index (after MSH). Header segments (MSH, FHS, BHS) and
    /// segment terminators inside the text are refused.
    pub fn insert_segment_text(&mut self, index: usize, text: &[u8]) -> Result<()> {
        if text.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(limit(
                "a segment's text cannot contain a segment terminator".into(),
            ));
        }
        let field = self.enc.delimiters.field;
        let mut parts = text.split(|&b| b == field);
        let id = std::str::from_utf8(parts.next().unwrap_or_default())
            .map_err(|_| limit("a segment id must be ASCII".into()))?;
        if matches!(id, "MSH" | "FHS" | "BHS") {
            return Err(limit(format!("a {id} segment cannot be inserted")));
        }
        self.insert_segment(index, id)?;
        self.segments[index].fields = parts.map(<[u8]>::to_vec).collect();
        Ok(())
    }

    /// Removes the segment at a 0-based index (not MSH).
    pub fn remove_segment(&mut self, index: usize) -> Result<SegmentBuf> {
        if index == 0 || index >= self.segments.len() {
            return Err(limit(format!("no removable segment at position {index}")));
        }
        Ok(self.segments.remove(index))
    }

    fn find(&self, path: &Path) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.id == path.segment())
            .nth(path.occurrence - 1)
            .map(|(i, _)| i)
    }

    /// Reads the element at a path (see [`Message::get`]).
    pub fn get(&self, path: &str) -> Result<Option<Element<'_>>> {
        let path = Path::parse(path)?;
        let Some(i) = self.find(&path) else {
            return Ok(None);
        };
        let seg = &self.segments[i];
        let Some(raw) = seg.field_raw(path.field) else {
            return Ok(None);
        };
        let mut e = Element::detached(raw, self.enc, seg.is_header() && path.field <= 2);
        for n in [path.repetition, path.component, path.subcomponent]
            .into_iter()
            .flatten()
        {
            match e.child(n) {
                Some(c) => e = c,
                None => return Ok(None),
            }
        }
        Ok(Some(e))
    }

    /// Sets the value at a path from text: the text is escaped, so delimiters in it are kept
    /// as data. Missing fields, repetitions and components up to the path are added empty.
    pub fn set(&mut self, path: &str, text: &str) -> Result<()> {
        let raw = escape(text, &self.enc.delimiters, self.enc.charset)
            .map_err(|k| ParseError::new(k, 0))?;
        self.set_raw(path, &raw)
    }

    /// Sets the value at a path from raw bytes, taken as already escaped and encoded.
    pub fn set_raw(&mut self, path: &str, raw: &[u8]) -> Result<()> {
        let path = Path::parse(path)?;
        let Some(i) = self.find(&path) else {
            return Err(limit(format!(
                "the message has no segment {}[{}]; add it first",
                path.segment(),
                path.occurrence
            )));
        };
        let d = self.enc.delimiters;
        let seg = &mut self.segments[i];
        if seg.is_header() && path.field <= 2 {
            return Err(limit(format!(
                "{}-{} holds the delimiters and cannot be set",
                seg.id, path.field
            )));
        }
        if seg.fields.len() < path.field {
            seg.fields.resize(path.field, Vec::new());
        }
        let seps = [Some(d.repetition), Some(d.component), d.subcomponent];
        let idx = [path.repetition, path.component, path.subcomponent];
        let depth = idx.iter().take_while(|i| i.is_some()).count();
        let mut sep_list = Vec::with_capacity(depth);
        for (level, (sep, n)) in seps.iter().zip(idx).take(depth).enumerate() {
            let sep = sep.ok_or_else(|| {
                limit(format!(
                    "level {level} of {path} has no separator in this message's MSH-2"
                ))
            })?;
            sep_list.push((sep, n.unwrap_or(1)));
        }
        let field = &mut seg.fields[path.field - 1];
        *field = replace_nested(field, &sep_list, raw);
        Ok(())
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.segments
                .iter()
                .map(|s| 4 + s.fields.iter().map(|f| f.len() + 1).sum::<usize>())
                .sum(),
        );
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        let fs = self.enc.delimiters.field;
        let mut previous: Option<&SegmentBuf> = None;
        for seg in &self.segments {
            if let Some(p) = previous {
                out.extend_from_slice(p.after.as_deref().unwrap_or(self.terminator.bytes()));
            }
            previous = Some(seg);
            out.extend_from_slice(seg.id.as_bytes());
            let mut fields = seg.fields.iter();
            // MSH-1 is the separator itself: write it, then MSH-2 with no separator before
            if seg.is_header() && fields.next().is_some() {
                out.push(fs);
                if let Some(f) = fields.next() {
                    out.extend_from_slice(f);
                }
            }
            for f in fields {
                out.push(fs);
                out.extend_from_slice(f);
            }
        }
        out.extend_from_slice(&self.tail);
    }
}

impl From<&Message<'_>> for MessageBuf {
    fn from(msg: &Message<'_>) -> Self {
        let segments = msg
            .segments()
            .map(|s| {
                let gap = msg.gap_after(s.index());
                SegmentBuf {
                    id: s.id().to_owned(),
                    fields: s.fields().map(|(_, f)| f.raw().to_vec()).collect(),
                    after: (gap != msg.terminator().bytes()).then(|| gap.to_vec()),
                }
            })
            .collect();
        Self {
            enc: msg.encoding(),
            segments,
            terminator: msg.terminator(),
            head: msg.head().to_vec(),
            tail: msg.tail().to_vec(),
        }
    }
}

fn new_segment(id: &str) -> Result<SegmentBuf> {
    let ok = id.len() == 3
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        return Err(ParseError::new(ErrorKind::BadSegmentId(id.to_owned()), 0));
    }
    if matches!(id, "MSH" | "FHS" | "BHS") {
        return Err(limit(format!(
            "{id} is a header segment: a message has exactly one MSH, first"
        )));
    }
    Ok(SegmentBuf {
        id: id.to_owned(),
        fields: Vec::new(),
        after: None,
    })
}

fn limit(msg: String) -> ParseError {
    ParseError::new(ErrorKind::Limit(msg), 0)
}

/// Replaces piece `n` of `raw` split on `sep` (recursively for deeper levels), padding with
/// empty pieces as needed.
fn replace_nested(raw: &[u8], levels: &[(u8, usize)], value: &[u8]) -> Vec<u8> {
    let Some(&(sep, n)) = levels.first() else {
        return value.to_vec();
    };
    let mut pieces: Vec<&[u8]> = raw.split(|&b| b == sep).collect();
    if pieces.len() < n {
        pieces.resize(n, b"");
    }
    let inner = replace_nested(pieces[n - 1], &levels[1..], value);
    let mut out = Vec::with_capacity(raw.len() + value.len() + n);
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.extend_from_slice(if i == n - 1 { &inner } else { p });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_segments_from_text() {
        let input = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\rPID|1||123\r";
        let parsed = Message::parse(input).unwrap();
        let mut m = MessageBuf::from(&parsed);
        m.insert_segment_text(2, b"ZPI|1|A^B").unwrap();
        assert_eq!(m.get("ZPI-2-2").unwrap().unwrap().text().unwrap(), "B");
        assert!(m.insert_segment_text(1, b"MSH|x").is_err());
        assert!(m.insert_segment_text(1, b"ZPI|1\rPID|2").is_err());
        assert!(m.insert_segment_text(0, b"ZPI|1").is_err());
        assert!(m.insert_segment_text(1, b"zz|1").is_err());
        assert!(
            String::from_utf8(m.encode())
                .unwrap()
                .ends_with("PID|1||123\rZPI|1|A^B\r")
        );
    }

    #[test]
    fn builds_and_edits() {
        let mut m = MessageBuf::new(Delimiters::default(), Charset::Utf8);
        m.set("MSH-9-1", "ADT").unwrap();
        m.set("MSH-9-2", "A01").unwrap();
        m.set("MSH-10", "X1").unwrap();
        m.push_segment("PID").unwrap();
        m.set("PID-3[2]-1", "222").unwrap();
        m.set("PID-5-1", "O'Neil^Smith").unwrap();
        m.set("PID-5-2", "Ann").unwrap();
        m.set("PID-5-1-2", "sub").unwrap();
        let out = String::from_utf8(m.encode()).unwrap();
        assert_eq!(
            out,
            "MSH|^~\\&|||||||ADT^A01|X1\rPID|||~222||O'Neil\\S\\Smith&sub^Ann\r"
        );
        let parsed = Message::parse(out.as_bytes()).unwrap();
        assert_eq!(parsed.value("PID-5-1-1").unwrap().unwrap(), "O'Neil^Smith");
        assert_eq!(parsed.value("PID-3[2]-1").unwrap().unwrap(), "222");
        assert!(m.set("MSH-2", "x").is_err());
        assert!(m.set("OBX-5", "x").is_err());
        assert_eq!(m.get("PID-5-2").unwrap().unwrap().text().unwrap(), "Ann");
    }

    #[test]
    fn round_trips_mixed_terminators_and_blank_lines() {
        let raw = b"MSH|^~\\&|A\rPID|1\r\nPV1|1\r\r\nZZ1\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.segment_count(), 4);
        assert_eq!(MessageBuf::from(&m).encode(), raw);
    }

    #[test]
    fn round_trips_a_parsed_message() {
        let raw = b"\xEF\xBB\xBFMSH|^~\\&|A|B\r\nPID|1||X^Y~Z\r\nZZ1|a\r\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(MessageBuf::from(&m).encode(), raw);
    }
}
