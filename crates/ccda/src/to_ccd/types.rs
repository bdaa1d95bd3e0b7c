//! FHIR data types as CDA data types: dateTime → TS, Period → IVL_TS, CodeableConcept → CD,
//! Quantity → PQ, Identifier → II, HumanName → PN, Address → AD, ContactPoint → TEL.

use serde_json::Value;

use super::{Res, Xml};
use crate::codes::{system_name, uri_to_oid};
use crate::ids::uuid_from;

/// A string field.
pub(crate) fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A FHIR date/dateTime/instant as a CDA TS, keeping its precision (`2013-01-30T08:00:51-05:00`
/// → `20130130080051-0500`); `None` when it is not one.
pub(crate) fn ts(dt: &str) -> Option<String> {
    let dt = dt.trim();
    let (date, time) = match dt.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (dt, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts[0].len() != 4
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if parts.iter().skip(1).any(|p| p.len() != 2) {
        return None;
    }
    let mut out: String = parts.concat();
    let Some(time) = time else { return Some(out) };
    if parts.len() != 3 {
        return None;
    }
    let (clock, zone) = if let Some(c) = time.strip_suffix('Z') {
        (c, "+0000".to_owned())
    } else if let Some(i) = time.rfind(['+', '-']) {
        (&time[..i], time[i..].replace(':', ""))
    } else {
        (time, String::new())
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let hms: String = hms.split(':').collect();
    if hms.len() < 4 || !hms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    out.push_str(&hms);
    if let Some(f) = frac.filter(|f| f.bytes().all(|b| b.is_ascii_digit()) && !f.is_empty()) {
        out.push('.');
        out.push_str(f);
    }
    out.push_str(&zone);
    Some(out)
}

/// `<tag value="TS"/>` or `<tag nullFlavor="UNK"/>`.
pub(crate) fn ts_el(x: &mut Xml, tag: &str, dt: Option<&str>) -> Res {
    match dt.and_then(ts) {
        Some(v) => x.empty(tag, &[("value", &v)]),
        None => x.empty(tag, &[("nullFlavor", "UNK")]),
    }
}

/// An IVL_TS `effectiveTime` from a dateTime or a Period (a missing time is `low` UNK).
pub(crate) fn ivl_ts(
    x: &mut Xml,
    tag: &str,
    dt: Option<&str>,
    period: Option<&Value>,
    typed: bool,
) -> Res {
    let attrs: &[(&str, &str)] = if typed {
        &[("xsi:type", "IVL_TS")]
    } else {
        &[]
    };
    x.start(tag, attrs)?;
    match (dt, period) {
        (Some(d), _) => ts_el(x, "low", Some(d))?,
        (None, Some(p)) => {
            ts_el(x, "low", str_of(p, "start"))?;
            if let Some(end) = str_of(p, "end") {
                ts_el(x, "high", Some(end))?;
            }
        }
        (None, None) => x.empty("low", &[("nullFlavor", "UNK")])?,
    }
    x.end(tag)
}

/// The time of a `<prefix>DateTime` / `<prefix>Period` choice.
pub(crate) fn time_choice<'v>(r: &'v Value, prefix: &str) -> (Option<&'v str>, Option<&'v Value>) {
    (
        str_of(r, &format!("{prefix}DateTime")),
        r.get(format!("{prefix}Period")),
    )
}

/// Identifiers as II elements named `tag`; none gives `<tag nullFlavor="UNK"/>`.
pub(crate) fn identifiers(x: &mut Xml, r: &Value, tag: &str) -> Res {
    let mut wrote = false;
    for i in r
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(value) = str_of(i, "value") else {
            continue;
        };
        let system = str_of(i, "system");
        let attrs: Vec<(&str, String)> = match system {
            Some("urn:ietf:rfc:3986") => match value
                .strip_prefix("urn:oid:")
                .or_else(|| value.strip_prefix("urn:uuid:"))
            {
                Some(root) => vec![("root", root.to_owned())],
                None => vec![("root", uuid_from(&["uri", value]))],
            },
            Some(s) => {
                let root = uri_to_oid(s).unwrap_or_else(|| uuid_from(&["system", s]));
                vec![("root", root), ("extension", value.to_owned())]
            }
            None => vec![
                ("nullFlavor", "UNK".to_owned()),
                ("extension", value.to_owned()),
            ],
        };
        let a: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        x.empty(tag, &a)?;
        wrote = true;
    }
    if !wrote {
        // A stable id from the resource's own id, so the entry can be referenced.
        match (str_of(r, "resourceType"), str_of(r, "id")) {
            (Some(t), Some(id)) => x.empty(tag, &[("root", &uuid_from(&["fhir", t, id]))])?,
            _ => x.empty(tag, &[("nullFlavor", "UNK")])?,
        }
    }
    Ok(())
}

/// A HumanName as PN.
pub(crate) fn name(x: &mut Xml, n: &Value) -> Res {
    let u = match str_of(n, "use") {
        Some("official" | "usual") => Some("L"),
        Some("nickname") => Some("P"),
        _ => None,
    };
    let attrs: Vec<(&str, &str)> = u.map(|u| vec![("use", u)]).unwrap_or_default();
    let family = str_of(n, "family");
    let given: Vec<&str> = n
        .get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if family.is_none() && given.is_empty() {
        return match str_of(n, "text") {
            Some(t) => x.text_el("name", &attrs, t),
            None => x.empty("name", &[("nullFlavor", "UNK")]),
        };
    }
    x.start("name", &attrs)?;
    for p in n
        .get("prefix")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        x.text_el("prefix", &[], p)?;
    }
    for g in given {
        x.text_el("given", &[], g)?;
    }
    if let Some(f) = family {
        x.text_el("family", &[], f)?;
    }
    for s in n
        .get("suffix")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        x.text_el("suffix", &[], s)?;
    }
    x.end("name")
}

/// An Address as AD.
pub(crate) fn address(x: &mut Xml, a: &Value) -> Res {
    let u = match str_of(a, "use") {
        Some("home") => Some("H"),
        Some("work") => Some("WP"),
        Some("temp") => Some("TMP"),
        Some("old") => Some("BAD"),
        _ => None,
    };
    let attrs: Vec<(&str, &str)> = u.map(|u| vec![("use", u)]).unwrap_or_default();
    x.start("addr", &attrs)?;
    for l in a
        .get("line")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        x.text_el("streetAddressLine", &[], l)?;
    }
    for (k, tag) in [
        ("city", "city"),
        ("district", "county"),
        ("state", "state"),
        ("postalCode", "postalCode"),
        ("country", "country"),
    ] {
        if let Some(v) = str_of(a, k) {
            x.text_el(tag, &[], v)?;
        }
    }
    if a.get("line").is_none()
        && a.get("city").is_none()
        && let Some(t) = str_of(a, "text")
    {
        x.text(t)?;
    }
    x.end("addr")
}

/// A ContactPoint as TEL.
pub(crate) fn telecom(x: &mut Xml, t: &Value) -> Res {
    let Some(v) = str_of(t, "value") else {
        return Ok(());
    };
    let value = match str_of(t, "system") {
        Some("phone" | "sms" | "pager") => format!("tel:{v}"),
        Some("fax") => format!("fax:{v}"),
        Some("email") => format!("mailto:{v}"),
        _ => v.to_owned(),
    };
    let u = match str_of(t, "use") {
        Some("home") => Some("HP"),
        Some("work") => Some("WP"),
        Some("mobile") => Some("MC"),
        Some("temp") => Some("TMP"),
        Some("old") => Some("BAD"),
        _ => None,
    };
    let mut attrs = vec![("value", value.as_str())];
    if let Some(u) = u {
        attrs.push(("use", u));
    }
    x.empty("telecom", &attrs)
}

/// How a CD is written.
#[derive(Clone, Copy)]
pub(crate) enum CdMode<'r> {
    /// A plain coded element (`code`, `routeCode`…).
    Plain,
    /// An observation `value` (`xsi:type="CD"`).
    Value,
    /// A plain element whose original text points at the narrative (`#id`).
    Ref(&'r str),
    /// A `value` whose original text points at the narrative.
    ValueRef(&'r str),
}

/// The text of a CodeableConcept for people: its text, a display, or a code.
pub(crate) fn concept_text(cc: &Value) -> String {
    if let Some(t) = str_of(cc, "text") {
        return t.to_owned();
    }
    let codings = cc.get("coding").and_then(Value::as_array);
    codings
        .into_iter()
        .flatten()
        .find_map(|c| str_of(c, "display"))
        .or_else(|| {
            codings
                .into_iter()
                .flatten()
                .find_map(|c| str_of(c, "code"))
        })
        .unwrap_or("")
        .to_owned()
}

/// A CodeableConcept as a CD named `tag`: the first coding whose system has an OID is the
/// code, the others translations; codings of systems without an OID cannot be written in
/// CDA (they are kept only as the original text).
pub(crate) fn cd(
    x: &mut Xml,
    tag: &str,
    cc: &Value,
    extra: &[(&str, &str)],
    mode: CdMode<'_>,
) -> Res {
    let codings: Vec<(String, &Value)> = cc
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| str_of(c, "code").is_some())
        .filter_map(|c| str_of(c, "system").and_then(uri_to_oid).map(|o| (o, c)))
        .collect();
    let mut attrs: Vec<(&str, &str)> = Vec::new();
    if matches!(mode, CdMode::Value | CdMode::ValueRef(_)) {
        attrs.push(("xsi:type", "CD"));
    }
    attrs.extend_from_slice(extra);
    let first = codings.first();
    if let Some((oid, c)) = first {
        attrs.push(("code", str_of(c, "code").unwrap_or("")));
        attrs.push(("codeSystem", oid));
        if let Some(n) = str_of(c, "system").and_then(system_name) {
            attrs.push(("codeSystemName", n));
        }
        if let Some(d) = str_of(c, "display") {
            attrs.push(("displayName", d));
        }
    } else {
        attrs.push((
            "nullFlavor",
            if str_of(cc, "text").is_some() || cc.get("coding").is_some() {
                "OTH"
            } else {
                "UNK"
            },
        ));
    }
    let text = str_of(cc, "text");
    let reference = match mode {
        CdMode::Ref(r) | CdMode::ValueRef(r) => Some(r),
        _ => None,
    };
    if text.is_none() && reference.is_none() && codings.len() <= 1 {
        return x.empty(tag, &attrs);
    }
    x.start(tag, &attrs)?;
    if let Some(r) = reference {
        x.start("originalText", &[])?;
        x.empty("reference", &[("value", &format!("#{r}"))])?;
        x.end("originalText")?;
    } else if let Some(t) = text {
        x.text_el("originalText", &[], t)?;
    }
    for (oid, c) in codings.iter().skip(1) {
        let mut a = vec![
            ("code", str_of(c, "code").unwrap_or("")),
            ("codeSystem", oid.as_str()),
        ];
        if let Some(n) = str_of(c, "system").and_then(system_name) {
            a.push(("codeSystemName", n));
        }
        if let Some(d) = str_of(c, "display") {
            a.push(("displayName", d));
        }
        x.empty("translation", &a)?;
    }
    x.end(tag)
}

/// A Quantity as PQ (`xsi:type` given by `typed`); UCUM codes are the unit.
pub(crate) fn pq(x: &mut Xml, tag: &str, q: &Value, typed: bool) -> Res {
    let value = q
        .get("value")
        .filter(|v| v.is_number())
        .map(Value::to_string);
    let unit = if str_of(q, "system") == Some("http://unitsofmeasure.org") {
        str_of(q, "code")
    } else {
        None
    }
    .or_else(|| str_of(q, "unit"));
    let mut attrs: Vec<(&str, &str)> = Vec::new();
    if typed {
        attrs.push(("xsi:type", "PQ"));
    }
    match &value {
        Some(v) => attrs.push(("value", v)),
        None => attrs.push(("nullFlavor", "UNK")),
    }
    if let (Some(u), Some(_)) = (unit, &value) {
        attrs.push(("unit", u));
    }
    x.empty(tag, &attrs)
}

#[cfg(test)]
mod tests {
    use super::ts;

    #[test]
    fn fhir_times_become_ts() {
        assert_eq!(ts("2013").as_deref(), Some("2013"));
        assert_eq!(ts("2013-01").as_deref(), Some("201301"));
        assert_eq!(ts("2013-01-30").as_deref(), Some("20130130"));
        assert_eq!(
            ts("2013-01-30T08:00:51-05:00").as_deref(),
            Some("20130130080051-0500")
        );
        assert_eq!(
            ts("2013-01-30T08:00:51.25Z").as_deref(),
            Some("20130130080051.25+0000")
        );
        assert_eq!(ts("not a date"), None);
        assert_eq!(ts("2013-1-30"), None);
    }
}
