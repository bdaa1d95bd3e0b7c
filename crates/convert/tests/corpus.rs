//! Every HL7 v2 sample of the shared corpus converts, and every Bundle is valid FHIR R4 for the
//! `fhir` crate's validator.

mod common;

use convert::{ConvertError, Options, UnmappedReason, convert_bytes};

/// Samples with an OBX that lacks its required observation identifier (OBX-3): they convert,
/// the Observation's code says the identifier is absent, and the report lists the OBX.
const OBX_WITHOUT_CODE: &[(&str, &str)] = &[
    ("OUL-R22-02.hl7", "OBX[3]-3"),
    ("OUL-R22-02.hl7", "OBX[6]-3"),
    ("OUL-R23-02.hl7", "OBX[3]-3"),
    ("OUL-R23-02.hl7", "OBX[6]-3"),
    ("OUL-R24-02.hl7", "OBX[2]-3"),
];

#[test]
fn every_sample_converts_to_a_valid_bundle() {
    let Some(files) = common::corpus() else {
        return;
    };
    assert!(
        files.len() >= 60,
        "expected the 70 samples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (name, raw) in &files {
        match convert_bytes(raw, &Options::default()) {
            Ok(out) => {
                let errors = common::validation_errors(&out.bundle);
                if !errors.is_empty() {
                    failures.push(format!("{name}: invalid FHIR: {}", errors.join("; ")));
                }
                let entries = out.bundle["entry"].as_array().map_or(0, Vec::len);
                if entries < 2 {
                    failures.push(format!("{name}: only {entries} entries"));
                }
                let missing: Vec<String> = out
                    .unmapped
                    .iter()
                    .filter(|u| u.reason == UnmappedReason::MissingRequired)
                    .map(|u| format!("{}[{}]-{}", u.segment, u.occurrence, u.field))
                    .collect();
                let expected: Vec<String> = OBX_WITHOUT_CODE
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, at)| (*at).to_owned())
                    .collect();
                if missing != expected {
                    failures.push(format!(
                        "{name}: missing required fields reported {missing:?}, expected {expected:?}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_name_segment_and_field() {
    let bad_birth = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR||DOE^J||19801399\r";
    let e = convert_bytes(bad_birth, &Options::default()).expect_err("bad PID-7");
    assert_eq!(
        e.location().map(ToString::to_string).as_deref(),
        Some("PID-7")
    );
    assert!(e.to_string().starts_with("PID-7: "), "{e}");

    let no_pid = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ORU^R01|1|P|2.5\rOBR|1||F1|GLU^Glucose\r";
    let e = convert_bytes(no_pid, &Options::default()).expect_err("no PID");
    assert!(
        matches!(e, ConvertError::MissingSegment { segment: "PID", .. }),
        "{e}"
    );

    let unknown = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||QBP^Q22|1|P|2.5\rQPD|X\r";
    let e = convert_bytes(unknown, &Options::default()).expect_err("unsupported");
    assert!(matches!(e, ConvertError::Unsupported { .. }), "{e}");

    let bad_sent = b"MSH|^~\\&|A|B|C|D|2026133||ADT^A01|1|P|2.5\rPID|1||42\r";
    let e = convert_bytes(bad_sent, &Options::default()).expect_err("bad MSH-7");
    assert!(e.to_string().starts_with("MSH-7: "), "{e}");

    let no_msh = b"PID|1||42^^^H&1.2.3&ISO^MR\r";
    let e = convert_bytes(no_msh, &Options::default()).expect_err("no MSH");
    assert!(e.to_string().contains("MSH"), "{e}");

    let merge =
        b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A40|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\r";
    let e = convert_bytes(merge, &Options::default()).expect_err("A40 without MRG");
    assert!(
        matches!(e, ConvertError::MissingSegment { segment: "MRG", .. }),
        "{e}"
    );
}

#[test]
fn an_obx_without_its_code_converts_with_a_data_absent_reason() {
    let raw = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\rOBR|1||F1|GLU^Glucose\rOBX|1|NM|||5\r";
    let out = convert_bytes(raw, &Options::default()).expect("converts");
    assert!(common::validation_errors(&out.bundle).is_empty());
    let obs = out.bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Observation")
        .expect("observation");
    let code = &obs["resource"]["code"];
    assert_eq!(
        code["extension"][0]["url"],
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
    );
    assert_eq!(code["extension"][0]["valueCode"], "unknown");
    assert!(code.get("coding").is_none(), "{code}");
    assert_eq!(obs["resource"]["valueQuantity"]["value"], 5);
    let reported = out
        .unmapped
        .iter()
        .find(|u| u.reason == UnmappedReason::MissingRequired)
        .expect("OBX-3 reported");
    assert_eq!((reported.segment.as_str(), reported.field), ("OBX", 3));
    assert_eq!(
        reported.to_string(),
        "OBX-3: required field empty, written as data absent (0 bytes)"
    );
}

#[test]
fn unmapped_content_is_reported_without_values() {
    // PID-40 after PID-5, PV1-45 after PV1-2
    let raw = format!(
        "MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR||DOE^J{}SECRETVALUE\rPV1|1|Q{}20261301\rZPI|1|SECRETZ\r",
        "|".repeat(35),
        "|".repeat(43)
    );
    let raw = raw.as_bytes();
    let out = convert_bytes(raw, &Options::default()).expect("converts");
    let shown: Vec<String> = out.unmapped.iter().map(ToString::to_string).collect();
    let all = shown.join("\n");
    assert!(
        !all.contains("SECRET"),
        "values leak into the report:\n{all}"
    );
    let z = out
        .unmapped
        .iter()
        .find(|u| u.segment == "ZPI")
        .expect("Z-segment reported");
    assert_eq!((z.field, z.reason), (0, convert::UnmappedReason::Segment));
    let pid40 = out
        .unmapped
        .iter()
        .find(|u| u.segment == "PID" && u.field == 40)
        .expect("PID-40 reported");
    assert_eq!(pid40.length, "SECRETVALUE".len());
    assert!(
        pid40
            .ig_target
            .as_deref()
            .is_some_and(|t| t.starts_with("Patient.")),
        "{pid40}"
    );
    // an impossible discharge date and an unlisted patient class are reported, not guessed
    assert!(
        out.unmapped.iter().any(|u| u.segment == "PV1"
            && u.field == 45
            && u.reason == convert::UnmappedReason::Invalid),
        "{all}"
    );
    assert!(
        out.unmapped.iter().any(|u| u.segment == "PV1"
            && u.field == 2
            && u.reason == convert::UnmappedReason::UnknownCode),
        "{all}"
    );

    // the same, carried as Provenance extensions on request, still valid FHIR
    let opts = Options {
        unmapped_extensions: true,
        ..Options::default()
    };
    let out = convert_bytes(raw, &opts).expect("converts");
    assert!(common::validation_errors(&out.bundle).is_empty());
    let entries = out.bundle["entry"].as_array().expect("entries");
    let prov = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Provenance")
        .expect("provenance");
    let exts = prov["resource"]["extension"]
        .as_array()
        .expect("extensions");
    assert_eq!(exts.len(), out.unmapped.len());
    assert!(exts.iter().any(|e| e.to_string().contains("SECRETZ")));
}

#[test]
fn times_without_zone_take_the_default_or_msh7() {
    let raw = b"MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\rPV1|1|I|||||||||||||||||V1^^^H&1.2.3.9&ISO|||||||||||||||||||||||||20260101110000\r";
    let out = convert_bytes(raw, &Options::default()).expect("converts");
    let enc = &out.bundle["entry"][1]["resource"];
    assert_eq!(
        enc["period"]["start"], "2026-01-01",
        "cut to the date without a zone"
    );
    assert!(
        out.unmapped
            .iter()
            .any(|u| u.reason == convert::UnmappedReason::TimeWithoutZone)
    );
    let opts = Options {
        default_timezone: Some("-05:00".into()),
        ..Options::default()
    };
    let out = convert_bytes(raw, &opts).expect("converts");
    assert_eq!(
        out.bundle["entry"][1]["resource"]["period"]["start"],
        "2026-01-01T11:00:00-05:00"
    );
    let with_msh7_zone = b"MSH|^~\\&|A|B|C|D|20260101120000+0130||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\rPV1|1|I|||||||||||||||||V1^^^H&1.2.3.9&ISO|||||||||||||||||||||||||20260101110000\r";
    let out = convert_bytes(with_msh7_zone, &Options::default()).expect("converts");
    assert_eq!(
        out.bundle["entry"][1]["resource"]["period"]["start"],
        "2026-01-01T11:00:00+01:30"
    );
}

#[test]
fn document_text_lines_make_one_attachment() {
    let raw = b"MSH|^~\\&|DOC|HOSP|EHR|HOSP|20260101120000+0100||MDM^T02^MDM_T02|D1|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^JANE\rTXA|1|DS|TX|20260101110000||||||||DOC1^HOSP|||||AU\rOBX|1|TX|11506-3^Note^LN||line one||||||F\rOBX|2|TX|11506-3^Note^LN||line two||||||F\rOBX|3|ED|PDF^Scan^L||^application^pdf^Base64^SGVsbG8=||||||F\r";
    let out = convert_bytes(raw, &Options::default()).expect("converts");
    let entries = out.bundle["entry"].as_array().expect("entries");
    let doc = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "DocumentReference")
        .expect("document");
    let content = doc["resource"]["content"].as_array().expect("content");
    assert_eq!(content.len(), 2, "{content:?}");
    assert_eq!(content[0]["attachment"]["contentType"], "text/plain");
    // base64 of "line one\nline two"
    assert_eq!(content[0]["attachment"]["data"], "bGluZSBvbmUKbGluZSB0d28=");
    assert_eq!(content[1]["attachment"]["contentType"], "application/pdf");
    assert_eq!(doc["resource"]["docStatus"], "final");
    assert!(common::validation_errors(&out.bundle).is_empty());
}

#[test]
fn the_json_form_is_the_bundle_written_out() {
    let Some(files) = common::corpus() else {
        return;
    };
    for (name, raw) in &files {
        let value = convert_bytes(raw, &Options::default()).expect("converts");
        let json = convert::convert_bytes_to_json(raw, &Options::default()).expect("converts");
        let written = serde_json::to_vec(&value.bundle).expect("json");
        assert!(json.json == written, "{name}: the JSON form differs");
        assert_eq!(json.unmapped, value.unmapped, "{name}");
    }
}
