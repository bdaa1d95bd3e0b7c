//! The conversion operations: `POST [base]/$convert-data` (HL7 v2 and C-CDA to a Bundle,
//! nothing stored; errors name the segment and field) and `GET Patient/[id]/$ccd` (a CCD of
//! what `$everything` gives the caller, so a narrower token gives a smaller document).

use std::collections::HashMap;
use std::sync::Arc;

use auth::{Principal, ScopeSet};
use fhir_server::access::BoxFuture;
use fhir_server::{AuthFailure, Authenticator, Security};
use serde_json::{Value, json};

use crate::common::{Backend, Resp, TestServer, entries, on_both_backends};

const ADT: &str = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101120000+0100||ADT^A01^ADT_A01|C1|P|2.5.1\n\
PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\n\
PV1|1|I|W1^101^A||||||||||||||||V42^^^HOSP^VN\n";

const CCDA: &str = r#"<ClinicalDocument xmlns="urn:hl7-org:v3">
  <templateId root="2.16.840.1.113883.10.20.22.1.2"/>
  <id root="2.16.840.1.113883.19.5" extension="doc-1"/>
  <code code="34133-9" codeSystem="2.16.840.1.113883.6.1"/>
  <effectiveTime value="20240102"/>
  <recordTarget><patientRole><id root="2.16.840.1.113883.19.5" extension="MRN1"/>
    <patient><name><given>Ada</given><family>Lovelace</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19701231"/></patient></patientRole></recordTarget>
  <author><time value="20240102"/><assignedAuthor><id root="2.16.840.1.113883.4.6" extension="1234567893"/>
    <assignedPerson><name><family>Smith</family></name></assignedPerson></assignedAuthor></author>
</ClinicalDocument>"#;

fn params(data: &str, data_type: &str) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputData", "valueString": data},
            {"name": "inputDataType", "valueString": data_type},
            {"name": "rootTemplate", "valueString": "ADT_A01"},
        ]
    })
}

fn types(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|e| {
            e["resource"]["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The first diagnostics of an OperationOutcome answer.
fn diagnostics(r: &Resp) -> String {
    r.assert_outcome();
    r.json()["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn count(s: &TestServer, path: &str) -> u64 {
    let sep = if path.contains('?') { '&' } else { '?' };
    s.search(&format!("{path}{sep}_summary=count")).await["total"]
        .as_u64()
        .expect("total")
}

async fn convert_data_hl7v2_converts_and_stores_nothing(s: &TestServer) {
    let r = s
        .post("$convert-data", &params(ADT, "Hl7v2"))
        .await
        .expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/fhir+json")
    );
    let bundle = r.json();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    let t = types(&bundle);
    for want in ["Patient", "Encounter", "Provenance"] {
        assert!(t.iter().any(|x| x == want), "{want} missing: {t:?}");
    }
    // Only converted: the store is untouched.
    assert_eq!(count(s, "Patient").await, 0);
    // The answer loads as it is; loading it twice updates (one Patient, one Encounter).
    s.post("", &bundle).await.expect(200);
    s.post("", &bundle).await.expect(200);
    assert_eq!(count(s, "Patient").await, 1);
    assert_eq!(count(s, "Encounter").await, 1);
    // Same input, same Bundle.
    let again = s
        .post("$convert-data", &params(ADT, "hl7v2"))
        .await
        .expect(200)
        .json();
    assert_eq!(again, bundle);
}

async fn convert_data_errors_name_the_field(s: &TestServer) {
    let bad_birth = ADT.replace("19800101", "19801399");
    let r = s
        .post("$convert-data", &params(&bad_birth, "Hl7v2"))
        .await
        .expect(422);
    let d = diagnostics(&r);
    assert!(d.contains("PID-7"), "{d}");
    assert_eq!(r.json()["issue"][0]["expression"][0], "PID-7");

    let r = s
        .post("$convert-data", &params("hello", "Hl7v2"))
        .await
        .expect(400);
    assert!(diagnostics(&r).contains("HL7"), "{}", r.text());

    let r = s
        .post("$convert-data", &params("<ClinicalDocument", "Ccda"))
        .await
        .expect(400);
    assert!(diagnostics(&r).contains("line"), "{}", r.text());

    let r = s
        .post("$convert-data", &params(ADT, "Json"))
        .await
        .expect(400);
    assert!(diagnostics(&r).contains("inputDataType"), "{}", r.text());

    let no_data = json!({"resourceType": "Parameters", "parameter": [
        {"name": "inputDataType", "valueString": "Hl7v2"}]});
    let r = s.post("$convert-data", &no_data).await.expect(400);
    assert!(diagnostics(&r).contains("inputData"), "{}", r.text());

    let r = s
        .post("$convert-data", &json!({"resourceType": "Patient"}))
        .await
        .expect(400);
    r.assert_outcome();
    // GET is not the operation.
    assert!(s.get("$convert-data").await.status >= 400);
    assert_eq!(count(s, "Patient").await, 0);
}

async fn convert_data_ccda_then_ccd_back(s: &TestServer) {
    let bundle = s
        .post("$convert-data", &params(CCDA, "Ccda"))
        .await
        .expect(200)
        .json();
    assert_eq!(bundle["type"], "transaction");
    let patient_url = entries(&bundle)
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .and_then(|e| e["request"]["url"].as_str())
        .expect("a Patient entry")
        .to_owned();
    s.post("", &bundle).await.expect(200);
    let r = s
        .get(&format!(
            "{patient_url}/$ccd?effectiveTime=2026-01-02T03:04:05Z"
        ))
        .await
        .expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/xml"),
        "{:?}",
        r.header("content-type")
    );
    let xml = r.text();
    assert!(xml.contains("<ClinicalDocument"), "{xml}");
    assert!(
        xml.contains("2.16.840.1.113883.10.20.22.1.2"),
        "no CCD templateId"
    );
    assert!(xml.contains("Lovelace"), "{xml}");
    assert!(xml.contains("20260102"), "effectiveTime not used");

    let r = s.get("Patient/no-such/$ccd").await.expect(404);
    r.assert_outcome();
}

on_both_backends!(
    convert_data_hl7v2_converts_and_stores_nothing,
    convert_data_errors_name_the_field,
    convert_data_ccda_then_ccd_back,
);

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

fn principal(scopes: &str, patient: Option<&str>) -> Principal {
    Principal {
        subject: format!("tester:{scopes}"),
        client_id: Some("convert".to_owned()),
        fhir_user: None,
        scopes: ScopeSet::parse(scopes).expect("scopes"),
        patient: patient.map(str::to_owned),
        encounter: None,
        token_id: None,
        roles: Vec::new(),
    }
}

/// With authorization on: `$convert-data` needs a token (any valid one: it stores nothing),
/// and `$ccd` holds only what the token may read.
async fn authorization_applies(backend: Backend) {
    let security = Security {
        authenticator: Some(Arc::new(Tokens(HashMap::from([
            ("admin", principal("system/*.cruds", None)),
            ("pat-only", principal("patient/Patient.rs", Some("p1"))),
            ("other", principal("patient/*.rs", Some("p2"))),
        ])))),
        access_log: None,
        public_routes: None,
    };
    let s = TestServer::start_with(backend, security).await;
    let r = s
        .post("$convert-data", &params(ADT, "Hl7v2"))
        .await
        .expect(401);
    r.assert_outcome();
    s.use_token(Some("pat-only"));
    s.post("$convert-data", &params(ADT, "Hl7v2"))
        .await
        .expect(200);

    s.use_token(Some("admin"));
    s.put_resource(&json!({"resourceType": "Patient", "id": "p1",
        "name": [{"family": "Lovelace", "given": ["Ada"]}], "gender": "female", "birthDate": "1970-12-31"}))
        .await;
    s.put_resource(&json!({"resourceType": "Condition", "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertensive disorder"}],
                 "text": "Hypertensive disorder"}}))
        .await;
    let full = s.get("Patient/p1/$ccd").await.expect(200).text();
    assert!(
        full.contains("38341003"),
        "the Condition is missing for admin"
    );

    s.use_token(Some("pat-only"));
    let narrow = s.get("Patient/p1/$ccd").await.expect(200).text();
    assert!(narrow.contains("Lovelace"));
    assert!(
        !narrow.contains("38341003"),
        "a Condition the token may not read is in the CCD"
    );

    s.use_token(Some("other"));
    let r = s.get("Patient/p1/$ccd").await;
    assert!(matches!(r.status, 403 | 404), "{} {}", r.status, r.text());
    assert!(!r.text().contains("Lovelace"));
    s.use_token(None);
    s.get("Patient/p1/$ccd").await.expect(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_applies_sqlite() {
    authorization_applies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_applies_postgres() {
    authorization_applies(Backend::Postgres).await;
}
