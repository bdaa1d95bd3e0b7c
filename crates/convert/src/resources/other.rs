//! TXA → DocumentReference (`TXA[DocumentReference]`), RXA/RXR → Immunization
//! (`RXA[Immunization]`, `RXR[Immunization]`), SCH and AIS/AIG/AIL/AIP → Appointment
//! (`SCH[Appointment]`, `AI*[Appointment]`), FT1 → ChargeItem.

use crate::tree::{Map, Value};

use crate::ConvertError;
use crate::UnmappedReason;
use crate::ctx::{Ctx, Request, Seg, first_text, part, part_text, push, put};
use crate::datatypes::{
    codeable, ei_identifier, location_text, number, person_reference, table_concept,
};
use crate::message::{NoteTarget, State};
use crate::resources::add_keyed;
use crate::tables::map_code;
use crate::time::Dtm;

/// TXA-17 (document completion status, HL7 table 0271) → DocumentReference.docStatus.
fn doc_status(code: &str) -> Option<&'static str> {
    match code {
        "AU" | "LA" => Some("final"),
        "DI" | "DO" | "IP" | "IN" | "PA" => Some("preliminary"),
        _ => None,
    }
}

/// TXA → DocumentReference; its content comes from the OBX segments that follow.
pub fn txa<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    let mut d = Map::new();
    d.insert("status", json!("current"));
    if let Some(c) = ctx.code(s, 17) {
        match doc_status(&c) {
            Some(v) => {
                d.insert("docStatus", json!(v));
            }
            None => ctx.report(s, 17, UnmappedReason::UnknownCode),
        }
    }
    if let Some(c) = ctx.code(s, 2) {
        put(&mut d, "type", table_concept("0270", &c));
    }
    d.insert("subject", ctx.reference(pi));
    if let Some(e) = st.encounter {
        d.insert("context", json!({ "encounter": [ctx.reference(e)] }));
    }
    for n in [6, 4] {
        if let Some(t) = ctx.code(s, n) {
            match Dtm::parse(&t).and_then(|x| x.to_instant(ctx.tz.as_deref())) {
                Some(i) => {
                    d.or_insert("date", json!(i));
                }
                None => ctx.report(s, n, UnmappedReason::Invalid),
            }
        }
    }
    let authors: Vec<Value> = ctx
        .reps(s, 9)
        .into_iter()
        .filter_map(|e| person_reference(ctx, e))
        .collect();
    if !authors.is_empty() {
        d.insert("author", Value::Array(authors));
    }
    if let Some(a) = ctx.first(s, 10).and_then(|e| person_reference(ctx, e)) {
        d.insert("authenticator", a);
    }
    if let Some(c) = ctx.code(s, 18) {
        let v = match map_code("DocumentConfidentialityStatus", &c) {
            Some(m) => Some(crate::datatypes::concept_value(m)),
            None => table_concept("0272", &c),
        };
        put(&mut d, "securityLabel", v.map(|v| json!([v])));
    }
    if let Some(t) = ctx.field(s, 25).and_then(crate::datatypes::joined_text) {
        d.insert("description", Value::from(t));
    }
    let master = ctx.first(s, 12).and_then(|e| ei_identifier(ctx, e));
    if let Some(m) = &master {
        d.insert("masterIdentifier", m.clone());
    }
    let pu = ctx.entries[pi].uuid;
    let name = master
        .as_ref()
        .and_then(|m| m.get("value"))
        .and_then(Value::as_str)
        .map_or_else(|| s.occ.to_string(), str::to_owned);
    let i = add_keyed(
        ctx,
        (s, 12),
        "DocumentReference",
        master.as_ref(),
        &[&pu, "TXA", &name],
        d,
    );
    st.document = Some(i);
    st.txa = Some(s);
    st.documents.push((i, s));
    st.note = Some(NoteTarget::Description(i));
}

/// RXA → Immunization, with the order numbers of the ORC before it.
// one segment's fields in field order: splitting it would scatter the segment map
#[allow(clippy::too_many_lines)]
pub fn rxa<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) -> Result<(), ConvertError> {
    let Some(pi) = st.patient else { return Ok(()) };
    ctx.mark(s, 1);
    ctx.mark(s, 2);
    let orc = st.orc.take();
    let mut im = Map::new();
    let vaccine = ctx.first(s, 5).and_then(codeable).ok_or_else(|| {
        ctx.error(
            s,
            5,
            "an Immunization needs the administered code (vaccine)",
        )
    })?;
    let when = ctx.code(s, 3).ok_or_else(|| {
        ctx.error(
            s,
            3,
            "an Immunization needs the date/time of administration",
        )
    })?;
    let when = Dtm::parse(&when)
        .ok_or_else(|| ctx.error(s, 3, "the date/time of administration is not a valid DTM"))?;
    let (when, cut) = when.to_datetime(ctx.tz.as_deref());
    if cut {
        ctx.report(s, 3, UnmappedReason::TimeWithoutZone);
    }
    let mut status = "completed";
    if let Some(c) = ctx.code(s, 20)
        && let Some(m) = ctx.vocab(s, 20, "CompletionStatus", &c)
    {
        status = m.code;
    }
    if ctx.code(s, 21).as_deref() == Some("D") {
        status = "entered-in-error";
    }
    im.insert("status", json!(status));
    im.insert("vaccineCode", vaccine.clone());
    im.insert("patient", ctx.reference(pi));
    if let Some(e) = st.encounter {
        im.insert("encounter", ctx.reference(e));
    }
    im.insert("occurrenceDateTime", json!(when.clone()));
    if let Some(q) = ctx
        .code(s, 6)
        .and_then(|t| number(&t))
        .filter(|v| v.as_f64() != Some(999.0))
    {
        let units = ctx.first(s, 7);
        im.insert("doseQuantity", crate::datatypes::quantity(q, units));
    }
    if let Some(n) = ctx.first(s, 9) {
        let code = first_text(n).unwrap_or_default();
        // NIP001: 00 new record (primary source); 01–08 historical (reported)
        im.insert("primarySource", json!(code == "00"));
        if code != "00" {
            put(&mut im, "reportOrigin", codeable(n));
        }
    }
    let performers: Vec<Value> = ctx
        .reps(s, 10)
        .into_iter()
        .filter_map(|e| person_reference(ctx, e))
        .map(|who| json!({
            "function": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0443", "code": "AP", "display": "Administering Provider" }] },
            "actor": who,
        }))
        .collect();
    if !performers.is_empty() {
        im.insert("performer", Value::Array(performers));
    }
    put(&mut im, "lotNumber", ctx.string(s, 15).map(Value::String));
    put(&mut im, "expirationDate", ctx.date(s, 16).map(Value::from));
    if let Some(m) = ctx.first(s, 17) {
        let mut r = Map::new();
        if let Some(c) = part_text(m, 1) {
            let system = part_text(m, 3).map(|s| crate::datatypes::coding_system_value(&s));
            let mut id = Map::new();
            put(&mut id, "system", system);
            id.insert("value", Value::String(c));
            r.insert("identifier", Value::Object(id));
        }
        put(&mut r, "display", part_text(m, 2).map(Value::String));
        if !r.is_empty() {
            im.insert("manufacturer", Value::Object(r));
        }
    }
    let reasons: Vec<Value> = ctx.reps(s, 19).into_iter().filter_map(codeable).collect();
    if !reasons.is_empty() {
        im.insert("reasonCode", Value::Array(reasons));
    }
    if ctx.code(s, 21).as_deref() == Some("A") {
        put(&mut im, "recorded", ctx.datetime(s, 22).map(Value::from));
    }
    let refusal: Vec<Value> = ctx.reps(s, 18).into_iter().filter_map(codeable).collect();
    if let Some(r) = refusal.into_iter().next() {
        im.insert("statusReason", r);
    }
    let mut ids = Vec::new();
    if let Some(o) = orc {
        for (n, kind) in [(2, "PLAC"), (3, "FILL")] {
            if let Some(e) = ctx.first(o, n)
                && let Some(mut id) = ei_identifier(ctx, e)
            {
                id["type"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind }] });
                ids.push(id);
            }
        }
        ctx.mark(o, 1);
    }
    let key = ids
        .iter()
        .rev()
        .find(|i| i.get("system").is_some())
        .cloned();
    if !ids.is_empty() {
        im.insert("identifier", Value::Array(ids));
    }
    let pu = ctx.entries[pi].uuid;
    let code_key = ctx.first(s, 5).and_then(first_text).unwrap_or_default();
    let i = add_keyed(
        ctx,
        (orc.unwrap_or(s), 3),
        "Immunization",
        key.as_ref(),
        &[&pu, "RXA", &code_key, &when],
        im,
    );
    st.immunization = Some(i);
    st.report = None;
    st.obx_in_parent = 0;
    st.note = Some(NoteTarget::Annotation(i));
    Ok(())
}

/// RXR → Immunization route (RXR-1) and site (RXR-2).
pub fn rxr<'a>(ctx: &mut Ctx<'a, '_>, st: &State<'a>, s: Seg<'a>) {
    let Some(i) = st.immunization else { return };
    let route = ctx.first(s, 1).and_then(codeable);
    let site = ctx.first(s, 2).and_then(codeable);
    let r = ctx.res(i);
    put(r, "route", route);
    put(r, "site", site);
}

/// The Appointment status of a SIU event when SCH-25 does not give one.
fn appointment_status(event: &str) -> &'static str {
    match event {
        "S15" | "S16" => "cancelled",
        "S17" => "entered-in-error",
        "S26" => "noshow",
        "S25" => "proposed",
        _ => "booked",
    }
}

/// AIx/SCH filler status (table 0278) → Appointment.participant.status.
fn participant_status(code: Option<&str>) -> &'static str {
    match code {
        Some("Booked" | "Complete" | "Started" | "Overbook") => "accepted",
        Some("Cancelled" | "Deleted" | "Blocked") => "declined",
        Some("Pending" | "Waitlist") => "tentative",
        _ => "needs-action",
    }
}

/// SCH → Appointment, with the patient as participant.
pub fn sch<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    let mut a = Map::new();
    let placer = ctx.first(s, 1).and_then(|e| ei_identifier(ctx, e));
    let filler = ctx.first(s, 2).and_then(|e| ei_identifier(ctx, e));
    let status = ctx
        .code(s, 25)
        .and_then(|c| {
            ctx.vocab(s, 25, "FillerStatusCodes[Appointment]", &c)
                .map(|m| m.code)
        })
        .unwrap_or_else(|| appointment_status(&st.event));
    a.insert("status", json!(status));
    // SCH-7 is a reason (table 0276) or a type (table 0277); SCH-8 a type
    if let Some(e) = ctx.first(s, 7) {
        let table = part_text(e, 3).unwrap_or_default();
        let code = first_text(e).unwrap_or_default();
        if table == "HL70277" {
            let v = map_code("AppointmentTypeCodes", &code)
                .map(crate::datatypes::concept_value)
                .or_else(|| codeable(e));
            put(&mut a, "appointmentType", v);
        } else {
            let v = map_code("AppointmentReasonCodes", &code)
                .map(crate::datatypes::concept_value)
                .or_else(|| codeable(e));
            put(&mut a, "reasonCode", v.map(|v| json!([v])));
        }
    }
    if let Some(e) = ctx.first(s, 8) {
        let code = first_text(e).unwrap_or_default();
        let v = map_code("AppointmentTypeCodes", &code)
            .map(crate::datatypes::concept_value)
            .or_else(|| codeable(e));
        put(&mut a, "appointmentType", v);
    }
    if let Some(d) = ctx.code(s, 9).and_then(|t| t.parse::<f64>().ok()) {
        let unit = ctx.code(s, 10).unwrap_or_else(|| "min".into());
        let minutes = match unit.to_ascii_lowercase().as_str() {
            "min" | "m" | "minutes" => Some(d),
            "h" | "hr" | "hour" | "hours" => Some(d * 60.0),
            "s" | "sec" | "seconds" => Some(d / 60.0),
            _ => None,
        };
        match minutes.filter(|m| m.fract() == 0.0 && *m > 0.0) {
            Some(m) => {
                a.insert("minutesDuration", json!(m as i64));
            }
            None => ctx.report(s, 9, UnmappedReason::Invalid),
        }
    }
    if let Some(tq) = ctx.first(s, 11) {
        let tz = ctx.tz.clone();
        for (n, key) in [(4, "start"), (5, "end")] {
            if let Some(v) = part(tq, n)
                .and_then(first_text)
                .and_then(|t| Dtm::parse(&t))
                .and_then(|d| d.to_instant(tz.as_deref()))
            {
                a.insert(key, json!(v));
            }
        }
    }
    a.insert(
        "participant",
        json!([{ "actor": ctx.reference(pi), "status": "accepted" }]),
    );
    let ids: Vec<Value> = placer.iter().chain(filler.iter()).cloned().collect();
    let key = filler
        .as_ref()
        .filter(|f| f.get("system").is_some())
        .or(placer.as_ref());
    let name = ids
        .first()
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map_or_else(|| s.occ.to_string(), str::to_owned);
    if !ids.is_empty() {
        a.insert("identifier", Value::Array(ids));
    }
    let pu = ctx.entries[pi].uuid;
    let i = add_keyed(ctx, (s, 2), "Appointment", key, &[&pu, "SCH", &name], a);
    st.appointment = Some(i);
    st.note = Some(NoteTarget::Comment(i));
}

/// AIS (service), AIG (resource), AIL (location), AIP (person) → the Appointment's service
/// type and participants.
pub fn resource<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(ai) = st.appointment else { return };
    ctx.mark(s, 1);
    st.note = Some(NoteTarget::Comment(ai));
    let tz = ctx.tz.clone();
    let (start_field, status_field) = match s.id() {
        "AIS" => (4, 10),
        "AIG" => (8, 14),
        _ => (6, 12),
    };
    let start = ctx
        .code(s, start_field)
        .and_then(|t| Dtm::parse(&t))
        .and_then(|d| d.to_instant(tz.as_deref()));
    let status = participant_status(ctx.code(s, status_field).as_deref());
    let entry = match s.id() {
        "AIS" => {
            if let Some(c) = ctx.first(s, 3).and_then(codeable) {
                push(ctx.res(ai), "serviceType", c);
            }
            None
        }
        "AIG" => ctx.first(s, 3).and_then(|e| {
            let t = part_text(e, 2).or_else(|| part_text(e, 1))?;
            let role = ctx.first(s, 4).and_then(codeable);
            let mut p = Map::new();
            put(&mut p, "type", role.map(|r| json!([r])));
            p.insert("actor", json!({ "display": t }));
            Some(p)
        }),
        "AIL" => ctx.first(s, 3).and_then(location_text).map(|t| {
            let mut p = Map::new();
            p.insert("actor", json!({ "display": t }));
            p
        }),
        _ => ctx
            .first(s, 3)
            .and_then(|e| person_reference(ctx, e))
            .map(|who| {
                let mut p = Map::new();
                p.insert("actor", who);
                p
            }),
    };
    if let Some(mut p) = entry {
        if s.id() == "AIP"
            && let Some(role) = ctx.first(s, 4).and_then(codeable)
        {
            p.insert("type", json!([role]));
        }
        p.insert("status", json!(status));
        push(ctx.res(ai), "participant", Value::Object(p));
    }
    if let Some(v) = start {
        ctx.res(ai).or_insert("start", json!(v));
    }
}

/// FT1 → ChargeItem (`FT1[ChargeItem]` is not in the IG's R4 set; mapped by name).
pub fn ft1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) -> Result<(), ConvertError> {
    let Some(pi) = st.patient else { return Ok(()) };
    ctx.mark(s, 1);
    st.orc = None;
    let code = ctx
        .first(s, 7)
        .and_then(codeable)
        .ok_or_else(|| ctx.error(s, 7, "a ChargeItem needs the transaction code"))?;
    let mut c = Map::new();
    let status = match ctx.code(s, 6).as_deref() {
        Some("CG" | "CD" | "AJ") => "billable",
        Some("PY") => "billed",
        _ => "unknown",
    };
    c.insert("status", json!(status));
    c.insert("code", code);
    c.insert("subject", ctx.reference(pi));
    if let Some(e) = st.encounter {
        c.insert("context", ctx.reference(e));
    }
    if let Some(dr) = ctx.first(s, 4) {
        let when = part(dr, 1).and_then(|ts| ctx.datetime_of(s, 4, ts));
        put(&mut c, "occurrenceDateTime", when.map(Value::from));
    }
    put(&mut c, "enteredDate", ctx.datetime(s, 5).map(Value::from));
    if let Some(q) = ctx.code(s, 10).and_then(|t| number(&t)) {
        c.insert("quantity", json!({ "value": q }));
    }
    if let Some(cp) = ctx.first(s, 11)
        && let Some(mo) = part(cp, 1)
        && let Some(amount) = part_text(mo, 1).and_then(|t| number(&t))
    {
        let mut m = Map::new();
        m.insert("value", amount);
        if let Some(cur) =
            part_text(mo, 2).filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            m.insert("currency", json!(cur));
        }
        c.insert("priceOverride", Value::Object(m));
    }
    let reasons: Vec<Value> = ctx.reps(s, 19).into_iter().filter_map(codeable).collect();
    if !reasons.is_empty() {
        c.insert("reason", Value::Array(reasons));
    }
    let performers: Vec<Value> = ctx
        .reps(s, 20)
        .into_iter()
        .filter_map(|e| person_reference(ctx, e))
        .map(|who| json!({ "actor": who }))
        .collect();
    if !performers.is_empty() {
        c.insert("performer", Value::Array(performers));
    }
    if let Some(who) = ctx.first(s, 21).and_then(|e| person_reference(ctx, e)) {
        c.insert("enterer", who);
    }
    if let Some(a) = st.account {
        c.insert("account", json!([ctx.reference(a)]));
    }
    let txid = ctx.code(s, 2);
    if let Some(t) = &txid {
        c.insert("identifier", json!([{ "value": t }]));
    }
    let pu = ctx.entries[pi].uuid;
    let name = txid.unwrap_or_else(|| ctx.code(s, 1).unwrap_or_else(|| s.occ.to_string().into()));
    let i = ctx.add("ChargeItem", Request::Put, &[&pu, "FT1", &name], c);
    st.note = Some(NoteTarget::Annotation(i));
    Ok(())
}

/// After the walk: a DocumentReference without content is not written (MDM^T02 must carry
/// the document; other events only notify, and their TXA is reported).
pub fn finish<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>) -> Result<(), ConvertError> {
    let has_content = |ctx: &Ctx<'a, '_>, i: usize| ctx.entries[i].resource.contains_key("content");
    if st.event == "T02" && st.txa.is_some() && st.document.is_some_and(|di| !has_content(ctx, di))
    {
        return Err(ConvertError::MissingSegment {
            segment: "OBX",
            reason: "MDM^T02 carries the document in OBX segments (ED, RP, TX, FT or ST)".into(),
        });
    }
    // DocumentReference.content is required: a TXA whose document never came (a TXA in a
    // message without document OBX) stays in the unmapped report instead; removed from the
    // last, so the indices of the others hold
    let mut empty: Vec<(usize, Seg<'a>)> = st
        .documents
        .iter()
        .copied()
        .filter(|&(i, _)| !has_content(ctx, i))
        .collect();
    empty.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
    for (i, txa) in empty {
        ctx.entries.remove(i);
        ctx.unmark(txa);
        for &(_, nte) in st.document_notes.iter().filter(|(d, _)| *d == i) {
            ctx.unmark(nte);
        }
        st.document = None;
    }
    Ok(())
}
