//! Authorization on every interaction: a matrix of interactions × SMART scope kinds
//! (patient-level, granular, user-level, system-level, v1 and v2, no patient context, no or a
//! bad token), checking both the status and that nothing outside the grant is returned —
//! including resources reached through `_include`, `_revinclude`, chains, `$everything`,
//! history, and the entries of batches and transactions — and that every access, refused or
//! not, is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auth::{Principal, ScopeSet};
use fhir_server::access::BoxFuture;
use fhir_server::{AccessEvent, AccessLog, AuthFailure, Authenticator, Security};
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, entries, included, match_ids};

/// Tokens are looked up in a table: what a real verifier would establish.
struct Tokens(HashMap<&'static str, Principal>);

impl Authenticator for Tokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>> {
        Box::pin(async move {
            self.0.get(token).cloned().ok_or_else(|| AuthFailure {
                description: "the token is not valid".to_owned(),
            })
        })
    }
}

#[derive(Default)]
struct Log(Mutex<Vec<AccessEvent>>);

impl AccessLog for Log {
    fn record(&self, event: AccessEvent) -> BoxFuture<'_, Result<(), String>> {
        self.0.lock().expect("log").push(event);
        Box::pin(async { Ok(()) })
    }
}

fn principal(scopes: &str, patient: Option<&str>) -> Principal {
    Principal {
        subject: format!("tester:{scopes}"),
        client_id: Some("matrix".to_owned()),
        fhir_user: None,
        scopes: ScopeSet::parse(scopes).expect("scopes"),
        patient: patient.map(str::to_owned),
        encounter: None,
        token_id: None,
        roles: Vec::new(),
    }
}

fn tokens() -> Tokens {
    let p1 = Some("p1");
    Tokens(HashMap::from([
        ("admin", principal("system/*.cruds", None)),
        ("pat-all", principal("patient/*.cruds", p1)),
        ("pat-obs-read", principal("patient/Observation.rs", p1)),
        (
            "pat-lab",
            principal("patient/Observation.rs?category=laboratory", p1),
        ),
        (
            "pat-lab-write",
            principal("patient/Observation.cu?category=laboratory", p1),
        ),
        (
            "pat-obs-pat",
            principal(
                "patient/Patient.rs patient/Observation.rs?category=laboratory",
                p1,
            ),
        ),
        ("user-read", principal("user/*.rs", None)),
        ("user-pat-r", principal("user/Patient.r", None)),
        ("v1-pat", principal("patient/*.read", p1)),
        ("no-ctx", principal("patient/*.rs", None)),
    ]))
}

fn observation(id: &str, patient: &str, category: &str, code: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category
        }]}],
        "code": {"coding": [{"system": "urn:test:code", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "performer": [{"reference": "Practitioner/pr1"}],
    })
}

async fn seed(s: &TestServer) {
    s.use_token(Some("admin"));
    for (id, family) in [("p1", "One"), ("p2", "Two")] {
        s.put_resource(&json!({
            "resourceType": "Patient", "id": id,
            "identifier": [{"system": "urn:test", "value": id}],
            "name": [{"family": family}],
        }))
        .await;
    }
    s.put_resource(
        &json!({"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Doc"}]}),
    )
    .await;
    s.put_resource(&observation("o1", "p1", "laboratory", "a"))
        .await;
    s.put_resource(&observation("o2", "p1", "vital-signs", "b"))
        .await;
    s.put_resource(&observation("o3", "p2", "laboratory", "a"))
        .await;
    s.put_resource(&json!({
        "resourceType": "Condition", "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "x"},
    }))
    .await;
    s.put_resource(&json!({
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    }))
    .await;
    s.put_resource(&observation("del1", "p1", "laboratory", "del"))
        .await;
    s.put_resource(&observation("del2", "p2", "laboratory", "del"))
        .await;
}

/// `(token, method, path, expected status)`.
type Row = (&'static str, &'static str, &'static str, u16);

const STATUS_MATRIX: &[Row] = &[
    // No token, a bad token, and the public capability statement.
    ("", "GET", "Patient/p1", 401),
    ("bogus", "GET", "Patient/p1", 401),
    ("", "GET", "Observation?code=a", 401),
    ("", "GET", "metadata", 200),
    // read: patient compartment of the launch patient.
    ("pat-all", "GET", "Patient/p1", 200),
    ("pat-all", "GET", "Patient/p2", 403),
    ("pat-all", "GET", "Observation/o1", 200),
    ("pat-all", "GET", "Observation/o3", 403),
    ("pat-all", "GET", "Practitioner/pr1", 200),
    ("pat-all", "GET", "Observation/unknown", 404),
    // read: one type only.
    ("pat-obs-read", "GET", "Observation/o1", 200),
    ("pat-obs-read", "GET", "Observation/o3", 403),
    ("pat-obs-read", "GET", "Patient/p1", 403),
    ("pat-obs-read", "GET", "Condition/c1", 403),
    // read: granular (category=laboratory).
    ("pat-lab", "GET", "Observation/o1", 200),
    ("pat-lab", "GET", "Observation/o2", 403),
    ("pat-lab", "GET", "Observation/o3", 403),
    // read: v1 syntax means the same.
    ("v1-pat", "GET", "Observation/o1", 200),
    ("v1-pat", "GET", "Observation/o3", 403),
    // user and system level: no compartment.
    ("user-read", "GET", "Observation/o3", 200),
    ("user-read", "GET", "Patient/p2", 200),
    ("user-pat-r", "GET", "Patient/p2", 200),
    ("user-pat-r", "GET", "Patient?name=One", 403),
    ("user-pat-r", "GET", "Observation/o1", 403),
    // A patient scope without a patient context grants nothing.
    ("no-ctx", "GET", "Observation/o1", 403),
    ("no-ctx", "GET", "Observation", 403),
    // vread.
    ("pat-all", "GET", "Observation/o1/_history/1", 200),
    ("pat-all", "GET", "Observation/o3/_history/1", 403),
    ("pat-lab", "GET", "Observation/o2/_history/1", 403),
    // history.
    ("pat-all", "GET", "Observation/o1/_history", 200),
    ("pat-all", "GET", "Observation/o3/_history", 403),
    ("pat-all", "GET", "Observation/_history", 403),
    ("user-read", "GET", "Observation/_history", 200),
    ("pat-all", "GET", "_history", 403),
    ("user-read", "GET", "_history", 200),
    ("user-pat-r", "GET", "_history", 403),
    // system search.
    ("pat-all", "GET", "?_id=o1", 403),
    ("user-read", "GET", "?_id=o1", 200),
    // search without the s permission.
    ("pat-lab-write", "GET", "Observation", 403),
    // $everything.
    ("pat-all", "GET", "Patient/p1/$everything", 200),
    ("pat-all", "GET", "Patient/p2/$everything", 403),
    ("pat-obs-read", "GET", "Patient/p1/$everything", 403),
    // writes without write scopes.
    ("user-read", "DELETE", "Observation/o3", 403),
    ("pat-obs-read", "DELETE", "Observation/o1", 403),
    ("pat-all", "DELETE", "Observation/o3", 403),
];

async fn status_matrix(s: &TestServer) {
    seed(s).await;
    for (token, method, path, want) in STATUS_MATRIX {
        s.use_token((!token.is_empty()).then_some(*token));
        let r = s.call(method, path, &[], None).await;
        assert_eq!(r.status, *want, "{token:?} {method} {path}: {}", r.text());
    }
}

/// `(token, search, the match ids expected, sorted)`.
const SEARCH_MATRIX: &[(&str, &str, &[&str])] = &[
    ("pat-all", "Observation?code=a,b", &["o1", "o2"]),
    ("pat-all", "Patient", &["p1"]),
    ("pat-all", "Patient?name=Two", &[]),
    ("pat-lab", "Observation?code=a,b", &["o1"]),
    ("pat-obs-read", "Observation?category=vital-signs", &["o2"]),
    ("pat-obs-read", "Observation?subject=Patient/p2", &[]),
    ("v1-pat", "Observation?code=a,b", &["o1", "o2"]),
    ("user-read", "Observation?code=a,b", &["o1", "o2", "o3"]),
    // A chain cannot reach another patient's data.
    ("pat-all", "Observation?subject:Patient.name=Two", &[]),
    (
        "pat-all",
        "Observation?subject:Patient.name=One",
        &["del1", "o1", "o2"],
    ),
    // Nor can reverse chaining.
    (
        "pat-all",
        "Patient?_has:Observation:subject:code=a",
        &["p1"],
    ),
];

async fn search_matrix(s: &TestServer) {
    seed(s).await;
    for (token, path, want) in SEARCH_MATRIX {
        s.use_token(Some(token));
        let got = s.sorted_ids(path).await;
        assert_eq!(&got, want, "{token} GET {path}");
    }
    // The total counts only what the token may see.
    s.use_token(Some("pat-lab"));
    let b = s.search("Observation?code=a,b&_total=accurate").await;
    assert_eq!(b["total"], 1, "{b}");
}

async fn includes_are_filtered(s: &TestServer) {
    seed(s).await;
    // The subject is in the compartment, the performer outside it: both may be included.
    s.use_token(Some("pat-all"));
    let b = s
        .search("Observation?_id=o1&_include=Observation:subject&_include=Observation:performer")
        .await;
    assert_eq!(included(&b), ["Patient/p1", "Practitioner/pr1"]);
    // Without a Patient scope, the subject is not included.
    s.use_token(Some("pat-obs-read"));
    let b = s
        .search("Observation?_id=o1&_include=Observation:subject")
        .await;
    assert_eq!(match_ids(&b), ["o1"]);
    assert!(included(&b).is_empty(), "{b}");
    // _revinclude returns only the Observations the granular scope allows.
    s.use_token(Some("pat-obs-pat"));
    let b = s.search("Patient?_revinclude=Observation:subject").await;
    assert_eq!(match_ids(&b), ["p1"]);
    assert_eq!(included(&b), ["Observation/del1", "Observation/o1"]);
    // $everything: the compartment of p1 as far as the scopes reach.
    let b = s.get("Patient/p1/$everything").await.expect(200).json();
    let mut got: Vec<String> = entries(&b)
        .iter()
        .map(|e| crate::common::type_id(&e["resource"]))
        .collect();
    got.sort();
    assert_eq!(got, ["Observation/del1", "Observation/o1", "Patient/p1"]);
    s.use_token(Some("pat-all"));
    let b = s.get("Patient/p1/$everything").await.expect(200).json();
    let got: Vec<String> = entries(&b)
        .iter()
        .map(|e| crate::common::type_id(&e["resource"]))
        .collect();
    assert!(got.contains(&"Condition/c1".to_owned()), "{got:?}");
    assert!(got.contains(&"Encounter/e1".to_owned()), "{got:?}");
    assert!(!got.contains(&"Observation/o3".to_owned()), "{got:?}");
    assert!(!got.contains(&"Patient/p2".to_owned()), "{got:?}");
}

async fn writes_stay_in_the_grant(s: &TestServer) {
    seed(s).await;
    s.use_token(Some("pat-all"));
    // create
    s.post("Observation", &observation("x", "p1", "laboratory", "new"))
        .await
        .expect(201);
    s.post("Observation", &observation("x", "p2", "laboratory", "new"))
        .await
        .expect(403);
    // update: in, out, and moving a resource out of the compartment
    s.put(
        "Observation/o1",
        &observation("o1", "p1", "laboratory", "a2"),
    )
    .await
    .expect(200);
    s.put(
        "Observation/o3",
        &observation("o3", "p2", "laboratory", "a3"),
    )
    .await
    .expect(403);
    s.put(
        "Observation/o1",
        &observation("o1", "p2", "laboratory", "a"),
    )
    .await
    .expect(403);
    // patch
    let patch = |ops: Value| ops.to_string().into_bytes();
    let json_patch = [("content-type", "application/json-patch+json")];
    s.call(
        "PATCH",
        "Observation/o1",
        &json_patch,
        Some(patch(
            json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        )),
    )
    .await
    .expect(200);
    s.call(
        "PATCH",
        "Observation/o3",
        &json_patch,
        Some(patch(
            json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        )),
    )
    .await
    .expect(403);
    s.call(
        "PATCH",
        "Observation/o1",
        &json_patch,
        Some(patch(
            json!([{"op": "replace", "path": "/subject/reference", "value": "Patient/p2"}]),
        )),
    )
    .await
    .expect(403);
    // conditional delete: only the match inside the compartment is deleted
    s.delete("Observation?code=del").await.expect(200);
    s.use_token(Some("admin"));
    s.get("Observation/del1").await.expect(410);
    s.get("Observation/del2").await.expect(200);
    // granular write scope: the new resource must match its query
    s.use_token(Some("pat-lab-write"));
    s.post("Observation", &observation("x", "p1", "vital-signs", "g"))
        .await
        .expect(403);
    s.post("Observation", &observation("x", "p1", "laboratory", "g"))
        .await
        .expect(201);
    s.use_token(Some("pat-obs-read"));
    s.post("Observation", &observation("x", "p1", "laboratory", "r"))
        .await
        .expect(403);
    // Nothing refused was stored.
    s.use_token(Some("admin"));
    assert_eq!(s.sorted_ids("Observation?code=new").await.len(), 1);
    assert_eq!(s.sorted_ids("Observation?code=g").await.len(), 1);
    assert!(s.sorted_ids("Observation?code=r").await.is_empty());
    assert!(s.sorted_ids("Observation?code=a3").await.is_empty());
    assert_eq!(
        s.get("Observation/o3").await.expect(200).json()["status"],
        "final"
    );
}

fn bundle(kind: &str, entries: &[Value]) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn post_entry(resource: &Value) -> Value {
    json!({"resource": resource, "request": {"method": "POST", "url": "Observation"}})
}

async fn bundles_check_each_entry(s: &TestServer) {
    seed(s).await;
    s.use_token(Some("pat-all"));
    let inside = observation("t", "p1", "laboratory", "txn");
    let outside = observation("t", "p2", "laboratory", "txn");
    // A transaction with one entry outside the grant fails whole.
    let r = s
        .post(
            "",
            &bundle("transaction", &[post_entry(&inside), post_entry(&outside)]),
        )
        .await;
    r.expect(403);
    // A batch answers each entry.
    let b = s
        .post(
            "",
            &bundle("batch", &[post_entry(&inside), post_entry(&outside)]),
        )
        .await
        .expect(200)
        .json();
    let statuses: Vec<String> = entries(&b)
        .iter()
        .map(|e| {
            e["response"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(statuses[0].starts_with("201"), "{b}");
    assert!(statuses[1].starts_with("403"), "{b}");
    // Reads inside a batch are checked too.
    let b = s
        .post(
            "",
            &bundle(
                "batch",
                &[
                    json!({"request": {"method": "GET", "url": "Observation/o1"}}),
                    json!({"request": {"method": "GET", "url": "Observation/o3"}}),
                    json!({"request": {"method": "GET", "url": "Observation?code=a"}}),
                ],
            ),
        )
        .await
        .expect(200)
        .json();
    let e = entries(&b);
    assert!(
        e[0]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("200")
    );
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("403")
    );
    assert_eq!(match_ids(&e[2]["resource"]), ["o1"], "{b}");
    // A conditional reference resolves only within the grant.
    let mut by_identifier = observation("t", "p1", "laboratory", "cond");
    by_identifier["subject"] = json!({"reference": "Patient?identifier=urn:test|p2"});
    s.post("", &bundle("transaction", &[post_entry(&by_identifier)]))
        .await
        .expect(412);
    s.use_token(Some("admin"));
    assert_eq!(s.sorted_ids("Observation?code=txn").await.len(), 1);
    assert!(s.sorted_ids("Observation?code=cond").await.is_empty());
}

async fn every_access_is_recorded(backend: Backend) {
    let log = Arc::new(Log::default());
    let security = Security {
        authenticator: Some(Arc::new(tokens())),
        access_log: Some(log.clone()),
        public_routes: None,
    };
    let s = TestServer::start_with(backend, security).await;
    seed(&s).await;
    log.0.lock().expect("log").clear();
    s.use_token(Some("pat-all"));
    s.get("Patient/p2").await.expect(403);
    s.get("Observation/o1").await.expect(200);
    s.use_token(Some("bogus"));
    s.get("Patient/p1").await.expect(401);
    s.use_token(None);
    s.get("metadata").await.expect(200);
    let events = log.0.lock().expect("log").clone();
    assert_eq!(
        events.len(),
        3,
        "metadata is not an access to patient data: {events:?}"
    );
    let e = &events[0];
    assert_eq!(
        (
            e.interaction.code(),
            e.status,
            e.resource_type.as_deref(),
            e.id.as_deref()
        ),
        ("read", 403, Some("Patient"), Some("p2"))
    );
    assert_eq!(e.patient.as_deref(), Some("p1"), "the token's patient");
    assert_eq!(
        e.principal.as_ref().map(|p| p.client_id.as_deref()),
        Some(Some("matrix"))
    );
    assert!(e.source.is_some_and(|ip| ip.is_loopback()));
    assert_eq!(events[1].status, 200);
    assert_eq!(events[2].status, 401);
    assert!(events[2].principal.is_none());
    assert_eq!(events[2].detail.as_deref(), Some("the token is not valid"));
}

/// Each scenario on a server with the token table, on both stores.
macro_rules! secured {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                async fn server(backend: Backend) -> TestServer {
                    let security = Security {
                        authenticator: Some(Arc::new(tokens())),
                        access_log: None,
                        public_routes: None,
                    };
                    TestServer::start_with(backend, security).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(&server(Backend::Sqlite).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(&server(Backend::Postgres).await).await;
                }
            }
        )*
    };
}

secured!(
    status_matrix,
    search_matrix,
    includes_are_filtered,
    writes_stay_in_the_grant,
    bundles_check_each_entry,
);

mod access_log {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::every_access_is_recorded(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::every_access_is_recorded(super::Backend::Postgres).await;
    }
}
