//! Journal cases: append and get, ids, listing and filters, metadata, status and content.

use super::*;

pub async fn append_then_get_returns_exact_bytes_and_fields<B: Backend>(backend: &B) {
    let store = open(backend).await;
    // Every byte value, CR/LF, NUL and invalid UTF-8: content is bytes, not text.
    let mut raw = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ORU^R01|C1|P|2.5.1\r".to_vec();
    raw.extend(0u8..=255);
    raw.extend(b"\r\n\0\xff\xfe");
    let received_at = Timestamp::from_micros(1_767_268_800_123_456);
    let message = NewMessage {
        channel: "lab-in".into(),
        received_at,
        peer_addr: Some("10.0.0.7:51234".into()),
        tls_subject: Some("CN=lab.example,O=Hospital".into()),
        message_type: Some("ORU".into()),
        trigger_event: Some("R01".into()),
        control_id: Some("C1".into()),
        sending_application: Some("LAB".into()),
        sending_facility: Some("HOSP".into()),
        status: Status::Received,
        error: None,
        metadata: vec![
            ("MRN".into(), "12345".into()),
            ("Name".into(), "Müller^Zoë".into()),
            ("MRN".into(), "67890".into()),
        ],
        raw: raw.clone(),
        enqueue: vec![],
        original_id: None,
        route_only: None,
        id: None,
        content: vec![],
        destinations: vec![],
    };
    let id = store.append(message).await.unwrap();
    let got = store.get(id).await.unwrap().expect("appended message");
    let s = &got.summary;
    assert_eq!(s.id, id);
    assert_eq!(s.channel, "lab-in");
    assert_eq!(s.received_at, received_at);
    assert_eq!(s.peer_addr.as_deref(), Some("10.0.0.7:51234"));
    assert_eq!(s.tls_subject.as_deref(), Some("CN=lab.example,O=Hospital"));
    assert_eq!(s.message_type.as_deref(), Some("ORU"));
    assert_eq!(s.trigger_event.as_deref(), Some("R01"));
    assert_eq!(s.control_id.as_deref(), Some("C1"));
    assert_eq!(s.sending_application.as_deref(), Some("LAB"));
    assert_eq!(s.sending_facility.as_deref(), Some("HOSP"));
    assert_eq!(s.status, Status::Received);
    assert_eq!(s.error, None);
    assert_eq!(
        got.metadata,
        vec![
            ("MRN".to_owned(), "12345".to_owned()),
            ("Name".to_owned(), "Müller^Zoë".to_owned()),
            ("MRN".to_owned(), "67890".to_owned()),
        ]
    );
    assert_eq!(got.raw(), Some(raw.as_slice()));
    assert_eq!(got.content.len(), 1);
    assert_eq!(got.content[0].destination, 0);
    assert_eq!(got.content[0].stage, Stage::Raw);
    let age = Timestamp::now().as_micros() - got.content[0].created_at.as_micros();
    assert!((0..60_000_000).contains(&age), "created_at is about now");

    // A message with nothing optional and empty content.
    let bare = store
        .append(NewMessage::new("x", Vec::new()))
        .await
        .unwrap();
    let got = store.get(bare).await.unwrap().unwrap();
    assert_eq!(got.summary.message_type, None);
    assert_eq!(got.summary.peer_addr, None);
    assert!(got.metadata.is_empty());
    assert_eq!(got.raw(), Some(&[][..]));
    assert!(bare > id);

    // A message that arrives broken is stored with its status and error.
    let mut broken = NewMessage::new("x", b"not hl7".to_vec());
    broken.status = Status::Error;
    broken.error = Some("no MSH segment".into());
    let broken = store.append(broken).await.unwrap();
    let s = store.get(broken).await.unwrap().unwrap().summary;
    assert_eq!(
        (s.status, s.error.as_deref()),
        (Status::Error, Some("no MSH segment"))
    );
    assert_eq!(store.stats().messages, 3);
    store.close().await.unwrap();
}

pub async fn get_unknown_id_is_none<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let unknown: MessageId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert!(store.get(unknown).await.unwrap().is_none());
    store.close().await.unwrap();
}

pub async fn append_refuses_bad_input<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let err = store
        .append(NewMessage::new("", b"x".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    let err = store
        .append(NewMessage::new("c", b"x".to_vec()).enqueue_to("", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    assert_eq!(store.count(&MessageFilter::default()).await.unwrap(), 0);
    store.close().await.unwrap();
}

pub async fn ids_unique_and_ordered_under_concurrent_appends<B: Backend>(backend: &B) {
    const TASKS: usize = 50;
    const PER_TASK: usize = 100;
    let store = Arc::new(open(backend).await);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let m = adt("burst", &format!("T{t}-{i}"), &t.to_string());
                ids.push(store.append(m).await.unwrap());
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let ids = task.await.unwrap();
        // One task's appends are sequential, so its ids increase, as text too.
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        for id in ids {
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(all.len(), TASKS * PER_TASK);
    let filter = MessageFilter {
        channel: Some("burst".into()),
        ..MessageFilter::default()
    };
    assert_eq!(
        store.count(&filter).await.unwrap(),
        (TASKS * PER_TASK) as u64
    );

    // Paging through everything finds each id exactly once, newest first.
    let mut seen = Vec::new();
    let mut page = MessageFilter {
        limit: Some(700),
        ..filter.clone()
    };
    loop {
        let got = store.list(&page).await.unwrap();
        let Some(last) = got.last() else { break };
        page.before_id = Some(last.id);
        seen.extend(got.iter().map(|m| m.id));
    }
    assert_eq!(seen.len(), TASKS * PER_TASK);
    assert!(seen.windows(2).all(|p| p[0] > p[1]), "newest first");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
    store.close().await.unwrap();
}

pub async fn list_filters_each_field<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let t0 = Timestamp::from_micros(1_700_000_000_000_000);
    let hour = Duration::from_hours(1);
    let mut ids = Vec::new();
    for i in 0u32..12 {
        let mut m = adt(
            if i % 2 == 0 { "even" } else { "odd" },
            &format!("CTL{i}"),
            &format!("MRN{}", i % 4),
        );
        m.received_at = t0.saturating_add(hour * i);
        m.message_type = Some(if i % 3 == 0 { "ORU" } else { "ADT" }.into());
        m.trigger_event = Some(if i < 6 { "A01" } else { "A08" }.into());
        ids.push(store.append(m).await.unwrap());
    }
    store
        .set_status(ids[5], Status::Error, Some("refused".into()))
        .await
        .unwrap();
    store.set_status(ids[7], Status::Sent, None).await.unwrap();

    let check = |filter: MessageFilter, expected: Vec<usize>| {
        let store = &store;
        let ids = &ids;
        async move {
            let got: Vec<MessageId> = store
                .list(&filter)
                .await
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect();
            let want: Vec<MessageId> = expected.iter().rev().map(|&i| ids[i]).collect();
            assert_eq!(got, want, "{filter:?}");
            assert_eq!(
                store.count(&filter).await.unwrap(),
                want.len() as u64,
                "{filter:?}"
            );
        }
    };
    let all = MessageFilter::default;
    check(all(), (0..12).collect()).await;
    check(
        MessageFilter {
            channel: Some("odd".into()),
            ..all()
        },
        vec![1, 3, 5, 7, 9, 11],
    )
    .await;
    check(
        MessageFilter {
            message_type: Some("ORU".into()),
            ..all()
        },
        vec![0, 3, 6, 9],
    )
    .await;
    check(
        MessageFilter {
            trigger_event: Some("A08".into()),
            ..all()
        },
        vec![6, 7, 8, 9, 10, 11],
    )
    .await;
    check(
        MessageFilter {
            status: Some(Status::Received),
            ..all()
        },
        vec![0, 1, 2, 3, 4, 6, 8, 9, 10, 11],
    )
    .await;
    check(
        MessageFilter {
            status: Some(Status::Error),
            ..all()
        },
        vec![5],
    )
    .await;
    check(
        MessageFilter {
            control_id: Some("CTL4".into()),
            ..all()
        },
        vec![4],
    )
    .await;
    // From is inclusive, to is exclusive.
    check(
        MessageFilter {
            received_from: Some(t0.saturating_add(hour * 3)),
            received_to: Some(t0.saturating_add(hour * 6)),
            ..all()
        },
        vec![3, 4, 5],
    )
    .await;
    check(
        MessageFilter {
            received_from: Some(t0.saturating_add(hour * 10)),
            ..all()
        },
        vec![10, 11],
    )
    .await;
    check(
        MessageFilter {
            metadata: vec![("MRN".into(), "MRN1".into())],
            ..all()
        },
        vec![1, 5, 9],
    )
    .await;
    // Every condition must hold.
    check(
        MessageFilter {
            channel: Some("odd".into()),
            message_type: Some("ORU".into()),
            trigger_event: Some("A08".into()),
            ..all()
        },
        vec![9],
    )
    .await;
    check(
        MessageFilter {
            channel: Some("nowhere".into()),
            ..all()
        },
        vec![],
    )
    .await;
    // Text is compared exactly, not as a pattern or case-insensitively.
    check(
        MessageFilter {
            channel: Some("%".into()),
            ..all()
        },
        vec![],
    )
    .await;
    check(
        MessageFilter {
            channel: Some("EVEN".into()),
            ..all()
        },
        vec![],
    )
    .await;
    store.close().await.unwrap();
}

pub async fn list_pages_newest_first<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(store.append(adt("p", &i.to_string(), "1")).await.unwrap());
    }
    let mut filter = MessageFilter {
        limit: Some(10),
        ..MessageFilter::default()
    };
    let mut pages = Vec::new();
    loop {
        let page: Vec<MessageId> = store
            .list(&filter)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        if page.is_empty() {
            break;
        }
        filter.before_id = page.last().copied();
        pages.push(page);
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    let flat: Vec<MessageId> = pages.concat();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(flat, newest_first);
    // count ignores paging and limit.
    assert_eq!(store.count(&filter).await.unwrap(), 25);
    // The default limit applies when none is given.
    assert_eq!(
        store.list(&MessageFilter::default()).await.unwrap().len(),
        25
    );
    let zero = MessageFilter {
        limit: Some(0),
        ..MessageFilter::default()
    };
    assert!(store.list(&zero).await.unwrap().is_empty());
    store.close().await.unwrap();
}

pub async fn metadata_search<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let a = store
        .append(
            NewMessage::new("m", b"a".to_vec())
                .with_metadata("MRN", "100")
                .with_metadata("Visit", "V1"),
        )
        .await
        .unwrap();
    let b = store
        .append(
            NewMessage::new("m", b"b".to_vec())
                .with_metadata("MRN", "100")
                .with_metadata("Visit", "V2")
                .with_metadata("Ward", "Zoë's ward; DROP TABLE messages"),
        )
        .await
        .unwrap();
    let c = store
        .append(
            NewMessage::new("m", b"c".to_vec())
                .with_metadata("MRN", "200")
                .with_metadata("MRN", "100"),
        )
        .await
        .unwrap();
    let find = |pairs: &[(&str, &str)]| {
        let filter = MessageFilter {
            metadata: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
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
    assert_eq!(find(&[("MRN", "100")]).await, vec![c, b, a]);
    assert_eq!(find(&[("MRN", "200")]).await, vec![c]);
    assert_eq!(find(&[("MRN", "100"), ("Visit", "V2")]).await, vec![b]);
    assert_eq!(find(&[("MRN", "200"), ("MRN", "100")]).await, vec![c]);
    assert_eq!(
        find(&[("Ward", "Zoë's ward; DROP TABLE messages")]).await,
        vec![b]
    );
    // Key and value must match on the same pair.
    assert!(find(&[("Visit", "100")]).await.is_empty());
    assert!(find(&[("mrn", "100")]).await.is_empty());
    assert!(find(&[("MRN", "10")]).await.is_empty());
    store.close().await.unwrap();
}

pub async fn set_status_and_put_content<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let id = store.append(adt("s", "C1", "1")).await.unwrap();
    store
        .set_status(id, Status::Error, Some("no route".into()))
        .await
        .unwrap();
    let s = store.get(id).await.unwrap().unwrap().summary;
    assert_eq!(
        (s.status, s.error.as_deref()),
        (Status::Error, Some("no route"))
    );
    store.set_status(id, Status::Sent, None).await.unwrap();
    let s = store.get(id).await.unwrap().unwrap().summary;
    assert_eq!((s.status, s.error), (Status::Sent, None));

    let stages: [(Destination, Stage, &[u8]); 4] = [
        (2, Stage::Response, b"MSA|AA|C1\r"),
        (1, Stage::Encoded, b"encoded-1"),
        (0, Stage::Transformed, b"transformed-0"),
        (1, Stage::Sent, b"\x0bsent-1\x1c\r"),
    ];
    for (destination, stage, bytes) in stages {
        store
            .put_content(id, destination, stage, bytes.to_vec())
            .await
            .unwrap();
    }
    // Storing a stage again replaces it.
    store
        .put_content(id, 1, Stage::Encoded, b"encoded-1 again".to_vec())
        .await
        .unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    let order: Vec<(Destination, Stage)> = got
        .content
        .iter()
        .map(|c| (c.destination, c.stage))
        .collect();
    assert_eq!(
        order,
        vec![
            (0, Stage::Raw),
            (0, Stage::Transformed),
            (1, Stage::Encoded),
            (1, Stage::Sent),
            (2, Stage::Response),
        ]
    );
    assert_eq!(got.stage(1, Stage::Encoded), Some(&b"encoded-1 again"[..]));
    assert_eq!(got.stage(1, Stage::Sent), Some(&b"\x0bsent-1\x1c\r"[..]));
    assert_eq!(got.stage(2, Stage::Response), Some(&b"MSA|AA|C1\r"[..]));

    // The received bytes stay as received.
    let raw_before = got.raw().unwrap().to_vec();
    let err = store
        .put_content(id, 0, Stage::Raw, b"tampered".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    assert_eq!(
        store.get(id).await.unwrap().unwrap().raw(),
        Some(raw_before.as_slice())
    );
    store.close().await.unwrap();
}

pub async fn unknown_ids_are_errors<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let unknown: MessageId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let err = store
        .set_status(unknown, Status::Sent, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MessageNotFound { id, .. } if id == unknown),
        "{err}"
    );
    let err = store
        .put_content(unknown, 1, Stage::Sent, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let item = store::QueueItemId(424_242);
    for err in [
        store.ack(item, "w").await.unwrap_err(),
        store
            .nack(item, "w", Timestamp::now(), "e", 3)
            .await
            .unwrap_err(),
        store.requeue_dead(item).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, StoreError::QueueItemNotFound { item: i, .. } if i == item),
            "{err}"
        );
    }
    store.close().await.unwrap();
}

/// A search by control id or by metadata pair finds every message with it, whether the store
/// has filed it in its index yet or not (SQLite fills those indexes in batches of 512
/// appends), and no deleted message.
pub async fn control_id_and_metadata_search_find_every_message<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    // forty interleaved series, as from forty senders, and ten messages sharing one id and
    // one MRN
    let dup = |i: usize| i % 260 == 7;
    let control = |i: usize| {
        if dup(i) {
            "DUP".to_owned()
        } else {
            format!("S{}-{}", i % 40, i / 40)
        }
    };
    let mrn = |i: usize| {
        if dup(i) {
            "M-DUP".to_owned()
        } else {
            format!("M{}", (i * 7_919) % 10_007)
        }
    };
    let mut ids = Vec::new();
    for chunk in (0..2_600).collect::<Vec<_>>().chunks(100) {
        let appends = chunk.iter().map(|&i| {
            let store = Arc::clone(&store);
            let m = adt("ctl", &control(i), &mrn(i));
            async move { store.append(m).await.unwrap() }
        });
        ids.extend(futures_util::future::join_all(appends).await);
    }
    let by_control = |c: &str| MessageFilter {
        control_id: Some(c.to_owned()),
        ..MessageFilter::default()
    };
    let by_mrn = |v: &str| MessageFilter {
        metadata: vec![("MRN".into(), v.to_owned())],
        ..MessageFilter::default()
    };
    let found = |filter: MessageFilter| {
        let store = Arc::clone(&store);
        async move {
            let list = store.list(&filter).await.unwrap();
            assert_eq!(store.count(&filter).await.unwrap(), list.len() as u64);
            list.into_iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    for i in [
        0, 1, 39, 40, 511, 512, 1_023, 1_024, 1_500, 2_047, 2_048, 2_599,
    ] {
        assert_eq!(
            found(by_control(&control(i))).await,
            vec![ids[i]],
            "message {i}"
        );
        assert_eq!(found(by_mrn(&mrn(i))).await, vec![ids[i]], "message {i}");
    }
    let mut dups: Vec<MessageId> = (0..2_600).filter(|&i| dup(i)).map(|i| ids[i]).collect();
    dups.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(found(by_control("DUP")).await, dups);
    assert_eq!(found(by_mrn("M-DUP")).await, dups);
    assert!(found(by_control("S0-999")).await.is_empty());
    assert!(found(by_mrn("M-none")).await.is_empty());
    // with other conditions
    let both = MessageFilter {
        status: Some(Status::Received),
        metadata: vec![("MRN".into(), "M-DUP".into())],
        ..by_control("DUP")
    };
    assert_eq!(store.count(&both).await.unwrap(), 10);

    // deleted messages are found no more, wherever their rows were filed
    let gone = [ids[0], ids[2_599], dups[0], dups[9]];
    assert_eq!(store.delete(&gone).await.unwrap(), 4);
    for i in [0, 2_599] {
        assert!(found(by_control(&control(i))).await.is_empty());
        assert!(found(by_mrn(&mrn(i))).await.is_empty());
    }
    assert_eq!(found(by_control("DUP")).await, dups[1..9].to_vec());
    assert_eq!(found(by_mrn("M-DUP")).await, dups[1..9].to_vec());
    assert_eq!(found(by_control(&control(1))).await, vec![ids[1]]);
    assert_eq!(found(by_mrn(&mrn(1))).await, vec![ids[1]]);
}
