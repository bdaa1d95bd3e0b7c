//! The nine CCD sections, each with a narrative table and its C-CDA R2.1 entries (template ids
//! with their R2.1 versions): allergies, medications, problems, immunizations, results, vital
//! signs, procedures, encounters, social history. A section without data is written with
//! `nullFlavor="NI"` and the text "No information", as C-CDA R2.1 allows.

use serde_json::Value;

use super::types::{
    CdMode, cd, concept_text, identifiers, ivl_ts, pq, str_of, time_choice, ts, ts_el,
};
use super::{Res, Xml};

mod observations;

const SNOMED: &str = "2.16.840.1.113883.6.96";
const LOINC: &str = "2.16.840.1.113883.6.1";
const ACT_CODE: &str = "2.16.840.1.113883.5.4";

struct Spec {
    template: &'static str,
    ext: &'static str,
    code: &'static str,
    display: &'static str,
    title: &'static str,
    headers: &'static [&'static str],
    prefix: &'static str,
}

const ALLERGIES: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.6.1",
    ext: "2015-08-01",
    code: "48765-2",
    display: "Allergies and adverse reactions Document",
    title: "Allergies and Intolerances",
    headers: &["Substance", "Reaction", "Severity", "Status"],
    prefix: "allergy",
};
const MEDICATIONS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.1.1",
    ext: "2014-06-09",
    code: "10160-0",
    display: "History of Medication use Narrative",
    title: "Medications",
    headers: &["Medication", "Directions", "Start", "End", "Status"],
    prefix: "medication",
};
const PROBLEMS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.5.1",
    ext: "2015-08-01",
    code: "11450-4",
    display: "Problem list - Reported",
    title: "Problems",
    headers: &["Problem", "Onset", "Resolved", "Status"],
    prefix: "problem",
};
const IMMUNIZATIONS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.2.1",
    ext: "2015-08-01",
    code: "11369-6",
    display: "History of Immunization Narrative",
    title: "Immunizations",
    headers: &["Vaccine", "Date", "Status"],
    prefix: "immunization",
};
const RESULTS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.3.1",
    ext: "2015-08-01",
    code: "30954-2",
    display: "Relevant diagnostic tests/laboratory data Narrative",
    title: "Results",
    headers: &["Test", "Result", "Date"],
    prefix: "result",
};
const VITALS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.4.1",
    ext: "2015-08-01",
    code: "8716-3",
    display: "Vital signs",
    title: "Vital Signs",
    headers: &["Measurement", "Value", "Date"],
    prefix: "vital",
};
const PROCEDURES: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.7.1",
    ext: "2014-06-09",
    code: "47519-4",
    display: "History of Procedures Document",
    title: "Procedures",
    headers: &["Procedure", "Date", "Status"],
    prefix: "procedure",
};
const ENCOUNTERS: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.22.1",
    ext: "2015-08-01",
    code: "46240-8",
    display: "History of Hospitalizations+Outpatient visits Narrative",
    title: "Encounters",
    headers: &["Encounter", "Date", "Status"],
    prefix: "encounter",
};
const SOCIAL: Spec = Spec {
    template: "2.16.840.1.113883.10.20.22.2.17",
    ext: "2015-08-01",
    code: "29762-2",
    display: "Social history Narrative",
    title: "Social History",
    headers: &["Observation", "Value", "Date"],
    prefix: "social",
};

fn of_type<'r>(resources: &'r [Value], types: &[&str]) -> Vec<&'r Value> {
    resources
        .iter()
        .filter(|r| str_of(r, "resourceType").is_some_and(|t| types.contains(&t)))
        .filter(|r| str_of(r, "status") != Some("entered-in-error"))
        .filter(|r| {
            r.pointer("/verificationStatus/coding/0/code")
                .and_then(Value::as_str)
                != Some("entered-in-error")
        })
        .collect()
}

fn category_is(r: &Value, code: &str) -> bool {
    r.get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|k| str_of(k, "code") == Some(code))
        })
}

/// The earliest and latest clinical time among the resources, as TS.
pub(crate) fn time_span(resources: &[Value]) -> (Option<String>, Option<String>) {
    let mut times: Vec<&str> = Vec::new();
    for r in resources {
        for k in [
            "effectiveDateTime",
            "onsetDateTime",
            "occurrenceDateTime",
            "performedDateTime",
            "recordedDate",
        ] {
            if let Some(t) = str_of(r, k) {
                times.push(t);
            }
        }
        for k in ["effectivePeriod", "performedPeriod", "period"] {
            if let Some(p) = r.get(k) {
                times.extend(str_of(p, "start"));
                times.extend(str_of(p, "end"));
            }
        }
    }
    // Compare on the TS form (digits first), which orders like time for one zone.
    let mut ts_times: Vec<String> = times.into_iter().filter_map(ts).collect();
    ts_times.sort();
    (ts_times.first().cloned(), ts_times.last().cloned())
}

/// Writes all nine sections.
pub(crate) fn write_all(x: &mut Xml, resources: &[Value]) -> Res {
    allergies(x, &of_type(resources, &["AllergyIntolerance"]))?;
    medications(
        x,
        &of_type(resources, &["MedicationStatement", "MedicationRequest"]),
        resources,
    )?;
    problems(x, &of_type(resources, &["Condition"]))?;
    immunizations(x, &of_type(resources, &["Immunization"]))?;
    let obs = of_type(resources, &["Observation"]);
    let labs: Vec<&Value> = obs
        .iter()
        .copied()
        .filter(|o| {
            category_is(o, "laboratory")
                || !(category_is(o, "vital-signs") || category_is(o, "social-history"))
        })
        .collect();
    observations::results(
        x,
        &labs,
        &of_type(resources, &["DiagnosticReport"]),
        resources,
    )?;
    observations::vitals(
        x,
        &obs.iter()
            .copied()
            .filter(|o| category_is(o, "vital-signs"))
            .collect::<Vec<_>>(),
    )?;
    observations::procedures(x, &of_type(resources, &["Procedure"]))?;
    observations::encounters(x, &of_type(resources, &["Encounter"]))?;
    observations::social(
        x,
        &obs.iter()
            .copied()
            .filter(|o| category_is(o, "social-history"))
            .collect::<Vec<_>>(),
    )
}

fn section_start(x: &mut Xml, spec: &Spec, rows: &[Vec<String>]) -> Res {
    x.start("component", &[])?;
    if rows.is_empty() {
        x.start("section", &[("nullFlavor", "NI")])?;
    } else {
        x.start("section", &[])?;
    }
    x.empty(
        "templateId",
        &[("root", spec.template), ("extension", spec.ext)],
    )?;
    x.empty(
        "code",
        &[
            ("code", spec.code),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
            ("displayName", spec.display),
        ],
    )?;
    x.text_el("title", &[], spec.title)?;
    if rows.is_empty() {
        return x.text_el("text", &[], "No information");
    }
    x.start("text", &[])?;
    x.start("table", &[("border", "1"), ("width", "100%")])?;
    x.start("thead", &[])?;
    x.start("tr", &[])?;
    for h in spec.headers {
        x.text_el("th", &[], h)?;
    }
    x.end("tr")?;
    x.end("thead")?;
    x.start("tbody", &[])?;
    for (n, row) in rows.iter().enumerate() {
        x.start("tr", &[])?;
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                x.start("td", &[])?;
                x.text_el(
                    "content",
                    &[("ID", &format!("{}-{}", spec.prefix, n + 1))],
                    cell,
                )?;
                x.end("td")?;
            } else {
                x.text_el("td", &[], cell)?;
            }
        }
        x.end("tr")?;
    }
    x.end("tbody")?;
    x.end("table")?;
    x.end("text")
}

fn section_end(x: &mut Xml) -> Res {
    x.end("section")?;
    x.end("component")
}

fn time_text(r: &Value, prefix: &str) -> String {
    match time_choice(r, prefix) {
        (Some(t), _) => t.to_owned(),
        (None, Some(p)) => match (str_of(p, "start"), str_of(p, "end")) {
            (Some(s), Some(e)) => format!("{s} – {e}"),
            (Some(s), None) => s.to_owned(),
            (None, Some(e)) => format!("until {e}"),
            (None, None) => String::new(),
        },
        (None, None) => String::new(),
    }
}

fn status_text(r: &Value, key: &str) -> String {
    match r.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(cc @ Value::Object(_)) => concept_text(cc),
        _ => String::new(),
    }
}

fn template(x: &mut Xml, root: &str, ext: &str) -> Res {
    if ext.is_empty() {
        return x.empty("templateId", &[("root", root)]);
    }
    x.empty("templateId", &[("root", root), ("extension", ext)])
}

fn status(x: &mut Xml, code: &str) -> Res {
    x.empty("statusCode", &[("code", code)])
}

#[allow(clippy::too_many_lines)] // the concern act around the allergy observation, in the schema's order
fn allergies(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let reactions: Vec<String> = a
                .get("reaction")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    r.get("manifestation")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(concept_text)
                })
                .collect();
            let severity = a
                .pointer("/reaction/0/severity")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            vec![
                a.get("code").map(concept_text).unwrap_or_default(),
                reactions.join(", "),
                severity,
                status_text(a, "clinicalStatus"),
            ]
        })
        .collect();
    section_start(x, &ALLERGIES, &rows)?;
    for (n, a) in list.iter().enumerate() {
        let rid = format!("{}-{}", ALLERGIES.prefix, n + 1);
        let clinical = a
            .pointer("/clinicalStatus/coding/0/code")
            .and_then(Value::as_str)
            .unwrap_or("active");
        let code = a.get("code");
        let no_known = code
            .and_then(|c| c.get("coding"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| str_of(c, "code") == Some("716186003"));
        let refuted = a
            .pointer("/verificationStatus/coding/0/code")
            .and_then(Value::as_str)
            == Some("refuted");
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start("act", &[("classCode", "ACT"), ("moodCode", "EVN")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.30", "2015-08-01")?;
        identifiers(
            x,
            &serde_json::json!({"resourceType": "AllergyConcern", "id": str_of(a, "id").unwrap_or("")}),
            "id",
        )?;
        x.empty(
            "code",
            &[
                ("code", "CONC"),
                ("codeSystem", "2.16.840.1.113883.5.6"),
                ("displayName", "Concern"),
            ],
        )?;
        status(
            x,
            if clinical == "active" {
                "active"
            } else {
                "completed"
            },
        )?;
        ivl_ts(
            x,
            "effectiveTime",
            str_of(a, "recordedDate").or_else(|| str_of(a, "onsetDateTime")),
            None,
            false,
        )?;
        x.start("entryRelationship", &[("typeCode", "SUBJ")])?;
        let neg = if no_known || refuted { "true" } else { "false" };
        x.start(
            "observation",
            &[
                ("classCode", "OBS"),
                ("moodCode", "EVN"),
                ("negationInd", neg),
            ],
        )?;
        template(x, "2.16.840.1.113883.10.20.22.4.7", "2014-06-09")?;
        identifiers(x, a, "id")?;
        x.empty("code", &[("code", "ASSERTION"), ("codeSystem", ACT_CODE)])?;
        status(x, "completed")?;
        ivl_ts(x, "effectiveTime", str_of(a, "onsetDateTime"), None, false)?;
        let cat = a.pointer("/category/0").and_then(Value::as_str);
        let (vcode, vdisplay) = match (str_of(a, "type"), cat) {
            (Some("intolerance"), Some("medication")) => {
                ("59037007", "Drug intolerance (disorder)")
            }
            (Some("intolerance"), Some("food")) => ("235719002", "Food intolerance (disorder)"),
            (_, Some("medication")) => ("416098002", "Allergy to drug (finding)"),
            (_, Some("food")) => ("414285001", "Allergy to food (finding)"),
            (_, Some("environment")) => ("426232007", "Environmental allergy (finding)"),
            _ => ("419199007", "Allergy to substance (finding)"),
        };
        x.empty(
            "value",
            &[
                ("xsi:type", "CD"),
                ("code", vcode),
                ("codeSystem", SNOMED),
                ("codeSystemName", "SNOMED CT"),
                ("displayName", vdisplay),
            ],
        )?;
        x.start("participant", &[("typeCode", "CSM")])?;
        x.start("participantRole", &[("classCode", "MANU")])?;
        x.start("playingEntity", &[("classCode", "MMAT")])?;
        match code {
            Some(c) if !no_known => cd(x, "code", c, &[], CdMode::Ref(&rid))?,
            _ => x.empty("code", &[("nullFlavor", "NA")])?,
        }
        x.end("playingEntity")?;
        x.end("participantRole")?;
        x.end("participant")?;
        allergy_details(x, a)?;
        x.end("observation")?;
        x.end("entryRelationship")?;
        x.end("act")?;
        x.end("entry")?;
    }
    section_end(x)
}

/// The reactions (with severity) and criticality of an allergy observation.
fn allergy_details(x: &mut Xml, a: &Value) -> Res {
    for r in a
        .get("reaction")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for m in r
            .get("manifestation")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            x.start(
                "entryRelationship",
                &[("typeCode", "MFST"), ("inversionInd", "true")],
            )?;
            x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
            template(x, "2.16.840.1.113883.10.20.22.4.9", "2014-06-09")?;
            x.empty("id", &[("nullFlavor", "NI")])?;
            x.empty("code", &[("code", "ASSERTION"), ("codeSystem", ACT_CODE)])?;
            status(x, "completed")?;
            cd(x, "value", m, &[], CdMode::Value)?;
            if let Some(sev) = str_of(r, "severity") {
                let (c, d) = match sev {
                    "mild" => ("255604002", "Mild (qualifier value)"),
                    "moderate" => ("6736007", "Moderate (severity modifier) (qualifier value)"),
                    _ => ("24484000", "Severe (severity modifier) (qualifier value)"),
                };
                x.start(
                    "entryRelationship",
                    &[("typeCode", "SUBJ"), ("inversionInd", "true")],
                )?;
                x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
                template(x, "2.16.840.1.113883.10.20.22.4.8", "2014-06-09")?;
                x.empty(
                    "code",
                    &[
                        ("code", "SEV"),
                        ("codeSystem", ACT_CODE),
                        ("displayName", "Severity Observation"),
                    ],
                )?;
                status(x, "completed")?;
                x.empty(
                    "value",
                    &[
                        ("xsi:type", "CD"),
                        ("code", c),
                        ("codeSystem", SNOMED),
                        ("displayName", d),
                    ],
                )?;
                x.end("observation")?;
                x.end("entryRelationship")?;
            }
            x.end("observation")?;
            x.end("entryRelationship")?;
        }
    }
    if let Some(c) = str_of(a, "criticality") {
        let code = match c {
            "low" => "CRITL",
            "high" => "CRITH",
            _ => "CRITU",
        };
        x.start(
            "entryRelationship",
            &[("typeCode", "SUBJ"), ("inversionInd", "true")],
        )?;
        x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.145", "")?;
        x.empty(
            "code",
            &[
                ("code", "82606-5"),
                ("codeSystem", LOINC),
                ("displayName", "Criticality"),
            ],
        )?;
        status(x, "completed")?;
        x.empty(
            "value",
            &[
                ("xsi:type", "CD"),
                ("code", code),
                ("codeSystem", "2.16.840.1.113883.5.1063"),
            ],
        )?;
        x.end("observation")?;
        x.end("entryRelationship")?;
    }
    Ok(())
}

fn medication_concept<'r>(m: &'r Value, all: &'r [Value]) -> Option<&'r Value> {
    if let Some(c) = m.get("medicationCodeableConcept") {
        return Some(c);
    }
    let r = m
        .pointer("/medicationReference/reference")
        .and_then(Value::as_str)?;
    super::find_ref(all, r).and_then(|med| med.get("code"))
}

#[allow(clippy::too_many_lines)] // one entry with its dosage, in the schema's order
fn medications(x: &mut Xml, list: &[&Value], all: &[Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            let dosage = m
                .pointer("/dosage/0")
                .or_else(|| m.pointer("/dosageInstruction/0"));
            let directions = dosage
                .and_then(|d| str_of(d, "text"))
                .unwrap_or("")
                .to_owned();
            let (start, end) = match time_choice(m, "effective") {
                (Some(t), _) => (t.to_owned(), String::new()),
                (None, Some(p)) => (
                    str_of(p, "start").unwrap_or("").to_owned(),
                    str_of(p, "end").unwrap_or("").to_owned(),
                ),
                _ => (
                    str_of(m, "authoredOn").unwrap_or("").to_owned(),
                    String::new(),
                ),
            };
            vec![
                medication_concept(m, all)
                    .map(concept_text)
                    .unwrap_or_default(),
                directions,
                start,
                end,
                status_text(m, "status"),
            ]
        })
        .collect();
    section_start(x, &MEDICATIONS, &rows)?;
    for (n, m) in list.iter().enumerate() {
        let rid = format!("{}-{}", MEDICATIONS.prefix, n + 1);
        let request = str_of(m, "resourceType") == Some("MedicationRequest");
        let mood = if request {
            match str_of(m, "intent") {
                Some(
                    "order" | "original-order" | "instance-order" | "filler-order" | "reflex-order",
                ) => "RQO",
                Some("proposal") => "PRP",
                _ => "INT",
            }
        } else {
            "EVN"
        };
        let st = str_of(m, "status").unwrap_or("unknown");
        let neg = st == "not-taken" || m.get("doNotPerform").and_then(Value::as_bool) == Some(true);
        let mut attrs = vec![("classCode", "SBADM"), ("moodCode", mood)];
        if neg {
            attrs.push(("negationInd", "true"));
        }
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start("substanceAdministration", &attrs)?;
        template(x, "2.16.840.1.113883.10.20.22.4.16", "2014-06-09")?;
        identifiers(x, m, "id")?;
        let dosage = m
            .pointer("/dosage/0")
            .or_else(|| m.pointer("/dosageInstruction/0"));
        if let Some(sig) = dosage.and_then(|d| str_of(d, "text")) {
            x.text_el("text", &[], sig)?;
        }
        let code = match st {
            "active" => "active",
            "stopped" => "aborted",
            "on-hold" => "suspended",
            "cancelled" | "not-taken" => "cancelled",
            "draft" => "new",
            _ => "completed",
        };
        status(x, code)?;
        let (dt, period) = time_choice(m, "effective");
        let bounds = dosage.and_then(|d| d.pointer("/timing/repeat/boundsPeriod"));
        ivl_ts(x, "effectiveTime", dt, period.or(bounds), true)?;
        if let Some(rep) = dosage.and_then(|d| d.pointer("/timing/repeat"))
            && let (Some(p), Some(u)) = (
                rep.get("period").filter(|p| p.is_number()),
                str_of(rep, "periodUnit"),
            )
        {
            x.start(
                "effectiveTime",
                &[
                    ("xsi:type", "PIVL_TS"),
                    ("institutionSpecified", "true"),
                    ("operator", "A"),
                ],
            )?;
            x.empty("period", &[("value", &p.to_string()), ("unit", u)])?;
            x.end("effectiveTime")?;
        }
        if let Some(r) = dosage.and_then(|d| d.get("route")) {
            cd(x, "routeCode", r, &[], CdMode::Plain)?;
        }
        if let Some(q) = dosage.and_then(|d| d.pointer("/doseAndRate/0/doseQuantity")) {
            pq(x, "doseQuantity", q, false)?;
        }
        x.start("consumable", &[])?;
        x.start("manufacturedProduct", &[("classCode", "MANU")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.23", "2014-06-09")?;
        x.start("manufacturedMaterial", &[])?;
        match medication_concept(m, all) {
            Some(c) => cd(x, "code", c, &[], CdMode::Ref(&rid))?,
            None => x.empty("code", &[("nullFlavor", "UNK")])?,
        }
        x.end("manufacturedMaterial")?;
        x.end("manufacturedProduct")?;
        x.end("consumable")?;
        indications(x, m)?;
        x.end("substanceAdministration")?;
        x.end("entry")?;
    }
    section_end(x)
}

/// `reasonCode`s as Indication observations.
fn indications(x: &mut Xml, r: &Value) -> Res {
    for reason in r
        .get("reasonCode")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        x.start("entryRelationship", &[("typeCode", "RSON")])?;
        x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.19", "2014-06-09")?;
        x.empty("id", &[("nullFlavor", "NI")])?;
        x.empty(
            "code",
            &[
                ("code", "404684003"),
                ("codeSystem", SNOMED),
                ("displayName", "Clinical finding (finding)"),
            ],
        )?;
        status(x, "completed")?;
        cd(x, "value", reason, &[], CdMode::Value)?;
        x.end("observation")?;
        x.end("entryRelationship")?;
    }
    Ok(())
}

fn problems(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.get("code").map(concept_text).unwrap_or_default(),
                str_of(c, "onsetDateTime").unwrap_or("").to_owned(),
                str_of(c, "abatementDateTime").unwrap_or("").to_owned(),
                status_text(c, "clinicalStatus"),
            ]
        })
        .collect();
    section_start(x, &PROBLEMS, &rows)?;
    for (n, c) in list.iter().enumerate() {
        let rid = format!("{}-{}", PROBLEMS.prefix, n + 1);
        x.start("entry", &[("typeCode", "DRIV")])?;
        problem_act(x, c, &rid)?;
        x.end("entry")?;
    }
    section_end(x)
}

/// A Problem Concern Act (or, with `diagnosis`, the act inside an encounter) around a Problem
/// Observation.
fn problem_act(x: &mut Xml, c: &Value, rid: &str) -> Res {
    let clinical = c
        .pointer("/clinicalStatus/coding/0/code")
        .and_then(Value::as_str)
        .unwrap_or("active");
    let active = matches!(clinical, "active" | "recurrence" | "relapse");
    x.start("act", &[("classCode", "ACT"), ("moodCode", "EVN")])?;
    template(x, "2.16.840.1.113883.10.20.22.4.3", "2015-08-01")?;
    identifiers(
        x,
        &serde_json::json!({"resourceType": "ProblemConcern", "id": str_of(c, "id").unwrap_or("")}),
        "id",
    )?;
    x.empty(
        "code",
        &[
            ("code", "CONC"),
            ("codeSystem", "2.16.840.1.113883.5.6"),
            ("displayName", "Concern"),
        ],
    )?;
    status(x, if active { "active" } else { "completed" })?;
    ivl_ts(
        x,
        "effectiveTime",
        str_of(c, "recordedDate").or_else(|| str_of(c, "onsetDateTime")),
        None,
        false,
    )?;
    x.start("entryRelationship", &[("typeCode", "SUBJ")])?;
    let refuted = c
        .pointer("/verificationStatus/coding/0/code")
        .and_then(Value::as_str)
        == Some("refuted");
    let mut attrs = vec![("classCode", "OBS"), ("moodCode", "EVN")];
    if refuted {
        attrs.push(("negationInd", "true"));
    }
    x.start("observation", &attrs)?;
    template(x, "2.16.840.1.113883.10.20.22.4.4", "2015-08-01")?;
    identifiers(x, c, "id")?;
    x.start(
        "code",
        &[
            ("code", "55607006"),
            ("codeSystem", SNOMED),
            ("codeSystemName", "SNOMED CT"),
            ("displayName", "Problem"),
        ],
    )?;
    x.empty(
        "translation",
        &[
            ("code", "75326-9"),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
            ("displayName", "Problem"),
        ],
    )?;
    x.end("code")?;
    status(x, "completed")?;
    x.start("effectiveTime", &[])?;
    ts_el(x, "low", str_of(c, "onsetDateTime"))?;
    if !active {
        match str_of(c, "abatementDateTime") {
            Some(a) => ts_el(x, "high", Some(a))?,
            None => x.empty("high", &[("nullFlavor", "UNK")])?,
        }
    }
    x.end("effectiveTime")?;
    match c.get("code") {
        Some(code) => cd(x, "value", code, &[], CdMode::ValueRef(rid))?,
        None => x.empty("value", &[("xsi:type", "CD"), ("nullFlavor", "UNK")])?,
    }
    x.end("observation")?;
    x.end("entryRelationship")?;
    x.end("act")
}

fn immunizations(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.get("vaccineCode").map(concept_text).unwrap_or_default(),
                time_text(i, "occurrence"),
                status_text(i, "status"),
            ]
        })
        .collect();
    section_start(x, &IMMUNIZATIONS, &rows)?;
    for (n, i) in list.iter().enumerate() {
        let rid = format!("{}-{}", IMMUNIZATIONS.prefix, n + 1);
        let not_done = str_of(i, "status") == Some("not-done");
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start(
            "substanceAdministration",
            &[
                ("classCode", "SBADM"),
                ("moodCode", "EVN"),
                ("negationInd", if not_done { "true" } else { "false" }),
            ],
        )?;
        template(x, "2.16.840.1.113883.10.20.22.4.52", "2015-08-01")?;
        identifiers(x, i, "id")?;
        status(x, "completed")?;
        ts_el(x, "effectiveTime", str_of(i, "occurrenceDateTime"))?;
        if let Some(r) = i.get("route") {
            cd(x, "routeCode", r, &[], CdMode::Plain)?;
        }
        if let Some(s) = i.get("site") {
            cd(x, "approachSiteCode", s, &[], CdMode::Plain)?;
        }
        if let Some(q) = i.get("doseQuantity") {
            pq(x, "doseQuantity", q, false)?;
        }
        x.start("consumable", &[])?;
        x.start("manufacturedProduct", &[("classCode", "MANU")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.54", "2014-06-09")?;
        x.start("manufacturedMaterial", &[])?;
        match i.get("vaccineCode") {
            Some(c) => cd(x, "code", c, &[], CdMode::Ref(&rid))?,
            None => x.empty("code", &[("nullFlavor", "UNK")])?,
        }
        if let Some(lot) = str_of(i, "lotNumber") {
            x.text_el("lotNumberText", &[], lot)?;
        }
        x.end("manufacturedMaterial")?;
        x.end("manufacturedProduct")?;
        x.end("consumable")?;
        if let Some(reason) = i.get("statusReason") {
            x.start("entryRelationship", &[("typeCode", "RSON")])?;
            x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
            template(x, "2.16.840.1.113883.10.20.22.4.53", "")?;
            x.empty("id", &[("nullFlavor", "NI")])?;
            cd(x, "code", reason, &[], CdMode::Plain)?;
            status(x, "completed")?;
            x.end("observation")?;
            x.end("entryRelationship")?;
        }
        indications(x, i)?;
        x.end("substanceAdministration")?;
        x.end("entry")?;
    }
    section_end(x)
}
