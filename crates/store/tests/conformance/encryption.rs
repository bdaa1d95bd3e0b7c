//! Encryption at rest on both backends: round trips, searches over blind indexes, the
//! refusals of what blind indexes cannot answer, key checks at open, unknown key ids, and a
//! key rotation that re-encrypts old rows while they stay readable.

use std::collections::BTreeMap;
use std::path::Path;

use fhir::defs::ParamType;
use fhir::index::{IndexEntry, IndexValue};
use fhir::search::{
    Filter, Predicate, Prefix, SearchRequest, SortKey, StringMode, Test, TokenSystem,
};
use serde_json::json;
use store::crypto::{self, SealedTable};
use store::{
    AnyStore, EncryptionConfig, Precondition, ResourceWrite, Resources, RetiredKey, WriteOp,
    WriteOutcome,
};

use super::*;

const MRN_SYSTEM: &str = "urn:oid:1.2.36.146.595.217.0.1";

/// A key file with 32 bytes made from `seed`, as hex text.
fn key_file(dir: &Path, name: &str, seed: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    let hex: String = (0..32u8)
        .flat_map(|i| {
            let b = i.wrapping_mul(37).wrapping_add(seed);
            [b >> 4, b & 15].map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        })
        .collect();
    std::fs::write(&path, hex).unwrap();
    path
}

fn retired(id: &str, file: &Path) -> RetiredKey {
    RetiredKey {
        key_id: id.into(),
        key_file: Some(file.to_owned()),
        key_env: None,
    }
}

async fn open_with<B: Backend>(backend: &B, enc: Option<EncryptionConfig>) -> AnyStore {
    AnyStore::open(&backend.store_config(enc))
        .await
        .expect("open the store")
}

/// A row of `param` (a HumanName or Address) converted from its `part`, as extraction
/// gives it: `family=…` and `address-city=…` are answered from these.
fn part_of(param: &str, part: &'static str, text: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::String {
            normalized: text.to_lowercase(),
            exact: text.into(),
            part: Some(part),
        },
    }
}

fn token(param: &str, system: &str, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Token {
            system: Some(system.into()),
            code: Some(code.into()),
            display: Some("Medical record number".into()),
            type_system: None,
            type_code: None,
        },
    }
}

fn patient(id: &str, family: &str, mrn: &str, birth_ms: i64) -> ResourceWrite {
    ResourceWrite {
        op: WriteOp::Create,
        resource_type: "Patient".into(),
        id: id.into(),
        resource: Some(json!({
            "resourceType": "Patient",
            "name": [{"family": family}],
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        })),
        index: vec![
            part_of("name", "family", family),
            token("identifier", MRN_SYSTEM, mrn),
            IndexEntry {
                param: "birthdate".into(),
                value: IndexValue::Date {
                    low: birth_ms,
                    high: birth_ms + 86_399_999,
                },
            },
        ],
        precondition: Precondition::None,
    }
}

fn search(param: &str, test: Test) -> SearchRequest {
    SearchRequest {
        resource_type: Some("Patient".into()),
        filters: vec![Filter {
            any: vec![Predicate {
                param: param.into(),
                test,
            }],
        }],
        count: 100,
        ..SearchRequest::default()
    }
}

fn name(value: &str, mode: StringMode) -> Test {
    Test::String {
        value: value.into(),
        mode,
    }
}

async fn found(store: &AnyStore, r: &SearchRequest) -> Vec<String> {
    let mut ids: Vec<String> = store
        .search(r)
        .await
        .unwrap()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

fn usage_of(
    usage: &BTreeMap<SealedTable, BTreeMap<String, u64>>,
    table: SealedTable,
) -> Vec<(String, u64)> {
    usage
        .get(&table)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

pub async fn encrypted_messages_round_trip<B: Backend>(backend: &B) {
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1", 1);
    let store = open_with(backend, Some(EncryptionConfig::with_key_file("k1", &k1))).await;
    assert_eq!(store.active_key_id(), Some("k1"));

    let mut m = adt("enc", "C1", "MRN-4711").enqueue_to("enc/1", 1);
    m.content
        .push((1, Stage::Encoded, b"PID|1||MRN-4711||ZYXANDRA".to_vec()));
    let id = store.append(m.clone()).await.unwrap();
    let other = store.append(adt("enc", "C2", "MRN-0815")).await.unwrap();
    store
        .put_content(id, 1, Stage::Sent, b"sent MRN-4711".to_vec())
        .await
        .unwrap();
    let mut t = Transition::new(id);
    t.content
        .push((2, Stage::Transformed, b"{\"mrn\":\"MRN-4711\"}".to_vec()));
    t.metadata.push(("VISIT".into(), "V-99".into()));
    store.apply(vec![t]).await.unwrap();

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.raw(), Some(&m.raw[..]));
    let stage = |d, s| {
        got.content
            .iter()
            .find(|c| c.destination == d && c.stage == s)
            .map(|c| c.bytes.clone())
    };
    assert_eq!(
        stage(1, Stage::Encoded).as_deref(),
        Some(&b"PID|1||MRN-4711||ZYXANDRA"[..])
    );
    assert_eq!(
        stage(1, Stage::Sent).as_deref(),
        Some(&b"sent MRN-4711"[..])
    );
    assert_eq!(
        stage(2, Stage::Transformed).as_deref(),
        Some(&b"{\"mrn\":\"MRN-4711\"}"[..])
    );
    assert_eq!(
        got.metadata,
        vec![
            ("MRN".to_owned(), "MRN-4711".to_owned()),
            ("VISIT".to_owned(), "V-99".to_owned())
        ]
    );
    // metadata searches by exact value still work (blind index)
    let by = |k: &str, v: &str| MessageFilter {
        metadata: vec![(k.into(), v.into())],
        ..MessageFilter::default()
    };
    let listed: Vec<_> = store.list(&by("MRN", "MRN-4711")).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(store.count(&by("MRN", "MRN-0815")).await.unwrap(), 1);
    assert_eq!(store.count(&by("VISIT", "V-99")).await.unwrap(), 1);
    assert_eq!(store.count(&by("MRN", "MRN-47")).await.unwrap(), 0);
    assert_eq!(store.count(&by("VISIT", "MRN-4711")).await.unwrap(), 0);
    // a destination worker's batch read
    let mut batch = store.contents(&[id, other], 0, Stage::Raw).await.unwrap();
    batch.sort_by_key(|(i, _)| *i);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0].1, m.raw);
    // every encrypted value names key k1
    let usage = crypto::key_usage(&store).await.unwrap();
    assert_eq!(
        usage_of(&usage, SealedTable::MessageContent),
        vec![("k1".to_owned(), 5)]
    );
    assert_eq!(
        usage_of(&usage, SealedTable::MessageMetadata),
        vec![("k1".to_owned(), 3)]
    );
    store.close().await.unwrap();
}

pub async fn encrypted_resources_search<B: Backend>(backend: &B) {
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1", 1);
    let store = open_with(backend, Some(EncryptionConfig::with_key_file("k1", &k1))).await;
    let day = 86_400_000;
    store
        .write(vec![
            patient("p1", "Quetzalcoatlus", "MRN-1", 10 * day),
            patient("p2", "Quetzal", "MRN-2", 20 * day),
            patient("p3", "Smith", "MRN-3", 30 * day),
            patient("p4", "Abcdefghijklmnopqrstuvwxyzabcdef", "MRN-4", 40 * day),
        ])
        .await
        .unwrap();
    let read = store.read("Patient", "p1", None).await.unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&read.content).unwrap();
    assert_eq!(body["name"][0]["family"], "Quetzalcoatlus");

    let starts = |v: &str| search("name", name(v, StringMode::StartsWith));
    assert_eq!(found(&store, &starts("quetz")).await, vec!["p1", "p2"]);
    assert_eq!(found(&store, &starts("quetzalc")).await, vec!["p1"]);
    assert_eq!(found(&store, &starts("quetzal")).await, vec!["p1", "p2"]);
    assert_eq!(found(&store, &starts("q")).await, vec!["p1", "p2"]);
    assert!(found(&store, &starts("uetz")).await.is_empty());
    assert_eq!(found(&store, &starts("smith")).await, vec!["p3"]);
    // a prefix of up to 24 characters, and the whole value, of a longer value
    assert_eq!(
        found(&store, &starts("abcdefghijklmnopqrstuvwx")).await,
        vec!["p4"]
    );
    assert_eq!(
        found(&store, &starts("abcdefghijklmnopqrstuvwxyzabcdef")).await,
        vec!["p4"]
    );
    // exact
    let exact = |v: &str| search("family", name(v, StringMode::Exact));
    assert_eq!(found(&store, &exact("Quetzal")).await, vec!["p2"]);
    assert!(found(&store, &exact("quetzal")).await.is_empty());
    // token (identifier), with and without the system, and :not
    let ident = |system: TokenSystem, code: &str, negate: bool| {
        search(
            "identifier",
            Test::Token {
                system,
                code: Some(code.into()),
                negate,
            },
        )
    };
    assert_eq!(
        found(
            &store,
            &ident(TokenSystem::Is(MRN_SYSTEM.into()), "MRN-2", false)
        )
        .await,
        vec!["p2"]
    );
    assert_eq!(
        found(&store, &ident(TokenSystem::Any, "MRN-3", false)).await,
        vec!["p3"]
    );
    assert!(
        found(
            &store,
            &ident(TokenSystem::Is("urn:other".into()), "MRN-3", false)
        )
        .await
        .is_empty()
    );
    assert_eq!(
        found(&store, &ident(TokenSystem::Any, "MRN-3", true)).await,
        vec!["p1", "p2", "p4"]
    );
    // dates stay plaintext: range searches work
    let born = search(
        "birthdate",
        Test::Date {
            prefix: Prefix::Ge,
            low: 20 * day,
            high: 20 * day + day - 1,
        },
    );
    assert_eq!(found(&store, &born).await, vec!["p2", "p3", "p4"]);
    // a conditional create on the identifier finds the existing resource
    let mut again = patient("p9", "Other", "MRN-1", 0);
    again.precondition = Precondition::IfNoneExist(ident(TokenSystem::Any, "MRN-1", false));
    let out = store.write(vec![again]).await.unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Existing(r) if r.id == "p1"),
        "{out:?}"
    );

    // what blind indexes cannot answer is refused, not answered wrongly
    let refused = |r: Result<_, StoreError>| match r {
        Err(StoreError::UnsupportedWithEncryption { feature, .. }) => feature,
        other => panic!(
            "expected UnsupportedWithEncryption, got {:?}",
            other.map(|_: store::SearchPage| ())
        ),
    };
    let contains = refused(
        store
            .search(&search("name", name("etz", StringMode::Contains)))
            .await,
    );
    assert!(contains.contains(":contains"), "{contains}");
    let text = refused(
        store
            .search(&search("identifier", Test::TokenText("medical".into())))
            .await,
    );
    assert!(text.contains(":text"), "{text}");
    let mut sorted = starts("q");
    sorted.sort = vec![SortKey {
        param: "name".into(),
        descending: false,
        kind: ParamType::String,
    }];
    let sort = refused(store.search(&sorted).await);
    assert!(sort.contains("_sort"), "{sort}");
    let err = store
        .search(&search("name", name("etz", StringMode::Contains)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not supported with encryption at rest"),
        "{err}"
    );
    // sorting by a date still works
    sorted.sort[0] = SortKey {
        param: "birthdate".into(),
        descending: true,
        kind: ParamType::Date,
    };
    let page = store.search(&sorted).await.unwrap();
    let order: Vec<_> = page.matches.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(order, vec!["p2", "p1"]);

    let usage = crypto::key_usage(&store).await.unwrap();
    assert_eq!(
        usage_of(&usage, SealedTable::FhirVersion),
        vec![("k1".to_owned(), 4)]
    );
    store.close().await.unwrap();
}

pub async fn encryption_rotation_reencrypts_old_rows<B: Backend>(backend: &B) {
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1", 1);
    let k2 = key_file(keys.path(), "k2", 2);
    let store = open_with(backend, Some(EncryptionConfig::with_key_file("k1", &k1))).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = adt("rot", &format!("C{i}"), &format!("MRN-{i}"));
        m.content
            .push((1, Stage::Encoded, format!("out {i}").into_bytes()));
        ids.push(store.append(m).await.unwrap());
    }
    store
        .write(vec![
            patient("a", "Quetzalcoatlus", "MRN-A", 0),
            patient("b", "Zyxandra", "MRN-B", 0),
        ])
        .await
        .unwrap();
    store.close().await.unwrap();

    // k2 active, k1 retired: old rows read, new rows go under k2
    let rotated = EncryptionConfig {
        retired: vec![retired("k1", &k1)],
        ..EncryptionConfig::with_key_file("k2", &k2)
    };
    let store = open_with(backend, Some(rotated.clone())).await;
    assert_eq!(
        store.get(ids[0]).await.unwrap().unwrap().metadata[0].1,
        "MRN-0"
    );
    let newer = store.append(adt("rot", "C9", "MRN-9")).await.unwrap();
    let usage = crypto::key_usage(&store).await.unwrap();
    assert_eq!(
        usage_of(&usage, SealedTable::MessageContent),
        vec![("k1".to_owned(), 10), ("k2".to_owned(), 1)]
    );
    // rotation, in batches of 3 rows
    let mut batches = 0;
    let report = crypto::rotate(&store, 3, |_| batches += 1).await.unwrap();
    assert_eq!(report.rewritten[&SealedTable::MessageContent], 10);
    assert_eq!(report.rewritten[&SealedTable::MessageMetadata], 5);
    assert_eq!(report.rewritten[&SealedTable::FhirVersion], 2);
    assert_eq!(report.total(), 17);
    assert!(batches >= 6, "{batches} batches");
    let usage = crypto::key_usage(&store).await.unwrap();
    for table in SealedTable::ALL {
        let keys: Vec<String> = usage_of(&usage, table)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["k2".to_owned()], "{table:?}");
    }
    // everything still reads and searches (the blind indexes keep their key)
    for (i, id) in ids.iter().enumerate() {
        let m = store.get(*id).await.unwrap().unwrap();
        assert_eq!(m.metadata[0].1, format!("MRN-{i}"));
        assert_eq!(m.content[1].bytes, format!("out {i}").into_bytes());
    }
    assert!(store.get(newer).await.unwrap().is_some());
    let by_mrn = MessageFilter {
        metadata: vec![("MRN".into(), "MRN-3".into())],
        ..MessageFilter::default()
    };
    assert_eq!(store.list(&by_mrn).await.unwrap()[0].id, ids[3]);
    assert_eq!(
        found(&store, &search("name", name("zyx", StringMode::StartsWith))).await,
        vec!["b"]
    );
    let r = store.read("Patient", "a", Some(1)).await.unwrap().unwrap();
    assert!(
        String::from_utf8(r.content)
            .unwrap()
            .contains("Quetzalcoatlus")
    );
    // a second run has nothing left to do
    let again = crypto::rotate(&store, 100, |_| {}).await.unwrap();
    assert_eq!(again.total(), 0);
    store.close().await.unwrap();

    // the blind indexes are keyed from k1: it must stay configured
    let err =
        AnyStore::open(&backend.store_config(Some(EncryptionConfig::with_key_file("k2", &k2))))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("\"k1\""), "{err}");
}

pub async fn encryption_refuses_wrong_and_missing_keys<B: Backend>(backend: &B) {
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1", 1);
    let k2 = key_file(keys.path(), "k2", 2);
    let wrong = key_file(keys.path(), "wrong", 9);
    let store = open_with(backend, Some(EncryptionConfig::with_key_file("k1", &k1))).await;
    let first = store.append(adt("keys", "C1", "MRN-1")).await.unwrap();
    store.close().await.unwrap();

    // the id k1 with other key bytes: refused at open, naming the key and its source
    let err =
        AnyStore::open(&backend.store_config(Some(EncryptionConfig::with_key_file("k1", &wrong))))
            .await
            .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(text.contains("\"k1\"") && text.contains("wrong"), "{text}");
    // encrypted data without a configuration: refused
    let err = AnyStore::open(&backend.store_config(None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("encrypted at rest"), "{err}");
    // a missing key file, an unset variable, a short key: refused, naming the source
    let missing = EncryptionConfig::with_key_file("k1", keys.path().join("nope"));
    let err = AnyStore::open(&backend.store_config(Some(missing)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let unset = EncryptionConfig {
        key_file: None,
        key_env: Some("PLEXUS_TEST_KEY_THAT_IS_NEVER_SET".into()),
        ..EncryptionConfig::with_key_file("k1", "")
    };
    let err = AnyStore::open(&backend.store_config(Some(unset)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("PLEXUS_TEST_KEY_THAT_IS_NEVER_SET is not set"),
        "{err}"
    );
    let short = keys.path().join("short");
    std::fs::write(&short, "00112233").unwrap();
    let err =
        AnyStore::open(&backend.store_config(Some(EncryptionConfig::with_key_file("k1", &short))))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("expected 32 raw bytes"), "{err}");
    assert!(
        !err.to_string().contains("00112233"),
        "the key is never shown: {err}"
    );

    // a row under a key id that is not configured: a precise error, never garbage
    let both = EncryptionConfig {
        retired: vec![retired("k1", &k1)],
        ..EncryptionConfig::with_key_file("k2", &k2)
    };
    let store = open_with(backend, Some(both)).await;
    let second = store.append(adt("keys", "C2", "MRN-2")).await.unwrap();
    store.close().await.unwrap();
    let store = open_with(backend, Some(EncryptionConfig::with_key_file("k1", &k1))).await;
    assert_eq!(
        store.get(first).await.unwrap().unwrap().metadata[0].1,
        "MRN-1"
    );
    match store.get(second).await {
        Err(StoreError::UnknownKey { key_id, .. }) => assert_eq!(key_id, "k2"),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    store.close().await.unwrap();
}

pub async fn encryption_needs_an_empty_store<B: Backend>(backend: &B) {
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1", 1);
    let store = open_with(backend, None).await;
    assert_eq!(store.active_key_id(), None);
    store.append(adt("plain", "C1", "MRN-1")).await.unwrap();
    store.close().await.unwrap();
    let err =
        AnyStore::open(&backend.store_config(Some(EncryptionConfig::with_key_file("k1", &k1))))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("empty store"), "{err}");
    // and the plaintext store still opens and reads as before
    let store = open_with(backend, None).await;
    assert_eq!(store.count(&MessageFilter::default()).await.unwrap(), 1);
    let err = crypto::rotate(&store, 10, |_| {}).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    store.close().await.unwrap();
}
