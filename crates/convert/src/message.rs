//! One conversion: the message kind, a walk over the segments in order (each segment handled
//! by its resource module, attaching to the patient, order, report … it follows), then the
//! Provenance and the Bundle.

use crate::tree::Value;
use hl7v2::Message;

use crate::ctx::{Ctx, Request, Seg};
use crate::resources::{clinical, encounter, orders, other, patient, provenance};
use crate::time::Dtm;
use crate::{ConvertError, Options, Unmapped};

/// What the message is about, as far as the conversion cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ADT (and BAR): patient administration.
    Adt,
    /// ORU, OUL: results (OBR → DiagnosticReport).
    Results,
    /// ORM, OML, OMG, …: orders (OBR → ServiceRequest).
    Orders,
    /// SIU: scheduling (SCH → Appointment).
    Schedule,
    /// MDM: documents (TXA + OBX → DocumentReference).
    Document,
    /// VXU: immunizations (RXA → Immunization).
    Vaccination,
    /// DFT: financial transactions (FT1 → ChargeItem).
    Financial,
    /// Anything else: its PID/PV1/NK1/AL1/DG1/OBX/NTE through the segment maps.
    Other,
}

impl Kind {
    fn of(message_type: &str) -> Self {
        match message_type {
            "ADT" | "BAR" => Self::Adt,
            "ORU" | "OUL" => Self::Results,
            "ORM" | "OML" | "OMG" | "OMB" | "OMI" | "OMP" | "OMS" | "OMD" | "OMN" => Self::Orders,
            "SIU" => Self::Schedule,
            "MDM" => Self::Document,
            "VXU" => Self::Vaccination,
            "DFT" => Self::Financial,
            _ => Self::Other,
        }
    }
}

/// Where an NTE goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteTarget {
    /// `note` (Annotation) of the entry.
    Annotation(usize),
    /// `comment` (string) of an Appointment.
    Comment(usize),
    /// `description` of a DocumentReference.
    Description(usize),
}

/// The walk's position: the resources later segments attach to.
#[derive(Debug, Default)]
pub struct State<'a> {
    /// The message kind.
    pub kind: Option<Kind>,
    /// MSH-9.2.
    pub event: String,
    /// The current Patient entry.
    pub patient: Option<usize>,
    /// The current Encounter entry.
    pub encounter: Option<usize>,
    /// The current ORC, not yet consumed by an OBR, RXA or FT1.
    pub orc: Option<Seg<'a>>,
    /// The ORC that the current order group began with.
    pub group_orc: Option<Seg<'a>>,
    /// The current ServiceRequest.
    pub request: Option<usize>,
    /// The current DiagnosticReport.
    pub report: Option<usize>,
    /// OBX count in the current report or parent.
    pub obx_in_parent: usize,
    /// The current Observation.
    pub observation: Option<usize>,
    /// The current Specimen.
    pub specimen: Option<usize>,
    /// The current Appointment.
    pub appointment: Option<usize>,
    /// The current DocumentReference.
    pub document: Option<usize>,
    /// The current Immunization.
    pub immunization: Option<usize>,
    /// The current Account (PID-18).
    pub account: Option<usize>,
    /// Where the next NTE goes.
    pub note: Option<NoteTarget>,
    /// A TQ1 waiting for the request or appointment it times.
    pub tq1: Option<Seg<'a>>,
    /// Text lines (TX, FT, ST OBX) of a DocumentReference not yet written as its content.
    pub doc_text: Option<(usize, String)>,
    /// The TXA of the current DocumentReference.
    pub txa: Option<Seg<'a>>,
    /// Every DocumentReference made so far, with its TXA.
    pub documents: Vec<(usize, Seg<'a>)>,
    /// NTE segments written into a DocumentReference's description, with its entry.
    pub document_notes: Vec<(usize, Seg<'a>)>,
}

/// Converts one message.
// the checks of MSH and the dispatch of every segment id, in one place
#[allow(clippy::too_many_lines)]
pub fn convert(
    msg: &Message<'_>,
    opts: &Options,
) -> Result<(Vec<crate::ctx::Entry>, Vec<Unmapped>), ConvertError> {
    let mut ctx = Ctx::new(msg, opts);
    let segs = ctx.segments();
    let msh = *segs.first().ok_or(ConvertError::MissingSegment {
        segment: "MSH",
        reason: "every message starts with MSH".into(),
    })?;
    if msh.id() != "MSH" {
        return Err(ConvertError::MissingSegment {
            segment: "MSH",
            reason: format!("the message starts with {}", msh.id()),
        });
    }
    let message_type = ctx
        .code(msh, 9)
        .ok_or_else(|| ctx.error(msh, 9, "the message type is empty"))?;
    let event = ctx
        .first(msh, 9)
        .and_then(|e| crate::ctx::part_text(e, 2))
        .map(crate::tree::Text::into_string)
        .unwrap_or_default();
    let sent = ctx
        .code(msh, 7)
        .ok_or_else(|| ctx.error(msh, 7, "the message date/time is empty"))?;
    let sent = Dtm::parse(&sent).ok_or_else(|| {
        ctx.error(
            msh,
            7,
            "not a valid DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])",
        )
    })?;
    if sent.to_instant(None).is_none() {
        return Err(ctx.error(msh, 7, "the message date/time needs at least a day"));
    }
    if ctx.tz.is_none() {
        ctx.tz = sent.offset().map(str::to_owned);
    }
    let kind = Kind::of(&message_type);
    let type_text = ctx
        .first(msh, 9)
        .and_then(crate::ctx::text)
        .map(crate::tree::Text::into_string)
        .unwrap_or_default();
    let first_pid = segs.iter().position(|s| s.id() == "PID");
    if first_pid.is_none() {
        if kind == Kind::Other {
            return Err(ConvertError::Unsupported {
                message_type: type_text,
                reason: "no conversion for this message type, and no PID segment to convert".into(),
            });
        }
        return Err(ConvertError::MissingSegment {
            segment: "PID",
            reason: format!("a {message_type} message converts about a patient"),
        });
    }
    if message_type == "ADT" && event == "A40" && !segs.iter().any(|s| s.id() == "MRG") {
        return Err(ConvertError::MissingSegment {
            segment: "MRG",
            reason: "an ADT^A40 merge names the merged patient in MRG".into(),
        });
    }
    let mut st = State {
        kind: Some(kind),
        event,
        ..State::default()
    };
    // The patient first: segments before PID (SCH, EVN) refer to it.
    if let Some(i) = first_pid {
        patient::pid(&mut ctx, &mut st, segs[i])?;
    }
    for (i, &s) in segs.iter().enumerate() {
        match s.id() {
            "PID" if Some(i) != first_pid => {
                st.encounter = None;
                st.account = None;
                patient::pid(&mut ctx, &mut st, s)?;
            }
            "PD1" => patient::pd1(&mut ctx, &st, s),
            "NK1" => patient::nk1(&mut ctx, &mut st, s),
            // patient merges; the MRG of account and visit moves (A06, A41, A45 …) is reported
            "MRG"
                if matches!(
                    st.event.as_str(),
                    "A18" | "A30" | "A34" | "A36" | "A39" | "A40"
                ) =>
            {
                patient::mrg(&mut ctx, &mut st, s)?;
            }
            "PV1" => encounter::pv1(&mut ctx, &mut st, s),
            "PV2" => encounter::pv2(&mut ctx, &st, s),
            "AL1" => clinical::al1(&mut ctx, &mut st, s),
            "DG1" => clinical::dg1(&mut ctx, &mut st, s),
            "PR1" => clinical::pr1(&mut ctx, &mut st, s),
            "ORC" => orders::orc(&mut ctx, &mut st, s),
            "OBR" => orders::obr(&mut ctx, &mut st, s)?,
            "TQ1" => orders::tq1(&mut ctx, &mut st, s),
            "OBX" => orders::obx(&mut ctx, &mut st, s),
            "SPM" => orders::spm(&mut ctx, &mut st, s),
            "NTE" => clinical::nte(&mut ctx, &mut st, s),
            "TXA" => other::txa(&mut ctx, &mut st, s),
            "RXA" => other::rxa(&mut ctx, &mut st, s)?,
            "RXR" => other::rxr(&mut ctx, &st, s),
            "SCH" => other::sch(&mut ctx, &mut st, s),
            "AIS" | "AIG" | "AIL" | "AIP" => other::resource(&mut ctx, &mut st, s),
            "FT1" => other::ft1(&mut ctx, &mut st, s)?,
            // EVN is read by the Provenance; other segments stay in the unmapped report
            _ => {}
        }
    }
    orders::flush_orc(&mut ctx, &mut st);
    orders::flush_document_text(&mut ctx, &mut st);
    other::finish(&mut ctx, &mut st)?;
    provenance::provenance(&mut ctx, &st, msh, &segs, &sent)?;
    let unmapped = ctx.unmapped(&segs);
    if opts.unmapped_extensions {
        provenance::unmapped_extensions(&mut ctx, &unmapped, &segs);
    }
    Ok((std::mem::take(&mut ctx.entries), unmapped))
}

/// Appends the transaction Bundle of the entries as compact JSON: the bytes
/// [`bundle`]`(entries).write_json` gives, without building the Bundle's own objects (entry,
/// request, the request URL) nor inserting `resourceType` and `id` into each resource.
pub fn write_bundle(entries: &[crate::ctx::Entry], out: &mut Vec<u8>) {
    // keys in serde_json's (sorted) order: entry, resourceType, type; fullUrl, request,
    // resource; method, url
    out.extend_from_slice(b"{\"entry\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"fullUrl\":");
        crate::tree::write_str_parts(out, &[&e.full_url]);
        out.extend_from_slice(b",\"request\":{\"method\":\"PUT\",\"url\":");
        match &e.request {
            Request::Conditional(q) => {
                crate::tree::write_str_parts(out, &[e.rtype, "?", q]);
                out.extend_from_slice(b"},\"resource\":");
                e.resource
                    .write_json_with(&[("resourceType", e.rtype)], out);
            }
            Request::Put => {
                crate::tree::write_str_parts(out, &[e.rtype, "/", &e.uuid]);
                out.extend_from_slice(b"},\"resource\":");
                e.resource
                    .write_json_with(&[("id", e.uuid.as_str()), ("resourceType", e.rtype)], out);
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"resourceType\":\"Bundle\",\"type\":\"transaction\"}");
}

/// The transaction Bundle of the entries.
pub fn bundle(entries: Vec<crate::ctx::Entry>) -> Value {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut resource = e.resource;
            resource.insert("resourceType", Value::Str(e.rtype));
            let mut url = String::with_capacity(e.rtype.len() + 64);
            url.push_str(e.rtype);
            match &e.request {
                Request::Conditional(q) => {
                    url.push('?');
                    url.push_str(q);
                }
                Request::Put => {
                    url.push('/');
                    url.push_str(&e.uuid);
                    resource.insert("id", Value::from(e.uuid.as_str().to_owned()));
                }
            }
            json!({
                "fullUrl": Value::Shared(e.full_url),
                "resource": resource,
                "request": { "method": "PUT", "url": url },
            })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}
