//! Parse and evaluate a few search parameter expressions on a Patient.

use criterion::{Criterion, criterion_group, criterion_main};
use fhirpath::{Context, parse};
use serde_json::json;
use std::hint::black_box;

const EXPRESSIONS: [&str; 5] = [
    "Patient.name.family | Practitioner.name.family",
    "Patient.telecom.where(system='phone') | Person.telecom.where(system='phone')",
    "Patient.birthDate | Person.birthDate | RelatedPerson.birthDate",
    "Patient.generalPractitioner.where(resolve() is Practitioner)",
    "Patient.deceased.exists() and Patient.deceased != false",
];

fn bench(c: &mut Criterion) {
    let patient = json!({
        "resourceType": "Patient", "id": "example", "active": true,
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}, {"use": "usual", "given": ["Jim"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473"}, {"system": "email", "value": "p@example.org"}],
        "gender": "male", "birthDate": "1974-12-25", "deceasedBoolean": false,
        "address": [{"city": "PleasantVille", "postalCode": "3999"}],
        "generalPractitioner": [{"reference": "Practitioner/7"}]
    });
    let ctx = Context::default();
    c.bench_function("parse 5 search expressions", |b| {
        b.iter(|| {
            for e in EXPRESSIONS {
                black_box(parse(black_box(e)).ok());
            }
        });
    });
    let parsed: Vec<_> = EXPRESSIONS.iter().filter_map(|e| parse(e).ok()).collect();
    c.bench_function("evaluate 5 search expressions on a Patient", |b| {
        b.iter(|| {
            for e in &parsed {
                black_box(e.evaluate(black_box(&patient), &ctx).ok());
            }
        });
    });
    c.bench_function("parse + evaluate 5 search expressions", |b| {
        b.iter(|| {
            for e in EXPRESSIONS {
                if let Ok(e) = parse(e) {
                    black_box(e.evaluate(&patient, &ctx).ok());
                }
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
