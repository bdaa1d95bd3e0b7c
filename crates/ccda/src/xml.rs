//! A small read-only element tree over the input text, built in one pass from quick-xml's
//! events by [`read`].
//!
//! Names, attribute values and text borrow from the input (everything without an entity
//! reference, a prefixed name to normalise or a line break to rewrite), so building the tree
//! costs one `Vec` push per element, attribute and text run. The converters walk it freely (a C-CDA entry
//! is read in several places: narrative references, nested entry relationships), which a pure
//! event stream would make far harder for no measurable gain (see the benchmark in
//! `docs/BENCHMARKS.md`).
//!
//! Namespaces are resolved just enough for C-CDA: elements and attributes of the CDA namespace
//! (`urn:hl7-org:v3`) carry their local name whatever prefix the document uses, those of the
//! SDTC extension namespace are named `sdtc:local`, and attributes of XML Schema instance are
//! named `xsi:local`.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use crate::CcdaError;

mod read;

/// The CDA namespace.
pub(crate) const V3_NS: &str = "urn:hl7-org:v3";
const SDTC_NS: &str = "urn:hl7-org:sdtc";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Deepest element nesting accepted; real C-CDA documents stay far below it, and it bounds the
/// recursion of the converters.
pub(crate) const MAX_DEPTH: usize = 200;

/// Index of a node in [`Doc::nodes`].
pub(crate) type NodeId = u32;
const NONE: u32 = u32::MAX;

/// One element or text run.
struct Node<'a> {
    /// The element's normalised name, or the text of a text run (entity references resolved).
    data: Cow<'a, str>,
    is_text: bool,
    /// The element's attributes: a range of [`Doc::attrs`].
    attrs: (u32, u32),
    parent: u32,
    first_child: u32,
    last_child: u32,
    next: u32,
    /// Byte offset of the start tag in the input.
    pos: u32,
}

/// A parsed document.
pub(crate) struct Doc<'a> {
    src: &'a str,
    nodes: Vec<Node<'a>>,
    attrs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Elements by their `ID` attribute (narrative targets of `<reference value="#id"/>`).
    ids: HashMap<Cow<'a, str>, NodeId>,
    /// The namespace of the root element, if it declared one.
    root_ns: Option<Cow<'a, str>>,
    /// The last line asked for (byte offset, line): unmapped content is reported in document
    /// order, so counting line feeds from there reads the input about once.
    last_line: Cell<(usize, usize)>,
}

/// Which namespace a prefix is bound to, as far as this module cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ns {
    V3,
    Sdtc,
    Xsi,
    Other,
}

fn ns_of(uri: &str) -> Ns {
    match uri {
        V3_NS => Ns::V3,
        SDTC_NS => Ns::Sdtc,
        XSI_NS => Ns::Xsi,
        _ => Ns::Other,
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, pos: usize) -> usize {
    let end = pos.min(src.len());
    1 + memchr::memchr_iter(b'\n', &src.as_bytes()[..end]).count()
}

impl<'a> Doc<'a> {
    fn link(&mut self, parent: Option<NodeId>, id: NodeId) {
        if let Some(p) = parent {
            let last = self.nodes[p as usize].last_child;
            if last == NONE {
                self.nodes[p as usize].first_child = id;
            } else {
                self.nodes[last as usize].next = id;
            }
            self.nodes[p as usize].last_child = id;
        }
    }

    /// Adds a text run to the open element `parent` (merged with a text run just before it).
    fn text(
        &mut self,
        parent: Option<NodeId>,
        text: Cow<'a, str>,
        pos: usize,
    ) -> Result<(), CcdaError> {
        let Some(parent) = parent else {
            if text.trim().is_empty() {
                return Ok(());
            }
            return Err(CcdaError::Xml {
                line: line_of(self.src, pos),
                message: "text outside the root element".into(),
            });
        };
        let last = self.nodes[parent as usize].last_child;
        if last != NONE && self.nodes[last as usize].is_text {
            // Adjacent runs (text around an entity reference) become one.
            let node = &mut self.nodes[last as usize];
            node.data.to_mut().push_str(&text);
            return Ok(());
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            data: text,
            is_text: true,
            attrs: (0, 0),
            parent,
            first_child: NONE,
            last_child: NONE,
            next: NONE,
            pos: u32::try_from(pos).unwrap_or(u32::MAX),
        });
        self.link(Some(parent), id);
        Ok(())
    }

    /// The root element.
    pub(crate) fn root(&self) -> El<'_, 'a> {
        El { doc: self, id: 0 }
    }

    /// The namespace the root element declared (default or through its own prefix).
    pub(crate) fn root_namespace(&self) -> Option<&str> {
        self.root_ns.as_deref()
    }

    /// The element whose `ID` attribute is `id`.
    pub(crate) fn by_id(&self, id: &str) -> Option<El<'_, 'a>> {
        self.ids.get(id).map(|&id| El { doc: self, id })
    }
}

/// A handle on one node of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct El<'d, 'a> {
    doc: &'d Doc<'a>,
    id: NodeId,
}

impl<'d, 'a> El<'d, 'a> {
    fn node(&self) -> &'d Node<'a> {
        &self.doc.nodes[self.id as usize]
    }

    /// The document this node belongs to.
    pub(crate) fn doc(&self) -> &'d Doc<'a> {
        self.doc
    }

    /// A number unique to this node within its document (document order).
    pub(crate) fn ordinal(&self) -> u32 {
        self.id
    }

    /// The element's name (local name for CDA elements); empty for text.
    pub(crate) fn name(&self) -> &'d str {
        let n = self.node();
        if n.is_text { "" } else { &n.data }
    }

    /// Whether this node is a text run.
    pub(crate) fn is_text(&self) -> bool {
        self.node().is_text
    }

    /// The text of a text run.
    pub(crate) fn raw_text(&self) -> &'d str {
        let n = self.node();
        if n.is_text { &n.data } else { "" }
    }

    /// An attribute's value.
    pub(crate) fn attr(&self, name: &str) -> Option<&'d str> {
        let (a, b) = self.node().attrs;
        self.doc.attrs[a as usize..b as usize]
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// An attribute's value, trimmed, when present and not blank.
    pub(crate) fn attr_nb(&self, name: &str) -> Option<&'d str> {
        self.attr(name).map(str::trim).filter(|s| !s.is_empty())
    }

    /// All attributes in document order.
    pub(crate) fn attrs(self) -> impl Iterator<Item = (&'d str, &'d str)> + 'd {
        let (a, b) = self.node().attrs;
        self.doc.attrs[a as usize..b as usize]
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The parent element.
    pub(crate) fn parent(&self) -> Option<El<'d, 'a>> {
        let p = self.node().parent;
        (p != NONE).then_some(El {
            doc: self.doc,
            id: p,
        })
    }

    /// All child nodes (elements and text) in order.
    pub(crate) fn nodes(self) -> Children<'d, 'a> {
        Children {
            doc: self.doc,
            next: self.node().first_child,
        }
    }

    /// Child elements in order.
    pub(crate) fn children(self) -> impl Iterator<Item = El<'d, 'a>> + 'd {
        self.nodes().filter(|n| !n.is_text())
    }

    /// Child elements with this name.
    pub(crate) fn children_named(self, name: &'d str) -> impl Iterator<Item = El<'d, 'a>> + 'd {
        self.children().filter(move |c| c.name() == name)
    }

    /// The first child element with this name.
    pub(crate) fn child(&self, name: &str) -> Option<El<'d, 'a>> {
        self.children().find(|c| c.name() == name)
    }

    /// Follows a path of child names (`"patientRole/patient/name"`), first match at each step.
    pub(crate) fn at(&self, path: &str) -> Option<El<'d, 'a>> {
        let mut cur = *self;
        for step in path.split('/') {
            cur = cur.child(step)?;
        }
        Some(cur)
    }

    /// The element's own text (its text children joined), trimmed; `None` when blank.
    pub(crate) fn text(&self) -> Option<Cow<'d, str>> {
        let mut texts = self.nodes().filter(El::is_text);
        let first = texts.next()?;
        let joined: Cow<'d, str> = match texts.next() {
            None => Cow::Borrowed(first.raw_text()),
            Some(second) => {
                let mut s = String::from(first.raw_text());
                s.push_str(second.raw_text());
                for t in texts {
                    s.push_str(t.raw_text());
                }
                Cow::Owned(s)
            }
        };
        let trimmed = joined.trim();
        if trimmed.is_empty() {
            return None;
        }
        Some(match joined {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        })
    }

    /// All text below this element, whitespace runs collapsed to one space; `None` when blank.
    pub(crate) fn deep_text(&self) -> Option<String> {
        // Names, titles and narrative snippets are short: one allocation for most of them
        // instead of growing from empty.
        let mut out = String::with_capacity(64);
        let mut space = false;
        self.collect_text(&mut out, &mut space, 0);
        (!out.is_empty()).then_some(out)
    }

    fn collect_text(&self, out: &mut String, space: &mut bool, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for n in self.nodes() {
            if n.is_text() {
                let t = n.raw_text();
                let mut first = true;
                for word in t.split_whitespace() {
                    let gap = !first || *space || t.starts_with(char::is_whitespace);
                    if gap && !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                    first = false;
                }
                *space = if first {
                    *space || !t.is_empty()
                } else {
                    t.ends_with(char::is_whitespace)
                };
            } else {
                // Elements separate words (narrative blocks, table cells).
                *space = true;
                n.collect_text(out, space, depth + 1);
                *space = true;
            }
        }
    }

    /// The templateId roots of this element.
    pub(crate) fn templates(self) -> impl Iterator<Item = &'d str> + 'd {
        self.children_named("templateId")
            .filter_map(|t| t.attr_nb("root"))
    }

    /// Whether this element declares the template `root` (any version).
    pub(crate) fn has_template(&self, root: &str) -> bool {
        self.templates().any(|t| t == root)
    }

    /// How many bytes of the input the element spans, when a following sibling marks its end
    /// (a capacity hint for output made from it); 0 otherwise.
    pub(crate) fn source_len(&self) -> usize {
        let n = self.node();
        if n.next == NONE {
            return 0;
        }
        (self.doc.nodes[n.next as usize].pos as usize).saturating_sub(n.pos as usize)
    }

    /// The 1-based line of the element's start tag.
    pub(crate) fn line(&self) -> usize {
        let src = self.doc.src.as_bytes();
        let pos = (self.node().pos as usize).min(src.len());
        let (from, line) = match self.doc.last_line.get() {
            (at, line) if at <= pos => (at, line),
            _ => (0, 1),
        };
        let line = line + memchr::memchr_iter(b'\n', &src[from..pos]).count();
        self.doc.last_line.set((pos, line));
        line
    }

    /// The element's path from the root, with the position of repeated names
    /// (`/ClinicalDocument/component/structuredBody/component[3]/section`).
    pub(crate) fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut cur = Some(*self);
        while let Some(el) = cur {
            let parent = el.parent();
            // The 1-based position among same-named siblings, when there are several.
            let position = parent.and_then(|p| {
                let mut before = 0usize;
                let mut after = false;
                for c in p.children_named(el.name()) {
                    if c.id < el.id {
                        before += 1;
                    } else if c.id > el.id {
                        after = true;
                        break;
                    }
                }
                (before > 0 || after).then_some(before + 1)
            });
            steps.push((el.name(), position));
            cur = parent;
        }
        let mut out = String::with_capacity(steps.len() * 16);
        for (name, position) in steps.iter().rev() {
            out.push('/');
            out.push_str(name);
            if let Some(n) = position {
                out.push('[');
                out.push_str(&n.to_string());
                out.push(']');
            }
        }
        out
    }
}

/// Iterator over a node's children.
pub(crate) struct Children<'d, 'a> {
    doc: &'d Doc<'a>,
    next: u32,
}

impl<'d, 'a> Iterator for Children<'d, 'a> {
    type Item = El<'d, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NONE {
            return None;
        }
        let el = El {
            doc: self.doc,
            id: self.next,
        };
        self.next = self.doc.nodes[self.next as usize].next;
        Some(el)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_namespaces_and_entities() {
        let src = r#"<?xml version="1.0"?>
<v3:ClinicalDocument xmlns:v3="urn:hl7-org:v3" xmlns:s="urn:hl7-org:sdtc" xmlns:x="http://www.w3.org/2001/XMLSchema-instance">
  <v3:title>A &amp; B &#x41;</v3:title>
  <v3:value x:type="PQ" value="1"/>
  <s:raceCode code="2106-3"/>
  <v3:text ID="t1">one <v3:content>two</v3:content></v3:text>
</v3:ClinicalDocument>"#;
        let doc = Doc::parse(src).expect("parses");
        let root = doc.root();
        assert_eq!(root.name(), "ClinicalDocument");
        assert_eq!(doc.root_namespace(), Some(V3_NS));
        assert_eq!(
            root.child("title").and_then(|t| t.text()).as_deref(),
            Some("A & B A")
        );
        assert_eq!(
            root.child("value").and_then(|v| v.attr("xsi:type")),
            Some("PQ")
        );
        assert!(root.child("sdtc:raceCode").is_some());
        let text = doc.by_id("t1").expect("ID index");
        assert_eq!(text.deep_text().as_deref(), Some("one two"));
        assert_eq!(text.line(), 6);
        assert_eq!(text.path(), "/ClinicalDocument/text");
    }

    #[test]
    fn reports_lines_of_errors() {
        let err = Doc::parse("<a>\n<b>\n</a>").err().expect("mismatched end");
        match err {
            CcdaError::Xml { line, .. } => assert_eq!(line, 3),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            Doc::parse("<a>&foo;</a>"),
            Err(CcdaError::Xml { .. })
        ));
        assert!(matches!(Doc::parse("<a><b>"), Err(CcdaError::Xml { .. })));
        assert!(matches!(Doc::parse("<a/><b/>"), Err(CcdaError::Xml { .. })));
        assert!(matches!(Doc::parse(""), Err(CcdaError::Xml { .. })));
        let deep = "<a>".repeat(MAX_DEPTH + 5);
        assert!(matches!(Doc::parse(&deep), Err(CcdaError::Xml { .. })));
    }
}
