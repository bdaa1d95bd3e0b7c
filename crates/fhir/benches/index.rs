//! The write path of a FHIR resource: validation and index extraction of a realistic Patient
//! and Observation.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let patient = json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"tag": [{"system": "http://plexus/tags", "code": "import"}], "source": "urn:plexus:mllp:adt"},
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "000-00-0000"}
        ],
        "active": true,
        "name": [
            {"use": "official", "family": "Müller", "given": ["Åsa", "Jim"], "prefix": ["Dr."]},
            {"use": "usual", "given": ["Jimmy"]}
        ],
        "telecom": [
            {"system": "phone", "value": "(03) 5555 6473", "use": "work"},
            {"system": "email", "value": "asa@example.org"}
        ],
        "gender": "female",
        "birthDate": "1974-12-25",
        "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille",
                     "district": "Rainbow", "state": "Vic", "postalCode": "3999", "country": "AU"}],
        "generalPractitioner": [{"reference": "Practitioner/dr-1"}],
        "managingOrganization": {"reference": "Organization/1"}
    });
    let observation = json!({
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-01T10:30:00+01:00",
        "performer": [{"reference": "Practitioner/dr-1"}],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    });
    // Compile the expressions outside the measurement.
    let _ = fhir::index::extract(&patient);
    let _ = fhir::index::extract(&observation);
    c.bench_function("extract Patient", |b| {
        b.iter(|| fhir::index::extract(black_box(&patient)));
    });
    c.bench_function("extract Observation", |b| {
        b.iter(|| fhir::index::extract(black_box(&observation)));
    });
    assert!(fhir::validate::validate(&patient).is_ok());
    assert!(fhir::validate::validate(&observation).is_ok());
    c.bench_function("validate Patient", |b| {
        b.iter(|| fhir::validate::validate(black_box(&patient)));
    });
    c.bench_function("validate Observation", |b| {
        b.iter(|| fhir::validate::validate(black_box(&observation)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
