//! Observations (results, vital signs, social history), result organizers as
//! DiagnosticReport, procedures, encounters, and unstructured bodies as DocumentReference.

use serde_json::{Map, Value, json};

use super::super::types::{
    absent, concept, concept_or_absent, original_text, period, put_array, put_time_choice,
    put_value, quantity,
};
use super::super::{Ctx, location, narrative, practitioner, reference_to};
use super::{
    CLINICAL, ENCOUNTER_DIAGNOSIS, INDICATION, INSTRUCTION, cc, condition, negated, reasons,
    related, report_rest, statement, status_code,
};
use crate::xml::El;

fn obs_status(code: Option<&str>) -> &'static str {
    match code {
        Some("completed") => "final",
        Some("active") => "preliminary",
        Some("aborted" | "cancelled") => "cancelled",
        Some("nullified") => "entered-in-error",
        _ => "unknown",
    }
}

pub(super) fn observation(ctx: &mut Ctx<'_>, obs: El<'_, '_>, category: &str) -> String {
    let id = ctx.new_id("Observation", obs);
    let mut o = Map::new();
    o.insert(
        "status".into(),
        Value::String(obs_status(status_code(obs)).into()),
    );
    let display = match category {
        "laboratory" => "Laboratory",
        "vital-signs" => "Vital Signs",
        _ => "Social History",
    };
    o.insert(
        "category".into(),
        Value::Array(vec![cc("observation-category", category, display)]),
    );
    o.insert("code".into(), concept_or_absent(obs.child("code")));
    o.insert("subject".into(), ctx.subject());
    put_time_choice(&mut o, "effective", obs.child("effectiveTime"), ctx.rules);
    if let Some(v) = obs.child("value")
        && !put_value(&mut o, v, ctx.rules)
    {
        {
            let code = super::super::types::dar_code(v.attr("nullFlavor"));
            o.insert(
                "dataAbsentReason".into(),
                cc("data-absent-reason", code, code),
            );
        }
    }
    put_array(
        &mut o,
        "interpretation",
        obs.children_named("interpretationCode")
            .filter_map(concept)
            .collect(),
    );
    let mut ranges = Vec::new();
    for rr in obs
        .children_named("referenceRange")
        .filter_map(|r| r.child("observationRange"))
    {
        let mut r = Map::new();
        if let Some(v) = rr.child("value") {
            if let Some(q) = v.child("low").and_then(quantity) {
                r.insert("low".into(), q);
            }
            if let Some(q) = v.child("high").and_then(quantity) {
                r.insert("high".into(), q);
            }
        }
        if let Some(t) = rr
            .child("text")
            .and_then(|t| t.deep_text().or_else(|| original_text(rr)))
        {
            r.insert("text".into(), Value::String(t));
        }
        if !r.is_empty() {
            ranges.push(Value::Object(r));
        }
    }
    put_array(&mut o, "referenceRange", ranges);
    report_rest(ctx, obs, &[]);
    ctx.add("Observation", id, o)
}

pub(super) fn report(ctx: &mut Ctx<'_>, org: El<'_, '_>) -> String {
    let mut results = Vec::new();
    for c in org.children_named("component").filter_map(statement) {
        if c.name() == "observation" {
            let r = observation(ctx, c, "laboratory");
            results.push(reference_to(r));
        } else {
            ctx.unmapped(c, "result organizer component that is not an observation");
        }
    }
    let id = ctx.new_id("DiagnosticReport", org);
    let mut d = Map::new();
    let s = match status_code(org) {
        Some("completed") => "final",
        Some("active") => "partial",
        Some("aborted" | "cancelled") => "cancelled",
        Some("nullified") => "entered-in-error",
        _ => "unknown",
    };
    d.insert("status".into(), Value::String(s.into()));
    d.insert("category".into(), json!([{"coding": [{"system": format!("{CLINICAL}v2-0074"), "code": "LAB", "display": "Laboratory"}]}]));
    d.insert("code".into(), concept_or_absent(org.child("code")));
    d.insert("subject".into(), ctx.subject());
    put_time_choice(&mut d, "effective", org.child("effectiveTime"), ctx.rules);
    put_array(&mut d, "result", results);
    ctx.add("DiagnosticReport", id, d)
}

pub(super) fn procedure(ctx: &mut Ctx<'_>, p: El<'_, '_>) -> Option<String> {
    let mood = p.attr_nb("moodCode").unwrap_or("EVN");
    if mood != "EVN" {
        ctx.unmapped(
            p,
            format!("planned procedure (moodCode {mood}) is not a Procedure; not mapped"),
        );
        return None;
    }
    let id = ctx.new_id("Procedure", p);
    let mut r = Map::new();
    let s = if negated(p) {
        "not-done"
    } else {
        match status_code(p) {
            Some("completed") => "completed",
            Some("active") => "in-progress",
            Some("aborted") => "stopped",
            Some("cancelled") => "not-done",
            Some("held" | "suspended") => "on-hold",
            Some("new") => "preparation",
            Some("nullified") => "entered-in-error",
            _ => "unknown",
        }
    };
    r.insert("status".into(), Value::String(s.into()));
    if let Some(c) = p.child("code").and_then(concept) {
        r.insert("code".into(), c);
    }
    r.insert("subject".into(), ctx.subject());
    put_time_choice(&mut r, "performed", p.child("effectiveTime"), ctx.rules);
    put_array(
        &mut r,
        "bodySite",
        p.children_named("targetSiteCode")
            .filter_map(concept)
            .collect(),
    );
    put_array(&mut r, "reasonCode", reasons(p));
    report_rest(ctx, p, &[INDICATION, INSTRUCTION]);
    Some(ctx.add("Procedure", id, r))
}

/// An encounter (entry or the header's encompassingEncounter); diagnoses inside it become
/// Conditions whose references are also pushed to `refs`.
pub(crate) fn encounter(ctx: &mut Ctx<'_>, e: El<'_, '_>, refs: &mut Vec<String>) -> String {
    let mut r = Map::new();
    let high = e
        .child("effectiveTime")
        .and_then(|t| t.child("high"))
        .and_then(|h| h.attr_nb("value"))
        .is_some();
    let s = match status_code(e) {
        Some("completed") => "finished",
        Some("active") => "in-progress",
        Some("aborted" | "cancelled") => "cancelled",
        Some("nullified") => "entered-in-error",
        _ if high => "finished",
        _ => "unknown",
    };
    r.insert("status".into(), Value::String(s.into()));
    let code = e.child("code");
    let act_code = code
        .into_iter()
        .chain(
            code.into_iter()
                .flat_map(|c| c.children_named("translation")),
        )
        .find(|c| {
            c.attr("codeSystem") == Some("2.16.840.1.113883.5.4") && c.attr_nb("code").is_some()
        });
    match act_code.and_then(super::super::types::coding) {
        Some(c) => r.insert("class".into(), c),
        None => r.insert("class".into(), absent(None)),
    };
    if let Some(c) = code.and_then(concept) {
        r.insert("type".into(), Value::Array(vec![c]));
    }
    r.insert("subject".into(), ctx.subject());
    if let Some(p) = e.child("effectiveTime").and_then(|t| period(t, ctx.rules)) {
        r.insert("period".into(), p);
    }
    let mut diagnoses = Vec::new();
    if e.name() == "encounter" {
        for d in related(e) {
            if d.has_template(ENCOUNTER_DIAGNOSIS)
                || (d.name() == "act" && related(d).any(|o| o.name() == "observation"))
            {
                for o in related(d).filter(|o| o.name() == "observation") {
                    let c = condition(ctx, o, Some(d), "encounter-diagnosis");
                    diagnoses.push(json!({"condition": {"reference": c}}));
                    refs.push(c);
                }
            } else if d.has_template(INDICATION) {
                if let Some(v) = d.child("value").and_then(concept)
                    && let Some(a) = r
                        .entry("reasonCode")
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                {
                    a.push(v);
                }
            } else {
                ctx.unmapped(
                    d,
                    format!("nested {} of an encounter is not mapped", d.name()),
                );
            }
        }
    }
    put_array(&mut r, "diagnosis", diagnoses);
    let mut locations = Vec::new();
    for part in e
        .children_named("participant")
        .filter(|p| p.attr("typeCode") == Some("LOC"))
    {
        if let Some(l) = part
            .child("participantRole")
            .and_then(|pr| location(ctx, pr))
        {
            locations.push(json!({"location": {"reference": l}}));
        }
    }
    if let Some(hcf) = e.at("location/healthCareFacility")
        && let Some(l) = location(ctx, hcf)
    {
        locations.push(json!({"location": {"reference": l}}));
    }
    put_array(&mut r, "location", locations);
    let mut participants = Vec::new();
    for p in e.children_named("performer") {
        if let Some(r) = p
            .child("assignedEntity")
            .and_then(|ae| practitioner(ctx, ae))
        {
            participants.push(json!({"individual": {"reference": r}}));
        }
    }
    put_array(&mut r, "participant", participants);
    let id = ctx.new_id("Encounter", e);
    ctx.add("Encounter", id, r)
}

/// An unstructured body (`nonXMLBody`): a DocumentReference with the attachment, and a
/// section pointing at it.
pub(crate) fn non_xml_body(ctx: &mut Ctx<'_>, root: El<'_, '_>, nxb: El<'_, '_>) -> Value {
    let id = ctx.new_id("DocumentReference", nxb);
    let mut d = Map::new();
    d.insert("status".into(), Value::String("current".into()));
    if let Some(c) = root.child("code").and_then(concept) {
        d.insert("type".into(), c);
    }
    d.insert("subject".into(), ctx.subject());
    let mut att = Map::new();
    let text = nxb.child("text");
    if let Some(t) = text {
        if let Some(mt) = t.attr_nb("mediaType") {
            att.insert("contentType".into(), Value::String(mt.into()));
        }
        if let Some(u) = t.child("reference").and_then(|r| r.attr_nb("value")) {
            let scheme = u.split_once(':').is_some_and(|(s, _)| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            });
            if scheme {
                att.insert("url".into(), Value::String(u.into()));
            } else {
                // A file named relative to the document (a URL needs a scheme): said in the
                // description, and reported.
                d.insert(
                    "description".into(),
                    Value::String(format!(
                        "The document body is the file {u}, named relative to the C-CDA document."
                    )),
                );
                ctx.unmapped(
                    t,
                    format!("nonXMLBody reference {u} is relative; it cannot be an attachment URL"),
                );
            }
        } else if let Some(body) = t.text() {
            if t.attr("representation") == Some("B64") {
                let data: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                if !data.is_empty()
                    && data
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                {
                    att.insert("data".into(), Value::String(data));
                } else {
                    ctx.unmapped(t, "nonXMLBody text is not valid base64");
                }
            } else {
                use base64::Engine as _;
                let data = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
                att.insert("data".into(), Value::String(data));
                att.entry("contentType")
                    .or_insert_with(|| Value::String("text/plain".into()));
            }
        }
    }
    if let Some(t) = root.child("title").and_then(|t| t.deep_text()) {
        att.insert("title".into(), Value::String(t));
    }
    if att.is_empty() {
        att.insert(
            "title".into(),
            Value::String("Unstructured document".into()),
        );
    }
    d.insert("content".into(), json!([{"attachment": att}]));
    let r = ctx.add("DocumentReference", id, d);
    let mut s = Map::new();
    s.insert(
        "title".into(),
        Value::String("Unstructured document".into()),
    );
    s.insert("text".into(), json!({"status": "generated", "div": narrative::xhtml_text("The document body is not structured; see the attached DocumentReference.")}));
    s.insert("entry".into(), json!([{"reference": r}]));
    Value::Object(s)
}
