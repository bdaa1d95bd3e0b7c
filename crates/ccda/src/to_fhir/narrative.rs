//! The CDA narrative block (`section/text`) as FHIR narrative XHTML.
//!
//! CDA's narrative elements have XHTML counterparts: `paragraph` → `p`, `content` → `span`,
//! `list`/`item` → `ul`/`ol`/`li`, `table` and its parts keep their names, `linkHtml` → `a`,
//! `br`, `sub`, `sup` stay, `caption` of a list or paragraph → `b`. Footnotes become spans;
//! `renderMultiMedia` (a reference to a non-XML attachment) is dropped, leaving its caption.
//! `ID` → `id`, `styleCode` → `class`, `colspan`/`rowspan` are kept; nothing else is (no
//! scripts, styles or event attributes reach the output).

use quick_xml::escape::escape;

use crate::xml::{El, MAX_DEPTH};

/// The narrative of a section `text` element as a FHIR `div`; `None` when it has no text.
pub(crate) fn xhtml(text: El<'_, '_>) -> Option<String> {
    let mut body = String::new();
    let mut has_text = false;
    children(text, &mut body, &mut has_text, 0);
    if !has_text {
        return None;
    }
    Some(format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>"
    ))
}

/// A plain text as a FHIR `div`.
pub(crate) fn xhtml_text(text: &str) -> String {
    format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{}</p></div>",
        escape(text)
    )
}

fn children(el: El<'_, '_>, out: &mut String, has_text: &mut bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for n in el.nodes() {
        if n.is_text() {
            let t = n.raw_text();
            *has_text |= !t.trim().is_empty();
            out.push_str(&escape(t));
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
        out.push_str(&escape(v));
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
    fn empty_narrative_is_none() {
        let doc = Doc::parse(r#"<text xmlns="urn:hl7-org:v3">  <br/> </text>"#).expect("parses");
        assert_eq!(super::xhtml(doc.root()), None);
    }
}
