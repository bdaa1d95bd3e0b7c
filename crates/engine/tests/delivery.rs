//! Ordered delivery on both stores: a destination that fails again and again, while messages
//! keep arriving, still gets every message exactly once and in the order they were accepted;
//! messages leased to an engine's ordered worker are delivered by the next engine of the
//! same node at once, also when the lease is long.
//!
//! The destination is a channel writer to a channel `out`: while `out` is not deployed, every
//! send fails with a retryable error, and once it is, each delivered message is stored in
//! `out`, whose ids increase in delivery order.
//!
//! PostgreSQL is reached at `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`; each test works in a schema of its own, dropped
//! at the end.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{ChannelConfig, Engine, EngineConfig};
use store::{AnyStore, Journal as _, MessageFilter, NewMessage, Queues as _, Status, Store as _};

mod common;
use common::Backend;

/// An engine of node `test` whose leases run `lease`.
fn engine(store: &Arc<AnyStore>, lease: Duration) -> Arc<Engine> {
    Engine::new(
        Arc::clone(store),
        EngineConfig {
            node: "test".into(),
            lease,
            idle_poll: Duration::from_millis(50),
        },
    )
}

/// Channel `in`: one ordered destination writing to channel `out`, small batches, quick
/// retries that never run out.
fn in_channel() -> ChannelConfig {
    let text = "[[destination]]\nname = \"to-out\"\n[destination.channel]\nname = \"out\"\n\
                [destination.queue]\nbatch = 7\ninitial_backoff = \"5ms\"\n\
                max_backoff = \"20ms\"\nmax_attempts = 1000000\n";
    ChannelConfig::parse(text, Path::new("channels/in.toml")).unwrap()
}

fn out_channel() -> ChannelConfig {
    ChannelConfig::parse("", Path::new("channels/out.toml")).unwrap()
}

fn hl7(control_id: &str) -> NewMessage {
    let raw = format!(
        "MSH|^~\\&|REG|HOSP|LAB|HOSP|20260101120000||ADT^A01|{control_id}|P|2.5.1\r\
         PID|1||{control_id}^^^HOSP^MR||DOE^JANE\r"
    );
    NewMessage::new("in", raw.into_bytes())
}

/// The control ids of `channel`'s messages, oldest first.
async fn control_ids(store: &AnyStore, channel: &str) -> Vec<String> {
    let f = MessageFilter {
        channel: Some(channel.into()),
        limit: Some(store::MAX_LIST_LIMIT),
        ..MessageFilter::default()
    };
    let mut found = store.list(&f).await.unwrap();
    found.sort_by_key(|m| m.id);
    found
        .into_iter()
        .map(|m| m.control_id.unwrap_or_default())
        .collect()
}

async fn wait_for(store: &AnyStore, channel: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let got = control_ids(store, channel).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {n} delivered",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While messages arrive one after another, the destination goes down and up again and
/// again: every message arrives once, in order, and each ends SENT.
async fn failing_destination_keeps_order_and_loses_nothing(b: Backend) {
    const N: usize = 300;
    let store = b.store().await;
    let engine = engine(&store, Duration::from_secs(30));
    engine.deploy(in_channel()).await.unwrap();
    let flapping = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            for round in 0..12u64 {
                tokio::time::sleep(Duration::from_millis(15 + 7 * (round % 3))).await;
                if round % 2 == 0 {
                    engine.deploy(out_channel()).await.unwrap();
                } else {
                    engine.undeploy("out").await.unwrap();
                }
            }
        })
    };
    let mut sent = Vec::new();
    let mut in_ids = Vec::new();
    for i in 0..N {
        let control_id = format!("M{i:04}");
        in_ids.push(engine.accept(hl7(&control_id)).await.unwrap());
        sent.push(control_id);
        if i % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    flapping.await.unwrap();
    engine.deploy(out_channel()).await.unwrap();
    let got = wait_for(&store, "out", N).await;
    assert_eq!(got, sent, "each message once, in the order accepted");
    for id in in_ids {
        let m = store.get(id).await.unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        let mut status = m.summary.status;
        while status != Status::Sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            status = store.get(id).await.unwrap().unwrap().summary.status;
        }
        assert_eq!(status, Status::Sent, "{id}");
    }
    let depth = store.queue_depth("in/1").await.unwrap();
    assert_eq!((depth.ready, depth.leased, depth.dead), (0, 0, 0));
    // nothing more arrives later (no duplicate sent after the end)
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(control_ids(&store, "out").await.len(), N);
    engine.shutdown().await;
    store.close().await.unwrap();
}

/// Messages accepted while the destination cannot deliver are leased to the ordered worker
/// of this node (on SQLite at arrival; on PostgreSQL, which hands nothing off, by the
/// worker's claims); after a restart, the next engine of the same node delivers them at once
/// and in order, although their lease (10 minutes) still runs.
async fn held_messages_are_delivered_by_the_next_engine_of_the_node(b: Backend) {
    const N: usize = 40;
    let store = b.store().await;
    let first = engine(&store, Duration::from_mins(10));
    first.deploy(in_channel()).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..N {
        let control_id = format!("H{i:04}");
        first.accept(hl7(&control_id)).await.unwrap();
        sent.push(control_id);
    }
    first.shutdown().await;
    let depth = store.queue_depth("in/1").await.unwrap();
    assert_eq!(depth.ready + depth.leased, N as u64, "all still queued");

    let second = engine(&store, Duration::from_mins(10));
    second.deploy(out_channel()).await.unwrap();
    second.deploy(in_channel()).await.unwrap();
    // and more while it delivers: they come after
    for i in N..N + 10 {
        let control_id = format!("H{i:04}");
        second.accept(hl7(&control_id)).await.unwrap();
        sent.push(control_id);
    }
    let got = wait_for(&store, "out", sent.len()).await;
    assert_eq!(got, sent);
    second.shutdown().await;
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failing_destination_keeps_order_and_loses_nothing() {
    failing_destination_keeps_order_and_loses_nothing(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failing_destination_keeps_order_and_loses_nothing() {
    failing_destination_keeps_order_and_loses_nothing(Backend::postgres("delivery")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_held_messages_are_delivered_by_the_next_engine_of_the_node() {
    held_messages_are_delivered_by_the_next_engine_of_the_node(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_held_messages_are_delivered_by_the_next_engine_of_the_node() {
    held_messages_are_delivered_by_the_next_engine_of_the_node(Backend::postgres("delivery")).await;
}
