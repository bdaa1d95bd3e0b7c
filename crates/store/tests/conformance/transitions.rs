//! Cases of what the channel engine writes and prunes: transitions (`apply`), destination
//! statuses, reprocessed messages (`original_id`, `route_only`), retention and deletion.

use super::*;

/// Appends a message on `channel` with a READY item on `queue`, and leases it to `owner`.
async fn leased<S: Store>(store: &S, queue: &str, owner: &str, control_id: &str) -> QueueItem {
    store
        .append(adt("engine", control_id, "1").enqueue_to(queue, 0))
        .await
        .unwrap();
    let item = store
        .claim(queue, owner, Duration::from_mins(5), 1)
        .await
        .unwrap();
    assert_eq!(item.len(), 1, "one item to lease on {queue}");
    item.into_iter().next().unwrap()
}

fn update(
    destination: Destination,
    name: &str,
    status: Status,
    error: Option<&str>,
) -> DestinationUpdate {
    DestinationUpdate {
        destination,
        name: name.into(),
        status,
        error: error.map(Into::into),
        shared: Shared::NONE,
    }
}

/// A transition that does a bit of everything to `item`'s message.
fn full_transition(item: &QueueItem, owner: &str) -> Transition {
    let mut t = Transition::new(item.message_id);
    t.complete = Some((item.id, owner.into()));
    t.status = Some((Status::Transformed, None));
    t.destinations = vec![
        update(2, "archive", Status::Sent, None),
        update(1, "lab-out", Status::Queued, None),
    ];
    t.content = vec![
        (1, Stage::Encoded, b"encoded for 1".to_vec()),
        (0, Stage::Transformed, b"transformed".to_vec()),
    ];
    t.enqueue = vec![Enqueue {
        queue: "next/1".into(),
        destination: 1,
        lease: None,
    }];
    t.metadata = vec![("Visit".into(), "V9".into()), ("Ward".into(), "W2".into())];
    t
}

pub async fn apply_writes_every_part_of_a_transition<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let item = leased(&store, "src", "w", "C1").await;
    let id = item.message_id;
    let before = Timestamp::now();
    store
        .apply(vec![full_transition(&item, "w")])
        .await
        .unwrap();

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.summary.status, Status::Transformed);
    assert_eq!(got.summary.error, None);
    // Destination rows come back ordered by destination.
    let shown: Vec<(Destination, &str, Status, Option<&str>)> = got
        .destinations
        .iter()
        .map(|d| (d.destination, d.name.as_str(), d.status, d.error.as_deref()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (1, "lab-out", Status::Queued, None),
            (2, "archive", Status::Sent, None)
        ]
    );
    for d in &got.destinations {
        let skew = before.as_micros() - d.updated_at.as_micros();
        assert!(skew < 30_000_000, "updated_at is about now");
    }
    assert_eq!(got.destination(2).map(|d| d.status), Some(Status::Sent));
    assert_eq!(got.stage(1, Stage::Encoded), Some(&b"encoded for 1"[..]));
    assert_eq!(got.stage(0, Stage::Transformed), Some(&b"transformed"[..]));
    assert!(got.raw().is_some(), "the received bytes stay");
    assert_eq!(
        got.metadata,
        vec![
            ("MRN".to_owned(), "1".to_owned()),
            ("Visit".to_owned(), "V9".to_owned()),
            ("Ward".to_owned(), "W2".to_owned()),
        ]
    );
    // Metadata added by a transition is searchable like that given at append.
    let by_visit = MessageFilter {
        metadata: vec![("Visit".into(), "V9".into()), ("MRN".into(), "1".into())],
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&by_visit).await.unwrap(), 1);
    // The source item is done, the next one is ready.
    let err = store.ack(item.id, "w").await.unwrap_err();
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
    assert_eq!(
        store.queue_depth("src").await.unwrap(),
        QueueDepth::default()
    );
    let next = store
        .claim("next/1", "w", Duration::from_mins(1), 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&next), vec![id]);
    assert_eq!(next[0].destination, 1);

    // Later transitions update the rows in place; status alone leaves the rest as it is.
    let mut t = Transition::new(id);
    t.complete = Some((next[0].id, "w".into()));
    t.status = Some((Status::Error, Some("destination 1 failed".into())));
    t.destinations = vec![
        update(1, "lab-out", Status::Sent, None),
        // given twice in one transition: the last one counts
        update(
            1,
            "lab-out-renamed",
            Status::Error,
            Some("connection refused"),
        ),
    ];
    t.content = vec![(1, Stage::Encoded, b"encoded again".to_vec())];
    t.metadata = vec![("Visit".into(), "V10".into())];
    store.apply(vec![t]).await.unwrap();
    let again = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (again.summary.status, again.summary.error.as_deref()),
        (Status::Error, Some("destination 1 failed"))
    );
    let one = again.destination(1).unwrap();
    assert_eq!(
        (one.name.as_str(), one.status, one.error.as_deref()),
        ("lab-out-renamed", Status::Error, Some("connection refused"))
    );
    assert!(one.updated_at >= got.destination(1).unwrap().updated_at);
    assert_eq!(again.destination(2), got.destination(2));
    assert_eq!(again.stage(1, Stage::Encoded), Some(&b"encoded again"[..]));
    assert_eq!(again.metadata.len(), 4);
    assert_eq!(again.metadata[3], ("Visit".to_owned(), "V10".to_owned()));

    // A transition without `status` or `complete` changes only what it names.
    let mut t = Transition::new(id);
    t.destinations = vec![update(3, "audit", Status::Filtered, None)];
    store.apply(vec![t]).await.unwrap();
    let third = store.get(id).await.unwrap().unwrap();
    assert_eq!(third.summary.status, Status::Error);
    assert_eq!(
        third
            .destinations
            .iter()
            .map(|d| d.destination)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // Several messages in one call; nothing to do is fine.
    let a = leased(&store, "src", "w", "C2").await;
    let b = leased(&store, "src", "w", "C3").await;
    let mut ta = Transition::new(a.message_id);
    ta.complete = Some((a.id, "w".into()));
    ta.status = Some((Status::Sent, None));
    let mut tb = Transition::new(b.message_id);
    tb.complete = Some((b.id, "w".into()));
    tb.status = Some((Status::Filtered, None));
    store.apply(vec![ta, tb]).await.unwrap();
    for (m, status) in [
        (a.message_id, Status::Sent),
        (b.message_id, Status::Filtered),
    ] {
        assert_eq!(store.get(m).await.unwrap().unwrap().summary.status, status);
    }
    store.apply(Vec::new()).await.unwrap();
    store.close().await.unwrap();
}

/// What a failed apply must leave: `item`'s message exactly as before, its item still leased
/// to `owner`, and nothing on `queue`.
async fn untouched<S: Store>(store: &S, before: &StoredMessage, queue: &str) {
    let now = store.get(before.summary.id).await.unwrap().unwrap();
    assert_eq!(&now, before, "nothing of the failed apply was written");
    assert_eq!(
        store.queue_depth(queue).await.unwrap(),
        QueueDepth::default()
    );
}

pub async fn apply_is_all_or_nothing<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let a = leased(&store, "src", "w", "A").await;
    let b = leased(&store, "src", "w", "B").await;
    let before_a = store.get(a.message_id).await.unwrap().unwrap();
    let before_b = store.get(b.message_id).await.unwrap().unwrap();
    let depth_before = store.queue_depth("src").await.unwrap();
    assert_eq!(depth_before.leased, 2);

    // The second transition's lease is not held: the first one is rolled back too.
    let mut tb = Transition::new(b.message_id);
    tb.complete = Some((b.id, "intruder".into()));
    tb.status = Some((Status::Sent, None));
    let err = store
        .apply(vec![full_transition(&a, "w"), tb])
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::LeaseNotHeld { item, holder: Some(h), state: QueueState::Leased, .. }
                if *item == b.id && h == "w"
        ),
        "{err}"
    );
    untouched(&store, &before_a, "next/1").await;
    untouched(&store, &before_b, "next/1").await;
    assert_eq!(store.queue_depth("src").await.unwrap(), depth_before);
    assert_eq!(
        store
            .count(&MessageFilter {
                metadata: vec![("Visit".into(), "V9".into())],
                ..MessageFilter::default()
            })
            .await
            .unwrap(),
        0
    );

    // An unknown message, after a valid transition.
    let unknown: MessageId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let mut tu = Transition::new(unknown);
    tu.status = Some((Status::Sent, None));
    let err = store
        .apply(vec![full_transition(&a, "w"), tu])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MessageNotFound { id, .. } if id == unknown),
        "{err}"
    );
    assert!(err.is_not_found());
    untouched(&store, &before_a, "next/1").await;

    // An unknown queue item.
    let mut tq = Transition::new(b.message_id);
    tq.complete = Some((store::QueueItemId(424_242), "w".into()));
    let err = store
        .apply(vec![full_transition(&a, "w"), tq])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QueueItemNotFound { .. }), "{err}");
    untouched(&store, &before_a, "next/1").await;

    // The same item completed twice: the second time it is DONE already.
    let err = store
        .apply(vec![full_transition(&a, "w"), full_transition(&a, "w")])
        .await
        .unwrap_err();
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
    untouched(&store, &before_a, "next/1").await;

    // Refused before it reaches the database: replacing the received bytes, an empty queue.
    let mut raw = full_transition(&a, "w");
    raw.content.push((0, Stage::Raw, b"tampered".to_vec()));
    let mut empty_queue = Transition::new(b.message_id);
    empty_queue.enqueue.push(Enqueue {
        queue: String::new(),
        destination: 1,
        lease: None,
    });
    for bad in [raw, empty_queue] {
        let err = store
            .apply(vec![full_transition(&b, "w"), bad])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    }
    untouched(&store, &before_a, "next/1").await;
    untouched(&store, &before_b, "next/1").await;

    // A write the database itself refuses (a trigger) rolls back the lease ack before it.
    backend.fail_inserts_into("broken").await;
    let mut broken = full_transition(&a, "w");
    broken.enqueue.push(Enqueue {
        queue: "broken".into(),
        destination: 2,
        lease: None,
    });
    let err = store.apply(vec![broken]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlite { .. } | StoreError::Postgres { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("apply of message {}", a.message_id)),
        "the error says what failed: {err}"
    );
    untouched(&store, &before_a, "next/1").await;
    assert_eq!(store.queue_depth("src").await.unwrap(), depth_before);

    // Both items are still held by their owner: the valid transitions go through.
    let mut tb = Transition::new(b.message_id);
    tb.complete = Some((b.id, "w".into()));
    store
        .apply(vec![full_transition(&a, "w"), tb])
        .await
        .unwrap();
    assert_eq!(
        store.queue_depth("src").await.unwrap(),
        QueueDepth::default()
    );
    assert_eq!(store.queue_depth("next/1").await.unwrap().ready, 1);
    store.close().await.unwrap();
}

pub async fn route_only_and_original_id_round_trip<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let original = store.append(adt("re", "O", "1")).await.unwrap();
    let cases: [Option<Vec<Destination>>; 5] = [
        None,
        Some(vec![1, 3]),
        Some(vec![3, 1]),
        Some(vec![]),
        Some(vec![65_535]),
    ];
    for route in cases {
        let mut m = adt("re", "R", "1");
        m.original_id = Some(original);
        m.route_only.clone_from(&route);
        let id = store.append(m).await.unwrap();
        let got = store.get(id).await.unwrap().unwrap().summary;
        assert_eq!(got.route_only, route);
        assert_eq!(got.original_id, Some(original));
        let listed = store
            .list(&MessageFilter {
                limit: Some(1),
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed[0], got, "list shows the same fields as get");
    }
    let plain = store.get(original).await.unwrap().unwrap().summary;
    assert_eq!((plain.original_id, plain.route_only), (None, None));
    store.close().await.unwrap();
}

pub async fn original_id_filter_finds_reprocessed_copies<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let original = store.append(adt("re", "O1", "1")).await.unwrap();
    let other = store.append(adt("re", "O2", "2")).await.unwrap();
    let mut copies = Vec::new();
    for (i, channel) in ["re", "re", "elsewhere"].into_iter().enumerate() {
        let mut m = adt(channel, &format!("copy{i}"), "1");
        m.original_id = Some(original);
        m.route_only = Some(vec![1]);
        copies.push(store.append(m).await.unwrap());
    }
    let mut m = adt("re", "copy-other", "2");
    m.original_id = Some(other);
    let copy_of_other = store.append(m).await.unwrap();

    let find = |original_id: MessageId, channel: Option<&str>| {
        let filter = MessageFilter {
            original_id: Some(original_id),
            channel: channel.map(Into::into),
            ..MessageFilter::default()
        };
        let store = &store;
        async move {
            let ids: Vec<MessageId> = store
                .list(&filter)
                .await
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect();
            assert_eq!(store.count(&filter).await.unwrap(), ids.len() as u64);
            ids
        }
    };
    assert_eq!(
        find(original, None).await,
        vec![copies[2], copies[1], copies[0]],
        "newest first"
    );
    assert_eq!(find(original, Some("re")).await, vec![copies[1], copies[0]]);
    assert_eq!(find(other, None).await, vec![copy_of_other]);
    assert!(find(copies[0], None).await.is_empty());
    store.close().await.unwrap();
}

pub async fn prunable_excludes_pending_work_and_respects_keep_last_and_older_than<B: Backend>(
    backend: &B,
) {
    let store = open(backend).await;
    let t0 = Timestamp::from_micros(1_700_000_000_000_000);
    let hour = Duration::from_hours(1);
    let lease = Duration::from_mins(5);
    let mut ids = Vec::new();
    for i in 0u32..10 {
        let mut m = adt("r", &format!("R{i}"), "1").enqueue_to(format!("r/{i}"), 1);
        m.received_at = t0.saturating_add(hour * i);
        ids.push(store.append(m).await.unwrap());
    }
    // Another channel's old messages are never listed for "r".
    let mut old = adt("other", "X", "1");
    old.received_at = t0;
    store.append(old).await.unwrap();
    // Items: 2 stays READY, 7 is LEASED (undelivered work); 5 is DEAD; the rest are DONE.
    for i in [0usize, 1, 3, 4, 5, 6, 7, 8, 9] {
        let queue = format!("r/{i}");
        let item = store.claim(&queue, "w", lease, 1).await.unwrap().remove(0);
        match i {
            5 => {
                store
                    .nack(item.id, "w", Timestamp::now(), "gone", 1)
                    .await
                    .unwrap();
            }
            7 => {}
            _ => store.ack(item.id, "w").await.unwrap(),
        }
    }
    let pick = |indexes: &[usize]| indexes.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let prunable = |older_than: Option<Timestamp>, keep_last: Option<u64>, limit: u32| {
        store.prunable("r", older_than, keep_last, limit)
    };

    assert!(
        prunable(None, None, 100).await.unwrap().is_empty(),
        "no rule, nothing"
    );
    // Received strictly before: hours 0..=4, without message 2.
    assert_eq!(
        prunable(Some(t0.saturating_add(hour * 5)), None, 100)
            .await
            .unwrap(),
        pick(&[0, 1, 3, 4])
    );
    // Beyond the newest 3 (7, 8, 9 stay): 0..=6, without 2.
    assert_eq!(
        prunable(None, Some(3), 100).await.unwrap(),
        pick(&[0, 1, 3, 4, 5, 6])
    );
    assert_eq!(
        prunable(None, Some(0), 100).await.unwrap(),
        pick(&[0, 1, 3, 4, 5, 6, 8, 9])
    );
    assert!(prunable(None, Some(10), 100).await.unwrap().is_empty());
    assert!(
        prunable(None, Some(u64::MAX), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Either rule makes a message prunable.
    assert_eq!(
        prunable(Some(t0.saturating_add(hour)), Some(7), 100)
            .await
            .unwrap(),
        pick(&[0, 1])
    );
    assert_eq!(
        prunable(Some(t0.saturating_add(hour * 6)), Some(9), 100)
            .await
            .unwrap(),
        pick(&[0, 1, 3, 4, 5])
    );
    // Oldest first, at most `limit`.
    assert_eq!(prunable(None, Some(0), 2).await.unwrap(), pick(&[0, 1]));
    assert!(prunable(None, Some(0), 0).await.unwrap().is_empty());
    assert!(
        store
            .prunable("nowhere", None, Some(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Once its work is done, a message becomes prunable.
    let held = store.claim("r/2", "w", lease, 1).await.unwrap().remove(0);
    store.ack(held.id, "w").await.unwrap();
    let seven = store.claim("r/7", "x", lease, 1).await.unwrap();
    assert!(seven.is_empty(), "7 is still leased to w");
    assert_eq!(
        prunable(None, Some(0), 100).await.unwrap(),
        pick(&[0, 1, 2, 3, 4, 5, 6, 8, 9])
    );
    store.close().await.unwrap();
}

pub async fn delete_cascades_to_everything<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let item = leased(&store, "src", "w", "D1").await;
    let id = item.message_id;
    let mut t = full_transition(&item, "w");
    t.enqueue.push(Enqueue {
        queue: "dead/1".into(),
        destination: 2,
        lease: None,
    });
    store.apply(vec![t]).await.unwrap();
    let dead = store
        .claim("dead/1", "w", Duration::from_mins(1), 1)
        .await
        .unwrap()
        .remove(0);
    store
        .nack(dead.id, "w", Timestamp::now(), "refused", 1)
        .await
        .unwrap();
    let kept = store
        .append(adt("engine", "D2", "1").enqueue_to("next/1", 1))
        .await
        .unwrap();
    let kept_before = store.get(kept).await.unwrap().unwrap();
    for table in [
        "message_metadata",
        "message_content",
        "message_destinations",
        "queue_items",
    ] {
        assert!(backend.count_rows(table, id).await > 0, "{table} has rows");
    }

    let unknown: MessageId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert_eq!(store.delete(&[id, unknown]).await.unwrap(), 1);
    assert!(store.get(id).await.unwrap().is_none());
    for table in [
        "message_metadata",
        "message_content",
        "message_destinations",
        "queue_items",
    ] {
        assert_eq!(backend.count_rows(table, id).await, 0, "{table} is emptied");
    }
    assert!(store.dead_letters("dead/1").await.unwrap().is_empty());
    let visit = MessageFilter {
        metadata: vec![("Visit".into(), "V9".into())],
        ..MessageFilter::default()
    };
    assert_eq!(store.count(&visit).await.unwrap(), 0);
    // The other message and its work are untouched.
    assert_eq!(store.get(kept).await.unwrap().unwrap(), kept_before);
    let next = store
        .claim("next/1", "w", Duration::from_mins(1), 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&next), vec![kept]);
    // Deleting again, or nothing, deletes nothing.
    assert_eq!(store.delete(&[id]).await.unwrap(), 0);
    assert_eq!(store.delete(&[]).await.unwrap(), 0);
    // An apply of a deleted message is an unknown message.
    let err = store.apply(vec![Transition::new(id)]).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    store.close().await.unwrap();
}

pub async fn prune_in_batches_while_appending<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    for i in 0..300 {
        store
            .append(adt("busy", &format!("old{i}"), "1"))
            .await
            .unwrap();
    }
    // Appends go on while the pruner deletes everything but the newest 50, in batches.
    let appender = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                ids.push(
                    store
                        .append(adt("busy", &format!("new{i}"), "1"))
                        .await
                        .unwrap(),
                );
            }
            ids
        })
    };
    let mut deleted = 0;
    loop {
        let batch = store.prunable("busy", None, Some(150), 40).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 40);
        assert!(batch.windows(2).all(|w| w[0] < w[1]), "oldest first");
        deleted += store.delete(&batch).await.unwrap();
    }
    let new = appender.await.unwrap();
    // Pruning may have stopped before the appender finished: run it once more.
    loop {
        let batch = store.prunable("busy", None, Some(150), 40).await.unwrap();
        if batch.is_empty() {
            break;
        }
        deleted += store.delete(&batch).await.unwrap();
    }
    assert_eq!(deleted, 250);
    let filter = MessageFilter {
        channel: Some("busy".into()),
        limit: Some(1000),
        ..MessageFilter::default()
    };
    let left: Vec<MessageId> = store
        .list(&filter)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left.len(), 150);
    for id in new {
        assert!(left.contains(&id), "the newest messages stay");
    }
    store.close().await.unwrap();
}

pub async fn refresh_status_follows_the_destinations<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let item = leased(&store, "src", "w", "R1").await;
    let id = item.message_id;
    let mut t = Transition::new(id);
    t.complete = Some((item.id, "w".into()));
    t.status = Some((Status::Queued, None));
    t.destinations = vec![
        update(1, "lab", Status::Queued, None),
        update(2, "billing", Status::Queued, None),
        update(3, "archive", Status::Filtered, None),
    ];
    store.apply(vec![t]).await.unwrap();

    let refresh = |d: DestinationUpdate| {
        let mut t = Transition::new(id);
        t.destinations = vec![d];
        t.refresh_status = true;
        t
    };
    // one sent, one still queued: the message is still QUEUED
    store
        .apply(vec![refresh(update(1, "lab", Status::Sent, None))])
        .await
        .unwrap();
    assert_eq!(status_of(&store, id).await, (Status::Queued, None));
    // both sent (the third filtered): SENT
    store
        .apply(vec![refresh(update(2, "billing", Status::Sent, None))])
        .await
        .unwrap();
    assert_eq!(status_of(&store, id).await, (Status::Sent, None));
    // a destination failing later makes it ERROR with that destination's error
    store
        .apply(vec![refresh(update(
            2,
            "billing",
            Status::Error,
            Some("refused"),
        ))])
        .await
        .unwrap();
    assert_eq!(
        status_of(&store, id).await,
        (Status::Error, Some("billing: refused".into()))
    );

    // all destinations filtered: FILTERED; without destination rows nothing changes
    let other = leased(&store, "src", "w", "R2").await;
    let mut t = refresh(update(1, "lab", Status::Filtered, None));
    t.message_id = other.message_id;
    store.apply(vec![t]).await.unwrap();
    assert_eq!(
        store
            .get(other.message_id)
            .await
            .unwrap()
            .unwrap()
            .summary
            .status,
        Status::Filtered
    );
    let bare = store.append(adt("engine", "R3", "1")).await.unwrap();
    let mut t = Transition::new(bare);
    t.refresh_status = true;
    store.apply(vec![t]).await.unwrap();
    assert_eq!(
        store.get(bare).await.unwrap().unwrap().summary.status,
        Status::Received
    );
}

async fn status_of<S: Store>(store: &S, id: MessageId) -> (Status, Option<String>) {
    let m = store.get(id).await.unwrap().unwrap();
    (m.summary.status, m.summary.error)
}

pub async fn contents_reads_one_stage_of_many_messages<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let item = leased(&store, "src", "w", &format!("K{i}")).await;
        let mut t = Transition::new(item.message_id);
        t.complete = Some((item.id, "w".into()));
        // every other message gets ENCODED for destination 1; all get it for destination 2
        if i % 2 == 0 {
            t.content.push((1, Stage::Encoded, vec![b'a', i]));
        }
        t.content.push((2, Stage::Encoded, vec![b'b', i]));
        store.apply(vec![t]).await.unwrap();
        ids.push(item.message_id);
    }
    let mut got = store.contents(&ids, 1, Stage::Encoded).await.unwrap();
    got.sort();
    let want: Vec<(MessageId, Vec<u8>)> = [0u8, 2, 4]
        .iter()
        .map(|&i| (ids[usize::from(i)], vec![b'a', i]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        store.contents(&ids, 2, Stage::Encoded).await.unwrap().len(),
        5
    );
    assert!(
        store
            .contents(&ids, 1, Stage::Sent)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .contents(&[], 1, Stage::Encoded)
            .await
            .unwrap()
            .is_empty()
    );
    // the received bytes are a stage like any other
    assert_eq!(
        store
            .contents(&ids[..1], 0, Stage::Raw)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A destination worker's batch: many transitions of distinct messages without metadata
/// (PostgreSQL applies them set-based); every part lands, and one stale lease among them
/// still fails the whole apply with that item named.
pub async fn a_batch_of_deliveries_applies_whole_or_not_at_all<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut items = Vec::new();
    for i in 0..6 {
        items.push(leased(&store, "out", "w", &format!("B{i}")).await);
    }
    let delivered = |item: &QueueItem, owner: &str| {
        let mut t = Transition::new(item.message_id);
        t.complete = Some((item.id, owner.into()));
        t.destinations = vec![update(1, "lab", Status::Sent, None)];
        t.content = vec![
            (1, Stage::Sent, b"sent".to_vec()),
            (1, Stage::Response, b"MSA|AA".to_vec()),
        ];
        t.enqueue = vec![Enqueue {
            queue: "after".into(),
            destination: 2,
            lease: None,
        }];
        t.refresh_status = true;
        t
    };
    // one of them with a lease this owner does not hold: nothing is written
    let mut bad: Vec<Transition> = items[..3].iter().map(|i| delivered(i, "w")).collect();
    bad[1].complete = Some((items[1].id, "someone-else".into()));
    let err = store.apply(bad).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err:?}");
    let first = store.get(items[0].message_id).await.unwrap().unwrap();
    assert!(first.destinations.is_empty(), "rolled back");
    assert_eq!(store.queue_depth("after").await.unwrap().ready, 0);

    store
        .apply(items.iter().map(|i| delivered(i, "w")).collect())
        .await
        .unwrap();
    for item in &items {
        let m = store.get(item.message_id).await.unwrap().unwrap();
        assert_eq!(m.summary.status, Status::Sent);
        assert_eq!(m.stage(1, Stage::Sent), Some(&b"sent"[..]));
        assert_eq!(m.stage(1, Stage::Response), Some(&b"MSA|AA"[..]));
        assert_eq!(m.destinations.len(), 1);
    }
    assert_eq!(
        store.queue_depth("out").await.unwrap().leased,
        0,
        "all completed"
    );
    let next = store
        .claim_head("after", "x", Duration::from_mins(1), 100)
        .await
        .unwrap();
    let order: Vec<MessageId> = next.iter().map(|i| i.message_id).collect();
    let want: Vec<MessageId> = items.iter().map(|i| i.message_id).collect();
    assert_eq!(order, want, "enqueued in transition order");
}
