//! Bad input gives a precise error naming where it is, never a panic.

mod common;

use ccda::{CcdaError, Options};

fn convert(xml: &str) -> Result<ccda::Conversion, CcdaError> {
    ccda::to_fhir(xml.as_bytes(), &Options::default())
}

#[test]
fn not_xml() {
    assert_eq!(
        convert("hello, world").expect_err("not XML"),
        CcdaError::Xml {
            line: 1,
            message: "text outside the root element".into()
        }
    );
    let err = ccda::to_fhir(
        b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\xff\xfe</ClinicalDocument>",
        &Options::default(),
    )
    .expect_err("not UTF-8");
    assert!(matches!(err, CcdaError::Xml { line: 1, .. }), "{err:?}");
    let err = convert(
        "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n<title>x</titel>\n</ClinicalDocument>",
    )
    .expect_err("mismatched");
    assert!(matches!(err, CcdaError::Xml { line: 2, .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("not well-formed XML at line 2:"),
        "{err}"
    );
    let err = convert("").expect_err("empty");
    assert_eq!(
        err,
        CcdaError::Xml {
            line: 1,
            message: "no root element".into()
        }
    );
}

#[test]
fn not_a_clinical_document() {
    assert_eq!(
        convert("<?xml version=\"1.0\"?>\n<Bundle xmlns=\"http://hl7.org/fhir\"/>")
            .expect_err("FHIR XML"),
        CcdaError::NotClinicalDocument {
            found: "Bundle xmlns=\"http://hl7.org/fhir\"".into(),
            line: 2
        }
    );
    assert_eq!(
        convert("<ClinicalDocument><recordTarget/></ClinicalDocument>").expect_err("no namespace"),
        CcdaError::NotClinicalDocument {
            found: "ClinicalDocument (no namespace)".into(),
            line: 1
        }
    );
}

#[test]
fn missing_record_target() {
    let err = convert(
        "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n  <title>t</title>\n</ClinicalDocument>",
    )
    .expect_err("no recordTarget");
    assert_eq!(
        err,
        CcdaError::Invalid {
            path: "/ClinicalDocument".into(),
            line: 1,
            message: "required element recordTarget is missing".into()
        }
    );
    let err = convert("<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n  <recordTarget>\n  </recordTarget>\n</ClinicalDocument>")
        .expect_err("no patientRole");
    assert_eq!(
        err.to_string(),
        "/ClinicalDocument/recordTarget (line 2): required element patientRole is missing"
    );
}

#[test]
fn truncated_corpus_documents_name_the_line() {
    let Some(bytes) = common::sample("170.314B2_Amb_CCD.ccda") else {
        return;
    };
    let cut = &bytes[..bytes.len() / 2];
    match ccda::to_fhir(cut, &Options::default()) {
        Err(CcdaError::Xml { line, message }) => {
            let last_line = 1 + newlines(cut);
            assert_eq!(line, last_line);
            assert!(
                message.starts_with("the document ends inside <"),
                "{message}"
            );
        }
        other => panic!("expected an XML error, got {other:?}"),
    }
}

#[test]
fn a_minimal_document_converts() {
    let conv = convert(
        r#"<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole><id nullFlavor="UNK"/></patientRole></recordTarget></ClinicalDocument>"#,
    )
    .expect("converts");
    assert!(
        common::validation_errors(&conv.bundle).is_empty(),
        "{:#?}",
        common::validation_errors(&conv.bundle)
    );
    let comp = &conv.bundle["entry"][0]["resource"];
    // Required Composition elements without CDA data say why they are absent.
    assert_eq!(comp["_date"]["extension"][0]["valueCode"], "unknown");
    assert_eq!(comp["author"][0]["extension"][0]["valueCode"], "unknown");
    assert_eq!(comp["type"]["extension"][0]["valueCode"], "unknown");
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.split(|&b| b == b'\n').count() - 1
}

/// An identifier root or code system that is not a UID (here: cut off and run into the text
/// after it) is refused with the element's path and line, not turned into a system URI with
/// spaces in it.
#[test]
fn roots_and_code_systems_must_be_uids() {
    let doc = |id: &str, code: &str| {
        format!(
            "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n<id {id}/>\n<code code=\"34133-9\" {code}/>\n\
             <recordTarget><patientRole><id root=\"2.16.840.1.113883.19.5\" extension=\"1\"/>\
             </patientRole></recordTarget></ClinicalDocument>"
        )
    };
    let err = convert(&doc(
        "root=\"1.3.6.1.4.1SUMMARIZATION OF EPISODE NOTE\"",
        "codeSystem=\"2.16.840.1.113883.6.1\"",
    ))
    .expect_err("root with spaces");
    assert_eq!(
        err,
        CcdaError::Invalid {
            path: "/ClinicalDocument/id".into(),
            line: 2,
            message: "root \"1.3.6.1.4.1SUMMARIZATION OF EPISODE NOTE\" is not a UID (an OID, UUID or RUID)".into(),
        }
    );
    let err = convert(&doc(
        "root=\"2.16.840.1.113883.19.5\"",
        "codeSystem=\"LOINC codes\"",
    ))
    .expect_err("code system with a space");
    assert!(
        matches!(&err, CcdaError::Invalid { path, line: 3, message } if path == "/ClinicalDocument/code" && message.starts_with("codeSystem \"LOINC codes\"")),
        "{err:?}"
    );
    // OIDs, UUIDs and RUIDs, with surrounding blanks, convert
    for id in [
        "root=\" 2.16.840.1.113883.19.5 \"",
        "root=\"1F8E2D6A-3B4C-4D5E-8F90-A1B2C3D4E5F6\"",
        "root=\"MyRuid-1\"",
    ] {
        convert(&doc(id, "codeSystem=\"2.16.840.1.113883.6.1\"")).unwrap();
    }
}
