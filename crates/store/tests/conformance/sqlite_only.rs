//! What only the SQLite backend promises.

use super::*;
use common::Sqlite;
use store::{SqliteConfig, SqliteStore, Transition};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_appends() {
    let backend = Sqlite::create().await;
    let store = Arc::new(backend.open().await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                store
                    .append(adt("gc", &format!("{t}-{i}"), "1"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.messages, 1000);
    assert_eq!(stats.items, 1000);
    assert!(
        stats.commits < stats.items / 2,
        "commits should carry several appends each: {stats:?}"
    );
    eprintln!(
        "group commit: {} appends in {} commits",
        stats.items, stats.commits
    );
    store.close().await.unwrap();
}

/// Spawns, for each item leased to "w", a task applying a transition that completes it as
/// `owner(i)` and then appending a message; returns each task's (index, apply, append).
async fn apply_and_append(
    store: &Arc<SqliteStore>,
    items: Vec<QueueItem>,
    owner: fn(usize) -> &'static str,
) -> Vec<(usize, Result<(), StoreError>, Result<MessageId, StoreError>)> {
    let mut tasks = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut t = Transition::new(item.message_id);
            t.complete = Some((item.id, owner(i).into()));
            t.status = Some((Status::Sent, None));
            t.enqueue.push(store::Enqueue {
                queue: "next".into(),
                destination: 1,
                lease: None,
            });
            let applied = store.apply(vec![t]).await;
            let appended = store.append(adt("gc", &i.to_string(), "1")).await;
            (i, applied, appended)
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// An apply is one request to the writer thread: concurrent applies and appends share
/// commits, and an apply that fails fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applies_group_commit_with_appends() {
    let backend = Sqlite::create().await;
    let store = Arc::new(backend.open().await.unwrap());
    fill_queue(store.as_ref(), "src", 300).await;
    let lease = Duration::from_mins(5);
    let items = store.claim("src", "w", lease, 200).await.unwrap();
    let before = store.stats();
    for (_, applied, appended) in apply_and_append(&store, items, |_| "w").await {
        applied.unwrap();
        appended.unwrap();
    }
    let stats = store.stats();
    let (commits, items) = (stats.commits - before.commits, stats.items - before.items);
    assert_eq!(items, 400, "200 applies and 200 appends committed");
    assert!(
        commits < items / 2,
        "applies share commits with other writes: {commits} commits for {items}"
    );

    // Every tenth apply names a lease it does not hold: it fails, alone and entirely.
    let items = store.claim("src", "w", lease, 100).await.unwrap();
    let results = apply_and_append(
        &store,
        items,
        |i| if i % 10 == 0 { "intruder" } else { "w" },
    );
    for (i, applied, appended) in results.await {
        appended.unwrap();
        if i % 10 == 0 {
            let err = applied.unwrap_err();
            assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err}");
        } else {
            applied.unwrap();
        }
    }
    assert_eq!(store.queue_depth("next").await.unwrap().ready, 290);
    let sent = MessageFilter {
        status: Some(Status::Sent),
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&sent).await.unwrap(), 290);
    assert_eq!(store.queue_depth("src").await.unwrap().leased, 10);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_close() {
    let backend = Sqlite::create().await;
    let store = Arc::new(backend.open().await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..200 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.append(adt("ack", &t.to_string(), "1")).await
        }));
    }
    tokio::task::yield_now().await;
    store.close().await.unwrap();
    let mut acked = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(id) => {
                acked.insert(id);
            }
            Err(e) => assert!(matches!(e, StoreError::Closed { .. }), "{e}"),
        }
    }
    let store = backend.open().await.unwrap();
    let found: HashSet<MessageId> = store
        .list(&MessageFilter {
            limit: Some(1000),
            ..MessageFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(found, acked, "exactly the acknowledged appends are stored");
    store.close().await.unwrap();
}

/// Every append that returned before the process died is in the database afterwards.
#[tokio::test]
async fn acknowledged_appends_survive_a_crash() {
    let backend = Sqlite::create().await;
    let exe = std::env::current_exe().unwrap();
    let dir = backend.path();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "sqlite_only::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PLEXUS_CRASH_DIR", dir)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    let acked: Vec<MessageId> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // The harness may print "test ... " on the same line as the first id.
        .filter_map(|l| l.split_once("ACK ").map(|(_, id)| id))
        .map(|id| id.trim().parse().unwrap())
        .collect();
    assert!(acked.len() >= 300, "child acknowledged {}", acked.len());
    let store = backend.open().await.unwrap();
    for id in &acked {
        assert!(store.get(*id).await.unwrap().is_some(), "lost {id}");
    }
    store.close().await.unwrap();
}

/// The child of `acknowledged_appends_survive_a_crash`: appends from 20 tasks, prints
/// each id as its append returns, and aborts (no close, no flush) after 300.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by acknowledged_appends_survive_a_crash"]
async fn crash_child() {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(dir) = std::env::var_os("PLEXUS_CRASH_DIR") else {
        return;
    };
    let store = Arc::new(SqliteStore::open(&SqliteConfig::new(dir)).await.unwrap());
    let acked = Arc::new(AtomicUsize::new(0));
    for t in 0..20 {
        let (store, acked) = (Arc::clone(&store), Arc::clone(&acked));
        tokio::spawn(async move {
            for i in 0.. {
                let id = store
                    .append(adt("crash", &format!("{t}-{i}"), "1"))
                    .await
                    .unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {id}").unwrap();
                out.flush().unwrap();
                if acked.fetch_add(1, Ordering::SeqCst) + 1 >= 300 {
                    std::process::abort();
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_mins(1)).await;
    unreachable!("the child aborts once 300 appends are acknowledged");
}

#[tokio::test]
async fn database_is_wal_in_the_data_directory() {
    let backend = Sqlite::create().await;
    let nested = backend.path().join("a/b");
    let store = SqliteStore::open(&SqliteConfig::new(&nested))
        .await
        .unwrap();
    assert_eq!(store.path(), nested.join("plexus.db"));
    store.append(adt("w", "1", "1")).await.unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await.unwrap();
}

#[tokio::test]
async fn dropping_without_close_stops_the_writer() {
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    let id = store.append(adt("d", "1", "1")).await.unwrap();
    drop(store);
    let store = backend.open().await.unwrap();
    assert!(store.get(id).await.unwrap().is_some());
    store.close().await.unwrap();
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let backend = Sqlite::create().await;
    for config in [
        SqliteConfig {
            max_batch: 0,
            ..SqliteConfig::new(backend.path())
        },
        SqliteConfig {
            writer_nice: -21,
            ..SqliteConfig::new(backend.path())
        },
        SqliteConfig {
            wal_max_mb: 3,
            ..SqliteConfig::new(backend.path())
        },
        SqliteConfig {
            writer_nice: 20,
            ..SqliteConfig::new(backend.path())
        },
    ] {
        let err = SqliteStore::open(&config).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
    }
    // A file where the directory should be.
    let file = backend.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&SqliteConfig::new(&file))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}

/// Continuous appends must not grow the write-ahead log without bound: checkpoints have to
/// keep up and the log has to be reused (a runaway WAL fills the disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wal_stays_bounded_under_continuous_appends() {
    let backend = Sqlite::create().await;
    let config = SqliteConfig {
        wal_max_mb: 16,
        ..SqliteConfig::new(backend.path())
    };
    let store = Arc::new(SqliteStore::open(&config).await.unwrap());
    let wal = std::path::PathBuf::from(format!("{}-wal", store.path().display()));
    let body = "x".repeat(2000);
    let mut tasks = Vec::new();
    for t in 0..20 {
        let store = Arc::clone(&store);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let mut m = adt("wal", &format!("{t}-{i}"), "1");
                m.raw.extend_from_slice(body.as_bytes());
                store.append(m).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // 10,000 messages of ~2 KB: ~20 MB of content, written to the log several times over
    // (index pages); the log stays near its limit of 16 MiB (plus the commit that crossed it)
    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(size < 24 << 20, "the WAL grew to {size} bytes");
    store.close().await.unwrap();
}

/// The control-id and metadata indexes are filled in batches: the 512th append files every
/// pending row into them, and deleting a message removes its rows from whichever table holds
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_indexes_are_filled_in_batches() {
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..518 {
        // each with a control id and one metadata pair (MRN)
        let id = store
            .append(adt("ctl", &format!("C{i}"), &format!("M{i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    let rows = |table: &str| -> i64 {
        backend
            .db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows("message_control"), 512);
    assert_eq!(rows("message_control_pending"), 6);
    assert_eq!(rows("message_metadata_index"), 512);
    assert_eq!(rows("message_metadata_pending"), 6);
    // metadata added by a transition is noted too
    let mut t = Transition::new(ids[517]);
    t.metadata.push(("VISIT".into(), "V1".into()));
    store.apply(vec![t]).await.unwrap();
    assert_eq!(rows("message_metadata_pending"), 6);
    let visit = MessageFilter {
        metadata: vec![("VISIT".into(), "V1".into())],
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&visit).await.unwrap(), 1);
    // one filed in the indexes, one still pending
    let (filed, pending) = (ids[3], ids[515]);
    for table in ["message_control", "message_metadata_index"] {
        assert_eq!(backend.count_rows(table, filed).await, 1, "{table}");
    }
    for table in ["message_control_pending", "message_metadata_pending"] {
        assert_eq!(backend.count_rows(table, pending).await, 1, "{table}");
    }
    assert_eq!(store.delete(&[filed, pending]).await.unwrap(), 2);
    for table in [
        "message_control",
        "message_metadata_index",
        "message_control_pending",
        "message_metadata_pending",
    ] {
        assert_eq!(backend.count_rows(table, filed).await, 0, "{table}");
        assert_eq!(backend.count_rows(table, pending).await, 0, "{table}");
    }
    assert_eq!(
        rows("message_control") + rows("message_control_pending"),
        516
    );
    // a store opened again counts the pending rows it finds (5 + 5 now)
    store.close().await.unwrap();
    let store = backend.open().await.unwrap();
    for i in 0..502 {
        store
            .append(adt("ctl", &format!("D{i}"), "1"))
            .await
            .unwrap();
    }
    assert_eq!(rows("message_control_pending"), 0);
    assert_eq!(rows("message_metadata_pending"), 0);
    assert_eq!(rows("message_control"), 511 + 5 + 502);
    // the VISIT pair of the last message filed with its MRN
    assert_eq!(rows("message_metadata_index"), 511 + 5 + 1 + 502);
    assert_eq!(store.count(&visit).await.unwrap(), 1);
    store.close().await.unwrap();
}

/// The resource cache answers a read of a current version it holds without the version row
/// (a row changed behind the store's back is not seen), and never answers with an old
/// version: an update, a delete and a search afterwards see the new one. With
/// `resource_cache_mb = 0` every read goes to the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_cache_serves_current_versions_only() {
    use fhir::search::SearchRequest;
    use store::{Precondition, ResourceWrite, Resources, WriteOp};
    let write = |op, body: Option<serde_json::Value>| ResourceWrite {
        op,
        resource_type: "Patient".into(),
        id: "p1".into(),
        resource: body,
        index: vec![],
        precondition: Precondition::None,
    };
    let all = SearchRequest {
        resource_type: Some("Patient".into()),
        count: 10,
        ..SearchRequest::default()
    };
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    let body = |active: bool| serde_json::json!({"resourceType": "Patient", "active": active});
    store
        .write(vec![write(WriteOp::Create, Some(body(true)))])
        .await
        .unwrap();
    let v1 = store.read("Patient", "p1", None).await.unwrap().unwrap();
    // the stored version changed behind the store's back: a read of the current version,
    // and a search's, come from the cache
    let tampered = br#"{"resourceType":"Patient","id":"p1","tampered":true}"#;
    backend
        .db()
        .execute(
            "UPDATE fhir_version SET content = ?1 WHERE version = 1",
            [&tampered[..]],
        )
        .unwrap();
    assert_eq!(
        store.read("Patient", "p1", None).await.unwrap().unwrap(),
        v1
    );
    assert_eq!(store.search(&all).await.unwrap().matches, vec![v1.clone()]);
    // the row renamed behind the store's back: a read by id finds it by the row id it knows
    let rename = |from: &str, to: &str| {
        backend
            .db()
            .execute("UPDATE fhir_resource SET id = ?2 WHERE id = ?1", [from, to])
            .unwrap();
    };
    rename("p1", "renamed");
    assert_eq!(
        store.read("Patient", "p1", None).await.unwrap().unwrap(),
        v1
    );
    rename("renamed", "p1");
    // an update makes version 2 current: read and search see it, not the cached version 1
    store
        .write(vec![write(WriteOp::Update, Some(body(false)))])
        .await
        .unwrap();
    let v2 = store.read("Patient", "p1", None).await.unwrap().unwrap();
    assert_eq!(v2.version, 2);
    let json: serde_json::Value = serde_json::from_slice(&v2.content).unwrap();
    assert_eq!(json["active"], false);
    assert_eq!(store.search(&all).await.unwrap().matches, vec![v2.clone()]);
    // a delete: the read answers the deletion
    store
        .write(vec![write(WriteOp::Delete, None)])
        .await
        .unwrap();
    let v3 = store.read("Patient", "p1", None).await.unwrap().unwrap();
    assert!(v3.deleted && v3.version == 3);
    store.close().await.unwrap();

    // without the cache the changed row is what a read gets
    let config = SqliteConfig {
        resource_cache_mb: 0,
        ..SqliteConfig::new(backend.path())
    };
    let store = SqliteStore::open(&config).await.unwrap();
    let v1_now = store.read("Patient", "p1", Some(1)).await.unwrap().unwrap();
    assert_eq!(v1_now.content, tampered);
    backend
        .db()
        .execute("UPDATE fhir_resource SET version = 1, deleted = 0", [])
        .unwrap();
    let current = store.read("Patient", "p1", None).await.unwrap().unwrap();
    assert_eq!(current.content, tampered);
    store.close().await.unwrap();
}

/// A search page whose resources are partly in the cache (read before) and partly not comes
/// back in the page's order, each resource once, as a store without the cache answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_page_mixes_cached_and_loaded_versions() {
    use fhir::search::SearchRequest;
    use store::{Precondition, ResourceWrite, Resources, WriteOp};
    let all = SearchRequest {
        resource_type: Some("Patient".into()),
        count: 10,
        include: vec![],
        ..SearchRequest::default()
    };
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    let writes = (1..=7)
        .map(|n| ResourceWrite {
            op: WriteOp::Create,
            resource_type: "Patient".into(),
            id: format!("p{n}"),
            resource: Some(
                serde_json::json!({"resourceType": "Patient", "birthDate": format!("200{n}")}),
            ),
            index: vec![],
            precondition: Precondition::None,
        })
        .collect();
    store.write(writes).await.unwrap();
    for id in ["p2", "p5", "p6"] {
        store.read("Patient", id, None).await.unwrap().unwrap();
    }
    let cached = store.search(&all).await.unwrap().matches;
    let ids: Vec<&str> = cached.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
    // a second time every resource is a hit
    assert_eq!(store.search(&all).await.unwrap().matches, cached);
    store.close().await.unwrap();
    let config = SqliteConfig {
        resource_cache_mb: 0,
        ..SqliteConfig::new(backend.path())
    };
    let store = SqliteStore::open(&config).await.unwrap();
    assert_eq!(store.search(&all).await.unwrap().matches, cached);
    store.close().await.unwrap();
}

/// A committed write fills the resource cache (the read that follows needs no version row),
/// and a write call rolled back by a failed precondition fills nothing: the row id its create
/// took is handed out again, and a resource stored under it later is read as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_only_committed_writes() {
    use store::{Precondition, ResourceWrite, Resources, WriteOp, WriteOutcome};
    let create = |id: &str, precondition| ResourceWrite {
        op: WriteOp::Create,
        resource_type: "Patient".into(),
        id: id.into(),
        resource: Some(serde_json::json!({"resourceType": "Patient", "gender": "female"})),
        index: vec![],
        precondition,
    };
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    let out = store
        .write(vec![create("p1", Precondition::None)])
        .await
        .unwrap();
    let WriteOutcome::Created(v1) = &out[0] else {
        panic!("{out:?}")
    };
    // the version row changed behind the store's back before any read: the read is answered
    // from what the write put in the cache
    let db = backend.db();
    db.execute("UPDATE fhir_version SET content = CAST('{}' AS BLOB)", [])
        .unwrap();
    assert_eq!(
        &store.read("Patient", "p1", None).await.unwrap().unwrap(),
        v1
    );

    // a create, then an update whose If-Match fails: the whole call is rolled back
    let mut conflict = create("p1", Precondition::IfMatch(9));
    conflict.op = WriteOp::Update;
    let out = store
        .write(vec![create("p2", Precondition::None), conflict])
        .await
        .unwrap();
    assert!(
        matches!(out[1], WriteOutcome::VersionConflict(Some(1))),
        "{out:?}"
    );
    assert!(store.read("Patient", "p2", None).await.unwrap().is_none());
    // the row id p2 took is free again: a resource stored under it now is read as itself
    db.execute_batch(
        "INSERT INTO fhir_resource (type, id, version, last_updated, deleted)
             VALUES ('Patient', 'p3', 1, 0, 0);
         INSERT INTO fhir_version (rid, version, last_updated, deleted, method, content)
             VALUES (last_insert_rowid(), 1, 0, 0, 'C',
                     CAST('{\"resourceType\":\"Patient\",\"id\":\"p3\"}' AS BLOB));",
    )
    .unwrap();
    let rid_p3: i64 = db
        .query_row("SELECT rid FROM fhir_resource WHERE id = 'p3'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let rid_p1: i64 = db
        .query_row("SELECT rid FROM fhir_resource WHERE id = 'p1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        rid_p3,
        rid_p1 + 1,
        "p3 has the row id the rolled-back create took"
    );
    let p3 = store.read("Patient", "p3", None).await.unwrap().unwrap();
    assert_eq!(p3.id, "p3");
    assert_eq!(p3.content, br#"{"resourceType":"Patient","id":"p3"}"#);
    store.close().await.unwrap();
}
