//! Reading the input text into a [`Doc`] in one pass with quick-xml's reader.
//!
//! `quick_xml::Reader::from_str` hands out events that borrow from the input, so names,
//! attribute values and text become plain slices of it; only what needs rewriting is copied:
//! line ends in text (`BytesText::xml10_content`), attribute values with references or line
//! breaks (`Attribute::normalized_value`), character references
//! (`BytesRef::resolve_char_ref`) and the five predefined entities
//! (`escape::resolve_predefined_entity`). A start tag's attributes are walked with quick-xml's
//! iterator over the same borrowed text, without its duplicate check: that check keeps a
//! vector of the names seen, one allocation per tag, while the names are already being pushed
//! to [`Doc::attrs`], where the crate looks for a duplicate itself. Outside narrative (`text`
//! elements) the reader skips whitespace before markup (`trim_text_start`), so indentation
//! costs no event; whitespace it skipped before text, a reference or a CDATA section is taken
//! back from the input by position, so the tree is the same as without trimming.
//!
//! What is checked: tags close in order (quick-xml compares end names), one root element,
//! attribute syntax (quoted values, by quick-xml; no `<` in a value and no duplicates, here),
//! element and attribute names without markup characters, entity references (the five
//! predefined ones and character references), comments, CDATA sections, processing
//! instructions and DOCTYPEs that end, nesting depth. A DOCTYPE is skipped (its entities are
//! not expanded: using one is an error).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quick_xml::XmlVersion;
use quick_xml::errors::{Error, IllFormedError, SyntaxError};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attributes;
use quick_xml::events::{BytesRef, BytesText, Event};
use quick_xml::reader::Reader;

use super::{Doc, MAX_DEPTH, NONE, Node, NodeId, Ns, V3_NS, line_of, ns_of};
use crate::CcdaError;

/// Attributes of one tag beyond which duplicates are found with a set.
const MANY_ATTRIBUTES: usize = 16;

/// The tree being built from quick-xml's events.
struct Builder<'a> {
    src: &'a str,
    doc: Doc<'a>,
    /// Prefix bindings seen so far (documents declare them on the root in practice; a binding
    /// is kept for the rest of the document, which is all C-CDA needs).
    prefixes: HashMap<&'a str, Ns>,
    /// Open elements (quick-xml matches their end tags by name).
    stack: Vec<NodeId>,
    seen_root: bool,
    /// Open `text` elements: inside them (narrative, mixed content) whitespace is content;
    /// elsewhere a whitespace-only run between elements is layout and is not kept, unless a
    /// reference or CDATA section follows it in the same text (`&lt; &gt;`).
    in_text: usize,
    pending_ws: Option<(&'a str, usize)>,
    /// Whether the input has a `\r` at all: without one no text run needs its line ends
    /// rewritten, which one search of the input tells instead of one per run.
    has_cr: bool,
}

impl<'a> Doc<'a> {
    /// Parses `src`; errors carry the line where the XML stops being well-formed.
    pub(crate) fn parse(src: &'a str) -> Result<Self, CcdaError> {
        let mut b = Builder {
            src,
            doc: Doc {
                src,
                // About one node (element or text run) per 30 bytes of C-CDA and one
                // attribute per 60 (the corpus: 2,460 nodes and 1,300 attributes in 75 KB), so
                // the vectors are not regrown and copied while reading.
                nodes: Vec::with_capacity(src.len() / 25),
                attrs: Vec::with_capacity(src.len() / 50),
                ids: HashMap::new(),
                root_ns: None,
                last_line: std::cell::Cell::new((0, 1)),
            },
            prefixes: HashMap::new(),
            stack: Vec::new(),
            seen_root: false,
            in_text: 0,
            pending_ws: None,
            has_cr: memchr::memchr(b'\r', src.as_bytes()).is_some(),
        };
        // quick-xml drops a byte order mark silently, which would shift every position it
        // reports; callers strip the one a file may start with, so here it is stray text.
        if src.starts_with('\u{feff}') {
            return Err(b.error(0, "text outside the root element"));
        }
        // Otherwise the defaults are what XML asks for: end names checked, `<a/>` one event,
        // a `&` that starts no reference an error.
        let mut reader = Reader::from_str(src);
        loop {
            // Outside narrative, whitespace before markup is layout: quick-xml skips it without
            // an event. What it skipped is still `src[at..]` up to the event, so whitespace
            // before text, a reference or a CDATA section is kept as before.
            reader.config_mut().trim_text_start = b.in_text == 0;
            let at = position(reader.buffer_position());
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => return Err(b.xml_error(&e, position(reader.error_position()))),
            };
            let end = position(reader.buffer_position());
            match event {
                // `<` + the tag's text + `>` or `/>`.
                Event::Start(e) => {
                    let start = end.saturating_sub(e.len() + 2);
                    b.start_tag(start, end, e.name().0.len(), false)?;
                }
                Event::Empty(e) => {
                    let start = end.saturating_sub(e.len() + 3);
                    b.start_tag(start, end, e.name().0.len(), true)?;
                }
                Event::End(_) => b.end_tag(),
                Event::Text(_) => b.on_text(b.src.get(at..end).unwrap_or_default(), at)?,
                Event::CData(t) => {
                    // `<![CDATA[` + text + `]]>`.
                    let start = end.saturating_sub(t.len() + 12);
                    b.skipped(at, start)?;
                    b.flush_ws()?;
                    b.doc.text(b.parent(), t.xml10_content(), start)?;
                }
                Event::GeneralRef(r) => {
                    // `&` + name + `;`.
                    let start = end.saturating_sub(r.len() + 2);
                    b.skipped(at, start)?;
                    b.on_reference(&r, start)?;
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if !b.stack.is_empty() {
            return Err(b.eof());
        }
        if !b.seen_root {
            return Err(CcdaError::Xml {
                line: 1,
                message: "no root element".into(),
            });
        }
        Ok(b.doc)
    }
}

/// Text with line ends normalised by quick-xml (`\r\n` and `\r` become `\n`); most runs are
/// short and have no `\r`, which a plain byte search rules out more cheaply than quick-xml's
/// vectorised one.
fn eols(raw: &str, has_cr: bool) -> Cow<'_, str> {
    if has_cr && raw.as_bytes().contains(&b'\r') {
        BytesText::from_escaped(raw).xml10_content()
    } else {
        Cow::Borrowed(raw)
    }
}

/// Checks a name for markup characters quick-xml leaves in names (it splits tags only at
/// whitespace, `=` and quotes of values); gives the position of its first `:` if it is sound.
/// One pass over a short name, rather than a check and a separate search for the prefix.
fn name_check(name: &str, element: bool) -> Result<Option<usize>, ()> {
    let mut colon = None;
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'<' | b'"' | b'\'' | b'&' | b'/' => return Err(()),
            b'=' if element => return Err(()),
            b':' if colon.is_none() => colon = Some(i),
            _ => {}
        }
    }
    Ok(colon)
}

/// A reader position as an index into the input (which is in memory, so it fits).
fn position(p: u64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

impl<'a> Builder<'a> {
    fn error(&self, pos: usize, message: impl Into<String>) -> CcdaError {
        CcdaError::Xml {
            line: line_of(self.src, pos),
            message: message.into(),
        }
    }

    /// The input ends inside an element or inside markup.
    fn eof(&self) -> CcdaError {
        let message = match self.stack.last() {
            Some(&open) => format!(
                "the document ends inside <{}>",
                self.doc.nodes[open as usize].data
            ),
            None => "the document ends inside markup".to_owned(),
        };
        self.error(self.src.len(), message)
    }

    /// quick-xml's error at `pos`, in the crate's words where a test or a user reads them.
    fn xml_error(&self, e: &Error, pos: usize) -> CcdaError {
        match e {
            Error::Syntax(
                SyntaxError::UnclosedTag
                | SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue,
            ) => {
                // A `<` cannot be part of a tag, so a tag that runs into a later one (a stray
                // quote makes quick-xml read on to the end) is wrong where it starts.
                let rest = self.src.as_bytes().get(pos + 1..).unwrap_or_default();
                if memchr::memchr(b'<', rest).is_some() {
                    let what = if matches!(e, Error::Syntax(SyntaxError::UnclosedTag)) {
                        "a tag without its closing '>' before the next '<'"
                    } else {
                        "a quote in a tag not closed before the next '<'"
                    };
                    self.error(pos, what)
                } else {
                    self.eof()
                }
            }
            Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => self.error(
                pos,
                format!("the end tag </{found}> does not close <{expected}>"),
            ),
            Error::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
                self.error(pos, format!("the end tag </{name}> has no start tag"))
            }
            Error::IllFormed(IllFormedError::UnclosedReference) => {
                self.error(pos, "a '&' that does not start a reference (&…;)")
            }
            other => self.error(pos, other.to_string()),
        }
    }

    /// The innermost open element.
    fn parent(&self) -> Option<NodeId> {
        self.stack.last().copied()
    }

    /// The text `src[at..end]` (as written: references and CDATA sections are events of their
    /// own).
    fn on_text(&mut self, raw: &'a str, at: usize) -> Result<(), CcdaError> {
        if self.in_text == 0 && raw.bytes().all(|b| b.is_ascii_whitespace()) {
            self.pending_ws = Some((raw, at));
            return Ok(());
        }
        self.flush_ws()?;
        self.doc.text(self.parent(), eols(raw, self.has_cr), at)
    }

    /// Whitespace quick-xml skipped between `at` and the event at `start`.
    fn skipped(&mut self, at: usize, start: usize) -> Result<(), CcdaError> {
        if start > at {
            self.on_text(self.src.get(at..start).unwrap_or_default(), at)?;
        }
        Ok(())
    }

    fn flush_ws(&mut self) -> Result<(), CcdaError> {
        if let Some((ws, at)) = self.pending_ws.take() {
            self.doc.text(self.parent(), eols(ws, self.has_cr), at)?;
        }
        Ok(())
    }

    fn on_reference(&mut self, r: &BytesRef<'a>, at: usize) -> Result<(), CcdaError> {
        let name: &str = r;
        let text: Cow<'a, str> = if r.is_char_ref() {
            match r.resolve_char_ref() {
                Ok(Some(c)) => Cow::Owned(c.to_string()),
                Ok(None) | Err(_) => {
                    return Err(self.error(at, format!("invalid character reference &{name};")));
                }
            }
        } else {
            match resolve_predefined_entity(name) {
                Some(s) => Cow::Borrowed(s),
                None => return Err(self.error(at, format!("undeclared entity &{name};"))),
            }
        };
        self.flush_ws()?;
        self.doc.text(self.parent(), text, at)
    }

    fn end_tag(&mut self) {
        if let Some(id) = self.stack.pop()
            && self.doc.nodes[id as usize].data == "text"
        {
            self.in_text = self.in_text.saturating_sub(1);
        }
        self.pending_ws = None;
    }

    /// A start tag (or empty-element tag) from `at` (its `<`) to `end` (after its `>`), whose
    /// name is `name_len` bytes long.
    #[allow(clippy::too_many_lines)] // the start tag's parts in order
    fn start_tag(
        &mut self,
        at: usize,
        end: usize,
        name_len: usize,
        empty: bool,
    ) -> Result<(), CcdaError> {
        // The tag's text without `<` and `>` or `/>`, borrowed from the input rather than
        // from the event, so attributes outlive it.
        let content = self
            .src
            .get(at + 1..end.saturating_sub(if empty { 2 } else { 1 }))
            .unwrap_or_default();
        let raw_name = content.get(..name_len).unwrap_or_default();
        if raw_name.is_empty() {
            return Err(self.error(at, "a '<' that does not start a tag"));
        }
        let Ok(colon) = name_check(raw_name, true) else {
            return Err(self.error(
                at,
                format!("an element name with a '<', '&', '=', '/' or quote: <{raw_name}>"),
            ));
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(at, format!("elements nest deeper than {MAX_DEPTH} levels")));
        }
        let is_root = self.stack.is_empty();
        if is_root && self.seen_root {
            return Err(self.error(at, "a second root element"));
        }
        self.seen_root = true;
        self.pending_ws = None;

        let node_id = self.doc.nodes.len() as u32;
        let attr_start = self.doc.attrs.len();
        let mut prefixed = false;
        // Real tags have a handful of attributes, compared pairwise; a tag with very many gets
        // a set, so a hostile document cannot make the duplicate check quadratic.
        let mut many: Option<HashSet<&'a str>> = None;
        let mut attributes = Attributes::new(content, name_len);
        attributes.with_checks(false);
        for attribute in attributes {
            let attribute = attribute
                .map_err(|e| self.error(at, format!("in the start tag <{raw_name}>: {e}")))?;
            let key: &'a str = attribute.key.0;
            let Ok(key_colon) = name_check(key, false) else {
                return Err(self.error(
                    at,
                    format!("an attribute name with a '<', '&', '/' or quote in <{raw_name}>"),
                ));
            };
            let needs_work = attribute
                .value
                .bytes()
                .any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r' | b'<'));
            let value: Cow<'a, str> = if needs_work {
                if attribute.value.contains('<') {
                    return Err(self.error(
                        at,
                        format!("a '<' in the value of attribute {key} of <{raw_name}>"),
                    ));
                }
                attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| self.error(at, format!("attribute {key} of <{raw_name}>: {e}")))?
            } else {
                attribute.value
            };
            if key == "xmlns" {
                if is_root {
                    self.doc.root_ns = Some(value);
                }
                continue;
            }
            if let Some(p) = key.strip_prefix("xmlns:") {
                let ns = ns_of(&value);
                self.prefixes.insert(p, ns);
                if is_root && ns == Ns::V3 {
                    self.doc.root_ns = Some(value);
                }
                continue;
            }
            let count = self.doc.attrs.len() - attr_start;
            if count == MANY_ATTRIBUTES {
                many = Some(
                    self.doc.attrs[attr_start..]
                        .iter()
                        .map(|(k, _)| match k {
                            Cow::Borrowed(k) => *k,
                            Cow::Owned(_) => "",
                        })
                        .collect(),
                );
            }
            let twice = match &mut many {
                Some(set) => !set.insert(key),
                None => self.doc.attrs[attr_start..].iter().any(|(k, _)| k == key),
            };
            if twice {
                return Err(self.error(
                    at,
                    format!("the attribute {key} appears twice in <{raw_name}>"),
                ));
            }
            prefixed |= key_colon.is_some();
            if key == "ID" {
                self.doc.ids.insert(value.clone(), node_id);
            }
            self.doc.attrs.push((Cow::Borrowed(key), value));
        }
        if prefixed {
            for (key, _) in &mut self.doc.attrs[attr_start..] {
                let normal = match key
                    .split_once(':')
                    .map(|(p, local)| (self.prefixes.get(p).copied(), local))
                {
                    Some((Some(Ns::V3), local)) => Some(local.to_owned()),
                    // The usual prefixes already give the normal name: no copy.
                    Some((Some(Ns::Xsi), _)) if key.starts_with("xsi:") => None,
                    Some((Some(Ns::Sdtc), _)) if key.starts_with("sdtc:") => None,
                    Some((Some(Ns::Xsi), local)) => Some(format!("xsi:{local}")),
                    Some((Some(Ns::Sdtc), local)) => Some(format!("sdtc:{local}")),
                    _ => None,
                };
                if let Some(n) = normal {
                    *key = Cow::Owned(n);
                }
            }
        }
        let name: Cow<'a, str> = match colon.map(|c| {
            (
                self.prefixes.get(&raw_name[..c]).copied(),
                &raw_name[c + 1..],
            )
        }) {
            Some((Some(Ns::V3), local)) => {
                if is_root {
                    self.doc.root_ns = Some(Cow::Borrowed(V3_NS));
                }
                Cow::Borrowed(local)
            }
            Some((Some(Ns::Sdtc), _)) if raw_name.starts_with("sdtc:") => Cow::Borrowed(raw_name),
            Some((Some(Ns::Sdtc), local)) => Cow::Owned(format!("sdtc:{local}")),
            _ => Cow::Borrowed(raw_name),
        };
        let is_text = name == "text";
        let parent = self.parent();
        self.doc.nodes.push(Node {
            data: name,
            is_text: false,
            attrs: (attr_start as u32, self.doc.attrs.len() as u32),
            parent: parent.unwrap_or(NONE),
            first_child: NONE,
            last_child: NONE,
            next: NONE,
            pos: u32::try_from(at).unwrap_or(u32::MAX),
        });
        self.doc.link(parent, node_id);
        if !empty {
            if is_text {
                self.in_text += 1;
            }
            self.stack.push(node_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::El;

    fn err_line(src: &str) -> (usize, String) {
        match Doc::parse(src) {
            Err(CcdaError::Xml { line, message }) => (line, message),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("{src:?} should not parse"),
        }
    }

    #[test]
    fn markup_kinds_and_attribute_values() {
        let src = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ELEMENT r ANY> <!-- > -->]>\n\
            <!-- a comment with <tags> -->\n<r a = 'x &amp; &#x41;' b=\"1\t2\r\n3\" c=\"&#10;\">\
            <t>one\r\ntwo\rthree</t><t><![CDATA[<not a tag> &amp;]]></t><?pi inside?>\
            <e/><e x=\"&lt;&gt;&quot;&apos;\" /></r>";
        let doc = Doc::parse(src).expect("parses");
        let root = doc.root();
        assert_eq!(root.name(), "r");
        assert_eq!(root.attr("a"), Some("x & A"));
        assert_eq!(root.attr("b"), Some("1 2 3"));
        assert_eq!(root.attr("c"), Some("\n"));
        let texts: Vec<_> = root
            .children_named("t")
            .map(|t| t.text().map(Cow::into_owned))
            .collect();
        assert_eq!(
            texts,
            [
                Some("one\ntwo\nthree".to_owned()),
                Some("<not a tag> &amp;".to_owned())
            ]
        );
        let es: Vec<_> = root.children_named("e").collect();
        assert_eq!(es.len(), 2);
        assert_eq!(es[1].attr("x"), Some("<>\"'"));
        assert!(es[0].nodes().next().is_none());
    }

    #[test]
    fn layout_whitespace_is_dropped_but_narrative_whitespace_is_kept() {
        let doc =
            Doc::parse("<r>\n  <a>x</a>\n  <text><b>1</b> <b>2</b></text>\n <c> &lt; </c></r>")
                .expect("parses");
        let root = doc.root();
        assert!(root.nodes().all(|n| !n.is_text()));
        let text = root.child("text").expect("text");
        assert_eq!(text.nodes().count(), 3);
        assert_eq!(text.deep_text().as_deref(), Some("1 2"));
        // Whitespace before a reference is kept, a whitespace-only run before an end tag is not.
        let c = root.child("c").expect("c");
        assert_eq!(c.nodes().next().map(|n| n.raw_text()), Some(" <"));
        // quick-xml skips whitespace before markup outside narrative; before a reference, a
        // CDATA section or text it is taken back from the input.
        let doc = Doc::parse(
            "<r><c>\n  &lt;x</c><d> <![CDATA[y]]></d><e>a &amp; b <f/> </e>\n\n&#0;</r>",
        );
        assert_eq!(err_line_of(doc), 4);
        let doc = Doc::parse("<r><c>\n  &lt;x</c><d> <![CDATA[y]]></d><e>a &amp; b <f/> </e></r>")
            .expect("parses");
        let texts: Vec<String> = doc
            .root()
            .children()
            .map(|el| {
                el.nodes()
                    .filter(El::is_text)
                    .map(|t| t.raw_text())
                    .collect()
            })
            .collect();
        assert_eq!(texts, ["\n  <x", " y", "a & b "]);
    }

    fn err_line_of(result: Result<Doc<'_>, CcdaError>) -> usize {
        match result {
            Err(CcdaError::Xml { line, .. }) => line,
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("should not parse"),
        }
    }

    #[test]
    fn malformed_markup_is_an_error_at_its_line() {
        assert_eq!(err_line("<r>\n<!-- open\n</r>").0, 2);
        assert_eq!(err_line("<r>\n\n<![CDATA[x</r>").0, 3);
        assert_eq!(err_line("<r>\n<?pi</r>").0, 2);
        assert_eq!(err_line("<r>\n<a x=\"1\" x=\"2\"/></r>").0, 2);
        assert_eq!(err_line("<r>\n<a x=\"<\"/></r>").0, 2);
        let mut many = String::new();
        for i in 0..40 {
            many.push_str(" a");
            many.push_str(&i.to_string());
            many.push_str("=\"1\"");
        }
        assert!(Doc::parse(&format!("<r{many}/>")).is_ok());
        assert_eq!(err_line(&format!("<r>\n<a{many} a33=\"x\"/></r>")).0, 2);
        assert_eq!(err_line("<r>\n<a x/></r>").0, 2);
        assert_eq!(err_line("<r>\n<a x=1/></r>").0, 2);
        assert_eq!(err_line("<r>\n< a/></r>").0, 2);
        assert_eq!(err_line("<r>\n<a/ ></r>").0, 2);
        assert_eq!(err_line("<r>\n</a></r>").0, 2);
        assert_eq!(err_line("<r>\n</r></r>").0, 2);
        assert_eq!(err_line("<r>\na & b</r>").0, 2);
        assert_eq!(err_line("<r>\n&#0;</r>").0, 2);
        assert_eq!(err_line("<r>\n&#xD800;</r>").0, 2);
        assert_eq!(err_line("<r>\n<a x=\"&nbsp;\"/></r>").0, 2);
        let (line, message) = err_line("<r>\n<a>\n<b x=\"1");
        assert_eq!(
            (line, message.as_str()),
            (3, "the document ends inside <a>")
        );
        assert_eq!(err_line("<r>\n<a").1, "the document ends inside <r>");
        // A stray quote makes quick-xml read on to the end; the error stays at the tag.
        assert_eq!(err_line("<r>\n<a x=\"1/>\n<b/>\n</r>").0, 2);
        assert_eq!(err_line("<r>\n<a></a\"b>\n<c/></r>").0, 2);
        assert_eq!(err_line("<r>\n<a x=\"1\" <b/>\n</r>").0, 2);
        assert_eq!(err_line("\u{feff}<r/>").0, 1);
    }

    #[test]
    fn hostile_documents_read_in_linear_time() {
        // 100,000 namespace prefixes on the root, and a tag with 50,000 attributes: bindings
        // live in a map and duplicates are found with a set, so neither is quadratic.
        let mut src = String::from("<r xmlns=\"urn:hl7-org:v3\"");
        for i in 0..100_000 {
            src.push_str(" xmlns:p");
            src.push_str(&i.to_string());
            src.push_str("=\"urn:x\"");
        }
        src.push_str("><p99999:a");
        for i in 0..50_000 {
            src.push_str(" p1:a");
            src.push_str(&i.to_string());
            src.push_str("=\"1\"");
        }
        src.push_str("/></r>");
        let doc = Doc::parse(&src).expect("parses");
        let a = doc.root().child("p99999:a").expect("child");
        assert_eq!(a.attrs().count(), 50_000);
        src.insert_str(src.len() - "/></r>".len(), " p1:a7=\"2\"");
        assert_eq!(
            err_line(&src),
            (
                1,
                "the attribute p1:a7 appears twice in <p99999:a>".to_owned()
            )
        );
    }

    #[test]
    fn end_tags_may_end_with_whitespace_and_names_keep_prefixes() {
        let doc = Doc::parse(
            "<x:r xmlns:x=\"urn:hl7-org:v3\" xmlns:o=\"urn:other\"><o:a></o:a ><x:b/></x:r\n>",
        )
        .expect("parses");
        let root = doc.root();
        assert_eq!(root.name(), "r");
        assert_eq!(doc.root_namespace(), Some(V3_NS));
        let names: Vec<_> = root.children().map(|c| c.name()).collect();
        assert_eq!(names, ["o:a", "b"]);
        assert!(Doc::parse("<x:r xmlns:x=\"urn:hl7-org:v3\"></r>").is_err());
    }

    /// A generated document: an element tree with escaped attribute values and text,
    /// comments, CDATA sections and processing instructions.
    #[derive(Debug, Clone)]
    enum Part {
        Element(String, Vec<(String, String)>, Vec<Part>),
        Text(String),
        CData(String),
        Comment(String),
        Pi(String),
    }

    fn escaped(s: &str, attribute: bool, out: &mut String) {
        for (i, c) in s.chars().enumerate() {
            match c {
                '<' => out.push_str("&lt;"),
                '&' => out.push_str("&amp;"),
                '>' if i % 2 == 0 => out.push_str("&gt;"),
                '"' if attribute => out.push_str("&quot;"),
                'q' if i % 3 == 0 => out.push_str("&#113;"),
                'x' if i % 3 == 0 => out.push_str("&#x78;"),
                _ => out.push(c),
            }
        }
    }

    fn write(part: &Part, out: &mut String) {
        match part {
            Part::Element(name, attrs, children) => {
                out.push('<');
                out.push_str(name);
                for (k, v) in attrs {
                    out.push(' ');
                    out.push_str(k);
                    out.push_str("=\"");
                    escaped(v, true, out);
                    out.push('"');
                }
                if children.is_empty() {
                    out.push_str("/>");
                    return;
                }
                out.push('>');
                for c in children {
                    write(c, out);
                }
                out.push_str("</");
                out.push_str(name);
                out.push_str(" >");
            }
            Part::Text(t) => escaped(t, false, out),
            Part::CData(t) => {
                out.push_str("<![CDATA[");
                out.push_str(t);
                out.push_str("]]>");
            }
            Part::Comment(t) => {
                out.push_str("<!--");
                out.push_str(t);
                out.push_str("-->");
            }
            Part::Pi(t) => {
                out.push_str("<?pi ");
                out.push_str(t);
                out.push_str("?>");
            }
        }
    }

    fn part() -> impl proptest::strategy::Strategy<Value = Part> {
        use proptest::prelude::*;
        let text = "[a-zA-Z0-9 <>&\"'qxé\t\r\n]{1,12}";
        let leaf = prop_oneof![
            4 => text.prop_map(Part::Text),
            1 => "[a-z <>&]{0,8}".prop_map(Part::CData),
            1 => "[a-z <>&]{0,8}".prop_map(Part::Comment),
            1 => "[a-z <>&]{0,8}".prop_map(Part::Pi),
        ];
        let attrs = proptest::collection::btree_map("[a-z][a-z0-9]{0,5}", text, 0..4)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>());
        leaf.prop_recursive(6, 64, 6, move |inner| {
            (
                "[a-z][a-zA-Z0-9]{0,7}",
                attrs.clone(),
                proptest::collection::vec(inner, 0..6),
            )
                .prop_map(|(n, a, c)| Part::Element(n, a, c))
        })
    }

    /// The element's direct text without whitespace: layout whitespace is dropped by design
    /// outside narrative, so only the other characters are compared.
    fn squeezed<'t>(texts: impl Iterator<Item = &'t str>) -> String {
        texts
            .flat_map(str::chars)
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn same_tree(
        ours: super::super::El<'_, '_>,
        peer: roxmltree::Node<'_, '_>,
    ) -> Result<(), String> {
        if ours.name() != peer.tag_name().name() {
            return Err(format!(
                "element {} vs {}",
                ours.name(),
                peer.tag_name().name()
            ));
        }
        let a: Vec<(&str, &str)> = ours.attrs().collect();
        let b: Vec<(&str, &str)> = peer.attributes().map(|x| (x.name(), x.value())).collect();
        if a != b {
            return Err(format!("attributes of <{}>: {a:?} vs {b:?}", ours.name()));
        }
        let ta = squeezed(ours.nodes().filter(El::is_text).map(|n| n.raw_text()));
        let tb = squeezed(
            peer.children()
                .filter(roxmltree::Node::is_text)
                .filter_map(|n| n.text()),
        );
        if ta != tb {
            return Err(format!("text of <{}>: {ta:?} vs {tb:?}", ours.name()));
        }
        let ca: Vec<_> = ours.children().collect();
        let cb: Vec<_> = peer
            .children()
            .filter(roxmltree::Node::is_element)
            .collect();
        if ca.len() != cb.len() {
            return Err(format!(
                "children of <{}>: {} vs {}",
                ours.name(),
                ca.len(),
                cb.len()
            ));
        }
        ca.into_iter()
            .zip(cb)
            .try_for_each(|(x, y)| same_tree(x, y))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Well-formed documents read the same as with roxmltree, an independent parser:
        /// element names, attribute values (references, character references, line breaks
        /// normalised), text and CDATA, with comments and processing instructions skipped.
        #[test]
        fn reads_like_roxmltree(root in ("[a-z]{1,6}", part()), before in "[ \n]{0,3}") {
            let mut src = String::from("<?xml version=\"1.0\"?>");
            src.push_str(&before);
            let (name, body) = root;
            write(&Part::Element(name, Vec::new(), vec![body]), &mut src);
            let peer = roxmltree::Document::parse(&src).expect("roxmltree reads the generated document");
            let ours = Doc::parse(&src).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{src}")))?;
            if let Err(e) = same_tree(ours.root(), peer.root_element()) {
                return Err(proptest::test_runner::TestCaseError::fail(format!("{e}\n{src}")));
            }
        }
    }
}
