//! Properties: the same message always gives the same bytes; arbitrary and mutated messages
//! never panic, and whatever converts is valid FHIR R4.

mod common;

use convert::{Options, convert_bytes};
use proptest::prelude::*;

const SEEDS: &[&[u8]] = &[
    b"MSH|^~\\&|ADT|HOSP^1.2.3^ISO|EHR|HOSP|20260101120000+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rEVN|A01|20260101120000\rPID|1||12345^^^HOSP&1.2.3&ISO^MR~999-00-1111^^^SSA^SS||DOE^JANE^Q^^DR||19800101|F|||1 MAIN ST^^TOWN^ST^12345^USA^H||^PRN^PH^^1^555^1234567~^NET^Internet^jane@example.org|||M|||AC1^^^HOSP^AN\rNK1|1|DOE^JOHN|SPO|2 MAIN ST^^TOWN|^PRN^PH^^^555^7654321\rPV1|1|I|W1^101^A^HOSP||||1234^SMITH^ALAN^^^DR|||MED||||7|||||V42^^^HOSP^VN|||||||||||||||||||||||||20260101110000\rAL1|1|DA|70618^Penicillin^RXNORM|SV|Hives|20200101\rDG1|1||I10^Hypertension^I10|||A\rZPI|custom|data\r",
    b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|202601011200+0000||ORU^R01^ORU_R01|L1|P|2.5.1\rPID|1||777^^^LAB^MR||ROE^RICHARD||19700202|M\rORC|RE|P1^EHR|F1^LAB\rOBR|1|P1^EHR|F1^LAB|24331-1^Lipid panel^LN|||202601010800|||||||||||||||202601011100|||F\rOBX|1|NM|2093-3^Cholesterol^LN||180|mg/dL^mg/dL^UCUM|<200|N|||F\rOBX|2|SN|2085-9^HDL^LN||>^60|mg/dL|40-60|H|||F\rNTE|1||fasting\rOBX|3|ST|X^Comment^L||all good||||||F\rOBX|4|ED|PDF^Report^L||^application^pdf^Base64^SGVsbG8=||||||F\rSPM|1|S1^LAB||119297000^Blood^SCT|||||||||||||202601010800\r",
    b"MSH|^~\\&|SCH|HOSP|EHR|HOSP|20260101120000+0100||SIU^S12^SIU_S12|S1|P|2.5.1\rSCH|A1^SCH|F1^SCH|||||||30|min|^^^202601021000+0100^202601021030+0100|||||||||||||Booked\rPID|1||12345^^^HOSP^MR||DOE^JANE\rAIP|1||1234^SMITH^ALAN|ATT^Attending||202601021000+0100|||||Booked\rNTE|1||bring films\r",
    b"MSH|^~\\&|IZ|HOSP|IIS|STATE|20260101120000-0500||VXU^V04^VXU_V04|V1|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^BABY||20250601|M\rORC|RE||IZ1^HOSP\rRXA|0|1|20260101||08^HepB^CVX|0.5|mL^mL^UCUM||00^New^NIP001|||||||LOT1|20270101|MSD^Merck^MVX|||CP|A\rRXR|C28161^IM^NCIT|LD^Left deltoid^HL70163\rOBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F\r",
    b"MSH|^~\\&|DOC|HOSP|EHR|HOSP|20260101120000+0100||MDM^T02^MDM_T02|D1|P|2.5.1\rEVN|T02|20260101120000\rPID|1||12345^^^HOSP^MR||DOE^JANE\rPV1|1|O\rTXA|1|DS|TX|20260101110000||||||||DOC1^HOSP||||||AU\rOBX|1|TX|11506-3^Note^LN||line one||||||F\rOBX|2|TX|11506-3^Note^LN||line two||||||F\r",
    b"MSH|^~\\&|FIN|HOSP|EHR|HOSP|20260101120000+0100||DFT^P03^DFT_P03|F1|P|2.5.1\rEVN|P03|20260101120000\rPID|1||12345^^^HOSP^MR||DOE^JANE|||||||||||AC9^^^HOSP^AN\rPV1|1|O\rFT1|1|T100||20260101|20260101|CG|99213^Office visit^C4|||1|75.00&USD\r",
    b"MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101120000+0100||ADT^A40^ADT_A39|M1|P|2.5.1\rEVN|A40|20260101120000\rPID|1||12345^^^HOSP^MR||DOE^JANE\rMRG|999^^^HOSP^MR\r",
];

#[test]
fn same_message_same_bytes() {
    let mut inputs: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
    if let Some(files) = common::corpus() {
        inputs.extend(files.into_iter().map(|(_, raw)| raw));
    }
    for raw in &inputs {
        let a = convert_bytes(raw, &Options::default());
        let b = convert_bytes(raw, &Options::default());
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (
                    serde_json::to_vec(&a.bundle).expect("json"),
                    serde_json::to_vec(&b.bundle).expect("json"),
                );
                assert_eq!(a, b, "two conversions differ");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("one conversion failed, the other did not"),
        }
    }
}

#[test]
fn seeds_convert_and_validate() {
    for raw in SEEDS {
        let out = convert_bytes(raw, &Options::default()).expect("seed converts");
        let errors = common::validation_errors(&out.bundle);
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[test]
fn race_codes_are_single_spaced_codes() {
    // found by the mutation property: an address shifted into PID-10 by a lost `|`, with a
    // run of two spaces, became a race `valueCoding.code` FHIR refuses
    let raw = b"MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101120000+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F||1  AIN ST^^TOWN~ 2106-3 ^White\r";
    let out = convert_bytes(raw, &Options::default()).expect("converts");
    let errors = common::validation_errors(&out.bundle);
    assert!(errors.is_empty(), "{errors:?}");
    let json = serde_json::to_string(&out.bundle).expect("json");
    assert!(json.contains(r#""code":"1 AIN ST""#), "{json}");
    assert!(
        json.contains(r#""code":"2106-3","display":"White""#),
        "{json}"
    );
}

/// A seed with some bytes replaced, inserted or removed (delimiters are favoured, since they
/// move content between fields).
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(b'|'),
        Just(b'^'),
        Just(b'~'),
        Just(b'&'),
        Just(b'\\'),
        Just(b'\r'),
        Just(b'"'),
        any::<u8>(),
        (b'0'..=b'9'),
    ];
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, byte), 1..12),
    )
        .prop_map(|(seed, edits)| {
            let mut m = SEEDS[seed].to_vec();
            for (at, kind, b) in edits {
                if m.is_empty() {
                    break;
                }
                let i = at.index(m.len());
                match kind {
                    0 => m[i] = b,
                    1 => m.insert(i, b),
                    _ => {
                        m.remove(i);
                    }
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic_and_convert_to_valid_fhir(raw in mutated()) {
        if let Ok(out) = convert_bytes(&raw, &Options::default()) {
            let errors = common::validation_errors(&out.bundle);
            prop_assert!(errors.is_empty(), "{:?}\n{}", errors, String::from_utf8_lossy(&raw));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut raw = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|".to_vec();
        raw.extend_from_slice(&tail);
        let _ = convert_bytes(&raw, &Options::default());
        let _ = convert_bytes(&tail, &Options::default());
    }
}
