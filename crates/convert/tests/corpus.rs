//! Every HL7 v2 sample of the shared corpus converts (or fails with the error the test names)
//! and every Bundle is valid FHIR R4 for the `fhir` crate's validator.

mod common;

use convert::{ConvertError, Options, convert_bytes};

/// Samples that cannot be converted, and the error each must give.
/// Each has an OBX without its required observation identifier (OBX-3), so no Observation
/// can be made of it.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    (
        "OUL-R22-02.hl7",
        "OBX[3]-3: an Observation needs its code (observation identifier)",
    ),
    (
        "OUL-R23-02.hl7",
        "OBX[3]-3: an Observation needs its code (observation identifier)",
    ),
    (
        "OUL-R24-02.hl7",
        "OBX[2]-3: an Observation needs its code (observation identifier)",
    ),
];

#[test]
fn every_sample_converts_to_a_valid_bundle() {
    let Some(files) = common::corpus() else {
        return;
    };
    assert!(
        files.len() >= 60,
        "expected the 71 samples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (name, raw) in &files {
        let expected = EXPECTED_ERRORS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| *e);
        match (convert_bytes(raw, &Options::default()), expected) {
            (Ok(out), None) => {
                let errors = common::validation_errors(&out.bundle);
                if !errors.is_empty() {
                    failures.push(format!("{name}: invalid FHIR: {}", errors.join("; ")));
                }
                let entries = out.bundle["entry"].as_array().map_or(0, Vec::len);
                if entries < 2 {
                    failures.push(format!("{name}: only {entries} entries"));
                }
            }
            (Ok(_), Some(e)) => failures.push(format!("{name}: converted, expected error {e:?}")),
            (Err(e), Some(want)) if e.to_string() == want => {}
            (Err(e), _) => failures.push(format!("{name}: {e}")),
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

    let no_code = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\rOBR|1||F1|GLU^Glucose\rOBX|1|NM|||5\r";
    let e = convert_bytes(no_code, &Options::default()).expect_err("no OBX-3");
    assert_eq!(
        e.location().map(ToString::to_string).as_deref(),
        Some("OBX-3")
    );

    let merge =
        b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A40|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR\r";
    let e = convert_bytes(merge, &Options::default()).expect_err("A40 without MRG");
    assert!(
        matches!(e, ConvertError::MissingSegment { segment: "MRG", .. }),
        "{e}"
    );
}
