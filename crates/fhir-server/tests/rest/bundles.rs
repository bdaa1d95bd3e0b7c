//! Batch and transaction Bundles, `$everything`, and synthetic patients loaded as
//! transactions.

use serde_json::{Value, json};

use crate::common::{TestServer, enc, entries, match_ids, on_both_backends, type_id};

on_both_backends!(
    transaction_rewrites_urn_uuid_references,
    base_url_with_trailing_slash,
    failed_transaction_stores_nothing,
    transaction_with_two_entries_for_one_resource_fails,
    transaction_resolves_conditional_references,
    transaction_conditional_create_and_update,
    batch_entries_fail_on_their_own,
    everything_returns_the_compartment,
    synthetic_patients_load_and_count,
    patch_entries_in_batch_and_transaction,
);

const UUID_P: &str = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a";
const UUID_O1: &str = "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059";
const UUID_O2: &str = "urn:uuid:1d3a6dd4-2ad8-4e26-a8e4-5e7a1c3f2b11";

fn patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": mrn}],
        "name": [{"family": format!("Family{mrn}")}],
    })
}

fn observation(subject: &str, code: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 7.5, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    })
}

fn post_entry(full_url: Option<&str>, resource: &Value) -> Value {
    let mut e = json!({
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    });
    if let Some(u) = full_url {
        e["fullUrl"] = json!(u);
    }
    e
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    let mut b = json!({"resourceType": "Bundle", "type": kind});
    b["entry"] = Value::Array(entries);
    b
}

/// The number of matches of a search (by `_summary=count`).
async fn count(s: &TestServer, query: &str) -> u64 {
    let sep = if query.contains('?') { '&' } else { '?' };
    let b = s.search(&format!("{query}{sep}_summary=count")).await;
    b["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{query}: no total: {b}"))
}

async fn transaction_rewrites_urn_uuid_references(s: &TestServer) {
    let tx = bundle(
        "transaction",
        vec![
            // The observations come first: references to later entries are resolved too.
            post_entry(Some(UUID_O1), &observation(UUID_P, "2339-0")),
            post_entry(Some(UUID_P), &patient("TX1")),
            post_entry(Some(UUID_O2), &observation(UUID_P, "718-7")),
        ],
    );
    let r = s.post("", &tx).await.expect(200);
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "transaction-response");
    let es = entries(&b);
    assert_eq!(es.len(), 3, "one response per entry, in order: {b}");
    let mut locations = Vec::new();
    for e in &es {
        let status = e["response"]["status"].as_str().expect("status");
        assert!(status.starts_with("201"), "{b}");
        let location = e["response"]["location"].as_str().expect("location");
        assert!(location.contains("/_history/1"), "{location}");
        assert!(
            e["response"]["etag"]
                .as_str()
                .is_some_and(|t| t.contains('1')),
            "{b}"
        );
        locations.push(location.to_owned());
    }
    assert!(
        locations[0].contains("Observation/") && locations[1].contains("Patient/"),
        "{locations:?}"
    );
    let pid = locations[1]
        .split("Patient/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("patient id")
        .to_owned();
    for loc in [&locations[0], &locations[2]] {
        let o = s.get(loc).await.expect(200).json();
        assert_eq!(o["subject"]["reference"], format!("Patient/{pid}"), "{o}");
    }
    let found = s
        .search(&format!("Observation?subject=Patient/{pid}"))
        .await;
    assert_eq!(entries(&found).len(), 2, "{found}");
    // With Prefer: return=representation, entries carry the resources.
    let tx = bundle(
        "transaction",
        vec![post_entry(Some(UUID_P), &patient("TX3"))],
    );
    let b = s
        .post_with("", &[("Prefer", "return=representation")], &tx)
        .await
        .expect(200)
        .json();
    assert_eq!(
        entries(&b)[0]["resource"]["identifier"][0]["value"],
        "TX3",
        "{b}"
    );
}

/// The base URL with a trailing slash (`POST [base]/`, as `plexus fhir synth` sends, and
/// `GET [base]/?…`) is the same endpoint as without.
async fn base_url_with_trailing_slash(s: &TestServer) {
    let tx = bundle(
        "transaction",
        vec![post_entry(Some(UUID_P), &patient("SLASH"))],
    );
    s.post("/", &tx).await.expect(200);
    assert_eq!(count(s, "Patient").await, 1);
    let b = s.search("/?_id=nobody").await;
    assert!(entries(&b).is_empty(), "{b}");
}

async fn failed_transaction_stores_nothing(s: &TestServer) {
    let mut bad = observation(UUID_P, "2339-0");
    bad.as_object_mut().expect("object").remove("status");
    let tx = bundle(
        "transaction",
        vec![
            post_entry(Some(UUID_P), &patient("ATOMIC")),
            post_entry(Some(UUID_O1), &observation(UUID_P, "718-7")),
            post_entry(Some(UUID_O2), &bad),
        ],
    );
    let r = s.post("", &tx).await;
    assert!((400..500).contains(&r.status), "{}: {}", r.status, r.text());
    assert!(
        r.issue_expressions().iter().any(|e| e.contains("status")),
        "the outcome names what is wrong: {}",
        r.text()
    );
    assert_eq!(count(s, "Patient?identifier=urn:test:mrn|ATOMIC").await, 0);
    assert_eq!(count(s, "Patient").await, 0);
    assert_eq!(count(s, "Observation").await, 0);

    // A failure found only by the store (If-Match on a version that is not current) rolls
    // back the entries written before it as well.
    let existing = s.create(&patient("EXISTING")).await;
    let id = existing["id"].as_str().expect("id");
    let tx = bundle(
        "transaction",
        vec![
            post_entry(None, &patient("ROLLBACK")),
            json!({
                "resource": existing,
                "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"9\""},
            }),
        ],
    );
    let r = s.post("", &tx).await;
    assert!(
        r.status == 409 || r.status == 412,
        "{}: {}",
        r.status,
        r.text()
    );
    assert_eq!(
        count(s, "Patient?identifier=urn:test:mrn|ROLLBACK").await,
        0
    );
    assert_eq!(count(s, "Patient").await, 1);
    // A transaction that is no Bundle, or has another type.
    s.post("", &patient("X")).await.expect(400);
    s.post(
        "",
        &json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
    )
    .await
    .expect(400);
}

async fn transaction_resolves_conditional_references(s: &TestServer) {
    let p = s.create(&patient("COND1")).await;
    let pid = p["id"].as_str().expect("id");
    let tx = bundle(
        "transaction",
        vec![post_entry(
            None,
            &observation("Patient?identifier=urn:test:mrn|COND1", "2339-0"),
        )],
    );
    let b = s.post("", &tx).await.expect(200).json();
    let loc = entries(&b)[0]["response"]["location"]
        .as_str()
        .expect("location")
        .to_owned();
    let o = s.get(&loc).await.expect(200).json();
    assert_eq!(o["subject"]["reference"], format!("Patient/{pid}"));
    // No match, or several: the transaction fails and nothing is stored.
    let tx = bundle(
        "transaction",
        vec![post_entry(
            None,
            &observation("Patient?identifier=urn:test:mrn|NOBODY", "2339-0"),
        )],
    );
    let r = s.post("", &tx).await;
    assert!((400..500).contains(&r.status), "{}: {}", r.status, r.text());
    s.create(&patient("TWIN")).await;
    s.create(&patient("TWIN")).await;
    let tx = bundle(
        "transaction",
        vec![post_entry(
            None,
            &observation("Patient?identifier=urn:test:mrn|TWIN", "2339-0"),
        )],
    );
    let r = s.post("", &tx).await;
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(count(s, "Observation").await, 1);
}

async fn transaction_conditional_create_and_update(s: &TestServer) {
    let existing = s.create(&patient("IFNONE")).await;
    let id = existing["id"].as_str().expect("id");
    // ifNoneExist matching an existing Patient: the reference points at it, nothing new.
    let mut entry = post_entry(Some(UUID_P), &patient("IFNONE"));
    entry["request"]["ifNoneExist"] = json!("identifier=urn:test:mrn|IFNONE");
    let tx = bundle(
        "transaction",
        vec![entry, post_entry(None, &observation(UUID_P, "2339-0"))],
    );
    let b = s.post("", &tx).await.expect(200).json();
    let es = entries(&b);
    assert!(
        es[0]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("200")),
        "{b}"
    );
    assert!(
        es[1]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("201")),
        "{b}"
    );
    assert_eq!(count(s, "Patient").await, 1);
    let o = s.search(&format!("Observation?subject=Patient/{id}")).await;
    assert_eq!(entries(&o).len(), 1, "{o}");
    // A conditional update (PUT Type?query) in a transaction: 0 matches creates, 1 updates.
    let put = |mrn: &str, active: bool| {
        let mut p = patient(mrn);
        p["active"] = json!(active);
        json!({"resource": p, "request": {"method": "PUT", "url": format!("Patient?identifier={}", enc(&format!("urn:test:mrn|{mrn}")))}})
    };
    let b = s
        .post("", &bundle("transaction", vec![put("CU", false)]))
        .await
        .expect(200)
        .json();
    assert!(
        entries(&b)[0]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("201")),
        "{b}"
    );
    let b = s
        .post("", &bundle("transaction", vec![put("CU", true)]))
        .await
        .expect(200)
        .json();
    assert!(
        entries(&b)[0]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("200")),
        "{b}"
    );
    let found = s.search("Patient?identifier=urn:test:mrn|CU").await;
    assert_eq!(entries(&found).len(), 1, "{found}");
    assert_eq!(entries(&found)[0]["resource"]["active"], true);
    assert_eq!(entries(&found)[0]["resource"]["meta"]["versionId"], "2");
    // DELETE and GET entries.
    let tx = bundle(
        "transaction",
        vec![
            json!({"request": {"method": "DELETE", "url": format!("Patient/{id}")}}),
            json!({"request": {"method": "GET", "url": "Patient?identifier=urn:test:mrn|CU"}}),
        ],
    );
    let b = s.post("", &tx).await.expect(200).json();
    let es = entries(&b);
    assert!(
        es[0]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("20")),
        "{b}"
    );
    assert!(
        es[1]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("200")),
        "{b}"
    );
    assert_eq!(es[1]["resource"]["resourceType"], "Bundle", "{b}");
    s.get(&format!("Patient/{id}")).await.expect(410);
}

async fn batch_entries_fail_on_their_own(s: &TestServer) {
    let mut invalid = patient("B2");
    invalid["gender"] = json!("bogus");
    let b = bundle(
        "batch",
        vec![
            post_entry(None, &patient("B1")),
            post_entry(None, &invalid),
            post_entry(None, &patient("B3")),
            json!({"request": {"method": "GET", "url": "Patient/nobody"}}),
            json!({"request": {"method": "GET", "url": "Patient?identifier=urn:test:mrn|B1"}}),
        ],
    );
    let r = s.post("", &b).await.expect(200);
    let b = r.json();
    assert_eq!(b["type"], "batch-response");
    let es = entries(&b);
    assert_eq!(es.len(), 5, "{b}");
    let status = |i: usize| {
        es[i]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(status(0).starts_with("201"), "{b}");
    assert!(status(1).starts_with("422"), "{b}");
    assert_eq!(
        es[1]["response"]["outcome"]["resourceType"], "OperationOutcome",
        "{b}"
    );
    assert!(status(2).starts_with("201"), "{b}");
    assert!(status(3).starts_with("404"), "{b}");
    assert!(status(4).starts_with("200"), "{b}");
    assert_eq!(count(s, "Patient").await, 2);
    assert_eq!(count(s, "Patient?identifier=urn:test:mrn|B2").await, 0);
}

async fn everything_returns_the_compartment(s: &TestServer) {
    let p = s.create(&patient("EV")).await;
    let pid = p["id"].as_str().expect("id").to_owned();
    let other = s.create(&patient("OTHER")).await;
    let oid = other["id"].as_str().expect("id").to_owned();
    let mut expected = vec![format!("Patient/{pid}")];
    for code in ["2339-0", "718-7"] {
        let o = s
            .create(&observation(&format!("Patient/{pid}"), code))
            .await;
        expected.push(type_id(&o));
    }
    let e = s
        .create(&json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{pid}")},
        }))
        .await;
    expected.push(type_id(&e));
    s.create(&observation(&format!("Patient/{oid}"), "2339-0"))
        .await;
    expected.sort();

    let b = s
        .get(&format!("Patient/{pid}/$everything"))
        .await
        .expect(200)
        .json();
    assert_eq!(b["resourceType"], "Bundle");
    let mut got: Vec<String> = entries(&b)
        .iter()
        .map(|e| type_id(&e["resource"]))
        .collect();
    got.sort();
    assert_eq!(got, expected, "{b}");
    // POST works as well; an unknown or deleted patient does not.
    let r = s
        .call("POST", &format!("Patient/{pid}/$everything"), &[], None)
        .await
        .expect(200);
    assert_eq!(entries(&r.json()).len(), expected.len());
    s.get("Patient/nobody/$everything").await.expect(404);
    s.delete(&format!("Patient/{oid}")).await;
    s.get(&format!("Patient/{oid}/$everything"))
        .await
        .expect(410);
    // $everything on another type is not supported.
    let r = s
        .get(&format!(
            "Observation/{}/$everything",
            expected[1].split('/').nth(1).unwrap_or("x")
        ))
        .await;
    assert!((400..500).contains(&r.status), "{}", r.status);
}

async fn synthetic_patients_load_and_count(s: &TestServer) {
    let mut expected: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut bundles = Vec::new();
    for n in 0..20 {
        let b = fhir_server::synth::patient_bundle(42, n);
        for e in entries(&b) {
            *expected
                .entry(
                    e["resource"]["resourceType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default() += 1;
        }
        let r = s.post("", &b).await.expect(200).json();
        assert_eq!(r["type"], "transaction-response");
        assert_eq!(entries(&r).len(), entries(&b).len());
        bundles.push(b);
    }
    assert_eq!(expected["Patient"], 20);
    for (t, n) in &expected {
        assert_eq!(count(s, t).await, *n, "{t}");
    }
    let total: u64 = expected.values().sum();
    let all = s.search("?_summary=count").await;
    assert_eq!(all["total"], total, "{all}");
    // Each patient's $everything is exactly its Bundle.
    for n in [0, 7, 19] {
        let mrn = fhir_server::synth::mrn(n);
        let sys = fhir_server::synth::MRN_SYSTEM;
        let found = s
            .search(&format!(
                "Patient?identifier={}",
                enc(&format!("{sys}|{mrn}"))
            ))
            .await;
        let ids = match_ids(&found);
        assert_eq!(ids.len(), 1, "{found}");
        let everything = s
            .get(&format!("Patient/{}/$everything", ids[0]))
            .await
            .expect(200)
            .json();
        assert_eq!(
            entries(&everything).len(),
            entries(&bundles[n as usize]).len(),
            "patient {n}"
        );
        let observations = count(s, &format!("Observation?subject=Patient/{}", ids[0])).await;
        let expected_obs = entries(&bundles[n as usize])
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .count() as u64;
        assert_eq!(observations, expected_obs, "patient {n}");
    }
}

/// FHIR: a transaction whose entries name the same resource twice SHALL fail.
async fn transaction_with_two_entries_for_one_resource_fails(s: &TestServer) {
    // Two entries for the same resource: an error (FHIR forbids it), nothing stored.
    let p = json!({"resourceType": "Patient", "id": "dup"});
    let tx = bundle(
        "transaction",
        vec![
            json!({"resource": p, "request": {"method": "PUT", "url": "Patient/dup"}}),
            json!({"resource": p, "request": {"method": "PUT", "url": "Patient/dup"}}),
        ],
    );
    let r = s.post("", &tx).await;
    assert!(
        (400..500).contains(&r.status),
        "two entries for Patient/dup: {}: {}",
        r.status,
        r.text()
    );
    s.get("Patient/dup").await.expect(404);
}

/// A PATCH entry: a Binary holding the JSON Patch, base64-encoded.
fn patch_entry(url: &str, patch: &Value, if_match: Option<&str>) -> Value {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
    let mut e = json!({
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
        "request": {"method": "PATCH", "url": url},
    });
    if let Some(v) = if_match {
        e["request"]["ifMatch"] = json!(v);
    }
    e
}

async fn patch_entries_in_batch_and_transaction(s: &TestServer) {
    let p = s.create(&patient("PATCH1")).await;
    let url = type_id(&p);
    let replace_family =
        |name: &str| json!([{"op": "replace", "path": "/name/0/family", "value": name}]);
    // batch: one good patch, one that would make the resource invalid
    let b = s
        .post(
            "",
            &bundle(
                "batch",
                vec![
                    patch_entry(&url, &replace_family("Patched"), None),
                    patch_entry(
                        &url,
                        &json!([{"op": "add", "path": "/gender", "value": "bogus"}]),
                        None,
                    ),
                ],
            ),
        )
        .await
        .expect(200)
        .json();
    let es = entries(&b);
    assert!(
        es[0]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("200"),
        "{b}"
    );
    assert!(
        es[1]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("422"),
        "{b}"
    );
    let now = s.get(&url).await.expect(200).json();
    assert_eq!(now["name"][0]["family"], "Patched");
    assert_eq!(now["meta"]["versionId"], "2");
    // transaction: the patch and a new Observation are stored together
    let tx = bundle(
        "transaction",
        vec![
            patch_entry(&url, &replace_family("InTransaction"), Some("W/\"2\"")),
            post_entry(None, &observation(&url, "2339-0")),
        ],
    );
    let b = s.post("", &tx).await.expect(200).json();
    assert!(
        entries(&b).iter().all(|e| {
            let st = e["response"]["status"].as_str().unwrap_or_default();
            st.starts_with("200") || st.starts_with("201")
        }),
        "{b}"
    );
    let now = s.get(&url).await.expect(200).json();
    assert_eq!(now["name"][0]["family"], "InTransaction");
    assert_eq!(now["meta"]["versionId"], "3");
    // a stale ifMatch fails the whole transaction: the Observation is not stored either
    let before = count(s, "Observation").await;
    let tx = bundle(
        "transaction",
        vec![
            patch_entry(&url, &replace_family("Stale"), Some("W/\"1\"")),
            post_entry(None, &observation(&url, "718-7")),
        ],
    );
    let r = s.post("", &tx).await.expect(412);
    r.assert_outcome();
    assert_eq!(count(s, "Observation").await, before);
    assert_eq!(
        s.get(&url).await.expect(200).json()["name"][0]["family"],
        "InTransaction"
    );
}
