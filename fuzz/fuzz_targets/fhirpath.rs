//! Parse any text as FHIRPath: no panic; an expression that parses evaluates on a realistic
//! Patient without panicking (errors are values).
#![no_main]

use libfuzzer_sys::fuzz_target;

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"system":"urn:t","code":"x"}]},
"identifier":[{"system":"urn:oid:1.2.3","value":"MRN1","type":{"coding":[{"code":"MR"}]}}],
"name":[{"family":"Müller","given":["Anna","B"]},{"text":"Ann"}],"birthDate":"1970-03-01",
"gender":"female","active":true,"multipleBirthInteger":2,
"address":[{"city":"Boston","line":["1 Main St"]}],
"contact":[{"name":{"family":"X"}}],"managingOrganization":{"reference":"Organization/o1"},
"contained":[{"resourceType":"Organization","id":"c1","name":"C"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = fhirpath::parse(text) {
        let patient: serde_json::Value = serde_json::from_str(PATIENT).expect("fixture");
        let _ = expr.evaluate(&patient, &fhirpath::Context::new());
    }
});
