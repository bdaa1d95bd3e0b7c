//! Cases of what the channel engine writes: reprocessed messages (`original_id`,
//! `route_only`).

use super::*;

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
