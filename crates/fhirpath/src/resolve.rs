//! `resolve()`: references to resources, with or without a resolver.

use std::borrow::Cow;

use serde_json::Value;

use crate::eval::{EMPTY_OBJECT, Evaluator};
use crate::item::{Item, Node};

/// `resolve()` on one item: the resolver's answer, a `#id` contained resource, a Bundle entry,
/// or a placeholder typed by the reference's `Type/id`.
pub(crate) fn resolve<'a>(ev: &Evaluator<'_, 'a>, item: &Item<'a>) -> Option<Item<'a>> {
    let reference = match item {
        Item::Node(n) => match n.value {
            Value::String(s) => s.as_str(),
            v => v.get("reference").and_then(Value::as_str)?,
        },
        Item::String(s) => s.as_str(),
        _ => return None,
    };
    if let Some(found) = ev.ctx.resolver.as_ref().and_then(|r| r(reference)) {
        return Some(Item::Node(Node::resource(found)));
    }
    if let Some(id) = reference.strip_prefix('#') {
        return ev
            .resource
            .get("contained")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
            })
            .map(|r| Item::Node(Node::resource(r)));
    }
    if let Some(found) = bundle_entry(ev.resource, reference) {
        return Some(Item::Node(Node::resource(found)));
    }
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let segments: Vec<&str> = path.split('/').collect();
    // `Type/id` or `…/Type/id/_history/v`.
    let type_at = match segments.as_slice() {
        [.., t, _, "_history", _] | [.., t, _] => Some(*t),
        _ => None,
    }?;
    if !type_at.starts_with(|c: char| c.is_ascii_uppercase())
        || !type_at.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    // The placeholder borrows the type name from the reference text itself.
    let type_name: Cow<'a, str> = match item {
        Item::Node(n) => match n.value {
            Value::String(s) => Cow::Borrowed(type_name_in(s, type_at)),
            v => v
                .get("reference")
                .and_then(Value::as_str)
                .map_or(Cow::Owned(type_at.to_owned()), |s| {
                    Cow::Borrowed(type_name_in(s, type_at))
                }),
        },
        _ => Cow::Owned(type_at.to_owned()),
    };
    Some(Item::Node(Node {
        value: &EMPTY_OBJECT,
        type_name: Some(type_name.clone()),
        type_path: Some(type_name),
        primitive_element: None,
    }))
}

/// In a Bundle, the entry a reference points to: by `fullUrl`, else by `Type/id`.
fn bundle_entry<'a>(bundle: &'a Value, reference: &str) -> Option<&'a Value> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return None;
    }
    let entries = bundle.get("entry")?.as_array()?;
    let by_url = entries
        .iter()
        .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference))
        .and_then(|e| e.get("resource"));
    by_url.or_else(|| {
        let (ty, id) = reference.split_once('/')?;
        entries.iter().filter_map(|e| e.get("resource")).find(|r| {
            r.get("resourceType").and_then(Value::as_str) == Some(ty)
                && r.get("id").and_then(Value::as_str) == Some(id)
        })
    })
}

/// The slice of `text` equal to `needle` (so it has `text`'s lifetime).
fn type_name_in<'t>(text: &'t str, needle: &str) -> &'t str {
    text.rmatch_indices(needle)
        .map(|(i, m)| &text[i..i + m.len()])
        .next()
        .unwrap_or("")
}
