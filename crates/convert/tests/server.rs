//! The Bundles go through Plexus' FHIR server as transactions (SQLite store, the router called
//! in process): the conditional updates and `urn:uuid:` references resolve, and sending the
//! same message twice leaves one Patient, one Encounter and one of every other resource.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use convert::{Options, convert_bytes};
use http_body_util::BodyExt as _;
use serde_json::Value;
use store::{AnyStore, SqliteConfig, StoreConfig};
use tower::ServiceExt as _;

const ADT: &[u8] = b"MSH|^~\\&|ADT|HOSP^1.2.3.4^ISO|EHR|HOSP|20260101120000+0100||ADT^A01^ADT_A01|C1|P|2.5.1\r\
EVN|A01|20260101120000+0100\r\
PID|1||12345^^^HOSP&1.2.3.4.5&ISO^MR||DOE^JANE||19800101|F\r\
NK1|1|DOE^JOHN|SPO\r\
PV1|1|I|W1^101^A||||||||||||||||V42^^^HOSP&1.2.3.4.6&ISO^VN|||||||||||||||||||||||||20260101110000+0100\r\
AL1|1|DA|70618^Penicillin^RXNORM|SV\r\
DG1|1||I10^Hypertension^I10|||A\r";

const ORU: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260102120000+0100||ORU^R01^ORU_R01|L1|P|2.5.1\r\
PID|1||12345^^^HOSP&1.2.3.4.5&ISO^MR||DOE^JANE||19800101|F\r\
ORC|RE|P1^EHR^1.2.3.4.7^ISO|F1^LAB^1.2.3.4.8^ISO\r\
OBR|1|P1^EHR^1.2.3.4.7^ISO|F1^LAB^1.2.3.4.8^ISO|24331-1^Lipid panel^LN|||202601020800+0100|||||||||||||||||F\r\
OBX|1|NM|2093-3^Cholesterol^LN||180|mg/dL^mg/dL^UCUM|<200|N|||F\r\
OBX|2|NM|2085-9^HDL^LN||55|mg/dL^mg/dL^UCUM|40-60|N|||F\r";

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/fhir+json");
            Body::from(serde_json::to_vec(b).expect("json"))
        }
        None => Body::empty(),
    };
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

async fn count(app: &axum::Router, rtype: &str) -> usize {
    let (status, bundle) = call(app, "GET", &format!("/fhir/{rtype}?_count=100"), None).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    bundle["entry"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_message_updates_instead_of_duplicating() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = AnyStore::open(&StoreConfig::Sqlite(SqliteConfig::new(dir.path())))
        .await
        .expect("open the store");
    let app = fhir_server::mount(
        "/fhir",
        Arc::new(store),
        fhir_server::FhirConfig::new("http://localhost/fhir"),
    );
    for raw in [ADT, ADT, ORU, ORU] {
        let out = convert_bytes(raw, &Options::default()).expect("converts");
        let (status, reply) = call(&app, "POST", "/fhir", Some(&out.bundle)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    for (rtype, n) in [
        ("Patient", 1),
        ("Encounter", 1),
        ("RelatedPerson", 1),
        ("AllergyIntolerance", 1),
        ("Condition", 1),
        ("ServiceRequest", 1),
        ("DiagnosticReport", 1),
        ("Observation", 2),
        ("Provenance", 2),
    ] {
        assert_eq!(count(&app, rtype).await, n, "{rtype}");
    }
    // references were resolved to the stored resources
    let (_, reports) = call(&app, "GET", "/fhir/DiagnosticReport", None).await;
    let report = &reports["entry"][0]["resource"];
    let (_, patients) = call(
        &app,
        "GET",
        "/fhir/Patient?identifier=urn:oid:1.2.3.4.5%7C12345",
        None,
    )
    .await;
    let patient_id = patients["entry"][0]["resource"]["id"]
        .as_str()
        .expect("patient id");
    assert_eq!(
        report["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    assert_eq!(report["result"].as_array().map(Vec::len), Some(2));
}

#[path = "common/mod.rs"]
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_bundle_is_a_transaction_the_server_applies() {
    let Some(files) = common::corpus() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = AnyStore::open(&StoreConfig::Sqlite(SqliteConfig::new(dir.path())))
        .await
        .expect("open the store");
    let app = fhir_server::mount(
        "/fhir",
        Arc::new(store),
        fhir_server::FhirConfig::new("http://localhost/fhir"),
    );
    let mut failures = Vec::new();
    for round in 0..2 {
        for (name, raw) in &files {
            let Ok(out) = convert_bytes(raw, &Options::default()) else {
                continue;
            };
            let (status, reply) = call(&app, "POST", "/fhir", Some(&out.bundle)).await;
            if status != StatusCode::OK {
                failures.push(format!("round {round} {name}: {status} {reply}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
