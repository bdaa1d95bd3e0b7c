//! ORC/OBR → ServiceRequest (`ORC[ServiceRequest]`, `OBR[ServiceRequest]`) or, in results,
//! DiagnosticReport (`OBR[DiagnosticReport]`); OBX → Observation (`OBX[Observation]`,
//! `OBX[Observation-Component]`) or DocumentReference content (`OBX[DocumentReference]`);
//! SPM → Specimen (`SPM[Specimen]`); TQ1 → timing (`TQ1[ServiceRequest]`).

use crate::tree::{Map, Text, Value};

use crate::ConvertError;
use crate::UnmappedReason;
use crate::ctx::{Ctx, Seg, first_text, part, part_text, push, put, text};
use crate::datatypes::{
    codeable, concept_value, ed_attachment, ei_identifier, number, person_reference, quantity,
    rp_attachment, table_concept, text_attachment,
};
use crate::message::{Kind, NoteTarget, State};
use crate::resources::add_keyed;
use crate::tables::map_code;
use crate::time::{Dtm, tm_to_time};

/// An order identifier (EI) with its v2-0203 type (`PLAC`, `FILL`).
fn order_identifier<'a>(
    ctx: &mut Ctx<'a, '_>,
    s: Seg<'a>,
    n: usize,
    kind: &'static str,
) -> Option<Value> {
    let e = ctx.first(s, n)?;
    let mut id = ei_identifier(ctx, e)?;
    id["type"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind }] });
    Some(id)
}

/// The placer and filler numbers of an order: ORC-2/ORC-3, else OBR-2/OBR-3.
fn order_ids<'a>(
    ctx: &mut Ctx<'a, '_>,
    orc: Option<Seg<'a>>,
    obr: Option<Seg<'a>>,
) -> (Option<Value>, Option<Value>) {
    let mut placer = orc.and_then(|o| order_identifier(ctx, o, 2, "PLAC"));
    let mut filler = orc.and_then(|o| order_identifier(ctx, o, 3, "FILL"));
    if let Some(b) = obr {
        let p = order_identifier(ctx, b, 2, "PLAC");
        let f = order_identifier(ctx, b, 3, "FILL");
        placer = placer.or(p);
        filler = filler.or(f);
    }
    (placer, filler)
}

fn priority(code: &str) -> Option<&'static str> {
    match code {
        "S" => Some("stat"),
        "A" => Some("asap"),
        "R" => Some("routine"),
        "P" | "C" | "T" => Some("urgent"),
        _ => None,
    }
}

/// Makes the ServiceRequest of an ORC and/or OBR.
fn service_request<'a>(
    ctx: &mut Ctx<'a, '_>,
    st: &mut State<'a>,
    orc: Option<Seg<'a>>,
    obr: Option<Seg<'a>>,
) -> Option<usize> {
    let pi = st.patient?;
    let src = obr.or(orc)?;
    let mut r = Map::new();
    let (placer, filler) = order_ids(ctx, orc, obr);
    let status = orc
        .and_then(|o| {
            let c = ctx.code(o, 5)?;
            ctx.vocab(o, 5, "OrderStatus", &c).map(|m| m.code)
        })
        .or_else(|| {
            let o = orc?;
            let c = ctx.code(o, 1)?;
            ctx.vocab(o, 1, "OrderControlCode[ServiceRequest.status]", &c)
                .map(|m| m.code)
        })
        .unwrap_or("unknown");
    r.insert("status", json!(status));
    r.insert("intent", json!("order"));
    r.insert("subject", ctx.reference(pi));
    if let Some(e) = st.encounter {
        r.insert("encounter", ctx.reference(e));
    }
    let ids: Vec<Value> = placer.iter().chain(filler.iter()).cloned().collect();
    if !ids.is_empty() {
        r.insert("identifier", Value::Array(ids));
    }
    if let Some(b) = obr {
        ctx.mark(b, 1);
        put(&mut r, "code", ctx.first(b, 4).and_then(codeable));
        if let Some(p) = ctx.code(b, 5).and_then(|c| priority(&c)) {
            r.insert("priority", json!(p));
        }
        let reasons: Vec<Value> = ctx.reps(b, 31).into_iter().filter_map(codeable).collect();
        if !reasons.is_empty() {
            r.insert("reasonCode", Value::Array(reasons));
        }
        if let Some(who) = ctx.first(b, 16).and_then(|e| person_reference(ctx, e)) {
            r.insert("requester", who);
        }
        put(
            &mut r,
            "occurrenceDateTime",
            ctx.datetime(b, 6).map(Value::from),
        );
    }
    if let Some(o) = orc {
        put(&mut r, "authoredOn", ctx.datetime(o, 9).map(Value::from));
        if let Some(who) = ctx.first(o, 12).and_then(|e| person_reference(ctx, e)) {
            r.insert("requester", who);
        }
    }
    let pu = ctx.entries[pi].uuid;
    let name_value = placer
        .as_ref()
        .or(filler.as_ref())
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map_or_else(
            || obr.or(orc).map_or(0, |s| s.occ).to_string(),
            str::to_owned,
        );
    let key = placer
        .as_ref()
        .filter(|p| p.get("system").is_some())
        .or(filler.as_ref());
    let i = add_keyed(
        ctx,
        (src, 2),
        "ServiceRequest",
        key,
        &[&pu, "order", &name_value],
        r,
    );
    st.request = Some(i);
    if let Some(t) = st.tq1.take() {
        apply_tq1(ctx, st, t);
    }
    Some(i)
}

/// ORC: begins an order group; the request is made when its OBR (or the next group) comes.
pub fn orc<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    flush_orc(ctx, st);
    st.orc = Some(s);
    st.group_orc = Some(s);
    st.request = None;
    st.report = None;
    st.observation = None;
    st.specimen = None;
    st.immunization = None;
    st.obx_in_parent = 0;
    st.note = None;
}

/// An ORC that no OBR, RXA or FT1 used becomes a ServiceRequest of its own (in orders), else
/// stays in the unmapped report.
pub fn flush_orc<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>) {
    if let Some(o) = st.orc.take()
        && matches!(
            st.kind,
            Some(Kind::Orders | Kind::Results | Kind::Other | Kind::Adt)
        )
        && let Some(i) = service_request(ctx, st, Some(o), None)
    {
        st.note = Some(NoteTarget::Annotation(i));
    }
}

/// OBR → DiagnosticReport (results) or ServiceRequest (orders and everything else).
// one segment's fields in field order: splitting it would scatter the segment map
#[allow(clippy::too_many_lines)]
pub fn obr<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) -> Result<(), ConvertError> {
    let orc = st.orc.take();
    st.observation = None;
    st.specimen = None;
    st.obx_in_parent = 0;
    if st.kind != Some(Kind::Results) {
        let i = service_request(ctx, st, orc, Some(s));
        st.report = None;
        st.note = i.map(NoteTarget::Annotation);
        return Ok(());
    }
    let Some(pi) = st.patient else { return Ok(()) };
    let code = ctx.first(s, 4).and_then(codeable).ok_or_else(|| {
        ctx.error(
            s,
            4,
            "a DiagnosticReport needs its code (universal service identifier)",
        )
    })?;
    // the order the report answers, when the message names it
    let request = if orc.is_some() || ctx.field(s, 2).is_some() {
        let i = service_request(ctx, st, orc, Some(s));
        if let Some(i) = i {
            ctx.res(i).insert("status", json!("completed"));
        }
        i
    } else {
        None
    };
    let mut d = Map::new();
    let (placer, filler) = order_ids(ctx, orc, Some(s));
    let status = ctx
        .code(s, 25)
        .and_then(|c| {
            ctx.vocab(s, 25, "ResultStatus[Non-Queries]", &c)
                .map(|m| m.code)
        })
        .unwrap_or("unknown");
    d.insert("status", json!(status));
    d.insert("code", code);
    d.insert("subject", ctx.reference(pi));
    if let Some(e) = st.encounter {
        d.insert("encounter", ctx.reference(e));
    }
    if let Some(r) = request {
        d.insert("basedOn", json!([ctx.reference(r)]));
    }
    if let Some(f) = &filler {
        d.insert("identifier", json!([f]));
    }
    if let Some(c) = ctx.code(s, 24) {
        let v = match map_code("DiagnosticServiceSectionID", &c) {
            Some(m) => Some(concept_value(m)),
            None => table_concept("0074", &c),
        };
        put(&mut d, "category", v.map(|v| json!([v])));
    }
    let start = ctx.datetime(s, 7);
    let end = ctx.datetime(s, 8);
    match (start, end) {
        (Some(a), Some(b)) => {
            d.insert("effectivePeriod", json!({ "start": a, "end": b }));
        }
        (Some(a), None) => {
            d.insert("effectiveDateTime", json!(a));
        }
        (None, Some(b)) => {
            d.insert("effectivePeriod", json!({ "end": b }));
        }
        (None, None) => {}
    }
    if let Some(t) = ctx.code(s, 22) {
        match Dtm::parse(&t).and_then(|d| d.to_instant(ctx.tz.as_deref())) {
            Some(i) => {
                d.insert("issued", json!(i));
            }
            None => ctx.report(s, 22, UnmappedReason::Invalid),
        }
    }
    let interpreters: Vec<Value> = ctx
        .reps(s, 32)
        .into_iter()
        .filter_map(|e| part(e, 1))
        .filter_map(|cnn| person_reference(ctx, cnn))
        .collect();
    if !interpreters.is_empty() {
        d.insert("resultsInterpreter", Value::Array(interpreters));
    }
    let pu = ctx.entries[pi].uuid;
    let name_value = filler
        .as_ref()
        .or(placer.as_ref())
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map_or_else(|| s.occ.to_string(), str::to_owned);
    let i = add_keyed(
        ctx,
        (s, 3),
        "DiagnosticReport",
        filler.as_ref(),
        &[&pu, "OBR", &name_value],
        d,
    );
    st.report = Some(i);
    st.note = request.map(NoteTarget::Annotation);
    Ok(())
}

/// TQ1 → the timing of the current request (occurrence, priority) or appointment (start,
/// end); before its request exists, it waits.
pub fn tq1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    if st.appointment.is_some() || (st.request.is_some() && st.orc.is_none()) {
        apply_tq1(ctx, st, s);
    } else {
        st.tq1 = Some(s);
    }
}

fn apply_tq1<'a>(ctx: &mut Ctx<'a, '_>, st: &State<'a>, s: Seg<'a>) {
    ctx.mark(s, 1);
    let instant = |ctx: &mut Ctx<'a, '_>, n: usize| {
        let t = ctx.code(s, n)?;
        let d = Dtm::parse(&t);
        if d.is_none() {
            ctx.report(s, n, UnmappedReason::Invalid);
        }
        d
    };
    let start = instant(ctx, 7);
    let end = instant(ctx, 8);
    if let Some(a) = st.appointment {
        let tz = ctx.tz.clone();
        let r = ctx.res(a);
        if let Some(v) = start.and_then(|d| d.to_instant(tz.as_deref())) {
            r.insert("start", json!(v));
        }
        if let Some(v) = end.and_then(|d| d.to_instant(tz.as_deref())) {
            r.insert("end", json!(v));
        }
        return;
    }
    let Some(ri) = st.request else { return };
    let tz = ctx.tz.clone();
    let mut p = Map::new();
    put(
        &mut p,
        "start",
        start.map(|d| Value::from(d.to_datetime(tz.as_deref()).0)),
    );
    put(
        &mut p,
        "end",
        end.map(|d| Value::from(d.to_datetime(tz.as_deref()).0)),
    );
    let pr = ctx.code(s, 9).and_then(|c| priority(&c));
    let r = ctx.res(ri);
    if !p.is_empty() {
        r.remove("occurrenceDateTime");
        r.insert("occurrencePeriod", Value::Object(p));
    }
    if let Some(pr) = pr {
        r.insert("priority", json!(pr));
    }
}

/// The value of an OBX by its value type (OBX-2), as `(element name, value)` pairs.
fn obx_values<'a>(ctx: &mut Ctx<'a, '_>, s: Seg<'a>, vt: &str) -> Vec<(&'static str, Value)> {
    let reps = ctx.reps(s, 5);
    let units = ctx.first(s, 6);
    let mut out = Vec::new();
    let as_string = |e| {
        let parts: Vec<Text> = (1..=e_components(e))
            .filter_map(|i| part_text(e, i))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    match vt {
        "ST" | "TX" | "FT" | "TN" => {
            let parts: Vec<Text> = reps.iter().filter_map(|e| text(*e)).collect();
            if !parts.is_empty() {
                out.push(("valueString", Value::from(parts.join("\n"))));
            }
        }
        _ => {
            for e in reps {
                let v = match vt {
                    "NM" => first_text(e)
                        .and_then(|t| number(&t))
                        .map(|n| ("valueQuantity", quantity(n, units))),
                    "SN" => sn_value(e, units),
                    "CWE" | "CE" | "CNE" | "CF" | "IS" | "ID" => {
                        codeable(e).map(|c| ("valueCodeableConcept", c))
                    }
                    "DT" | "DTM" | "TS" => first_text(e).and_then(|t| Dtm::parse(&t)).map(|d| {
                        (
                            "valueDateTime",
                            Value::from(d.to_datetime(ctx.tz.as_deref()).0),
                        )
                    }),
                    "TM" => first_text(e)
                        .and_then(|t| tm_to_time(&t))
                        .map(|t| ("valueTime", Value::from(t))),
                    "ED" => ed_attachment(e).map(|a| ("valueAttachment", a)),
                    "RP" => rp_attachment(e).map(|a| ("valueAttachment", a)),
                    _ => None,
                };
                if let Some(v) = v {
                    out.push(v);
                } else {
                    {
                        if matches!(vt, "NM" | "SN" | "DT" | "DTM" | "TS" | "TM" | "ED" | "RP") {
                            ctx.report(s, 5, UnmappedReason::Invalid);
                        }
                        if let Some(t) = as_string(e) {
                            out.push(("valueString", Value::from(t)));
                        }
                    }
                }
            }
        }
    }
    out
}

fn e_components(e: hl7v2::Element<'_>) -> usize {
    match e.level() {
        hl7v2::Level::Field => e.children().next().map_or(0, |r| r.children().count()),
        _ => e.children().count(),
    }
}

/// SN → Quantity (with comparator), Range (`-`) or Ratio (`:`, `/`) (`SN[…]`).
fn sn_value(
    e: hl7v2::Element<'_>,
    units: Option<hl7v2::Element<'_>>,
) -> Option<(&'static str, Value)> {
    let cmp = part_text(e, 1);
    let n1 = part_text(e, 2).and_then(|t| number(&t));
    let sep = part_text(e, 3);
    let n2 = part_text(e, 4).and_then(|t| number(&t));
    match (cmp.as_deref(), n1, sep.as_deref(), n2) {
        (None | Some("="), Some(a), Some("-"), Some(b)) => Some((
            "valueRange",
            json!({ "low": quantity(a, units), "high": quantity(b, units) }),
        )),
        (None | Some("="), Some(a), Some(":" | "/"), Some(b)) => Some((
            "valueRatio",
            json!({ "numerator": { "value": a }, "denominator": { "value": b } }),
        )),
        (c, Some(a), None, None) if matches!(c, None | Some("=" | "<" | ">" | "<=" | ">=")) => {
            let mut q = quantity(a, units);
            if let Some(c) = c.filter(|c| *c != "=") {
                q["comparator"] = Value::from(c.to_owned());
            }
            Some(("valueQuantity", q))
        }
        _ => None,
    }
}

/// The extension saying why a required element has no value.
const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/// OBX → Observation, or content of the current DocumentReference (MDM).
// one segment's fields in field order: splitting it would scatter the segment map
#[allow(clippy::too_many_lines)]
pub fn obx<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    ctx.mark(s, 1);
    if st.kind == Some(Kind::Document)
        && let Some(di) = st.document
    {
        document_content(ctx, st, s, di);
        return;
    }
    let Some(pi) = st.patient else { return };
    // Observation.code is 1..1: an OBX without OBX-3 keeps its value under a code that says
    // why it is absent (data-absent-reason), and the gap is reported
    let code = ctx.first(s, 3).and_then(codeable).unwrap_or_else(|| {
        ctx.report(s, 3, UnmappedReason::MissingRequired);
        json!({
            "extension": [{ "url": DATA_ABSENT_REASON, "valueCode": "unknown" }],
            "text": "observation identifier (OBX-3) not sent",
        })
    });
    let code_key = ctx.first(s, 3).and_then(first_text).unwrap_or_default();
    let mut o = Map::new();
    let status = ctx
        .code(s, 11)
        .and_then(|c| {
            ctx.vocab(s, 11, "ObservationResultStatusCodesInterpretation", &c)
                .map(|m| m.code)
        })
        .unwrap_or("unknown");
    o.insert("status", json!(status));
    o.insert("code", code.clone());
    o.insert("subject", ctx.reference(pi));
    if let Some(e) = st.encounter {
        o.insert("encounter", ctx.reference(e));
    }
    let vt = ctx.code(s, 2).unwrap_or_default();
    let values = obx_values(ctx, s, &vt);
    if values.len() == 1 || values.iter().all(|(k, _)| *k == "valueString") && !values.is_empty() {
        let (k, v) = values
            .into_iter()
            .next()
            .unwrap_or(("valueString", Value::Null));
        if k == "valueAttachment" {
            push(
                &mut o,
                "extension",
                json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value", "valueAttachment": v }),
            );
        } else if !v.is_null() {
            o.insert(k, v);
        }
    } else {
        // repeated values: one component each (`OBX[Observation-Component]`)
        for (k, v) in values {
            let mut c = Map::new();
            c.insert("code", code.clone());
            if k == "valueAttachment" {
                c.insert("extension", json!([{ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value", "valueAttachment": v }]));
            } else {
                c.insert(k, v);
            }
            push(&mut o, "component", Value::Object(c));
        }
    }
    if let Some(range) = ctx.string(s, 7) {
        let units = ctx.first(s, 6);
        let rr = match range.split_once('-').map(|(a, b)| (number(a), number(b))) {
            Some((Some(a), Some(b))) => {
                json!({ "low": quantity(a, units), "high": quantity(b, units), "text": range })
            }
            _ => json!({ "text": range }),
        };
        o.insert("referenceRange", json!([rr]));
    }
    let interp: Vec<Value> = ctx
        .reps(s, 8)
        .into_iter()
        .filter_map(|e| {
            let c = first_text(e).unwrap_or_default();
            map_code("InterpretationCodes", &c)
                .map(concept_value)
                .or_else(|| codeable(e))
        })
        .collect();
    if !interp.is_empty() {
        o.insert("interpretation", Value::Array(interp));
    }
    let effective = ctx.datetime(s, 14).or_else(|| {
        let r = st.report?;
        let e = &ctx.entries[r].resource;
        e.get("effectiveDateTime")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    put(&mut o, "effectiveDateTime", effective.map(Value::from));
    let mut performers: Vec<Value> = ctx
        .reps(s, 16)
        .into_iter()
        .filter_map(|e| person_reference(ctx, e))
        .collect();
    if let Some(org) = ctx
        .first(s, 23)
        .and_then(|e| crate::datatypes::org_reference(ctx, e))
    {
        performers.push(org);
    }
    if !performers.is_empty() {
        o.insert("performer", Value::Array(performers));
    }
    put(&mut o, "method", ctx.first(s, 17).and_then(codeable));
    if let Some(im) = st.immunization {
        o.insert("partOf", json!([ctx.reference(im)]));
    }
    let ident = ctx.first(s, 21).and_then(|e| ei_identifier(ctx, e));
    if let Some(id) = &ident {
        o.insert("identifier", json!([id]));
    }
    let sub_id = ctx.code(s, 4).unwrap_or_default();
    st.obx_in_parent += 1;
    let parent = st.report.or(st.immunization).or(st.request).unwrap_or(pi);
    let parent_uuid = ctx.entries[parent].uuid;
    let position = st.obx_in_parent.to_string();
    let i = add_keyed(
        ctx,
        (s, 21),
        "Observation",
        ident.as_ref(),
        &[&parent_uuid, "OBX", &code_key, &sub_id, &position],
        o,
    );
    if let Some(r) = st.report {
        let reference = ctx.reference(i);
        push(ctx.res(r), "result", reference);
    }
    st.observation = Some(i);
    st.note = Some(NoteTarget::Annotation(i));
}

/// OBX in MDM → `content` of the DocumentReference: ED/RP attachments, text lines (TX, FT, ST)
/// gathered into one text attachment.
fn document_content<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>, di: usize) {
    let vt = ctx.code(s, 2).unwrap_or_default();
    st.note = Some(NoteTarget::Description(di));
    let attachment = match vt.as_str() {
        "ED" => ctx
            .first(s, 5)
            .and_then(|e| ed_attachment(e).or_else(|| content_type_only(e))),
        "RP" => ctx.first(s, 5).and_then(rp_attachment),
        "TX" | "FT" | "ST" => {
            let Some(t) = ctx.field(s, 5).and_then(crate::datatypes::joined_text) else {
                return;
            };
            ctx.mark(s, 2);
            ctx.mark(s, 3);
            ctx.mark(s, 4);
            ctx.mark(s, 11);
            // consecutive text lines make one text attachment, written when they end
            match &mut st.doc_text {
                Some((d, text)) if *d == di => {
                    text.push('\n');
                    text.push_str(&t);
                }
                _ => {
                    flush_document_text(ctx, st);
                    st.doc_text = Some((di, t));
                }
            }
            return;
        }
        _ => None,
    };
    if let Some(a) = attachment {
        ctx.mark(s, 2);
        ctx.mark(s, 3);
        ctx.mark(s, 11);
        flush_document_text(ctx, st);
        push(ctx.res(di), "content", json!({ "attachment": a }));
    }
}

/// Writes the gathered text lines of a document as one `text/plain` attachment.
pub fn flush_document_text(ctx: &mut Ctx<'_, '_>, st: &mut State<'_>) {
    if let Some((di, text)) = st.doc_text.take() {
        push(
            ctx.res(di),
            "content",
            json!({ "attachment": text_attachment(&text, "text/plain") }),
        );
    }
}

/// An ED without data: an Attachment with its content type only.
fn content_type_only(e: hl7v2::Element<'_>) -> Option<Value> {
    let t = part_text(e, 2)?;
    let sub = part_text(e, 3)?;
    let mime = format!("{}/{}", t.to_ascii_lowercase(), sub.to_ascii_lowercase());
    (!mime.contains(char::is_whitespace)).then(|| json!({ "contentType": mime }))
}

/// SPM → Specimen, listed in the current DiagnosticReport.
pub fn spm<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    let mut sp = Map::new();
    sp.insert("subject", ctx.reference(pi));
    let mut ids = Vec::new();
    if let Some(eip) = ctx.first(s, 2) {
        for (n, kind) in [(1, "PLAC"), (2, "FILL")] {
            if let Some(mut id) = part(eip, n).and_then(|e| ei_identifier(ctx, e)) {
                id["type"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind }] });
                ids.push(id);
            }
        }
    }
    put(&mut sp, "type", ctx.first(s, 4).and_then(codeable));
    let mut collection = Map::new();
    put(
        &mut collection,
        "method",
        ctx.first(s, 7).and_then(codeable),
    );
    put(
        &mut collection,
        "bodySite",
        ctx.first(s, 8).and_then(codeable),
    );
    if let Some(dr) = ctx.first(s, 17) {
        let start = part(dr, 1).and_then(|ts| ctx.datetime_of(s, 17, ts));
        put(&mut collection, "collectedDateTime", start.map(Value::from));
    }
    if !collection.is_empty() {
        sp.insert("collection", Value::Object(collection));
    }
    put(
        &mut sp,
        "receivedTime",
        ctx.datetime(s, 18).map(Value::from),
    );
    let key_id = ids.iter().find(|i| i.get("system").is_some()).cloned();
    let name = ids
        .first()
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map_or_else(|| s.occ.to_string(), str::to_owned);
    if !ids.is_empty() {
        sp.insert("identifier", Value::Array(ids));
    }
    let parent = st.report.unwrap_or(pi);
    let pu = ctx.entries[parent].uuid;
    let i = add_keyed(
        ctx,
        (s, 2),
        "Specimen",
        key_id.as_ref(),
        &[&pu, "SPM", &name],
        sp,
    );
    if let Some(r) = st.report {
        let reference = ctx.reference(i);
        push(ctx.res(r), "specimen", reference);
    }
    st.specimen = Some(i);
    st.note = Some(NoteTarget::Annotation(i));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        assert_eq!(priority("S"), Some("stat"));
        assert_eq!(priority("X"), None);
    }
}
