//! Criterion benchmarks of HL7 v2 → FHIR conversion (message bytes to a transaction Bundle,
//! as JSON bytes and as a `serde_json::Value`), for an ADT^A01 and an ORU^R01 with 30 OBX, beside two baselines measured in the
//! same run: parsing the same bytes with Plexus' own parser (`hl7v2`) and with the
//! `hl7-parser` crate (benchmark dependency only), reading one field. Run it on one core:
//! `taskset -c 0 cargo bench -p convert --bench convert`; the figures go to
//! docs/BENCHMARKS.md as ratios.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A typical admission: demographics, next of kin, visit, allergy, diagnosis.
const ADT_A01: &str = "MSH|^~\\&|ADT|GOOD HEALTH^2.16.840.1.113883.19.1^ISO|EHR|GOOD HEALTH|20260101120000+0100||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|20260101120000+0100\r\
PID|1||12345678^^^GHH&2.16.840.1.113883.19.2&ISO^MR~999-00-1111^^^SSA^SS||EVERYWOMAN^EVE^E^^MRS^^L||19620320|F|||2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA^H||^PRN^PH^^1^555^5552004~^NET^Internet^eve@example.org|^WPN^PH^^1^555^5553001||M||AC555444444^^^GHH^AN|444-33-3333\r\
NK1|1|NUCLEAR^NELDA^W|SPO^Spouse^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401-1020|^PRN^PH^^1^555^5552005||EC^Emergency contact^HL70131\r\
PV1|1|I|2000^2012^01^GHH||||004777^ATTEND^AARON^A^^^MD^^^^^^NPI|||SUR||||7|A0||||V1234^^^GHH^VN|||||||||||||||||||||||||20260101114500+0100\r\
AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives|20200101\r\
DG1|1||I10^Essential hypertension^I10|||A\r";

/// An ORU^R01 with one order and 30 numeric results (LOINC codes, units, ranges, flags).
fn oru_r01_30_obx() -> String {
    let mut m = String::from(
        "MSH|^~\\&|LAB|GOOD HEALTH^2.16.840.1.113883.19.3^ISO|EHR|GOOD HEALTH|20260101120000+0100||ORU^R01^ORU_R01|LAB00001|P|2.5.1\r\
PID|1||12345678^^^GHH&2.16.840.1.113883.19.2&ISO^MR||EVERYWOMAN^EVE^E||19620320|F\r\
PV1|1|O|LAB^^^GHH||||004777^ATTEND^AARON|||||||||||V1234^^^GHH^VN\r\
ORC|RE|ORD1^EHR^2.16.840.1.113883.19.4^ISO|FIL1^LAB^2.16.840.1.113883.19.3^ISO\r\
OBR|1|ORD1^EHR^2.16.840.1.113883.19.4^ISO|FIL1^LAB^2.16.840.1.113883.19.3^ISO|24323-8^Comprehensive metabolic panel^LN|||202601010800+0100|||||||||004777^ATTEND^AARON||||||202601011100+0100|||F\r",
    );
    for i in 1..=30 {
        let value = 40 + i * 3;
        let _ = write!(
            m,
            "OBX|{i}|NM|{}-{}^Analyte {i}^LN||{value}.{}|mg/dL^mg/dL^UCUM|40-120|{}|||F|||202601010800+0100\r",
            1000 + i * 7,
            i % 10,
            i % 10,
            if value > 120 { "H" } else { "N" }
        );
    }
    m
}

fn conversions(c: &mut Criterion) {
    let oru = oru_r01_30_obx();
    for (name, text) in [("adt_a01", ADT_A01.to_owned()), ("oru_r01_30obx", oru)] {
        let bytes = text.as_bytes().to_vec();
        let opts = convert::Options::default();
        // the fixture must convert
        let out = convert::convert_bytes(&bytes, &opts).expect("fixture converts");
        assert!(out.bundle["entry"].as_array().is_some_and(|e| e.len() > 2));
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("plexus convert to Bundle JSON bytes", |b| {
            b.iter(|| {
                let out =
                    convert::convert_bytes_to_json(black_box(&bytes), &opts).expect("convert");
                black_box(out.json);
            });
        });
        g.bench_function("plexus convert to Bundle Value", |b| {
            b.iter(|| {
                let out = convert::convert_bytes(black_box(&bytes), &opts).expect("convert");
                black_box(out.bundle);
            });
        });
        g.bench_function("plexus parse only (hl7v2)", |b| {
            b.iter(|| {
                let msg = hl7v2::Message::parse(black_box(&bytes)).expect("parse");
                black_box(msg.get("PID-3-1").ok().flatten().map(|e| e.raw()));
            });
        });
        g.bench_function("hl7-parser parse only", |b| {
            b.iter(|| {
                let msg = hl7_parser::Message::parse_with_lenient_newlines(black_box(&text), true)
                    .expect("parse");
                black_box(msg.query("PID.3.1").map(|r| r.raw_value()));
            });
        });
        g.finish();
    }
}

criterion_group!(benches, conversions);
criterion_main!(benches);
