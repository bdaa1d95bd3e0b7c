//! Shared helpers of the integration tests: the corpus and FHIR validation.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// The HL7 v2 samples of the shared corpus, or `None` (with a message) when absent.
pub fn corpus() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/hl7v2/fhir-converter");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: {} is absent", dir.display());
        return None;
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    files.sort();
    Some(files)
}

/// The error-severity issues of every resource of a Bundle, with the entry index.
pub fn validation_errors(bundle: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(issues) = fhir::validate::validate(bundle) {
        for i in issues {
            if matches!(
                i.severity,
                fhir::validate::Severity::Error | fhir::validate::Severity::Fatal
            ) {
                out.push(i.message);
            }
        }
    }
    out
}
