//! The CCD sections whose entries are observations and events: results, vital signs,
//! procedures, encounters, social history.

use serde_json::Value;

use super::super::types::{
    CdMode, cd, concept_text, identifiers, ivl_ts, pq, str_of, time_choice, ts, ts_el,
};
use super::super::{Res, Xml};
use super::{
    ENCOUNTERS, LOINC, PROCEDURES, RESULTS, SNOMED, SOCIAL, VITALS, indications, section_end,
    section_start, status, status_text, template, time_text,
};

fn value_text(o: &Value) -> String {
    if let Some(q) = o.get("valueQuantity") {
        let v = q.get("value").map(Value::to_string).unwrap_or_default();
        let u = str_of(q, "unit")
            .or_else(|| str_of(q, "code"))
            .unwrap_or("");
        return format!("{v} {u}").trim().to_owned();
    }
    if let Some(c) = o.get("valueCodeableConcept") {
        return concept_text(c);
    }
    for k in ["valueString", "valueDateTime"] {
        if let Some(s) = str_of(o, k) {
            return s.to_owned();
        }
    }
    if let Some(v) = o.get("valueInteger").or_else(|| o.get("valueBoolean")) {
        return v.to_string();
    }
    String::new()
}

/// An observation's `value` by its FHIR type.
fn obs_value(x: &mut Xml, o: &Value) -> Res {
    if let Some(q) = o.get("valueQuantity") {
        return pq(x, "value", q, true);
    }
    if let Some(c) = o.get("valueCodeableConcept") {
        return cd(x, "value", c, &[], CdMode::Value);
    }
    if let Some(s) = str_of(o, "valueString") {
        return x.text_el("value", &[("xsi:type", "ST")], s);
    }
    if let Some(b) = o.get("valueBoolean").and_then(Value::as_bool) {
        return x.empty(
            "value",
            &[
                ("xsi:type", "BL"),
                ("value", if b { "true" } else { "false" }),
            ],
        );
    }
    if let Some(i) = o.get("valueInteger").and_then(Value::as_i64) {
        return x.empty("value", &[("xsi:type", "INT"), ("value", &i.to_string())]);
    }
    if let Some(t) = str_of(o, "valueDateTime").and_then(ts) {
        return x.empty("value", &[("xsi:type", "TS"), ("value", &t)]);
    }
    if let Some(r) = o.get("valueRange") {
        x.start("value", &[("xsi:type", "IVL_PQ")])?;
        if let Some(l) = r.get("low") {
            pq(x, "low", l, false)?;
        }
        if let Some(h) = r.get("high") {
            pq(x, "high", h, false)?;
        }
        return x.end("value");
    }
    Ok(())
}

/// A Result/Vital Sign/Social History observation.
fn observation(x: &mut Xml, o: &Value, template_root: &str, ext: &str, rid: &str) -> Res {
    x.start("observation", &[("classCode", "OBS"), ("moodCode", "EVN")])?;
    template(x, template_root, ext)?;
    identifiers(x, o, "id")?;
    match o.get("code") {
        Some(c) => cd(x, "code", c, &[], CdMode::Ref(rid))?,
        None => x.empty("code", &[("nullFlavor", "UNK")])?,
    }
    let st = match str_of(o, "status") {
        Some("preliminary" | "registered") => "active",
        Some("cancelled") => "aborted",
        _ => "completed",
    };
    status(x, st)?;
    match time_choice(o, "effective") {
        (Some(t), _) => ts_el(x, "effectiveTime", Some(t))?,
        (None, Some(p)) => ivl_ts(x, "effectiveTime", None, Some(p), false)?,
        _ => x.empty("effectiveTime", &[("nullFlavor", "UNK")])?,
    }
    obs_value(x, o)?;
    for i in o
        .get("interpretation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        cd(x, "interpretationCode", i, &[], CdMode::Plain)?;
    }
    for r in o
        .get("referenceRange")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        x.start("referenceRange", &[])?;
        x.start("observationRange", &[])?;
        if let Some(t) = str_of(r, "text") {
            x.text_el("text", &[], t)?;
        }
        if r.get("low").is_some() || r.get("high").is_some() {
            x.start("value", &[("xsi:type", "IVL_PQ")])?;
            if let Some(l) = r.get("low") {
                pq(x, "low", l, false)?;
            }
            if let Some(h) = r.get("high") {
                pq(x, "high", h, false)?;
            }
            x.end("value")?;
        }
        x.end("observationRange")?;
        x.end("referenceRange")?;
    }
    x.end("observation")
}

pub(super) fn results(x: &mut Xml, labs: &[&Value], reports: &[&Value], all: &[Value]) -> Res {
    // Organizers: each DiagnosticReport with its results, then one per observation no report
    // holds.
    let mut groups: Vec<(Option<&Value>, Vec<&Value>)> = Vec::new();
    let mut grouped: Vec<&str> = Vec::new();
    for d in reports {
        let members: Vec<&Value> = d
            .get("result")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("reference").and_then(Value::as_str))
            .filter_map(|r| super::super::find_ref(all, r))
            .collect();
        grouped.extend(members.iter().filter_map(|m| str_of(m, "id")));
        if !members.is_empty() {
            groups.push((Some(d), members));
        }
    }
    for o in labs {
        if !str_of(o, "id").is_some_and(|id| grouped.contains(&id)) {
            groups.push((None, vec![o]));
        }
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|(_, members)| members.iter())
        .map(|o| {
            vec![
                o.get("code").map(concept_text).unwrap_or_default(),
                value_text(o),
                time_text(o, "effective"),
            ]
        })
        .collect();
    section_start(x, &RESULTS, &rows)?;
    let mut n = 0;
    for (report, members) in &groups {
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start(
            "organizer",
            &[("classCode", "BATTERY"), ("moodCode", "EVN")],
        )?;
        template(x, "2.16.840.1.113883.10.20.22.4.1", "2015-08-01")?;
        let head: &Value = (*report).unwrap_or(members[0]);
        identifiers(
            x,
            &serde_json::json!({"resourceType": "ResultOrganizer", "id": str_of(head, "id").unwrap_or("")}),
            "id",
        )?;
        match head.get("code") {
            Some(c) => cd(x, "code", c, &[], CdMode::Plain)?,
            None => x.empty("code", &[("nullFlavor", "UNK")])?,
        }
        status(x, "completed")?;
        let times: Vec<String> = members
            .iter()
            .filter_map(|m| time_choice(m, "effective").0)
            .filter_map(ts)
            .collect();
        if let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
            x.start("effectiveTime", &[])?;
            x.empty("low", &[("value", lo)])?;
            x.empty("high", &[("value", hi)])?;
            x.end("effectiveTime")?;
        }
        for m in members {
            n += 1;
            x.start("component", &[])?;
            observation(
                x,
                m,
                "2.16.840.1.113883.10.20.22.4.2",
                "2015-08-01",
                &format!("{}-{n}", RESULTS.prefix),
            )?;
            x.end("component")?;
        }
        x.end("organizer")?;
        x.end("entry")?;
    }
    section_end(x)
}

/// Vital signs with their components (a blood pressure panel's systolic and diastolic) as
/// separate observations, one organizer per time.
pub(super) fn vitals(x: &mut Xml, list: &[&Value]) -> Res {
    let mut flat: Vec<Value> = Vec::new();
    for o in list {
        let comps = o
            .get("component")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty());
        match comps {
            Some(cs) if o.get("valueQuantity").is_none() => {
                for (i, c) in cs.iter().enumerate() {
                    let mut v = c.clone();
                    if let Some(m) = v.as_object_mut() {
                        for k in [
                            "status",
                            "effectiveDateTime",
                            "effectivePeriod",
                            "resourceType",
                        ] {
                            if let Some(val) = o.get(k) {
                                m.insert(k.into(), val.clone());
                            }
                        }
                        m.insert(
                            "id".into(),
                            Value::String(format!("{}-{i}", str_of(o, "id").unwrap_or(""))),
                        );
                    }
                    flat.push(v);
                }
            }
            _ => flat.push((*o).clone()),
        }
    }
    let mut times: Vec<String> = flat.iter().map(|o| time_text(o, "effective")).collect();
    times.sort();
    times.dedup();
    let rows: Vec<Vec<String>> = times
        .iter()
        .flat_map(|t| flat.iter().filter(move |o| &time_text(o, "effective") == t))
        .map(|o| {
            vec![
                o.get("code").map(concept_text).unwrap_or_default(),
                value_text(o),
                time_text(o, "effective"),
            ]
        })
        .collect();
    section_start(x, &VITALS, &rows)?;
    let mut n = 0;
    for t in &times {
        let members: Vec<&Value> = flat
            .iter()
            .filter(|o| &time_text(o, "effective") == t)
            .collect();
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start(
            "organizer",
            &[("classCode", "CLUSTER"), ("moodCode", "EVN")],
        )?;
        template(x, "2.16.840.1.113883.10.20.22.4.26", "2015-08-01")?;
        let key: Vec<&str> = members.iter().filter_map(|m| str_of(m, "id")).collect();
        identifiers(
            x,
            &serde_json::json!({"resourceType": "VitalSignsOrganizer", "id": key.join(",")}),
            "id",
        )?;
        x.start(
            "code",
            &[
                ("code", "46680005"),
                ("codeSystem", SNOMED),
                ("codeSystemName", "SNOMED CT"),
                ("displayName", "Vital Signs"),
            ],
        )?;
        x.empty("translation", &[("code", "74728-7"), ("codeSystem", LOINC), ("codeSystemName", "LOINC"), ("displayName", "Vital signs, weight, height, head circumference, oximetry, BMI, and BSA panel - HL7.CCDAr1.1")])?;
        x.end("code")?;
        status(x, "completed")?;
        match members.first().map(|m| time_choice(m, "effective")) {
            Some((Some(dt), _)) => ts_el(x, "effectiveTime", Some(dt))?,
            Some((None, Some(p))) => ivl_ts(x, "effectiveTime", None, Some(p), false)?,
            _ => x.empty("effectiveTime", &[("nullFlavor", "UNK")])?,
        }
        for m in members {
            n += 1;
            x.start("component", &[])?;
            observation(
                x,
                m,
                "2.16.840.1.113883.10.20.22.4.27",
                "2014-06-09",
                &format!("{}-{n}", VITALS.prefix),
            )?;
            x.end("component")?;
        }
        x.end("organizer")?;
        x.end("entry")?;
    }
    section_end(x)
}

pub(super) fn procedures(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.get("code").map(concept_text).unwrap_or_default(),
                time_text(p, "performed"),
                status_text(p, "status"),
            ]
        })
        .collect();
    section_start(x, &PROCEDURES, &rows)?;
    for (n, p) in list.iter().enumerate() {
        let rid = format!("{}-{}", PROCEDURES.prefix, n + 1);
        let st = str_of(p, "status").unwrap_or("completed");
        let mut attrs = vec![("classCode", "PROC"), ("moodCode", "EVN")];
        if st == "not-done" {
            attrs.push(("negationInd", "true"));
        }
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start("procedure", &attrs)?;
        template(x, "2.16.840.1.113883.10.20.22.4.14", "2014-06-09")?;
        identifiers(x, p, "id")?;
        match p.get("code") {
            Some(c) => cd(x, "code", c, &[], CdMode::Ref(&rid))?,
            None => x.empty("code", &[("nullFlavor", "UNK")])?,
        }
        let code = match st {
            "in-progress" => "active",
            "stopped" => "aborted",
            "not-done" => "cancelled",
            "on-hold" => "suspended",
            "preparation" => "new",
            _ => "completed",
        };
        status(x, code)?;
        match time_choice(p, "performed") {
            (Some(t), _) => ts_el(x, "effectiveTime", Some(t))?,
            (None, Some(per)) => ivl_ts(x, "effectiveTime", None, Some(per), false)?,
            _ => x.empty("effectiveTime", &[("nullFlavor", "UNK")])?,
        }
        for s in p
            .get("bodySite")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            cd(x, "targetSiteCode", s, &[], CdMode::Plain)?;
        }
        indications(x, p)?;
        x.end("procedure")?;
        x.end("entry")?;
    }
    section_end(x)
}

pub(super) fn encounters(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let name = e
                .pointer("/type/0")
                .map(concept_text)
                .filter(|s| !s.is_empty())
                .or_else(|| {
                    e.pointer("/class/display")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let when = e
                .get("period")
                .map(|p| time_text(&serde_json::json!({"effectivePeriod": p}), "effective"))
                .unwrap_or_default();
            vec![name, when, status_text(e, "status")]
        })
        .collect();
    section_start(x, &ENCOUNTERS, &rows)?;
    for (n, e) in list.iter().enumerate() {
        let rid = format!("{}-{}", ENCOUNTERS.prefix, n + 1);
        x.start("entry", &[("typeCode", "DRIV")])?;
        x.start("encounter", &[("classCode", "ENC"), ("moodCode", "EVN")])?;
        template(x, "2.16.840.1.113883.10.20.22.4.49", "2015-08-01")?;
        identifiers(x, e, "id")?;
        // The type is the code; the class (an ActCode) rides along as a translation.
        let class = e.get("class").filter(|c| str_of(c, "code").is_some());
        let mut concept = e
            .pointer("/type/0")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        if let (Some(c), Some(obj)) = (class, concept.as_object_mut()) {
            let codings = obj.entry("coding").or_insert_with(|| serde_json::json!([]));
            if let Some(a) = codings.as_array_mut() {
                a.push(c.clone());
            }
        }
        cd(x, "code", &concept, &[], CdMode::Ref(&rid))?;
        match e.get("period") {
            Some(p) => ivl_ts(x, "effectiveTime", None, Some(p), false)?,
            None => x.empty("effectiveTime", &[("nullFlavor", "UNK")])?,
        }
        indications(x, e)?;
        x.end("encounter")?;
        x.end("entry")?;
    }
    section_end(x)
}

pub(super) fn social(x: &mut Xml, list: &[&Value]) -> Res {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            vec![
                o.get("code").map(concept_text).unwrap_or_default(),
                value_text(o),
                time_text(o, "effective"),
            ]
        })
        .collect();
    section_start(x, &SOCIAL, &rows)?;
    for (n, o) in list.iter().enumerate() {
        let rid = format!("{}-{}", SOCIAL.prefix, n + 1);
        let smoking = o
            .pointer("/code/coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| str_of(c, "code") == Some("72166-2"));
        x.start("entry", &[("typeCode", "DRIV")])?;
        if smoking {
            observation(x, o, "2.16.840.1.113883.10.20.22.4.78", "2014-06-09", &rid)?;
        } else {
            observation(x, o, "2.16.840.1.113883.10.20.22.4.38", "2015-08-01", &rid)?;
        }
        x.end("entry")?;
    }
    section_end(x)
}
