//! From FHIRPath results to [`IndexValue`]s, by search parameter type.
//!
//! A node's FHIR type comes from the definitions when the evaluator knows it; otherwise the
//! JSON's shape decides (an object with `coding` is a CodeableConcept, one with `value` and a
//! ContactPoint `system` code is a ContactPoint, …), so results of functions the model cannot
//! type still index.

use fhirpath::{Item, Node};
use serde_json::{Map, Value};

use super::IndexValue;
use super::values::{date_range, normalize, number_range};
use crate::defs::{self, ParamType};

/// Appends the index values of one result item of a parameter of type `kind`.
pub(super) fn convert(kind: ParamType, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    match kind {
        ParamType::String => string(item, out),
        ParamType::Token => token(item, out),
        ParamType::Reference => reference(item, out),
        ParamType::Date => date(item, out),
        ParamType::Number => number(item, out),
        ParamType::Quantity => quantity(item, out),
        ParamType::Uri => uri(item, out),
        // Composite rows are built by the caller; special parameters are not indexed.
        ParamType::Composite | ParamType::Special => {}
    }
}

fn type_name<'n>(node: &'n Node<'_>) -> &'n str {
    node.type_name.as_deref().unwrap_or("")
}

/// The text of a primitive item (a JSON string node or a computed string).
fn text<'i>(item: &'i Item<'_>) -> Option<&'i str> {
    match item {
        Item::Node(n) => n.value.as_str(),
        Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s),
        _ => None,
    }
}

fn str_field<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn push_string(s: &str, part: Option<&'static str>, out: &mut Vec<IndexValue>) {
    if s.trim().is_empty() {
        return;
    }
    out.push(IndexValue::String {
        normalized: normalize(s),
        exact: s.to_owned(),
        part,
    });
}

/// HumanName and Address parts that a string search looks at.
pub(super) const STRING_PARTS: &[&str] = &[
    "family",
    "given",
    "prefix",
    "suffix",
    "text",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
];

fn string(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(s) = text(item) {
        push_string(s, None, out);
        return;
    }
    let Some(Value::Object(map)) = item.as_json() else {
        return;
    };
    for part in STRING_PARTS {
        match map.get(*part) {
            Some(Value::String(s)) => push_string(s, Some(*part), out),
            Some(Value::Array(items)) => {
                for s in items.iter().filter_map(Value::as_str) {
                    push_string(s, Some(*part), out);
                }
            }
            _ => {}
        }
    }
}

/// The codes of ContactPoint.system: a `system` that is one of them is a ContactPoint's.
const CONTACT_POINT_SYSTEMS: &[&str] = &["phone", "fax", "email", "pager", "url", "sms", "other"];

fn token_row(system: Option<&str>, code: Option<&str>, display: Option<&str>) -> IndexValue {
    IndexValue::Token {
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        display: display.map(normalize),
        type_system: None,
        type_code: None,
    }
}

fn token(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    let node = match item {
        Item::Node(n) => n,
        Item::Boolean(b) => return out.push(token_row(None, Some(bool_text(*b)), None)),
        Item::Integer(i) => return out.push(token_row(None, Some(&i.to_string()), None)),
        Item::String(s) if !s.is_empty() => return out.push(token_row(None, Some(s), None)),
        _ => return,
    };
    match node.value {
        Value::String(s) if !s.is_empty() => {
            out.push(token_row(code_system(node), Some(s), None));
        }
        Value::Bool(b) => out.push(token_row(None, Some(bool_text(*b)), None)),
        Value::Number(n) => out.push(token_row(None, Some(&n.to_string()), None)),
        Value::Object(map) => {
            let ty = type_name(node);
            if ty == "CodeableConcept" || map.contains_key("coding") {
                codeable_concept(map, out);
            } else if ty == "ContactPoint" || is_contact_point(map) {
                if let Some(value) = str_field(map, "value") {
                    out.push(token_row(None, Some(value), None));
                }
            } else if ty == "Identifier" || map.contains_key("value") {
                identifier(map, out);
            } else if map.contains_key("code") || map.contains_key("system") {
                coding(map, None, out);
            }
        }
        _ => {}
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// The code system of a `code` element with a required binding to a value set drawn from one
/// code system (`Patient.gender` → `http://hl7.org/fhir/administrative-gender`), so that
/// `system|code` searches match it.
fn code_system(node: &Node<'_>) -> Option<&'static str> {
    if type_name(node) != "code" {
        return None;
    }
    let path = node.type_path.as_deref()?;
    let type_name = path.split('.').next()?;
    let binding = defs::element(type_name, path)?.required_binding?;
    match defs::required_value_set(binding)?.systems {
        [system] => Some(system),
        _ => None,
    }
}

fn is_contact_point(map: &Map<String, Value>) -> bool {
    str_field(map, "system").is_some_and(|s| CONTACT_POINT_SYSTEMS.contains(&s))
        || map.contains_key("rank")
}

/// One Coding's row; `fallback_display` is the CodeableConcept's text.
fn coding(map: &Map<String, Value>, fallback_display: Option<&str>, out: &mut Vec<IndexValue>) {
    let system = str_field(map, "system");
    let code = str_field(map, "code");
    let display = str_field(map, "display").or(fallback_display);
    if system.is_some() || code.is_some() || display.is_some() {
        out.push(token_row(system, code, display));
    }
}

/// A row per coding (its display, else the concept's text), and a display-only row for the
/// concept's text when no coding row carries it.
fn codeable_concept(map: &Map<String, Value>, out: &mut Vec<IndexValue>) {
    let text = str_field(map, "text");
    let mut text_used = false;
    if let Some(Value::Array(codings)) = map.get("coding") {
        for c in codings.iter().filter_map(Value::as_object) {
            let display = str_field(c, "display");
            text_used |= display.is_none() || display == text;
            coding(c, text, out);
        }
    }
    if let Some(text) = text
        && !text_used
    {
        out.push(token_row(None, None, Some(text)));
    }
}

/// Identifier: system and value, with Identifier.type for `:of-type` (a row per type
/// coding) and its text as display.
fn identifier(map: &Map<String, Value>, out: &mut Vec<IndexValue>) {
    let system = str_field(map, "system");
    let value = str_field(map, "value");
    let ty = map.get("type").and_then(Value::as_object);
    let display = ty.and_then(|t| str_field(t, "text"));
    if system.is_none() && value.is_none() {
        return;
    }
    let row = |type_system: Option<&str>, type_code: Option<&str>| IndexValue::Token {
        system: system.map(str::to_owned),
        code: value.map(str::to_owned),
        display: display.map(normalize),
        type_system: type_system.map(str::to_owned),
        type_code: type_code.map(str::to_owned),
    };
    let codings: Vec<&Map<String, Value>> = ty
        .and_then(|t| t.get("coding"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if codings.is_empty() {
        out.push(row(None, None));
    }
    for c in codings {
        out.push(row(str_field(c, "system"), str_field(c, "code")));
    }
}

/// `Type/id` (or `Type/id/_history/v`) at the end of a reference, when `Type` is a resource
/// type.
fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.rsplit('/');
    let mut last = parts.next()?;
    let mut before = parts.next()?;
    if before == "_history" {
        last = parts.next()?;
        before = parts.next()?;
    }
    (defs::is_resource_type(before) && !last.is_empty()).then_some((before, last))
}

fn is_absolute(reference: &str) -> bool {
    reference.contains("://") || reference.starts_with("urn:")
}

fn reference_row(
    target: Option<(&str, &str)>,
    url: Option<&str>,
    identifier: Option<&Map<String, Value>>,
) -> IndexValue {
    IndexValue::Reference {
        target_type: target.map(|(t, _)| t.to_owned()),
        target_id: target.map(|(_, i)| i.to_owned()),
        url: url.map(str::to_owned),
        identifier_system: identifier
            .and_then(|i| str_field(i, "system"))
            .map(str::to_owned),
        identifier_value: identifier
            .and_then(|i| str_field(i, "value"))
            .map(str::to_owned),
    }
}

/// A reference string (Reference.reference or a canonical): local `Type/id`, or an absolute
/// URL kept as `url` (with the `Type/id` of its tail too). A canonical `url|version` gives a
/// second row with the bare url, so a search without a version finds every version.
fn reference_text(
    reference: &str,
    identifier: Option<&Map<String, Value>>,
    out: &mut Vec<IndexValue>,
) {
    if reference.starts_with('#') || reference.is_empty() {
        if identifier.is_some() {
            out.push(reference_row(None, None, identifier));
        }
        return;
    }
    if is_absolute(reference) {
        let (bare, versioned) = match reference.split_once('|') {
            Some((bare, _)) => (bare, true),
            None => (reference, false),
        };
        out.push(reference_row(
            type_and_id(bare),
            Some(reference),
            identifier,
        ));
        if versioned {
            out.push(reference_row(type_and_id(bare), Some(bare), identifier));
        }
        return;
    }
    let target = type_and_id(reference).filter(|(t, _)| {
        reference.starts_with(t) && matches!(reference.matches('/').count(), 1 | 3)
    });
    if target.is_some() || identifier.is_some() {
        out.push(reference_row(target, None, identifier));
    }
}

fn reference(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(s) = text(item) {
        reference_text(s, None, out);
        return;
    }
    let Some(Value::Object(map)) = item.as_json() else {
        return;
    };
    // A resource inside the resource (Bundle.entry[0].resource): its own type and id.
    if let (Some(ty), Some(id)) = (str_field(map, "resourceType"), str_field(map, "id")) {
        if defs::is_resource_type(ty) {
            out.push(reference_row(Some((ty, id)), None, None));
        }
        return;
    }
    let identifier = map.get("identifier").and_then(Value::as_object);
    match str_field(map, "reference") {
        Some(r) => reference_text(r, identifier, out),
        None if identifier.is_some() => out.push(reference_row(None, None, identifier)),
        None => {}
    }
}

fn date_text(s: &str, out: &mut Vec<IndexValue>) {
    if let Some((low, high)) = date_range(s) {
        out.push(IndexValue::Date { low, high });
    }
}

fn period(map: &Map<String, Value>, out: &mut Vec<IndexValue>) {
    let start = str_field(map, "start").map(date_range);
    let end = str_field(map, "end").map(date_range);
    // An unreadable end is not an open one: skip the Period rather than widen it.
    let (Some(low), Some(high)) = (
        start.map_or(Some(i64::MIN), |r| r.map(|(l, _)| l)),
        end.map_or(Some(i64::MAX), |r| r.map(|(_, h)| h)),
    ) else {
        return;
    };
    if (low, high) != (i64::MIN, i64::MAX) {
        out.push(IndexValue::Date { low, high });
    }
}

fn date(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(s) = text(item) {
        date_text(s, out);
        return;
    }
    let Some(Value::Object(map)) = item.as_json() else {
        return;
    };
    if let Some(Value::Array(events)) = map.get("event") {
        // Timing: its events, else its repeat's bounds.
        for e in events.iter().filter_map(Value::as_str) {
            date_text(e, out);
        }
        if !events.is_empty() {
            return;
        }
    }
    if let Some(bounds) = map
        .get("repeat")
        .and_then(|r| r.get("boundsPeriod"))
        .and_then(Value::as_object)
    {
        period(bounds, out);
        return;
    }
    if map.contains_key("start") || map.contains_key("end") {
        period(map, out);
    }
}

/// A JSON number's value and precision range (from its shortest text).
fn json_number(v: &Value) -> Option<(f64, f64, f64)> {
    match v {
        Value::Number(n) => number_range(&n.to_string()),
        _ => None,
    }
}

fn item_number(item: &Item<'_>) -> Option<(f64, f64, f64)> {
    match item {
        Item::Node(n) => json_number(n.value),
        Item::Integer(i) => number_range(&i.to_string()),
        Item::Decimal(d) => number_range(&d.to_string()),
        _ => None,
    }
}

/// A Range's bounds: low's lower bound to high's upper bound (`f64::MIN`/`f64::MAX` when
/// open), with the low value (else the high one) as the value.
fn range_bounds(map: &Map<String, Value>) -> Option<(f64, f64, f64, &Map<String, Value>)> {
    let low = map.get("low").and_then(Value::as_object);
    let high = map.get("high").and_then(Value::as_object);
    let low_n = low.and_then(|l| l.get("value")).and_then(json_number);
    let high_n = high.and_then(|h| h.get("value")).and_then(json_number);
    let value = low_n.or(high_n)?.0;
    let unit_from = if low_n.is_some() { low? } else { high? };
    Some((
        value,
        low_n.map_or(f64::MIN, |n| n.1),
        high_n.map_or(f64::MAX, |n| n.2),
        unit_from,
    ))
}

fn number(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some((value, low, high)) = item_number(item) {
        out.push(IndexValue::Number { value, low, high });
        return;
    }
    let Some(Value::Object(map)) = item.as_json() else {
        return;
    };
    if let Some((value, low, high)) = map.get("value").and_then(json_number) {
        out.push(IndexValue::Number { value, low, high });
    } else if let Some((value, low, high, _)) = range_bounds(map) {
        out.push(IndexValue::Number { value, low, high });
    }
}

/// ISO 4217, the system of Money.currency codes.
const CURRENCY_SYSTEM: &str = "urn:iso:std:iso:4217";

fn quantity(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Item::Quantity { value, unit } = item {
        if let Some((value, low, high)) = number_range(&value.to_string()) {
            out.push(IndexValue::Quantity {
                system: None,
                code: Some(unit.clone()),
                unit: Some(unit.clone()),
                value,
                low,
                high,
            });
        }
        return;
    }
    let Some(Value::Object(map)) = item.as_json() else {
        return;
    };
    let (value, low, high, units) = if let Some((v, l, h)) = map.get("value").and_then(json_number)
    {
        (v, l, h, map)
    } else if let Some(bounds) = range_bounds(map) {
        bounds
    } else {
        return;
    };
    let (system, code) = match str_field(units, "currency") {
        Some(currency) => (Some(CURRENCY_SYSTEM), Some(currency)),
        None => (str_field(units, "system"), str_field(units, "code")),
    };
    out.push(IndexValue::Quantity {
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        unit: str_field(units, "unit").map(str::to_owned),
        value,
        low,
        high,
    });
}

fn uri(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(s) = text(item).filter(|s| !s.is_empty()) {
        out.push(IndexValue::Uri {
            value: s.to_owned(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::extract::typed;

    fn run(kind: ParamType, value: &Value, ty: &str) -> Vec<IndexValue> {
        let mut out = Vec::new();
        convert(kind, &typed(value, ty), &mut out);
        out
    }

    #[test]
    fn contact_point_vs_identifier_by_shape() {
        let cp = json!({"system": "phone", "value": "555"});
        assert_eq!(
            run(ParamType::Token, &cp, ""),
            vec![token_row(None, Some("555"), None)]
        );
        let id = json!({"system": "urn:oid:1", "value": "9"});
        assert_eq!(
            run(ParamType::Token, &id, ""),
            vec![token_row(Some("urn:oid:1"), Some("9"), None)]
        );
    }

    #[test]
    fn references() {
        let r = |v: Value| run(ParamType::Reference, &v, "Reference");
        assert!(r(json!({"reference": "#c1"})).is_empty());
        assert!(r(json!({"reference": "Nope/1"})).is_empty());
        assert_eq!(
            r(json!({"reference": "Patient/1/_history/2"})),
            vec![reference_row(Some(("Patient", "1")), None, None)]
        );
        assert_eq!(
            r(json!({"reference": "http://x/fhir/Patient/1"})),
            vec![reference_row(
                Some(("Patient", "1")),
                Some("http://x/fhir/Patient/1"),
                None
            )]
        );
        let canon = run(ParamType::Reference, &json!("http://x/Q/a|2"), "canonical");
        assert_eq!(canon.len(), 2);
    }

    #[test]
    fn periods_and_ranges() {
        let p = run(ParamType::Date, &json!({"start": "2024"}), "Period");
        assert!(matches!(p[..], [IndexValue::Date { high: i64::MAX, .. }]));
        assert!(run(ParamType::Date, &json!({"start": "bad"}), "Period").is_empty());
        let q = run(
            ParamType::Quantity,
            &json!({"low": {"value": 1, "unit": "mg"}}),
            "Range",
        );
        assert!(
            matches!(&q[..], [IndexValue::Quantity { low, high, unit: Some(u), .. }] if *low == 0.5 && *high == f64::MAX && u == "mg")
        );
        let m = run(
            ParamType::Quantity,
            &json!({"value": 12.5, "currency": "EUR"}),
            "Money",
        );
        assert!(
            matches!(&m[..], [IndexValue::Quantity { code: Some(c), system: Some(_), .. }] if c == "EUR")
        );
    }
}
