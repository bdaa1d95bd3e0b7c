//! Every C-CDA sample of the shared corpus converts, in both Bundle kinds, to resources the
//! server's validator accepts, deterministically.

mod common;

use ccda::{BundleType, Options};
use serde_json::Value;

#[test]
fn every_sample_converts_to_valid_fhir() {
    let corpus = common::corpus();
    if corpus.is_empty() {
        return;
    }
    for (name, bytes) in &corpus {
        for bundle_type in [BundleType::Document, BundleType::Transaction] {
            let opts = Options {
                bundle_type,
                ..Options::default()
            };
            let conv = ccda::to_fhir(bytes, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let errors = common::validation_errors(&conv.bundle);
            assert!(errors.is_empty(), "{name} ({bundle_type:?}): {errors:#?}");
            let again = ccda::to_fhir(bytes, &opts).expect("converts twice");
            assert_eq!(
                conv, again,
                "{name}: the same input must give the same Bundle"
            );
            let resources = common::resources(&conv.bundle);
            assert_eq!(resources[0]["resourceType"], "Composition", "{name}");
            assert!(
                resources.iter().any(|r| r["resourceType"] == "Patient"),
                "{name}"
            );
            // Ids are unique, and every reference points into the Bundle.
            let mut full_urls = std::collections::BTreeSet::new();
            for e in conv.bundle["entry"].as_array().expect("entries") {
                assert!(
                    full_urls.insert(e["fullUrl"].as_str().expect("fullUrl").to_owned()),
                    "{name}: duplicate {}",
                    e["fullUrl"]
                );
            }
            let targets: std::collections::BTreeSet<String> = resources
                .iter()
                .map(|r| match bundle_type {
                    BundleType::Document => format!("urn:uuid:{}", r["id"].as_str().expect("id")),
                    BundleType::Transaction => format!(
                        "{}/{}",
                        r["resourceType"].as_str().expect("type"),
                        r["id"].as_str().expect("id")
                    ),
                })
                .collect();
            let mut refs = Vec::new();
            collect_refs(&conv.bundle, &mut refs);
            for r in refs {
                assert!(targets.contains(&r), "{name}: dangling reference {r}");
            }
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// Prints what each sample gives (resource counts and unmapped content); run with
/// `--nocapture` to review.
#[test]
fn samples_give_the_expected_resources() {
    let corpus = common::corpus();
    if corpus.is_empty() {
        return;
    }
    for (name, bytes) in &corpus {
        let conv = ccda::to_fhir(bytes, &Options::default()).expect("converts");
        let mut counts = std::collections::BTreeMap::new();
        for r in common::resources(&conv.bundle) {
            *counts
                .entry(r["resourceType"].as_str().unwrap_or("?").to_owned())
                .or_insert(0) += 1;
        }
        println!("{name}: {counts:?}; {} unmapped", conv.unmapped.len());
        for u in &conv.unmapped {
            println!("    line {} {}: {} — {}", u.line, u.path, u.what, u.reason);
        }
    }
    // Together the samples carry every kind of resource the converter makes.
    let mut types = std::collections::BTreeSet::new();
    for (_, bytes) in &corpus {
        let conv = ccda::to_fhir(bytes, &Options::default()).expect("converts");
        for r in common::resources(&conv.bundle) {
            types.insert(r["resourceType"].as_str().unwrap_or("").to_owned());
        }
    }
    for t in [
        "Composition",
        "Patient",
        "Practitioner",
        "Organization",
        "Device",
        "Location",
        "AllergyIntolerance",
        "Condition",
        "MedicationStatement",
        "MedicationRequest",
        "Immunization",
        "Observation",
        "DiagnosticReport",
        "Procedure",
        "Encounter",
        "DocumentReference",
    ] {
        assert!(types.contains(t), "no sample gives a {t}: {types:?}");
    }
}
