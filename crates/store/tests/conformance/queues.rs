//! Queue cases: enqueue with append, claims, acks and nacks, leases, dead letters.

use super::*;

pub async fn enqueue_with_append_is_atomic<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let id = store
        .append(
            adt("fan", "C1", "1")
                .enqueue_to("fan/1", 1)
                .enqueue_to("fan/2", 2),
        )
        .await
        .unwrap();
    let one = store
        .claim("fan/1", "w", Duration::from_mins(1), 10)
        .await
        .unwrap();
    let two = store
        .claim("fan/2", "w", Duration::from_mins(1), 10)
        .await
        .unwrap();
    assert_eq!((messages_of(&one), one[0].destination), (vec![id], 1));
    assert_eq!((messages_of(&two), two[0].destination), (vec![id], 2));
    assert_eq!(one[0].attempts, 0);

    // If one queue insert fails inside the database, nothing of the append remains.
    backend.fail_inserts_into("broken").await;
    let err = store
        .append(
            adt("fan", "C2", "2")
                .enqueue_to("fan/1", 1)
                .enqueue_to("broken", 2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlite { .. } | StoreError::Postgres { .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("append on channel \"fan\": "),
        "the error says what failed: {err}"
    );
    let c2 = MessageFilter {
        control_id: Some("C2".into()),
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&c2).await.unwrap(), 0);
    let by_mrn = MessageFilter {
        metadata: vec![("MRN".into(), "2".into())],
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&by_mrn).await.unwrap(), 0);
    assert!(
        store
            .claim("fan/1", "w", Duration::from_mins(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await.unwrap();
}

pub async fn failing_request_does_not_fail_others<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    backend.fail_inserts_into("broken").await;
    // Sent together, so that SQLite commits them in shared batches.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let queue = if i % 5 == 0 { "broken" } else { "fine" };
            let m = adt("mixed", &format!("M{i}"), "1").enqueue_to(queue, 1);
            (i, store.append(m).await)
        }));
    }
    let mut good = HashSet::new();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        if i % 5 == 0 {
            assert!(result.is_err(), "append {i} should fail");
        } else {
            good.insert(result.unwrap());
        }
    }
    assert_eq!(good.len(), 48);
    let listed: HashSet<MessageId> = store
        .list(&MessageFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, good);
    let claimed = store
        .claim("fine", "w", Duration::from_mins(1), 100)
        .await
        .unwrap();
    assert_eq!(
        messages_of(&claimed).into_iter().collect::<HashSet<_>>(),
        good
    );
    store.close().await.unwrap();
}

pub async fn claim_ack_nack<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let lease = Duration::from_mins(1);
    let ids = fill_queue(&store, "out", 3).await;
    assert!(
        store
            .claim("other", "a", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.claim("out", "a", lease, 0).await.unwrap().is_empty());

    let before = Timestamp::now();
    let first = store.claim("out", "a", lease, 2).await.unwrap();
    assert_eq!(messages_of(&first), ids[..2], "oldest first");
    for item in &first {
        assert_eq!(item.queue, "out");
        assert_eq!(item.state, QueueState::Leased);
        assert_eq!(item.lease_owner.as_deref(), Some("a"));
        let until = item.lease_until.expect("lease end");
        let expected = before.saturating_add(lease).as_micros();
        assert!(
            (until.as_micros() - expected).abs() < 30_000_000,
            "lease end"
        );
        assert_eq!(item.available_at, until);
    }
    let rest = store.claim("out", "b", lease, 10).await.unwrap();
    assert_eq!(messages_of(&rest), ids[2..]);
    assert!(store.claim("out", "b", lease, 10).await.unwrap().is_empty());

    // Ack: done for good.
    store.ack(first[0].id, "a").await.unwrap();
    let err = store.ack(first[0].id, "a").await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::LeaseNotHeld {
                state: QueueState::Done,
                ..
            }
        ),
        "{err}"
    );
    // Someone else's lease.
    let err = store.ack(first[1].id, "b").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseNotHeld { holder: Some(h), .. } if h == "a"),
        "{err}"
    );
    let err = store
        .nack(first[1].id, "b", Timestamp::now(), "x", 5)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err}");

    // Nack: retried later, not before.
    let later = Timestamp::now().saturating_add(Duration::from_hours(1));
    let state = store
        .nack(first[1].id, "a", later, "connection refused", 5)
        .await
        .unwrap();
    assert_eq!(state, QueueState::Ready);
    assert!(store.claim("out", "a", lease, 10).await.unwrap().is_empty());
    let err = store.ack(first[1].id, "a").await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::LeaseNotHeld {
                state: QueueState::Ready,
                ..
            }
        ),
        "{err}"
    );

    // Due now: claimable again, with the attempt and error recorded.
    store.ack(rest[0].id, "b").await.unwrap();
    let due = fill_queue(&store, "retry", 1).await;
    let item = store.claim("retry", "a", lease, 1).await.unwrap().remove(0);
    let state = store
        .nack(item.id, "a", Timestamp::now(), "timeout", 5)
        .await
        .unwrap();
    assert_eq!(state, QueueState::Ready);
    let again = store.claim("retry", "c", lease, 1).await.unwrap();
    assert_eq!(messages_of(&again), due);
    assert_eq!(again[0].id, item.id);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("timeout"));
    assert_eq!(again[0].lease_owner.as_deref(), Some("c"));
    store.ack(again[0].id, "c").await.unwrap();
    assert!(store.dead_letters("out").await.unwrap().is_empty());
    store.close().await.unwrap();
}

pub async fn lease_expiry_hands_item_over<B: Backend>(backend: &B) {
    let store = open(backend).await;
    fill_queue(&store, "q", 1).await;
    let short = Duration::from_millis(50);
    let a = store.claim("q", "a", short, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A lease that ran out but was not taken over still counts.
    store.ack(a[0].id, "a").await.unwrap();

    fill_queue(&store, "q2", 1).await;
    let a = store.claim("q2", "a", short, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = store
        .claim("q2", "b", Duration::from_mins(1), 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1, "an expired lease is claimable");
    assert_eq!(b[0].id, a[0].id);
    assert_eq!(b[0].lease_owner.as_deref(), Some("b"));
    assert_eq!(b[0].attempts, 0);
    // The old holder can no longer ack or nack it.
    let err = store.ack(a[0].id, "a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseNotHeld { holder: Some(h), .. } if h == "b"),
        "{err}"
    );
    let err = store
        .nack(a[0].id, "a", Timestamp::now(), "late", 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err}");
    // A live lease is not claimable.
    assert!(
        store
            .claim("q2", "c", Duration::from_mins(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.ack(b[0].id, "b").await.unwrap();
    store.close().await.unwrap();
}

pub async fn dead_letters_and_requeue<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let lease = Duration::from_mins(1);
    let mut ids = fill_queue(&store, "dl", 1).await;
    for attempt in 1..=3u32 {
        let item = store.claim("dl", "w", lease, 1).await.unwrap().remove(0);
        assert_eq!(item.message_id, ids[0]);
        assert_eq!(item.attempts, attempt - 1);
        let state = store
            .nack(
                item.id,
                "w",
                Timestamp::now(),
                &format!("failure {attempt}"),
                3,
            )
            .await
            .unwrap();
        let expected = if attempt < 3 {
            QueueState::Ready
        } else {
            QueueState::Dead
        };
        assert_eq!(state, expected);
    }
    ids.extend(fill_queue(&store, "dl", 1).await);
    let dead = store.dead_letters("dl").await.unwrap();
    assert_eq!(messages_of(&dead), vec![ids[0]]);
    assert_eq!(dead[0].state, QueueState::Dead);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("failure 3"));
    assert!(store.dead_letters("elsewhere").await.unwrap().is_empty());

    // The dead item is not claimed; the other one is.
    let live = store.claim("dl", "w", lease, 10).await.unwrap();
    assert_eq!(messages_of(&live), vec![ids[1]]);
    let err = store.requeue_dead(live[0].id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongQueueState {
                state: QueueState::Leased,
                ..
            }
        ),
        "{err}"
    );
    // max_attempts 1: the first failure is final.
    let state = store
        .nack(live[0].id, "w", Timestamp::now(), "fatal", 1)
        .await
        .unwrap();
    assert_eq!(state, QueueState::Dead);
    assert_eq!(store.dead_letters("dl").await.unwrap().len(), 2);

    store.requeue_dead(dead[0].id).await.unwrap();
    assert_eq!(store.dead_letters("dl").await.unwrap().len(), 1);
    let back = store.claim("dl", "w", lease, 10).await.unwrap();
    assert_eq!(messages_of(&back), vec![ids[0]]);
    assert_eq!(back[0].attempts, 0, "attempts reset");
    assert_eq!(back[0].last_error.as_deref(), Some("failure 3"));
    store.ack(back[0].id, "w").await.unwrap();
    store.close().await.unwrap();
}

pub async fn concurrent_claimers_never_share_an_item<B: Backend>(backend: &B) {
    const ITEMS: usize = 300;
    // Two stores on one database: two nodes (PostgreSQL) or two processes (SQLite).
    let first = Arc::new(open(backend).await);
    let second = Arc::new(open(backend).await);
    let ids = fill_queue(first.as_ref(), "shared", ITEMS).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(if w % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let items = store
                    .claim("shared", &owner, Duration::from_mins(5), 7)
                    .await
                    .unwrap();
                if items.is_empty() {
                    break;
                }
                for item in items {
                    store.ack(item.id, &owner).await.unwrap();
                    mine.push(item.message_id);
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "message {id} claimed twice");
        }
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
    first.close().await.unwrap();
    second.close().await.unwrap();
}
