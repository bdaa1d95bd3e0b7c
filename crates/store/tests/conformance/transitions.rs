//! Cases of what the channel engine writes: transitions (`apply`), destination
//! statuses, reprocessed messages (`original_id`, `route_only`).

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
