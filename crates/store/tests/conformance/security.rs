//! Security tables: users, clients, grants (single use, replay detection, families, expiry).

use std::sync::Arc;

use serde_json::json;
use store::{ClientRecord, Grant, Security, UserRecord};

use super::*;

fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        roles: vec!["admin".into(), "auditor".into()],
        fhir_user: Some("Practitioner/7".into()),
        disabled: false,
        created: Timestamp::from_micros(1_700_000_000_123_456),
    }
}

fn grant(kind: &str, key: &str, family: Option<&str>, expires: Timestamp) -> Grant {
    Grant {
        kind: kind.into(),
        key: key.into(),
        subject: "alice".into(),
        family: family.map(Into::into),
        payload: json!({"scope": "patient/*.rs", "n": 1}),
        expires,
    }
}

fn later() -> Timestamp {
    Timestamp::now().saturating_add(Duration::from_mins(10))
}

pub async fn security_users_and_clients_round_trip<B: Backend>(backend: &B) {
    let store = open(backend).await;
    assert_eq!(store.user("alice").await.unwrap(), None);
    store.put_user(user("alice")).await.unwrap();
    let mut bob = user("bob");
    bob.password_hash = None;
    bob.roles = vec![];
    bob.fhir_user = None;
    bob.disabled = true;
    store.put_user(bob.clone()).await.unwrap();
    assert_eq!(store.user("alice").await.unwrap(), Some(user("alice")));
    assert_eq!(store.user("bob").await.unwrap(), Some(bob.clone()));
    // replace by name
    let mut alice2 = user("alice");
    alice2.roles = vec!["read-only".into()];
    store.put_user(alice2.clone()).await.unwrap();
    let names: Vec<_> = store.users().await.unwrap();
    assert_eq!(names, vec![alice2, bob]);
    assert!(store.delete_user("bob").await.unwrap());
    assert!(!store.delete_user("bob").await.unwrap());
    assert!(store.put_user(user("")).await.is_err());

    let client = ClientRecord {
        client_id: "app".into(),
        config: json!({"redirect_uris": ["https://app.example/cb"], "kind": "public"}),
        created: Timestamp::from_micros(42),
    };
    store.put_client(client.clone()).await.unwrap();
    assert_eq!(store.client("app").await.unwrap(), Some(client.clone()));
    assert_eq!(store.client("other").await.unwrap(), None);
    let mut changed = client.clone();
    changed.config = json!({"kind": "confidential"});
    store.put_client(changed.clone()).await.unwrap();
    assert_eq!(store.clients().await.unwrap(), vec![changed]);
    assert!(store.delete_client("app").await.unwrap());
    assert!(!store.delete_client("app").await.unwrap());
    assert!(store.clients().await.unwrap().is_empty());
    store.close().await.unwrap();
}

pub async fn security_grants_single_use_and_replay<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let now = Timestamp::now();
    let g = grant("jti", "k1", None, later());
    assert!(store.put_grant(g.clone()).await.unwrap());
    // a second insert of an unexpired (kind, key) is a replay
    assert!(!store.put_grant(g.clone()).await.unwrap());
    // same key, other kind: independent
    assert!(
        store
            .put_grant(grant("code", "k1", None, later()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.grant("jti", "k1", now).await.unwrap(),
        Some(g.clone())
    );
    // an expired grant is absent and may be replaced
    let past = Timestamp::now().saturating_sub(Duration::from_secs(1));
    assert!(
        store
            .put_grant(grant("jti", "old", None, past))
            .await
            .unwrap()
    );
    assert_eq!(
        store.grant("jti", "old", Timestamp::now()).await.unwrap(),
        None
    );
    assert!(
        store
            .put_grant(grant("jti", "old", None, later()))
            .await
            .unwrap()
    );
    assert!(
        store
            .grant("jti", "old", Timestamp::now())
            .await
            .unwrap()
            .is_some()
    );

    // take: once
    let taken = store
        .take_grant("code", "k1", Timestamp::now())
        .await
        .unwrap();
    assert_eq!(taken.map(|g| g.kind), Some("code".to_owned()));
    assert_eq!(
        store
            .take_grant("code", "k1", Timestamp::now())
            .await
            .unwrap(),
        None
    );
    // take of an expired grant: None, and it is gone
    store
        .put_grant(grant("code", "exp", None, past))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_grant("code", "exp", Timestamp::now())
            .await
            .unwrap(),
        None
    );
    // take as seen from a later `now`
    store
        .put_grant(grant("code", "soon", None, later()))
        .await
        .unwrap();
    let far = later().saturating_add(Duration::from_secs(1));
    assert_eq!(store.take_grant("code", "soon", far).await.unwrap(), None);
    assert!(
        store
            .put_grant(grant("x", "", None, later()))
            .await
            .is_err()
    );
    assert!(
        store
            .put_grant(grant("", "k", None, later()))
            .await
            .is_err()
    );
    store.close().await.unwrap();
}

pub async fn security_concurrent_take_gives_one_winner<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    for round in 0..5 {
        let key = format!("code-{round}");
        store
            .put_grant(grant("code", &key, None, later()))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, key) = (Arc::clone(&store), key.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .take_grant("code", &key, Timestamp::now())
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(winners, 1, "round {round}");
    }
    // concurrent put_grant of one jti: one insert wins
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .put_grant(grant("jti", "same", None, later()))
                .await
                .unwrap()
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += usize::from(t.await.unwrap());
    }
    assert_eq!(inserted, 1);
    store.close().await.unwrap();
}

pub async fn security_families_listing_and_purge<B: Backend>(backend: &B) {
    let store = open(backend).await;
    for (kind, key) in [("refresh", "r1"), ("access", "a1"), ("access", "a2")] {
        store
            .put_grant(grant(kind, key, Some("fam"), later()))
            .await
            .unwrap();
    }
    store
        .put_grant(grant("access", "a3", Some("other"), later()))
        .await
        .unwrap();
    let mut bobs = grant("api-token", "t1", None, later());
    bobs.subject = "bob".into();
    store.put_grant(bobs.clone()).await.unwrap();
    store
        .put_grant(grant(
            "api-token",
            "t2",
            None,
            later().saturating_add(Duration::from_secs(5)),
        ))
        .await
        .unwrap();
    store
        .put_grant(grant("api-token", "t0", None, later()))
        .await
        .unwrap();
    let listed: Vec<_> = store
        .grants_of("api-token", "alice", Timestamp::now())
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.key)
        .collect();
    assert_eq!(listed, ["t0", "t2"]);
    assert_eq!(
        store
            .grants_of("api-token", "bob", Timestamp::now())
            .await
            .unwrap(),
        vec![bobs]
    );

    assert_eq!(store.delete_family("fam").await.unwrap(), 3);
    assert_eq!(store.delete_family("fam").await.unwrap(), 0);
    let now = Timestamp::now();
    assert_eq!(store.grant("access", "a1", now).await.unwrap(), None);
    assert!(store.grant("access", "a3", now).await.unwrap().is_some());
    assert!(store.delete_grant("access", "a3").await.unwrap());
    assert!(!store.delete_grant("access", "a3").await.unwrap());

    let past = Timestamp::now().saturating_sub(Duration::from_secs(1));
    store
        .put_grant(grant("jti", "p1", None, past))
        .await
        .unwrap();
    store
        .put_grant(grant("jti", "p2", None, past))
        .await
        .unwrap();
    assert_eq!(store.purge_grants(Timestamp::now()).await.unwrap(), 2);
    // the unexpired api tokens stay
    assert_eq!(
        store
            .grants_of("api-token", "alice", Timestamp::now())
            .await
            .unwrap()
            .len(),
        2
    );
    store.close().await.unwrap();
    // and survive a reopen
    let store = open(backend).await;
    assert!(store.user("nobody").await.unwrap().is_none());
    assert_eq!(
        store
            .grants_of("api-token", "alice", Timestamp::now())
            .await
            .unwrap()
            .len(),
        2
    );
    store.close().await.unwrap();
}
