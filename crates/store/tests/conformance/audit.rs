//! The audit trail: appends chain, searches filter and page, verify finds every kind of
//! tampering, and the database itself refuses updates and deletes (both backends).

use super::*;
use common::{Postgres, Sqlite};
use store::audit::{Audit, AuditQuery, BreakKind, GENESIS_HASH, NewAuditRecord};

/// A record of a FHIR read by `agent` of `entity`, for `patient`.
fn rec(agent: &str, entity: &str, patient: Option<&str>, at: i64) -> NewAuditRecord {
    NewAuditRecord {
        recorded: Timestamp::from_micros(1_767_268_800_000_000 + at),
        action: "R".into(),
        outcome: "0".into(),
        type_code: "rest".into(),
        subtype: Some("read".into()),
        agent: agent.into(),
        client_id: Some("app".into()),
        source_addr: Some("10.0.0.7".into()),
        patient: patient.map(Into::into),
        entity: Some(entity.into()),
        detail: None,
        event: serde_json::json!({
            "resourceType": "AuditEvent",
            "action": "R",
            "recorded": "2026-01-01T12:00:00Z",
            "entity": [{"what": {"reference": entity}}],
            "ünïcode": "ok ✓",
        }),
    }
}

fn seqs(entries: &[store::AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

pub async fn audit_append_chains_and_get_round_trips<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let empty = store.audit_verify(None).await.unwrap();
    assert!(empty.is_intact());
    assert_eq!((empty.records, empty.head), (0, None));

    let first = vec![
        rec("alice", "Patient/1", Some("Patient/1"), 0),
        rec("alice", "Observation/5", Some("Patient/1"), 1),
        rec("bob", "Patient?name,birthdate", None, 2),
    ];
    store.audit_append(first.clone()).await.unwrap();
    let mut failed = rec("eve", "Patient/2", Some("Patient/2"), 3);
    failed.outcome = "8".into();
    failed.detail = Some("insufficient scope".into());
    failed.client_id = None;
    failed.source_addr = None;
    store.audit_append(vec![failed.clone()]).await.unwrap();
    store.audit_append(Vec::new()).await.unwrap();

    let mut prev = GENESIS_HASH;
    for (seq, expected) in (1..).zip(first.iter().chain([&failed])) {
        let got = store.audit_get(seq).await.unwrap().expect("stored");
        assert_eq!(got.seq, seq);
        assert_eq!(&got.record, expected, "seq {seq}");
        assert_eq!(got.prev_hash, prev, "seq {seq} links to the one before");
        assert_eq!(
            got.hash,
            store::audit::chain_hash(
                &prev,
                seq,
                expected,
                &serde_json::to_string(&expected.event).unwrap()
            ),
            "seq {seq}: the hash is the documented function of the row"
        );
        prev = got.hash;
    }
    assert!(store.audit_get(5).await.unwrap().is_none());
    assert!(store.audit_get(0).await.unwrap().is_none());

    let v = store.audit_verify(None).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.records, 4);
    assert_eq!(v.head, Some((4, prev)));
    assert!(
        store
            .audit_verify(Some((2, store.audit_get(2).await.unwrap().unwrap().hash)))
            .await
            .unwrap()
            .is_intact()
    );
    let wrong = store.audit_verify(Some((2, [9; 32]))).await.unwrap();
    assert_eq!(wrong.first_break.unwrap().kind, BreakKind::Anchor);
    let absent = store.audit_verify(Some((9, prev))).await.unwrap();
    assert_eq!(absent.first_break.unwrap().seq, 9);
    store.close().await.unwrap();

    // reopening continues the same chain
    let store = open(backend).await;
    store
        .audit_append(vec![rec("carol", "Patient/3", Some("Patient/3"), 4)])
        .await
        .unwrap();
    let fifth = store.audit_get(5).await.unwrap().unwrap();
    assert_eq!(fifth.prev_hash, prev);
    assert!(store.audit_verify(None).await.unwrap().is_intact());
    store.close().await.unwrap();
}

pub async fn audit_refuses_bad_records<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let good = rec("alice", "Patient/1", None, 0);
    let mut with_value = good.clone();
    with_value.entity = Some("Patient?name=SMITH".into());
    let mut bad_action = good.clone();
    bad_action.action = "X".into();
    let mut bad_outcome = good.clone();
    bad_outcome.outcome = "1".into();
    let mut not_audit = good.clone();
    not_audit.event = serde_json::json!({"resourceType": "Patient"});
    let mut no_agent = good.clone();
    no_agent.agent = String::new();
    for bad in [with_value, bad_action, bad_outcome, not_audit, no_agent] {
        // a bad record fails the whole call: the good one before it is not stored either
        let err = store
            .audit_append(vec![good.clone(), bad])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    }
    assert_eq!(store.audit_verify(None).await.unwrap().records, 0);
    let err = store
        .audit_search(&AuditQuery {
            entity_type: Some("Patient' OR 1=1 --".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    store.close().await.unwrap();
}

pub async fn audit_search_filters_and_pages<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut records = Vec::new();
    for i in 0..30_i64 {
        let agent = ["alice", "bob", "carol"][usize::try_from(i % 3).unwrap()];
        let patient = format!("Patient/{}", i % 5);
        let entity = match i % 4 {
            0 => format!("Observation/{i}"),
            1 => "Observation?code,patient".to_owned(),
            2 => patient.clone(),
            _ => "ObservationDefinition/1".to_owned(),
        };
        let mut r = rec(agent, &entity, Some(&patient), i * 1_000_000);
        if i % 7 == 0 {
            r.outcome = "4".into();
            r.action = "E".into();
            r.type_code = "110114".into();
            r.subtype = Some("110122".into());
        }
        records.push(r);
    }
    // in a few calls, so batches and single appends mix
    for chunk in records.chunks(7) {
        store.audit_append(chunk.to_vec()).await.unwrap();
    }
    let search = |q: AuditQuery| {
        let store = &store;
        async move { store.audit_search(&q).await.unwrap() }
    };
    let expect = |pred: &dyn Fn(usize, &NewAuditRecord) -> bool| -> Vec<i64> {
        let mut s: Vec<i64> = records
            .iter()
            .enumerate()
            .filter(|(i, r)| pred(*i, r))
            .map(|(i, _)| i64::try_from(i).unwrap() + 1)
            .collect();
        s.reverse();
        s
    };

    let all = search(AuditQuery::default()).await;
    assert_eq!(seqs(&all), expect(&|_, _| true), "newest first");
    assert_eq!(all[0].record, records[29]);

    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        seqs(&search(q(|q| q.agent = Some("bob".into()))).await),
        expect(&|_, r| r.agent == "bob")
    );
    assert_eq!(
        seqs(&search(q(|q| q.patient = Some("Patient/3".into()))).await),
        expect(&|_, r| r.patient.as_deref() == Some("Patient/3"))
    );
    assert_eq!(
        seqs(&search(q(|q| q.outcome = Some("4".into()))).await),
        expect(&|i, _| i % 7 == 0)
    );
    assert_eq!(
        seqs(&search(q(|q| q.action = Some("E".into()))).await),
        expect(&|i, _| i % 7 == 0)
    );
    assert_eq!(
        seqs(&search(q(|q| q.subtype = Some("read".into()))).await),
        expect(&|i, _| i % 7 != 0)
    );
    assert_eq!(
        seqs(&search(q(|q| q.type_code = Some("110114".into()))).await),
        expect(&|i, _| i % 7 == 0)
    );
    // a type matches `Type/id` and `Type?names`, never a longer type name
    assert_eq!(
        seqs(&search(q(|q| q.entity_type = Some("Observation".into()))).await),
        expect(&|i, _| i % 4 < 2)
    );
    assert_eq!(
        seqs(&search(q(|q| q.entity_type = Some("Patient".into()))).await),
        expect(&|i, _| i % 4 == 2)
    );
    // time range: [since, until)
    let since = Timestamp::from_micros(1_767_268_800_000_000 + 10 * 1_000_000);
    let until = Timestamp::from_micros(1_767_268_800_000_000 + 20 * 1_000_000);
    let ranged = AuditQuery {
        since: Some(since),
        until: Some(until),
        agent: Some("alice".into()),
        ..AuditQuery::default()
    };
    assert_eq!(
        seqs(&search(ranged).await),
        expect(&|i, r| (10..20).contains(&i) && r.agent == "alice")
    );

    // keyset paging, newest first
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = search(AuditQuery {
            patient: Some("Patient/1".into()),
            before_seq: before,
            limit: Some(2),
            ..AuditQuery::default()
        })
        .await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = page.last().map(|e| e.seq);
        pages.extend(seqs(&page));
    }
    assert_eq!(
        pages,
        expect(&|_, r| r.patient.as_deref() == Some("Patient/1"))
    );
    let after = search(AuditQuery {
        after_seq: Some(27),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(seqs(&after), vec![30, 29, 28]);
    store.close().await.unwrap();
}

pub async fn audit_concurrent_appends_form_one_chain<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let n = 1 + (i % 2);
                let batch = (0..n)
                    .map(|k| rec(&format!("u{t}"), &format!("Patient/{i}{k}"), None, i))
                    .collect();
                store.audit_append(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected: u64 = 32 * (13 + 12 * 2);
    let v = store.audit_verify(None).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.records, expected);
    assert_eq!(v.head.unwrap().0, i64::try_from(expected).unwrap());
    // each caller's records kept their order and stayed together
    let mine = store
        .audit_search(&AuditQuery {
            agent: Some("u7".into()),
            limit: Some(1_000),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let entities: Vec<String> = mine
        .iter()
        .rev()
        .map(|e| e.record.entity.clone().unwrap())
        .collect();
    let wanted: Vec<String> = (0..25)
        .flat_map(|i| (0..=(i % 2)).map(move |k| format!("Patient/{i}{k}")))
        .collect();
    assert_eq!(entities, wanted);
    store.close().await.unwrap();
}

/// Appends `n` records and returns the store (SQLite or PostgreSQL alike).
async fn filled<S: Store>(store: &S, n: usize) {
    let records = (0..n)
        .map(|i| {
            rec(
                "alice",
                &format!("Observation/{i}"),
                Some("Patient/1"),
                i64::try_from(i).unwrap(),
            )
        })
        .collect();
    store.audit_append(records).await.unwrap();
}

fn sqlite_file(backend: &Sqlite) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open(backend.path().join(store::SqliteConfig::DB_FILE)).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// Through SQL, rows can be neither changed nor removed: the triggers refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_rows_cannot_be_updated_or_deleted() {
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    filled(&store, 3).await;
    let conn = sqlite_file(&backend);
    for sql in [
        "UPDATE audit_event SET agent = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_event WHERE seq = 2",
        "DELETE FROM audit_event",
        "INSERT OR REPLACE INTO audit_event SELECT * FROM audit_event WHERE seq = 1",
        "REPLACE INTO audit_event SELECT * FROM audit_event WHERE seq = 3",
        "INSERT INTO audit_event SELECT * FROM audit_event WHERE seq = 1 \
         ON CONFLICT (seq) DO UPDATE SET agent = 'mallory'",
    ] {
        let err = conn.execute_batch(sql).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert!(store.audit_verify(None).await.unwrap().is_intact());
    store.close().await.unwrap();
}

/// Someone with the file drops the triggers and edits: verify names the exact row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_tampering_is_found() {
    let backend = Sqlite::create().await;
    let store = backend.open().await.unwrap();
    filled(&store, 2_500).await; // more than two verify batches
    let head = store.audit_verify(None).await.unwrap().head.unwrap();
    let mid = (100, store.audit_get(100).await.unwrap().unwrap().hash);
    let conn = sqlite_file(&backend);
    conn.execute_batch("DROP TRIGGER audit_event_no_update; DROP TRIGGER audit_event_no_delete;")
        .unwrap();

    // a changed column
    conn.execute_batch("UPDATE audit_event SET patient = 'Patient/2' WHERE seq = 1234")
        .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert_eq!(
        v.first_break,
        Some(store::AuditBreak {
            seq: 1234,
            kind: BreakKind::Hash
        })
    );
    assert_eq!((v.breaks, v.records), (1, 2_500));

    // a changed JSON byte
    conn.execute_batch(
        "UPDATE audit_event SET patient = 'Patient/1' WHERE seq = 1234;
         UPDATE audit_event SET event = replace(event, 'ok', 'OK') WHERE seq = 2001;",
    )
    .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((2001, BreakKind::Hash))
    );

    // a removed middle row
    conn.execute_batch(
        "UPDATE audit_event SET event = replace(event, 'OK', 'ok') WHERE seq = 2001;
         DELETE FROM audit_event WHERE seq = 1500;",
    )
    .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((1501, BreakKind::Missing { expected: 1500 }))
    );
    assert_eq!((v.missing, v.records), (1, 2_499));

    // a row changed and every later hash recomputed (the hash has no key): the chain is
    // consistent again, only a head recorded before (the anchor) shows it
    conn.execute_batch("INSERT INTO audit_event SELECT * FROM audit_event WHERE seq = 1499")
        .unwrap_err();
    let mut prev = store.audit_get(9).await.unwrap().unwrap().hash;
    for seq in (10..=2_500).filter(|s| *s != 1500) {
        let mut e = store.audit_get(seq).await.unwrap().unwrap();
        let new_seq = if seq > 1500 { seq - 1 } else { seq };
        if seq == 10 {
            e.record.agent = "mallory".into();
        }
        let text = serde_json::to_string(&e.record.event).unwrap();
        let hash = store::audit::chain_hash(&prev, new_seq, &e.record, &text);
        conn.execute(
            "UPDATE audit_event SET seq = ?1, agent = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?5",
            rusqlite::params![
                new_seq,
                e.record.agent,
                prev.as_slice(),
                hash.as_slice(),
                seq
            ],
        )
        .unwrap();
        prev = hash;
    }
    let v = store.audit_verify(None).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.records, 2_499);
    let v = store.audit_verify(Some(mid)).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((100, BreakKind::Anchor))
    );
    let anchor_before = (9, store.audit_get(9).await.unwrap().unwrap().hash);
    assert!(
        store
            .audit_verify(Some(anchor_before))
            .await
            .unwrap()
            .is_intact()
    );

    // the end cut off: the rest is a valid chain, only the anchor shows it
    conn.execute_batch("DELETE FROM audit_event WHERE seq >= 1500")
        .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    let v = store.audit_verify(Some(head)).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((2_500, BreakKind::Anchor))
    );
    store.close().await.unwrap();
}

async fn pg_admin(backend: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&backend.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path TO {}", backend.schema))
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_rows_cannot_be_updated_deleted_or_truncated() {
    let backend = Postgres::create().await;
    let store = backend.open().await.unwrap();
    filled(&store, 3).await;
    let client = pg_admin(&backend).await;
    for sql in [
        "UPDATE audit_event SET agent = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_event WHERE seq = 2",
        "TRUNCATE audit_event",
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        let text = err
            .as_db_error()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(text.contains("append-only"), "{sql}: {err} {text}");
    }
    assert_eq!(store.audit_verify(None).await.unwrap().records, 3);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_tampering_is_found() {
    let backend = Postgres::create().await;
    let store = backend.open().await.unwrap();
    filled(&store, 2_500).await;
    let head = store.audit_verify(None).await.unwrap().head.unwrap();
    let client = pg_admin(&backend).await;
    // as superuser: switch the triggers off, as an intruder with the database would
    client
        .batch_execute(
            "ALTER TABLE audit_event DISABLE TRIGGER USER;
             UPDATE audit_event SET recorded = recorded + interval '1 microsecond' WHERE seq = 777;",
        )
        .await
        .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((777, BreakKind::Hash))
    );
    assert_eq!(v.breaks, 1);
    client
        .batch_execute(
            "UPDATE audit_event SET recorded = recorded - interval '1 microsecond' WHERE seq = 777;
             DELETE FROM audit_event WHERE seq = 2100;",
        )
        .await
        .unwrap();
    let v = store.audit_verify(None).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((2101, BreakKind::Missing { expected: 2100 }))
    );
    client
        .batch_execute("DELETE FROM audit_event WHERE seq > 2000")
        .await
        .unwrap();
    assert!(store.audit_verify(None).await.unwrap().is_intact());
    let v = store.audit_verify(Some(head)).await.unwrap();
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.kind)),
        Some((2_500, BreakKind::Anchor))
    );
    client
        .batch_execute("ALTER TABLE audit_event ENABLE TRIGGER USER")
        .await
        .unwrap();
    store.close().await.unwrap();
}

/// Two nodes (two stores on one schema) appending at once still make one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_nodes_append_to_one_chain() {
    let backend = Postgres::create().await;
    let a = Arc::new(backend.open().await.unwrap());
    let b = Arc::new(backend.open().await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = Arc::clone(if t % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                store
                    .audit_append(vec![rec(&format!("node{t}"), "Patient/1", None, i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let v = a.audit_verify(None).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.records, 320);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// `tasks` tasks each call `one(i)` `per_task` times; returns calls per second.
async fn rate<F, Fut>(tasks: usize, per_task: usize, one: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let one = one.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                one(t, i).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let calls = (tasks * per_task) as f64;
    calls / started.elapsed().as_secs_f64()
}

/// Audit appends (one record per call, as the FHIR server makes them) against plain journal
/// appends, many callers at once, in one run. A measurement, not a test: run with
/// `cargo nextest run -p store --release --run-ignored only --no-capture -E 'test(audit_append_rate)'`.
async fn audit_append_rate<B: Backend>(name: &str) {
    let (tasks, per_task) = (64, 150);
    let backend = B::create().await;
    let store = Arc::new(backend.open().await.unwrap());
    let records = {
        let store = Arc::clone(&store);
        rate(tasks, per_task, move |t, i| {
            let store = Arc::clone(&store);
            async move {
                let r = rec(
                    &format!("user{t}"),
                    &format!("Observation/{i}"),
                    Some("Patient/1"),
                    0,
                );
                store.audit_append(vec![r]).await.unwrap();
            }
        })
        .await
    };
    let journal = {
        let store = Arc::clone(&store);
        rate(tasks, per_task, move |t, i| {
            let store = Arc::clone(&store);
            async move {
                store
                    .append(adt("bench", &format!("{t}-{i}"), "1"))
                    .await
                    .unwrap();
            }
        })
        .await
    };
    let started = std::time::Instant::now();
    let v = store.audit_verify(None).await.unwrap();
    let verified = started.elapsed();
    assert!(v.is_intact());
    println!(
        "{name}: {tasks} callers × {per_task}: audit appends {records:.0}/s, journal appends \
         {journal:.0}/s (ratio {:.2}); verify {} records in {:.0} ms; peak RSS {:.0} MiB",
        records / journal,
        v.records,
        verified.as_secs_f64() * 1e3,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --run-ignored only --no-capture, in release"]
async fn audit_append_rate_sqlite() {
    audit_append_rate::<Sqlite>("SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --run-ignored only --no-capture, in release"]
async fn audit_append_rate_postgres() {
    audit_append_rate::<Postgres>("PostgreSQL").await;
}
