//! AL1 → AllergyIntolerance (`AL1[AllergyIntolerance]`), DG1 → Condition
//! (`DG1[Condition]`), PR1 → Procedure (`PR1[Procedure]`), NTE → notes (`NTE[…]`).

use crate::tree::{Map, Text, Value};

use crate::ctx::{Ctx, Request, Seg, first_text, push, put};
use crate::datatypes::{annotation, codeable, ei_identifier, person_reference};
use crate::message::{NoteTarget, State};
use crate::resources::add_keyed;

/// AL1 → AllergyIntolerance.
pub fn al1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    let mut a = Map::new();
    a.insert("patient", ctx.reference(pi));
    a.insert("clinicalStatus",
        json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active" }] }),
    );
    let code = ctx.first(s, 3);
    let key = code
        .and_then(|c| first_text(c).or_else(|| crate::ctx::part_text(c, 2)))
        .unwrap_or_else(|| s.occ.to_string().into());
    put(&mut a, "code", code.and_then(codeable));
    if let Some(t) = ctx.code(s, 2) {
        if let Some(c) = ctx.vocab(s, 2, "AllergenType[AllergyIntoleranceCategory]", &t) {
            a.insert("category", json!([c.code]));
        }
        if let Some(c) = crate::tables::map_code("AllergyType", &t) {
            a.insert("type", json!(c.code));
        }
    }
    let severity = ctx.code(s, 4);
    if let Some(c) = severity.as_deref().and_then(|sev| {
        crate::tables::map_code("AllergySeverity[AllergyIntolerance.criticality]", sev)
    }) {
        a.insert("criticality", json!(c.code));
    }
    let reaction_severity = severity
        .as_deref()
        .and_then(|sev| {
            crate::tables::map_code("AllergySeverity[AllergyIntolerance.reaction.severity]", sev)
        })
        .map(|c| c.code);
    let reactions: Vec<Value> = ctx
        .reps(s, 5)
        .into_iter()
        .filter_map(crate::ctx::text)
        .map(|t| json!({ "text": t }))
        .collect();
    if !reactions.is_empty() {
        let mut r = Map::new();
        r.insert("manifestation", Value::Array(reactions));
        put(&mut r, "severity", reaction_severity.map(|c| json!(c)));
        a.insert("reaction", json!([r]));
    }
    put(&mut a, "onsetDateTime", ctx.date(s, 6).map(Value::from));
    let pu = ctx.entries[pi].uuid;
    let i = ctx.add("AllergyIntolerance", Request::Put, &[&pu, "AL1", &key], a);
    st.note = Some(NoteTarget::Annotation(i));
}

/// DG1 → Condition, listed in the Encounter's `diagnosis`.
pub fn dg1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    let mut cond = Map::new();
    cond.insert("subject", ctx.reference(pi));
    cond.insert("category",
        json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis", "display": "Encounter Diagnosis" }] }]),
    );
    let code_el = ctx.first(s, 3);
    let mut code = code_el.and_then(codeable);
    // DG1-2 (coding method, withdrawn) names the system of a bare DG1-3 code
    ctx.mark(s, 2);
    if let Some(desc) = ctx.string(s, 4) {
        match &mut code {
            Some(v) if v.get("text").is_none() => v["text"] = Value::String(desc),
            Some(_) => {}
            None => code = Some(json!({ "text": desc })),
        }
    }
    let key = code_el
        .and_then(first_text)
        .or_else(|| {
            code.as_ref()
                .and_then(|c| c.get("text"))
                .and_then(Value::as_str)
                .map(Text::new)
        })
        .unwrap_or_else(|| s.occ.to_string().into());
    put(&mut cond, "code", code);
    // DG1-21 action code D: the diagnosis was sent in error
    if ctx.code(s, 21).as_deref() == Some("D") {
        cond.insert("verificationStatus",
            json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error" }] }),
        );
    }
    put(
        &mut cond,
        "onsetDateTime",
        ctx.datetime(s, 5).map(Value::from),
    );
    put(
        &mut cond,
        "recordedDate",
        ctx.datetime(s, 19).map(Value::from),
    );
    if let Some(who) = ctx.first(s, 16).and_then(|e| person_reference(ctx, e)) {
        cond.insert("asserter", who);
    }
    if let Some(ei) = st.encounter {
        cond.insert("encounter", ctx.reference(ei));
    }
    let ident = ctx.first(s, 20).and_then(|e| ei_identifier(ctx, e));
    if let Some(id) = &ident {
        cond.insert("identifier", json!([id]));
    }
    let pu = ctx.entries[pi].uuid;
    let i = add_keyed(
        ctx,
        (s, 20),
        "Condition",
        ident.as_ref(),
        &[&pu, "DG1", &key],
        cond,
    );
    st.note = Some(NoteTarget::Annotation(i));
    if let Some(ei) = st.encounter {
        let mut diag = Map::new();
        diag.insert("condition", ctx.reference(i));
        if let Some(t) = ctx.code(s, 6) {
            let v = match crate::tables::map_code("DiagnosisType", &t) {
                Some(m) => Some(crate::datatypes::concept_value(m)),
                None => crate::datatypes::table_concept("0052", &t),
            };
            put(&mut diag, "use", v);
        }
        if let Some(rank) = ctx
            .code(s, 15)
            .and_then(|r| r.parse::<u32>().ok())
            .filter(|r| *r > 0)
        {
            diag.insert("rank", json!(rank));
        }
        push(ctx.res(ei), "diagnosis", Value::Object(diag));
    }
}

/// PR1 → Procedure.
pub fn pr1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    ctx.mark(s, 2);
    let mut p = Map::new();
    p.insert("status", json!("completed"));
    p.insert("subject", ctx.reference(pi));
    let code_el = ctx.first(s, 3);
    let mut code = code_el.and_then(codeable);
    if code.is_none() {
        code = ctx.string(s, 4).map(|t| json!({ "text": t }));
    } else {
        ctx.mark(s, 4);
    }
    let key = code_el
        .and_then(first_text)
        .unwrap_or_else(|| s.occ.to_string().into());
    put(&mut p, "code", code);
    let when = ctx.datetime(s, 5);
    put(&mut p, "performedDateTime", when.clone().map(Value::from));
    if let Some(t) = ctx.first(s, 6).and_then(codeable) {
        p.insert("category", t);
    }
    if let Some(ei) = st.encounter {
        p.insert("encounter", ctx.reference(ei));
    }
    let pu = ctx.entries[pi].uuid;
    let i = ctx.add(
        "Procedure",
        Request::Put,
        &[&pu, "PR1", &key, &when.unwrap_or_default()],
        p,
    );
    st.note = Some(NoteTarget::Annotation(i));
}

/// NTE → a note of the resource the segment follows (`NTE[Observation]`,
/// `NTE[ServiceRequest]`, `NTE[Appointment-Comment]`, `NTE[DocumentReference]`).
/// An NTE that follows nothing with notes is left in the unmapped report.
pub fn nte<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    match st.note {
        Some(NoteTarget::Annotation(i)) => {
            if let Some(a) = annotation(ctx, s) {
                push(ctx.res(i), "note", a);
            }
        }
        Some(NoteTarget::Comment(i)) => {
            if let Some(t) = ctx.field(s, 3).and_then(crate::datatypes::joined_text) {
                ctx.mark(s, 1);
                let r = ctx.res(i);
                let joined = match r.get("comment").and_then(Value::as_str) {
                    Some(prev) => format!("{prev}\n{t}"),
                    None => t,
                };
                r.insert("comment", Value::from(joined));
            }
        }
        Some(NoteTarget::Description(i)) => {
            if let Some(t) = ctx.field(s, 3).and_then(crate::datatypes::joined_text) {
                ctx.mark(s, 1);
                let r = ctx.res(i);
                let joined = match r.get("description").and_then(Value::as_str) {
                    Some(prev) => format!("{prev}\n{t}"),
                    None => t,
                };
                r.insert("description", Value::from(joined));
                st.document_notes.push((i, s));
            }
        }
        None => {}
    }
}
