//! Cases of appends that carry the outcome of a message's source side: an id made before the
//! append, content stages, destination rows and queue items leased at once, all stored in the
//! append's one transaction.

use super::*;

const LEASE: Duration = Duration::from_mins(5);

fn row(destination: Destination, name: &str, status: Status) -> DestinationUpdate {
    DestinationUpdate {
        destination,
        name: name.into(),
        status,
        error: None,
        shared: Shared::NONE,
    }
}

/// The (destination, stage) of every content of a message, in order.
fn stages_of(m: &StoredMessage) -> Vec<(Destination, Stage)> {
    m.content.iter().map(|c| (c.destination, c.stage)).collect()
}

pub async fn append_stores_the_source_side_in_one_write<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let id = MessageId::generate().unwrap();
    let before = Timestamp::now();
    let mut m = adt("engine", "C1", "7")
        .enqueue_leased("engine/1", 1, "node-a", LEASE)
        .enqueue_to("engine/2", 2);
    m.id = Some(id);
    m.status = Status::Queued;
    m.content = vec![
        (0, Stage::Transformed, b"transformed".to_vec()),
        (1, Stage::Encoded, b"first try".to_vec()),
        (2, Stage::Encoded, b"for 2".to_vec()),
        (1, Stage::Encoded, b"for 1".to_vec()),
    ];
    m.destinations = vec![
        row(2, "archive", Status::Queued),
        row(1, "lab-out", Status::Queued),
        row(3, "audit", Status::Filtered),
    ];
    let raw = m.raw.clone();
    assert_eq!(
        store.append(m).await.unwrap(),
        id,
        "stored with the id given"
    );
    assert_eq!(store.stats().messages, 1);

    let got = store.get(id).await.unwrap().expect("appended message");
    assert_eq!(got.summary.id, id);
    assert_eq!(got.summary.status, Status::Queued);
    assert_eq!(got.metadata, vec![("MRN".to_owned(), "7".to_owned())]);
    assert_eq!(got.raw(), Some(raw.as_slice()));
    assert_eq!(got.stage(0, Stage::Transformed), Some(&b"transformed"[..]));
    assert_eq!(
        got.stage(1, Stage::Encoded),
        Some(&b"for 1"[..]),
        "the last of a stage given twice"
    );
    assert_eq!(got.stage(2, Stage::Encoded), Some(&b"for 2"[..]));
    assert_eq!(got.stage(1, Stage::Raw), None);
    assert_eq!(
        stages_of(&got),
        vec![
            (0, Stage::Raw),
            (0, Stage::Transformed),
            (1, Stage::Encoded),
            (2, Stage::Encoded),
        ]
    );
    let rows: Vec<(Destination, &str, Status)> = got
        .destinations
        .iter()
        .map(|d| (d.destination, d.name.as_str(), d.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "lab-out", Status::Queued),
            (2, "archive", Status::Queued),
            (3, "audit", Status::Filtered),
        ]
    );
    for d in &got.destinations {
        assert!(d.updated_at.as_micros() >= before.as_micros() - 60_000_000);
        assert_eq!(d.error, None);
    }
    let filter = MessageFilter {
        channel: Some("engine".into()),
        ..MessageFilter::default()
    };
    assert_eq!(store.list(&filter).await.unwrap()[0].id, id);

    // the leased item is the owner's: counted as leased, not claimable by anyone else
    assert_eq!(
        store.queue_depth("engine/1").await.unwrap(),
        QueueDepth {
            ready: 0,
            leased: 1,
            dead: 0
        }
    );
    assert!(
        store
            .claim("engine/1", "node-b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_head("engine/1", "node-b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ... and its owner re-claims it at once
    let mine = store
        .claim_head("engine/1", "node-a", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&mine), vec![id]);
    assert_eq!(mine[0].destination, 1);
    assert_eq!(mine[0].attempts, 0);
    assert_eq!(mine[0].state, QueueState::Leased);
    assert_eq!(mine[0].lease_owner.as_deref(), Some("node-a"));
    store.ack(mine[0].id, "node-a").await.unwrap();
    assert_eq!(
        store.queue_depth("engine/1").await.unwrap(),
        QueueDepth::default()
    );

    // an item without a lease is READY as ever
    assert_eq!(
        store.queue_depth("engine/2").await.unwrap(),
        QueueDepth {
            ready: 1,
            leased: 0,
            dead: 0
        }
    );
    let other = store.claim("engine/2", "w", LEASE, 10).await.unwrap();
    assert_eq!(messages_of(&other), vec![id]);
    assert_eq!(other[0].destination, 2);
    store.close().await.unwrap();
}

pub async fn leased_items_wait_for_their_lease<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let started = Timestamp::now();
    let long = store
        .append(adt("engine", "C1", "1").enqueue_leased("long/1", 1, "node-a", LEASE))
        .await
        .unwrap();
    // while the lease runs, nobody else gets the item, and it blocks the head of its queue
    fill_queue(&store, "long/1", 1).await;
    assert!(
        store
            .claim_head("long/1", "node-b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = store.claim("long/1", "node-b", LEASE, 10).await.unwrap();
    assert!(
        !messages_of(&taken).contains(&long),
        "a leased item is not claimable"
    );
    for item in &taken {
        store.ack(item.id, "node-b").await.unwrap();
    }
    let mine = store
        .claim_head("long/1", "node-a", Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&mine), vec![long]);
    let until = mine[0].lease_until.unwrap().as_micros();
    assert!(
        until < started.as_micros() + 60_000_000,
        "the lease renewed"
    );

    // once it ran out, anyone may take it, and its first owner no longer holds it
    let short = store
        .append(adt("engine", "C2", "1").enqueue_leased(
            "short/1",
            1,
            "node-a",
            Duration::from_millis(50),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = store
        .claim_head("short/1", "node-b", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&b), vec![short]);
    assert_eq!(b[0].lease_owner.as_deref(), Some("node-b"));
    let err = store.ack(b[0].id, "node-a").await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err}");
    store.ack(b[0].id, "node-b").await.unwrap();

    // a transition enqueues leased items the same way
    let mut t = Transition::new(short);
    t.enqueue.push(Enqueue {
        queue: "next/1".into(),
        destination: 1,
        lease: Some(("node-a".into(), LEASE)),
    });
    store.apply(vec![t]).await.unwrap();
    assert_eq!(
        store.queue_depth("next/1").await.unwrap(),
        QueueDepth {
            ready: 0,
            leased: 1,
            dead: 0
        }
    );
    assert!(
        store
            .claim("next/1", "node-b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mine = store
        .claim_head("next/1", "node-a", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&mine), vec![short]);
    let lease_left = mine[0].lease_until.unwrap().as_micros() - Timestamp::now().as_micros();
    assert!(lease_left > 60_000_000, "{lease_left} µs left");
    store.close().await.unwrap();
}

pub async fn append_with_a_stored_id_stores_nothing<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    let id = MessageId::generate().unwrap();
    let mut first = adt("dup", "C1", "1");
    first.id = Some(id);
    store.append(first).await.unwrap();

    let mut again = adt("dup", "C2", "2")
        .enqueue_leased("dup/1", 1, "node-a", LEASE)
        .enqueue_to("dup/2", 2);
    again.id = Some(id);
    again.content = vec![(1, Stage::Encoded, b"encoded".to_vec())];
    again.destinations = vec![row(1, "lab-out", Status::Queued)];
    let err = store.append(again).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateMessageId { id: dup, .. } if dup == id),
        "{err}"
    );
    assert!(!err.is_transient());
    // without any of the new fields as well
    let mut plain = adt("dup", "C3", "3").enqueue_to("dup/3", 1);
    plain.id = Some(id);
    let err = store.append(plain).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateMessageId { id: dup, .. } if dup == id),
        "{err}"
    );
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.summary.control_id.as_deref(), Some("C1"));
    assert_eq!(got.metadata, vec![("MRN".to_owned(), "1".to_owned())]);
    assert_eq!(got.content.len(), 1, "RAW only");
    assert!(got.destinations.is_empty());
    assert!(store.queue_names().await.unwrap().is_empty());
    assert_eq!(backend.count_rows("message_metadata", id).await, 1);

    // Sent together, so that they share batches: every fifth reuses the stored id, three more
    // share a new one (one of them is stored); the others are stored as usual. Half carry
    // content and destination rows, half are plain.
    let shared = MessageId::generate().unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut m = adt("mixed", &format!("M{i}"), "1").enqueue_to("fine", 1);
            if i % 2 == 0 {
                // and plain appends in the same batches
                m.content = vec![(1, Stage::Encoded, format!("E{i}").into_bytes())];
                m.destinations = vec![row(1, "fine", Status::Queued)];
            }
            m.id = match i {
                _ if i % 5 == 0 => Some(id),
                1..=3 => Some(shared),
                _ => None,
            };
            (i, store.append(m).await)
        }));
    }
    let mut good = HashSet::new();
    let mut shared_stored = Vec::new();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match (i, result) {
            (i, Err(StoreError::DuplicateMessageId { id: dup, .. })) if i % 5 == 0 => {
                assert_eq!(dup, id);
            }
            (1..=3, Err(StoreError::DuplicateMessageId { id: dup, .. })) => {
                assert_eq!(dup, shared);
            }
            (1..=3, Ok(stored)) => {
                assert_eq!(stored, shared);
                shared_stored.push(i);
                good.insert(stored);
            }
            (i, Ok(stored)) if i % 5 != 0 => {
                assert!(good.insert(stored));
            }
            (i, other) => panic!("append {i}: {other:?}"),
        }
    }
    assert_eq!(
        shared_stored.len(),
        1,
        "one of those sharing an id is stored"
    );
    assert_eq!(good.len(), 46);
    let filter = MessageFilter {
        channel: Some("mixed".into()),
        ..MessageFilter::default()
    };
    let listed: HashSet<MessageId> = store
        .list(&filter)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, good);
    let winner = store.get(shared).await.unwrap().unwrap();
    assert_eq!(
        winner.summary.control_id,
        Some(format!("M{}", shared_stored[0]))
    );
    let expected = format!("E{}", shared_stored[0]);
    let with_stages = shared_stored[0] % 2 == 0;
    assert_eq!(
        winner.stage(1, Stage::Encoded),
        with_stages.then_some(expected.as_bytes())
    );
    assert_eq!(winner.destinations.len(), usize::from(with_stages));
    let claimed = store.claim("fine", "w", LEASE, 100).await.unwrap();
    assert_eq!(
        messages_of(&claimed).into_iter().collect::<HashSet<_>>(),
        good
    );
    assert_eq!(claimed.len(), 46, "one item per stored message");
    // the first message kept what it had
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.summary.channel, "dup");
    assert_eq!(got.content.len(), 1);
    store.close().await.unwrap();
}

pub async fn append_refuses_raw_content<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut m = adt("c", "C1", "1").enqueue_to("q", 1);
    m.content = vec![
        (1, Stage::Encoded, b"fine".to_vec()),
        (0, Stage::Raw, b"other bytes".to_vec()),
    ];
    let err = store.append(m.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    assert_eq!(store.count(&MessageFilter::default()).await.unwrap(), 0);
    assert!(store.queue_names().await.unwrap().is_empty());

    // RAW of a destination (the bytes as handed to it) is content like any other
    m.content[1].0 = 1;
    let id = store.append(m).await.unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.stage(1, Stage::Raw), Some(&b"other bytes"[..]));
    assert_eq!(got.stage(1, Stage::Encoded), Some(&b"fine"[..]));
    assert_ne!(got.raw(), Some(&b"other bytes"[..]));
    store.close().await.unwrap();
}

fn shared_row(destination: Destination, shared: Shared) -> DestinationUpdate {
    DestinationUpdate {
        shared,
        ..row(destination, &format!("d{destination}"), Status::Queued)
    }
}

/// Stages recorded as shared read as if stored, in `get` and in `contents`; a stage stored
/// explicitly wins over a flag, and flags of later writes add to earlier ones.
pub async fn shared_stages_read_as_stored<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut m = adt("engine", "C1", "7");
    m.status = Status::Queued;
    m.content = vec![
        (0, Stage::Transformed, b"transformed".to_vec()),
        (3, Stage::Encoded, b"own bytes".to_vec()),
    ];
    m.destinations = vec![
        shared_row(1, Shared::ENCODED_IS_TRANSFORMED),
        shared_row(2, Shared::ENCODED_IS_RAW),
        shared_row(3, Shared::ENCODED_IS_TRANSFORMED),
        shared_row(4, Shared::NONE),
    ];
    let raw = m.raw.clone();
    let id = store.append(m).await.unwrap();

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.stage(1, Stage::Encoded), Some(&b"transformed"[..]));
    assert_eq!(got.stage(2, Stage::Encoded), Some(raw.as_slice()));
    assert_eq!(got.stage(3, Stage::Encoded), Some(&b"own bytes"[..]));
    assert_eq!(got.stage(4, Stage::Encoded), None);
    assert_eq!(
        stages_of(&got),
        vec![
            (0, Stage::Raw),
            (0, Stage::Transformed),
            (1, Stage::Encoded),
            (2, Stage::Encoded),
            (3, Stage::Encoded),
        ]
    );
    for d in 1..=4 {
        let found = store.contents(&[id], d, Stage::Encoded).await.unwrap();
        let want = got.stage(d, Stage::Encoded).map(|b| vec![(id, b.to_vec())]);
        assert_eq!(found, want.unwrap_or_default(), "destination {d}");
    }

    // delivered: SENT shares ENCODED (which shares TRANSFORMED); the ENCODED flag stays
    let mut t = Transition::new(id);
    t.destinations.push(DestinationUpdate {
        status: Status::Sent,
        ..shared_row(1, Shared::SENT_IS_ENCODED)
    });
    t.content.push((1, Stage::Response, b"ACK".to_vec()));
    t.refresh_status = true;
    store.apply(vec![t]).await.unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.stage(1, Stage::Encoded), Some(&b"transformed"[..]));
    assert_eq!(got.stage(1, Stage::Sent), Some(&b"transformed"[..]));
    assert_eq!(got.stage(1, Stage::Response), Some(&b"ACK"[..]));
    let sent = got
        .content
        .iter()
        .find(|c| c.destination == 1 && c.stage == Stage::Sent)
        .unwrap();
    assert_eq!(sent.created_at, got.destinations[0].updated_at);
    assert_eq!(
        store.contents(&[id], 1, Stage::Sent).await.unwrap(),
        vec![(id, b"transformed".to_vec())]
    );
    assert!(
        store
            .contents(&[id], 2, Stage::Sent)
            .await
            .unwrap()
            .is_empty()
    );
    // several messages at once, some without the stage
    let other = store.append(adt("engine", "C2", "8")).await.unwrap();
    assert_eq!(
        store
            .contents(&[other, id], 2, Stage::Encoded)
            .await
            .unwrap(),
        vec![(id, raw)]
    );
}
