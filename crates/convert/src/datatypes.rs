//! HL7 v2 data types to FHIR data types, following the IG's data type maps (`CX[Identifier]`,
//! `XPN[HumanName]`, `XAD[Address]`, `XTN[ContactPoint]`, `CWE[CodeableConcept]`,
//! `ED[Attachment]`, `RP[Attachment]`, `SN[Quantity]`, …).

use crate::tree::{Map, Text, Value};
use base64::Engine as _;
use hl7v2::Element;

use crate::ctx::{Ctx, Parts, Seg, first_text, part_text, put, text};
use crate::tables::map_code;
use crate::time::Dtm;

/// [`coding_system_value`] as a `String`.
#[cfg(test)]
fn coding_system(name: &str) -> String {
    match coding_system_value(name) {
        Value::Str(known) => known.to_owned(),
        Value::String(s) => s.into_string(),
        _ => String::new(),
    }
}

/// The FHIR system URI of an HL7 table 0396 coding system name (`LN`, `SCT`, `HL70001`, …).
/// Names with no known URI are kept as they are (whitespace percent-encoded), as the IG's
/// `CWE.3` row says the system is only indirectly mapped. A known URI is borrowed, not copied.
pub fn coding_system_value(name: &str) -> Value {
    // the names are short: upper-cased on the stack, not in a new String
    let mut buf = [0u8; 16];
    let upper = match buf.get_mut(..name.len()) {
        Some(b) => {
            b.copy_from_slice(name.as_bytes());
            b.make_ascii_uppercase();
            std::str::from_utf8(b).unwrap_or_default()
        }
        None => "",
    };
    let known = match upper {
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNM" | "SNM3" | "SNOMED" | "SNOMEDCT" | "SNOMED-CT" => "http://snomed.info/sct",
        "I10" | "ICD10" | "ICD-10" => "http://hl7.org/fhir/sid/icd-10",
        "I10C" | "ICD10CM" | "ICD-10-CM" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I10P" | "ICD10PCS" => "http://www.cms.gov/Medicare/Coding/ICD10",
        "I9" | "I9C" | "I9CM" | "I9M" | "ICD9" | "ICD9CM" | "ICD-9-CM" => {
            "http://hl7.org/fhir/sid/icd-9-cm"
        }
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "MVX" => "http://terminology.hl7.org/CodeSystem/MVX",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "UCUM" => "http://unitsofmeasure.org",
        "C4" | "C5" | "CPT" | "CPT4" | "CPT-4" => "http://www.ama-assn.org/go/cpt",
        "HCPCS" | "HCPC" => "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "NCIT" => "http://ncimeta.nci.nih.gov",
        "DCM" => "http://dicom.nema.org/resources/ontology/DCM",
        "NUCC" => "http://nucc.org/provider-taxonomy",
        "NPI" => "http://hl7.org/fhir/sid/us-npi",
        "CDCREC" => "urn:oid:2.16.840.1.113883.6.238",
        "CDCPHINVS" => "urn:oid:2.16.840.1.114222.4.5.274",
        "ISO3166" | "ISO3166_1" => "urn:iso:std:iso:3166",
        "ISO639" | "ISO+" => "urn:ietf:bcp:47",
        "ICDO" | "ICD-O" => "http://terminology.hl7.org/CodeSystem/icd-o-3",
        "UML" | "UMLS" => "http://www.nlm.nih.gov/research/umls",
        "MEDRT" => "http://va.gov/terminology/medrt",
        "SOP" => "urn:oid:2.16.840.1.113883.3.221.5",
        _ => "",
    };
    if !known.is_empty() {
        return Value::Str(known);
    }
    // HL7nnnn → the v2 table's code system
    if let Some(digits) = name
        .strip_prefix("HL7")
        .or_else(|| name.strip_prefix("hl7"))
        && digits.len() == 4
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        let mut uri = String::with_capacity(44);
        uri.push_str("http://terminology.hl7.org/CodeSystem/v2-");
        uri.push_str(digits);
        return Value::from(uri);
    }
    if name.starts_with("urn:") || name.starts_with("http://") || name.starts_with("https://") {
        return Value::from(name.to_owned());
    }
    Value::from(no_whitespace(name))
}

/// `s` with whitespace percent-encoded (FHIR `uri` has none).
pub fn no_whitespace(s: &str) -> String {
    if s.contains(char::is_whitespace) {
        s.chars()
            .map(|c| {
                if c.is_whitespace() {
                    "%20".to_owned()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_owned()
    }
}

/// A FHIR `code`: trimmed, inner whitespace runs made single spaces.
pub fn code(s: &str) -> Option<Text> {
    let t = s.trim();
    // the usual code has no run of spaces nor other whitespace: one copy, no split and join
    let single_spaced = !t.contains("  ") && !t.contains(|c: char| c.is_whitespace() && c != ' ');
    if single_spaced {
        return (!t.is_empty()).then(|| Text::new(t));
    }
    let out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!out.is_empty()).then(|| Text::from(out))
}

/// [`code`] of a text: the text itself when it is already a code (no copy).
pub fn code_of(s: Text) -> Option<Text> {
    // ASCII (nearly every code): checked on the bytes, without reading the text as `str`
    let bytes = s.as_bytes();
    if bytes.is_ascii() {
        // whitespace as `str::trim` and `split_whitespace` see it, in ASCII
        let space = |b: u8| matches!(b, b'\t'..=b'\r' | b' ');
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return None;
        };
        if !space(first)
            && !space(last)
            && !bytes.windows(2).any(|w| w == b"  ")
            && !bytes.iter().any(|&b| b != b' ' && space(b))
        {
            return Some(s);
        }
    }
    let single_spaced = s.len() == s.trim().len()
        && !s.contains("  ")
        && !s.contains(|c: char| c.is_whitespace() && c != ' ');
    if single_spaced {
        return (!s.is_empty()).then_some(s);
    }
    code(&s)
}

/// One `Coding` from a CWE triplet starting at part `at` (1, 4 or 10), version at `version`.
fn coding(p: &Parts<'_>, at: usize, version: usize) -> Option<Value> {
    let c = p.text(at).and_then(code_of);
    let display = p.text(at + 1);
    if c.is_none() && display.is_none() {
        return None;
    }
    let mut m = Map::new();
    if let Some(sys) = p.text(at + 2).filter(|_| c.is_some()) {
        m.insert("system", coding_system_value(&sys));
    }
    put(&mut m, "version", p.text(version).map(Value::String));
    if let Some(c) = c {
        m.insert("code", Value::String(c));
    } else {
        return None;
    }
    put(&mut m, "display", display.map(Value::String));
    Some(Value::Object(m))
}

/// CWE / CE / CNE / CF → CodeableConcept (`CWE[CodeableConcept]`): up to three codings and
/// the original text (CWE.9, else the first text).
pub fn codeable(e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let mut codings = crate::tree::array();
    for (at, version) in [(1, 7), (4, 8), (10, 13)] {
        if let Some(c) = coding(&p, at, version) {
            codings.push(c);
        }
    }
    let text = p.text(9).or_else(|| {
        if codings.is_empty() {
            p.text(2).or_else(|| p.text(5))
        } else {
            None
        }
    });
    if codings.is_empty() && text.is_none() {
        return None;
    }
    let mut m = Map::new();
    if !codings.is_empty() {
        m.insert("coding", Value::Array(codings));
    }
    put(&mut m, "text", text.map(Value::String));
    Some(Value::Object(m))
}

/// A CodeableConcept of one code of an HL7 table (IS/ID fields): `v2-nnnn`.
pub fn table_concept(table: &str, c: &str) -> Option<Value> {
    let c = code(c)?;
    Some(
        json!({ "coding": [{ "system": format!("http://terminology.hl7.org/CodeSystem/v2-{table}"), "code": c }] }),
    )
}

/// A CodeableConcept from an IG concept map row.
pub fn concept_value(c: &crate::tables::Concept) -> Value {
    let mut m = Map::new();
    m.insert("system", Value::Str(c.system));
    m.insert("code", Value::Str(c.code));
    if !c.display.is_empty() {
        m.insert("display", Value::Str(c.display));
    }
    json!({ "coding": [Value::Object(m)] })
}

/// The system URI of an assigning authority (HD): configured by namespace, `urn:oid:` for
/// ISO universal ids, `urn:uuid:` for UUIDs, the universal id itself for URIs, else the
/// namespace id (`HD[uri]`).
pub fn hd_system(ctx: &Ctx<'_, '_>, hd: Element<'_>) -> Option<String> {
    let p = Parts::of(hd);
    let ns = p.text(1);
    let uid = p.text(2);
    let kind = p.text(3).map(|k| k.to_ascii_uppercase());
    if let Some(ns) = &ns
        && let Some((_, sys)) = ctx
            .opts
            .identifier_systems
            .iter()
            .find(|(n, _)| n.as_str() == ns.as_str())
    {
        return Some(sys.clone());
    }
    match (uid.as_deref(), kind.as_deref()) {
        (Some(u), Some("ISO")) if is_oid(u) => return Some(format!("urn:oid:{u}")),
        (Some(u), Some("UUID" | "GUID")) => {
            return Some(format!("urn:uuid:{}", u.to_ascii_lowercase()));
        }
        (Some(u), Some("URI" | "URL")) if !u.contains(char::is_whitespace) => {
            return Some(u.to_owned());
        }
        _ => {}
    }
    ns.or(uid).map(|s| no_whitespace(&s))
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && s.contains('.')
}

/// CX → Identifier (`CX[Identifier]`): value, system from the assigning authority (CX.4),
/// type from CX.5 (`IdentifierType`), period from CX.7/CX.8.
pub fn identifier(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let value = p.text(1)?;
    let mut m = Map::new();
    if let Some(hd) = p.get(4) {
        put(&mut m, "system", hd_system(ctx, hd).map(Value::from));
    }
    m.insert("value", Value::String(value));
    if let Some(t) = p.text(5) {
        let v = match map_code("IdentifierType", &t) {
            Some(c) => concept_value(c),
            None => json!({ "text": t }),
        };
        m.insert("type", v);
    }
    let start = p.text(7).and_then(|t| Dtm::parse(&t)).map(|d| d.to_date());
    let end = p.text(8).and_then(|t| Dtm::parse(&t)).map(|d| d.to_date());
    if let Some(p) = period(start, end) {
        m.insert("period", p);
    }
    Some(Value::Object(m))
}

/// EI → Identifier (`EI[Identifier-System]`): EI.1 value, system from EI.2–EI.4 (an HD).
pub fn ei_identifier(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let value = p.text(1)?;
    let mut m = Map::new();
    let ns = p.text(2);
    let uid = p.text(3);
    let kind = p.text(4).map(|k| k.to_ascii_uppercase());
    let configured = ns.as_ref().and_then(|ns| {
        ctx.opts
            .identifier_systems
            .iter()
            .find(|(n, _)| n.as_str() == ns.as_str())
            .map(|(_, s)| s.clone())
    });
    let system = configured.or_else(|| match (uid.as_deref(), kind.as_deref()) {
        (Some(u), Some("ISO")) if is_oid(u) => Some(format!("urn:oid:{u}")),
        (Some(u), Some("UUID" | "GUID")) => Some(format!("urn:uuid:{}", u.to_ascii_lowercase())),
        _ => ns.clone().or(uid).map(|s| no_whitespace(&s)),
    });
    put(&mut m, "system", system.map(Value::from));
    m.insert("value", Value::String(value));
    Some(Value::Object(m))
}

fn period(start: Option<String>, end: Option<String>) -> Option<Value> {
    if start.is_none() && end.is_none() {
        return None;
    }
    let mut p = Map::new();
    put(&mut p, "start", start.map(Value::from));
    put(&mut p, "end", end.map(Value::from));
    Some(Value::Object(p))
}

/// A DTM part as a FHIR dateTime (its own zone or the context's), dropping what does not
/// parse.
fn dtm_part(ctx: &Ctx<'_, '_>, parts: &Parts<'_>, n: usize) -> Option<String> {
    let d = Dtm::parse(&parts.text(n)?)?;
    let (s, _) = d.to_datetime(ctx.tz.as_deref());
    Some(s)
}

/// XPN → HumanName (`XPN[HumanName]`).
pub fn human_name(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let mut m = Map::new();
    // XPN.1 is an FN: surname first
    put(
        &mut m,
        "family",
        p.get(1).and_then(first_text).map(Value::String),
    );
    let given: Vec<Value> = [2, 3]
        .iter()
        .filter_map(|&i| p.text(i))
        .map(Value::String)
        .collect();
    if !given.is_empty() {
        m.insert("given", Value::Array(given));
    }
    let suffix: Vec<Value> = [4, 6]
        .iter()
        .filter_map(|&i| p.text(i))
        .map(Value::String)
        .collect();
    if !suffix.is_empty() {
        m.insert("suffix", Value::Array(suffix));
    }
    if let Some(p) = p.text(5) {
        m.insert("prefix", json!([p]));
    }
    if m.is_empty() {
        return None;
    }
    if let Some(c) = p.text(7).and_then(|t| map_code("NameType", &t)) {
        m.insert("use", Value::Str(c.code));
    }
    let start = p
        .get(10)
        .and_then(|dr| part_text(dr, 1))
        .or_else(|| p.text(12))
        .and_then(|t| Dtm::parse(&t))
        .map(|d| d.to_datetime(ctx.tz.as_deref()).0);
    let end = p
        .get(10)
        .and_then(|dr| part_text(dr, 2))
        .or_else(|| p.text(13))
        .and_then(|t| Dtm::parse(&t))
        .map(|d| d.to_datetime(ctx.tz.as_deref()).0);
    put(&mut m, "period", period(start, end));
    Some(Value::Object(m))
}

/// XAD → Address (`XAD[Address]`).
pub fn address(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let mut m = Map::new();
    let mut lines = crate::tree::array();
    // XAD.1 is an SAD: street and dwelling number
    if let Some(sad) = p.get(1) {
        if let Some(street) = part_text(sad, 1) {
            lines.push(Value::String(street));
        } else if let Some(street) = part_text(sad, 2) {
            lines.push(Value::String(street));
        }
    }
    if let Some(l) = p.text(2) {
        lines.push(Value::String(l));
    }
    if !lines.is_empty() {
        m.insert("line", Value::Array(lines));
    }
    put(&mut m, "city", p.text(3).map(Value::String));
    put(&mut m, "state", p.text(4).map(Value::String));
    put(&mut m, "postalCode", p.text(5).map(Value::String));
    put(&mut m, "country", p.text(6).map(Value::String));
    put(&mut m, "district", p.text(9).map(Value::String));
    if m.is_empty() {
        return None;
    }
    if let Some(t) = p.text(7) {
        if let Some(c) = map_code("AddressType[Use]", &t) {
            m.insert("use", Value::Str(c.code));
        }
        if let Some(c) = map_code("AddressType[Type]", &t) {
            m.insert("type", Value::Str(c.code));
        }
    }
    let start = p
        .get(12)
        .and_then(|dr| part_text(dr, 1))
        .or_else(|| p.text(13))
        .and_then(|t| Dtm::parse(&t))
        .map(|d| d.to_datetime(ctx.tz.as_deref()).0);
    let end = p
        .get(12)
        .and_then(|dr| part_text(dr, 2))
        .or_else(|| p.text(14))
        .and_then(|t| Dtm::parse(&t))
        .map(|d| d.to_datetime(ctx.tz.as_deref()).0);
    put(&mut m, "period", period(start, end));
    Some(Value::Object(m))
}

/// XTN → ContactPoint (`XTN[ContactPoint]`): the number from XTN.5–XTN.8 (or XTN.12, or the
/// older XTN.1), the address of Internet/X.400 entries from XTN.4; use from XTN.2, system
/// from XTN.3.
pub fn contact_point(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let equipment = p.text(3);
    let email = matches!(equipment.as_deref(), Some("Internet" | "X.400"));
    let value = if email {
        p.text(4)
    } else {
        let country = p.text(5);
        let area = p.text(6);
        let local = p.text(7);
        let ext = p.text(8);
        match (local, p.text(12)) {
            (Some(local), _) => {
                let mut parts: [&str; 8] = [""; 8];
                if let Some(c) = &country {
                    parts[0] = "+";
                    parts[1] = c;
                    parts[2] = " ";
                }
                if let Some(a) = &area {
                    parts[3] = a;
                    parts[4] = " ";
                }
                parts[5] = &local;
                if let Some(x) = &ext {
                    parts[6] = " X";
                    parts[7] = x;
                }
                Some(Text::concat(&parts))
            }
            (None, Some(unformatted)) => Some(unformatted),
            (None, None) => p.text(1).or_else(|| p.text(4)),
        }
    };
    let value = value?;
    let mut m = Map::new();
    let mut system = match equipment.as_deref() {
        Some("CP") => Some("phone"),
        Some(t) => map_code("TelecommunicationEquipmentType", t).map(|c| c.code),
        None if p.text(4).is_some() && p.text(1).is_none() => Some("email"),
        None => None,
    };
    if system.is_none() {
        // FHIR needs a system when there is a value (cpt-2): a number is a phone, an address
        // with @ is an email
        system = Some(if value.contains('@') {
            "email"
        } else {
            "phone"
        });
    }
    put(&mut m, "system", system.map(Value::Str));
    m.insert("value", Value::String(value));
    let usage = if equipment.as_deref() == Some("CP") {
        Some("mobile")
    } else {
        p.text(2)
            .and_then(|u| map_code("TelecommunicationUseCode", &u))
            .map(|c| c.code)
    };
    put(&mut m, "use", usage.map(Value::Str));
    if let Some(rank) = p
        .text(18)
        .and_then(|r| r.parse::<u32>().ok())
        .filter(|r| *r > 0)
    {
        m.insert("rank", json!(rank));
    }
    let start = dtm_part(ctx, &p, 13);
    let end = dtm_part(ctx, &p, 14);
    put(&mut m, "period", period(start, end));
    Some(Value::Object(m))
}

/// XCN / CNN → a Reference to the person: identifier (XCN.1, system from XCN.9) and display
/// (given and family names).
pub fn person_reference(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let id = p.text(1);
    let family = p.get(2).and_then(first_text);
    let given = p.text(3);
    let display = match (given, family) {
        (Some(g), Some(f)) => Some(Text::from(format!("{g} {f}"))),
        (g, f) => g.or(f),
    };
    if id.is_none() && display.is_none() {
        return None;
    }
    let mut m = Map::new();
    if let Some(id) = id {
        let mut i = Map::new();
        if let Some(hd) = p.get(9) {
            put(&mut i, "system", hd_system(ctx, hd).map(Value::from));
        }
        i.insert("value", Value::String(id));
        m.insert("identifier", Value::Object(i));
    }
    put(&mut m, "display", display.map(Value::String));
    Some(Value::Object(m))
}

/// XON → a Reference to the organisation (name and identifier).
pub fn org_reference(ctx: &Ctx<'_, '_>, e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let name = p.text(1);
    let id = p.text(10).or_else(|| p.text(3));
    if name.is_none() && id.is_none() {
        return None;
    }
    let mut m = Map::new();
    if let Some(id) = id {
        let mut i = Map::new();
        if let Some(hd) = p.get(6) {
            put(&mut i, "system", hd_system(ctx, hd).map(Value::from));
        }
        i.insert("value", Value::String(id));
        m.insert("identifier", Value::Object(i));
    }
    put(&mut m, "display", name.map(Value::String));
    Some(Value::Object(m))
}

/// PL → a display text of the location (point of care, room, bed, facility).
pub fn location_text(e: Element<'_>) -> Option<String> {
    let p = Parts::of(e);
    let parts: Vec<Text> = [1, 2, 3, 4, 7, 8]
        .iter()
        .filter_map(|&i| p.get(i).and_then(first_text))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A v2 number (NM) as a JSON number; `None` when it is not one.
pub fn number(s: &str) -> Option<Value> {
    let s = s.trim();
    let t = s.strip_prefix('+').unwrap_or(s);
    let body = t.strip_prefix('-').unwrap_or(t);
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || body.bytes().filter(|b| *b == b'.').count() > 1
        || body.starts_with('.') && body.len() == 1
    {
        return None;
    }
    if !body.contains('.')
        && let Ok(i) = t.parse::<i64>()
    {
        return Some(json!(i));
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// A Quantity of `value` with the units of a CWE (`CWE[Quantity]`): unit, and UCUM code and
/// system when the units are UCUM.
pub fn quantity(value: Value, units: Option<Element<'_>>) -> Value {
    let mut m = Map::new();
    m.insert("value", value);
    if let Some(u) = units {
        let code_ = part_text(u, 1).and_then(code_of);
        let text = part_text(u, 2).or_else(|| code_.clone());
        let system = part_text(u, 3);
        put(&mut m, "unit", text.map(Value::String));
        if let Some(c) = code_ {
            let ucum = matches!(system.as_deref(), Some("UCUM" | "ISO+" | "ANSI"));
            if ucum || system.is_none() {
                m.insert("system", json!("http://unitsofmeasure.org"));
            } else if let Some(s) = system {
                m.insert("system", coding_system_value(&s));
            }
            m.insert("code", Value::String(c));
        }
    }
    Value::Object(m)
}

/// ED → Attachment (`ED[Attachment]`): ED.3 (and ED.4 subtype) the content type, ED.5 the
/// data, base64 as sent (ED.4 `Base64`), else encoded here (`A`, `Hex` and others: the text).
pub fn ed_attachment(e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let data = p.text(5)?;
    let mut m = Map::new();
    if let Some(t) = p.text(2).and_then(code_of) {
        let mime = match p.text(3).and_then(code_of) {
            Some(sub) if !t.contains('/') => {
                format!("{}/{}", t.to_ascii_lowercase(), sub.to_ascii_lowercase())
            }
            _ => t.to_ascii_lowercase(),
        };
        if mime.contains('/') && !mime.contains(' ') {
            m.insert("contentType", Value::from(mime));
        }
    }
    let encoding = p.text(4).unwrap_or_default();
    let b64 = if encoding.eq_ignore_ascii_case("base64") {
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()
            .map(|_| compact)
    } else if encoding.eq_ignore_ascii_case("hex") {
        hex_decode(&data).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    } else {
        Some(base64::engine::general_purpose::STANDARD.encode(data.as_bytes()))
    };
    m.insert("data", Value::from(b64?));
    Some(Value::Object(m))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

/// RP → Attachment (`RP[Attachment]`): RP.1 the URL, RP.3/RP.4 the content type.
pub fn rp_attachment(e: Element<'_>) -> Option<Value> {
    let p = Parts::of(e);
    let url = p.text(1)?;
    let mut m = Map::new();
    if let (Some(t), Some(s)) = (p.text(3), p.text(4)) {
        let mime = format!("{}/{}", t.to_ascii_lowercase(), s.to_ascii_lowercase());
        if !mime.contains(char::is_whitespace) {
            m.insert("contentType", Value::from(mime));
        }
    }
    m.insert("url", Value::from(no_whitespace(&url)));
    Some(Value::Object(m))
}

/// A text as an Attachment (`text/plain` or as the IG says for FT/TX), base64.
pub fn text_attachment(t: &str, content_type: &'static str) -> Value {
    json!({
        "contentType": content_type,
        "data": base64::engine::general_purpose::STANDARD.encode(t.as_bytes()),
    })
}

/// The field's whole text, repetitions joined by newlines (TX/FT).
pub fn joined_text(f: Element<'_>) -> Option<String> {
    let parts: Vec<Text> = crate::ctx::repetitions(f).filter_map(text).collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// An Annotation (NTE-3 comment) with author (NTE-5) and time (NTE-6).
pub fn annotation<'a>(ctx: &mut Ctx<'a, '_>, seg: Seg<'a>) -> Option<Value> {
    let comment = ctx.field(seg, 3).and_then(joined_text)?;
    let mut m = Map::new();
    m.insert("text", Value::from(comment));
    if let Some(author) = ctx.first(seg, 5).and_then(|e| person_reference(ctx, e)) {
        if let Some(d) = author.get("display").and_then(Value::as_str) {
            m.insert("authorString", Value::from(d.to_owned()));
        } else {
            m.insert("authorReference", author);
        }
    }
    put(&mut m, "time", ctx.datetime(seg, 6).map(Value::from));
    ctx.mark(seg, 1);
    ctx.mark(seg, 2);
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_systems() {
        assert_eq!(coding_system("LN"), "http://loinc.org");
        assert_eq!(coding_system("SCT"), "http://snomed.info/sct");
        assert_eq!(coding_system("I10"), "http://hl7.org/fhir/sid/icd-10");
        assert_eq!(coding_system("I9CM"), "http://hl7.org/fhir/sid/icd-9-cm");
        assert_eq!(
            coding_system("RXNORM"),
            "http://www.nlm.nih.gov/research/umls/rxnorm"
        );
        assert_eq!(coding_system("CVX"), "http://hl7.org/fhir/sid/cvx");
        assert_eq!(coding_system("NDC"), "http://hl7.org/fhir/sid/ndc");
        assert_eq!(coding_system("UCUM"), "http://unitsofmeasure.org");
        assert_eq!(
            coding_system("HL70001"),
            "http://terminology.hl7.org/CodeSystem/v2-0001"
        );
        assert_eq!(coding_system("99LOCAL"), "99LOCAL");
        assert_eq!(coding_system("My System"), "My%20System");
    }

    #[test]
    fn codes_of_texts_as_of_strings() {
        // the rule before the ASCII shortcut, as the reference
        let reference = |s: &str| {
            let single_spaced = s.len() == s.trim().len()
                && !s.contains("  ")
                && !s.contains(|c: char| c.is_whitespace() && c != ' ');
            if single_spaced {
                (!s.is_empty()).then(|| s.to_owned())
            } else {
                code(s).map(Text::into_string)
            }
        };
        for s in [
            "",
            " ",
            "A",
            "A B",
            "A  B",
            " A",
            "A ",
            "A\tB",
            "\x0bA",
            "A\x0c",
            "\x1cA\x1f",
            "a\u{a0}b",
            "\u{85}",
            "é",
            "  A \r\n B  ",
            "LN",
            "mg/dL",
        ] {
            assert_eq!(
                code_of(Text::new(s)).map(Text::into_string),
                reference(s),
                "{s:?}"
            );
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(number("60"), Some(json!(60)));
        assert_eq!(number("-1.5"), Some(json!(-1.5)));
        assert_eq!(number("+7"), Some(json!(7)));
        for bad in ["", "1.2.3", "abc", ".", "1e5", "--1"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }
}
