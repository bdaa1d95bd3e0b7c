//! Criterion benchmarks: parse one message and read PID-3-1, PID-5-1 and MSH-10, for Plexus and
//! the two most-used HL7 v2 crates (benchmark dependencies only). Inputs come from
//! `bench/make_inputs.py` (run here if `target/bench-inputs` lacks them). The cross-peer
//! comparison with Python peers and peak memory is `bench/compare.py`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v2::Message;

fn input(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("target/bench-inputs");
    let path = dir.join(name);
    if !path.exists() {
        let status = std::process::Command::new("python3")
            .arg(root.join("bench/make_inputs.py"))
            .arg(&dir)
            .status()
            .expect("run bench/make_inputs.py");
        assert!(status.success(), "bench/make_inputs.py failed");
    }
    std::fs::read(&path).expect("bench input")
}

fn parse_and_read(c: &mut Criterion) {
    for name in ["adt_a01.hl7", "oru_r01.hl7"] {
        let bytes = input(name);
        let text = String::from_utf8(bytes.clone()).expect("ascii input");
        let mut g = c.benchmark_group(name.trim_end_matches(".hl7"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("plexus", |b| {
            b.iter(|| {
                let msg = Message::parse(black_box(&bytes)).expect("parse");
                let a = msg.get("PID-3-1").ok().flatten().map(|e| e.raw());
                let n = msg.get("PID-5-1").ok().flatten().map(|e| e.raw());
                let c = msg.get("MSH-10").ok().flatten().map(|e| e.raw());
                black_box((a, n, c));
            });
        });
        g.bench_function("hl7-parser", |b| {
            b.iter(|| {
                let msg = hl7_parser::Message::parse_with_lenient_newlines(black_box(&text), true)
                    .expect("parse");
                let a = msg.query("PID.3.1").map(|r| r.raw_value());
                let n = msg.query("PID.5.1").map(|r| r.raw_value());
                let c = msg.query("MSH.10").map(|r| r.raw_value());
                black_box((a, n, c));
            });
        });
        let trimmed = text.trim_end_matches(['\r', '\n']);
        g.bench_function("rust-hl7", |b| {
            b.iter(|| {
                let msg = rusthl7::message::Message::try_from(black_box(trimmed)).expect("parse");
                black_box((
                    msg.query("PID.F3.R1.C1"),
                    msg.query("PID.F5.R1.C1"),
                    msg.query("MSH.F9"),
                ));
            });
        });
        g.finish();
    }
}

criterion_group!(benches, parse_and_read);
criterion_main!(benches);
