//! Sections and their clinical statements: Composition.section with the narrative, and the
//! coded entries as AllergyIntolerance, Condition, MedicationStatement/MedicationRequest,
//! Immunization, Observation, DiagnosticReport, Procedure and Encounter.
//!
//! A section's kind comes from its templateId (any version) or, failing that, its LOINC code;
//! inside it, each entry is read by its element (`act`, `observation`, `organizer`…), so
//! documents that leave out entry templateIds still convert.

use serde_json::{Map, Value, json};

use super::types::{
    absent, concept, concept_or_absent, date_time, period, point_in_time, put_array,
    put_time_choice, quantity,
};
use super::{Ctx, narrative, reference_to};
use crate::xml::El;

mod activities;

pub(crate) use activities::{encounter, non_xml_body};

const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Allergies,
    Medications,
    Problems,
    Diagnoses,
    Immunizations,
    Results,
    VitalSigns,
    Procedures,
    Encounters,
    SocialHistory,
    Other,
}

fn kind(sec: El<'_, '_>) -> Kind {
    for t in sec.templates() {
        let k = match t {
            "2.16.840.1.113883.10.20.22.2.6" | "2.16.840.1.113883.10.20.22.2.6.1" => {
                Kind::Allergies
            }
            "2.16.840.1.113883.10.20.22.2.1"
            | "2.16.840.1.113883.10.20.22.2.1.1"
            | "2.16.840.1.113883.10.20.22.2.11"
            | "2.16.840.1.113883.10.20.22.2.11.1"
            | "2.16.840.1.113883.10.20.22.2.44"
            | "2.16.840.1.113883.10.20.22.2.38" => Kind::Medications,
            "2.16.840.1.113883.10.20.22.2.5" | "2.16.840.1.113883.10.20.22.2.5.1" => Kind::Problems,
            "2.16.840.1.113883.10.20.22.2.24" => Kind::Diagnoses,
            "2.16.840.1.113883.10.20.22.2.2" | "2.16.840.1.113883.10.20.22.2.2.1" => {
                Kind::Immunizations
            }
            "2.16.840.1.113883.10.20.22.2.3" | "2.16.840.1.113883.10.20.22.2.3.1" => Kind::Results,
            "2.16.840.1.113883.10.20.22.2.4" | "2.16.840.1.113883.10.20.22.2.4.1" => {
                Kind::VitalSigns
            }
            "2.16.840.1.113883.10.20.22.2.7" | "2.16.840.1.113883.10.20.22.2.7.1" => {
                Kind::Procedures
            }
            "2.16.840.1.113883.10.20.22.2.22" | "2.16.840.1.113883.10.20.22.2.22.1" => {
                Kind::Encounters
            }
            "2.16.840.1.113883.10.20.22.2.17" => Kind::SocialHistory,
            _ => continue,
        };
        return k;
    }
    let code = sec
        .child("code")
        .and_then(|c| c.attr_nb("code"))
        .unwrap_or("");
    match code {
        "48765-2" => Kind::Allergies,
        "10160-0" | "10183-2" | "42346-7" | "29549-3" => Kind::Medications,
        "11450-4" => Kind::Problems,
        "11535-2" => Kind::Diagnoses,
        "11369-6" => Kind::Immunizations,
        "30954-2" => Kind::Results,
        "8716-3" => Kind::VitalSigns,
        "47519-4" => Kind::Procedures,
        "46240-8" => Kind::Encounters,
        "29762-2" => Kind::SocialHistory,
        _ => Kind::Other,
    }
}

/// The clinical statement of an `entry` or `entryRelationship`/`component`.
fn statement<'d, 'a>(holder: El<'d, 'a>) -> Option<El<'d, 'a>> {
    holder.children().find(|c| {
        matches!(
            c.name(),
            "act"
                | "observation"
                | "organizer"
                | "substanceAdministration"
                | "supply"
                | "procedure"
                | "encounter"
                | "observationMedia"
                | "regionOfInterest"
        )
    })
}

/// The statements of an element's `entryRelationship`s.
fn related<'d, 'a>(el: El<'d, 'a>) -> impl Iterator<Item = El<'d, 'a>> + 'd {
    el.children_named("entryRelationship").filter_map(statement)
}

/// A Composition.section (with nested sections) and the resources of its entries.
pub(crate) fn section(ctx: &mut Ctx<'_>, sec: El<'_, '_>, depth: usize) -> Value {
    let mut s = Map::new();
    if let Some(t) = sec.child("title").and_then(|t| t.deep_text()) {
        s.insert("title".into(), Value::String(t));
    }
    if let Some(c) = sec.child("code").and_then(concept) {
        s.insert("code".into(), c);
    }
    let text = sec.child("text").and_then(narrative::xhtml);
    let k = kind(sec);
    let mut refs = Vec::new();
    for entry in sec.children_named("entry") {
        let Some(st) = statement(entry) else {
            ctx.unmapped(entry, "entry without a clinical statement");
            continue;
        };
        entry_of(ctx, k, st, &mut refs);
    }
    let mut subs = Vec::new();
    if depth < 8 {
        for c in sec.children_named("component") {
            if let Some(inner) = c.child("section") {
                subs.push(section(ctx, inner, depth + 1));
            }
        }
    }
    let has_entries = !refs.is_empty();
    match text {
        Some(div) => {
            s.insert("text".into(), json!({"status": "generated", "div": div}));
        }
        None if !has_entries && subs.is_empty() => {
            s.insert(
                "text".into(),
                json!({"status": "empty", "div": narrative::xhtml_text("No information")}),
            );
        }
        None => {}
    }
    if has_entries {
        s.insert(
            "entry".into(),
            Value::Array(refs.into_iter().map(reference_to).collect()),
        );
    } else if sec.attr("nullFlavor").is_some() || sec.child("entry").is_none() {
        let (code, display) = match sec.attr("nullFlavor") {
            Some("NASK") => ("notasked", "Not Asked"),
            Some("MSK") => ("withheld", "Information Withheld"),
            Some("NAV") => ("unavailable", "Unavailable"),
            _ => ("nilknown", "Nil Known"),
        };
        if subs.is_empty()
            && matches!(
                k,
                Kind::Allergies
                    | Kind::Medications
                    | Kind::Problems
                    | Kind::Results
                    | Kind::Immunizations
                    | Kind::VitalSigns
                    | Kind::Procedures
                    | Kind::Encounters
                    | Kind::SocialHistory
            )
        {
            s.insert(
                "emptyReason".into(),
                json!({"coding": [{"system": format!("{CLINICAL}list-empty-reason"), "code": code, "display": display}]}),
            );
        }
    }
    put_array(&mut s, "section", subs);
    Value::Object(s)
}

fn entry_of(ctx: &mut Ctx<'_>, k: Kind, st: El<'_, '_>, refs: &mut Vec<String>) {
    match (k, st.name()) {
        (Kind::Allergies, "act") => {
            for o in related(st).filter(|o| o.name() == "observation") {
                refs.push(allergy(ctx, o, Some(st)));
            }
        }
        (Kind::Allergies, "observation") => refs.push(allergy(ctx, st, None)),
        (Kind::Problems | Kind::Diagnoses, "act") => {
            let category = if k == Kind::Problems { "problem-list-item" } else { "encounter-diagnosis" };
            let mut any = false;
            for o in related(st).filter(|o| o.name() == "observation") {
                refs.push(condition(ctx, o, Some(st), category));
                any = true;
            }
            if !any {
                ctx.unmapped(st, "concern act without a problem observation");
            }
        }
        (Kind::Problems, "observation") => refs.push(condition(ctx, st, None, "problem-list-item")),
        (Kind::Diagnoses, "observation") => refs.push(condition(ctx, st, None, "encounter-diagnosis")),
        (Kind::Medications, "substanceAdministration") => {
            if let Some(r) = medication(ctx, st) {
                refs.push(r);
            }
        }
        (Kind::Medications, "act") => {
            let mut any = false;
            for sa in related(st).filter(|s| s.name() == "substanceAdministration") {
                if let Some(r) = medication(ctx, sa) {
                    refs.push(r);
                }
                any = true;
            }
            if !any {
                ctx.unmapped(st, "medication act without a substanceAdministration");
            }
        }
        (Kind::Immunizations, "substanceAdministration") => refs.push(immunization(ctx, st)),
        (Kind::Results, "organizer") => refs.push(activities::report(ctx, st)),
        (Kind::Results, "observation") => refs.push(activities::observation(ctx, st, "laboratory")),
        (Kind::VitalSigns, "organizer") => {
            for o in st.children_named("component").filter_map(statement) {
                if o.name() == "observation" {
                    refs.push(activities::observation(ctx, o, "vital-signs"));
                } else {
                    ctx.unmapped(o, "vital signs organizer component that is not an observation");
                }
            }
        }
        (Kind::VitalSigns, "observation") => refs.push(activities::observation(ctx, st, "vital-signs")),
        (Kind::SocialHistory, "observation") => refs.push(activities::observation(ctx, st, "social-history")),
        (Kind::Procedures, "procedure" | "observation" | "act") => {
            if let Some(r) = activities::procedure(ctx, st) {
                refs.push(r);
            }
        }
        (Kind::Encounters, "encounter") => {
            let r = activities::encounter(ctx, st, refs);
            refs.push(r);
        }
        (Kind::Other, _) => ctx.unmapped(st, "entry of a section whose coded entries are not mapped (its narrative is in the Composition)"),
        _ => ctx.unmapped(st, format!("{} entry is not expected in this section", st.name())),
    }
}

fn code_of<'d>(el: Option<El<'d, '_>>) -> Option<&'d str> {
    el.and_then(|e| e.attr_nb("code"))
}

fn cc(system: &str, code: &str, display: &str) -> Value {
    let mut uri = String::with_capacity(CLINICAL.len() + system.len());
    uri.push_str(CLINICAL);
    uri.push_str(system);
    let mut coding = Map::new();
    coding.insert("system".into(), Value::String(uri));
    coding.insert("code".into(), Value::String(code.into()));
    coding.insert("display".into(), Value::String(display.into()));
    let mut cc = Map::new();
    cc.insert("coding".into(), Value::Array(vec![Value::Object(coding)]));
    Value::Object(cc)
}

fn negated(el: El<'_, '_>) -> bool {
    el.attr("negationInd") == Some("true")
}

fn status_code<'d>(el: El<'d, '_>) -> Option<&'d str> {
    el.child("statusCode").and_then(|s| s.attr_nb("code"))
}

fn recorded(ctx: &Ctx<'_>, el: El<'_, '_>) -> Option<String> {
    el.child("author")
        .and_then(|a| a.child("time"))
        .and_then(|t| t.attr_nb("value"))
        .and_then(|v| date_time(v, ctx.rules))
}

/// Reports the nested statements a converter did not use.
fn report_rest(ctx: &mut Ctx<'_>, el: El<'_, '_>, used: &[&str]) {
    for r in related(el) {
        if !r.templates().any(|t| used.contains(&t)) {
            ctx.unmapped(r, format!("nested {} is not mapped", r.name()));
        }
    }
}

const ALLERGY_STATUS: &str = "2.16.840.1.113883.10.20.22.4.28";
const REACTION: &str = "2.16.840.1.113883.10.20.22.4.9";
const SEVERITY: &str = "2.16.840.1.113883.10.20.22.4.8";
const CRITICALITY: &str = "2.16.840.1.113883.10.20.22.4.145";
const PROBLEM_STATUS: &str = "2.16.840.1.113883.10.20.22.4.6";
const AGE_OBS: &str = "2.16.840.1.113883.10.20.22.4.31";
const PRIORITY: &str = "2.16.840.1.113883.10.20.22.4.143";
const INDICATION: &str = "2.16.840.1.113883.10.20.22.4.19";
const INSTRUCTION: &str = "2.16.840.1.113883.10.20.22.4.20";
const REFUSAL: &str = "2.16.840.1.113883.10.20.22.4.53";
const ENCOUNTER_DIAGNOSIS: &str = "2.16.840.1.113883.10.20.22.4.80";

fn clinical_from_snomed(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "55561003" => Some("active"),
        "73425007" => Some("inactive"),
        "413322009" => Some("resolved"),
        _ => None,
    }
}

#[allow(clippy::too_many_lines)] // status, type, category, code, reactions: one field after the other
fn allergy(ctx: &mut Ctx<'_>, obs: El<'_, '_>, concern: Option<El<'_, '_>>) -> String {
    let id = ctx.new_id("AllergyIntolerance", obs);
    let mut a = Map::new();
    let status_obs = related(obs).find(|o| o.has_template(ALLERGY_STATUS));
    let clinical = clinical_from_snomed(code_of(status_obs.and_then(|o| o.child("value"))))
        .unwrap_or_else(|| match concern.and_then(status_code) {
            Some("completed") => "resolved",
            Some("suspended" | "aborted") => "inactive",
            _ => "active",
        });
    a.insert(
        "clinicalStatus".into(),
        cc("allergyintolerance-clinical", clinical, clinical),
    );
    let allergen = obs.at("participant/participantRole/playingEntity/code");
    let neg = negated(obs);
    let verification = if neg && allergen.and_then(concept).is_some() {
        "refuted"
    } else {
        "confirmed"
    };
    a.insert(
        "verificationStatus".into(),
        cc(
            "allergyintolerance-verification",
            verification,
            verification,
        ),
    );
    let value_code = code_of(obs.child("value"));
    let (t, cat) = match value_code.unwrap_or("") {
        "419199007" => (Some("allergy"), None),
        "416098002" => (Some("allergy"), Some("medication")),
        "414285001" => (Some("allergy"), Some("food")),
        "426232007" => (Some("allergy"), Some("environment")),
        "59037007" => (Some("intolerance"), Some("medication")),
        "235719002" => (Some("intolerance"), Some("food")),
        "419511003" => (None, Some("medication")),
        "418471000" => (None, Some("food")),
        "232347008" | "418545001" => (None, Some("environment")),
        _ => (None, None),
    };
    if let Some(t) = t {
        a.insert("type".into(), Value::String(t.into()));
    }
    if let Some(c) = cat {
        a.insert("category".into(), json!([c]));
    }
    match allergen.and_then(concept) {
        Some(c) if !neg || verification == "refuted" => {
            a.insert("code".into(), c);
        }
        _ if neg => {
            a.insert(
                "code".into(),
                json!({"coding": [{"system": "http://snomed.info/sct", "code": "716186003", "display": "No known allergy"}]}),
            );
        }
        _ => {
            if let Some(c) = obs.child("value").and_then(concept) {
                a.insert("code".into(), c);
            }
        }
    }
    a.insert("patient".into(), ctx.subject());
    if let Some(t) = obs
        .child("effectiveTime")
        .and_then(|e| e.child("low").or(Some(e)))
        .and_then(|e| e.attr_nb("value"))
        .and_then(|v| date_time(v, ctx.rules))
    {
        a.insert("onsetDateTime".into(), Value::String(t));
    }
    if let Some(t) = recorded(ctx, obs) {
        a.insert("recordedDate".into(), Value::String(t));
    }
    if let Some(c) = related(obs)
        .find(|o| o.has_template(CRITICALITY))
        .and_then(|o| code_of(o.child("value")))
    {
        let v = match c {
            "CRITL" => Some("low"),
            "CRITH" => Some("high"),
            "CRITU" => Some("unable-to-assess"),
            _ => None,
        };
        if let Some(v) = v {
            a.insert("criticality".into(), Value::String(v.into()));
        }
    }
    let overall = related(obs)
        .find(|o| o.has_template(SEVERITY))
        .and_then(|o| severity(code_of(o.child("value"))));
    let mut reactions = Vec::new();
    for r in related(obs).filter(|o| o.has_template(REACTION)) {
        let Some(m) = r.child("value").and_then(concept) else {
            continue;
        };
        let mut re = Map::new();
        re.insert("manifestation".into(), Value::Array(vec![m]));
        if let Some(t) = r
            .child("effectiveTime")
            .and_then(|e| point_in_time(e, ctx.rules))
        {
            re.insert("onset".into(), Value::String(t));
        }
        let sev = related(r)
            .find(|o| o.has_template(SEVERITY))
            .and_then(|o| severity(code_of(o.child("value"))))
            .or(overall);
        if let Some(s) = sev {
            re.insert("severity".into(), Value::String(s.into()));
        }
        reactions.push(Value::Object(re));
    }
    put_array(&mut a, "reaction", reactions);
    report_rest(ctx, obs, &[ALLERGY_STATUS, REACTION, SEVERITY, CRITICALITY]);
    ctx.add("AllergyIntolerance", id, a)
}

fn severity(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "255604002" | "371923003" => Some("mild"),
        "6736007" | "371924009" => Some("moderate"),
        "24484000" | "399166001" => Some("severe"),
        _ => None,
    }
}

fn condition(
    ctx: &mut Ctx<'_>,
    obs: El<'_, '_>,
    concern: Option<El<'_, '_>>,
    category: &str,
) -> String {
    let id = ctx.new_id("Condition", obs);
    let mut c = Map::new();
    let time = obs.child("effectiveTime");
    let high = time
        .and_then(|t| t.child("high"))
        .and_then(|h| h.attr_nb("value"))
        .and_then(|v| date_time(v, ctx.rules));
    let status_obs = related(obs).find(|o| o.has_template(PROBLEM_STATUS));
    let clinical = clinical_from_snomed(code_of(status_obs.and_then(|o| o.child("value"))))
        .unwrap_or_else(|| {
            if high.is_some() {
                return "resolved";
            }
            match concern.and_then(status_code) {
                Some("completed") => "resolved",
                Some("suspended" | "aborted") => "inactive",
                _ => "active",
            }
        });
    c.insert(
        "clinicalStatus".into(),
        cc("condition-clinical", clinical, clinical),
    );
    let verification = if negated(obs) { "refuted" } else { "confirmed" };
    c.insert(
        "verificationStatus".into(),
        cc("condition-ver-status", verification, verification),
    );
    let cat_display = if category == "problem-list-item" {
        "Problem List Item"
    } else {
        "Encounter Diagnosis"
    };
    c.insert(
        "category".into(),
        Value::Array(vec![cc("condition-category", category, cat_display)]),
    );
    if let Some(code) = obs.child("value").and_then(concept) {
        c.insert("code".into(), code);
    }
    c.insert("subject".into(), ctx.subject());
    if let Some(t) = time
        .and_then(|t| t.child("low").or(Some(t)))
        .and_then(|l| l.attr_nb("value"))
        .and_then(|v| date_time(v, ctx.rules))
    {
        c.insert("onsetDateTime".into(), Value::String(t));
    }
    if let Some(h) = high
        && clinical != "active"
    {
        c.insert("abatementDateTime".into(), Value::String(h));
    }
    if let Some(t) = recorded(ctx, obs) {
        c.insert("recordedDate".into(), Value::String(t));
    }
    report_rest(ctx, obs, &[PROBLEM_STATUS, AGE_OBS, PRIORITY]);
    ctx.add("Condition", id, c)
}

/// The first effectiveTime that is a time or interval (not a frequency) and the frequency.
fn times<'d, 'a>(sa: El<'d, 'a>) -> (Option<El<'d, 'a>>, Option<El<'d, 'a>>) {
    let mut when = None;
    let mut freq = None;
    for t in sa.children_named("effectiveTime") {
        match super::types::xsi_type(t) {
            Some("PIVL_TS" | "EIVL_TS" | "SXPR_TS") => freq = freq.or(Some(t)),
            _ => when = when.or(Some(t)),
        }
    }
    (when, freq)
}

fn dosage(ctx: &Ctx<'_>, sa: El<'_, '_>) -> Option<Value> {
    let mut d = Map::new();
    if let Some(t) = sa.child("text").and_then(|t| {
        t.child("reference")
            .and_then(|r| r.attr_nb("value"))
            .and_then(|v| v.strip_prefix('#'))
            .and_then(|id| t.doc().by_id(id))
            .and_then(|e| e.deep_text())
            .or_else(|| t.deep_text())
    }) {
        d.insert("text".into(), Value::String(t));
    }
    let (_, freq) = times(sa);
    if let Some(p) = freq.and_then(|f| f.child("period")) {
        let unit = match p.attr_nb("unit").unwrap_or("") {
            "s" => Some("s"),
            "min" => Some("min"),
            "h" => Some("h"),
            "d" => Some("d"),
            "wk" => Some("wk"),
            "mo" => Some("mo"),
            "a" => Some("a"),
            _ => None,
        };
        if let (Some(v), Some(u)) = (p.attr_nb("value").and_then(super::types::decimal), unit) {
            d.insert(
                "timing".into(),
                json!({"repeat": {"period": v, "periodUnit": u}}),
            );
        }
    }
    if let Some(r) = sa.child("routeCode").and_then(concept) {
        d.insert("route".into(), r);
    }
    if let Some(s) = sa.child("approachSiteCode").and_then(concept) {
        d.insert("site".into(), s);
    }
    if let Some(q) = sa.child("doseQuantity").and_then(|q| {
        let v = q.attr_nb("value").and_then(super::types::decimal)?;
        let mut m = Map::new();
        m.insert("value".into(), v);
        if let Some(u) = q.attr_nb("unit").filter(|u| *u != "1") {
            m.insert("unit".into(), Value::String(u.into()));
            m.insert(
                "system".into(),
                Value::String("http://unitsofmeasure.org".into()),
            );
            m.insert("code".into(), Value::String(u.into()));
        }
        Some(Value::Object(m))
    }) {
        d.insert("doseAndRate".into(), json!([{"doseQuantity": q}]));
    }
    let _ = ctx;
    (!d.is_empty()).then_some(Value::Object(d))
}

fn reasons(sa: El<'_, '_>) -> Vec<Value> {
    related(sa)
        .filter(|o| o.has_template(INDICATION))
        .filter_map(|o| o.child("value").and_then(concept))
        .collect()
}

#[allow(clippy::too_many_lines)] // MedicationStatement and MedicationRequest share the reading of the entry
fn medication(ctx: &mut Ctx<'_>, sa: El<'_, '_>) -> Option<String> {
    let mood = sa.attr_nb("moodCode").unwrap_or("EVN");
    let intent = match mood {
        "EVN" => None,
        "INT" => Some("plan"),
        "RQO" => Some("order"),
        "PRP" | "PRMS" => Some("proposal"),
        _ => {
            ctx.unmapped(sa, format!("medication with moodCode {mood} is not mapped"));
            return None;
        }
    };
    let material = sa.at("consumable/manufacturedProduct/manufacturedMaterial/code");
    let (when, _) = times(sa);
    let status = status_code(sa);
    let mut m = Map::new();
    let rtype = if let Some(intent) = intent {
        let s = match status {
            Some("active") => "active",
            Some("completed") => "completed",
            Some("aborted") => "stopped",
            Some("suspended" | "held") => "on-hold",
            Some("cancelled") => "cancelled",
            Some("nullified") => "entered-in-error",
            Some("new") => "draft",
            _ => "unknown",
        };
        m.insert("status".into(), Value::String(s.into()));
        m.insert("intent".into(), Value::String(intent.into()));
        if negated(sa) {
            m.insert("doNotPerform".into(), Value::Bool(true));
        }
        "MedicationRequest"
    } else {
        let s = if negated(sa) {
            "not-taken"
        } else {
            match status {
                Some("active") => "active",
                Some("completed") => "completed",
                Some("aborted") => "stopped",
                Some("suspended" | "held") => "on-hold",
                Some("cancelled") => "not-taken",
                Some("nullified") => "entered-in-error",
                _ => "unknown",
            }
        };
        m.insert("status".into(), Value::String(s.into()));
        "MedicationStatement"
    };
    m.insert(
        "medicationCodeableConcept".into(),
        concept_or_absent(material),
    );
    m.insert("subject".into(), ctx.subject());
    let dose = dosage(ctx, sa);
    put_array(&mut m, "reasonCode", reasons(sa));
    if rtype == "MedicationStatement" {
        put_time_choice(&mut m, "effective", when, ctx.rules);
        if let Some(t) = recorded(ctx, sa) {
            m.insert("dateAsserted".into(), Value::String(t));
        }
        if let Some(d) = dose {
            m.insert("dosage".into(), Value::Array(vec![d]));
        }
    } else {
        if let Some(t) = recorded(ctx, sa) {
            m.insert("authoredOn".into(), Value::String(t));
        }
        let mut d = dose.unwrap_or_else(|| Value::Object(Map::new()));
        if let (Some(p), Value::Object(dm)) = (when.and_then(|w| period(w, ctx.rules)), &mut d) {
            let timing = dm.entry("timing").or_insert_with(|| json!({}));
            if let Value::Object(t) = timing {
                let repeat = t.entry("repeat").or_insert_with(|| json!({}));
                if let Value::Object(r) = repeat {
                    r.insert("boundsPeriod".into(), p);
                }
            }
        }
        if d.as_object().is_some_and(|o| !o.is_empty()) {
            m.insert("dosageInstruction".into(), Value::Array(vec![d]));
        }
    }
    report_rest(
        ctx,
        sa,
        &[
            INDICATION,
            INSTRUCTION,
            "2.16.840.1.113883.10.20.22.4.17",
            "2.16.840.1.113883.10.20.22.4.18",
            "2.16.840.1.113883.10.20.22.4.118",
        ],
    );
    let id = ctx.new_id(rtype, sa);
    Some(ctx.add(
        if intent.is_some() {
            "MedicationRequest"
        } else {
            "MedicationStatement"
        },
        id,
        m,
    ))
}

fn immunization(ctx: &mut Ctx<'_>, sa: El<'_, '_>) -> String {
    let id = ctx.new_id("Immunization", sa);
    let mut i = Map::new();
    let not_done = negated(sa) || matches!(status_code(sa), Some("aborted" | "cancelled"));
    i.insert(
        "status".into(),
        Value::String(if not_done { "not-done" } else { "completed" }.into()),
    );
    if let Some(r) = related(sa)
        .find(|o| o.has_template(REFUSAL))
        .and_then(|o| o.child("code"))
        .and_then(concept)
    {
        i.insert("statusReason".into(), r);
    }
    let material = sa.at("consumable/manufacturedProduct/manufacturedMaterial");
    i.insert(
        "vaccineCode".into(),
        concept_or_absent(material.and_then(|m| m.child("code"))),
    );
    i.insert("patient".into(), ctx.subject());
    let (when, _) = times(sa);
    if let Some(t) = when.and_then(|w| point_in_time(w, ctx.rules)) {
        i.insert("occurrenceDateTime".into(), Value::String(t));
    } else {
        // occurrence[x] is required; a text choice with the reason keeps every R4 reader
        // happy (some refuse a choice element that has only an extension).
        i.insert("occurrenceString".into(), Value::String("unknown".into()));
        i.insert(
            "_occurrenceString".into(),
            absent(when.and_then(|w| w.attr("nullFlavor"))),
        );
    }
    if let Some(lot) = material
        .and_then(|m| m.child("lotNumberText"))
        .and_then(|l| l.deep_text())
    {
        i.insert("lotNumber".into(), Value::String(lot));
    }
    if let Some(r) = sa.child("routeCode").and_then(concept) {
        i.insert("route".into(), r);
    }
    if let Some(s) = sa.child("approachSiteCode").and_then(concept) {
        i.insert("site".into(), s);
    }
    if let Some(q) = sa.child("doseQuantity").and_then(quantity) {
        i.insert("doseQuantity".into(), q);
    }
    put_array(&mut i, "reasonCode", reasons(sa));
    report_rest(
        ctx,
        sa,
        &[
            REFUSAL,
            INDICATION,
            INSTRUCTION,
            "2.16.840.1.113883.10.20.22.4.118",
        ],
    );
    ctx.add("Immunization", id, i)
}
