//! FHIR resource cases: writes, versions, preconditions, history, and every kind of search,
//! with hand-built index rows.

use fhir::defs::ParamType;
use fhir::index::{IndexEntry, IndexValue};
use fhir::search::{
    Filter, Include, Predicate, Prefix, SearchRequest, SortKey, StringMode, Test, TokenSystem,
    TotalMode, UriMode,
};
use serde_json::json;
use store::{
    HistoryMethod, HistoryQuery, Precondition, ResourceWrite, Resources, StoredResource, WriteOp,
    WriteOutcome,
};

use super::*;

// ---- helpers ----------------------------------------------------------------------------

fn string(param: &str, text: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::String {
            normalized: fold(text),
            exact: text.into(),
            part: None,
        },
    }
}

/// A row of `param` (a HumanName or Address) converted from its `part`, as extraction
/// gives it: `family=…` and `address-city=…` are answered from these.
fn part_of(param: &str, part: &'static str, text: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::String {
            normalized: fold(text),
            exact: text.into(),
            part: Some(part),
        },
    }
}

/// A crude fold for the tests (lower case, a few accents).
fn fold(text: &str) -> String {
    text.to_lowercase().replace('ü', "u").replace('é', "e")
}

fn token(param: &str, system: Option<&str>, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: token_value(system, code),
    }
}

fn token_value(system: Option<&str>, code: &str) -> IndexValue {
    IndexValue::Token {
        system: system.map(Into::into),
        code: Some(code.into()),
        display: None,
        type_system: None,
        type_code: None,
    }
}

fn reference(param: &str, target_type: &str, id: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Reference {
            target_type: Some(target_type.into()),
            target_id: Some(id.into()),
            url: None,
            identifier_system: None,
            identifier_value: None,
        },
    }
}

fn date(param: &str, low: i64, high: i64) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Date { low, high },
    }
}

/// Milliseconds since the epoch of an RFC 3339 instant.
fn ms(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_micros() / 1000
}

/// The millisecond range of a year, month or day.
fn range(from: &str, to_exclusive: &str) -> (i64, i64) {
    (ms(from), ms(to_exclusive) - 1)
}

fn number(param: &str, value: f64, half: f64) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Number {
            value,
            low: value - half,
            high: value + half,
        },
    }
}

fn create(rtype: &str, id: &str, index: Vec<IndexEntry>) -> ResourceWrite {
    ResourceWrite {
        op: WriteOp::Create,
        resource_type: rtype.into(),
        id: id.into(),
        resource: Some(json!({"resourceType": rtype})),
        index,
        precondition: Precondition::None,
    }
}

fn update(rtype: &str, id: &str, body: serde_json::Value) -> ResourceWrite {
    ResourceWrite {
        op: WriteOp::Update,
        resource_type: rtype.into(),
        id: id.into(),
        resource: Some(body),
        index: vec![],
        precondition: Precondition::None,
    }
}

fn delete(rtype: &str, id: &str) -> ResourceWrite {
    ResourceWrite {
        op: WriteOp::Delete,
        resource_type: rtype.into(),
        id: id.into(),
        resource: None,
        index: vec![],
        precondition: Precondition::None,
    }
}

async fn put<S: Resources>(store: &S, rtype: &str, id: &str, index: Vec<IndexEntry>) {
    let out = store.write(vec![create(rtype, id, index)]).await.unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)), "{out:?}");
}

fn pred(param: &str, test: Test) -> Predicate {
    Predicate {
        param: param.into(),
        test,
    }
}

fn req(rtype: &str, filters: Vec<Vec<Predicate>>) -> SearchRequest {
    SearchRequest {
        resource_type: Some(rtype.into()),
        filters: filters.into_iter().map(|any| Filter { any }).collect(),
        count: 100,
        ..SearchRequest::default()
    }
}

fn one(rtype: &str, p: Predicate) -> SearchRequest {
    req(rtype, vec![vec![p]])
}

/// The ids a search matches, sorted.
/// A search for the Patients with MRN `v` (system `urn:mrn`).
fn mrn(v: &str) -> SearchRequest {
    one(
        "Patient",
        pred(
            "identifier",
            Test::Token {
                system: TokenSystem::Is("urn:mrn".into()),
                code: Some(v.into()),
                negate: false,
            },
        ),
    )
}

async fn ids<S: Resources>(store: &S, r: &SearchRequest) -> Vec<String> {
    let mut found: Vec<String> = store
        .search(r)
        .await
        .unwrap()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect();
    found.sort();
    found
}

/// The ids a search matches, in its order.
async fn ordered<S: Resources>(store: &S, r: &SearchRequest) -> Vec<String> {
    store
        .search(r)
        .await
        .unwrap()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn content(r: &StoredResource) -> serde_json::Value {
    serde_json::from_slice(&r.content).unwrap()
}

fn stored(outcome: &WriteOutcome) -> &StoredResource {
    match outcome {
        WriteOutcome::Created(r)
        | WriteOutcome::Updated(r)
        | WriteOutcome::Deleted(r)
        | WriteOutcome::Existing(r) => r,
        other => panic!("no resource in {other:?}"),
    }
}

fn date_test(prefix: Prefix, (low, high): (i64, i64)) -> Test {
    Test::Date { prefix, low, high }
}

fn num_test(prefix: Prefix, value: f64, half: f64) -> Test {
    Test::Number {
        prefix,
        value,
        low: value - half,
        high: value + half,
    }
}

// ---- writes and reads -------------------------------------------------------------------

pub async fn resource_versions_and_meta<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let out = store
        .write(vec![create("Patient", "p1", vec![string("name", "Ann")])])
        .await
        .unwrap();
    let v1 = stored(&out[0]).clone();
    assert!(matches!(out[0], WriteOutcome::Created(_)));
    assert_eq!(
        (v1.version, v1.deleted, v1.method),
        (1, false, HistoryMethod::Create)
    );
    let body = content(&v1);
    assert_eq!(body["id"], "p1");
    assert_eq!(body["resourceType"], "Patient");
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(body["meta"]["lastUpdated"], v1.last_updated.to_string());
    assert!(v1.last_updated.to_string().ends_with('Z'));

    let out = store
        .write(vec![update(
            "Patient",
            "p1",
            json!({"resourceType": "Patient", "active": true}),
        )])
        .await
        .unwrap();
    let v2 = stored(&out[0]).clone();
    assert!(matches!(out[0], WriteOutcome::Updated(_)), "{out:?}");
    assert_eq!((v2.version, v2.method), (2, HistoryMethod::Update));
    assert_eq!(content(&v2)["meta"]["versionId"], "2");
    assert_eq!(content(&v2)["active"], true);
    // the update had no index rows: the name is gone from the index
    let by_name = one(
        "Patient",
        pred(
            "name",
            Test::String {
                value: "ann".into(),
                mode: StringMode::StartsWith,
            },
        ),
    );
    assert!(ids(&store, &by_name).await.is_empty());

    assert_eq!(
        store.read("Patient", "p1", None).await.unwrap().unwrap(),
        v2
    );
    assert_eq!(
        store.read("Patient", "p1", Some(1)).await.unwrap().unwrap(),
        v1
    );
    assert!(
        store
            .read("Patient", "p1", Some(3))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.read("Patient", "nope", None).await.unwrap().is_none());
    assert!(
        store
            .read("Observation", "p1", None)
            .await
            .unwrap()
            .is_none()
    );

    let out = store.write(vec![delete("Patient", "p1")]).await.unwrap();
    let v3 = stored(&out[0]).clone();
    assert!(matches!(out[0], WriteOutcome::Deleted(_)));
    assert!(v3.deleted && v3.content.is_empty() && v3.version == 3);
    assert_eq!(v3.method, HistoryMethod::Delete);
    assert_eq!(
        store.read("Patient", "p1", None).await.unwrap().unwrap(),
        v3
    );
    assert_eq!(
        store.read("Patient", "p1", Some(2)).await.unwrap().unwrap(),
        v2
    );
    // deleting again, or something that never existed: nothing happens
    let out = store
        .write(vec![delete("Patient", "p1"), delete("Patient", "zz")])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::NotFound, WriteOutcome::NotFound]);
    // not found by search once deleted
    let by_id = one(
        "Patient",
        pred(
            "_id",
            Test::Token {
                system: TokenSystem::Any,
                code: Some("p1".into()),
                negate: false,
            },
        ),
    );
    assert!(ids(&store, &by_id).await.is_empty());
    // update after delete revives it with the next version
    let out = store
        .write(vec![update(
            "Patient",
            "p1",
            json!({"resourceType": "Patient"}),
        )])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Created(r) if r.version == 4),
        "{out:?}"
    );
    assert_eq!(ids(&store, &by_id).await, names(&["p1"]));
    // update of a new id creates it
    let out = store
        .write(vec![update("Patient", "new", json!({}))])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Created(r) if r.version == 1),
        "{out:?}"
    );
    assert_eq!(content(stored(&out[0]))["resourceType"], "Patient");
    // a body of another type, or no object at all, is refused
    let mut bad = update("Patient", "x", json!({"resourceType": "Observation"}));
    assert!(matches!(
        store.write(vec![bad.clone()]).await,
        Err(StoreError::InvalidArgument { .. })
    ));
    bad.resource = Some(json!([1]));
    assert!(matches!(
        store.write(vec![bad]).await,
        Err(StoreError::InvalidArgument { .. })
    ));
}

pub async fn resource_if_match_and_taken_ids<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Patient", "p1", vec![]).await;
    let mut w = update("Patient", "p1", json!({}));
    w.precondition = Precondition::IfMatch(2);
    assert_eq!(
        store.write(vec![w.clone()]).await.unwrap(),
        vec![WriteOutcome::VersionConflict(Some(1))]
    );
    w.precondition = Precondition::IfMatch(1);
    let out = store.write(vec![w.clone()]).await.unwrap();
    assert!(matches!(&out[0], WriteOutcome::Updated(r) if r.version == 2));
    // the same If-Match again is stale now
    assert_eq!(
        store.write(vec![w]).await.unwrap(),
        vec![WriteOutcome::VersionConflict(Some(2))]
    );
    let mut d = delete("Patient", "none");
    d.precondition = Precondition::IfMatch(1);
    assert_eq!(
        store.write(vec![d]).await.unwrap(),
        vec![WriteOutcome::VersionConflict(None)]
    );
    // creating a taken id, also a deleted one, is an error and stores nothing
    let err = store
        .write(vec![
            create("Patient", "fresh", vec![]),
            create("Patient", "p1", vec![]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceExists { .. }), "{err}");
    assert!(
        store
            .read("Patient", "fresh", None)
            .await
            .unwrap()
            .is_none()
    );
    store.write(vec![delete("Patient", "p1")]).await.unwrap();
    let err = store
        .write(vec![create("Patient", "p1", vec![])])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceExists { .. }), "{err}");
    // the same id in another type is another resource
    put(&store, "Observation", "p1", vec![]).await;
}

/// A call of several plain creates (a transaction Bundle's POSTs): every resource is stored
/// as version 1 with its meta and index rows, in order; a taken id, or the same id twice in
/// one call, fails the whole call and stores nothing.
pub async fn resource_several_creates_in_one_call<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let mut writes: Vec<ResourceWrite> = (0..12)
        .map(|i| {
            let mut w = create(
                "Observation",
                &format!("o{i:02}"),
                vec![
                    token("code", Some("http://loinc.org"), &format!("c{}", i % 3)),
                    reference("subject", "Patient", "p1"),
                    date("date", 1_000 * i, 1_000 * i + 999),
                ],
            );
            w.resource = Some(json!({"resourceType": "Observation", "status": "final", "n": i}));
            w
        })
        .collect();
    writes.insert(0, create("Patient", "p1", vec![string("name", "Sämple")]));
    let out = store.write(writes).await.unwrap();
    assert_eq!(out.len(), 13);
    for (i, o) in out.iter().enumerate().skip(1) {
        let r = stored(o);
        assert!(matches!(o, WriteOutcome::Created(_)), "{o:?}");
        assert_eq!(
            (r.id.as_str(), r.version),
            (format!("o{:02}", i - 1).as_str(), 1)
        );
        let body = content(r);
        assert_eq!(body["n"], i - 1);
        assert_eq!(body["id"], r.id);
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(body["meta"]["lastUpdated"], r.last_updated.to_string());
        let read = store
            .read("Observation", &r.id, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.content, r.content);
    }
    let c1 = one(
        "Observation",
        pred(
            "code",
            Test::Token {
                system: TokenSystem::Any,
                code: Some("c1".into()),
                negate: false,
            },
        ),
    );
    assert_eq!(ids(&store, &c1).await, names(&["o01", "o04", "o07", "o10"]));
    let mut by_subject = ids(
        &store,
        &one(
            "Observation",
            pred(
                "subject",
                Test::Reference {
                    target_type: Some("Patient".into()),
                    id: "p1".into(),
                },
            ),
        ),
    )
    .await;
    by_subject.dedup();
    assert_eq!(by_subject.len(), 12);
    // the same id twice in one call, or an id already taken: nothing of the call is stored
    for second in ["n1", "o03"] {
        let err = store
            .write(vec![
                create("Observation", "n1", vec![]),
                create("Observation", "n2", vec![]),
                create("Observation", second, vec![]),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ResourceExists { .. }), "{err}");
        assert!(
            store
                .read("Observation", "n1", None)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read("Observation", "n2", None)
                .await
                .unwrap()
                .is_none()
        );
    }
}

pub async fn resource_multi_write_rolls_back_on_failure<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Patient", "b", vec![]).await;
    let mut stale = update("Patient", "b", json!({}));
    stale.precondition = Precondition::IfMatch(7);
    let out = store
        .write(vec![
            create("Patient", "a", vec![string("name", "x")]),
            update("Patient", "b", json!({"active": true})),
            stale,
        ])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)));
    assert!(matches!(&out[1], WriteOutcome::Updated(r) if r.version == 2));
    // the stale If-Match sees the earlier write of the same call
    assert_eq!(out[2], WriteOutcome::VersionConflict(Some(2)));
    assert!(store.read("Patient", "a", None).await.unwrap().is_none());
    assert_eq!(
        store
            .read("Patient", "b", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    let all = req("Patient", vec![]);
    assert_eq!(ids(&store, &all).await, names(&["b"]));
    // a write reads the writes before it in the same call
    let mut cond = create("Patient", "c2", vec![string("name", "dup")]);
    let dup = one(
        "Patient",
        pred(
            "name",
            Test::String {
                value: "dup".into(),
                mode: StringMode::Exact,
            },
        ),
    );
    cond.precondition = Precondition::IfNoneExist(dup);
    let out = store
        .write(vec![
            create("Patient", "c1", vec![string("name", "dup")]),
            cond,
        ])
        .await
        .unwrap();
    assert!(
        matches!(&out[1], WriteOutcome::Existing(r) if r.id == "c1"),
        "{out:?}"
    );
}

pub async fn resource_conditional_writes<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let with_mrn = |id: &str, v: &str, pre: Precondition| {
        let mut w = create("Patient", id, vec![token("identifier", Some("urn:mrn"), v)]);
        w.precondition = pre;
        w
    };
    // conditional create: none, one, many
    let out = store
        .write(vec![with_mrn(
            "a",
            "1",
            Precondition::IfNoneExist(mrn("1")),
        )])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)));
    let out = store
        .write(vec![with_mrn(
            "b",
            "1",
            Precondition::IfNoneExist(mrn("1")),
        )])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Existing(r) if r.id == "a"),
        "{out:?}"
    );
    assert!(store.read("Patient", "b", None).await.unwrap().is_none());
    // NoneExist: a match fails the whole call (a transaction's planned create)
    let out = store
        .write(vec![
            create("Patient", "bystander", vec![]),
            with_mrn("n1", "1", Precondition::NoneExist(mrn("1"))),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&out[1], WriteOutcome::MatchAppeared(r) if r.id == "a"),
        "{out:?}"
    );
    assert!(out[1].is_failure());
    for id in ["bystander", "n1"] {
        assert!(
            store.read("Patient", id, None).await.unwrap().is_none(),
            "{id}"
        );
    }
    let out = store
        .write(vec![with_mrn("n2", "2", Precondition::NoneExist(mrn("2")))])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)), "{out:?}");
    put(
        &store,
        "Patient",
        "a2",
        vec![token("identifier", Some("urn:mrn"), "1")],
    )
    .await;
    let out = store
        .write(vec![with_mrn(
            "c",
            "1",
            Precondition::IfNoneExist(mrn("1")),
        )])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::MultipleMatches]);
    // an Observation with the same identifier does not count: the search is on the type
    let mut obs = create(
        "Observation",
        "o",
        vec![token("identifier", Some("urn:mrn"), "9")],
    );
    obs.precondition = Precondition::None;
    store.write(vec![obs]).await.unwrap();
    let out = store
        .write(vec![with_mrn(
            "p9",
            "9",
            Precondition::IfNoneExist(mrn("9")),
        )])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)));

    // conditional update: one match updates it (whatever the write's id), none creates
    let cond_update = |id: &str, v: &str| {
        let mut w = update("Patient", id, json!({"resourceType": "Patient", "x": v}));
        w.index = vec![token("identifier", Some("urn:mrn"), v)];
        w.precondition = Precondition::Match(mrn(v));
        w
    };
    let out = store
        .write(vec![cond_update("ignored", "9")])
        .await
        .unwrap();
    assert!(matches!(&out[0], WriteOutcome::Updated(r) if r.id == "p9" && r.version == 2));
    assert!(
        store
            .read("Patient", "ignored", None)
            .await
            .unwrap()
            .is_none()
    );
    let out = store.write(vec![cond_update("n5", "5")]).await.unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Created(r) if r.id == "n5"),
        "{out:?}"
    );
    let out = store.write(vec![cond_update("x", "1")]).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::MultipleMatches]);

    // conditional delete: none, one, many
    let cond_delete = |v: &str| {
        let mut w = delete("Patient", "");
        w.precondition = Precondition::Match(mrn(v));
        w
    };
    assert_eq!(
        store.write(vec![cond_delete("404")]).await.unwrap(),
        vec![WriteOutcome::NotFound]
    );
    let out = store.write(vec![cond_delete("5")]).await.unwrap();
    assert!(matches!(&out[0], WriteOutcome::Deleted(r) if r.id == "n5"));
    assert_eq!(
        store.write(vec![cond_delete("1")]).await.unwrap(),
        vec![WriteOutcome::MultipleMatches]
    );
    assert!(
        !store
            .read("Patient", "a", None)
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
}

/// The writes of one call see the index rows of the writes before them: a conditional
/// create's search finds a resource created earlier in the call, and an update of a
/// resource created earlier in the call replaces its rows (SQLite inserts the rows of a
/// call's creates together, so this checks that they are in place before either).
pub async fn resource_one_call_sees_its_own_index_rows<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let with_mrn =
        |id: &str, v: &str| create("Patient", id, vec![token("identifier", Some("urn:mrn"), v)]);
    let mut conditional = with_mrn("y", "7");
    conditional.precondition = Precondition::IfNoneExist(mrn("7"));
    let out = store
        .write(vec![with_mrn("w", "6"), with_mrn("x", "7"), conditional])
        .await
        .unwrap();
    assert!(
        matches!(&out[2], WriteOutcome::Existing(r) if r.id == "x"),
        "{out:?}"
    );
    assert!(store.read("Patient", "y", None).await.unwrap().is_none());
    let mut changed = update("Patient", "u", json!({"resourceType": "Patient"}));
    changed.index = vec![token("identifier", Some("urn:mrn"), "9")];
    store
        .write(vec![with_mrn("u", "8"), with_mrn("v", "8"), changed])
        .await
        .unwrap();
    assert_eq!(ids(&store, &mrn("8")).await, names(&["v"]));
    assert_eq!(ids(&store, &mrn("9")).await, names(&["u"]));
    assert_eq!(ids(&store, &mrn("6")).await, names(&["w"]));
    // a resource created and deleted in one call leaves no rows
    store
        .write(vec![with_mrn("gone", "5"), delete("Patient", "gone")])
        .await
        .unwrap();
    assert!(ids(&store, &mrn("5")).await.is_empty());
    store.close().await.unwrap();
}

pub async fn resource_concurrent_conditional_creates<B: Backend>(backend: &B) {
    let store = Arc::new(open(backend).await);
    let search = one(
        "Patient",
        pred(
            "identifier",
            Test::Token {
                system: TokenSystem::Is("urn:mrn".into()),
                code: Some("42".into()),
                negate: false,
            },
        ),
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let search = search.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = create(
                "Patient",
                &format!("p{i}"),
                vec![token("identifier", Some("urn:mrn"), "42")],
            );
            w.precondition = Precondition::IfNoneExist(search);
            store.write(vec![w]).await.unwrap().remove(0)
        }));
    }
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            WriteOutcome::Created(r) => created.push(r.id),
            WriteOutcome::Existing(r) => existing.push(r.id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(existing.len(), 49);
    assert!(existing.iter().all(|id| *id == created[0]));
    assert_eq!(ids(&*store, &search).await, created);
}

pub async fn resource_history_pages_newest_first<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Patient", "p1", vec![]).await;
    put(&store, "Observation", "o1", vec![]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mid = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .write(vec![update("Patient", "p1", json!({}))])
        .await
        .unwrap();
    store.write(vec![delete("Patient", "p1")]).await.unwrap();
    let q = |rtype: Option<&str>, id: Option<&str>| HistoryQuery {
        resource_type: rtype.map(Into::into),
        id: id.map(Into::into),
        since: None,
        count: 10,
        offset: 0,
    };
    let h = store
        .history(&q(Some("Patient"), Some("p1")))
        .await
        .unwrap();
    assert_eq!(h.total, 3);
    let versions: Vec<u64> = h.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![3, 2, 1]);
    assert_eq!(h.versions[0].method, HistoryMethod::Delete);
    assert_eq!(h.versions[2].method, HistoryMethod::Create);
    assert_eq!(
        store
            .history(&q(Some("Patient"), None))
            .await
            .unwrap()
            .total,
        3
    );
    assert_eq!(
        store
            .history(&q(Some("Observation"), None))
            .await
            .unwrap()
            .total,
        1
    );
    let all = store.history(&q(None, None)).await.unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(all.versions.last().unwrap().id, "p1");
    // pages
    let mut page = q(None, None);
    page.count = 3;
    page.offset = 2;
    let h = store.history(&page).await.unwrap();
    assert_eq!((h.total, h.versions.len()), (4, 2));
    assert_eq!(h.versions, all.versions[2..].to_vec());
    // since
    let mut since = q(None, None);
    since.since = Some(mid);
    let h = store.history(&since).await.unwrap();
    assert_eq!(h.total, 2);
    assert!(h.versions.iter().all(|v| v.id == "p1" && v.version >= 2));
    // one resource needs its type
    assert!(matches!(
        store.history(&q(None, Some("p1"))).await,
        Err(StoreError::InvalidArgument { .. })
    ));
}

// ---- searches ---------------------------------------------------------------------------

/// A parameter on a HumanName or Address part (`family`, `address-city`) has no rows of its
/// own: it is answered from the whole element's rows that carry the part, in every form of
/// search that reads string rows (value, `:exact`, `:missing`, sort).
pub async fn part_parameters_read_the_whole_elements_rows<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(
        &store,
        "Patient",
        "p1",
        vec![
            part_of("name", "family", "Salem"),
            part_of("address", "line", "Salem Rd"),
            part_of("address", "city", "Boston"),
        ],
    )
    .await;
    put(
        &store,
        "Patient",
        "p2",
        vec![
            part_of("name", "given", "Salem"),
            part_of("name", "family", "Adams"),
            part_of("address", "city", "Salem"),
            part_of("address", "state", "Boston"),
        ],
    )
    .await;
    put(
        &store,
        "Patient",
        "p3",
        vec![part_of("name", "family", "Brown")],
    )
    .await;
    let s = |param: &str, value: &str, mode| {
        one(
            "Patient",
            pred(
                param,
                Test::String {
                    value: value.into(),
                    mode,
                },
            ),
        )
    };
    let start = StringMode::StartsWith;
    assert_eq!(
        ids(&store, &s("address", "boston", start)).await,
        ["p1", "p2"]
    );
    assert_eq!(
        ids(&store, &s("address-city", "boston", start)).await,
        ["p1"]
    );
    assert_eq!(
        ids(&store, &s("address-state", "boston", start)).await,
        ["p2"]
    );
    assert_eq!(
        ids(&store, &s("address", "salem", start)).await,
        ["p1", "p2"]
    );
    assert_eq!(
        ids(&store, &s("address-city", "salem", start)).await,
        ["p2"]
    );
    assert_eq!(ids(&store, &s("name", "salem", start)).await, ["p1", "p2"]);
    assert_eq!(ids(&store, &s("family", "salem", start)).await, ["p1"]);
    assert_eq!(ids(&store, &s("given", "salem", start)).await, ["p2"]);
    assert_eq!(
        ids(&store, &s("family", "Adams", StringMode::Exact)).await,
        ["p2"]
    );
    assert!(
        ids(&store, &s("family", "adams", StringMode::Exact))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, &s("address-city", "ost", StringMode::Contains)).await,
        ["p1"]
    );
    let missing = |param: &str, missing| {
        one(
            "Patient",
            pred(
                param,
                Test::Missing {
                    missing,
                    kind: ParamType::String,
                },
            ),
        )
    };
    assert_eq!(ids(&store, &missing("address-city", true)).await, ["p3"]);
    assert_eq!(
        ids(&store, &missing("address-city", false)).await,
        ["p1", "p2"]
    );
    assert_eq!(ids(&store, &missing("given", true)).await, ["p1", "p3"]);
    let mut by_family = req("Patient", vec![]);
    by_family.sort = vec![SortKey {
        param: "family".into(),
        descending: false,
        kind: ParamType::String,
    }];
    assert_eq!(ordered(&store, &by_family).await, ["p2", "p3", "p1"]);
    by_family.sort[0].param = "given".into();
    // no given name sorts last, then by row id
    assert_eq!(ordered(&store, &by_family).await, ["p2", "p1", "p3"]);
}

pub async fn resource_search_strings_tokens_uris<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Patient", "smith", vec![string("name", "Smith")]).await;
    put(
        &store,
        "Patient",
        "smithers",
        vec![string("name", "Smithers")],
    )
    .await;
    put(
        &store,
        "Patient",
        "black",
        vec![string("name", "Blacksmith")],
    )
    .await;
    put(&store, "Patient", "muller", vec![string("name", "Müller")]).await;
    put(&store, "Patient", "pct", vec![string("name", "50%_off")]).await;
    put(&store, "Patient", "none", vec![]).await;
    put(&store, "Practitioner", "dr", vec![string("name", "Smith")]).await;
    let s = |value: &str, mode| {
        one(
            "Patient",
            pred(
                "name",
                Test::String {
                    value: value.into(),
                    mode,
                },
            ),
        )
    };
    assert_eq!(
        ids(&store, &s("smi", StringMode::StartsWith)).await,
        names(&["smith", "smithers"])
    );
    assert_eq!(
        ids(&store, &s("Müller", StringMode::Exact)).await,
        names(&["muller"])
    );
    assert!(
        ids(&store, &s("müller", StringMode::Exact))
            .await
            .is_empty()
    );
    assert!(ids(&store, &s("Smit", StringMode::Exact)).await.is_empty());
    assert_eq!(
        ids(&store, &s("smith", StringMode::Contains)).await,
        names(&["black", "smith", "smithers"])
    );
    assert_eq!(
        ids(&store, &s("%", StringMode::Contains)).await,
        names(&["pct"])
    );
    assert_eq!(
        ids(&store, &s("_", StringMode::Contains)).await,
        names(&["pct"])
    );
    assert_eq!(ids(&store, &s("", StringMode::StartsWith)).await.len(), 5);
    // OR within a parameter, AND across parameters
    let either = req(
        "Patient",
        vec![vec![
            pred(
                "name",
                Test::String {
                    value: "bla".into(),
                    mode: StringMode::StartsWith,
                },
            ),
            pred(
                "name",
                Test::String {
                    value: "mul".into(),
                    mode: StringMode::StartsWith,
                },
            ),
        ]],
    );
    assert_eq!(ids(&store, &either).await, names(&["black", "muller"]));
    let both = req(
        "Patient",
        vec![
            vec![pred(
                "name",
                Test::String {
                    value: "smi".into(),
                    mode: StringMode::StartsWith,
                },
            )],
            vec![pred(
                "name",
                Test::String {
                    value: "ers".into(),
                    mode: StringMode::Contains,
                },
            )],
        ],
    );
    assert_eq!(ids(&store, &both).await, names(&["smithers"]));

    // tokens
    let mrn_typed = IndexEntry {
        param: "identifier".into(),
        value: IndexValue::Token {
            system: Some("urn:s1".into()),
            code: Some("123".into()),
            display: Some("medical record number".into()),
            type_system: Some("v2".into()),
            type_code: Some("MR".into()),
        },
    };
    put(&store, "Person", "t1", vec![mrn_typed]).await;
    put(
        &store,
        "Person",
        "t2",
        vec![token("gender", None, "female")],
    )
    .await;
    put(
        &store,
        "Person",
        "t3",
        vec![token("identifier", Some("urn:s2"), "123")],
    )
    .await;
    put(&store, "Person", "t4", vec![]).await;
    let t = |system, code: Option<&str>, negate| {
        one(
            "Person",
            pred(
                if code == Some("female") {
                    "gender"
                } else {
                    "identifier"
                },
                Test::Token {
                    system,
                    code: code.map(Into::into),
                    negate,
                },
            ),
        )
    };
    assert_eq!(
        ids(&store, &t(TokenSystem::Any, Some("123"), false)).await,
        names(&["t1", "t3"])
    );
    assert_eq!(
        ids(
            &store,
            &t(TokenSystem::Is("urn:s1".into()), Some("123"), false)
        )
        .await,
        names(&["t1"])
    );
    assert!(
        ids(&store, &t(TokenSystem::None, Some("123"), false))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, &t(TokenSystem::None, Some("female"), false)).await,
        names(&["t2"])
    );
    assert_eq!(
        ids(&store, &t(TokenSystem::Is("urn:s2".into()), None, false)).await,
        names(&["t3"])
    );
    // :not matches resources without any matching row, also those without the parameter
    assert_eq!(
        ids(
            &store,
            &t(TokenSystem::Is("urn:s1".into()), Some("123"), true)
        )
        .await,
        names(&["t2", "t3", "t4"])
    );
    let text = one(
        "Person",
        pred("identifier", Test::TokenText("medical rec".into())),
    );
    assert_eq!(ids(&store, &text).await, names(&["t1"]));
    let of_type = |code: &str| {
        one(
            "Person",
            pred(
                "identifier",
                Test::OfType {
                    type_system: "v2".into(),
                    type_code: code.into(),
                    value: "123".into(),
                },
            ),
        )
    };
    assert_eq!(ids(&store, &of_type("MR")).await, names(&["t1"]));
    assert!(ids(&store, &of_type("SS")).await.is_empty());
    // _id
    let by_id = |code: &str, negate| {
        one(
            "Person",
            pred(
                "_id",
                Test::Token {
                    system: TokenSystem::Any,
                    code: Some(code.into()),
                    negate,
                },
            ),
        )
    };
    assert_eq!(ids(&store, &by_id("t2", false)).await, names(&["t2"]));
    assert_eq!(
        ids(&store, &by_id("t2", true)).await,
        names(&["t1", "t3", "t4"])
    );

    // uris
    let uri = |id: &str, v: &str| {
        (
            id.to_owned(),
            IndexEntry {
                param: "url".into(),
                value: IndexValue::Uri { value: v.into() },
            },
        )
    };
    for (id, e) in [
        uri("u1", "http://a.org/fhir/ValueSet/x"),
        uri("u2", "http://a.org/fhir"),
        uri("u3", "http://b.org"),
    ] {
        put(&store, "ValueSet", &id, vec![e]).await;
    }
    let u = |v: &str, mode| {
        one(
            "ValueSet",
            pred(
                "url",
                Test::Uri {
                    value: v.into(),
                    mode,
                },
            ),
        )
    };
    assert_eq!(
        ids(&store, &u("http://a.org/fhir/ValueSet/x", UriMode::Exact)).await,
        names(&["u1"])
    );
    assert_eq!(
        ids(&store, &u("http://a.org/fhir/ValueSet/x/y", UriMode::Above)).await,
        names(&["u1", "u2"])
    );
    assert_eq!(
        ids(&store, &u("http://a.org/", UriMode::Below)).await,
        names(&["u1", "u2"])
    );
    assert!(ids(&store, &u("http://a.org/fhir/V", UriMode::Above)).await == names(&["u2"]));
}

pub async fn resource_search_dates_and_precision<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let y2024 = range("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z");
    let jan = range("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
    let jan1 = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
    let jan15 = range("2024-01-15T00:00:00Z", "2024-01-16T00:00:00Z");
    let y2023 = range("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z");
    let instant = ms("2024-01-15T10:00:00Z");
    let cases = [
        ("a", jan1),                                                  // a whole day
        ("b", (instant, instant)),                                    // an instant
        ("c", y2023),                                                 // a year
        ("d", range("2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z")), // another day
        ("e", (ms("2023-12-31T00:00:00Z"), i64::MAX)),                // open period
        ("f", range("2000-07-01T00:00:00Z", "2000-07-02T00:00:00Z")), // long ago
        ("g", range("1990-01-01T00:00:00Z", "1991-01-01T00:00:00Z")),
    ];
    for (id, (low, high)) in cases {
        put(&store, "Encounter", id, vec![date("date", low, high)]).await;
    }
    put(&store, "Encounter", "nodate", vec![]).await;
    let q = |prefix, r| one("Encounter", pred("date", date_test(prefix, r)));
    assert_eq!(
        ids(&store, &q(Prefix::Eq, y2024)).await,
        names(&["a", "b", "d"])
    );
    assert_eq!(ids(&store, &q(Prefix::Eq, jan)).await, names(&["a", "b"]));
    assert_eq!(ids(&store, &q(Prefix::Eq, jan1)).await, names(&["a"]));
    assert_eq!(
        ids(&store, &q(Prefix::Ne, jan)).await,
        names(&["c", "d", "e", "f", "g"])
    );
    assert_eq!(ids(&store, &q(Prefix::Gt, jan)).await, names(&["d", "e"]));
    assert_eq!(
        ids(&store, &q(Prefix::Ge, jan)).await,
        names(&["a", "b", "d", "e"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Lt, jan)).await,
        names(&["c", "e", "f", "g"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Le, jan)).await,
        names(&["a", "b", "c", "e", "f", "g"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Sa, y2023)).await,
        names(&["a", "b", "d"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eb, jan15)).await,
        names(&["a", "c", "f", "g"])
    );
    // ge/le at the boundaries: the day itself is included, the day before/after is not
    assert_eq!(
        ids(&store, &q(Prefix::Ge, jan1)).await,
        names(&["a", "b", "d", "e"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Le, jan1)).await,
        names(&["a", "c", "e", "f", "g"])
    );
    // the instant equals a search at millisecond precision
    assert_eq!(
        ids(&store, &q(Prefix::Eq, (instant, instant))).await,
        names(&["b"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Gt, (instant, instant))).await,
        names(&["d", "e"])
    );
    // ap: 2000-06-01 widened by 10% of 25+ years reaches 2000-07-01 but not 1990 or 2023
    let june = range("2000-06-01T00:00:00Z", "2000-06-02T00:00:00Z");
    assert_eq!(ids(&store, &q(Prefix::Ap, june)).await, names(&["f"]));

    // _lastUpdated works on the resource row
    let lu = |prefix, from: &str| {
        let t = ms(from);
        one("Encounter", pred("_lastUpdated", date_test(prefix, (t, t))))
    };
    assert_eq!(
        ids(&store, &lu(Prefix::Gt, "2020-01-01T00:00:00Z"))
            .await
            .len(),
        8
    );
    assert!(
        ids(&store, &lu(Prefix::Lt, "2020-01-01T00:00:00Z"))
            .await
            .is_empty()
    );
    let a = store.read("Encounter", "a", None).await.unwrap().unwrap();
    let at = a.last_updated.as_micros() / 1000;
    let exact = one(
        "Encounter",
        pred("_lastUpdated", date_test(Prefix::Eq, (at, at))),
    );
    assert!(ids(&store, &exact).await.contains(&"a".to_owned()));
}

/// Two bounds on one date parameter: each bound may match a different value of a resource
/// with several values, while single, narrow values (the fast path) must meet both.
pub async fn resource_search_date_ranges<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let day = |d: &str| range(&format!("{d}T00:00:00Z"), &format!("{d}T23:59:59.999Z"));
    let two = |a: &str, b: &str| {
        let (a, b) = (day(a), day(b));
        vec![date("date", a.0, a.1), date("date", b.0, b.1)]
    };
    put(
        &store,
        "Encounter",
        "multi",
        two("2020-01-01", "2022-01-01"),
    )
    .await;
    // two values, both after every upper bound below: each bound must hold for some value
    put(&store, "Encounter", "late", two("2022-01-01", "2023-01-01")).await;
    // written in one call, after a resource with a single value: each resource's rows keep
    // their own `fast` flags (a two-valued resource's rows are never fast)
    store
        .write(vec![
            create(
                "Encounter",
                "one",
                vec![date("date", day("2019-05-05").0, day("2019-05-05").1)],
            ),
            create("Encounter", "pair", two("2020-02-01", "2022-02-01")),
        ])
        .await
        .unwrap();
    let single = |d: &str| {
        let r = day(d);
        vec![date("date", r.0, r.1)]
    };
    put(&store, "Encounter", "b2021", single("2021-01-01")).await;
    put(&store, "Encounter", "c2020", single("2020-03-01")).await;
    put(&store, "Encounter", "d2021", single("2021-07-01")).await;
    let y = |y: &str| {
        range(
            &format!("{y}-01-01T00:00:00Z"),
            &format!("{y}-12-31T23:59:59.999Z"),
        )
    };
    let month = |m: &str| day(&format!("{m}-15"));
    let bounds = |a: Test, b: Test| {
        req(
            "Encounter",
            vec![vec![pred("date", a)], vec![pred("date", b)]],
        )
    };
    // disjoint bounds: only the resource with two values matches, each bound by another value
    let q = bounds(
        date_test(Prefix::Ge, month("2021-06")),
        date_test(Prefix::Le, month("2020-06")),
    );
    assert_eq!(ids(&store, &q).await, names(&["multi", "pair"]));
    // a range: single values inside it, and the resource whose first value is inside
    let q = bounds(
        date_test(Prefix::Ge, y("2020")),
        date_test(Prefix::Le, y("2020")),
    );
    assert_eq!(ids(&store, &q).await, names(&["c2020", "multi", "pair"]));
    let q = bounds(
        date_test(Prefix::Gt, day("2020-12-31")),
        date_test(Prefix::Lt, day("2021-12-31")),
    );
    assert_eq!(
        ids(&store, &q).await,
        names(&["b2021", "d2021", "multi", "pair"])
    );
}

pub async fn resource_search_numbers_and_quantities<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(
        &store,
        "RiskAssessment",
        "n1",
        vec![number("p", 100.0, 0.5)],
    )
    .await; // "100"
    put(
        &store,
        "RiskAssessment",
        "n2",
        vec![number("p", 100.0, 0.05)],
    )
    .await; // "100.0"
    put(
        &store,
        "RiskAssessment",
        "n3",
        vec![number("p", 101.0, 0.5)],
    )
    .await; // "101"
    put(&store, "RiskAssessment", "n4", vec![number("p", 5.4, 0.05)]).await; // "5.4"
    let q = |prefix, v, half| one("RiskAssessment", pred("p", num_test(prefix, v, half)));
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 100.0, 0.5)).await,
        names(&["n1", "n2"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 100.0, 0.05)).await,
        names(&["n2"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Ne, 100.0, 0.5)).await,
        names(&["n3", "n4"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Gt, 100.0, 0.5)).await,
        names(&["n3"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Ge, 100.0, 0.5)).await,
        names(&["n1", "n2", "n3"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Lt, 100.0, 0.5)).await,
        names(&["n4"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Le, 100.0, 0.5)).await,
        names(&["n1", "n2", "n4"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Sa, 99.0, 0.5)).await,
        names(&["n2", "n3"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eb, 101.0, 0.5)).await,
        names(&["n2", "n4"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Ap, 100.0, 0.5)).await,
        names(&["n1", "n2", "n3"])
    );
    assert_eq!(ids(&store, &q(Prefix::Ap, 5.0, 0.5)).await, names(&["n4"]));

    let qty = |system: Option<&str>, code: Option<&str>, unit: Option<&str>| IndexEntry {
        param: "value-quantity".into(),
        value: IndexValue::Quantity {
            system: system.map(Into::into),
            code: code.map(Into::into),
            unit: unit.map(Into::into),
            value: 5.4,
            low: 5.4 - 0.05,
            high: 5.4 + 0.05,
        },
    };
    let ucum = "http://unitsofmeasure.org";
    put(
        &store,
        "Observation",
        "q1",
        vec![qty(Some(ucum), Some("mg"), Some("milligram"))],
    )
    .await;
    put(
        &store,
        "Observation",
        "q2",
        vec![qty(None, None, Some("mg"))],
    )
    .await;
    put(
        &store,
        "Observation",
        "q3",
        vec![qty(Some(ucum), Some("g"), None)],
    )
    .await;
    let q = |prefix, value: f64, system: Option<&str>, code: Option<&str>| {
        one(
            "Observation",
            pred(
                "value-quantity",
                Test::Quantity {
                    prefix,
                    value,
                    low: value - 0.05,
                    high: value + 0.05,
                    system: system.map(Into::into),
                    code: code.map(Into::into),
                },
            ),
        )
    };
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 5.4, Some(ucum), Some("mg"))).await,
        names(&["q1"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 5.4, None, Some("mg"))).await,
        names(&["q1", "q2"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 5.4, None, None)).await,
        names(&["q1", "q2", "q3"])
    );
    assert_eq!(
        ids(&store, &q(Prefix::Eq, 5.4, Some(ucum), None)).await,
        names(&["q1", "q3"])
    );
    assert!(
        ids(&store, &q(Prefix::Gt, 5.4, None, None))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, &q(Prefix::Lt, 6.0, Some(ucum), Some("g"))).await,
        names(&["q3"])
    );
}

pub async fn resource_search_references_chains_has<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Organization", "org1", vec![string("name", "Acme")]).await;
    put(
        &store,
        "Organization",
        "org2",
        vec![string("name", "Other")],
    )
    .await;
    put(
        &store,
        "Patient",
        "p1",
        vec![
            string("name", "Alpha"),
            reference("organization", "Organization", "org1"),
        ],
    )
    .await;
    put(
        &store,
        "Patient",
        "p2",
        vec![
            string("name", "Beta"),
            reference("organization", "Organization", "org2"),
        ],
    )
    .await;
    put(&store, "Group", "p1", vec![string("name", "Alpha group")]).await;
    put(
        &store,
        "Observation",
        "o1",
        vec![
            reference("subject", "Patient", "p1"),
            token("code", Some("l"), "xyz"),
        ],
    )
    .await;
    put(
        &store,
        "Observation",
        "o2",
        vec![
            reference("subject", "Patient", "p2"),
            token("code", Some("l"), "abc"),
        ],
    )
    .await;
    put(
        &store,
        "Observation",
        "o3",
        vec![reference("subject", "Group", "p1")],
    )
    .await;
    let url_ref = IndexEntry {
        param: "subject".into(),
        value: IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: Some("http://ext.org/fhir/Patient/9".into()),
            identifier_system: None,
            identifier_value: None,
        },
    };
    put(&store, "Observation", "o4", vec![url_ref]).await;
    let ident_ref = IndexEntry {
        param: "subject".into(),
        value: IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: None,
            identifier_system: Some("urn:mrn".into()),
            identifier_value: Some("77".into()),
        },
    };
    put(&store, "Observation", "o5", vec![ident_ref]).await;
    let r = |t: Test| one("Observation", pred("subject", t));
    let lit = |tt: Option<&str>, id: &str| {
        r(Test::Reference {
            target_type: tt.map(Into::into),
            id: id.into(),
        })
    };
    assert_eq!(ids(&store, &lit(None, "p1")).await, names(&["o1", "o3"]));
    assert_eq!(
        ids(&store, &lit(Some("Patient"), "p1")).await,
        names(&["o1"])
    );
    assert_eq!(
        ids(
            &store,
            &r(Test::ReferenceUrl("http://ext.org/fhir/Patient/9".into()))
        )
        .await,
        names(&["o4"])
    );
    let ident = |system: Option<&str>, value: &str| {
        r(Test::ReferenceIdentifier {
            system: system.map(Into::into),
            value: value.into(),
        })
    };
    assert_eq!(
        ids(&store, &ident(Some("urn:mrn"), "77")).await,
        names(&["o5"])
    );
    assert_eq!(ids(&store, &ident(None, "77")).await, names(&["o5"]));
    assert!(ids(&store, &ident(Some("urn:x"), "77")).await.is_empty());

    // chains
    let name_starts = |v: &str| {
        pred(
            "name",
            Test::String {
                value: v.into(),
                mode: StringMode::StartsWith,
            },
        )
    };
    let chain = |types: &[&str], inner: Predicate| {
        r(Test::Chain {
            target_types: names(types),
            predicate: Box::new(inner),
        })
    };
    assert_eq!(
        ids(&store, &chain(&["Patient"], name_starts("alp"))).await,
        names(&["o1"])
    );
    assert_eq!(
        ids(&store, &chain(&[], name_starts("alp"))).await,
        names(&["o1", "o3"])
    );
    assert_eq!(
        ids(&store, &chain(&["Group", "Patient"], name_starts("alp"))).await,
        names(&["o1", "o3"])
    );
    let nested = pred(
        "organization",
        Test::Chain {
            target_types: names(&["Organization"]),
            predicate: Box::new(name_starts("acme")),
        },
    );
    assert_eq!(
        ids(&store, &chain(&["Patient"], nested)).await,
        names(&["o1"])
    );
    // a deleted target no longer satisfies a chain
    store
        .write(vec![delete("Organization", "org2")])
        .await
        .unwrap();
    let to_other = pred(
        "organization",
        Test::Chain {
            target_types: names(&["Organization"]),
            predicate: Box::new(name_starts("oth")),
        },
    );
    assert!(ids(&store, &one("Patient", to_other)).await.is_empty());

    // _has
    let code_xyz = pred(
        "code",
        Test::Token {
            system: TokenSystem::Any,
            code: Some("xyz".into()),
            negate: false,
        },
    );
    let has = |source: &str, param: &str, inner: Predicate| {
        pred(
            "_has",
            Test::Has {
                source_type: source.into(),
                reference_param: param.into(),
                predicate: Box::new(inner),
            },
        )
    };
    let patients = one("Patient", has("Observation", "subject", code_xyz.clone()));
    assert_eq!(ids(&store, &patients).await, names(&["p1"]));
    let orgs = one(
        "Organization",
        has(
            "Patient",
            "organization",
            has("Observation", "subject", code_xyz),
        ),
    );
    assert_eq!(ids(&store, &orgs).await, names(&["org1"]));
    // a Group p1 is not a Patient p1
    let groups = one(
        "Group",
        has(
            "Observation",
            "subject",
            pred(
                "code",
                Test::Token {
                    system: TokenSystem::Any,
                    code: Some("xyz".into()),
                    negate: false,
                },
            ),
        ),
    );
    assert!(ids(&store, &groups).await.is_empty());
}

pub async fn resource_search_composites_and_missing<B: Backend>(backend: &B) {
    let store = open(backend).await;
    // component-code-value-quantity: its rows are its own (one pair per component)
    let component = |code: &str, value: f64| IndexEntry {
        param: "component-code-value-quantity".into(),
        value: IndexValue::Composite {
            components: vec![
                token_value(Some("loinc"), code),
                IndexValue::Quantity {
                    system: None,
                    code: Some("mg".into()),
                    unit: None,
                    value,
                    low: value - 0.5,
                    high: value + 0.5,
                },
            ],
        },
    };
    put(
        &store,
        "Observation",
        "c1",
        vec![component("1", 5.0), component("2", 10.0)],
    )
    .await;
    put(
        &store,
        "Observation",
        "c2",
        vec![component("1", 10.0), string("name", "x")],
    )
    .await;
    let comp = |code: &str, prefix, value: f64| {
        one(
            "Observation",
            pred(
                "component-code-value-quantity",
                Test::Composite(vec![
                    Test::Token {
                        system: TokenSystem::Is("loinc".into()),
                        code: Some(code.into()),
                        negate: false,
                    },
                    Test::Quantity {
                        prefix,
                        value,
                        low: value - 0.5,
                        high: value + 0.5,
                        system: None,
                        code: None,
                    },
                ]),
            ),
        )
    };
    // code 1 with a value over 7 is only c2: c1's 10 belongs to its code 2
    assert_eq!(
        ids(&store, &comp("1", Prefix::Gt, 7.0)).await,
        names(&["c2"])
    );
    assert_eq!(
        ids(&store, &comp("2", Prefix::Gt, 7.0)).await,
        names(&["c1"])
    );
    assert_eq!(
        ids(&store, &comp("1", Prefix::Lt, 7.0)).await,
        names(&["c1"])
    );
    // :missing
    let missing = |param: &str, missing, kind| {
        one("Observation", pred(param, Test::Missing { missing, kind }))
    };
    assert_eq!(
        ids(&store, &missing("name", true, ParamType::String)).await,
        names(&["c1"])
    );
    assert_eq!(
        ids(&store, &missing("name", false, ParamType::String)).await,
        names(&["c2"])
    );
    // another kind's table does not count
    assert_eq!(
        ids(&store, &missing("name", true, ParamType::Token)).await,
        names(&["c1", "c2"])
    );
    assert_eq!(
        ids(
            &store,
            &missing("component-code-value-quantity", false, ParamType::Composite)
        )
        .await,
        names(&["c1", "c2"])
    );
    assert!(
        ids(
            &store,
            &missing("component-code-value-quantity", true, ParamType::Composite)
        )
        .await
        .is_empty()
    );
    // an empty OR matches nothing
    let empty = SearchRequest {
        filters: vec![Filter { any: vec![] }],
        ..req("Observation", vec![])
    };
    assert!(ids(&store, &empty).await.is_empty());
}

/// An Observation as written through the FHIR API: its JSON and the index rows extracted
/// from it.
/// Creates `body` under `id` with the index rows `extract` finds in it.
async fn create_extracted<S: Resources>(store: &S, id: &str, body: serde_json::Value) {
    let resource_type = body["resourceType"].as_str().unwrap().to_owned();
    let out = store
        .write(vec![ResourceWrite {
            op: WriteOp::Create,
            resource_type,
            id: id.into(),
            index: fhir::index::extract(&body).unwrap(),
            resource: Some(body),
            precondition: Precondition::None,
        }])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Created(_)), "{out:?}");
}

fn observation(id: &str, body: serde_json::Value) -> ResourceWrite {
    let mut resource = body;
    resource["resourceType"] = json!("Observation");
    ResourceWrite {
        op: WriteOp::Create,
        resource_type: "Observation".into(),
        id: id.into(),
        index: fhir::index::extract(&resource).unwrap(),
        resource: Some(resource),
        precondition: Precondition::None,
    }
}

/// Parameters whose rows repeat other parameters' rows (`fhir::index::derivation`) are not
/// written, and their searches, `:not`, `:missing` and sorts give what their own rows gave,
/// also in searches of every type (where another type's rows of the source parameters must
/// not count).
pub async fn resource_search_derived_parameters<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let coding = |code: &str| json!({"coding": [{"system": "http://loinc.org", "code": code}]});
    let qty = |value: f64, unit: &str| json!({"value": value, "system": "http://unitsofmeasure.org", "code": unit});
    let writes = vec![
        observation(
            "o1",
            json!({"status": "final", "code": coding("8867-4"), "valueQuantity": qty(80.0, "/min")}),
        ),
        observation(
            "o2",
            json!({"status": "final", "code": coding("85354-9"), "component": [
                {"code": coding("8480-6"), "valueQuantity": qty(120.0, "mm[Hg]")},
                {"code": coding("8462-4"), "valueQuantity": qty(80.0, "mm[Hg]")}
            ]}),
        ),
        observation(
            "o3",
            json!({"status": "final", "code": coding("8310-5"), "valueQuantity": qty(37.0, "Cel")}),
        ),
    ];
    let out = store.write(writes).await.unwrap();
    assert!(
        out.iter().all(|o| matches!(o, WriteOutcome::Created(_))),
        "{out:?}"
    );
    let condition = json!({"resourceType": "Condition", "code": coding("8867-4")});
    create_extracted(&store, "c1", condition).await;
    // `phonetic` has the expression of `name`: it is answered from the name's rows
    let patient =
        json!({"resourceType": "Patient", "name": [{"family": "Zoltan", "given": ["Ida"]}]});
    create_extracted(&store, "pz", patient).await;
    let starts = |param: &str, value: &str| {
        one(
            "Patient",
            pred(
                param,
                Test::String {
                    value: value.into(),
                    mode: StringMode::StartsWith,
                },
            ),
        )
    };
    for value in ["zol", "ida"] {
        assert_eq!(
            ids(&store, &starts("phonetic", value)).await,
            names(&["pz"])
        );
        assert_eq!(ids(&store, &starts("name", value)).await, names(&["pz"]));
    }
    assert!(ids(&store, &starts("phonetic", "ann")).await.is_empty());

    let token = |code: &str, negate| Test::Token {
        system: TokenSystem::Is("http://loinc.org".into()),
        code: Some(code.into()),
        negate,
    };
    let quantity = |prefix, value: f64| Test::Quantity {
        prefix,
        value,
        low: value - 0.5,
        high: value + 0.5,
        system: None,
        code: None,
    };
    let obs = |param: &str, test| one("Observation", pred(param, test));
    let pair = |code: &str, prefix, value| {
        Test::Composite(vec![token(code, false), quantity(prefix, value)])
    };

    // a composite on the Observation itself: its own code with its own value
    let own = |code, prefix, value| obs("code-value-quantity", pair(code, prefix, value));
    assert_eq!(
        ids(&store, &own("8867-4", Prefix::Gt, 70.0)).await,
        names(&["o1"])
    );
    assert!(
        ids(&store, &own("8867-4", Prefix::Lt, 70.0))
            .await
            .is_empty()
    );
    assert!(
        ids(&store, &own("8480-6", Prefix::Gt, 100.0))
            .await
            .is_empty()
    );
    // combo: the Observation's pair or a component's, never a code with another's value
    let combo = |code, prefix, value| obs("combo-code-value-quantity", pair(code, prefix, value));
    assert_eq!(
        ids(&store, &combo("8480-6", Prefix::Gt, 100.0)).await,
        names(&["o2"])
    );
    assert!(
        ids(&store, &combo("8462-4", Prefix::Gt, 100.0))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, &combo("8867-4", Prefix::Gt, 70.0)).await,
        names(&["o1"])
    );
    // unions of plain parameters
    assert_eq!(
        ids(&store, &obs("combo-code", token("8480-6", false))).await,
        names(&["o2"])
    );
    assert_eq!(
        ids(&store, &obs("combo-code", token("85354-9", false))).await,
        names(&["o2"])
    );
    assert_eq!(
        ids(&store, &obs("combo-code", token("8480-6", true))).await,
        names(&["o1", "o3"])
    );
    assert_eq!(
        ids(
            &store,
            &obs("combo-value-quantity", quantity(Prefix::Gt, 75.0))
        )
        .await,
        names(&["o1", "o2"])
    );
    // :missing
    let missing = |param: &str, missing| {
        obs(
            param,
            Test::Missing {
                missing,
                kind: ParamType::Composite,
            },
        )
    };
    assert_eq!(
        ids(&store, &missing("code-value-quantity", true)).await,
        names(&["o2"])
    );
    assert_eq!(
        ids(&store, &missing("code-value-quantity", false)).await,
        names(&["o1", "o3"])
    );
    assert!(
        ids(&store, &missing("combo-code-value-quantity", true))
            .await
            .is_empty()
    );
    let missing_token = obs(
        "combo-code",
        Test::Missing {
            missing: true,
            kind: ParamType::Token,
        },
    );
    assert!(ids(&store, &missing_token).await.is_empty());
    // sorted by the largest of the union's values
    let sorted = SearchRequest {
        sort: vec![SortKey {
            param: "combo-value-quantity".into(),
            descending: true,
            kind: ParamType::Quantity,
        }],
        ..req("Observation", vec![])
    };
    assert_eq!(ordered(&store, &sorted).await, ["o2", "o1", "o3"]);
    // in a search of every type, the Condition's `code` is no Observation's combo-code
    let everywhere = |p: Predicate| SearchRequest {
        resource_type: None,
        ..one("Observation", p)
    };
    assert_eq!(
        ids(
            &store,
            &everywhere(pred("combo-code", token("8867-4", false)))
        )
        .await,
        names(&["o1"])
    );
    assert_eq!(
        ids(
            &store,
            &everywhere(pred("combo-code", token("8480-6", true)))
        )
        .await,
        names(&["c1", "o1", "o3", "pz"])
    );
    assert_eq!(
        ids(&store, &everywhere(pred("code", token("8867-4", false)))).await,
        names(&["c1", "o1"])
    );
    // a component's pair, value by equality
    let diastolic = obs(
        "combo-code-value-quantity",
        pair("8462-4", Prefix::Eq, 80.0),
    );
    assert_eq!(ids(&store, &diastolic).await, names(&["o2"]));
    // requests built in code that the URL parser would refuse are refused, not mis-answered:
    // a composite on the resource with a component missing, or with a negated component
    let short = obs(
        "code-value-quantity",
        Test::Composite(vec![token("8867-4", false)]),
    );
    assert!(matches!(
        store.search(&short).await,
        Err(StoreError::InvalidArgument { .. })
    ));
    let negated = obs(
        "code-value-quantity",
        Test::Composite(vec![token("8867-4", true), quantity(Prefix::Gt, 70.0)]),
    );
    assert!(matches!(
        store.search(&negated).await,
        Err(StoreError::InvalidArgument { .. })
    ));
}

pub async fn resource_search_sort_paging_totals<B: Backend>(backend: &B) {
    let store = open(backend).await;
    let day = |d: &str| {
        let (l, h) = range(&format!("{d}T00:00:00Z"), &format!("{d}T23:59:59.999Z"));
        date("birthdate", l, h + 1)
    };
    let people = [
        ("a", Some("Brown"), Some("1980-01-01")),
        ("b", Some("Adams"), Some("1990-01-01")),
        ("c", Some("Brown"), Some("1970-01-01")),
        ("d", None, Some("2000-01-01")),
        ("e", Some("Clark"), None),
        ("f", None, None),
        ("g", Some("Adams"), None),
    ];
    for (id, family, birth) in people {
        let mut index = vec![token("_tag", Some("t"), "x")];
        if let Some(f) = family {
            index.push(part_of("name", "family", f));
        }
        if let Some(b) = birth {
            index.push(day(b));
        }
        put(&store, "Patient", id, index).await;
    }
    put(
        &store,
        "Observation",
        "obs",
        vec![token("_tag", Some("t"), "x")],
    )
    .await;
    let sorted = |keys: Vec<(&str, bool, ParamType)>| SearchRequest {
        sort: keys
            .into_iter()
            .map(|(param, descending, kind)| SortKey {
                param: param.into(),
                descending,
                kind,
            })
            .collect(),
        ..req("Patient", vec![])
    };
    // family asc, then birthdate desc; missing values last, ties by insertion order
    let s = sorted(vec![
        ("family", false, ParamType::String),
        ("birthdate", true, ParamType::Date),
    ]);
    assert_eq!(
        ordered(&store, &s).await,
        names(&["b", "g", "a", "c", "e", "d", "f"])
    );
    let s = sorted(vec![("family", true, ParamType::String)]);
    assert_eq!(
        ordered(&store, &s).await,
        names(&["e", "a", "c", "b", "g", "d", "f"])
    );
    let s = sorted(vec![("birthdate", false, ParamType::Date)]);
    assert_eq!(
        ordered(&store, &s).await,
        names(&["c", "a", "b", "d", "e", "f", "g"])
    );
    let s = sorted(vec![("_id", true, ParamType::Token)]);
    assert_eq!(
        ordered(&store, &s).await,
        names(&["g", "f", "e", "d", "c", "b", "a"])
    );
    let s = sorted(vec![("_lastUpdated", false, ParamType::Date)]);
    assert_eq!(
        ordered(&store, &s).await,
        names(&["a", "b", "c", "d", "e", "f", "g"])
    );

    // pages are stable and add up to the whole
    let mut whole = sorted(vec![("family", false, ParamType::String)]);
    let all = ordered(&store, &whole).await;
    let mut paged = Vec::new();
    whole.count = 2;
    for offset in (0..8).step_by(2) {
        whole.offset = offset;
        let page = store.search(&whole).await.unwrap();
        assert_eq!(page.total, Some(7));
        paged.extend(page.matches.into_iter().map(|m| m.id));
    }
    assert_eq!(paged, all);
    // count 0: only the total; no total when not asked
    whole.count = 0;
    whole.offset = 0;
    let page = store.search(&whole).await.unwrap();
    assert!(page.matches.is_empty());
    assert_eq!(page.total, Some(7));
    whole.count = 3;
    whole.total = TotalMode::None;
    let page = store.search(&whole).await.unwrap();
    assert_eq!((page.matches.len(), page.total), (3, None));
    // no `_total` (Auto): the total when the page shows the end of the matches (one row
    // past the page is fetched to tell), else none; the pages still add up to the whole
    whole.total = TotalMode::Auto;
    let mut paged = Vec::new();
    for offset in [0, 3, 6] {
        whole.offset = offset;
        let page = store.search(&whole).await.unwrap();
        let expected = (offset == 6).then_some(7);
        assert_eq!(page.total, expected, "offset {offset}");
        paged.extend(page.matches.into_iter().map(|m| m.id));
    }
    assert_eq!(paged, all);
    whole.offset = 0;
    whole.count = 7;
    let page = store.search(&whole).await.unwrap();
    assert_eq!((page.matches.len(), page.total), (7, Some(7)));
    whole.count = 0;
    assert_eq!(store.search(&whole).await.unwrap().total, Some(7));

    // system search: every type
    let tag = pred(
        "_tag",
        Test::Token {
            system: TokenSystem::Is("t".into()),
            code: Some("x".into()),
            negate: false,
        },
    );
    let system = SearchRequest {
        resource_type: None,
        ..one("Patient", tag.clone())
    };
    let page = store.search(&system).await.unwrap();
    assert_eq!(page.total, Some(8));
    assert!(
        page.matches
            .iter()
            .any(|m| m.resource_type == "Observation")
    );

    // each `_total` on a page that is followed by more matches: one filter is counted
    // without `_total` (from its index), two only when asked
    let one_filter = SearchRequest {
        count: 2,
        ..one("Patient", tag.clone())
    };
    let two_filters = SearchRequest {
        count: 2,
        ..req("Patient", vec![vec![tag.clone()], vec![tag]])
    };
    for (mode, one_total, two_total) in [
        (TotalMode::Auto, Some(7), None),
        (TotalMode::Accurate, Some(7), Some(7)),
        (TotalMode::Estimate, Some(7), Some(7)),
        (TotalMode::None, None, None),
    ] {
        for (search, expected) in [(&one_filter, one_total), (&two_filters, two_total)] {
            let search = SearchRequest {
                total: mode,
                ..search.clone()
            };
            let page = store.search(&search).await.unwrap();
            assert_eq!(page.matches.len(), 2, "{mode:?}");
            assert_eq!(
                page.total,
                expected,
                "{mode:?}, {} filters",
                search.filters.len()
            );
        }
    }
}

pub async fn resource_search_includes<B: Backend>(backend: &B) {
    let store = open(backend).await;
    put(&store, "Organization", "root", vec![]).await;
    put(
        &store,
        "Organization",
        "org",
        vec![reference("partof", "Organization", "root")],
    )
    .await;
    put(
        &store,
        "Patient",
        "p1",
        vec![reference("organization", "Organization", "org")],
    )
    .await;
    put(&store, "Patient", "p2", vec![]).await;
    put(&store, "Practitioner", "dr", vec![]).await;
    put(&store, "Practitioner", "gone", vec![]).await;
    put(
        &store,
        "Observation",
        "o1",
        vec![
            reference("subject", "Patient", "p1"),
            reference("performer", "Practitioner", "dr"),
            reference("performer", "Practitioner", "gone"),
            reference("performer", "Practitioner", "never"),
        ],
    )
    .await;
    put(
        &store,
        "Observation",
        "o2",
        vec![reference("subject", "Patient", "p1")],
    )
    .await;
    put(
        &store,
        "Observation",
        "o3",
        vec![reference("subject", "Patient", "p2")],
    )
    .await;
    store
        .write(vec![delete("Practitioner", "gone")])
        .await
        .unwrap();
    let inc = |source: &str, param: &str, target: Option<&str>, iterate| Include {
        source_type: source.into(),
        param: param.into(),
        target_type: target.map(Into::into),
        iterate,
    };
    let by_id = |rtype: &str, id: &str| {
        one(
            rtype,
            pred(
                "_id",
                Test::Token {
                    system: TokenSystem::Any,
                    code: Some(id.into()),
                    negate: false,
                },
            ),
        )
    };
    let included = |page: &store::SearchPage| {
        let mut v: Vec<String> = page
            .included
            .iter()
            .map(|r| format!("{}/{}", r.resource_type, r.id))
            .collect();
        v.sort();
        v
    };
    let mut s = by_id("Observation", "o1");
    s.include = vec![inc("Observation", "subject", None, false)];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Patient/p1"])
    );
    // *: every reference parameter; deleted and missing targets are left out
    s.include = vec![inc("Observation", "*", None, false)];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Patient/p1", "Practitioner/dr"])
    );
    s.include = vec![inc("Observation", "*", Some("Practitioner"), false)];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Practitioner/dr"])
    );
    // iterate follows what was included, repeatedly; a plain include does not
    s.include = vec![
        inc("Observation", "subject", None, false),
        inc("Patient", "organization", None, false),
    ];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Patient/p1"])
    );
    s.include = vec![
        inc("Observation", "subject", None, false),
        inc("Patient", "organization", None, true),
        inc("Organization", "partof", None, true),
    ];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Organization/org", "Organization/root", "Patient/p1"])
    );
    // revinclude, and revinclude then include with iterate
    let mut s = by_id("Patient", "p1");
    s.revinclude = vec![inc("Observation", "subject", None, false)];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Observation/o1", "Observation/o2"])
    );
    s.include = vec![inc("Observation", "performer", None, true)];
    assert_eq!(
        included(&store.search(&s).await.unwrap()),
        names(&["Observation/o1", "Observation/o2", "Practitioner/dr"])
    );
    // included resources never repeat a match
    let mut s = req("Observation", vec![]);
    s.include = vec![inc("Observation", "subject", None, false)];
    s.revinclude = vec![inc("Observation", "subject", None, true)];
    let page = store.search(&s).await.unwrap();
    assert_eq!(page.matches.len(), 3);
    assert_eq!(included(&page), names(&["Patient/p1", "Patient/p2"]));
}

/// Rows a part parameter got before schema version 13, when it had rows of its own, are
/// still found until the resource is written again (SQLite: the rows are made by hand).
#[tokio::test]
async fn part_rows_written_before_version_13_are_still_found() {
    let backend = <crate::common::Sqlite as Backend>::create().await;
    let store = open(&backend).await;
    put(
        &store,
        "Patient",
        "old",
        vec![part_of("name", "family", "Old")],
    )
    .await;
    store.close().await.unwrap();
    backend
        .db()
        .execute(
            "INSERT INTO fhir_idx_string (rid, param, seq, type, normalized, exact)
             SELECT rid, 'address-city', 100, 'Patient', 'springfield', 'Springfield'
             FROM fhir_resource WHERE id = 'old'",
            [],
        )
        .unwrap();
    let store = open(&backend).await;
    let city = |value: &str| {
        one(
            "Patient",
            pred(
                "address-city",
                Test::String {
                    value: value.into(),
                    mode: StringMode::StartsWith,
                },
            ),
        )
    };
    assert_eq!(ids(&store, &city("spring")).await, ["old"]);
    let has_city = one(
        "Patient",
        pred(
            "address-city",
            Test::Missing {
                missing: false,
                kind: ParamType::String,
            },
        ),
    );
    assert_eq!(ids(&store, &has_city).await, ["old"]);
    // written again: its rows are what extraction gives now
    let mut again = update("Patient", "old", json!({"resourceType": "Patient"}));
    again.index = vec![part_of("address", "city", "Salem")];
    store.write(vec![again]).await.unwrap();
    assert!(ids(&store, &city("spring")).await.is_empty());
    assert_eq!(ids(&store, &city("salem")).await, ["old"]);
    store.close().await.unwrap();
}
