//! Lifecycle cases: reopening, migrations, closing.

use super::*;

/// The newest schema version (migrations 0001..=0012).
const LATEST: i64 = 14;

/// Every version up to the newest.
fn all_versions() -> Vec<i64> {
    (1..=LATEST).collect()
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
    assert_eq!(backend.migration_versions().await, all_versions());
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
                supported: LATEST
            }
        ),
        "{err}"
    );
    assert_eq!(
        backend.migration_versions().await,
        [all_versions(), vec![999]].concat()
    );
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
    let err = store
        .claim_head("q", "w", Duration::from_secs(1), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed { .. }), "{err}");
    let err = store.apply(vec![Transition::new(id)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed { .. }), "{err}");
    // Closing twice is harmless.
    store.close().await.unwrap();
}

pub async fn version_1_database_is_migrated_and_keeps_its_data<B: Backend>(backend: &B) {
    backend.create_version_1().await;
    assert_eq!(backend.migration_versions().await, vec![1]);
    let store = open(backend).await;
    assert_eq!(backend.migration_versions().await, all_versions());
    let old: MessageId = common::V1_MESSAGE.parse().unwrap();

    // What version 1 stored reads back, with the new fields empty.
    let got = store
        .get(old)
        .await
        .unwrap()
        .expect("the version 1 message");
    assert_eq!(got.summary.channel, common::V1_CHANNEL);
    assert_eq!(got.summary.original_id, None);
    assert_eq!(got.summary.route_only, None);
    assert!(got.destinations.is_empty());
    assert_eq!(got.raw(), Some(&b"MSH|old"[..]));
    assert_eq!(got.metadata, vec![("MRN".to_owned(), "1".to_owned())]);

    // Its queue item is claimed in order, and the new operations work on the old rows.
    let head = store
        .claim_head(common::V1_QUEUE, "w", Duration::from_mins(1), 10)
        .await
        .unwrap();
    assert_eq!(messages_of(&head), vec![old]);
    let mut t = Transition::new(old);
    t.complete = Some((head[0].id, "w".into()));
    t.status = Some((Status::Sent, None));
    t.destinations.push(DestinationUpdate {
        destination: 1,
        name: "out".into(),
        status: Status::Sent,
        error: None,
        shared: Shared::NONE,
    });
    t.metadata.push(("Visit".into(), "V1".into()));
    store.apply(vec![t]).await.unwrap();
    let got = store.get(old).await.unwrap().unwrap();
    assert_eq!(got.summary.status, Status::Sent);
    assert_eq!(got.destinations.len(), 1);
    assert_eq!(
        got.metadata,
        vec![
            ("MRN".to_owned(), "1".to_owned()),
            ("Visit".to_owned(), "V1".to_owned())
        ]
    );
    // A reprocessed copy of the old message can be stored and found.
    let mut copy = NewMessage::new(common::V1_CHANNEL, b"MSH|old".to_vec());
    copy.original_id = Some(old);
    copy.route_only = Some(vec![1]);
    let copy = store.append(copy).await.unwrap();
    let copies = store
        .list(&MessageFilter {
            original_id: Some(old),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(copies.iter().map(|m| m.id).collect::<Vec<_>>(), vec![copy]);
    assert_eq!(
        store
            .prunable(common::V1_CHANNEL, None, Some(1), 10)
            .await
            .unwrap(),
        vec![old]
    );
    store.close().await.unwrap();
    drop(store);

    // Opening again applies nothing more.
    let store = open(backend).await;
    assert_eq!(backend.migration_versions().await, all_versions());
    assert_eq!(store.count(&MessageFilter::default()).await.unwrap(), 2);
    store.close().await.unwrap();
}
