//! Cases of strict FIFO claims (`claim_head`), lease extension and queue depths.

use super::*;

const LEASE: Duration = Duration::from_mins(5);

fn item_ids(items: &[QueueItem]) -> Vec<store::QueueItemId> {
    items.iter().map(|i| i.id).collect()
}

pub async fn claim_head_keeps_fifo_order_across_nack_and_retry<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let ids = fill_queue(&store, "fifo", 5).await;
    assert!(
        store
            .claim_head("fifo", "a", LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_head("empty", "a", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let first = store.claim_head("fifo", "a", LEASE, 2).await.unwrap();
    assert_eq!(messages_of(&first), ids[..2], "the head, in order");
    for item in &first {
        assert_eq!(item.state, QueueState::Leased);
        assert_eq!(item.lease_owner.as_deref(), Some("a"));
    }
    // The head is leased to a: b gets nothing, not the items behind it.
    assert!(
        store
            .claim_head("fifo", "b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Item 0 delivered; item 1 failed and waits for its retry time: it blocks the queue.
    store.ack(first[0].id, "a").await.unwrap();
    let retry_at = Timestamp::now().saturating_add(Duration::from_millis(1500));
    store
        .nack(first[1].id, "a", retry_at, "connection refused", 5)
        .await
        .unwrap();
    for owner in ["a", "b"] {
        assert!(
            store
                .claim_head("fifo", owner, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "a READY item that is not due blocks {owner}"
        );
    }
    assert_eq!(
        store.queue_depth("fifo").await.unwrap(),
        QueueDepth {
            ready: 4,
            leased: 0,
            dead: 0
        }
    );

    // Once due, the retried item comes first, then the rest in order.
    while Timestamp::now() <= retry_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rest = store.claim_head("fifo", "b", LEASE, 10).await.unwrap();
    assert_eq!(messages_of(&rest), ids[1..]);
    assert_eq!(rest[0].id, first[1].id);
    assert_eq!(rest[0].attempts, 1);
    assert_eq!(rest[0].last_error.as_deref(), Some("connection refused"));

    // A dead item does not block: what is behind it is claimed.
    store
        .nack(rest[0].id, "b", Timestamp::now(), "fatal", 1)
        .await
        .unwrap();
    for item in &rest[2..] {
        store.ack(item.id, "b").await.unwrap();
    }
    // rest[1] (message 2) is still leased to b: b takes it again, and nothing else is left.
    let again = store.claim_head("fifo", "b", LEASE, 10).await.unwrap();
    assert_eq!(messages_of(&again), vec![ids[2]]);
    store.ack(again[0].id, "b").await.unwrap();
    assert_eq!(
        store.queue_depth("fifo").await.unwrap(),
        QueueDepth {
            ready: 0,
            leased: 0,
            dead: 1
        }
    );
    store.close().await.unwrap();
}

pub async fn claim_head_after_lease_expiry_keeps_order<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let ids = fill_queue(&store, "crash", 4).await;
    let short = Duration::from_millis(50);
    // a takes the first two, then "crashes" (never acks); its leases run out.
    let a = store.claim_head("crash", "a", short, 2).await.unwrap();
    assert_eq!(messages_of(&a), ids[..2]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // b takes over from the head, in order: the expired leases, then the READY items.
    let b = store.claim_head("crash", "b", LEASE, 3).await.unwrap();
    assert_eq!(messages_of(&b), ids[..3]);
    assert_eq!(item_ids(&b[..2]), item_ids(&a));
    assert!(b.iter().all(|i| i.lease_owner.as_deref() == Some("b")));
    assert_eq!(b[0].attempts, 0, "lease expiry is not an attempt");
    let err = store.ack(a[0].id, "a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseNotHeld { holder: Some(h), .. } if h == "b"),
        "{err}"
    );
    // A live lease of b's on the head blocks c, although item 3 is READY.
    assert!(
        store
            .claim_head("crash", "c", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // b's lease on item 1 runs out while its lease on item 2 still runs: c may take item 1,
    // and stops at item 2 (a holder keeps all its leases alive with extend_lease).
    store.ack(b[0].id, "b").await.unwrap();
    store
        .extend_lease(b[1].id, "b", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let c = store.claim_head("crash", "c", LEASE, 10).await.unwrap();
    assert_eq!(
        messages_of(&c),
        ids[1..2],
        "b's live lease on item 2 stops c"
    );
    store.close().await.unwrap();
}

pub async fn claim_head_by_the_same_owner_renews_its_lease<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let ids = fill_queue(&store, "renew", 3).await;
    let first = store
        .claim_head("renew", "a", Duration::from_mins(1), 2)
        .await
        .unwrap();
    assert_eq!(messages_of(&first), ids[..2]);
    let again = store
        .claim_head("renew", "a", Duration::from_hours(1), 3)
        .await
        .unwrap();
    assert_eq!(
        messages_of(&again),
        ids,
        "its own items again, then the next"
    );
    assert_eq!(item_ids(&again[..2]), item_ids(&first));
    for (old, new) in first.iter().zip(&again) {
        let (old, new) = (old.lease_until.unwrap(), new.lease_until.unwrap());
        assert!(
            new.as_micros() - old.as_micros() > 50 * 60 * 1_000_000,
            "the lease runs an hour from now"
        );
        assert_eq!(new, again[0].available_at);
    }
    assert!(
        store
            .claim_head("renew", "b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for item in &again {
        store.ack(item.id, "a").await.unwrap();
    }
    store.close().await.unwrap();
}

pub async fn concurrent_claim_head_never_overlaps<B: Backend>(backend: &B) {
    const ITEMS: usize = 120;
    // Two stores on one database: two nodes (PostgreSQL) or two processes (SQLite).
    let first = Arc::new(open(backend).await);
    let second = Arc::new(open(backend).await);
    let ids = fill_queue(first.as_ref(), "ordered", ITEMS).await;
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = Arc::clone(if w % 2 == 0 { &first } else { &second });
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut claims = 0;
            loop {
                let items = store.claim_head("ordered", &owner, LEASE, 4).await.unwrap();
                if items.is_empty() {
                    let depth = store.queue_depth("ordered").await.unwrap();
                    if depth.ready + depth.leased == 0 {
                        return claims;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                claims += 1;
                // Logged before the acks: nobody can claim what follows until they are done.
                log.lock().unwrap().extend(messages_of(&items));
                for item in items {
                    store.ack(item.id, &owner).await.unwrap();
                }
            }
        }));
    }
    let mut claims = 0;
    for task in tasks {
        claims += task.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let distinct: HashSet<MessageId> = log.iter().copied().collect();
    assert_eq!(distinct.len(), log.len(), "an item was claimed twice");
    assert_eq!(log, ids, "every item, claimed in enqueue order");
    assert!(claims >= ITEMS / 4);
    first.close().await.unwrap();
    second.close().await.unwrap();
}

pub async fn extend_lease_renews_and_refuses_other_owners<B: Backend>(backend: &B) {
    let store = open(backend).await;
    fill_queue(&store, "ext", 2).await;
    let short = Duration::from_millis(100);
    let a = store
        .claim_head("ext", "a", short, 1)
        .await
        .unwrap()
        .remove(0);
    store
        .extend_lease(a.id, "a", Duration::from_mins(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.claim("ext", "b", LEASE, 10).await.unwrap().len(),
        1,
        "only the second item is claimable"
    );
    assert!(
        store
            .claim_head("ext", "b", LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "the extended lease still holds the head"
    );
    let err = store
        .extend_lease(a.id, "b", Duration::from_mins(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseNotHeld { holder: Some(h), .. } if h == "a"),
        "{err}"
    );

    // Once another owner claimed the item, the old holder cannot extend it.
    store.extend_lease(a.id, "a", short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = store.claim_head("ext", "c", LEASE, 1).await.unwrap();
    assert_eq!(item_ids(&c), vec![a.id]);
    let err = store.extend_lease(a.id, "a", LEASE).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseNotHeld { holder: Some(h), .. } if h == "c"),
        "{err}"
    );
    store.ack(a.id, "c").await.unwrap();
    let err = store.extend_lease(a.id, "c", LEASE).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LeaseNotHeld {
                state: QueueState::Done,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .extend_lease(store::QueueItemId(424_242), "c", LEASE)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QueueItemNotFound { .. }), "{err}");
    store.close().await.unwrap();
}

pub async fn queue_depth_and_names_count_each_state<B: Backend>(backend: &B) {
    let store = open(backend).await;
    assert!(store.queue_names().await.unwrap().is_empty());
    assert_eq!(
        store.queue_depth("none").await.unwrap(),
        QueueDepth::default()
    );
    fill_queue(&store, "d1", 6).await;
    let items = store.claim("d1", "w", LEASE, 3).await.unwrap();
    store.ack(items[0].id, "w").await.unwrap();
    store
        .nack(items[1].id, "w", Timestamp::now(), "fatal", 1)
        .await
        .unwrap();
    // a retry in the future still counts as READY
    let later = Timestamp::now().saturating_add(Duration::from_hours(1));
    let retry = store.claim("d1", "w", LEASE, 1).await.unwrap().remove(0);
    store.nack(retry.id, "w", later, "busy", 5).await.unwrap();
    assert_eq!(
        store.queue_depth("d1").await.unwrap(),
        QueueDepth {
            ready: 3,
            leased: 1,
            dead: 1
        }
    );
    // All done: the queue has no depth and no name any more.
    fill_queue(&store, "done", 1).await;
    let done = store.claim("done", "w", LEASE, 1).await.unwrap().remove(0);
    store.ack(done.id, "w").await.unwrap();
    fill_queue(&store, "d0", 1).await;
    // Only dead items: still named.
    fill_queue(&store, "dead-only", 1).await;
    let dead = store
        .claim("dead-only", "w", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    store
        .nack(dead.id, "w", Timestamp::now(), "fatal", 1)
        .await
        .unwrap();
    assert_eq!(
        store.queue_names().await.unwrap(),
        vec!["d0", "d1", "dead-only"]
    );
    assert_eq!(
        store.queue_depth("done").await.unwrap(),
        QueueDepth::default()
    );
    assert_eq!(
        serde_json::to_value(store.queue_depth("d0").await.unwrap()).unwrap(),
        serde_json::json!({"ready": 1, "leased": 0, "dead": 0})
    );
    store.close().await.unwrap();
}

pub async fn held_head_reads_the_prefix_leased_to_its_owner<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let leased =
        |i: usize| adt("held", &format!("H{i}"), "1").enqueue_leased("held/1", 1, "w", LEASE);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(store.append(leased(i)).await.unwrap());
    }
    // a READY item, then one more leased to w: the READY one ends w's prefix
    ids.extend(fill_queue(&store, "held/1", 1).await);
    ids.push(store.append(leased(4)).await.unwrap());
    let depth = store.queue_depth("held/1").await.unwrap();

    let head = store.held_head("held/1", "w", &[], 10).await.unwrap();
    assert_eq!(
        messages_of(&head),
        ids[..3],
        "in order, up to the READY item"
    );
    for item in &head {
        assert_eq!(item.state, QueueState::Leased);
        assert_eq!(item.lease_owner.as_deref(), Some("w"));
        assert!(item.lease_until.is_some());
    }
    assert!(head.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        messages_of(&store.held_head("held/1", "w", &[], 2).await.unwrap()),
        ids[..2],
        "at most limit"
    );
    assert!(
        store
            .held_head("held/1", "other", &[], 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing of the head is leased to another owner"
    );
    assert!(
        store
            .held_head("held/1", "w", &[], 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .held_head("empty/1", "w", &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
    // items the caller is delivering are passed over, wherever they are in the list
    let skip = [head[1].id, head[0].id];
    assert_eq!(
        messages_of(&store.held_head("held/1", "w", &skip, 10).await.unwrap()),
        ids[2..3]
    );
    // a read: nothing changed, and the leases still keep other claimers out
    assert_eq!(store.queue_depth("held/1").await.unwrap(), depth);
    assert!(
        store
            .claim_head("held/1", "b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // completed items leave the head; a skipped id that is done does no harm
    store.ack(head[0].id, "w").await.unwrap();
    assert_eq!(
        messages_of(
            &store
                .held_head("held/1", "w", &[head[0].id], 10)
                .await
                .unwrap()
        ),
        ids[1..3]
    );
    // once w claims the READY item, the whole queue is w's, in order
    let claimed = store.claim_head("held/1", "w", LEASE, 10).await.unwrap();
    assert_eq!(messages_of(&claimed), ids[1..]);
    assert_eq!(
        messages_of(&store.held_head("held/1", "w", &[], 10).await.unwrap()),
        ids[1..]
    );
    // a nacked item waiting for its retry ends the prefix again, at the head
    store
        .nack(
            claimed[0].id,
            "w",
            Timestamp::now().saturating_add(LEASE),
            "down",
            5,
        )
        .await
        .unwrap();
    assert!(
        store
            .held_head("held/1", "w", &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}
