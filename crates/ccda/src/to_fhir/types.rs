//! CDA data types to FHIR data types: CD/CE → CodeableConcept, TS → dateTime, IVL_TS →
//! Period, PQ → Quantity, II → Identifier, PN → HumanName, AD → Address, TEL → ContactPoint,
//! ANY (by `xsi:type`) → `value[x]`.

use serde_json::{Map, Value, json};

use crate::codes::oid_to_uri;
use crate::xml::El;

/// The data-absent-reason extension URL.
pub(crate) const DAR: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/// The data-absent-reason code for a CDA nullFlavor.
pub(crate) fn dar_code(null_flavor: Option<&str>) -> &'static str {
    match null_flavor {
        Some("ASKU") => "asked-unknown",
        Some("NAV") => "temp-unknown",
        Some("NASK") => "not-asked",
        Some("MSK") => "masked",
        Some("NA") => "not-applicable",
        Some("OTH") => "unsupported",
        Some("NINF") => "negative-infinity",
        Some("PINF") => "positive-infinity",
        Some("NP") => "not-performed",
        _ => "unknown",
    }
}

/// An element that only says why its value is absent (for required elements).
pub(crate) fn absent(null_flavor: Option<&str>) -> Value {
    json!({"extension": [{"url": DAR, "valueCode": dar_code(null_flavor)}]})
}

/// Options of the conversion the data types need.
#[derive(Clone, Copy)]
pub(crate) struct TimeRules<'o> {
    /// Offset used for CDA times that carry a time of day but no zone (`-05:00`); `None` keeps
    /// only their date.
    pub default_offset: Option<&'o str>,
}

/// A CDA TS (`YYYYMMDDHHMMSS.UUUU±ZZZZ`) as a FHIR dateTime, keeping its precision. FHIR needs
/// seconds and a zone once there is a time of day: minutes-only times get `:00` seconds, and a
/// time without a zone gets the configured default offset or is cut to its date.
pub(crate) fn date_time(ts: &str, rules: TimeRules<'_>) -> Option<String> {
    let ts = ts.trim();
    let (body, zone) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (body, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> { digits.get(r)?.parse().ok() };
    let year = digits.get(0..4)?;
    if digits.len() == 4 {
        return Some(year.to_owned());
    }
    let month = n(4..6)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    // Built with pushes rather than `format!`: this runs for every time in the document.
    let mut out = String::with_capacity(32);
    out.push_str(year);
    out.push('-');
    push2(&mut out, month);
    if digits.len() < 8 {
        return (digits.len() == 6).then_some(out);
    }
    let day = n(6..8)?;
    let year_n: u32 = year.parse().ok()?;
    if day == 0 || day > days_in_month(year_n, month) {
        return None;
    }
    out.push('-');
    push2(&mut out, day);
    if digits.len() == 8 {
        return Some(out);
    }
    if digits.len() < 10 || digits.len() > 14 || digits.len() % 2 == 1 {
        return Some(out);
    }
    let hour = n(8..10)?;
    let minute = n(10..12).unwrap_or(0);
    let second = n(12..14).unwrap_or(0);
    if hour > 23 || minute > 59 || second > 60 {
        return Some(out);
    }
    let date_len = out.len();
    out.push('T');
    push2(&mut out, hour);
    out.push(':');
    push2(&mut out, minute);
    out.push(':');
    push2(&mut out, second);
    if let Some(f) = fraction
        && digits.len() == 14
    {
        out.push('.');
        out.push_str(f);
    }
    let Some(z) = zone else {
        let Some(o) = rules.default_offset else {
            out.truncate(date_len);
            return Some(out);
        };
        out.push_str(o);
        return Some(out);
    };
    let sign = &z[..1];
    let zd = &z[1..];
    if zd.len() != 4 || !zd.bytes().all(|b| b.is_ascii_digit()) {
        out.truncate(date_len);
        return Some(out);
    }
    let (zh, zm) = (&zd[..2], &zd[2..]);
    let zh_n: u32 = zh.parse().ok()?;
    let zm_n: u32 = zm.parse().ok()?;
    if zh_n > 14 || zm_n > 59 || (zh_n == 14 && zm_n > 0) {
        out.truncate(date_len);
        return Some(out);
    }
    if zh_n == 0 && zm_n == 0 {
        out.push('Z');
    } else {
        out.push_str(sign);
        out.push_str(zh);
        out.push(':');
        out.push_str(zm);
    }
    Some(out)
}

/// Appends `n` (below 100) with two digits.
fn push2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + u8::try_from(n / 10 % 10).unwrap_or(0)));
    out.push(char::from(b'0' + u8::try_from(n % 10).unwrap_or(0)));
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// A FHIR date (birthDate): the date part of a TS, keeping year or year-month precision.
pub(crate) fn date(ts: &str) -> Option<String> {
    let dt = date_time(
        ts,
        TimeRules {
            default_offset: None,
        },
    )?;
    Some(dt.get(..10).unwrap_or(&dt).to_owned())
}

/// The time of a TS element (`value`), or of an IVL_TS's `low` (then `center`, then `high`)
/// when it has no `value`.
pub(crate) fn point_in_time(el: El<'_, '_>, rules: TimeRules<'_>) -> Option<String> {
    if let Some(v) = el.attr_nb("value") {
        return date_time(v, rules);
    }
    for part in ["low", "center", "high"] {
        if let Some(v) = el.child(part).and_then(|p| p.attr_nb("value")) {
            return date_time(v, rules);
        }
    }
    None
}

/// An IVL_TS as a Period (low → start, high → end), or a TS's value as the start.
pub(crate) fn period(el: El<'_, '_>, rules: TimeRules<'_>) -> Option<Value> {
    let mut p = Map::new();
    if let Some(v) = el.attr_nb("value").and_then(|v| date_time(v, rules)) {
        p.insert("start".into(), Value::String(v));
    }
    if let Some(v) = el
        .child("low")
        .and_then(|l| l.attr_nb("value"))
        .and_then(|v| date_time(v, rules))
    {
        p.insert("start".into(), Value::String(v));
    }
    if let Some(v) = el
        .child("high")
        .and_then(|h| h.attr_nb("value"))
        .and_then(|v| date_time(v, rules))
    {
        p.insert("end".into(), Value::String(v));
    }
    if let (Some(Value::String(s)), Some(Value::String(e))) = (p.get("start"), p.get("end"))
        && e < s
        && e.len() == s.len()
    {
        // A period ending before it starts is not valid FHIR (per-1); keep the start only.
        p.remove("end");
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

/// `effective[x]`-style choice: a single time as `<prefix>DateTime`, a range as
/// `<prefix>Period`; inserts into `out` and says whether it did.
pub(crate) fn put_time_choice(
    out: &mut Map<String, Value>,
    prefix: &str,
    el: Option<El<'_, '_>>,
    rules: TimeRules<'_>,
) -> bool {
    let Some(el) = el else { return false };
    if let Some(v) = el.attr_nb("value").and_then(|v| date_time(v, rules)) {
        out.insert(concat(&[prefix, "DateTime"]), Value::String(v));
        return true;
    }
    let has_high = el.child("high").and_then(|h| h.attr_nb("value")).is_some();
    if has_high {
        if let Some(p) = period(el, rules) {
            out.insert(concat(&[prefix, "Period"]), p);
            return true;
        }
    } else if let Some(v) = point_in_time(el, rules) {
        out.insert(concat(&[prefix, "DateTime"]), Value::String(v));
        return true;
    }
    false
}

/// A Coding of a CD-like element with a code (`None` without one).
pub(crate) fn coding(el: El<'_, '_>) -> Option<Value> {
    let code = el.attr_nb("code")?;
    if code.chars().any(char::is_whitespace) && code.trim() != code {
        return None;
    }
    let mut c = Map::new();
    if let Some(sys) = el.attr_nb("codeSystem") {
        c.insert("system".into(), Value::String(oid_to_uri(sys)));
    }
    if let Some(v) = el.attr_nb("codeSystemVersion") {
        c.insert("version".into(), Value::String(v.to_owned()));
    }
    c.insert("code".into(), Value::String(code.to_owned()));
    if let Some(d) = el.attr_nb("displayName") {
        c.insert("display".into(), Value::String(d.to_owned()));
    }
    Some(Value::Object(c))
}

/// The text an element's `originalText` gives: its own text, or the narrative its
/// `<reference value="#id"/>` points at.
pub(crate) fn original_text(el: El<'_, '_>) -> Option<String> {
    let ot = el.child("originalText")?;
    if let Some(r) = ot.child("reference").and_then(|r| r.attr_nb("value"))
        && let Some(target) = r.strip_prefix('#').and_then(|id| el.doc().by_id(id))
        && let Some(t) = target.deep_text()
    {
        return Some(t);
    }
    ot.deep_text()
}

/// A CD/CE as a CodeableConcept: its own coding, its translations, and the original text;
/// `None` when it has none of these.
pub(crate) fn concept(el: El<'_, '_>) -> Option<Value> {
    let mut codings = Vec::new();
    if let Some(c) = coding(el) {
        codings.push(c);
    }
    for t in el.children_named("translation") {
        if let Some(c) = coding(t)
            && !codings.contains(&c)
        {
            codings.push(c);
        }
    }
    let mut cc = Map::new();
    if !codings.is_empty() {
        cc.insert("coding".into(), Value::Array(codings));
    }
    if let Some(t) = original_text(el) {
        cc.insert("text".into(), Value::String(t));
    } else if cc.is_empty()
        && let Some(t) = el.text()
    {
        cc.insert("text".into(), Value::String(t.into_owned()));
    }
    (!cc.is_empty()).then_some(Value::Object(cc))
}

/// A required CodeableConcept: the concept, or a data-absent-reason from its nullFlavor.
pub(crate) fn concept_or_absent(el: Option<El<'_, '_>>) -> Value {
    match el {
        Some(e) => concept(e).unwrap_or_else(|| absent(e.attr("nullFlavor"))),
        None => absent(None),
    }
}

/// A decimal as JSON (FHIR decimals are JSON numbers).
pub(crate) fn decimal(s: &str) -> Option<Value> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    let f: f64 = s.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// A PQ as a Quantity (UCUM units).
pub(crate) fn quantity(el: El<'_, '_>) -> Option<Value> {
    let value = decimal(el.attr_nb("value")?)?;
    let mut q = Map::new();
    q.insert("value".into(), value);
    if let Some(unit) = el.attr_nb("unit") {
        q.insert("unit".into(), Value::String(unit.to_owned()));
        q.insert(
            "system".into(),
            Value::String("http://unitsofmeasure.org".into()),
        );
        q.insert("code".into(), Value::String(unit.to_owned()));
    }
    Some(Value::Object(q))
}

/// The parts joined into one string, allocated once (cheaper than `format!` in the converters'
/// hot paths).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// An II as an Identifier: `root` + `extension` → system + value; a bare root is itself the
/// identifier (`urn:ietf:rfc:3986` + `urn:oid:root` or `urn:uuid:root`).
pub(crate) fn identifier(el: El<'_, '_>) -> Option<Value> {
    let root = el.attr_nb("root");
    let ext = el.attr_nb("extension");
    match (root, ext) {
        (Some(root), Some(ext)) => {
            let mut id = Map::new();
            id.insert("system".into(), Value::String(oid_to_uri(root)));
            id.insert("value".into(), Value::String(ext.into()));
            Some(Value::Object(id))
        }
        (Some(root), None) => {
            let value = if root.contains('-') && root.len() == 36 {
                concat(&["urn:uuid:", &root.to_ascii_lowercase()])
            } else {
                concat(&["urn:oid:", root])
            };
            Some(json!({"system": "urn:ietf:rfc:3986", "value": value}))
        }
        (None, Some(ext)) => Some(json!({"value": ext})),
        (None, None) => None,
    }
}

/// The identifiers of an element's `id` children.
pub(crate) fn identifiers(el: El<'_, '_>) -> Vec<Value> {
    el.children_named("id").filter_map(identifier).collect()
}

/// A PN as a HumanName.
pub(crate) fn human_name(el: El<'_, '_>) -> Option<Value> {
    let mut n = Map::new();
    if let Some(u) = el.attr_nb("use").and_then(|u| {
        u.split_whitespace().find_map(|u| match u {
            "L" | "C" => Some("official"),
            "P" | "A" => Some("nickname"),
            "ASGN" => Some("usual"),
            _ => None,
        })
    }) {
        n.insert("use".into(), Value::String(u.into()));
    }
    let mut given = Vec::new();
    let mut prefix = Vec::new();
    let mut suffix = Vec::new();
    let mut family: Option<String> = None;
    for part in el.children() {
        let Some(t) = part.deep_text() else { continue };
        match part.name() {
            "family" => {
                family = Some(match family {
                    Some(f) => format!("{f} {t}"),
                    None => t,
                });
            }
            "given" => given.push(Value::String(t)),
            "prefix" => prefix.push(Value::String(t)),
            "suffix" => suffix.push(Value::String(t)),
            _ => {}
        }
    }
    let parts = family.is_some() || !given.is_empty();
    if let Some(f) = family {
        n.insert("family".into(), Value::String(f));
    }
    for (k, v) in [("given", given), ("prefix", prefix), ("suffix", suffix)] {
        if !v.is_empty() {
            n.insert(k.into(), Value::Array(v));
        }
    }
    if !parts && let Some(t) = el.text() {
        n.insert("text".into(), Value::String(t.into_owned()));
    }
    if let Some(p) = el.child("validTime").and_then(|v| {
        period(
            v,
            TimeRules {
                default_offset: None,
            },
        )
    }) {
        n.insert("period".into(), p);
    }
    (n.keys().any(|k| k != "use")).then_some(Value::Object(n))
}

/// An AD as an Address.
pub(crate) fn address(el: El<'_, '_>) -> Option<Value> {
    let mut a = Map::new();
    if let Some(u) = el.attr_nb("use").and_then(|u| {
        u.split_whitespace().find_map(|u| match u {
            "H" | "HP" | "HV" => Some("home"),
            "WP" | "DIR" | "PUB" => Some("work"),
            "TMP" => Some("temp"),
            "BAD" | "OLD" => Some("old"),
            _ => None,
        })
    }) {
        a.insert("use".into(), Value::String(u.into()));
    }
    let mut lines = Vec::new();
    for part in el.children() {
        let Some(t) = part.deep_text() else { continue };
        let key = match part.name() {
            "streetAddressLine" | "houseNumber" | "streetName" | "additionalLocator" => {
                lines.push(Value::String(t));
                continue;
            }
            "city" => "city",
            "state" => "state",
            "postalCode" => "postalCode",
            "country" => "country",
            "county" => "district",
            _ => continue,
        };
        a.insert(key.into(), Value::String(t));
    }
    if !lines.is_empty() {
        a.insert("line".into(), Value::Array(lines));
    }
    if a.keys().all(|k| k == "use")
        && let Some(t) = el.text()
    {
        a.insert("text".into(), Value::String(t.into_owned()));
    }
    if let Some(p) = el.child("useablePeriod").and_then(|v| {
        period(
            v,
            TimeRules {
                default_offset: None,
            },
        )
    }) {
        a.insert("period".into(), p);
    }
    (a.keys().any(|k| k != "use")).then_some(Value::Object(a))
}

/// A TEL as a ContactPoint (`tel:`, `fax:`, `mailto:`, `http:` schemes).
pub(crate) fn contact_point(el: El<'_, '_>) -> Option<Value> {
    let v = el.attr_nb("value")?;
    let (system, value) = if let Some(r) = v.strip_prefix("tel:") {
        ("phone", r)
    } else if let Some(r) = v.strip_prefix("fax:") {
        ("fax", r)
    } else if let Some(r) = v.strip_prefix("mailto:") {
        ("email", r)
    } else if v.starts_with("http:") || v.starts_with("https:") {
        ("url", v)
    } else {
        ("other", v)
    };
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut c = Map::new();
    c.insert("system".into(), Value::String(system.into()));
    c.insert("value".into(), Value::String(value.to_owned()));
    if let Some(u) = el.attr_nb("use").and_then(|u| {
        u.split_whitespace().find_map(|u| match u {
            "H" | "HP" | "HV" => Some("home"),
            "WP" | "DIR" | "PUB" | "AS" | "EC" => Some("work"),
            "MC" | "PG" => Some("mobile"),
            "TMP" => Some("temp"),
            "BAD" => Some("old"),
            _ => None,
        })
    }) {
        c.insert("use".into(), Value::String(u.into()));
    }
    Some(Value::Object(c))
}

/// Puts a non-empty array under `key`.
pub(crate) fn put_array(out: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        out.insert(key.into(), Value::Array(items));
    }
}

/// The `xsi:type` of an element without any namespace prefix.
pub(crate) fn xsi_type<'d>(el: El<'d, '_>) -> Option<&'d str> {
    let t = el.attr_nb("xsi:type")?;
    Some(t.rsplit(':').next().unwrap_or(t))
}

/// An observation `value` (ANY, by `xsi:type`) as `value[x]`: inserts into `out`.
pub(crate) fn put_value(
    out: &mut Map<String, Value>,
    value: El<'_, '_>,
    rules: TimeRules<'_>,
) -> bool {
    let t = xsi_type(value).unwrap_or("");
    let (key, v) = match t {
        "PQ" => ("valueQuantity", quantity(value)),
        "CD" | "CE" | "CV" | "CO" | "CS" => ("valueCodeableConcept", concept(value)),
        "ST" | "ED" | "SC" => {
            let text = value.deep_text().or_else(|| original_text(value));
            ("valueString", text.map(Value::String))
        }
        "INT" => (
            "valueInteger",
            value
                .attr_nb("value")
                .and_then(|v| v.parse::<i32>().ok())
                .map(Value::from),
        ),
        "BL" => (
            "valueBoolean",
            value
                .attr_nb("value")
                .and_then(|v| v.parse::<bool>().ok())
                .map(Value::Bool),
        ),
        "REAL" => (
            "valueQuantity",
            value
                .attr_nb("value")
                .and_then(decimal)
                .map(|v| json!({"value": v})),
        ),
        "TS" => (
            "valueDateTime",
            value
                .attr_nb("value")
                .and_then(|v| date_time(v, rules))
                .map(Value::String),
        ),
        "IVL_TS" => ("valuePeriod", period(value, rules)),
        "IVL_PQ" => {
            let mut r = Map::new();
            if let Some(q) = value.child("low").and_then(quantity) {
                r.insert("low".into(), q);
            }
            if let Some(q) = value.child("high").and_then(quantity) {
                r.insert("high".into(), q);
            }
            ("valueRange", (!r.is_empty()).then_some(Value::Object(r)))
        }
        "RTO" | "RTO_PQ_PQ" => {
            let n = value.child("numerator").and_then(quantity);
            let d = value.child("denominator").and_then(quantity);
            match (n, d) {
                (Some(n), Some(d)) => (
                    "valueRatio",
                    Some(json!({"numerator": n, "denominator": d})),
                ),
                _ => ("valueRatio", None),
            }
        }
        _ => {
            // No (known) type: a code or a text is still worth keeping.
            if value.attr_nb("code").is_some() {
                ("valueCodeableConcept", concept(value))
            } else {
                ("valueString", value.deep_text().map(Value::String))
            }
        }
    };
    match v {
        Some(v) => {
            out.insert(key.into(), v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: TimeRules<'static> = TimeRules {
        default_offset: None,
    };

    #[test]
    fn timestamps_keep_precision_and_zone() {
        assert_eq!(date_time("2013", KEEP).as_deref(), Some("2013"));
        assert_eq!(date_time("201301", KEEP).as_deref(), Some("2013-01"));
        assert_eq!(date_time("20130130", KEEP).as_deref(), Some("2013-01-30"));
        assert_eq!(
            date_time("20130130080051-0500", KEEP).as_deref(),
            Some("2013-01-30T08:00:51-05:00")
        );
        assert_eq!(
            date_time("201301300800+0000", KEEP).as_deref(),
            Some("2013-01-30T08:00:00Z")
        );
        assert_eq!(
            date_time("20130130080051.123+0130", KEEP).as_deref(),
            Some("2013-01-30T08:00:51.123+01:30")
        );
        // No zone: the date only, or the configured offset.
        assert_eq!(
            date_time("20130130080051", KEEP).as_deref(),
            Some("2013-01-30")
        );
        assert_eq!(
            date_time(
                "20130130080051",
                TimeRules {
                    default_offset: Some("-05:00")
                }
            )
            .as_deref(),
            Some("2013-01-30T08:00:51-05:00")
        );
        // A zone or time FHIR cannot take keeps the date only.
        for ts in [
            "20130130080051-05",
            "20130130080051-1500",
            "201301302400-0500",
            "201301300",
        ] {
            assert_eq!(date_time(ts, KEEP).as_deref(), Some("2013-01-30"), "{ts}");
        }
        assert_eq!(
            date_time("2013013008-0000", KEEP).as_deref(),
            Some("2013-01-30T08:00:00Z")
        );
        assert_eq!(
            date_time("201301300800.5-0500", KEEP).as_deref(),
            Some("2013-01-30T08:00:00-05:00")
        );
        assert_eq!(date_time("20130230", KEEP), None);
        assert_eq!(date_time("2013x", KEEP), None);
        assert_eq!(date_time("", KEEP), None);
        assert_eq!(date("19621022").as_deref(), Some("1962-10-22"));
        assert_eq!(date("196210221200-0500").as_deref(), Some("1962-10-22"));
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("120"), Some(Value::from(120)));
        assert_eq!(decimal("1.5"), Some(json!(1.5)));
        assert_eq!(decimal("abc"), None);
        assert_eq!(decimal("."), None);
    }
}
