//! The HL7 v2 half of `msg`: reads and edits on a [`MessageBuf`], with errors worded for the
//! script author. No JavaScript here, so all of it is tested directly.

use hl7v2::{Charset, Message, MessageBuf, Path};

/// An error message for the script author.
pub(crate) type ApiResult<T> = Result<T, String>;

fn path_error(e: &hl7v2::ParseError) -> String {
    kind_message(&e.kind)
}

/// The error's text without the "limit exceeded" wording `MessageBuf` uses for refusals.
fn kind_message(kind: &hl7v2::ErrorKind) -> String {
    match kind {
        hl7v2::ErrorKind::Limit(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Decodes message bytes (already in the message's charset) to text without unescaping.
fn decode(charset: Charset, raw: &[u8]) -> String {
    match charset.decode(raw) {
        Ok(t) => t.into_owned(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn encode_text(m: &MessageBuf, text: &str) -> ApiResult<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    m.encoding()
        .charset
        .encode_into(text, &mut out)
        .map_err(|k| k.to_string())?;
    Ok(out)
}

/// The value at a path: decoded text for a single value, the encoded text (delimiters and
/// escapes as in the message) for a composite one, `None` when absent.
pub(crate) fn get(m: &MessageBuf, path: &str) -> ApiResult<Option<String>> {
    let Some(e) = m.get(path).map_err(|e| path_error(&e))? else {
        return Ok(None);
    };
    if e.is_composite() {
        return Ok(Some(decode(m.encoding().charset, e.raw())));
    }
    e.text()
        .map(|t| Some(t.into_owned()))
        .map_err(|e| format!("{path}: {}", kind_message(&e.kind)))
}

/// The encoded text at a path (escape sequences kept), `None` when absent.
pub(crate) fn get_raw(m: &MessageBuf, path: &str) -> ApiResult<Option<String>> {
    Ok(m.get(path)
        .map_err(|e| path_error(&e))?
        .map(|e| decode(m.encoding().charset, e.raw())))
}

/// One part of a path split at `-`/`.`, with an optional `[n]` or `[*]` index.
fn split_index(part: &str) -> (&str, Option<&str>) {
    match part.split_once('[') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(']').unwrap_or(rest))),
        None => (part, None),
    }
}

/// Expands `[*]` on the segment (`OBX[*]-5`) and on the field (`PID-3[*]-1`) into every
/// occurrence and repetition present, in message order.
pub(crate) fn expand(m: &MessageBuf, path: &str) -> ApiResult<Vec<String>> {
    let path = path.trim();
    let mut parts = path.splitn(3, ['-', '.']);
    let seg_part = parts.next().unwrap_or_default();
    let Some(field_part) = parts.next() else {
        // let the path parser explain what is missing
        Path::parse(path).map_err(|e| path_error(&e))?;
        return Ok(vec![path.to_owned()]);
    };
    let rest = parts.next().map(|r| format!("-{r}")).unwrap_or_default();
    if rest.contains("[*]") {
        return Err(format!(
            "bad path {path:?}: [*] is allowed on the segment and on the field only"
        ));
    }
    let (seg, seg_index) = split_index(seg_part);
    let (field, field_index) = split_index(field_part);
    // check everything but the stars with the real parser
    let probe = format!(
        "{seg}[{}]-{field}[{}]{rest}",
        seg_index.filter(|i| *i != "*").unwrap_or("1"),
        field_index.filter(|i| *i != "*").unwrap_or("1"),
    );
    Path::parse(&probe).map_err(|e| path_error(&e).replace(&probe, path))?;
    let occurrences: Vec<String> = match seg_index {
        Some("*") => {
            let n = m.segments().iter().filter(|s| s.id() == seg).count();
            (1..=n).map(|i| i.to_string()).collect()
        }
        Some(i) => vec![i.to_owned()],
        None => vec!["1".to_owned()],
    };
    let mut out = Vec::new();
    for occ in occurrences {
        match field_index {
            Some("*") => {
                let reps = m
                    .get(&format!("{seg}[{occ}]-{field}"))
                    .map_err(|e| path_error(&e))?
                    .filter(|e| !e.is_empty())
                    .map_or(0, |e| e.children().count());
                out.extend((1..=reps).map(|r| format!("{seg}[{occ}]-{field}[{r}]{rest}")));
            }
            Some(r) => out.push(format!("{seg}[{occ}]-{field}[{r}]{rest}")),
            None => out.push(format!("{seg}[{occ}]-{field}{rest}")),
        }
    }
    Ok(out)
}

/// Every value a path with `[*]` names; `""` where a segment or repetition lacks the element,
/// so positions line up with segments and repetitions. A path without `[*]` gives its value
/// alone, or nothing when absent.
pub(crate) fn get_all(m: &MessageBuf, path: &str) -> ApiResult<Vec<String>> {
    if !path.contains("[*]") {
        return Ok(get(m, path)?.into_iter().collect());
    }
    expand(m, path)?
        .iter()
        .map(|p| get(m, p).map(Option::unwrap_or_default))
        .collect()
}

/// Sets a value from text; delimiters in the text are escaped.
pub(crate) fn set(m: &mut MessageBuf, path: &str, text: &str) -> ApiResult<()> {
    m.set(path, text).map_err(|e| kind_message(&e.kind))
}

/// Sets already-encoded text, refusing separators that would change the message's structure
/// above the path's level (a `|` in a field, a `~` in a repetition, ...).
pub(crate) fn set_raw(m: &mut MessageBuf, path: &str, raw: &str) -> ApiResult<()> {
    let p = Path::parse(path).map_err(|e| path_error(&e))?;
    let d = m.encoding().delimiters;
    let mut forbidden = vec![
        ('\r', "a segment terminator"),
        ('\n', "a segment terminator"),
    ];
    let mut add = |b: Option<u8>, what: &'static str| {
        if let Some(b) = b {
            forbidden.push((char::from(b), what));
        }
    };
    add(Some(d.field), "the field separator");
    if p.repetition.is_some() {
        add(Some(d.repetition), "the repetition separator");
    }
    if p.component.is_some() {
        add(Some(d.component), "the component separator");
    }
    if p.subcomponent.is_some() {
        add(d.subcomponent, "the subcomponent separator");
    }
    if let Some((c, what)) = forbidden.iter().find(|(c, _)| raw.contains(*c)) {
        return Err(format!(
            "{path}: the value holds {what} {c:?}, which cannot appear at this level"
        ));
    }
    let bytes = encode_text(m, raw)?;
    m.set_raw(path, &bytes).map_err(|e| kind_message(&e.kind))
}

/// Empties the element at a path; nothing happens when it is absent.
pub(crate) fn clear(m: &mut MessageBuf, path: &str) -> ApiResult<()> {
    if m.get(path).map_err(|e| path_error(&e))?.is_some() {
        m.set_raw(path, b"").map_err(|e| kind_message(&e.kind))?;
    }
    Ok(())
}

/// 0-based positions of the segments with this id.
pub(crate) fn segment_indexes(m: &MessageBuf, id: &str) -> Vec<usize> {
    m.segments()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.id() == id)
        .map(|(i, _)| i)
        .collect()
}

/// The segment ids in order.
pub(crate) fn segment_ids(m: &MessageBuf) -> Vec<String> {
    m.segments().iter().map(|s| s.id().to_owned()).collect()
}

/// Removes every segment with this id; returns how many.
pub(crate) fn remove_segments(m: &mut MessageBuf, id: &str) -> ApiResult<usize> {
    if id == "MSH" {
        return Err("MSH cannot be removed".into());
    }
    let found = segment_indexes(m, id);
    for &i in found.iter().rev() {
        m.remove_segment(i).map_err(|e| kind_message(&e.kind))?;
    }
    Ok(found.len())
}

/// Removes the segment at a 0-based position (not MSH).
pub(crate) fn remove_segment(m: &mut MessageBuf, index: usize) -> ApiResult<()> {
    m.remove_segment(index)
        .map(drop)
        .map_err(|e| kind_message(&e.kind))
}

/// Adds a segment given as encoded text in the message's delimiters (`ZPI|1|A^B`), after
/// the segment at `after` (0-based), or at the end; returns its position.
pub(crate) fn add_segment(
    m: &mut MessageBuf,
    text: &str,
    after: Option<usize>,
) -> ApiResult<usize> {
    let text = text.strip_suffix("\r\n").unwrap_or(text);
    let text = text.strip_suffix(['\r', '\n']).unwrap_or(text);
    if text.contains(['\r', '\n']) {
        return Err(
            "a segment's text cannot hold a segment terminator (add one segment at a time)".into(),
        );
    }
    let fs = char::from(m.encoding().delimiters.field);
    let mut pieces = text.split(fs);
    let id = pieces.next().unwrap_or_default();
    let fields: Vec<&str> = pieces.collect();
    let len = m.segments().len();
    let index = match after {
        None => len,
        Some(a) if a < len => a + 1,
        Some(a) => {
            return Err(format!(
                "cannot add after segment {a}: the message has {len} segments (0 to {})",
                len - 1
            ));
        }
    };
    // encode every field first, so a failure leaves the message as it was
    let fields = fields
        .iter()
        .map(|f| encode_text(m, f))
        .collect::<ApiResult<Vec<_>>>()?;
    if index == len {
        m.push_segment(id)
    } else {
        m.insert_segment(index, id).map(|()| index)
    }
    .map_err(|e| {
        format!(
            "{:?} is not a segment: {}",
            truncate(text),
            kind_message(&e.kind)
        )
    })?;
    let occurrence = m.segments()[..index]
        .iter()
        .filter(|s| s.id() == id)
        .count()
        + 1;
    for (n, raw) in fields.iter().enumerate() {
        let path = format!("{id}[{occurrence}]-{}", n + 1);
        if let Err(e) = m.set_raw(&path, raw) {
            let _ = m.remove_segment(index);
            return Err(kind_message(&e.kind));
        }
    }
    Ok(index)
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(24) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The message encoded, as text.
pub(crate) fn to_text(m: &MessageBuf) -> String {
    let bytes = m.encode();
    match m.encoding().charset.decode(&bytes) {
        Ok(t) => t.into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The `hl7v2` crate's JSON view of the message.
pub(crate) fn to_json(m: &MessageBuf) -> ApiResult<serde_json::Value> {
    let bytes = m.encode();
    let parsed = Message::parse(&bytes).map_err(|e| e.to_string())?;
    hl7v2::json::to_json(&parsed).map_err(|e| e.to_string())
}

/// Parses HL7 v2 text into a message.
pub(crate) fn parse(text: &str) -> ApiResult<MessageBuf> {
    Message::parse(text.as_bytes())
        .map(|m| MessageBuf::from(&m))
        .map_err(|e| format!("not a valid HL7 v2 message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|SEND|FAC|RECV|FAC|20260101120000||ADT^A01^ADT_A01|MSG1|P|2.5.1\r\
EVN|A01|20260101120000\r\
PID|1||123^^^HOSP^MR~456^^^SSA^SS||DOE^JOHN^Q||19700101|M|||1 MAIN ST^^TOWN^ST^12345\r\
PV1|1|I|W1^101^A\r\
OBX|1|ST|A||first\r\
OBX|2|ST|B||sec\\T\\ond\r\
OBX|3|ST|C\r";

    fn msg() -> MessageBuf {
        parse(ADT).unwrap()
    }

    #[test]
    fn get_decodes_leaves_and_keeps_composites_encoded() {
        let m = msg();
        assert_eq!(get(&m, "PID-5-1").unwrap().as_deref(), Some("DOE"));
        assert_eq!(get(&m, "PID-5").unwrap().as_deref(), Some("DOE^JOHN^Q"));
        assert_eq!(get(&m, "OBX[2]-5").unwrap().as_deref(), Some("sec&ond"));
        assert_eq!(
            get_raw(&m, "OBX[2]-5").unwrap().as_deref(),
            Some("sec\\T\\ond")
        );
        assert_eq!(get(&m, "PID-3[2]-4").unwrap().as_deref(), Some("SSA"));
        assert_eq!(get(&m, "MSH-2").unwrap().as_deref(), Some("^~\\&"));
        assert_eq!(get(&m, "ZPI-1").unwrap(), None);
        assert_eq!(get(&m, "PID-40").unwrap(), None);
        assert!(get(&m, "PID").unwrap_err().contains("field number"));
    }

    #[test]
    fn get_all_expands_stars() {
        let m = msg();
        assert_eq!(get_all(&m, "PID-3[*]-1").unwrap(), ["123", "456"]);
        assert_eq!(get_all(&m, "OBX[*]-5").unwrap(), ["first", "sec&ond", ""]);
        assert_eq!(get_all(&m, "OBX[*]-3[*]").unwrap(), ["A", "B", "C"]);
        assert_eq!(get_all(&m, "ZPI[*]-1").unwrap(), Vec::<String>::new());
        assert_eq!(get_all(&m, "PV1-7[*]").unwrap(), Vec::<String>::new());
        assert_eq!(get_all(&m, "PID-5-1").unwrap(), ["DOE"]);
        assert!(get_all(&m, "PID-5-1[*]").is_err());
        assert!(get_all(&m, "pid[*]-1").is_err());
    }

    #[test]
    fn set_escapes_and_clear_empties() {
        let mut m = msg();
        set(&mut m, "PID-5-1", "O|NEIL^X").unwrap();
        assert_eq!(
            get_raw(&m, "PID-5-1").unwrap().as_deref(),
            Some("O\\F\\NEIL\\S\\X")
        );
        assert_eq!(get(&m, "PID-5-1").unwrap().as_deref(), Some("O|NEIL^X"));
        clear(&mut m, "PV1-3").unwrap();
        assert!(to_text(&m).contains("\rPV1|1|I|\r"));
        clear(&mut m, "ZPI-3").unwrap();
        clear(&mut m, "PV1-30").unwrap();
        assert!(to_text(&m).contains("\rPV1|1|I|\r"));
        assert!(
            set(&mut m, "ZPI-1", "x")
                .unwrap_err()
                .contains("add it first")
        );
    }

    #[test]
    fn set_raw_refuses_structure_characters() {
        let mut m = msg();
        set_raw(&mut m, "PID-5", "ROE^ANN~ROE^A").unwrap();
        assert_eq!(get(&m, "PID-5[2]-2").unwrap().as_deref(), Some("A"));
        assert!(set_raw(&mut m, "PID-5", "A|B").is_err());
        assert!(set_raw(&mut m, "PID-5-1", "A^B").is_err());
        assert!(set_raw(&mut m, "PID-5[1]", "A~B").is_err());
        assert!(set_raw(&mut m, "PID-5-1-1", "A&B").is_err());
        assert!(set_raw(&mut m, "PID-5", "A\rB").is_err());
    }

    #[test]
    fn segments_add_and_remove() {
        let mut m = msg();
        assert_eq!(segment_indexes(&m, "OBX"), [4, 5, 6]);
        assert_eq!(segment_ids(&m)[..3], ["MSH", "EVN", "PID"]);
        assert_eq!(add_segment(&mut m, "ZPI|1|A^B", Some(2)).unwrap(), 3);
        assert_eq!(add_segment(&mut m, "ZPI|2", Some(2)).unwrap(), 3);
        assert_eq!(get(&m, "ZPI[2]-2-2").unwrap().as_deref(), Some("B"));
        assert_eq!(get(&m, "ZPI[1]-1").unwrap().as_deref(), Some("2"));
        assert_eq!(add_segment(&mut m, "ZZZ", None).unwrap(), 9);
        assert_eq!(remove_segments(&mut m, "OBX").unwrap(), 3);
        assert_eq!(remove_segments(&mut m, "ZPI").unwrap(), 2);
        remove_segment(&mut m, 4).unwrap();
        assert_eq!(segment_ids(&m), ["MSH", "EVN", "PID", "PV1"]);
        assert!(add_segment(&mut m, "zpi|1", None).is_err());
        assert!(add_segment(&mut m, "MSH|^~\\&", None).is_err());
        assert!(add_segment(&mut m, "ZPI|1\rZPJ|2", None).is_err());
        assert!(add_segment(&mut m, "ZPI|1", Some(4)).is_err());
        assert!(remove_segment(&mut m, 0).is_err());
        assert!(remove_segments(&mut m, "MSH").is_err());
        assert_eq!(segment_ids(&m), ["MSH", "EVN", "PID", "PV1"]);
    }

    #[test]
    fn latin1_messages_stay_latin1() {
        let raw = b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5||||||8859/1\rPID|1||1||M\xFCLLER\r";
        let mut m = MessageBuf::from(&Message::parse(raw).unwrap());
        assert_eq!(get(&m, "PID-5").unwrap().as_deref(), Some("MüLLER"));
        set(&mut m, "PID-5-2", "Jürgen").unwrap();
        assert!(m.encode().ends_with(b"M\xFCLLER^J\xFCrgen\r"));
        assert!(set(&mut m, "PID-5-2", "€").is_err());
        add_segment(&mut m, "ZPI|\u{e9}", None).unwrap();
        assert!(m.encode().ends_with(b"ZPI|\xE9\r"));
    }

    #[test]
    fn json_view() {
        let v = to_json(&msg()).unwrap();
        assert_eq!(v["segments"][2]["fields"][4][0], "DOE");
        assert!(parse("PID|1").unwrap_err().contains("MSH"));
    }
}
