//! Snapshot tests (insta) of the conversion of representative corpus messages: the Bundle and
//! the unmapped-content report. Reviewed against the IG's segment maps; see docs/convert.md.

mod common;

use convert::{Options, convert_bytes};
use serde_json::{Value, json};

const SAMPLES: &[&str] = &[
    "ADT-A01-01.hl7",
    "ADT-A08-01.hl7",
    "ADT-A40-01.hl7",
    "ORU-R01-RMGEAD.hl7",
    "ORM-O01-02.hl7",
    "SIU-S12-01.hl7",
    "MDM-T02-01.hl7",
    "VXU-V04-01.hl7",
    "DFT-P03-02.hl7",
];

#[test]
fn representative_conversions() {
    let Some(files) = common::corpus() else {
        return;
    };
    for name in SAMPLES {
        let (_, raw) = files
            .iter()
            .find(|(n, _)| n == name)
            .expect("sample in corpus");
        let out = convert_bytes(raw, &Options::default()).expect("converts");
        let unmapped: Vec<String> = out.unmapped.iter().map(ToString::to_string).collect();
        let snapshot: Value = json!({ "bundle": out.bundle, "unmapped": unmapped });
        insta::assert_json_snapshot!(name.trim_end_matches(".hl7"), snapshot);
    }
}
