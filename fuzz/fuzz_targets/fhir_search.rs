//! Any query string as a FHIR search on Observation and system-wide: parsing never panics,
//! and a parsed search has a canonical key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let options = fhir::search::SearchOptions::default();
    for resource_type in [Some("Observation"), Some("Patient"), None] {
        if let Ok(request) = fhir::search::parse(resource_type, &pairs, &options) {
            let _ = fhir::search::canonical_key(&request);
        }
    }
});
