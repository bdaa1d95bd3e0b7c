//! Fuzzes HL7 v2 → FHIR conversion: any bytes either fail with a `ConvertError` or give a
//! Bundle; no panic, and the same bytes give the same Bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = convert::Options::default();
    let first = convert::convert_bytes(data, &opts);
    if let Ok(out) = &first {
        let again = convert::convert_bytes(data, &opts).expect("converted once, converts again");
        assert_eq!(out.bundle, again.bundle, "the same bytes gave two Bundles");
        assert!(out.bundle["entry"].is_array());
        // unmapped reports never panic when shown
        for u in &out.unmapped {
            let _ = u.to_string();
        }
    }
});
