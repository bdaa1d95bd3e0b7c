//! PV1 → Encounter (`PV1[Encounter]`), PV2 (`PV2[Encounter]`).

use crate::tree::{Map, Value};

use crate::ctx::{Ctx, Request, Seg, first_text, push, put};
use crate::datatypes::{
    codeable, concept_value, identifier, location_text, person_reference, table_concept,
};
use crate::message::{Kind, State};
use crate::tables::map_code;

/// Participant fields of PV1 and their v3 ParticipationType codes.
const PARTICIPANTS: &[(usize, &str, &str)] = &[
    (7, "ATND", "attender"),
    (8, "REF", "referrer"),
    (9, "CON", "consultant"),
    (17, "ADM", "admitter"),
];

/// PV1 → Encounter.
// one segment's fields in field order: splitting it would scatter the segment map
#[allow(clippy::too_many_lines)]
pub fn pv1<'a>(ctx: &mut Ctx<'a, '_>, st: &mut State<'a>, s: Seg<'a>) {
    let Some(pi) = st.patient else { return };
    ctx.mark(s, 1);
    let mut e = Map::new();
    e.insert("subject", ctx.reference(pi));
    let class_code = ctx.code(s, 2);
    let class = match class_code.as_deref() {
        Some(c) => match ctx.vocab(s, 2, "PatientClass[EncounterClass]", c) {
            Some(m) => json!({ "system": m.system, "code": m.code, "display": m.display }),
            None => {
                json!({ "system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": crate::datatypes::code(c).unwrap_or_else(|| "U".into()) })
            }
        },
        None => {
            json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK", "display": "unknown" })
        }
    };
    e.insert("class", class);
    // status: the ADT event's (Event[EncounterStatus]); for an update (A08) or another
    // message, what PV1 says: discharged → finished, else by patient class
    let discharged = ctx.datetime(s, 45);
    let by_event = (st.kind == Some(Kind::Adt) && st.event != "A08")
        .then(|| map_code("Event[EncounterStatus]", &st.event))
        .flatten()
        .map(|c| c.code);
    let status = by_event.unwrap_or_else(|| {
        if discharged.is_some() {
            "finished"
        } else {
            class_code
                .as_deref()
                .and_then(|c| map_code("PatientClass[EncounterStatus]", c))
                .map_or("unknown", |c| c.code)
        }
    });
    e.insert("status", json!(status));
    if let Some(t) = ctx.first(s, 4) {
        let code = first_text(t).unwrap_or_default();
        let v = match map_code("AdmissionType", &code) {
            Some(c) => Some(concept_value(c)),
            None => codeable(t),
        };
        if let Some(v) = v {
            e.insert("type", json!([v]));
        }
    }
    if let Some(loc) = ctx.first(s, 3).and_then(location_text) {
        e.insert("location", json!([{ "location": { "display": loc } }]));
    }
    let mut hosp = Map::new();
    put(
        &mut hosp,
        "preAdmissionIdentifier",
        ctx.first(s, 5).and_then(|x| identifier(ctx, x)),
    );
    if let Some(c) = ctx.code(s, 14) {
        put(&mut hosp, "admitSource", table_concept("0023", &c));
    }
    if let Some(c) = ctx.code(s, 13) {
        let v = match map_code("ReadmissionIndicator", &c) {
            Some(m) => Some(concept_value(m)),
            None => table_concept("0092", &c),
        };
        put(&mut hosp, "reAdmission", v);
    }
    if let Some(c) = ctx.code(s, 36) {
        let v = match map_code("DischargeDisposition", &c) {
            Some(m) => Some(concept_value(m)),
            None => table_concept("0112", &c),
        };
        put(&mut hosp, "dischargeDisposition", v);
    }
    let diets: Vec<Value> = ctx.reps(s, 38).into_iter().filter_map(codeable).collect();
    if !diets.is_empty() {
        hosp.insert("dietPreference", Value::Array(diets));
    }
    if !hosp.is_empty() {
        e.insert("hospitalization", Value::Object(hosp));
    }
    for &(n, code, display) in PARTICIPANTS {
        for x in ctx.reps(s, n) {
            if let Some(who) = person_reference(ctx, x) {
                push(
                    &mut e,
                    "participant",
                    json!({
                        "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": code, "display": display }] }],
                        "individual": who,
                    }),
                );
            }
        }
    }
    if let Some(c) = ctx.code(s, 10) {
        let v = match map_code("HospitalService", &c) {
            Some(m) => Some(concept_value(m)),
            None => table_concept("0069", &c),
        };
        put(&mut e, "serviceType", v);
    }
    let start = ctx.datetime(s, 44);
    if start.is_some() || discharged.is_some() {
        let mut p = Map::new();
        put(&mut p, "start", start.clone().map(Value::from));
        put(&mut p, "end", discharged.map(Value::from));
        e.insert("period", Value::Object(p));
    }
    let visit = ctx.first(s, 19).and_then(|x| identifier(ctx, x));
    if let Some(v) = &visit {
        let mut v = v.clone();
        if v.get("type").is_none() {
            v["type"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN", "display": "Visit number" }] });
        }
        e.insert("identifier", json!([v]));
    }
    let pu = ctx.entries[pi].uuid;
    let i = if let Some(req) = visit.as_ref().and_then(|v| super::request_for(Some(v))) {
        ctx.add("Encounter", req, &[], e)
    } else {
        {
            let visit_value = visit
                .as_ref()
                .and_then(|v| v.get("value"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let key = visit_value.unwrap_or_else(|| {
                format!(
                    "{}|{}",
                    class_code.unwrap_or_default(),
                    start.unwrap_or_default()
                )
            });
            ctx.add("Encounter", Request::Put, &[&pu, "PV1", &key], e)
        }
    };
    st.encounter = Some(i);
    // The account of the visit
    if let Some(a) = st.account {
        let r = ctx.reference(a);
        push(ctx.res(i), "account", r);
    }
}

/// PV2 → Encounter: PV2-3 admit reason (`reasonCode`).
pub fn pv2<'a>(ctx: &mut Ctx<'a, '_>, st: &State<'a>, s: Seg<'a>) {
    let Some(ei) = st.encounter else { return };
    if let Some(reason) = ctx.first(s, 3).and_then(codeable) {
        push(ctx.res(ei), "reasonCode", reason);
    }
}
