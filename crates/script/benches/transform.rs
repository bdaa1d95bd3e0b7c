//! A transformer that rewrites three fields of a real-size ADT^A01, end to end: parse the
//! bytes, run the script, encode the result. The target is 10,000 messages/s.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use script::{Context, Data, DataType, Limits, Sandbox, ScriptKind, ScriptPool, ScriptSource};

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

/// The same work through a [`ScriptPool`] of two workers, 64 messages in flight from tokio
/// tasks, as the channel engine runs it.
fn pool(c: &mut Criterion) {
    const BATCH: usize = 64;
    let pool = Arc::new(
        ScriptPool::new(
            2,
            Limits::default(),
            vec![ScriptSource {
                name: "bench/transformer".into(),
                source: TRANSFORMER.into(),
                kind: ScriptKind::Transformer,
            }],
        )
        .expect("pool"),
    );
    let id = pool.script_id("bench/transformer").expect("id");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("adt_a01_three_fields_2_workers_64_in_flight", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..BATCH {
                    let pool = pool.clone();
                    tasks.spawn(async move {
                        let data = Data::parse(DataType::Hl7v2, ADT_A01).expect("parses");
                        let (cx, r) = pool.run(id, Context::new(data)).await;
                        r.expect("runs");
                        cx.data.encode().len()
                    });
                }
                while let Some(n) = tasks.join_next().await {
                    black_box(n.expect("task"));
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, transform, pool);
criterion_main!(benches);
