//! Retention on both stores: `max_messages` deletes exactly the oldest messages, archives each
//! one (gzip NDJSON with its received bytes) before deleting it, never touches a message still
//! waiting in a queue, and does not hold up messages arriving while it runs.
//!
//! PostgreSQL is reached at `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`; each test works in a schema of its own, dropped
//! at the end.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{ChannelConfig, Engine, EngineConfig};
use serde_json::Value;
use store::{AnyStore, Journal as _, MessageFilter, MessageId, NewMessage, Status, Store as _};

mod common;
use common::Backend;

/// The retention suites' engine and channel files, in the test's directory.
impl Backend {
    async fn engine(&self) -> (Arc<AnyStore>, Arc<Engine>) {
        let store = self.store().await;
        let engine = Engine::new(
            Arc::clone(&store),
            EngineConfig {
                node: "test".into(),
                lease: Duration::from_secs(30),
                idle_poll: Duration::from_millis(50),
            },
        );
        (store, engine)
    }

    /// Writes a channel file and deploys it.
    async fn deploy(&self, engine: &Engine, name: &str, text: &str) {
        let file = self.path(&format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        engine
            .deploy(ChannelConfig::load(&file).unwrap())
            .await
            .unwrap();
    }
}

fn hl7(control_id: &str) -> NewMessage {
    let raw = format!(
        "MSH|^~\\&|REG|HOSP|LAB|HOSP|20260101120000||ADT^A01|{control_id}|P|2.5.1\r\
         PID|1||{control_id}^^^HOSP^MR||DOE^JANE\r"
    );
    let mut m = NewMessage::new("ret", raw.into_bytes());
    m.message_type = Some("ADT".into());
    m.trigger_event = Some("A01".into());
    m.control_id = Some(control_id.into());
    m
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lines of a gzip NDJSON archive, parsed.
fn archive_lines(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(&[0x1f, 0x8b]),
        "not gzip: {}",
        path.display()
    );
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]));
    reader
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("each line is one JSON object"))
        .collect()
}

async fn ids_of(store: &AnyStore) -> BTreeSet<MessageId> {
    let f = MessageFilter {
        channel: Some("ret".into()),
        limit: Some(store::MAX_LIST_LIMIT),
        ..MessageFilter::default()
    };
    store.list(&f).await.unwrap().iter().map(|m| m.id).collect()
}

/// 3 messages held in a paused destination's queue, then 25 delivered ones; `max_messages =
/// 10` deletes the 15 oldest delivered ones (the held ones count among the kept but are
/// kept), archiving each first; once the held ones are delivered, they go too.
async fn keeps_the_newest_and_archives_the_rest(b: Backend) {
    let (store, engine) = b.engine().await;
    let archive_dir = b.path("archive");
    b.deploy(
        &engine,
        "ret",
        &format!(
            r#"
            [[destination]]
            name = "out"
            [destination.file]
            directory = "{out}"

            [[destination]]
            name = "held"
            [[destination.filter]]
            type = "field"
            path = "MSH-10"
            starts_with = "HOLD"
            [destination.file]
            directory = "{held}"

            [retention]
            max_messages = 10
            archive_dir = "{archive}"
            "#,
            out = b.path("out").display(),
            held = b.path("held").display(),
            archive = archive_dir.display(),
        ),
    )
    .await;
    engine.pause_destination("ret", "held", true).unwrap();
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(engine.accept(hl7(&format!("HOLD{n}"))).await.unwrap());
    }
    let mut sent = Vec::new();
    let mut raw = std::collections::HashMap::new();
    for n in 0..25 {
        let m = hl7(&format!("M{n:02}"));
        let bytes = String::from_utf8(m.raw.clone()).unwrap();
        let id = engine.accept(m).await.unwrap();
        raw.insert(id.to_string(), bytes);
        sent.push(id);
    }
    let s = Arc::clone(&store);
    let (held_c, sent_c) = (held.clone(), sent.clone());
    wait_until("every message to be processed", || {
        let (s, held, sent) = (Arc::clone(&s), held_c.clone(), sent_c.clone());
        async move {
            for id in &sent {
                if s.get(*id).await.unwrap().unwrap().summary.status != Status::Sent {
                    return false;
                }
            }
            for id in &held {
                let m = s.get(*id).await.unwrap().unwrap();
                let out_sent = m.destination(1).is_some_and(|d| d.status == Status::Sent);
                let waiting = m.destination(2).is_some_and(|d| d.status == Status::Queued);
                if !(out_sent && waiting) {
                    return false;
                }
            }
            true
        }
    })
    .await;

    let ch = engine.channel("ret").unwrap();
    let report = engine.prune("ret", &ch.config.retention).await.unwrap();
    assert_eq!((report.deleted, report.archived), (15, 15), "{report:?}");
    let expected_left: BTreeSet<MessageId> = held.iter().chain(&sent[15..]).copied().collect();
    assert_eq!(
        ids_of(&store).await,
        expected_left,
        "the 15 oldest delivered ones went"
    );
    for id in &sent[..15] {
        assert!(store.get(*id).await.unwrap().is_none());
    }

    let archive = report.archive.expect("an archive file");
    assert!(archive.starts_with(&archive_dir), "{}", archive.display());
    let lines = archive_lines(&archive);
    assert_eq!(lines.len(), 15, "one line per deleted message");
    let archived: Vec<String> = lines
        .iter()
        .map(|l| l["summary"]["id"].as_str().unwrap().to_owned())
        .collect();
    let deleted: Vec<String> = sent[..15].iter().map(ToString::to_string).collect();
    assert_eq!(archived, deleted, "oldest first");
    for l in &lines {
        let id = l["summary"]["id"].as_str().unwrap();
        let received = l["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["destination"] == 0 && c["stage"] == "RAW")
            .unwrap_or_else(|| panic!("no RAW content for {id}: {l}"));
        assert_eq!(received["encoding"], "text");
        assert_eq!(
            received["data"],
            raw[id].as_str(),
            "the received bytes of {id}"
        );
        assert_eq!(l["summary"]["channel"], "ret");
        assert_eq!(l["summary"]["status"], "SENT");
        assert!(
            l["destinations"].is_array() && l["metadata"].is_array(),
            "{l}"
        );
    }

    // nothing more to delete: no second, empty archive
    let again = engine.prune("ret", &ch.config.retention).await.unwrap();
    assert_eq!(
        (again.deleted, again.archive.is_none()),
        (0, true),
        "{again:?}"
    );
    assert_eq!(std::fs::read_dir(&archive_dir).unwrap().count(), 1);

    // delivered now, the held messages (the oldest) are beyond the newest 10
    engine.pause_destination("ret", "held", false).unwrap();
    let s = Arc::clone(&store);
    wait_until("the held messages to be delivered", || {
        let (s, held) = (Arc::clone(&s), held.clone());
        async move {
            for id in &held {
                if s.get(*id).await.unwrap().unwrap().summary.status != Status::Sent {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let report = engine.prune("ret", &ch.config.retention).await.unwrap();
    assert_eq!(report.deleted, 3, "{report:?}");
    let lines = archive_lines(&report.archive.unwrap());
    let archived: BTreeSet<String> = lines
        .iter()
        .map(|l| l["summary"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(archived, held.iter().map(ToString::to_string).collect());
    assert_eq!(ids_of(&store).await, sent[15..].iter().copied().collect());
    engine.shutdown().await;
    store.close().await.unwrap();
}

/// A backlog of 5,000 messages is pruned while four senders add 500 more: every append
/// succeeds, and deleted plus kept is everything that was stored.
async fn pruning_does_not_hold_up_ingest(b: Backend) {
    const BACKLOG: u64 = 5_000;
    const SENDERS: u64 = 4;
    const EACH: u64 = 125;
    let (store, engine) = b.engine().await;
    let archive_dir = b.path("archive");
    b.deploy(
        &engine,
        "ret",
        &format!(
            "[retention]\nmax_messages = 10\narchive_dir = \"{}\"\n",
            archive_dir.display()
        ),
    )
    .await;
    // the backlog: already processed (SENT), stored by 16 concurrent appenders
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let engine = Arc::clone(&engine);
        tasks.spawn(async move {
            for n in (t..BACKLOG).step_by(16) {
                let mut m = hl7(&format!("B{n}"));
                m.status = Status::Sent;
                engine.accept(m).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    let all = MessageFilter {
        channel: Some("ret".into()),
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&all).await.unwrap(), BACKLOG);

    let ch = engine.channel("ret").unwrap();
    let pruning = {
        let engine = Arc::clone(&engine);
        let retention = ch.config.retention.clone();
        tokio::spawn(async move { engine.prune("ret", &retention).await })
    };
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let engine = Arc::clone(&engine);
        senders.spawn(async move {
            let mut ids = Vec::new();
            for n in 0..EACH {
                // through the engine: the source worker processes these while pruning runs
                ids.push(engine.accept(hl7(&format!("N{s}-{n}"))).await.unwrap());
            }
            ids
        });
    }
    let new_ids: Vec<MessageId> = senders.join_all().await.into_iter().flatten().collect();
    let first = pruning.await.unwrap().unwrap();
    assert_eq!(
        new_ids.len() as u64,
        SENDERS * EACH,
        "every append succeeded"
    );
    let total = BACKLOG + SENDERS * EACH;
    let left = store.count(&all).await.unwrap();
    assert_eq!(first.deleted + left, total, "{first:?}, {left} left");
    // the backlog was beyond the newest 10 from the start, and the newest 10 only get newer
    assert!(first.deleted >= BACKLOG - 10, "{first:?}");
    assert_eq!(first.archived, first.deleted);

    // once they are processed, one more run leaves exactly the newest 10
    let s = Arc::clone(&store);
    wait_until("the new messages to be processed", || {
        let s = Arc::clone(&s);
        async move {
            let received = MessageFilter {
                channel: Some("ret".into()),
                status: Some(Status::Received),
                ..MessageFilter::default()
            };
            s.count(&received).await.unwrap() == 0
        }
    })
    .await;
    let second = engine.prune("ret", &ch.config.retention).await.unwrap();
    assert_eq!(first.deleted + second.deleted, total - 10);
    let newest: BTreeSet<MessageId> = {
        let mut sorted = new_ids.clone();
        sorted.sort_unstable();
        sorted[sorted.len() - 10..].iter().copied().collect()
    };
    assert_eq!(ids_of(&store).await, newest);
    let archived: usize = [first.archive, second.archive]
        .iter()
        .flatten()
        .map(|a| archive_lines(a).len())
        .sum();
    assert_eq!(
        archived as u64,
        total - 10,
        "every deleted message is archived"
    );
    engine.shutdown().await;
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_newest_and_archives_the_rest() {
    keeps_the_newest_and_archives_the_rest(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_newest_and_archives_the_rest() {
    keeps_the_newest_and_archives_the_rest(Backend::postgres("retention")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pruning_does_not_hold_up_ingest() {
    pruning_does_not_hold_up_ingest(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pruning_does_not_hold_up_ingest() {
    pruning_does_not_hold_up_ingest(Backend::postgres("retention")).await;
}

/// Two prunes of one channel at once (the schedule and the admin API) archive and delete
/// each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prunes_archive_each_message_once() {
    let b = Backend::sqlite();
    let (store, engine) = b.engine().await;
    let archive_dir = b.path("archive");
    b.deploy(
        &engine,
        "twice",
        &format!(
            "[retention]\nmax_messages = 5\narchive_dir = \"{}\"\n",
            archive_dir.display()
        ),
    )
    .await;
    for n in 0..300 {
        let mut m = hl7(&format!("T{n:03}"));
        m.channel = "twice".into();
        engine.accept(m).await.unwrap();
    }
    let retention = engine.channel("twice").unwrap().config.retention.clone();
    let (a, c) = tokio::join!(
        engine.prune("twice", &retention),
        engine.prune("twice", &retention)
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(a.deleted + c.deleted, 295);
    assert_eq!(a.archived + c.archived, 295);
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&archive_dir).unwrap() {
        lines.extend(archive_lines(&entry.unwrap().path()));
    }
    let ids: BTreeSet<String> = lines
        .iter()
        .map(|l| l["summary"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), 295, "each deleted message archived once");
    assert_eq!(ids.len(), 295);
    let kept = MessageFilter {
        channel: Some("twice".into()),
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&kept).await.unwrap(), 5);
    store.close().await.unwrap();
}
