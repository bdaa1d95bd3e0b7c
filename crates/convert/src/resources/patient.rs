//! PID → Patient (`PID[Patient]`), PD1 (`PD1[Patient]`), NK1 → RelatedPerson
//! (`NK1[RelatedPerson]`), MRG → the merged patient (ADT^A40), PID-18 → Account
//! (`PID[Account]`).

use crate::tree::{Map, Value};

use crate::ConvertError;
use crate::UnmappedReason;
use crate::ctx::{Ctx, Request, Seg, part_text, push, put};
use crate::datatypes::{
    address, code_of, codeable, concept_value, contact_point, human_name, identifier,
    org_reference, person_reference,
};
use crate::message::{NoteTarget, State};
use crate::resources::add_keyed;
use crate::time::Dtm;

/// OMB race and ethnicity categories (US Core `ombCategory`); other codes are `detailed`.
const OMB: &[&str] = &[
    "1002-5", "2028-9", "2054-5", "2076-8", "2106-3", "2131-1", "2135-2", "2186-5", "UNK", "ASKU",
];

/// The identifier a patient is written by: the first PID-3 with a system and type MR, else
/// the first PID-3 (or PID-2, PID-4) with a system, else the first at all.
fn key_identifier(ids: &[Value]) -> Option<&Value> {
    let has_system = |i: &&Value| i.get("system").is_some();
    let is_mr = |i: &&Value| i.pointer("/type/coding/0/code").and_then(Value::as_str) == Some("MR");
    ids.iter()
        .find(|i| has_system(i) && is_mr(i))
        .or_else(|| ids.iter().find(has_system))
        .or_else(|| ids.first())
}

/// PID → Patient.
// one segment's fields in field order: splitting it would scatter the segment map
#[allow(clippy::too_many_lines)]
pub fn pid<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) -> Result<(), ConvertError> {
    let mut p = Map::new();
    ctx.mark(s, 1);
    let mut ids = crate::tree::array();
    // PID-3 first: it is the list of identifiers the patient is known by
    for n in [3, 2, 4] {
        for e in ctx.reps(s, n) {
            if let Some(i) = identifier(ctx, e)
                && !ids.contains(&i)
            {
                ids.push(i);
            }
        }
    }
    let listed = ids.len();
    if let Some(ssn) = ctx.code(s, 19) {
        ids.push(json!({
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS" }] },
            "value": ssn,
        }));
    }
    if let Some(dl) = ctx.first(s, 20)
        && let Some(v) = part_text(dl, 1)
    {
        let mut i = Map::new();
        if let Some(state) = part_text(dl, 2) {
            i.insert(
                "system",
                Value::from(crate::datatypes::no_whitespace(&state)),
            );
        }
        i.insert("type", json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "DL" }] }));
        i.insert("value", Value::String(v));
        ids.push(Value::Object(i));
    }
    if ids.is_empty() {
        return Err(ctx.error(
            s,
            3,
            "the patient has no identifier (PID-3, PID-2 or PID-4): it could not be updated idempotently",
        ));
    }
    let mut names = crate::tree::array();
    for n in [5, 9] {
        for e in ctx.reps(s, n) {
            if let Some(name) = human_name(ctx, e) {
                names.push(name);
            }
        }
    }
    if !names.is_empty() {
        p.insert("name", Value::Array(names));
    }
    if let Some(mmn) = ctx
        .first(s, 6)
        .and_then(|e| crate::ctx::part(e, 1))
        .and_then(crate::ctx::first_text)
    {
        push(
            &mut p,
            "extension",
            json!({ "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": mmn }),
        );
    }
    if let Some(t) = ctx.code(s, 7) {
        let d = Dtm::parse(&t).ok_or_else(|| {
            ctx.error(
                s,
                7,
                "the date/time of birth is not a valid DTM (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])",
            )
        })?;
        p.insert("birthDate", Value::from(d.to_date()));
        if d.has_time() {
            let (dt, cut) = d.to_datetime(ctx.tz.as_deref());
            if cut {
                ctx.report(s, 7, UnmappedReason::TimeWithoutZone);
            } else {
                p.insert("_birthDate",
                    json!({ "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": dt }] }),
                );
            }
        }
    }
    if let Some(sex) = ctx.code(s, 8)
        && let Some(c) = ctx.vocab(s, 8, "AdministrativeSex", &sex)
    {
        p.insert("gender", Value::Str(c.code));
    }
    race_ethnicity(
        ctx,
        s,
        10,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        &mut p,
    );
    race_ethnicity(
        ctx,
        s,
        22,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        &mut p,
    );
    let mut addresses = crate::tree::array();
    for e in ctx.reps(s, 11) {
        if let Some(a) = address(ctx, e) {
            addresses.push(a);
        }
    }
    if let Some(county) = ctx.code(s, 12) {
        // PID-12 only when one address without its own county (IG condition)
        if addresses.len() == 1 && addresses[0].get("district").is_none() {
            addresses[0]["district"] = Value::String(county);
        } else if addresses.is_empty() {
            addresses.push(json!({ "district": county }));
        } else {
            ctx.report(s, 12, UnmappedReason::NotMapped);
        }
    }
    if !addresses.is_empty() {
        p.insert("address", Value::Array(addresses));
    }
    let mut telecom = crate::tree::array();
    for (n, default_use) in [(13, "home"), (14, "work")] {
        for e in ctx.reps(s, n) {
            if let Some(mut c) = contact_point(ctx, e) {
                if c.get("use").is_none() {
                    c["use"] = Value::String(default_use.into());
                }
                telecom.push(c);
            }
        }
    }
    if !telecom.is_empty() {
        p.insert("telecom", Value::Array(telecom));
    }
    if let Some(lang) = ctx.first(s, 15).and_then(codeable) {
        p.insert("communication", json!([{ "language": lang }]));
    }
    if let Some(e) = ctx.first(s, 16) {
        let code = crate::ctx::first_text(e).unwrap_or_default();
        let v = match crate::tables::map_code("MaritalStatus", &code) {
            Some(c) => Some(concept_value(c)),
            None => codeable(e),
        };
        put(&mut p, "maritalStatus", v);
    }
    if let Some(rel) = ctx.first(s, 17).and_then(codeable) {
        push(
            &mut p,
            "extension",
            json!({ "url": "http://hl7.org/fhir/StructureDefinition/patient-religion", "valueCodeableConcept": rel }),
        );
    }
    let multiple = ctx.code(s, 24);
    let order = ctx.code(s, 25).and_then(|o| o.parse::<i64>().ok());
    match (multiple.as_deref(), order) {
        (Some("Y"), Some(o)) => {
            p.insert("multipleBirthInteger", json!(o));
        }
        (Some("Y"), None) => {
            p.insert("multipleBirthBoolean", json!(true));
        }
        (Some("N"), _) => {
            p.insert("multipleBirthBoolean", json!(false));
        }
        _ => {}
    }
    if let Some(d) = ctx.datetime(s, 29) {
        p.insert("deceasedDateTime", Value::from(d));
    } else if let Some(ind) = ctx.code(s, 30) {
        match ind.as_str() {
            "Y" => {
                p.insert("deceasedBoolean", json!(true));
            }
            "N" => {
                p.insert("deceasedBoolean", json!(false));
            }
            _ => ctx.report(s, 30, UnmappedReason::UnknownCode),
        }
    }
    // the key is one of the patient identifiers (PID-3, -2, -4), never the SSN or licence
    let key = key_identifier(&ids[..listed])
        .or_else(|| ids.first())
        .cloned();
    p.insert("identifier", Value::Array(ids));
    let i = add_keyed(ctx, (s, 3), "Patient", key.as_ref(), &["Patient"], p);
    st.patient = Some(i);
    st.note = None;
    // PID-18 → Account
    st.account = None;
    if let Some(acct) = ctx.first(s, 18).and_then(|e| identifier(ctx, e)) {
        let mut a = Map::new();
        a.insert("status", json!("active"));
        a.insert("subject", json!([ctx.reference(i)]));
        a.insert("identifier", json!([acct.clone()]));
        let pu = ctx.entries[i].uuid;
        st.account = Some(add_keyed(
            ctx,
            (s, 18),
            "Account",
            Some(&acct),
            &["Account", &pu],
            a,
        ));
    }
    Ok(())
}

fn race_ethnicity<'a>(ctx: &mut Ctx<'a, '_>, s: Seg<'a>, n: usize, url: &'static str, p: &mut Map) {
    let mut parts = Vec::new();
    let mut texts = Vec::new();
    for e in ctx.reps(s, n) {
        let Some(c) = part_text(e, 1).and_then(code_of) else {
            if let Some(t) = part_text(e, 2) {
                texts.push(t);
            }
            continue;
        };
        let display = part_text(e, 2);
        if let Some(t) = &display {
            texts.push(t.clone());
        }
        let kind = if OMB.contains(&c.as_str()) {
            "ombCategory"
        } else {
            "detailed"
        };
        let mut coding = Map::new();
        coding.insert("system", json!("urn:oid:2.16.840.1.113883.6.238"));
        coding.insert("code", Value::String(c));
        put(&mut coding, "display", display.map(Value::String));
        parts.push(json!({ "url": kind, "valueCoding": coding }));
    }
    if parts.is_empty() && texts.is_empty() {
        return;
    }
    let text = if texts.is_empty() {
        "unknown".to_owned()
    } else {
        texts.join(", ")
    };
    parts.push(json!({ "url": "text", "valueString": text }));
    push(p, "extension", json!({ "url": url, "extension": parts }));
}

/// PD1 → Patient (`PD1[Patient]`): PD1-3 primary facility and PD1-4 primary care provider
/// as `generalPractitioner`.
pub fn pd1<'a>(ctx: &mut Ctx<'a, '_>, st: &State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    let mut gps = Vec::new();
    for e in ctx.reps(s, 3) {
        if let Some(r) = org_reference(ctx, e) {
            gps.push(r);
        }
    }
    for e in ctx.reps(s, 4) {
        if let Some(r) = person_reference(ctx, e) {
            gps.push(r);
        }
    }
    for g in gps {
        push(ctx.res(pi), "generalPractitioner", g);
    }
}

/// NK1 → RelatedPerson (`NK1[RelatedPerson]`).
pub fn nk1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    let mut r = Map::new();
    r.insert("patient", ctx.reference(pi));
    ctx.mark(s, 1);
    let names: Vec<Value> = ctx
        .reps(s, 2)
        .into_iter()
        .filter_map(|e| human_name(ctx, e))
        .collect();
    if !names.is_empty() {
        r.insert("name", Value::Array(names));
    }
    let mut relationship = crate::tree::array();
    if let Some(e) = ctx.first(s, 3) {
        let code = crate::ctx::first_text(e).unwrap_or_default();
        match crate::tables::map_code("Relationship", &code) {
            Some(c) => relationship.push(concept_value(c)),
            None => relationship.extend(codeable(e)),
        }
    }
    if let Some(e) = ctx.first(s, 7) {
        let code = crate::ctx::first_text(e).unwrap_or_default();
        match crate::tables::map_code("ContactRole", &code) {
            Some(c) => relationship.push(concept_value(c)),
            None => relationship.extend(codeable(e)),
        }
    }
    if !relationship.is_empty() {
        r.insert("relationship", Value::Array(relationship));
    }
    let addresses: Vec<Value> = ctx
        .reps(s, 4)
        .into_iter()
        .filter_map(|e| address(ctx, e))
        .collect();
    if !addresses.is_empty() {
        r.insert("address", Value::Array(addresses));
    }
    let mut telecom = crate::tree::array();
    for (n, default_use) in [(5, "home"), (6, "work")] {
        for e in ctx.reps(s, n) {
            if let Some(mut c) = contact_point(ctx, e) {
                if c.get("use").is_none() {
                    c["use"] = Value::String(default_use.into());
                }
                telecom.push(c);
            }
        }
    }
    if !telecom.is_empty() {
        r.insert("telecom", Value::Array(telecom));
    }
    let start = ctx.date(s, 8);
    let end = ctx.date(s, 9);
    if start.is_some() || end.is_some() {
        let mut p = Map::new();
        put(&mut p, "start", start.map(Value::from));
        put(&mut p, "end", end.map(Value::from));
        r.insert("period", Value::Object(p));
    }
    if let Some(sex) = ctx.code(s, 15)
        && let Some(c) = ctx.vocab(s, 15, "AdministrativeSex", &sex)
    {
        r.insert("gender", Value::Str(c.code));
    }
    put(&mut r, "birthDate", ctx.date(s, 16).map(Value::from));
    let ids: Vec<Value> = ctx
        .reps(s, 33)
        .into_iter()
        .filter_map(|e| identifier(ctx, e))
        .collect();
    if !ids.is_empty() {
        r.insert("identifier", Value::Array(ids));
    }
    let set_id = ctx.code(s, 1).unwrap_or_else(|| s.occ.to_string().into());
    let pu = ctx.entries[pi].uuid;
    ctx.add("RelatedPerson", Request::Put, &[&pu, "NK1", &set_id], r);
    st.note = None;
}

/// MRG (ADT^A40 merge): the merged patient is marked inactive and linked `replaced-by` the
/// surviving one, which links back with `replaces`.
pub fn mrg<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) -> Result<(), ConvertError> {
    let Some(pi) = st.patient else {
        return Err(ConvertError::MissingSegment {
            segment: "PID",
            reason: "MRG names the patient merged into the PID before it".into(),
        });
    };
    let mut ids = crate::tree::array();
    for n in [1, 2, 4] {
        for e in ctx.reps(s, n) {
            if let Some(i) = identifier(ctx, e) {
                ids.push(i);
            }
        }
    }
    let Some(key) = key_identifier(&ids).cloned() else {
        return Err(ctx.error(s, 1, "the merged patient has no identifier (MRG-1)"));
    };
    let mut old = Map::new();
    old.insert("active", json!(false));
    old.insert(
        "link",
        json!([{ "other": ctx.reference(pi), "type": "replaced-by" }]),
    );
    let names: Vec<Value> = ctx
        .reps(s, 7)
        .into_iter()
        .filter_map(|e| human_name(ctx, e))
        .collect();
    if !names.is_empty() {
        old.insert("name", Value::Array(names));
    }
    old.insert("identifier", Value::Array(ids));
    let oi = add_keyed(ctx, (s, 1), "Patient", Some(&key), &["Patient"], old);
    if oi == pi {
        return Err(ctx.error(s, 1, "the merged patient is the surviving patient"));
    }
    let link = json!({ "other": ctx.reference(oi), "type": "replaces" });
    push(ctx.res(pi), "link", link);
    if let Some(NoteTarget::Annotation(_)) = st.note {
        st.note = None;
    }
    Ok(())
}
