//! Lifecycle cases: reopening, migrations, closing.

use super::*;

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
