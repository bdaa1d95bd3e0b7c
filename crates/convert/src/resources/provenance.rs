//! MSH (and EVN) → Provenance (`MSH[Provenance-Source]`, `EVN[Provenance]`): the source
//! message (control id), who sent it, when, and every resource made from it.

use std::fmt::Write as _;

use crate::tree::{Map, Value};

use crate::ConvertError;
use crate::Unmapped;
use crate::ctx::{Ctx, Request, Seg, part_text, put};
use crate::datatypes::{codeable, hd_system, person_reference};
use crate::message::State;
use crate::time::Dtm;

/// The URL of the extension carrying unmapped content (with [`crate::Options::unmapped_extensions`]).
pub const UNMAPPED_EXTENSION: &str = "urn:plexus:fhir:StructureDefinition:v2-unmapped";

/// An HD (MSH-3, MSH-4) as a Reference: identifier (namespace id, system from the universal
/// id) and display.
fn hd_reference(ctx: &Ctx<'_, '_>, hd: hl7v2::Element<'_>) -> Option<Value> {
    let ns = part_text(hd, 1);
    let uid = part_text(hd, 2);
    let mut r = Map::new();
    let value = ns.clone().or_else(|| uid.clone())?;
    let mut id = Map::new();
    if ns.is_some() && uid.is_some() {
        put(
            &mut id,
            "system",
            hd_system(ctx, hd)
                .filter(|s| Some(s.as_str()) != ns.as_deref())
                .map(Value::from),
        );
    }
    id.insert("value", Value::String(value.clone()));
    r.insert("identifier", Value::Object(id));
    r.insert("display", Value::String(value));
    Some(Value::Object(r))
}

fn agent(kind: &'static str, display: &'static str, who: &Value) -> Value {
    json!({
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": kind, "display": display }] },
        "who": who.clone(),
    })
}

/// Adds the Provenance of the conversion, targeting every resource made.
pub fn provenance<'a>(
    ctx: &mut Ctx<'a, '_>,
    st: &State<'a>,
    msh: Seg<'a>,
    segs: &[Seg<'a>],
    sent: &Dtm,
) -> Result<(), ConvertError> {
    let mut p = Map::new();
    let targets: Vec<Value> = (0..ctx.entries.len()).map(|i| ctx.reference(i)).collect();
    p.insert("target", Value::Array(targets));
    let recorded = sent
        .to_instant(ctx.tz.as_deref())
        .ok_or_else(|| ctx.error(msh, 7, "the message date/time needs at least a day"))?;
    p.insert("recorded", json!(recorded));
    let evn = segs.iter().copied().find(|s| s.id() == "EVN");
    let occurred = evn.and_then(|e| ctx.datetime(e, 6)).or_else(|| {
        let (s, cut) = sent.to_datetime(ctx.tz.as_deref());
        (!cut).then_some(s)
    });
    put(&mut p, "occurredDateTime", occurred.map(Value::from));
    let type_text = ctx
        .first(msh, 9)
        .and_then(crate::ctx::text)
        .unwrap_or_default();
    let mut activity = Map::new();
    if !st.event.is_empty() {
        activity.insert(
            "system",
            json!("http://terminology.hl7.org/CodeSystem/v2-0003"),
        );
        activity.insert("code", json!(crate::datatypes::code(&st.event)));
    }
    activity.insert("display", json!(format!("message - {type_text}")));
    p.insert("activity", json!({ "coding": [activity] }));
    let mut agents = crate::tree::array();
    if let Some(who) = ctx.first(msh, 4).and_then(|e| hd_reference(ctx, e)) {
        agents.push(agent("author", "Author", &who));
    }
    if let Some(who) = ctx.first(msh, 3).and_then(|e| hd_reference(ctx, e)) {
        agents.push(agent("assembler", "Assembler", &who));
    }
    if let Some(e) = evn {
        ctx.mark(e, 1);
        if let Some(who) = ctx.first(e, 5).and_then(|x| person_reference(ctx, x)) {
            agents.push(agent("enterer", "Enterer", &who));
        }
        if let Some(reason) = ctx.first(e, 4).and_then(codeable) {
            p.insert("reason", json!([reason]));
        }
    }
    if agents.is_empty() {
        agents.push(agent(
            "author",
            "Author",
            &json!({ "display": "sender not named in MSH-3 or MSH-4" }),
        ));
    }
    p.insert("agent", Value::Array(agents));
    let control = ctx.string(msh, 10);
    let mut what = Map::new();
    if let Some(c) = &control {
        let mut id = Map::new();
        if let Some(sys) = ctx.first(msh, 3).and_then(|e| {
            let uid = part_text(e, 2)?;
            part_text(e, 1)?;
            let _ = uid;
            hd_system(ctx, e)
        }) {
            id.insert("system", Value::from(sys));
        }
        id.insert("value", Value::String(c.clone()));
        what.insert("identifier", Value::Object(id));
    }
    what.insert(
        "display",
        json!(format!(
            "HL7 v2 message {type_text} {}",
            control.as_deref().unwrap_or("(no control id)")
        )),
    );
    p.insert("entity", json!([{ "role": "source", "what": what }]));
    let app = ctx
        .first(msh, 3)
        .and_then(crate::ctx::text)
        .unwrap_or_default();
    let facility = ctx
        .first(msh, 4)
        .and_then(crate::ctx::text)
        .unwrap_or_default();
    let sent_text = ctx.code(msh, 7).unwrap_or_default();
    ctx.add(
        "Provenance",
        Request::Put,
        &[
            &app,
            &facility,
            control.as_deref().unwrap_or_default(),
            &sent_text,
        ],
        p,
    );
    Ok(())
}

/// Adds the unmapped content (location and text) to the Provenance as extensions.
pub fn unmapped_extensions<'a>(ctx: &mut Ctx<'a, '_>, unmapped: &[Unmapped], segs: &[Seg<'a>]) {
    let by_place: std::collections::HashMap<(&str, usize), &Seg<'a>> =
        segs.iter().map(|s| ((s.id(), s.occ), s)).collect();
    let mut exts = Vec::new();
    for u in unmapped {
        let Some(seg) = by_place.get(&(u.segment.as_str(), u.occurrence)) else {
            continue;
        };
        let value = if u.field == 0 {
            String::from_utf8_lossy(seg.seg.raw()).into_owned()
        } else {
            seg.seg
                .field(u.field)
                .map(|f| String::from_utf8_lossy(f.raw()).into_owned())
                .unwrap_or_default()
        };
        let mut location = u.segment.clone();
        if u.occurrence > 1 {
            let _ = write!(location, "[{}]", u.occurrence);
        }
        if u.field > 0 {
            let _ = write!(location, "-{}", u.field);
        }
        let mut parts = vec![
            json!({ "url": "location", "valueString": location }),
            json!({ "url": "reason", "valueString": u.reason.as_str() }),
        ];
        if !value.trim().is_empty() {
            parts.push(json!({ "url": "value", "valueString": value }));
        }
        exts.push(json!({ "url": UNMAPPED_EXTENSION, "extension": parts }));
    }
    if exts.is_empty() {
        return;
    }
    if let Some(e) = ctx
        .entries
        .iter_mut()
        .rev()
        .find(|e| e.rtype == "Provenance")
    {
        e.resource.insert("extension", Value::Array(exts));
    }
}
