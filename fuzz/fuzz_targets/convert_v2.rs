//! Fuzzes HL7 v2 → FHIR conversion: any bytes either fail with a `ConvertError` or give a
//! Bundle; no panic, the same bytes give the same Bundle, and the JSON form
//! (`convert_bytes_to_json`) is that Bundle written out byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = convert::Options::default();
    let first = convert::convert_bytes(data, &opts);
    if let Ok(out) = &first {
        let again = convert::convert_bytes(data, &opts).expect("converted once, converts again");
        assert_eq!(out.bundle, again.bundle, "the same bytes gave two Bundles");
        assert!(out.bundle["entry"].is_array());
        let json = convert::convert_bytes_to_json(data, &opts).expect("converted once");
        let written = serde_json::to_vec(&out.bundle).expect("a Value serializes");
        assert!(json.json == written, "the JSON form differs from the Bundle");
        // unmapped reports never panic when shown
        for u in &out.unmapped {
            let _ = u.to_string();
        }
    }
});
