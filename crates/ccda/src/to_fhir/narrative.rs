//! The CDA narrative block (`section/text`) as FHIR narrative XHTML.
//!
//! CDA's narrative elements have XHTML counterparts: `paragraph` → `p`, `content` → `span`,
//! `list`/`item` → `ul`/`ol`/`li`, `table` and its parts keep their names, `linkHtml` → `a`,
//! `br`, `sub`, `sup` stay, `caption` of a list or paragraph → `b`. Footnotes become spans;
//! `renderMultiMedia` (a reference to a non-XML attachment) is dropped, leaving its caption.
//! `ID` → `id`, `styleCode` → `class`, `colspan`/`rowspan` are kept; nothing else is (no
//! scripts, styles or event attributes reach the output).

use crate::xml::{El, MAX_DEPTH};

/// The narrative of a section `text` element as a FHIR `div`; `None` when it has no text.
pub(crate) fn xhtml(text: El<'_, '_>) -> Option<String> {
    // The XHTML is about as long as the CDA markup it comes from: one allocation, no regrowth.
    let mut div = String::with_capacity(text.source_len().max(256));
    div.push_str(DIV);
    let mut has_text = false;
    children(text, &mut div, &mut has_text, 0);
    if !has_text {
        return None;
    }
    div.push_str("</div>");
    Some(div)
}

const DIV: &str = "<div xmlns=\"http://www.w3.org/1999/xhtml\">";

/// Whether a byte is one of the five XML special characters.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[b'\'' as usize] = true;
    t[b'"' as usize] = true;
    t
};

/// Appends `s` with the XML special characters escaped (as quick-xml's `escape` does).
fn push_escaped(out: &mut String, s: &str) {
    // A table lookup per byte rather than a chain of comparisons: most narrative runs are
    // short cell texts with nothing to escape.
    let mut done = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !SPECIAL[b as usize] {
            continue;
        }
        let entity = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'\'' => "&apos;",
            _ => "&quot;",
        };
        out.push_str(&s[done..i]);
        out.push_str(entity);
        done = i + 1;
    }
    out.push_str(&s[done..]);
}

/// A plain text as a FHIR `div`.
pub(crate) fn xhtml_text(text: &str) -> String {
    let mut div = String::with_capacity(DIV.len() + text.len() + 13);
    div.push_str(DIV);
    div.push_str("<p>");
    push_escaped(&mut div, text);
    div.push_str("</p></div>");
    div
}

fn children(el: El<'_, '_>, out: &mut String, has_text: &mut bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for n in el.nodes() {
        if n.is_text() {
            let t = n.raw_text();
            if !*has_text {
                *has_text = !t.trim().is_empty();
            }
            push_escaped(out, t);
        } else {
            element(n, out, has_text, depth + 1);
        }
    }
}

fn element(el: El<'_, '_>, out: &mut String, has_text: &mut bool, depth: usize) {
    let parent = el.parent().map_or("", |p| p.name());
    let tag = match el.name() {
        "paragraph" => "p",
        "content" | "footnote" | "footnoteRef" => "span",
        "list" => {
            if el.attr("listType") == Some("ordered") {
                "ol"
            } else {
                "ul"
            }
        }
        "item" => "li",
        "table" | "thead" | "tbody" | "tfoot" | "tr" | "th" | "td" | "col" | "colgroup" => {
            el.name()
        }
        "caption" if parent == "table" => "caption",
        "caption" => "b",
        "linkHtml" => "a",
        "br" => {
            out.push_str("<br/>");
            return;
        }
        "sub" | "sup" => el.name(),
        "renderMultiMedia" => {
            if let Some(c) = el.child("caption") {
                out.push_str("<span>");
                children(c, out, has_text, depth);
                out.push_str("</span>");
            }
            return;
        }
        // Unknown markup: keep its text.
        _ => {
            children(el, out, has_text, depth);
            return;
        }
    };
    out.push('<');
    out.push_str(tag);
    for (k, v) in el.attrs() {
        let name = match k {
            "ID" => "id",
            "styleCode" => "class",
            "colspan" | "rowspan" if matches!(tag, "td" | "th") => k,
            "href" if tag == "a" => {
                let lower = v.trim().to_ascii_lowercase();
                if !(lower.starts_with("http:")
                    || lower.starts_with("https:")
                    || lower.starts_with('#'))
                {
                    continue;
                }
                k
            }
            _ => continue,
        };
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        push_escaped(out, v);
        out.push('"');
    }
    if matches!(tag, "col") {
        out.push_str("/>");
        return;
    }
    out.push('>');
    children(el, out, has_text, depth);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use crate::xml::Doc;

    #[test]
    fn narrative_becomes_xhtml() {
        let src = r#"<text xmlns="urn:hl7-org:v3"><paragraph styleCode="Bold">A &amp; B</paragraph><list listType="ordered"><item>one<br/>two</item></list><table border="1"><tr><td ID="x1" colspan="2" onclick="evil()">c</td></tr></table><linkHtml href="javascript:alert(1)">l</linkHtml><renderMultiMedia referencedObject="m"><caption>pic</caption></renderMultiMedia></text>"#;
        let doc = Doc::parse(src).expect("parses");
        let div = super::xhtml(doc.root()).expect("has text");
        assert_eq!(
            div,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p class="Bold">A &amp; B</p><ol><li>one<br/>two</li></ol><table><tr><td id="x1" colspan="2">c</td></tr></table><a>l</a><span>pic</span></div>"#
        );
    }

    #[test]
    fn text_is_escaped_like_quick_xml() {
        let text = "a<b>&'\"é";
        let mut out = String::new();
        super::push_escaped(&mut out, text);
        assert_eq!(out, quick_xml::escape::escape(text));
        assert_eq!(
            super::xhtml_text("x & y"),
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>x &amp; y</p></div>"#
        );
    }

    #[test]
    fn empty_narrative_is_none() {
        let doc = Doc::parse(r#"<text xmlns="urn:hl7-org:v3">  <br/> </text>"#).expect("parses");
        assert_eq!(super::xhtml(doc.root()), None);
    }
}
