//! ScriptPool: worker threads behind a `Send + Sync` handle, used from tokio.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{adt, segment};
use script::{
    Context, Data, Limits, Outcome, ScriptErrorKind, ScriptKind, ScriptPool, ScriptSource,
};

fn source(name: &str, source: &str, kind: ScriptKind) -> ScriptSource {
    ScriptSource {
        name: name.into(),
        source: source.into(),
        kind,
    }
}

fn scripts() -> Vec<ScriptSource> {
    vec![
        source(
            "adt/filter",
            "return msg.get('MSH-9-1') === 'ADT';",
            ScriptKind::Filter,
        ),
        source(
            "adt/transformer",
            "msg.set('PID-5-1', channelMap.name);\nchannelMap.done = channelMap.name;",
            ScriptKind::Transformer,
        ),
        source("spin", "while (true) {}", ScriptKind::Transformer),
    ]
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 16 << 20,
        time: Duration::from_millis(200),
    }
}

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<ScriptPool>();

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_the_pool() {
    let pool = Arc::new(ScriptPool::new(2, limits(), scripts()).unwrap());
    assert_eq!(pool.threads(), 2);
    let filter = pool.script_id("adt/filter").unwrap();
    let transformer = pool.script_id("adt/transformer").unwrap();
    assert_eq!(
        pool.ids().collect::<Vec<_>>(),
        [filter, transformer, pool.script_id("spin").unwrap()]
    );
    assert_eq!(pool.name(transformer), Some("adt/transformer"));

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (cx, r) = pool.run(filter, Context::new(adt())).await;
                assert_eq!(r.unwrap(), Outcome::Accept);
                let mut cx = Context {
                    data: cx.data,
                    ..Context::new(Data::Raw(String::new()))
                };
                cx.channel_map
                    .insert("name".into(), format!("PATIENT{i}").into());
                let (cx, r) = pool.run(transformer, cx).await;
                assert_eq!(r.unwrap(), Outcome::Accept);
                assert_eq!(cx.channel_map["done"], format!("PATIENT{i}"));
                assert!(segment(&cx.data, "PID").contains(&format!("|PATIENT{i}^ALPHA^")));
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_script_does_not_stop_the_others() {
    let pool = Arc::new(ScriptPool::new(2, limits(), scripts()).unwrap());
    let spin = pool.script_id("spin").unwrap();
    let filter = pool.script_id("adt/filter").unwrap();
    let spinning: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(spin, Context::new(adt())).await })
        })
        .collect();
    for _ in 0..20 {
        let (_, r) = pool.run(filter, Context::new(adt())).await;
        assert_eq!(r.unwrap(), Outcome::Accept);
    }
    for t in spinning {
        let (cx, r) = t.await.unwrap();
        assert_eq!(r.unwrap_err().kind, ScriptErrorKind::Timeout);
        assert_eq!(cx.data, adt());
    }
}

#[test]
fn compile_errors_are_reported_at_creation() {
    let mut list = scripts();
    list.push(source(
        "broken",
        "var ok = 1;\nvar bad = ;",
        ScriptKind::Filter,
    ));
    let e = ScriptPool::new(2, limits(), list).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Compile);
    assert_eq!(e.script, "broken");
    assert_eq!(e.line, Some(2));
}

#[tokio::test]
async fn unknown_ids_are_refused() {
    let pool = ScriptPool::new(1, limits(), vec![]).unwrap();
    let other = ScriptPool::new(1, limits(), scripts()).unwrap();
    let id = other.script_id("spin").unwrap();
    let (cx, r) = pool.run(id, Context::new(adt())).await;
    assert_eq!(r.unwrap_err().kind, ScriptErrorKind::Api);
    assert_eq!(cx.data, adt());
}

fn script_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| {
        d.flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("plexus-script"))
            })
            .count()
    })
}

#[test]
fn dropping_the_pool_stops_its_threads() {
    let before = script_threads();
    let pool = ScriptPool::new(3, limits(), scripts()).unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(script_threads(), before + 3);
    }
    drop(pool);
    assert_eq!(script_threads(), before);
}
