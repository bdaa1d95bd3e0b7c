//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// The folder of the FHIR-Converter C-CDA samples (`../shared/corpus/ccda/fhir-converter`).
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/ccda/fhir-converter");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: C-CDA corpus not found at {}", dir.display());
        None
    }
}

/// Every `.ccda` sample, sorted by name.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus dir readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ccda"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).expect("sample readable");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// One sample by file name.
pub fn sample(name: &str) -> Option<Vec<u8>> {
    let dir = corpus_dir()?;
    Some(std::fs::read(dir.join(name)).expect("sample readable"))
}

/// The resources of a Bundle's entries.
pub fn resources(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

/// Validates a Bundle and each resource in it with the server's validator; returns the
/// error-severity issues as text.
pub fn validation_errors(bundle: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |v: &Value, what: &str| {
        if let Err(issues) = fhir::validate::validate(v) {
            for i in issues {
                if matches!(
                    i.severity,
                    fhir::validate::Severity::Error | fhir::validate::Severity::Fatal
                ) {
                    out.push(format!("{what}: {}", i.message));
                }
            }
        }
    };
    check(bundle, "Bundle");
    for r in resources(bundle) {
        let what = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or("?"),
            r["id"].as_str().unwrap_or("?")
        );
        check(&r, &what);
    }
    out
}

/// The set of (resourceType, system|code) of every coding of the main code of each clinical
/// resource: what a round trip must keep.
pub fn coded_entries(bundle: &Value) -> std::collections::BTreeSet<(String, String)> {
    let mut set = std::collections::BTreeSet::new();
    for r in resources(bundle) {
        let rt = r["resourceType"].as_str().unwrap_or("").to_owned();
        let field = match rt.as_str() {
            "AllergyIntolerance" | "Condition" | "Observation" | "Procedure" => "code",
            "MedicationStatement" | "MedicationRequest" => "medicationCodeableConcept",
            "Immunization" => "vaccineCode",
            _ => continue,
        };
        for c in r[field]["coding"].as_array().into_iter().flatten() {
            if let (Some(s), Some(code)) = (c["system"].as_str(), c["code"].as_str()) {
                set.insert((rt.clone(), format!("{s}|{code}")));
            }
        }
    }
    set
}
