//! A transformer that rewrites three fields of a real-size ADT^A01, end to end: parse the
//! bytes, run the script, encode the result. The target is 10,000 messages/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use script::{Context, Data, DataType, Limits, Sandbox, ScriptKind};

const ADT_A01: &[u8] = include_bytes!("../../hl7v2/tests/fixtures/adt_a01.hl7");

const TRANSFORMER: &str = r#"
msg.set("PID-5-1", msg.get("PID-5-1").toLowerCase());
msg.set("MSH-3", "PLEXUS");
msg.set("PV1-3-1", "WARD-" + msg.get("PV1-3-2"));
"#;

fn transform(c: &mut Criterion) {
    let mut sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let id = sandbox
        .compile("bench/transformer", TRANSFORMER, ScriptKind::Transformer)
        .expect("compiles");
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(1));
    group.bench_function("adt_a01_three_fields_end_to_end", |b| {
        b.iter(|| {
            let data = Data::parse(DataType::Hl7v2, black_box(ADT_A01)).expect("parses");
            let mut cx = Context::new(data);
            sandbox.run(id, &mut cx).expect("runs");
            black_box(cx.data.encode())
        });
    });
    let empty = sandbox
        .compile("bench/empty", "", ScriptKind::Transformer)
        .expect("compiles");
    let mut cx = Context::new(Data::parse(DataType::Hl7v2, ADT_A01).expect("parses"));
    group.bench_function("empty_script_run_overhead", |b| {
        b.iter(|| sandbox.run(empty, black_box(&mut cx)).expect("runs"));
    });
    group.finish();
}

criterion_group!(benches, transform);
criterion_main!(benches);
