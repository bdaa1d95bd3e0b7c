//! FHIR → CCD: generated CCDs pass the structural check (CDA schema order, C-CDA R2.1 CCD
//! templates, header, sections, entries) under a second XML parser, and C-CDA → FHIR → CCD →
//! FHIR keeps the patient and every coded entry.

mod ccd_structure;
mod common;

use ccda::{CcdOptions, Options};
use serde_json::{Value, json};

fn opts() -> CcdOptions {
    CcdOptions {
        effective_time: Some("2024-05-06T07:08:09-04:00".into()),
        ..CcdOptions::default()
    }
}

fn patient_of(bundle: &Value) -> Value {
    common::resources(bundle)
        .into_iter()
        .find(|r| r["resourceType"] == "Patient")
        .expect("a Patient")
}

/// What a round trip must keep of the Patient.
fn patient_facts(p: &Value) -> Value {
    let ids: std::collections::BTreeSet<String> = p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            format!(
                "{}|{}",
                i["system"].as_str().unwrap_or(""),
                i["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    json!({
        "name": p["name"][0]["family"], "given": p["name"][0]["given"], "birthDate": p["birthDate"],
        "gender": p["gender"], "identifiers": ids, "race": p["extension"],
        "address": p["address"][0]["city"], "telecom": p["telecom"].as_array().map(Vec::len),
    })
}

#[test]
fn corpus_round_trips_through_a_ccd() {
    let corpus = common::corpus();
    if corpus.is_empty() {
        return;
    }
    for (name, bytes) in &corpus {
        let first = ccda::to_fhir(bytes, &Options::default()).expect("converts");
        let resources = common::resources(&first.bundle);
        let patient = patient_of(&first.bundle);
        let ccd =
            ccda::to_ccd(&patient, &resources, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let problems = ccd_structure::check_ccd(&ccd);
        assert!(
            problems.is_empty(),
            "{name}: generated CCD fails the structural check: {problems:#?}"
        );
        assert_eq!(
            ccd,
            ccda::to_ccd(&patient, &resources, &opts()).expect("again"),
            "{name}: deterministic"
        );

        let second = ccda::to_fhir(ccd.as_bytes(), &Options::default())
            .unwrap_or_else(|e| panic!("{name}: CCD back to FHIR: {e}"));
        let errors = common::validation_errors(&second.bundle);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert_eq!(
            patient_facts(&patient),
            patient_facts(&patient_of(&second.bundle)),
            "{name}: the patient changed"
        );
        let before = common::coded_entries(&first.bundle);
        let after = common::coded_entries(&second.bundle);
        // MedicationRequest/Statement keep their kind; everything coded comes back.
        assert_eq!(
            before,
            after,
            "{name}: coded entries differ;\nlost: {:?}\ngained: {:?}",
            before.difference(&after).collect::<Vec<_>>(),
            after.difference(&before).collect::<Vec<_>>()
        );
        assert!(
            second.unmapped.is_empty(),
            "{name}: the generated CCD has unmapped content: {:#?}",
            second.unmapped
        );
    }
}

#[test]
fn a_patient_without_data_gives_a_valid_ccd_with_empty_sections() {
    let patient = json!({"resourceType": "Patient", "id": "p"});
    let ccd = ccda::to_ccd(&patient, &[], &opts()).expect("writes");
    assert_eq!(ccd_structure::check_ccd(&ccd), Vec::<String>::new());
    assert_eq!(ccd.matches("<section nullFlavor=\"NI\">").count(), 9);
    let back = ccda::to_fhir(ccd.as_bytes(), &Options::default()).expect("reads back");
    assert!(common::validation_errors(&back.bundle).is_empty());
}

#[test]
fn hand_written_fhir_becomes_coded_entries() {
    let patient = json!({"resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-7"}],
        "name": [{"use": "official", "family": "O'Brien & Sons <Test>", "given": ["Ann"]}],
        "gender": "female", "birthDate": "1980-02-29",
        "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                          {"url": "text", "valueString": "White"}]}]});
    let resources = vec![
        patient.clone(),
        json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "category": ["medication"],
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}]},
            "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "247472004", "display": "Hives"}]}], "severity": "moderate"}]}),
        json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361", "display": "Amlodipine 5 MG"}]},
            "dosageInstruction": [{"text": "1 tablet daily", "timing": {"repeat": {"period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "1"}}]}]}),
        json!({"resourceType": "Observation", "id": "bp", "status": "final", "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "effectiveDateTime": "2024-03-01T10:30:00+01:00",
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"}]}, "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic"}]}, "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}),
        json!({"resourceType": "Immunization", "id": "i1", "status": "completed", "patient": {"reference": "Patient/p1"},
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}, "occurrenceDateTime": "2023-10-01"}),
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}, "code": {"text": "free text only"}}),
    ];
    let ccd = ccda::to_ccd(&patient, &resources, &opts()).expect("writes");
    assert_eq!(ccd_structure::check_ccd(&ccd), Vec::<String>::new());
    assert!(
        ccd.contains("O&apos;Brien &amp; Sons &lt;Test&gt;")
            || ccd.contains("O'Brien &amp; Sons &lt;Test&gt;"),
        "names are escaped"
    );
    let back = ccda::to_fhir(ccd.as_bytes(), &Options::default()).expect("reads back");
    let rs = common::resources(&back.bundle);
    let p = rs
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .expect("patient");
    assert_eq!(p["name"][0]["family"], "O'Brien & Sons <Test>");
    assert_eq!(p["birthDate"], "1980-02-29");
    let mr = rs
        .iter()
        .find(|r| r["resourceType"] == "MedicationRequest")
        .expect("request");
    assert_eq!(mr["intent"], "order");
    assert_eq!(
        mr["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"],
        "d"
    );
    assert_eq!(mr["dosageInstruction"][0]["text"], "1 tablet daily");
    let vitals: Vec<&Value> = rs
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .collect();
    assert_eq!(
        vitals.len(),
        2,
        "the panel's components become two vital sign observations"
    );
    assert_eq!(vitals[0]["effectiveDateTime"], "2024-03-01T10:30:00+01:00");
    let a = rs
        .iter()
        .find(|r| r["resourceType"] == "AllergyIntolerance")
        .expect("allergy");
    assert_eq!(a["reaction"][0]["severity"], "moderate");
    assert_eq!(a["category"][0], "medication");
    let c = rs
        .iter()
        .find(|r| r["resourceType"] == "Condition")
        .expect("condition");
    assert_eq!(c["code"]["text"], "free text only");
}

#[test]
fn the_structural_check_catches_broken_documents() {
    let patient = json!({"resourceType": "Patient", "id": "p"});
    let good = ccda::to_ccd(&patient, &[], &opts()).expect("writes");
    // Out of schema order: title before code.
    let swapped = good
        .replacen("<title>Continuity of Care Document</title>", "", 1)
        .replacen(
            "<code code=\"34133-9\"",
            "<title>Continuity of Care Document</title>\n  <code code=\"34133-9\"",
            1,
        );
    assert!(
        ccd_structure::check_ccd(&swapped)
            .iter()
            .any(|p| p.contains("out of the schema's order"))
    );
    let no_target = {
        let start = good.find("<recordTarget>").expect("recordTarget");
        let end = good.find("</recordTarget>").expect("end") + "</recordTarget>".len();
        format!("{}{}", &good[..start], &good[end..])
    };
    assert!(
        ccd_structure::check_ccd(&no_target)
            .iter()
            .any(|p| p.contains("recordTarget/patientRole"))
    );
    assert!(!ccd_structure::check_ccd(&good.replace("2015-08-01", "2014-06-09")).is_empty());
    assert!(!ccd_structure::check_ccd("<ClinicalDocument").is_empty());
}

#[test]
fn not_a_patient_is_an_error() {
    let err =
        ccda::to_ccd(&json!({"resourceType": "Observation"}), &[], &opts()).expect_err("rejects");
    assert!(matches!(err, ccda::CcdaError::Fhir { .. }));
    let err = ccda::to_ccd(
        &json!({"resourceType": "Patient"}),
        &[json!({"id": "x"})],
        &opts(),
    )
    .expect_err("rejects");
    assert_eq!(
        err.to_string(),
        "FHIR input resources[0]: not a FHIR resource (no resourceType)"
    );
    let bad_time = CcdOptions {
        effective_time: Some("yesterday".into()),
        ..CcdOptions::default()
    };
    assert!(ccda::to_ccd(&json!({"resourceType": "Patient"}), &[], &bad_time).is_err());
}
