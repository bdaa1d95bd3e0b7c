//! The structural validator against hand-written, realistic resources.

use fhir::validate::{Issue, IssueCode, validate, validate_profile};
use proptest::prelude::*;
use serde_json::{Value, json};

fn issues(resource: &Value) -> Vec<Issue> {
    validate(resource).expect_err("should be invalid")
}

/// The single issue of an invalid resource, as (code, path).
fn one_issue(resource: &Value) -> (IssueCode, String) {
    let found = issues(resource);
    assert_eq!(found.len(), 1, "{found:#?}");
    (found[0].code, found[0].path.clone())
}

fn assert_valid(resource: &Value) {
    if let Err(found) = validate(resource) {
        panic!("{found:#?}");
    }
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "1", "lastUpdated": "2024-05-01T10:00:00.000Z", "tag": [{"system": "http://example.org/tags", "code": "test"}]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Doe</div>"},
        "extension": [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
            "valueCode": "F"
        }],
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
            "period": {"start": "2001-05-06"},
            "assigner": {"display": "Acme Healthcare"}
        }],
        "active": true,
        "name": [
            {"use": "official", "family": "Doe", "given": ["Jane", "Q"]},
            {"use": "maiden", "family": "Roe", "given": ["Jane"], "period": {"end": "2002"}}
        ],
        "telecom": [
            {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
            {"system": "email", "value": "jane@example.org"}
        ],
        "gender": "female",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": false,
        "address": [{"use": "home", "type": "both", "line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999", "period": {"start": "1974-12-25"}}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}], "text": "Married"},
        "multipleBirthInteger": 1,
        "contact": [{
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
            "name": {"family": "du Marché", "_family": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix", "valueString": "VV"}]}, "given": ["Bénédicte"]},
            "telecom": [{"system": "phone", "value": "+33 (237) 998327"}],
            "gender": "female"
        }],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr"}]}, "preferred": true}],
        "generalPractitioner": [{"reference": "Practitioner/pr-1", "display": "Dr Adam Careful"}],
        "managingOrganization": {"reference": "Organization/1"}
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2024-05-01T09:30:00+02:00",
        "performer": [{"reference": "Practitioner/pr-1"}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "L"}]}],
        "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003"}]},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 60.5, "comparator": "<", "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
                "referenceRange": [{"low": {"value": 60}, "high": {"value": 80}}]
            }
        ]
    })
}

fn bundle() -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
                "resource": {"resourceType": "Patient", "name": [{"family": "Doe"}], "gender": "male"},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://example.org|1"}
            },
            {
                "fullUrl": "urn:uuid:d757873d-ec9a-4326-a141-556f43239521",
                "resource": {
                    "resourceType": "Observation",
                    "status": "preliminary",
                    "code": {"text": "Body weight"},
                    "subject": {"reference": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
                    "valueQuantity": {"value": 72.5, "unit": "kg"}
                },
                "request": {"method": "POST", "url": "Observation"}
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": "Patient?identifier=http://example.org|1"},
                    "period": {"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T09:45:00Z"}
                },
                "request": {"method": "PUT", "url": "Encounter/enc-1"}
            }
        ]
    })
}

#[test]
fn valid_resources_pass() {
    assert_valid(&patient());
    assert_valid(&observation());
    assert_valid(&bundle());
}

#[test]
fn more_realistic_examples_pass() {
    let examples = [
        json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]},
            "subject": {"reference": "Patient/pat-1"},
            "onsetAge": {"value": 52, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
            "recordedDate": "2023-11-02",
            "note": [{"text": "Diet controlled.", "time": "2023-11-02T10:00:00Z"}]
        }),
        json!({
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980"}], "text": "Penicillin"},
            "patient": {"reference": "Patient/pat-1"},
            "reaction": [{"manifestation": [{"text": "Hives"}], "severity": "moderate"}]
        }),
        json!({
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]},
            "subject": {"reference": "Patient/pat-1"},
            "authoredOn": "2024-04-30",
            "requester": {"reference": "PractitionerRole/role-1"},
            "dosageInstruction": [{
                "sequence": 1,
                "text": "1 tablet twice daily",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]
            }],
            "dispenseRequest": {"numberOfRepeatsAllowed": 3, "quantity": {"value": 60, "unit": "tablet"}}
        }),
        json!({
            "resourceType": "Questionnaire",
            "url": "http://example.org/Questionnaire/phq-2",
            "status": "active",
            "item": [{
                "linkId": "1",
                "type": "group",
                "text": "Over the last two weeks",
                "item": [
                    {"linkId": "1.1", "type": "choice", "text": "Little interest", "answerOption": [{"valueCoding": {"code": "0", "display": "Not at all"}}]},
                    {"linkId": "1.2", "type": "integer", "required": true, "item": [{"linkId": "1.2.1", "type": "display", "text": "Score"}]}
                ]
            }]
        }),
        json!({
            "resourceType": "DiagnosticReport",
            "contained": [{
                "resourceType": "Observation",
                "id": "hb",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "valueQuantity": {"value": 14.2, "unit": "g/dL"}
            }],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
            "subject": {"reference": "Patient/pat-1"},
            "issued": "2024-05-01T12:00:00.000+02:00",
            "result": [{"reference": "#hb"}],
            "presentedForm": [{"contentType": "text/plain", "data": "aGVsbG8gd29ybGQ="}]
        }),
    ];
    for e in &examples {
        assert_valid(e);
    }
}

#[test]
fn administrative_examples_pass() {
    let examples = [
        json!({
            "resourceType": "Organization",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1144221847"}],
            "active": true,
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}],
            "name": "Acme Clinic",
            "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "country": "US"}]
        }),
        json!({
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]},
            "patient": {"reference": "https://fhir.example.org/r4/Patient/pat-1"},
            "occurrenceDateTime": "2021-04-01",
            "primarySource": true,
            "lotNumber": "EW0182",
            "doseQuantity": {"value": 0.3, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}
        }),
        json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "count", "valueInteger": 3},
                {"name": "patient", "resource": {"resourceType": "Patient", "active": true}},
                {"name": "nested", "part": [{"name": "a", "valueString": "b"}]}
            ]
        }),
        json!({
            "resourceType": "Patient",
            "name": [{"given": ["Jane", null], "_given": [null, {"extension": [{"url": "http://example.org/ext", "valueString": "x"}]}]}]
        }),
    ];
    for e in &examples {
        assert_valid(e);
    }
}

#[test]
fn resource_type_is_checked() {
    assert_eq!(
        one_issue(&json!({"id": "1"})),
        (IssueCode::Required, "(root)".into())
    );
    assert_eq!(
        one_issue(&json!({"resourceType": "Patients"})),
        (IssueCode::NotSupported, "(root)".into())
    );
    assert_eq!(
        one_issue(&json!({"resourceType": "DomainResource"})),
        (IssueCode::NotSupported, "(root)".into())
    );
    assert_eq!(
        one_issue(&json!({"resourceType": 1})),
        (IssueCode::Structure, "(root)".into())
    );
    assert_eq!(
        one_issue(&json!([1])),
        (IssueCode::Structure, "(root)".into())
    );
}

#[test]
fn unknown_elements_are_rejected() {
    let mut p = patient();
    p["favouriteColour"] = json!("blue");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.favouriteColour".into())
    );
    let mut p = patient();
    p["name"][1]["nickname"] = json!("JJ");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.name[1].nickname".into())
    );
    // A choice needs a type suffix of its options.
    let mut p = patient();
    p["deceasedString"] = json!("yes");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.deceasedString".into())
    );
    // `_x` only for primitive elements.
    let mut p = patient();
    p["_name"] = json!([{"id": "a"}]);
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient._name".into())
    );
    let mut p = patient();
    p["_nope"] = json!({"id": "a"});
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient._nope".into())
    );
    // resourceType only at the root of a resource.
    let mut p = patient();
    p["name"][0]["resourceType"] = json!("HumanName");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.name[0].resourceType".into())
    );
}

#[test]
fn cardinality_is_checked() {
    let mut p = patient();
    p["gender"] = json!(["female"]);
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.gender".into())
    );
    let mut p = patient();
    p["name"] = json!({"family": "Doe"});
    assert_eq!(one_issue(&p), (IssueCode::Structure, "Patient.name".into()));
    let mut o = observation();
    o.as_object_mut().unwrap().remove("status");
    assert_eq!(
        one_issue(&o),
        (IssueCode::Required, "Observation.status".into())
    );
    let mut o = observation();
    o["component"][0].as_object_mut().unwrap().remove("code");
    assert_eq!(
        one_issue(&o),
        (IssueCode::Required, "Observation.component[0].code".into())
    );
    // A primitive present only through its extension counts as present.
    let mut o = observation();
    o.as_object_mut().unwrap().remove("status");
    o["_status"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]});
    assert_valid(&o);
    // Two choices of one element.
    let mut o = observation();
    o["valueString"] = json!("high");
    o["valueBoolean"] = json!(true);
    let found = issues(&o);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, IssueCode::Invalid);
    // Extensions need a url.
    let mut p = patient();
    p["extension"][0].as_object_mut().unwrap().remove("url");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Required, "Patient.extension[0].url".into())
    );
}

#[test]
fn json_rules_are_checked() {
    let mut p = patient();
    p["telecom"] = json!([]);
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.telecom".into())
    );
    let mut p = patient();
    p["maritalStatus"] = json!({});
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.maritalStatus".into())
    );
    let mut p = patient();
    p["active"] = Value::Null;
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.active".into())
    );
    let mut p = patient();
    p["name"][0]["given"][1] = Value::Null;
    assert_eq!(
        one_issue(&p),
        (IssueCode::Structure, "Patient.name[0].given[1]".into())
    );
    let mut p = patient();
    p["name"][0]["family"] = json!("");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Value, "Patient.name[0].family".into())
    );
}

#[test]
fn primitive_formats_are_checked() {
    let cases = [
        ("birthDate", json!("1974-02-30")),
        ("birthDate", json!("25/12/1974")),
        ("birthDate", json!(1974)),
        ("active", json!("true")),
        ("multipleBirthInteger", json!(1.5)),
        ("id", json!("pat_1")),
        ("deceasedDateTime", json!("2024-01-01T10:00:00")),
        ("gender", json!(" female")),
    ];
    for (key, value) in cases {
        let mut p = patient();
        if key.starts_with("deceased") || key.starts_with("multipleBirth") {
            let o = p.as_object_mut().unwrap();
            o.remove("deceasedBoolean");
            o.remove("multipleBirthInteger");
        }
        p[key] = value;
        assert_eq!(
            one_issue(&p),
            (IssueCode::Value, format!("Patient.{key}")),
            "{key}"
        );
    }
    let mut o = observation();
    o["issued"] = json!("2024-05-01");
    assert_eq!(
        one_issue(&o),
        (IssueCode::Value, "Observation.issued".into())
    );
    let mut o = observation();
    o["component"][0]["valueQuantity"]["value"] = json!("107");
    assert_eq!(
        one_issue(&o),
        (
            IssueCode::Value,
            "Observation.component[0].valueQuantity.value".into()
        )
    );
    let mut p = patient();
    p["photo"] = json!([{"contentType": "image/png", "data": "not base64!"}]);
    assert_eq!(
        one_issue(&p),
        (IssueCode::Value, "Patient.photo[0].data".into())
    );
    let mut p = patient();
    p["identifier"][0]["system"] = json!("http://example .org");
    assert_eq!(
        one_issue(&p),
        (IssueCode::Value, "Patient.identifier[0].system".into())
    );
}

#[test]
fn references_are_checked() {
    let mut o = observation();
    o["subject"]["reference"] = json!("Medication/med-1");
    let found = issues(&o);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, IssueCode::Invalid);
    assert_eq!(found[0].path, "Observation.subject.reference");
    assert!(
        found[0].message.contains("not Medication"),
        "{}",
        found[0].message
    );
    for bad in [
        "Patient/",
        "Pationt/1",
        "Patient/a_b",
        "Patient/1/_history",
        "urn:uuid:xyz",
        "just text",
    ] {
        let mut o = observation();
        o["subject"]["reference"] = json!(bad);
        assert_eq!(
            one_issue(&o),
            (IssueCode::Value, "Observation.subject.reference".into()),
            "{bad}"
        );
    }
    for good in [
        "Patient/1/_history/2",
        "http://other.org/fhir/Patient/1",
        "Group/g",
    ] {
        let mut o = observation();
        o["subject"]["reference"] = json!(good);
        assert_valid(&o);
    }
    let mut o = observation();
    o["subject"]["reference"] = json!("#nope");
    assert_eq!(
        one_issue(&o),
        (IssueCode::Invalid, "Observation.subject.reference".into())
    );
}

#[test]
fn required_bindings_are_checked() {
    let mut p = patient();
    p["gender"] = json!("unknown-value");
    let found = issues(&p);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, IssueCode::CodeInvalid);
    assert_eq!(found[0].path, "Patient.gender");
    assert_eq!(
        found[0].message,
        "Patient.gender: \"unknown-value\" is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender"
    );
    let mut o = observation();
    o["component"][1]["valueQuantity"]["comparator"] = json!("~");
    assert_eq!(
        one_issue(&o),
        (
            IssueCode::CodeInvalid,
            "Observation.component[1].valueQuantity.comparator".into()
        )
    );
    // CodeableConcept: a coding of the value set's system must be in it ...
    let allergy = |code: &str| {
        json!({
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [
                {"system": "http://example.org/local", "code": "A"},
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": code}
            ]},
            "patient": {"reference": "Patient/1"}
        })
    };
    assert_valid(&allergy("resolved"));
    assert_eq!(
        one_issue(&allergy("cured")),
        (
            IssueCode::CodeInvalid,
            "AllergyIntolerance.clinicalStatus".into()
        )
    );
    // ... but text alone or only other systems are accepted.
    let mut a = allergy("active");
    a["clinicalStatus"] = json!({"text": "active"});
    assert_valid(&a);
    // Not expandable value sets (UCUM, MIME types) are not checked.
    let mut p = patient();
    p["photo"] = json!([{"contentType": "application/x-anything"}]);
    assert_valid(&p);
}

#[test]
fn nested_resources_are_validated() {
    let mut b = bundle();
    b["entry"][0]["resource"]["gender"] = json!("f");
    assert_eq!(
        one_issue(&b),
        (
            IssueCode::CodeInvalid,
            "Bundle.entry[0].resource.gender".into()
        )
    );
    let mut b = bundle();
    b["entry"][1]["resource"]["resourceType"] = json!("Nope");
    assert_eq!(
        one_issue(&b),
        (IssueCode::NotSupported, "Bundle.entry[1].resource".into())
    );
    let mut b = bundle();
    b["entry"][1]["resource"]["subject"]["reference"] = json!("urn:uuid:not-a-uuid");
    assert_eq!(
        one_issue(&b),
        (
            IssueCode::Value,
            "Bundle.entry[1].resource.subject.reference".into()
        )
    );
    let report = json!({
        "resourceType": "DiagnosticReport",
        "contained": [{"resourceType": "Observation", "id": "x", "code": {"text": "Hb"}}],
        "status": "final",
        "code": {"text": "CBC"},
        "result": [{"reference": "#x"}]
    });
    assert_eq!(
        one_issue(&report),
        (
            IssueCode::Required,
            "DiagnosticReport.contained[0].status".into()
        )
    );
    let nested = json!({
        "resourceType": "Patient",
        "contained": [{"resourceType": "Patient", "id": "a", "contained": [{"resourceType": "Patient", "id": "b"}]}]
    });
    let found = issues(&nested);
    assert!(
        found
            .iter()
            .any(|i| i.path == "Patient.contained[0].contained"),
        "{found:#?}"
    );
    // An element typed with one resource type wants that type.
    let b = json!({
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"response": {"status": "200", "outcome": {"resourceType": "Patient"}}}]
    });
    assert_eq!(
        one_issue(&b),
        (
            IssueCode::Invalid,
            "Bundle.entry[0].response.outcome".into()
        )
    );
}

#[test]
fn deep_nesting_is_an_issue_not_a_crash() {
    let mut item = json!({"linkId": "x", "type": "group"});
    for _ in 0..200 {
        item = json!({"linkId": "x", "type": "group", "item": [item]});
    }
    let q = json!({"resourceType": "Questionnaire", "status": "draft", "item": [item]});
    let found = issues(&q);
    assert!(found.iter().any(|i| i.code == IssueCode::TooCostly));
}

const US_CORE_PATIENT: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";
const US_CORE_BP: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure";

#[test]
fn us_core_patient_profile() {
    let p = patient();
    validate_profile(&p, US_CORE_PATIENT).unwrap();
    validate_profile(&p, &format!("{US_CORE_PATIENT}|5.0.1")).unwrap();
    // Valid for the base, missing what US Core requires.
    let bare = json!({"resourceType": "Patient", "name": [{"family": "Doe"}], "telecom": [{"value": "555"}]});
    assert_valid(&bare);
    let found = validate_profile(&bare, US_CORE_PATIENT).unwrap_err();
    let paths: Vec<(IssueCode, &str)> = found.iter().map(|i| (i.code, i.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            (IssueCode::Required, "Patient.identifier"),
            (IssueCode::Required, "Patient.telecom[0].system"),
            (IssueCode::Required, "Patient.gender"),
        ],
        "{found:#?}"
    );
    let mut p = patient();
    p["identifier"][0].as_object_mut().unwrap().remove("system");
    let found = validate_profile(&p, US_CORE_PATIENT).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "Patient.identifier[0].system");
    // Wrong type, unknown profile.
    let found = validate_profile(&observation(), US_CORE_PATIENT).unwrap_err();
    assert_eq!(found[0].code, IssueCode::Invalid);
    let found = validate_profile(&p, "http://example.org/nope").unwrap_err();
    assert!(found.iter().any(|i| i.code == IssueCode::NotSupported));
}

#[test]
fn us_core_blood_pressure_profile() {
    let mut o = observation();
    o["subject"]["reference"] = json!("Patient/pat-1");
    validate_profile(&o, US_CORE_BP).unwrap();
    // The systolic slice is required.
    let mut o = observation();
    o["component"][0]["code"]["coding"][0]["code"] = json!("9999-9");
    let found = validate_profile(&o, US_CORE_BP).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, IssueCode::Required);
    assert!(
        found[0].message.contains("systolic"),
        "{}",
        found[0].message
    );
    // The code pattern and the vital-signs category.
    let mut o = observation();
    o["code"]["coding"][0]["code"] = json!("0000-0");
    o["category"][0]["coding"][0]["code"] = json!("laboratory");
    let found = validate_profile(&o, US_CORE_BP).unwrap_err();
    let codes: Vec<IssueCode> = found.iter().map(|i| i.code).collect();
    assert!(codes.contains(&IssueCode::Value), "{found:#?}");
    assert!(
        found.iter().any(|i| i.message.contains("VSCat")),
        "{found:#?}"
    );
    // effective[x] is required by the profile.
    let mut o = observation();
    o.as_object_mut().unwrap().remove("effectiveDateTime");
    let found = validate_profile(&o, US_CORE_BP).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "Observation.effective");
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9 _:/#.-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("Patient"),
            Just("Observation"),
            Just("Bundle"),
            Just("Patient/1"),
            Just("#a"),
            Just("2024-01-01"),
            Just("urn:uuid:")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop_oneof![
            Just("resourceType".to_owned()),
            Just("name".to_owned()),
            Just("_name".to_owned()),
            Just("given".to_owned()),
            Just("_given".to_owned()),
            Just("valueQuantity".to_owned()),
            Just("extension".to_owned()),
            Just("url".to_owned()),
            Just("contained".to_owned()),
            Just("reference".to_owned()),
            Just("subject".to_owned()),
            Just("entry".to_owned()),
            Just("resource".to_owned()),
            Just("id".to_owned()),
            Just("coding".to_owned()),
            Just("code".to_owned()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn validate_never_panics(v in arbitrary_json(), rt in prop_oneof![Just("Patient"), Just("Observation"), Just("Bundle"), Just("Questionnaire")]) {
        let _ = validate(&v);
        let _ = validate_profile(&v, US_CORE_BP);
        if let Value::Object(mut m) = v {
            m.insert("resourceType".into(), Value::from(rt));
            let v = Value::Object(m);
            let _ = validate(&v);
            let _ = validate_profile(&v, US_CORE_PATIENT);
            let _ = validate_profile(&v, US_CORE_BP);
        }
    }
}
