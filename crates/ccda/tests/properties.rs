//! Property tests: no input makes the converters panic; mutated documents that still convert
//! give valid FHIR; any patient text survives a trip through a CCD.

mod common;

use ccda::{CcdOptions, Options};
use proptest::prelude::*;
use serde_json::{Value, json};

const SMALL: &str = r##"<?xml version="1.0"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sdtc="urn:hl7-org:sdtc">
<id root="1.2.3" extension="d1"/><code code="34133-9" codeSystem="2.16.840.1.113883.6.1"/>
<effectiveTime value="20240102101112-0500"/>
<recordTarget><patientRole><id root="1.2.3.4" extension="p1"/><addr use="H"><streetAddressLine>1 Main</streetAddressLine><city>X</city></addr>
<telecom value="tel:+1-555" use="HP"/><patient><name><given>A</given><family>B</family></name>
<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/><birthTime value="19800101"/>
<raceCode code="2106-3" codeSystem="2.16.840.1.113883.6.238"/></patient></patientRole></recordTarget>
<author><time value="20240102"/><assignedAuthor><id root="2.16.840.1.113883.4.6" extension="1"/><assignedPerson><name><family>D</family></name></assignedPerson></assignedAuthor></author>
<component><structuredBody><component><section><templateId root="2.16.840.1.113883.10.20.22.2.5.1"/><code code="11450-4" codeSystem="2.16.840.1.113883.6.1"/>
<title>Problems</title><text><paragraph ID="p1">Asthma &amp; more</paragraph></text>
<entry><act classCode="ACT" moodCode="EVN"><statusCode code="active"/><entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN">
<effectiveTime><low value="2001"/><high value="200305"/></effectiveTime>
<value xsi:type="CD" code="195967001" codeSystem="2.16.840.1.113883.6.96"><originalText><reference value="#p1"/></originalText></value></observation></entryRelationship></act></entry>
</section></component>
<component><section><templateId root="2.16.840.1.113883.10.20.22.2.3.1"/><code code="30954-2" codeSystem="2.16.840.1.113883.6.1"/><title>Results</title>
<entry><organizer classCode="BATTERY" moodCode="EVN"><statusCode code="completed"/><component><observation classCode="OBS" moodCode="EVN">
<code code="2345-7" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/><effectiveTime value="202401021011"/>
<value xsi:type="PQ" value="95" unit="mg/dL"/><referenceRange><observationRange><value xsi:type="IVL_PQ"><low value="70" unit="mg/dL"/><high value="99" unit="mg/dL"/></value></observationRange></referenceRange>
</observation></component></organizer></entry></section></component>
</structuredBody></component></ClinicalDocument>"##;

fn base_document() -> Vec<u8> {
    common::sample("170.314B2_Amb_CCD.ccda").unwrap_or_else(|| SMALL.as_bytes().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = ccda::to_fhir(&bytes, &Options::default());
    }

    #[test]
    fn xml_like_text_never_panics(text in "(<[a-zA-Z:]{1,12}( [a-z:]{1,6}=\"[^\"<]{0,8}\")*/?>|</[a-zA-Z:]{1,12}>|[^<]{0,10}|&[a-z#0-9]{1,5};){0,60}") {
        let _ = ccda::to_fhir(text.as_bytes(), &Options::default());
        let doc = format!("<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><recordTarget><patientRole>{text}</patientRole></recordTarget></ClinicalDocument>");
        if let Ok(conv) = ccda::to_fhir(doc.as_bytes(), &Options::default()) {
            prop_assert!(common::validation_errors(&conv.bundle).is_empty(), "{:#?}", common::validation_errors(&conv.bundle));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Cuts, repeats or overwrites a part of a real document: it fails with an error or gives
    /// a Bundle the validator accepts.
    #[test]
    fn mutated_documents_error_or_stay_valid(at in 0u32..1000, len in 0usize..400, op in 0u8..3, fill in "[ -~]{0,40}") {
        let doc = base_document();
        let start = doc.len() * at as usize / 1000;
        let end = (start + len).min(doc.len());
        let mut m = doc[..start].to_vec();
        match op {
            0 => {}
            1 => { m.extend_from_slice(&doc[start..end]); m.extend_from_slice(&doc[start..end]); }
            _ => m.extend_from_slice(fill.as_bytes()),
        }
        m.extend_from_slice(&doc[end..]);
        if let Ok(conv) = ccda::to_fhir(&m, &Options::default()) {
            prop_assert!(common::validation_errors(&conv.bundle).is_empty(), "{:#?}", common::validation_errors(&conv.bundle));
        }
    }

    /// Names, addresses and identifiers with any text (XML specials, non-ASCII) survive
    /// FHIR → CCD → FHIR.
    #[test]
    fn patient_text_survives_a_ccd(family in "[^\u{0}-\u{1f}\u{7f}\u{fffe}\u{ffff}]{1,30}", given in "[A-Za-zÀ-ÿ'&<>\" -]{1,20}", city in "[^\u{0}-\u{1f}]{1,20}", mrn in "[A-Za-z0-9<>&.-]{1,12}") {
        let family = family.split_whitespace().collect::<Vec<_>>().join(" ");
        let given = given.split_whitespace().collect::<Vec<_>>().join(" ");
        let city = city.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assume!(!family.is_empty() && !given.is_empty() && !city.is_empty());
        let patient = json!({"resourceType": "Patient", "id": "p",
            "identifier": [{"system": "urn:oid:1.2.3", "value": mrn}],
            "name": [{"family": family, "given": [given]}],
            "address": [{"city": city}], "gender": "other", "birthDate": "2001-02"});
        let ccd = ccda::to_ccd(&patient, &[], &CcdOptions { effective_time: Some("2024-01-01".into()), ..CcdOptions::default() }).expect("writes");
        prop_assert!(roxmltree::Document::parse(&ccd).is_ok());
        let back = ccda::to_fhir(ccd.as_bytes(), &Options::default()).expect("reads back");
        let p = common::resources(&back.bundle).into_iter().find(|r| r["resourceType"] == "Patient").expect("patient");
        prop_assert_eq!(&p["name"][0]["family"], &Value::String(family));
        prop_assert_eq!(&p["name"][0]["given"][0], &Value::String(given));
        prop_assert_eq!(&p["address"][0]["city"], &Value::String(city));
        prop_assert_eq!(&p["identifier"][0]["value"], &Value::String(mrn));
        prop_assert_eq!(&p["birthDate"], &json!("2001-02"));
        prop_assert_eq!(&p["gender"], &json!("other"));
    }

    /// Arbitrary JSON as resources never panics the CCD writer.
    #[test]
    fn arbitrary_resources_never_panic(values in proptest::collection::vec(arb_json(), 0..6)) {
        let resources: Vec<Value> = values.into_iter().enumerate().map(|(i, mut v)| {
            if let Value::Object(m) = &mut v {
                let types = ["Condition", "Observation", "AllergyIntolerance", "MedicationStatement", "Immunization", "Procedure", "Encounter", "DiagnosticReport"];
                m.insert("resourceType".into(), json!(types[i % types.len()]));
            }
            v
        }).collect();
        let patient = json!({"resourceType": "Patient", "id": "p"});
        if let Ok(ccd) = ccda::to_ccd(&patient, &resources, &CcdOptions { effective_time: Some("2024".into()), ..CcdOptions::default() }) {
            prop_assert!(roxmltree::Document::parse(&ccd).is_ok());
            prop_assert!(ccda::to_fhir(ccd.as_bytes(), &Options::default()).is_ok());
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("code".to_owned()),
        Just("coding".to_owned()),
        Just("system".to_owned()),
        Just("status".to_owned()),
        Just("valueQuantity".to_owned()),
        Just("value".to_owned()),
        Just("effectiveDateTime".to_owned()),
        Just("effectivePeriod".to_owned()),
        Just("category".to_owned()),
        Just("text".to_owned()),
        Just("id".to_owned()),
        Just("reaction".to_owned()),
        Just("manifestation".to_owned()),
        Just("component".to_owned()),
        Just("result".to_owned()),
        Just("reference".to_owned()),
        Just("dosage".to_owned()),
        Just("period".to_owned()),
        "[a-z]{1,8}".prop_map(|s| s),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!("http://loinc.org")),
        Just(json!("2024-01-02T03:04:05Z")),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
