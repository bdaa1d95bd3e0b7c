//! Snapshots (insta) of representative conversions, reviewed by hand: a CCD, a progress note,
//! the document whose problem section is empty, and the CCD written back from the latter.

mod common;

use ccda::{BundleType, CcdOptions, Options};
use serde_json::json;

fn snapshot_of(name: &str, bundle_type: BundleType) -> Option<serde_json::Value> {
    let bytes = common::sample(name)?;
    let conv = ccda::to_fhir(
        &bytes,
        &Options {
            bundle_type,
            ..Options::default()
        },
    )
    .expect("converts");
    let unmapped: Vec<String> = conv
        .unmapped
        .iter()
        .map(|u| format!("line {}: {} — {} ({})", u.line, u.path, u.what, u.reason))
        .collect();
    Some(json!({"bundle": conv.bundle, "unmapped": unmapped}))
}

#[test]
fn ambulatory_ccd() {
    if let Some(v) = snapshot_of("170.314B2_Amb_CCD.ccda", BundleType::Document) {
        insta::assert_json_snapshot!("ambulatory_ccd", v);
    }
}

#[test]
fn progress_note_as_transaction() {
    if let Some(v) = snapshot_of("Progress_Note.ccda", BundleType::Transaction) {
        insta::assert_json_snapshot!("progress_note_transaction", v);
    }
}

#[test]
fn empty_problems_document() {
    if let Some(v) = snapshot_of(
        "PROBLEMS_in_Empty_C-CDA_2.1-C-CDAR2.1.ccda",
        BundleType::Document,
    ) {
        insta::assert_json_snapshot!("empty_problems", v);
    }
}

#[test]
fn ccd_written_from_the_empty_problems_document() {
    let Some(bytes) = common::sample("PROBLEMS_in_Empty_C-CDA_2.1-C-CDAR2.1.ccda") else {
        return;
    };
    let conv = ccda::to_fhir(&bytes, &Options::default()).expect("converts");
    let resources = common::resources(&conv.bundle);
    let patient = resources
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .expect("patient");
    let opts = CcdOptions {
        effective_time: Some("2024-05-06T07:08:09-04:00".into()),
        custodian_oid: Some("2.16.840.1.113883.19.5".into()),
        ..CcdOptions::default()
    };
    let ccd = ccda::to_ccd(patient, &resources, &opts).expect("writes");
    insta::assert_snapshot!("empty_problems_ccd", ccd);
}
