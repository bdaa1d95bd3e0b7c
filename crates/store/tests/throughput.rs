//! Rough append throughput with many concurrent appenders, for each backend. Ignored by
//! default: a measurement, not an assertion. Run with
//! `cargo nextest run -p store --release --run-ignored only --no-capture -E 'binary(throughput)'`.
//! `PLEXUS_BENCH_TASKS` and `PLEXUS_BENCH_PER_TASK` change the load (default 50 × 200).

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, Postgres, Sqlite, adt};
use store::{Journal, Queues, Store};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Appends from many tasks at once (each message ~1 KB, one metadata pair, one queue item),
/// then drains the queue with 4 workers, and prints the rates.
async fn measure<B: Backend>(name: &str) {
    let tasks = setting("PLEXUS_BENCH_TASKS", 50);
    let per_task = setting("PLEXUS_BENCH_PER_TASK", 200);
    let backend = B::create().await;
    let store = Arc::new(backend.open().await.unwrap());
    let padding = "OBX|1|TX|NOTE||".to_owned() + &"x".repeat(900) + "\r";

    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        let padding = padding.clone();
        handles.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..per_task {
                let mut m = adt("bench", &format!("{t}-{i}"), &i.to_string()).enqueue_to("out", 1);
                m.raw.extend_from_slice(padding.as_bytes());
                let one = Instant::now();
                store.append(m).await.unwrap();
                slowest = slowest.max(one.elapsed());
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for h in handles {
        slowest = slowest.max(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    let total = tasks * per_task;
    println!(
        "{name}: {total} appends by {tasks} tasks in {:.2} s = {:.0} appends/s; \
         {} commits, {:.1} appends per commit; slowest append {:.1} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        stats.commits,
        stats.items as f64 / stats.commits.max(1) as f64,
        slowest.as_secs_f64() * 1000.0,
    );

    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = Arc::clone(&store);
        workers.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut done = 0usize;
            loop {
                let items = store
                    .claim("out", &owner, Duration::from_mins(1), 50)
                    .await
                    .unwrap();
                if items.is_empty() {
                    return done;
                }
                for item in items {
                    store.ack(item.id, &owner).await.unwrap();
                    done += 1;
                }
            }
        }));
    }
    let mut drained = 0;
    for w in workers {
        drained += w.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{name}: drained {drained} queue items (claim 50 + ack each) by 4 workers in {:.2} s = {:.0} items/s",
        elapsed.as_secs_f64(),
        drained as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(drained, total);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run on demand"]
async fn sqlite_append_throughput() {
    measure::<Sqlite>("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run on demand"]
async fn postgres_append_throughput() {
    measure::<Postgres>("postgres").await;
}
