//! The state of one conversion: the message, which fields were used, the Bundle entries made
//! so far, and the unmapped-content report.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;

use crate::tree::{Map, Text, Value};
use hl7v2::{Delimiters, Element, Message, Segment};

use crate::error::Location;
use crate::ids::{Uuid, name_uuid, name_uuid_of};
use crate::time::Dtm;
use crate::{ConvertError, Options, Unmapped, UnmappedReason};

/// A segment with its occurrence number among segments of its id.
#[derive(Debug, Clone, Copy)]
pub struct Seg<'a> {
    /// The segment.
    pub seg: Segment<'a>,
    /// 1-based occurrence among segments of the same id.
    pub occ: usize,
}

impl<'a> Seg<'a> {
    /// The segment id.
    pub fn id(&self) -> &'a str {
        self.seg.id()
    }
}

/// How an entry is written.
#[derive(Debug, Clone)]
pub enum Request {
    /// `PUT Type?query` (conditional update: create or update the one match).
    Conditional(String),
    /// `PUT Type/<uuid>` (update as create, at a deterministic id).
    Put,
}

/// One Bundle entry under construction.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name-based UUID: the id for [`Request::Put`] (handlers name children by it).
    pub uuid: Uuid,
    /// `urn:uuid:` and the UUID: the fullUrl, and what references to the entry hold (shared,
    /// not copied, by every reference).
    pub full_url: Arc<str>,
    /// Resource type.
    pub rtype: &'static str,
    /// The resource's elements, without `resourceType`.
    pub resource: Map,
    /// How it is written.
    pub request: Request,
}

/// The conversion state.
pub struct Ctx<'a, 'o> {
    /// The message.
    pub msg: &'o Message<'a>,
    /// The options.
    pub opts: &'o Options,
    /// The offset for times without one.
    pub tz: Option<String>,
    used: Vec<u128>,
    /// Entries, in Bundle order.
    pub entries: Vec<Entry>,
    reports: Vec<Unmapped>,
    /// The fields of every segment read so far, split once (field `n` of a segment is
    /// `fields[spans[i].0 + n - 1]`), instead of scanning the segment again for every field.
    fields: Vec<Element<'a>>,
    spans: Vec<(u32, u32)>,
    /// The thread's [`Current`] message before this one (restored when the state drops).
    previous: Option<Current>,
}

impl Drop for Ctx<'_, '_> {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

/// Part `n` of a composite value, whatever its level: the components of a field or
/// repetition, the subcomponents of a component. Empty and `""` parts are `None`.
pub fn part(e: Element<'_>, n: usize) -> Option<Element<'_>> {
    let p = match e.level() {
        hl7v2::Level::Component => e.subcomponent(n),
        hl7v2::Level::Subcomponent => (n == 1).then_some(e),
        _ => e.component(n),
    }?;
    (!p.is_empty() && !p.is_null()).then_some(p)
}

/// The decoded, trimmed text of an element; `None` when empty or undecodable.
pub fn text(e: Element<'_>) -> Option<Text> {
    if let Some(d) = delimiters_of(e.raw())
        && let Ok(t) = plain_text(e.raw(), d.escape)
    {
        return t;
    }
    let t = e.text().ok()?;
    let trimmed = t.trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.len() == t.len() {
        return Some(Text::from_cow(t));
    }
    Some(Text::new(trimmed))
}

/// The message being converted on this thread: the address range of its bytes and its
/// delimiters (set while a [`Ctx`] lives). With them, values of that message that need no
/// decoding (ASCII, no escape sequence — nearly all) are split and read straight from their
/// bytes, instead of through `hl7v2::Element`'s general path (a `memchr` call per piece, an
/// escape scan and a UTF-8 check per value).
#[derive(Clone, Copy)]
struct Current {
    start: usize,
    end: usize,
    delimiters: Delimiters,
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// The delimiters of the message `raw` lies in, when it is the one being converted.
fn delimiters_of(raw: &[u8]) -> Option<Delimiters> {
    let c = CURRENT.try_with(Cell::get).ok().flatten()?;
    let at = raw.as_ptr().addr();
    (at >= c.start && at + raw.len() <= c.end).then_some(c.delimiters)
}

/// Whether `b` is whitespace as `str::trim` sees it (the ASCII part of Unicode's White_Space).
fn is_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// Bytes that need decoding (escape sequences or non-ASCII characters): the general path.
struct Encoded;

/// The text of raw bytes that need no decoding: when they are ASCII without the escape
/// character, every character set reads them as they are (trimmed; `None` when blank).
fn plain_text(raw: &[u8], escape: Option<u8>) -> Result<Option<Text>, Encoded> {
    let esc = escape.unwrap_or(0x80);
    if raw.iter().any(|&b| b >= 0x80 || b == esc) {
        return Err(Encoded);
    }
    let start = raw.iter().position(|&b| !is_space(b));
    Ok(start.map(|start| {
        let end = raw
            .iter()
            .rposition(|&b| !is_space(b))
            .map_or(raw.len(), |e| e + 1);
        Text::from_ascii(&raw[start..end])
    }))
}

/// `raw` up to the first `sep` (all of it without one).
fn first_piece(raw: &[u8], sep: Option<u8>) -> &[u8] {
    match sep.and_then(|sep| raw.iter().position(|&b| b == sep)) {
        Some(i) => &raw[..i],
        None => raw,
    }
}

/// Whether a piece is empty or the explicit null `""`.
fn absent(raw: &[u8]) -> bool {
    raw.is_empty() || raw == b"\"\""
}

/// The text of the first part of an element (a field's first component, a component's first
/// subcomponent): the code of a coded value sent with more parts than expected.
pub fn first_text(e: Element<'_>) -> Option<Text> {
    // a value holding the repetition separator may be MSH-2 (read whole): general path
    if let Some(d) = delimiters_of(e.raw())
        && !e.raw().contains(&d.repetition)
    {
        let raw = match e.level() {
            hl7v2::Level::Field | hl7v2::Level::Repetition => {
                first_piece(e.raw(), Some(d.component))
            }
            hl7v2::Level::Component => first_piece(e.raw(), d.subcomponent),
            hl7v2::Level::Subcomponent => e.raw(),
        };
        if absent(raw) {
            return None;
        }
        if let Ok(t) = plain_text(raw, d.escape) {
            return t;
        }
    }
    part(e, 1).and_then(text)
}

/// The text of part `n` (of its first subcomponent, when `n` is a component: a primitive
/// component sent with subcomponents keeps its first).
pub fn part_text(e: Element<'_>, n: usize) -> Option<Text> {
    Parts::of(e).text(n)
}

/// The text of a part: of its first subcomponent when it is a component.
fn part_own_text(p: Element<'_>) -> Option<Text> {
    if p.level() == hl7v2::Level::Component {
        p.subcomponent(1)
            .filter(|s| !s.is_empty() && !s.is_null())
            .and_then(text)
    } else {
        text(p)
    }
}

/// How many parts [`Parts`] locates in its one pass (XTN.18 is the last part a data type
/// conversion reads in a row); parts past it are looked up one by one.
const MAX_PARTS: usize = 18;

/// The parts of a composite value located in one pass: `get(n)` is [`part`]`(e, n)` and
/// `text(n)` is [`part_text`]`(e, n)`, without scanning the value again for every part.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    whole: Element<'a>,
    split: Option<Split<'a>>,
}

/// Where the parts of a value of the message being converted lie in its bytes.
#[derive(Clone, Copy)]
struct Split<'a> {
    /// The element whose children the parts are (a field's first repetition, or the value).
    parent: Element<'a>,
    delimiters: Delimiters,
    /// Byte ranges of the first parts in `parent`'s bytes (`count` of them).
    spans: [(u32, u32); MAX_PARTS],
    count: usize,
}

impl<'a> Parts<'a> {
    /// Splits `e` into its parts (a field's: those of its first repetition).
    pub fn of(whole: Element<'a>) -> Self {
        let split = delimiters_of(whole.raw()).and_then(|d| {
            let (parent, sep) = match whole.level() {
                hl7v2::Level::Subcomponent => return None,
                hl7v2::Level::Field => (whole.child(1)?, Some(d.component)),
                hl7v2::Level::Repetition => (whole, Some(d.component)),
                hl7v2::Level::Component => (whole, d.subcomponent),
            };
            let raw = parent.raw();
            // a repetition or component never holds these: MSH-1 or MSH-2, read whole
            if raw.len() > u32::MAX as usize / 2
                || raw.iter().any(|&b| b == d.field || b == d.repetition)
            {
                return None;
            }
            let mut spans = [(0u32, 0u32); MAX_PARTS];
            let mut count = 0;
            let mut start = 0u32;
            for (i, &b) in (0u32..).zip(raw) {
                if Some(b) == sep {
                    spans[count] = (start, i);
                    count += 1;
                    start = i + 1;
                    if count == MAX_PARTS {
                        break;
                    }
                }
            }
            if count < MAX_PARTS {
                spans[count] = (start, u32::try_from(raw.len()).ok()?);
                count += 1;
            }
            Some(Split {
                parent,
                delimiters: d,
                spans,
                count,
            })
        });
        Parts { whole, split }
    }

    /// The split and the bytes of part `n` (empty past the last part), when located.
    fn located(&self, n: usize) -> Option<(&Split<'a>, &'a [u8])> {
        let split = self.split.as_ref()?;
        let index = n.checked_sub(1).filter(|&i| i < MAX_PARTS)?;
        let raw = if index < split.count {
            let (start, end) = split.spans[index];
            split.parent.raw().get(start as usize..end as usize)?
        } else {
            &[]
        };
        Some((split, raw))
    }

    /// Part `n` (1-based); empty and `""` parts are `None`.
    pub fn get(&self, n: usize) -> Option<Element<'a>> {
        match self.located(n) {
            Some((_, raw)) if absent(raw) => None,
            Some((split, _)) => split.parent.child(n),
            None => part(self.whole, n),
        }
    }

    /// The text of part `n`, as [`part_text`].
    pub fn text(&self, n: usize) -> Option<Text> {
        if let Some((split, mut raw)) = self.located(n) {
            if absent(raw) {
                return None;
            }
            if split.parent.level() == hl7v2::Level::Repetition {
                // a component's first subcomponent
                raw = first_piece(raw, split.delimiters.subcomponent);
                if absent(raw) {
                    return None;
                }
            }
            if let Ok(text) = plain_text(raw, split.delimiters.escape) {
                return text;
            }
        }
        part_own_text(self.get(n)?)
    }
}

/// The non-empty repetitions of a field.
pub fn repetitions(e: Element<'_>) -> impl Iterator<Item = Element<'_>> {
    e.children().filter(|r| !r.is_empty() && !r.is_null())
}

/// Inserts `value` under `key` when there is one.
pub fn put(map: &mut Map, key: &'static str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key, v);
    }
}

/// Appends `value` to the array under `key`.
pub fn push(map: &mut Map, key: &'static str, value: Value) {
    if let Some(Value::Array(a)) = map.get_mut(key) {
        a.push(value);
    } else {
        let mut items = crate::tree::array();
        items.push(value);
        map.insert(key, Value::Array(items));
    }
}

impl<'a, 'o> Ctx<'a, 'o> {
    /// A fresh state for `msg`.
    pub fn new(msg: &'o Message<'a>, opts: &'o Options) -> Self {
        let n = msg.segment_count();
        let raw = msg.raw();
        let current = Current {
            start: raw.as_ptr().addr(),
            end: raw.as_ptr().addr() + raw.len(),
            delimiters: msg.delimiters(),
        };
        let previous = CURRENT
            .try_with(|c| c.replace(Some(current)))
            .ok()
            .flatten();
        Ctx {
            msg,
            opts,
            tz: opts.default_timezone.clone(),
            used: vec![0; n],
            entries: Vec::with_capacity(8),
            reports: Vec::new(),
            fields: Vec::with_capacity(64),
            spans: vec![(u32::MAX, 0); n],
            previous,
        }
    }

    /// Every segment with its occurrence number.
    pub fn segments(&self) -> Vec<Seg<'a>> {
        // few distinct ids per message: a short list beats hashing
        let mut counts: Vec<(&'a str, usize)> = Vec::with_capacity(16);
        self.msg
            .segments()
            .map(|seg| {
                let id = seg.id();
                let occ = if let Some(c) = counts.iter_mut().find(|(i, _)| *i == id) {
                    c.1 += 1;
                    c.1
                } else {
                    counts.push((id, 1));
                    1
                };
                Seg { seg, occ }
            })
            .collect()
    }

    /// Marks field `n` of `seg` as used.
    pub fn mark(&mut self, seg: Seg<'a>, n: usize) {
        if n < 128
            && let Some(u) = self.used.get_mut(seg.seg.index())
        {
            *u |= 1u128 << n;
        }
    }

    /// Forgets that any field of `seg` was used (its content was not written after all).
    pub fn unmark(&mut self, seg: Seg<'a>) {
        if let Some(u) = self.used.get_mut(seg.seg.index()) {
            *u = 0;
        }
    }

    /// Field `n` of `seg`, as sent (empty or not).
    fn raw_field(&mut self, seg: Seg<'a>, n: usize) -> Option<Element<'a>> {
        let i = seg.seg.index();
        let (start, len) = *self.spans.get(i)?;
        let (start, len) = if start == u32::MAX {
            let start = self.fields.len();
            self.fields.extend(seg.seg.fields().map(|(_, f)| f));
            let span = (
                u32::try_from(start).ok()?,
                u32::try_from(self.fields.len() - start).ok()?,
            );
            self.spans[i] = span;
            span
        } else {
            (start, len)
        };
        let k = n.checked_sub(1)?;
        if k >= len as usize {
            return None;
        }
        self.fields.get(start as usize + k).copied()
    }

    /// Field `n` when it carries data (marking it used).
    pub fn field(&mut self, seg: Seg<'a>, n: usize) -> Option<Element<'a>> {
        let f = self.raw_field(seg, n)?;
        if f.is_empty() {
            return None;
        }
        self.mark(seg, n);
        (!f.is_null()).then_some(f)
    }

    /// The first non-empty repetition of field `n`.
    pub fn first(&mut self, seg: Seg<'a>, n: usize) -> Option<Element<'a>> {
        self.field(seg, n).and_then(|f| repetitions(f).next())
    }

    /// The non-empty repetitions of field `n`.
    pub fn reps(&mut self, seg: Seg<'a>, n: usize) -> Vec<Element<'a>> {
        self.field(seg, n)
            .map(|f| repetitions(f).collect())
            .unwrap_or_default()
    }

    /// The text of field `n`'s first component (a code, an id, a number).
    pub fn code(&mut self, seg: Seg<'a>, n: usize) -> Option<Text> {
        let r = self.first(seg, n)?;
        // the first subcomponent of the first component, straight from the bytes (a value
        // holding the repetition separator may be MSH-2, read whole: general path)
        if let Some(d) = delimiters_of(r.raw())
            && !r.raw().contains(&d.repetition)
        {
            let c = first_piece(r.raw(), Some(d.component));
            if absent(c) {
                return None;
            }
            let sub = first_piece(c, d.subcomponent);
            if absent(sub) {
                return None;
            }
            if let Ok(t) = plain_text(sub, d.escape) {
                return t;
            }
        }
        part(r, 1).and_then(|c| part(c, 1)).and_then(text)
    }

    /// The whole text of field `n`'s first repetition (ST, TX, FT).
    pub fn string(&mut self, seg: Seg<'a>, n: usize) -> Option<Text> {
        self.first(seg, n).and_then(text)
    }

    /// Records a reported piece of content.
    pub fn report(&mut self, seg: Seg<'a>, n: usize, reason: UnmappedReason) {
        let length = self.raw_field(seg, n).map_or(0, |f| f.raw().len());
        self.reports.push(Unmapped {
            segment: seg.id().to_owned(),
            occurrence: seg.occ,
            field: n,
            repetitions: 1,
            length,
            reason,
            ig_target: None,
        });
    }

    /// A field error at `seg`-`n`.
    #[allow(clippy::unused_self)] // a method, so every handler reads `ctx.error(…)`
    pub fn error(&self, seg: Seg<'a>, n: usize, reason: impl Into<String>) -> ConvertError {
        ConvertError::Field {
            location: Location {
                segment: seg.id().to_owned(),
                occurrence: seg.occ,
                field: n,
            },
            reason: reason.into(),
        }
    }

    /// A DTM (or TS) element as FHIR `dateTime`; an invalid value or a cut time is reported.
    pub fn datetime_of(&mut self, seg: Seg<'a>, n: usize, value: Element<'a>) -> Option<String> {
        let raw = first_text(value)?;
        let Some(parsed) = Dtm::parse(&raw) else {
            self.report(seg, n, UnmappedReason::Invalid);
            return None;
        };
        let (text, cut) = parsed.to_datetime(self.tz.as_deref());
        if cut {
            self.report(seg, n, UnmappedReason::TimeWithoutZone);
        }
        Some(text)
    }

    /// Field `n` as FHIR `dateTime`.
    pub fn datetime(&mut self, seg: Seg<'a>, n: usize) -> Option<String> {
        let e = self.first(seg, n)?;
        self.datetime_of(seg, n, e)
    }

    /// Field `n` as FHIR `date`.
    pub fn date(&mut self, seg: Seg<'a>, n: usize) -> Option<String> {
        let t = self.code(seg, n)?;
        let d = Dtm::parse(&t);
        if d.is_none() {
            self.report(seg, n, UnmappedReason::Invalid);
        }
        d.map(|d| d.to_date())
    }

    /// The FHIR coding of a v2 code through the IG concept map `map`; an unlisted code is
    /// reported.
    pub fn vocab(
        &mut self,
        seg: Seg<'a>,
        n: usize,
        map: &str,
        code: &str,
    ) -> Option<&'static crate::tables::Concept> {
        let c = crate::tables::map_code(map, code);
        if c.is_none() {
            self.report(seg, n, UnmappedReason::UnknownCode);
        }
        c
    }

    /// The entry written under `uuid` (a message makes a few dozen entries at most: a scan
    /// beats hashing).
    fn find(&self, uuid: &Uuid) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.uuid.as_bytes() == uuid.as_bytes())
    }

    /// Whether an entry of `rtype` is already written with `request`.
    pub fn has(&self, rtype: &str, request: &Request) -> bool {
        match request {
            Request::Conditional(q) => self.find(&name_uuid(&[rtype, q])).is_some(),
            Request::Put => false,
        }
    }

    /// Adds an entry, or finds the one already made under the same name; returns its index.
    pub fn add(
        &mut self,
        rtype: &'static str,
        request: Request,
        name: &[&str],
        resource: Map,
    ) -> usize {
        let uuid = match &request {
            Request::Conditional(q) => name_uuid(&[rtype, q]),
            Request::Put => name_uuid_of(rtype, name),
        };
        let (uuid, request) = match self.find(&uuid) {
            // the same patient, account or visit named again: one resource
            Some(i) if matches!(rtype, "Patient" | "Account" | "Encounter") => return i,
            // two resources of one message under one identifier: the later one gets an id
            // of its own, so neither is lost
            Some(_) => {
                let n = self.entries.len().to_string();
                let mut parts = vec![rtype, "duplicate", uuid.as_str(), &n];
                parts.extend_from_slice(name);
                (name_uuid(&parts), Request::Put)
            }
            None => (uuid, request),
        };
        let i = self.entries.len();
        let mut full_url = [0u8; 45];
        full_url[..9].copy_from_slice(b"urn:uuid:");
        full_url[9..].copy_from_slice(uuid.as_bytes());
        self.entries.push(Entry {
            uuid,
            full_url: Arc::from(std::str::from_utf8(&full_url).unwrap_or_default()),
            rtype,
            resource,
            request,
        });
        i
    }

    /// A reference to entry `i`.
    pub fn reference(&self, i: usize) -> Value {
        let mut m = Map::new();
        m.insert("reference", Value::Shared(self.entries[i].full_url.clone()));
        Value::Object(m)
    }

    /// The resource of entry `i`.
    pub fn res(&mut self, i: usize) -> &mut Map {
        &mut self.entries[i].resource
    }

    /// The report of everything not used: explicit reports, Z-segments and other unread
    /// segments, and fields with data no handler used.
    pub fn unmapped(&mut self, segs: &[Seg<'a>]) -> Vec<Unmapped> {
        let mut out = std::mem::take(&mut self.reports);
        for s in segs {
            let id = s.id();
            let used = self.used.get(s.seg.index()).copied().unwrap_or(0);
            if used == 0 && id != "MSH" {
                let count = s.seg.fields().filter(|(_, f)| !f.is_empty()).count();
                if count > 0 || id.starts_with('Z') {
                    out.push(Unmapped {
                        segment: id.to_owned(),
                        occurrence: s.occ,
                        field: 0,
                        repetitions: count,
                        length: s.seg.raw().len(),
                        reason: UnmappedReason::Segment,
                        ig_target: ig_segment_target(id),
                    });
                }
                continue;
            }
            let header = id == "MSH";
            // the fields split when the handlers read them (field n at n - 1), else split now
            let cached = self
                .spans
                .get(s.seg.index())
                .filter(|(start, _)| *start != u32::MAX)
                .and_then(|&(start, len)| {
                    self.fields
                        .get(start as usize..start as usize + len as usize)
                });
            let mut check = |n: usize, f: Element<'a>| {
                if f.is_empty() || (header && n <= 2) || (n < 128 && used & (1u128 << n) != 0) {
                    return;
                }
                out.push(Unmapped {
                    segment: id.to_owned(),
                    occurrence: s.occ,
                    field: n,
                    repetitions: f.children().filter(|r| !r.is_empty()).count(),
                    length: f.raw().len(),
                    reason: UnmappedReason::NotMapped,
                    ig_target: ig_field_target(id, n),
                });
            };
            match cached {
                Some(fields) => {
                    for (k, f) in fields.iter().enumerate() {
                        check(k + 1, *f);
                    }
                }
                None => {
                    for (n, f) in s.seg.fields() {
                        check(n, f);
                    }
                }
            }
        }
        out
    }
}

/// The resources the IG makes from a segment (`IN1` → `Coverage`).
fn ig_segment_target(id: &str) -> Option<String> {
    let targets: Vec<&str> = maps_of(id).map(|(t, _)| t).collect();
    (!targets.is_empty()).then(|| targets.join(", "))
}

/// Where the IG maps field `n` of segment `id` (`Patient.extension[2].valueCodeableConcept`).
fn ig_field_target(id: &str, n: usize) -> Option<String> {
    field_targets().get(&(id, n)).cloned()
}

/// (segment id, field number) → `Resource.path`.
type FieldTargets = HashMap<(&'static str, usize), String>;

/// For each segment field, the first mapped FHIR path of the IG's segment maps (maps in name
/// order, rows in table order), indexed once per process: the unmapped report looks up many
/// fields of every message.
fn field_targets() -> &'static FieldTargets {
    static TARGETS: OnceLock<FieldTargets> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let mut index = HashMap::new();
        for m in crate::tables::segment_maps() {
            let Some((id, rest)) = m.name.split_once('[') else {
                continue;
            };
            let target = rest.strip_suffix(']').unwrap_or(rest);
            let resource = target.split('-').next().unwrap_or(target);
            for row in m.fields.iter().filter(|r| !r.fhir_path.is_empty()) {
                let Some(n) = row
                    .field
                    .strip_prefix(id)
                    .and_then(|r| r.strip_prefix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                index
                    .entry((id, n))
                    .or_insert_with(|| format!("{resource}.{}", row.fhir_path));
            }
        }
        index
    })
}

/// The segment maps of segment `id` (`PID[Patient]`, `PID[Account]` …) with their targets;
/// the maps are sorted by name, so they are one run.
fn maps_of(id: &str) -> impl Iterator<Item = (&str, &'static crate::tables::SegmentMap)> {
    let maps = crate::tables::segment_maps();
    let start = maps.partition_point(|m| m.name < id);
    maps[start..].iter().map_while(move |m| {
        let rest = m.name.strip_prefix(id)?.strip_prefix('[')?;
        Some((rest.strip_suffix(']').unwrap_or(rest), m))
    })
}

/// Appends `s` percent-encoded as a search parameter value part (URI characters kept
/// readable).
fn encode_query_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@!$'()*,;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// The conditional query `identifier=system|value` of an Identifier value.
pub fn identifier_query(identifier: &Value) -> Option<String> {
    let value = identifier.get("value")?.as_str()?;
    let system = identifier.get("system").and_then(Value::as_str);
    let mut q = String::with_capacity(12 + system.map_or(0, str::len) + value.len());
    q.push_str("identifier=");
    if let Some(system) = system {
        encode_query_into(&mut q, system);
        q.push('|');
    }
    encode_query_into(&mut q, value);
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text read of every field, component and subcomponent of `raw`, with the
    /// message's delimiters known or not.
    fn reads(msg: &Message<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |what: String, t: Option<Text>| out.push(format!("{what}={t:?}"));
        for seg in msg.segments() {
            for (n, f) in seg.fields() {
                let mut elements = vec![f];
                for r in f.children() {
                    elements.push(r);
                    for c in r.children() {
                        elements.push(c);
                        elements.extend(c.children());
                    }
                }
                for (i, e) in elements.into_iter().enumerate() {
                    let at = format!("{}-{n}#{i}", seg.id());
                    add(format!("{at} text"), text(e));
                    add(format!("{at} first"), first_text(e));
                    let parts = Parts::of(e);
                    for k in 0..=20 {
                        add(format!("{at} part {k}"), parts.text(k));
                        add(
                            format!("{at} get {k}"),
                            parts
                                .get(k)
                                .map(|p| Text::new(&String::from_utf8_lossy(p.raw()))),
                        );
                        add(format!("{at} part_text {k}"), part_text(e, k));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn plain_values_read_as_the_general_path_does() {
        let opts = Options::default();
        for raw in [
            &b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1\rPID|1||12^^^H&1.2&ISO^MR~\"\"~^x||  Doe ^ Jo\\T\\e ^\"\"^&&|\t x \x0b|a&\"\"&c^^q~r\r"[..],
            b"MSH|^~\\&|A||||20260101||ADT^A01|1|P|2.5.1|||||||8859/1\rPID|1||\xe9t\xe9^x\\F\\y^^^^^^^^^^^^^^^^^^^^^last|\\X41\\||NM\\.br\\1\r",
            b"MSH|^~\r",
            b"MSH#^~\\&#A\rPID#1##a|b^c~d&e#f^g\r",
            b"MSH|^~|A|B\rPID|1|\\E\\|x&y^z\r",
        ] {
            let Ok(msg) = Message::parse(raw) else {
                continue;
            };
            let general = reads(&msg);
            let mut ctx = Ctx::new(&msg, &opts);
            let plain = reads(&msg);
            for seg in ctx.segments() {
                for n in 0..=seg.seg.field_count() + 1 {
                    let code = ctx.code(seg, n);
                    let first = ctx.first(seg, n);
                    let current = CURRENT.with(Cell::take);
                    let expected = first
                        .and_then(|r| part(r, 1))
                        .and_then(|c| part(c, 1))
                        .and_then(text);
                    CURRENT.with(|c| c.set(current));
                    assert_eq!(code, expected, "{}-{n}", seg.id());
                }
            }
            drop(ctx);
            assert_eq!(general, plain, "{}", String::from_utf8_lossy(raw));
            assert!(delimiters_of(msg.raw()).is_none());
        }
    }
}
