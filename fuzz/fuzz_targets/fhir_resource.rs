//! Any JSON as a FHIR resource: validation and search index extraction never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = fhir::validate::validate(&value);
    let _ = fhir::index::extract(&value);
});
