//! C-CDA → FHIR throughput on one core: the largest CCD of the shared corpus
//! (`170.314B2_Amb_CCD.ccda`, 75 KB) and the largest document (`Transfer_Summary.ccda`,
//! 244 KB), each beside a same-run baseline: roxmltree building its tree of the same bytes
//! (parse only, no conversion). Without the corpus, a CCD made by `ccda::to_ccd` from a
//! synthetic patient is measured instead.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn corpus(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/ccda/fhir-converter")
        .join(name);
    std::fs::read(path).ok()
}

/// A CCD with a handful of entries per section, for machines without the corpus.
fn synthetic() -> Vec<u8> {
    let patient = json!({"resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-1"}],
        "name": [{"family": "Doe", "given": ["Jane"]}], "gender": "female", "birthDate": "1970-01-01"});
    let mut resources = vec![patient.clone()];
    for i in 0..10 {
        resources.push(json!({"resourceType": "Condition", "id": format!("c{i}"), "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": format!("{}", 38_341_003 + i), "display": "Problem"}]},
            "onsetDateTime": "2020-01-01"}));
        resources.push(json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final", "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
            "effectiveDateTime": "2024-01-01T10:00:00Z", "valueQuantity": {"value": 90 + i, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}));
    }
    let opts = ccda::CcdOptions {
        effective_time: Some("2024-01-02T00:00:00Z".into()),
        ..ccda::CcdOptions::default()
    };
    ccda::to_ccd(&patient, &resources, &opts)
        .expect("synthetic CCD")
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut docs = Vec::new();
    for name in ["170.314B2_Amb_CCD.ccda", "Transfer_Summary.ccda"] {
        match corpus(name) {
            Some(bytes) => docs.push((name.to_owned(), bytes)),
            None => eprintln!("corpus sample {name} not found; skipped"),
        }
    }
    if docs.is_empty() {
        docs.push(("synthetic CCD".to_owned(), synthetic()));
    }
    let opts = ccda::Options::default();
    for (name, bytes) in &docs {
        let mut g = c.benchmark_group(name.as_str());
        g.throughput(Throughput::Elements(1));
        g.bench_function("to_fhir (document Bundle)", |b| {
            b.iter(|| ccda::to_fhir(black_box(bytes), &opts).expect("converts"));
        });
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        g.bench_function("roxmltree parse only (baseline)", |b| {
            b.iter(|| {
                roxmltree::Document::parse(black_box(text))
                    .expect("parses")
                    .descendants()
                    .count()
            });
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
