//! Index extraction on realistic resources.

// The values compared are exact by construction (parsed from the same text).
#![allow(clippy::float_cmp, clippy::unreadable_literal)]

use fhir::defs;
use fhir::index::{
    Derivation, IndexEntry, IndexError, IndexValue, date_range, derivation, extract,
    extract_stored, extract_with_skipped, normalize,
};
use serde_json::{Value, json};

fn entries(resource: &Value) -> Vec<IndexEntry> {
    match extract_with_skipped(resource) {
        Ok(e) => {
            assert!(e.skipped.is_empty(), "skipped: {:?}", e.skipped);
            e.entries
        }
        Err(e) => panic!("{e}"),
    }
}

fn of<'a>(entries: &'a [IndexEntry], param: &str) -> Vec<&'a IndexValue> {
    entries
        .iter()
        .filter(|e| e.param == param)
        .map(|e| &e.value)
        .collect()
}

fn strings(entries: &[IndexEntry], param: &str) -> Vec<String> {
    of(entries, param)
        .into_iter()
        .filter_map(|v| match v {
            IndexValue::String { normalized, .. } => Some(normalized.clone()),
            _ => None,
        })
        .collect()
}

fn tokens(entries: &[IndexEntry], param: &str) -> Vec<(Option<String>, Option<String>)> {
    of(entries, param)
        .into_iter()
        .filter_map(|v| match v {
            IndexValue::Token { system, code, .. } => Some((system.clone(), code.clone())),
            _ => None,
        })
        .collect()
}

fn tok(system: Option<&str>, code: &str) -> (Option<String>, Option<String>) {
    (system.map(str::to_owned), Some(code.to_owned()))
}

fn refs(entries: &[IndexEntry], param: &str) -> Vec<(Option<String>, Option<String>)> {
    of(entries, param)
        .into_iter()
        .filter_map(|v| match v {
            IndexValue::Reference {
                target_type,
                target_id,
                ..
            } => Some((target_type.clone(), target_id.clone())),
            _ => None,
        })
        .collect()
}

fn target(ty: &str, id: &str) -> (Option<String>, Option<String>) {
    (Some(ty.to_owned()), Some(id.to_owned()))
}

fn dates(entries: &[IndexEntry], param: &str) -> Vec<(i64, i64)> {
    of(entries, param)
        .into_iter()
        .filter_map(|v| match v {
            IndexValue::Date { low, high } => Some((*low, *high)),
            _ => None,
        })
        .collect()
}

fn range(text: &str) -> (i64, i64) {
    date_range(text).unwrap_or((0, 0))
}

/// A Patient with most searchable elements.
pub fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "lastUpdated": "2024-05-01T10:00:00Z",
            "tag": [{"system": "http://plexus/tags", "code": "import"}],
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}],
            "source": "urn:plexus:mllp:adt"
        },
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical Record"},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345"
        }],
        "active": true,
        "name": [
            {"use": "official", "family": "Müller", "given": ["Åsa", "Jim"], "prefix": ["Dr."]},
            {"use": "usual", "given": ["Jimmy"], "text": "Jimmy Müller"}
        ],
        "telecom": [
            {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
            {"system": "email", "value": "asa@example.org"}
        ],
        "gender": "female",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": false,
        "address": [{
            "use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille",
            "district": "Rainbow", "state": "Vic", "postalCode": "3999", "country": "Österreich",
            "period": {"start": "1974-12-25"}
        }],
        "generalPractitioner": [{"reference": "Practitioner/dr-1"}],
        "managingOrganization": {"reference": "Organization/1"},
        "link": [{"other": {"reference": "Patient/pat2"}, "type": "seealso"}]
    })
}

/// A blood pressure Observation with components.
pub fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}], "text": "Blood pressure systolic & diastolic"},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-01T10:30:00+01:00",
        "issued": "2024-03-01T10:35:00.123Z",
        "performer": [{"reference": "Practitioner/dr-1"}],
        "valueQuantity": {"value": 98.6, "unit": "degF", "system": "http://unitsofmeasure.org", "code": "[degF]"},
        "interpretation": [{"text": "Normal"}],
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
                "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}]},
                "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
            }
        ]
    })
}

/// What a store keeps is what `extract` finds less the derived parameters' rows, in the same
/// order; on an Observation with components some rows go, on a Patient the `phonetic` ones.
#[test]
fn stored_rows_are_the_rows_of_parameters_not_derived() {
    for resource in [observation(), patient()] {
        let ty = resource["resourceType"].as_str().unwrap();
        let all = extract(&resource).unwrap();
        let kept: Vec<IndexEntry> = all
            .iter()
            .filter(|e| derivation(ty, &e.param).is_none())
            .cloned()
            .collect();
        assert_eq!(extract_stored(&resource).unwrap(), kept, "{ty}");
        let left_out = all.len() - kept.len();
        if ty == "Observation" {
            assert!(left_out >= 6, "{left_out} rows of derived parameters");
            assert!(all.iter().any(|e| e.param == "combo-code"));
            assert!(all.iter().any(|e| e.param == "code-value-quantity"));
        } else {
            // `phonetic` has the expression of `name`: its rows are the name's; `family`,
            // `given` and `address-city`… are parts of `name` and `address`
            let of = |param: &str| all.iter().filter(|e| e.param == param).count();
            assert!(of("name") > 0);
            assert_eq!(of("phonetic"), of("name"));
            let parts: usize = ["family", "given", "address-city", "address-postalcode"]
                .iter()
                .map(|p| of(p))
                .sum();
            assert!(parts >= 4, "{parts}");
            assert_eq!(
                left_out,
                of("phonetic") + parts + of("address-state") + of("address-country")
            );
        }
        // every row of a part is its source's row tagged with the part
        for e in &all {
            let Some(Derivation::Part { source, part }) = derivation(ty, &e.param) else {
                continue;
            };
            let IndexValue::String {
                normalized,
                exact,
                part: None,
            } = &e.value
            else {
                panic!("{ty}.{}: {:?}", e.param, e.value);
            };
            assert!(
                kept.iter().any(|k| k.param == *source
                    && k.value
                        == IndexValue::String {
                            normalized: normalized.clone(),
                            exact: exact.clone(),
                            part: Some(part),
                        }),
                "{ty}.{} {exact}",
                e.param
            );
        }
    }
    assert_eq!(
        extract_stored(&json!({"id": "x"})),
        Err(IndexError::NotAResource)
    );
}

#[test]
fn normalize_folds_case_and_accents() {
    assert_eq!(normalize("Müller"), "muller");
    assert_eq!(normalize("ÅSA"), "asa");
    assert_eq!(normalize("José-María O'Neil"), "jose-maria o'neil");
    assert_eq!(normalize("ÇA"), "ca");
    assert_eq!(normalize(""), "");
}

#[test]
fn patient_entries() {
    let e = entries(&patient());
    assert!(of(&e, "_id").is_empty() && of(&e, "_lastUpdated").is_empty());
    let family = strings(&e, "family");
    assert_eq!(family, vec!["muller"]);
    assert!(
        of(&e, "family")
            .iter()
            .any(|v| matches!(v, IndexValue::String { exact, .. } if exact == "Müller"))
    );
    let given = strings(&e, "given");
    assert_eq!(given, vec!["asa", "jim", "jimmy"]);
    let name = strings(&e, "name");
    for n in ["muller", "asa", "jim", "dr.", "jimmy", "jimmy muller"] {
        assert!(name.contains(&n.to_owned()), "{n} in {name:?}");
    }
    assert!(strings(&e, "address").contains(&"osterreich".to_owned()));
    assert_eq!(strings(&e, "address-city"), vec!["pleasantville"]);
    assert_eq!(strings(&e, "address-postalcode"), vec!["3999"]);
    assert_eq!(
        tokens(&e, "address-use"),
        vec![tok(Some("http://hl7.org/fhir/address-use"), "home")]
    );

    assert_eq!(
        tokens(&e, "gender"),
        vec![tok(
            Some("http://hl7.org/fhir/administrative-gender"),
            "female"
        )]
    );
    assert_eq!(tokens(&e, "active"), vec![tok(None, "true")]);
    assert_eq!(tokens(&e, "deceased"), vec![tok(None, "false")]);
    let ids = of(&e, "identifier");
    assert_eq!(
        ids,
        vec![&IndexValue::Token {
            system: Some("urn:oid:1.2.36.146.595.217.0.1".into()),
            code: Some("12345".into()),
            display: Some("medical record".into()),
            type_system: Some("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
            type_code: Some("MR".into()),
        }]
    );
    // ContactPoint: the value, no system.
    assert_eq!(
        tokens(&e, "telecom"),
        vec![tok(None, "(03) 5555 6473"), tok(None, "asa@example.org")]
    );
    assert_eq!(tokens(&e, "phone"), vec![tok(None, "(03) 5555 6473")]);
    assert_eq!(tokens(&e, "email"), vec![tok(None, "asa@example.org")]);

    assert_eq!(dates(&e, "birthdate"), vec![range("1974-12-25")]);
    assert_eq!(
        refs(&e, "general-practitioner"),
        vec![target("Practitioner", "dr-1")]
    );
    assert_eq!(refs(&e, "organization"), vec![target("Organization", "1")]);
    assert_eq!(refs(&e, "link"), vec![target("Patient", "pat2")]);

    // Resource-level parameters from meta.
    assert_eq!(
        tokens(&e, "_tag"),
        vec![tok(Some("http://plexus/tags"), "import")]
    );
    assert_eq!(
        tokens(&e, "_security"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/v3-Confidentiality"),
            "N"
        )]
    );
    assert_eq!(
        of(&e, "_profile"),
        vec![&IndexValue::Uri {
            value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient".into()
        }]
    );
    assert_eq!(
        of(&e, "_source"),
        vec![&IndexValue::Uri {
            value: "urn:plexus:mllp:adt".into()
        }]
    );
}

#[test]
fn observation_entries() {
    let e = entries(&observation());
    let code = of(&e, "code");
    assert!(code.contains(&&IndexValue::Token {
        system: Some("http://loinc.org".into()),
        code: Some("85354-9".into()),
        display: Some("blood pressure panel".into()),
        type_system: None,
        type_code: None,
    }));
    // The concept's text, not carried by the coding row, has a display-only row.
    assert!(code.contains(&&IndexValue::Token {
        system: None,
        code: None,
        display: Some("blood pressure systolic & diastolic".into()),
        type_system: None,
        type_code: None,
    }));
    assert_eq!(
        tokens(&e, "category"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/observation-category"),
            "vital-signs"
        )]
    );
    assert_eq!(
        tokens(&e, "status"),
        vec![tok(Some("http://hl7.org/fhir/observation-status"), "final")]
    );
    assert_eq!(refs(&e, "subject"), vec![target("Patient", "p1")]);
    assert_eq!(refs(&e, "patient"), vec![target("Patient", "p1")]);
    assert_eq!(refs(&e, "encounter"), vec![target("Encounter", "e1")]);
    assert_eq!(refs(&e, "performer"), vec![target("Practitioner", "dr-1")]);
    assert_eq!(dates(&e, "date"), vec![range("2024-03-01T10:30:00+01:00")]);

    let vq = of(&e, "value-quantity");
    assert_eq!(vq.len(), 1);
    let IndexValue::Quantity {
        system,
        code,
        unit,
        value,
        low,
        high,
    } = vq[0]
    else {
        panic!("not a quantity: {vq:?}")
    };
    assert_eq!(system.as_deref(), Some("http://unitsofmeasure.org"));
    assert_eq!(code.as_deref(), Some("[degF]"));
    assert_eq!(unit.as_deref(), Some("degF"));
    assert!(
        (value - 98.6).abs() < 1e-9 && (low - 98.55).abs() < 1e-9 && (high - 98.65).abs() < 1e-9
    );

    let cvq = of(&e, "component-value-quantity");
    assert_eq!(cvq.len(), 2);
    assert_eq!(
        tokens(&e, "component-code"),
        vec![
            tok(Some("http://loinc.org"), "8480-6"),
            tok(Some("http://loinc.org"), "8462-4")
        ]
    );

    // Composite: one row per component, code with its own value (not the other's).
    let comp = of(&e, "component-code-value-quantity");
    assert_eq!(comp.len(), 2, "{comp:?}");
    let IndexValue::Composite { components } = comp[0] else {
        panic!("not composite")
    };
    assert!(matches!(&components[0], IndexValue::Token { code: Some(c), .. } if c == "8480-6"));
    assert!(matches!(&components[1], IndexValue::Quantity { value, .. } if *value == 107.0));
    let IndexValue::Composite { components } = comp[1] else {
        panic!("not composite")
    };
    assert!(matches!(&components[0], IndexValue::Token { code: Some(c), .. } if c == "8462-4"));
    assert!(matches!(&components[1], IndexValue::Quantity { value, .. } if *value == 60.0));
    // The Observation's own code and value.
    let own = of(&e, "code-value-quantity");
    assert!(!own.is_empty());
    // combo: the Observation's and the components' pairs.
    assert!(of(&e, "combo-code-value-quantity").len() >= 3);
}

#[test]
fn encounter_entries() {
    let enc = json!({
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "270427003"}], "text": "Patient-initiated encounter"}],
        "subject": {"reference": "Patient/p1", "display": "Åsa Müller"},
        "participant": [{"individual": {"reference": "Practitioner/dr-1"}}],
        "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T11:00:00Z"},
        "length": {"value": 60, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
        "reasonCode": [{"text": "Headache"}],
        "location": [{"location": {"reference": "Location/l1"}, "period": {"start": "2024-03-01"}}],
        "serviceProvider": {"reference": "Organization/1"}
    });
    let e = entries(&enc);
    assert_eq!(
        tokens(&e, "class"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/v3-ActCode"),
            "AMB"
        )]
    );
    assert_eq!(refs(&e, "subject"), vec![target("Patient", "p1")]);
    assert_eq!(
        refs(&e, "practitioner"),
        vec![target("Practitioner", "dr-1")]
    );
    assert_eq!(refs(&e, "location"), vec![target("Location", "l1")]);
    assert_eq!(
        dates(&e, "date"),
        vec![(
            range("2024-03-01T10:00:00Z").0,
            range("2024-03-01T11:00:00Z").1
        )]
    );
    assert_eq!(
        dates(&e, "location-period"),
        vec![(range("2024-03-01").0, i64::MAX)]
    );
    assert!(matches!(of(&e, "length")[..], [IndexValue::Quantity { value, .. }] if *value == 60.0));
    assert_eq!(
        of(&e, "reason-code"),
        vec![&IndexValue::Token {
            system: None,
            code: None,
            display: Some("headache".into()),
            type_system: None,
            type_code: None
        }]
    );
}

#[test]
fn condition_entries() {
    let c = json!({
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "39065001", "display": "Burn of ear"}], "text": "Burnt Ear"},
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "49521004"}]}],
        "subject": {"reference": "Patient/p1"},
        "onsetAge": {"value": 52, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
        "recordedDate": "2024-02",
        "abatementPeriod": {"start": "2024-03-01", "end": "2024-03-10"}
    });
    let e = entries(&c);
    assert_eq!(
        tokens(&e, "code"),
        vec![
            tok(Some("http://snomed.info/sct"), "39065001"),
            (None, None)
        ]
    );
    assert_eq!(
        tokens(&e, "clinical-status"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/condition-clinical"),
            "active"
        )]
    );
    assert_eq!(refs(&e, "patient"), vec![target("Patient", "p1")]);
    assert_eq!(dates(&e, "recorded-date"), vec![range("2024-02")]);
    assert!(
        matches!(of(&e, "onset-age")[..], [IndexValue::Quantity { value, .. }] if *value == 52.0)
    );
    assert_eq!(
        dates(&e, "abatement-date"),
        vec![(range("2024-03-01").0, range("2024-03-10").1)]
    );
}

#[test]
fn medication_request_entries() {
    let m = json!({
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "582620", "display": "Nizatidine 15 MG/ML"}]},
        "subject": {"reference": "http://other.example/fhir/Patient/p9"},
        "requester": {"identifier": {"system": "urn:npi", "value": "1234567893"}},
        "authoredOn": "2024-03-01",
        "dosageInstruction": [{"timing": {"event": ["2024-03-01T08:00:00Z", "2024-03-02T08:00:00Z"]}}],
        "contained": [{"resourceType": "Medication", "id": "med"}],
        "medicationReference": {"reference": "#med"}
    });
    let e = entries(&m);
    assert_eq!(
        tokens(&e, "code"),
        vec![tok(
            Some("http://www.nlm.nih.gov/research/umls/rxnorm"),
            "582620"
        )]
    );
    assert_eq!(
        of(&e, "subject"),
        vec![&IndexValue::Reference {
            target_type: Some("Patient".into()),
            target_id: Some("p9".into()),
            url: Some("http://other.example/fhir/Patient/p9".into()),
            identifier_system: None,
            identifier_value: None
        }]
    );
    assert_eq!(
        of(&e, "requester"),
        vec![&IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: None,
            identifier_system: Some("urn:npi".into()),
            identifier_value: Some("1234567893".into())
        }]
    );
    // `#med` is contained: no row.
    assert!(of(&e, "medication").is_empty());
    assert_eq!(
        tokens(&e, "intent"),
        vec![tok(
            Some("http://hl7.org/fhir/CodeSystem/medicationrequest-intent"),
            "order"
        )]
    );
    assert_eq!(dates(&e, "authoredon"), vec![range("2024-03-01")]);
    assert_eq!(
        dates(&e, "date"),
        vec![range("2024-03-01T08:00:00Z"), range("2024-03-02T08:00:00Z")]
    );
}

#[test]
fn allergy_intolerance_entries() {
    let a = json!({
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "type": "allergy",
        "category": ["food"],
        "criticality": "high",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "227493005", "display": "Cashew nuts"}]},
        "patient": {"reference": "Patient/p1"},
        "recordedDate": "2014-10-09T14:58:00+11:00",
        "reaction": [{
            "manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "39579001", "display": "Anaphylactic reaction"}]}],
            "severity": "severe",
            "exposureRoute": {"coding": [{"system": "http://snomed.info/sct", "code": "34206005"}]}
        }]
    });
    let e = entries(&a);
    assert_eq!(
        tokens(&e, "code"),
        vec![tok(Some("http://snomed.info/sct"), "227493005")]
    );
    assert_eq!(
        tokens(&e, "manifestation"),
        vec![tok(Some("http://snomed.info/sct"), "39579001")]
    );
    assert_eq!(
        tokens(&e, "criticality"),
        vec![tok(
            Some("http://hl7.org/fhir/allergy-intolerance-criticality"),
            "high"
        )]
    );
    assert_eq!(tokens(&e, "category").len(), 1);
    assert_eq!(tokens(&e, "severity").len(), 1);
    assert_eq!(refs(&e, "patient"), vec![target("Patient", "p1")]);
    assert_eq!(dates(&e, "date"), vec![range("2014-10-09T14:58:00+11:00")]);
}

#[test]
fn bundle_entries() {
    let b = json!({
        "resourceType": "Bundle",
        "id": "b1",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
        "type": "document",
        "timestamp": "2024-03-01T10:00:00Z",
        "entry": [
            {"fullUrl": "urn:uuid:c1", "resource": {"resourceType": "Composition", "id": "c1", "status": "final", "type": {"text": "Discharge"}, "date": "2024-03-01", "title": "Discharge"}},
            {"fullUrl": "urn:uuid:p1", "resource": patient()}
        ]
    });
    let e = entries(&b);
    assert_eq!(
        tokens(&e, "type"),
        vec![tok(Some("http://hl7.org/fhir/bundle-type"), "document")]
    );
    assert_eq!(
        tokens(&e, "identifier"),
        vec![tok(
            Some("urn:ietf:rfc:3986"),
            "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
        )]
    );
    assert_eq!(dates(&e, "timestamp"), vec![range("2024-03-01T10:00:00Z")]);
    assert_eq!(refs(&e, "composition"), vec![target("Composition", "c1")]);
    // Entries' own parameters are not the Bundle's.
    assert!(of(&e, "family").is_empty());
}

#[test]
fn every_type_extracts_from_a_bare_resource() {
    for ty in defs::resource_types() {
        let r = json!({"resourceType": ty, "id": "x"});
        match extract_with_skipped(&r) {
            Ok(e) => {
                assert!(e.skipped.is_empty(), "{ty}: skipped {:?}", e.skipped);
                // `Patient.deceased.exists() and Patient.deceased != false` is `false` on
                // a bare Patient: `deceased=false` finds the living.
                let expected: &[&str] = if *ty == "Patient" { &["deceased"] } else { &[] };
                let params: Vec<&str> = e.entries.iter().map(|e| e.param.as_str()).collect();
                assert_eq!(params, expected, "{ty}");
            }
            Err(err) => panic!("{ty}: {err}"),
        }
    }
}

#[test]
fn not_resources() {
    assert_eq!(extract(&json!({"id": "x"})), Err(IndexError::NotAResource));
    assert_eq!(extract(&json!("Patient")), Err(IndexError::NotAResource));
    assert_eq!(
        extract(&json!({"resourceType": "Nope"})),
        Err(IndexError::UnknownResourceType("Nope".into()))
    );
    assert_eq!(
        extract(&json!({"resourceType": "DomainResource"})),
        Err(IndexError::UnknownResourceType("DomainResource".into()))
    );
}

#[test]
fn odd_values_do_not_fail_the_resource() {
    let p = json!({
        "resourceType": "Patient",
        "name": [{"family": 42, "given": [null, "A"]}, "not an object"],
        "birthDate": "sometime",
        "gender": {"x": 1},
        "telecom": [{"system": "phone"}],
        "identifier": [{}],
        "generalPractitioner": [{"reference": ""}, {"reference": "Practitioner/"}],
        "address": [{"period": {"start": "2020", "end": "2019"}}]
    });
    let e = extract(&p).unwrap_or_default();
    assert_eq!(strings(&e, "given"), vec!["a"]);
    assert!(dates(&e, "birthdate").is_empty());
    assert!(refs(&e, "general-practitioner").is_empty());
}

#[test]
fn date_precision_and_zones() {
    let obs = |effective: Value| {
        let mut o =
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        if let Some(m) = o.as_object_mut()
            && let Some(e) = effective.as_object()
        {
            m.extend(e.clone());
        }
        dates(&entries(&o), "date")
    };
    let day = 86_400_000;
    let (low, high) = range("2024-03-01");
    assert_eq!(high - low, day - 1);
    assert_eq!(
        obs(json!({"effectiveDateTime": "2024"})),
        vec![range("2024")]
    );
    assert_eq!(
        obs(json!({"effectiveDateTime": "2024-03"})),
        vec![range("2024-03")]
    );
    // Without a zone: UTC.
    assert_eq!(
        obs(json!({"effectiveDateTime": "2024-03-01T10:00:00"})),
        vec![range("2024-03-01T10:00:00Z")]
    );
    // With a zone: the same instant in UTC.
    assert_eq!(
        obs(json!({"effectiveDateTime": "2024-03-01T12:00:00+02:00"})),
        vec![range("2024-03-01T10:00:00Z")]
    );
    assert_eq!(
        obs(json!({"effectiveInstant": "2024-03-01T10:00:00.250Z"})),
        vec![(
            range("2024-03-01T10:00:00Z").0 + 250,
            range("2024-03-01T10:00:00Z").0 + 250
        )]
    );
    assert_eq!(
        obs(json!({"effectivePeriod": {"end": "2024-03-01"}})),
        vec![(i64::MIN, range("2024-03-01").1)]
    );
    assert_eq!(
        obs(json!({"effectiveTiming": {"event": ["2024-03-01", "2024-03-05"]}})),
        vec![range("2024-03-01"), range("2024-03-05")]
    );
}

#[test]
fn numbers_and_canonicals() {
    let r = json!({
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 1}, "high": {"value": 2}}}]
    });
    let e = entries(&r);
    let p = of(&e, "probability");
    assert_eq!(p.len(), 2);
    assert!(
        matches!(p[0], IndexValue::Number { value, low, high } if *value == 0.25 && (*low - 0.245).abs() < 1e-12 && (*high - 0.255).abs() < 1e-12)
    );
    assert!(matches!(p[1], IndexValue::Number { low, high, .. } if *low == 0.5 && *high == 2.5));

    let qr = json!({
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://example.org/Questionnaire/phq9|1.0"
    });
    let e = entries(&qr);
    let urls: Vec<Option<String>> = of(&e, "questionnaire")
        .into_iter()
        .map(|v| match v {
            IndexValue::Reference { url, .. } => url.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        urls,
        vec![
            Some("http://example.org/Questionnaire/phq9|1.0".into()),
            Some("http://example.org/Questionnaire/phq9".into())
        ]
    );
}
