//! One conformance suite for every store backend: each case is an async function generic over
//! [`Backend`], instantiated by `conformance!` once for SQLite and once for PostgreSQL.

// The cases are plain async functions called by the generated tests, which clippy's
// allow-unwrap-in-tests does not see as tests.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, adt};
use store::{
    Destination, Journal, MessageFilter, MessageId, NewMessage, QueueItem, QueueState, Queues,
    Stage, Status, Store, StoreError, Timestamp,
};

/// Instantiates every case for both backends, each on a fresh database.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = <crate::common::Sqlite as crate::common::Backend>::create().await;
                    crate::cases::$case(&backend).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = <crate::common::Postgres as crate::common::Backend>::create().await;
                    crate::cases::$case(&backend).await;
                }
            )+
        }
    };
}

conformance!(
    append_then_get_returns_exact_bytes_and_fields,
    get_unknown_id_is_none,
    append_refuses_bad_input,
    ids_unique_and_ordered_under_concurrent_appends,
    list_filters_each_field,
    list_pages_newest_first,
    metadata_search,
    set_status_and_put_content,
    unknown_ids_are_errors,
    enqueue_with_append_is_atomic,
    failing_request_does_not_fail_others,
    claim_ack_nack,
    lease_expiry_hands_item_over,
    dead_letters_and_requeue,
    concurrent_claimers_never_share_an_item,
    reopen_keeps_everything,
    migrations_are_idempotent,
    database_from_the_future_is_refused,
    closed_store_refuses_work,
);

async fn open<B: Backend>(backend: &B) -> B::S {
    backend.open().await.expect("open the store")
}

/// Enqueues `n` messages on `queue` (destination 1), returning their ids in order.
async fn fill_queue<S: Store>(store: &S, queue: &str, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let m = adt("queued", &format!("Q{i}"), "1").enqueue_to(queue, 1);
        ids.push(store.append(m).await.unwrap());
    }
    ids
}

fn messages_of(items: &[QueueItem]) -> Vec<MessageId> {
    items.iter().map(|i| i.message_id).collect()
}

mod cases {
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
            metadata: vec![
                ("MRN".into(), "12345".into()),
                ("Name".into(), "Müller^Zoë".into()),
                ("MRN".into(), "67890".into()),
            ],
            raw: raw.clone(),
            enqueue: vec![],
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
        assert_eq!(store.stats().messages, 2);
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

    pub async fn reopen_keeps_everything<B: Backend>(backend: &B) {
        let store = open(backend).await;
        let id = store
            .append(adt("keep", "K1", "77").enqueue_to("keep/1", 1))
            .await
            .unwrap();
        store
            .put_content(id, 1, Stage::Encoded, b"encoded".to_vec())
            .await
            .unwrap();
        store
            .set_status(id, Status::Queued, Some("waiting".into()))
            .await
            .unwrap();
        let leased = fill_queue(&store, "keep/2", 1).await;
        let item = store
            .claim("keep/2", "w", Duration::from_hours(1), 1)
            .await
            .unwrap()
            .remove(0);
        let dead = fill_queue(&store, "keep/3", 1).await;
        let d = store
            .claim("keep/3", "w", Duration::from_mins(1), 1)
            .await
            .unwrap()
            .remove(0);
        store
            .nack(d.id, "w", Timestamp::now(), "gone", 1)
            .await
            .unwrap();
        let before = store.get(id).await.unwrap().unwrap();
        let listed = store.list(&MessageFilter::default()).await.unwrap();
        store.close().await.unwrap();
        drop(store);

        let store = open(backend).await;
        assert_eq!(store.get(id).await.unwrap().unwrap(), before);
        assert_eq!(store.list(&MessageFilter::default()).await.unwrap(), listed);
        let by_mrn = MessageFilter {
            metadata: vec![("MRN".into(), "77".into())],
            ..MessageFilter::default()
        };
        assert_eq!(store.count(&by_mrn).await.unwrap(), 1);
        let ready = store
            .claim("keep/1", "w", Duration::from_mins(1), 10)
            .await
            .unwrap();
        assert_eq!(messages_of(&ready), vec![id]);
        // The lease survives too: still held, and still ackable by its holder.
        assert!(
            store
                .claim("keep/2", "x", Duration::from_mins(1), 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.ack(item.id, "w").await.unwrap();
        assert_eq!(leased, vec![item.message_id]);
        assert_eq!(
            messages_of(&store.dead_letters("keep/3").await.unwrap()),
            dead
        );
        // New ids still sort after the old ones.
        let newer = store.append(adt("keep", "K2", "78")).await.unwrap();
        assert!(newer > id && newer.to_string() > id.to_string());
        store.close().await.unwrap();
    }

    pub async fn migrations_are_idempotent<B: Backend>(backend: &B) {
        for _ in 0..3 {
            let store = open(backend).await;
            store.append(adt("m", "1", "1")).await.unwrap();
            store.close().await.unwrap();
        }
        assert_eq!(backend.migration_versions().await, vec![1]);
        let store = open(backend).await;
        assert_eq!(store.count(&MessageFilter::default()).await.unwrap(), 3);
        store.close().await.unwrap();
    }

    pub async fn database_from_the_future_is_refused<B: Backend>(backend: &B) {
        let store = open(backend).await;
        store.append(adt("f", "1", "1")).await.unwrap();
        store.close().await.unwrap();
        drop(store);
        backend.record_version(999).await;
        let err = backend.open().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 999,
                    supported: 1
                }
            ),
            "{err}"
        );
        assert_eq!(backend.migration_versions().await, vec![1, 999]);
    }

    pub async fn closed_store_refuses_work<B: Backend>(backend: &B) {
        let store = open(backend).await;
        let id = store.append(adt("c", "1", "1")).await.unwrap();
        store.close().await.unwrap();
        let err = store.append(adt("c", "2", "1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Closed { .. }), "{err}");
        let err = store.get(id).await.unwrap_err();
        assert!(matches!(err, StoreError::Closed { .. }), "{err}");
        let err = store
            .claim("q", "w", Duration::from_secs(1), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Closed { .. }), "{err}");
        // Closing twice is harmless.
        store.close().await.unwrap();
    }
}

/// What only the SQLite backend promises.
mod sqlite_only {
    use super::*;
    use common::Sqlite;
    use store::{SqliteConfig, SqliteStore};

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
        let config = SqliteConfig {
            max_batch: 0,
            ..SqliteConfig::new(backend.path())
        };
        assert!(matches!(
            SqliteStore::open(&config).await,
            Err(StoreError::Config(_))
        ));
        // A file where the directory should be.
        let file = backend.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = SqliteStore::open(&SqliteConfig::new(&file))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
    }
}

/// What only the PostgreSQL backend checks.
mod postgres_only {
    use super::*;
    use common::Postgres;
    use store::{PgStore, PostgresConfig};

    #[tokio::test]
    async fn bad_settings_are_refused() {
        let backend = Postgres::create().await;
        for config in [
            PostgresConfig {
                schema: "Bad-Name".into(),
                ..backend.config()
            },
            PostgresConfig {
                pool_size: 0,
                ..backend.config()
            },
            PostgresConfig {
                url: "not a url at all=".into(),
                ..backend.config()
            },
        ] {
            let err = PgStore::open(&config).await.unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn unreachable_server_is_an_error() {
        let config = PostgresConfig {
            url: "postgres://postgres@127.0.0.1:1/test?connect_timeout=2".into(),
            ..PostgresConfig::new("")
        };
        let err = PgStore::open(&config).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}
