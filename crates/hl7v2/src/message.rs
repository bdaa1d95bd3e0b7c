//! Zero-copy views of a parsed message: [`Message`], [`Segment`] and [`Element`].

use std::borrow::Cow;

use memchr::{memchr, memchr_iter, memchr2};

use crate::charset::Charset;
use crate::delims::Delimiters;
use crate::error::{ErrorKind, Location, ParseError, Result};
use crate::escape::unescape;
use crate::path::Path;

/// How segments were terminated in the input (the first terminator seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Terminator {
    /// `\r`, as the standard says.
    #[default]
    Cr,
    /// `\n`, common in files.
    Lf,
    /// `\r\n`.
    CrLf,
}

impl Terminator {
    /// The bytes of this terminator.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::Cr => b"\r",
            Self::Lf => b"\n",
            Self::CrLf => b"\r\n",
        }
    }
}

/// The depth of an element: a field holds repetitions, which hold components, which hold
/// subcomponents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A whole field, all its repetitions.
    Field,
    /// One repetition of a field.
    Repetition,
    /// One component of a repetition.
    Component,
    /// One subcomponent of a component.
    Subcomponent,
}

impl Level {
    fn child(self) -> Option<Self> {
        match self {
            Self::Field => Some(Self::Repetition),
            Self::Repetition => Some(Self::Component),
            Self::Component => Some(Self::Subcomponent),
            Self::Subcomponent => None,
        }
    }
}

/// What a message needs to read its values: delimiters and character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// The message's delimiters.
    pub delimiters: Delimiters,
    /// The message's character set.
    pub charset: Charset,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// A parsed HL7 v2 message that borrows its input.
///
/// Parsing finds the delimiters, the character set and where each segment starts and ends; it
/// checks segment ids and that the bytes fit the declared character set. Fields are located
/// when read, and escape sequences are decoded only by [`Element::text`].
#[derive(Debug, Clone)]
pub struct Message<'a> {
    input: &'a [u8],
    base: usize,
    enc: Encoding,
    segments: Vec<Span>,
    terminator: Terminator,
    /// Where the first segment starts (after a byte-order mark and blank lines).
    head_len: usize,
    /// Where the last segment ends (before its terminator and any blank lines).
    tail_start: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<'a> Message<'a> {
    /// Parses one message.
    pub fn parse(input: &'a [u8]) -> Result<Self> {
        Self::parse_at(input, 0)
    }

    /// Parses one message whose first byte is at `base` in a larger input (for error offsets).
    pub fn parse_at(input: &'a [u8], base: usize) -> Result<Self> {
        Self::parse_inner(input, base, None)
    }

    /// Parses with a given charset instead of the declared one (`None`: as declared).
    pub(crate) fn parse_inner(
        input: &'a [u8],
        base: usize,
        charset: Option<Charset>,
    ) -> Result<Self> {
        let bom = input.starts_with(BOM);
        let mut pos = if bom { BOM.len() } else { 0 };
        while pos < input.len() && matches!(input[pos], b'\r' | b'\n') {
            pos += 1;
        }
        if pos >= input.len() {
            return Err(ParseError::new(ErrorKind::Empty, base + pos));
        }
        if !input[pos..].starts_with(b"MSH") {
            let end = memchr2(b'\r', b'\n', &input[pos..]).map_or(input.len(), |e| pos + e);
            let head = String::from_utf8_lossy(&input[pos..end.min(pos + 16)]).into_owned();
            return Err(ParseError::new(ErrorKind::NoMsh(head), base + pos));
        }
        let (delimiters, _) = Delimiters::from_msh(&input[pos..], base + pos)?;
        let mut segments = Vec::with_capacity(input.len() / 48 + 4);
        let head_len = pos;
        let mut terminator = None;
        while pos < input.len() {
            let (end, next) = match memchr2(b'\r', b'\n', &input[pos..]) {
                Some(i) => {
                    let end = pos + i;
                    let crlf = input[end] == b'\r' && input.get(end + 1) == Some(&b'\n');
                    terminator.get_or_insert(match (input[end], crlf) {
                        (_, true) => Terminator::CrLf,
                        (b'\r', false) => Terminator::Cr,
                        _ => Terminator::Lf,
                    });
                    (end, if crlf { end + 2 } else { end + 1 })
                }
                None => (input.len(), input.len()),
            };
            if end > pos {
                let seg = &input[pos..end];
                let index = segments.len();
                check_segment_id(seg, delimiters.field).map_err(|k| {
                    ParseError::new(k, base + pos).in_segment(index, &lossy_id(seg))
                })?;
                if index > 0 && seg.starts_with(b"MSH") {
                    return Err(
                        ParseError::new(ErrorKind::SecondMsh, base + pos).in_segment(index, "MSH")
                    );
                }
                segments.push(Span { start: pos, end });
            }
            pos = next;
        }
        let mut msg = Self {
            input,
            base,
            enc: Encoding {
                delimiters,
                charset: Charset::Utf8,
            },
            segments,
            terminator: terminator.unwrap_or_default(),
            head_len,
            tail_start: 0,
        };
        msg.tail_start = msg.segments.last().map_or(input.len(), |s| s.end);
        msg.enc.charset = match charset {
            Some(c) => c,
            None => msg.declared_charset()?,
        };
        if let Err((at, kind)) = msg.enc.charset.check(&input[msg.segments[0].start..]) {
            return Err(msg.locate(msg.segments[0].start + at, kind));
        }
        Ok(msg)
    }

    fn declared_charset(&self) -> Result<Charset> {
        let Some(msh18) = self.segment_at(0).and_then(|s| s.field(18)) else {
            return Ok(Charset::Utf8);
        };
        let first = msh18.child(1).map_or(&b""[..], |r| r.raw());
        Charset::from_msh18(first).map_err(|k| self.locate(msh18.offset - self.base, k))
    }

    /// Builds a located error for a byte position (relative to this message's input).
    fn locate(&self, pos: usize, kind: ErrorKind) -> ParseError {
        ParseError::located(kind, self.location_of(pos))
    }

    /// Finds the segment, field, repetition, component and subcomponent holding a byte position
    /// (relative to this message's input).
    pub(crate) fn location_of(&self, pos: usize) -> Location {
        let mut loc = Location::at(self.base + pos);
        let Some(index) = self
            .segments
            .iter()
            .position(|s| s.start <= pos && pos <= s.end)
        else {
            return loc;
        };
        let Some(seg) = self.segment_at(index) else {
            return loc;
        };
        loc.segment_index = Some(index);
        loc.segment = Some(seg.id().to_owned());
        for (n, field) in seg.fields() {
            let fstart = field.offset - self.base;
            if pos < fstart || pos > fstart + field.raw.len() {
                continue;
            }
            loc.field = Some(n);
            // go down only where the element really is split, so a plain value stays `PID-5`
            let mut el = field;
            for slot in [
                &mut loc.repetition,
                &mut loc.component,
                &mut loc.subcomponent,
            ] {
                if !el.is_composite() {
                    break;
                }
                let Some(i) = el.children().position(|c| {
                    (c.offset - self.base..=c.offset - self.base + c.raw.len()).contains(&pos)
                }) else {
                    break;
                };
                *slot = Some(i + 1);
                el = el.child(i + 1).unwrap_or(el);
            }
            break;
        }
        loc
    }

    /// The bytes this message was parsed from.
    pub fn raw(&self) -> &'a [u8] {
        self.input
    }

    /// Delimiters and character set.
    pub fn encoding(&self) -> Encoding {
        self.enc
    }

    /// The message's delimiters.
    pub fn delimiters(&self) -> Delimiters {
        self.enc.delimiters
    }

    /// The character set from MSH-18 (UTF-8 when empty).
    pub fn charset(&self) -> Charset {
        self.enc.charset
    }

    /// The segment terminator the input used.
    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    /// The bytes before the first segment: a UTF-8 byte-order mark, blank lines.
    pub fn head(&self) -> &'a [u8] {
        &self.input[..self.head_len]
    }

    /// The bytes between segment `index` and the next one: its terminator, and any blank lines.
    pub fn gap_after(&self, index: usize) -> &'a [u8] {
        match (self.segments.get(index), self.segments.get(index + 1)) {
            (Some(a), Some(b)) => &self.input[a.end..b.start],
            _ => self.tail(),
        }
    }

    /// The bytes after the last segment: its terminator and any blank lines.
    pub fn tail(&self) -> &'a [u8] {
        &self.input[self.tail_start..]
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segment at a 0-based position.
    pub fn segment_at(&self, index: usize) -> Option<Segment<'a>> {
        let span = self.segments.get(index)?;
        Some(Segment {
            raw: &self.input[span.start..span.end],
            offset: self.base + span.start,
            index,
            enc: self.enc,
        })
    }

    /// All segments in order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = Segment<'a>> + '_ {
        self.segments
            .iter()
            .enumerate()
            .map(|(index, span)| Segment {
                raw: &self.input[span.start..span.end],
                offset: self.base + span.start,
                index,
                enc: self.enc,
            })
    }

    /// The `occurrence`-th (1-based) segment with this id.
    pub fn segment(&self, id: &str, occurrence: usize) -> Option<Segment<'a>> {
        let id = id.as_bytes();
        let span = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                self.input[s.start..s.end].starts_with(id)
                    && (s.end - s.start == 3
                        || self.input[s.start + 3] == self.enc.delimiters.field)
            })
            .nth(occurrence.checked_sub(1)?)?;
        self.segment_at(span.0)
    }

    /// All segments with this id.
    pub fn segments_named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = Segment<'a>> + 's {
        self.segments().filter(move |s| s.id() == id)
    }

    /// The element at a path such as `PID-5-1`, `PID-3[2]-1`, `OBX[3]-5` or `MSH-9-2`.
    ///
    /// `Ok(None)` means the message has no such segment or element.
    pub fn get(&self, path: &str) -> Result<Option<Element<'a>>> {
        Ok(self.get_path(&Path::parse(path)?))
    }

    /// The element at a parsed path.
    pub fn get_path(&self, path: &Path) -> Option<Element<'a>> {
        let seg = self.segment(path.segment(), path.occurrence)?;
        path.resolve_in(&seg)
    }

    /// The decoded text at a path (see [`Message::get`] and [`Element::text`]).
    pub fn value(&self, path: &str) -> Result<Option<Cow<'a, str>>> {
        match self.get(path)? {
            Some(e) => e.text().map(Some),
            None => Ok(None),
        }
    }

    fn header(&self, field: usize, component: usize) -> Option<Cow<'a, str>> {
        let e = self
            .segment_at(0)?
            .field(field)?
            .child(1)?
            .child(component)?;
        e.text().ok().filter(|t| !t.is_empty())
    }

    /// MSH-9-1, e.g. `ADT`.
    pub fn message_type(&self) -> Option<Cow<'a, str>> {
        self.header(9, 1)
    }

    /// MSH-9-2, e.g. `A01`.
    pub fn trigger_event(&self) -> Option<Cow<'a, str>> {
        self.header(9, 2)
    }

    /// MSH-9-3, e.g. `ADT_A01` (v2.3.1+; often empty in older messages).
    pub fn structure_id(&self) -> Option<Cow<'a, str>> {
        self.header(9, 3)
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Option<Cow<'a, str>> {
        self.header(10, 1)
    }

    /// MSH-11-1, the processing id (`P`, `T`, `D`).
    pub fn processing_id(&self) -> Option<Cow<'a, str>> {
        self.header(11, 1)
    }

    /// MSH-12-1, the version id, e.g. `2.5.1`.
    pub fn version(&self) -> Option<Cow<'a, str>> {
        self.header(12, 1)
    }
}

/// Checks a segment id: three upper-case letters or digits, then the field separator or the end.
fn check_segment_id(seg: &[u8], field: u8) -> std::result::Result<(), ErrorKind> {
    let ok = seg.len() >= 3
        && seg[..3]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && (seg.len() == 3 || seg[3] == field);
    if ok {
        Ok(())
    } else {
        Err(ErrorKind::BadSegmentId(lossy_id(seg)))
    }
}

fn lossy_id(seg: &[u8]) -> String {
    let n = seg.len().min(8);
    String::from_utf8_lossy(&seg[..n]).into_owned()
}

/// One segment of a message.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    raw: &'a [u8],
    offset: usize,
    index: usize,
    enc: Encoding,
}

impl<'a> Segment<'a> {
    /// The three-character segment id.
    pub fn id(&self) -> &'a str {
        // checked at parse time: three ASCII letters or digits
        std::str::from_utf8(&self.raw[..3]).unwrap_or("???")
    }

    /// The segment's bytes, without terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of the segment in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 0-based position in the message.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Delimiters and character set of the message.
    pub fn encoding(&self) -> Encoding {
        self.enc
    }

    fn is_header(&self) -> bool {
        matches!(&self.raw[..3], b"MSH" | b"FHS" | b"BHS")
    }

    /// Number of fields present (the highest field number).
    pub fn field_count(&self) -> usize {
        let seps = memchr_iter(self.enc.delimiters.field, self.raw).count();
        if self.is_header() { seps + 1 } else { seps }
    }

    /// Field `n` (1-based), or `None` past the last field.
    ///
    /// As HL7 numbers them, MSH-1 is the field separator itself and MSH-2 the encoding
    /// characters; both are returned whole, never split.
    pub fn field(&self, n: usize) -> Option<Element<'a>> {
        let fs = self.enc.delimiters.field;
        if self.is_header() && n <= 2 {
            return match n {
                1 => self.raw.get(3..4).map(|r| self.element(r, 3, true)),
                2 => {
                    let rest = self.raw.get(4..)?;
                    let len = memchr(fs, rest).unwrap_or(rest.len());
                    Some(self.element(&rest[..len], 4, true))
                }
                _ => None,
            };
        }
        // piece k of the split by the field separator is field k, or field k+1 for headers
        let piece = if self.is_header() { n - 1 } else { n };
        if piece == 0 {
            return None;
        }
        let mut seps = memchr_iter(fs, self.raw);
        let start = seps.nth(piece - 1)? + 1;
        let end = memchr(fs, &self.raw[start..]).map_or(self.raw.len(), |e| start + e);
        Some(self.element(&self.raw[start..end], start, false))
    }

    fn element(&self, raw: &'a [u8], at: usize, atomic: bool) -> Element<'a> {
        Element {
            raw,
            offset: self.offset + at,
            level: Level::Field,
            atomic,
            enc: self.enc,
        }
    }

    /// All fields with their numbers, in order.
    pub fn fields(&self) -> impl Iterator<Item = (usize, Element<'a>)> + 'a {
        let this = *self;
        let header = self.is_header();
        let first = if header {
            this.field(1).into_iter().chain(this.field(2))
        } else {
            None.into_iter().chain(None)
        };
        let skip = if header { 2 } else { 1 };
        let rest = Splitter::new(self.raw, self.enc.delimiters.field, 0)
            .skip(skip)
            .map(move |(raw, at)| this.element(raw, at, false));
        first.chain(rest).enumerate().map(|(i, e)| (i + 1, e))
    }
}

/// Splits a byte slice on one separator, yielding each piece with its offset.
#[derive(Debug)]
pub struct Splitter<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
    offset: usize,
}

impl<'a> Splitter<'a> {
    fn new(raw: &'a [u8], sep: u8, offset: usize) -> Self {
        Self {
            rest: Some(raw),
            sep,
            offset,
        }
    }
}

impl<'a> Iterator for Splitter<'a> {
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let at = self.offset;
        if let Some(i) = memchr(self.sep, rest) {
            self.rest = Some(&rest[i + 1..]);
            self.offset += i + 1;
            Some((&rest[..i], at))
        } else {
            self.rest = None;
            Some((rest, at))
        }
    }
}

/// A field, repetition, component or subcomponent: a view of its raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    raw: &'a [u8],
    offset: usize,
    level: Level,
    atomic: bool,
    enc: Encoding,
}

impl<'a> Element<'a> {
    /// The raw (still escaped) bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Which level this element is.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether the element is empty (not present in the message).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the element is the HL7 explicit null `""` (a request to delete the value).
    pub fn is_null(&self) -> bool {
        self.raw == b"\"\""
    }

    /// The decoded text: escape sequences resolved, bytes decoded from the message's charset.
    ///
    /// On a composite element (one holding lower delimiters) the delimiters stay in the text;
    /// read its children for the parts.
    pub fn text(&self) -> Result<Cow<'a, str>> {
        if self.atomic {
            return self
                .enc
                .charset
                .decode(self.raw)
                .map_err(|k| ParseError::new(k, self.offset));
        }
        unescape(self.raw, &self.enc.delimiters, self.enc.charset)
            .map_err(|k| ParseError::new(k, self.offset))
    }

    /// Whether the element holds a separator of a lower level (so is not a single value).
    pub fn is_composite(&self) -> bool {
        if self.atomic {
            return false;
        }
        let d = &self.enc.delimiters;
        let mut lvl = self.level;
        while let Some(sep) = d.separator(lvl) {
            if memchr(sep, self.raw).is_some() {
                return true;
            }
            match lvl.child() {
                Some(c) => lvl = c,
                None => break,
            }
        }
        false
    }

    /// The children one level down (repetitions of a field, components of a repetition, …).
    /// An element with no separator at its level (MSH-1, MSH-2, or no subcomponent separator
    /// declared) has one child: itself one level down. A subcomponent has no children.
    pub fn children(&self) -> Children<'a> {
        let Some(level) = self.level.child() else {
            return Children::Done;
        };
        let child = Element { level, ..*self };
        match self.separator() {
            Some(sep) => Children::Split {
                split: Splitter::new(self.raw, sep, self.offset),
                proto: child,
            },
            None => Children::One(Some(child)),
        }
    }

    fn separator(&self) -> Option<u8> {
        if self.atomic {
            None
        } else {
            self.enc.delimiters.separator(self.level)
        }
    }

    /// Child `n` (1-based) one level down.
    pub fn child(&self, n: usize) -> Option<Element<'a>> {
        let level = self.level.child()?;
        let Some(sep) = self.separator() else {
            return (n == 1).then_some(Element { level, ..*self });
        };
        let (start, end) = nth_piece(self.raw, sep, n)?;
        Some(Element {
            raw: &self.raw[start..end],
            offset: self.offset + start,
            level,
            atomic: false,
            enc: self.enc,
        })
    }

    /// Repetition `n` (1-based) of a field.
    pub fn repetition(&self, n: usize) -> Option<Element<'a>> {
        self.descend_to(Level::Field, n)
    }

    /// Component `n` (1-based); on a field, of its first repetition.
    pub fn component(&self, n: usize) -> Option<Element<'a>> {
        self.descend_to(Level::Repetition, n)
    }

    /// Subcomponent `n` (1-based); on a field or repetition, of the first component.
    pub fn subcomponent(&self, n: usize) -> Option<Element<'a>> {
        self.descend_to(Level::Component, n)
    }

    fn descend_to(&self, parent: Level, n: usize) -> Option<Element<'a>> {
        let mut e = *self;
        while e.level < parent {
            e = e.child(1)?;
        }
        if e.level > parent {
            return None;
        }
        e.child(n)
    }
}

/// Iterator over the children of an [`Element`].
#[derive(Debug)]
pub enum Children<'a> {
    /// Children split on a separator.
    #[doc(hidden)]
    Split {
        /// The splitter.
        split: Splitter<'a>,
        /// Level, flags and encoding of the children.
        proto: Element<'a>,
    },
    /// One child: the element itself one level down.
    #[doc(hidden)]
    One(Option<Element<'a>>),
    /// No children.
    #[doc(hidden)]
    Done,
}

impl<'a> Iterator for Children<'a> {
    type Item = Element<'a>;

    fn next(&mut self) -> Option<Element<'a>> {
        match self {
            Self::Split { split, proto } => split.next().map(|(raw, offset)| Element {
                raw,
                offset,
                ..*proto
            }),
            Self::One(e) => e.take(),
            Self::Done => None,
        }
    }
}

/// The byte range of piece `n` (1-based) of `raw` split on `sep`.
fn nth_piece(raw: &[u8], sep: u8, n: usize) -> Option<(usize, usize)> {
    let start = if n == 1 {
        0
    } else {
        memchr_iter(sep, raw).nth(n.checked_sub(2)?)? + 1
    };
    let end = memchr(sep, &raw[start..]).map_or(raw.len(), |e| start + e);
    Some((start, end))
}

impl<'a> Element<'a> {
    /// A field-level element over bytes that belong to no parsed message.
    pub(crate) fn detached(raw: &'a [u8], enc: Encoding, atomic: bool) -> Self {
        Element {
            raw,
            offset: 0,
            level: Level::Field,
            atomic,
            enc,
        }
    }
}
