//! Create, read, vread, update, patch, delete, their conditional variants, `Prefer`, and
//! history.

use serde_json::{Value, json};

use crate::common::{TestServer, enc, entries, link, on_both_backends};

on_both_backends!(
    create_assigns_id_version_and_headers,
    read_vread_update_and_create_on_update,
    if_match_if_none_match_if_modified_since,
    delete_then_read_is_gone_but_old_versions_remain,
    history_instance_type_system_since_count,
    conditional_create,
    concurrent_conditional_creates_make_one_resource,
    conditional_update,
    conditional_delete,
    json_patch,
    prefer_return,
);

fn patient(family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": family}],
        "name": [{"family": family, "given": ["Test"]}],
        "gender": "female",
        "birthDate": "1980-05-17",
    })
}

/// `W/"n"` → n.
fn etag_version(etag: &str) -> String {
    etag.trim_start_matches("W/").trim_matches('"').to_owned()
}

async fn create_assigns_id_version_and_headers(s: &TestServer) {
    let mut p = patient("Create");
    p["id"] = json!("client-chosen-id");
    let r = s.post("Patient", &p).await.expect(201);
    let body = r.json();
    let id = body["id"].as_str().expect("id").to_owned();
    assert_ne!(
        id, "client-chosen-id",
        "the server must ignore the client's id on create"
    );
    let location = r.header("location").expect("Location");
    assert_eq!(location, format!("{}/Patient/{id}/_history/1", s.base));
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    let last_modified = r.header("last-modified").expect("Last-Modified");
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/fhir+json")),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(body["resourceType"], "Patient");
    assert_eq!(body["meta"]["versionId"], "1");
    let last_updated = body["meta"]["lastUpdated"]
        .as_str()
        .expect("meta.lastUpdated");
    assert!(
        last_updated.starts_with("20") && last_updated.contains('T'),
        "{last_updated}"
    );
    assert_eq!(body["name"][0]["family"], "Create");
    // The client's id was not stored either.
    s.get("Patient/client-chosen-id").await.expect(404);
}

async fn read_vread_update_and_create_on_update(s: &TestServer) {
    let created = s.create(&patient("Read")).await;
    let id = created["id"].as_str().expect("id");
    let r = s.get(&format!("Patient/{id}")).await.expect(200);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.json(), created);

    let mut changed = created.clone();
    changed["name"][0]["family"] = json!("Updated");
    let r = s.put(&format!("Patient/{id}"), &changed).await.expect(200);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let v2 = r.json();
    assert_eq!(v2["meta"]["versionId"], "2");
    assert_eq!(v2["name"][0]["family"], "Updated");
    if let Some(location) = r.header("location") {
        assert_eq!(location, format!("{}/Patient/{id}/_history/2", s.base));
    }

    let current = s.get(&format!("Patient/{id}")).await.expect(200).json();
    assert_eq!(current["name"][0]["family"], "Updated");
    let v1 = s.get(&format!("Patient/{id}/_history/1")).await.expect(200);
    assert_eq!(v1.header("etag"), Some("W/\"1\""));
    assert_eq!(v1.json()["name"][0]["family"], "Read");
    s.get(&format!("Patient/{id}/_history/3")).await.expect(404);
    s.get(&format!("Patient/{id}/_history/x")).await.expect(400);
    s.get("Patient/never-there").await.expect(404);

    // Create-on-update: the client's id is kept.
    let mut new = patient("Chosen");
    new["id"] = json!("chosen-1");
    let r = s.put("Patient/chosen-1", &new).await.expect(201);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Patient/chosen-1/_history/1", s.base).as_str())
    );
    assert_eq!(r.json()["meta"]["versionId"], "1");
    s.get("Patient/chosen-1").await.expect(200);

    // The id in the body must be the URL's.
    s.put("Patient/chosen-2", &new).await.expect(400);
}

async fn if_match_if_none_match_if_modified_since(s: &TestServer) {
    let created = s.create(&patient("Etag")).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("Patient/{id}");
    let mut changed = created.clone();
    changed["active"] = json!(true);

    s.put_with(&path, &[("If-Match", "W/\"7\"")], &changed)
        .await
        .expect(412);
    assert_eq!(
        s.get(&path).await.expect(200).header("etag"),
        Some("W/\"1\"")
    );
    let r = s
        .put_with(&path, &[("If-Match", "W/\"1\"")], &changed)
        .await
        .expect(200);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    // The version just replaced no longer matches.
    s.put_with(&path, &[("If-Match", "W/\"1\"")], &changed)
        .await
        .expect(412);

    // If-None-Match: 304 for the current version, 200 for another.
    let r = s
        .get_with(&path, &[("If-None-Match", "W/\"2\"")])
        .await
        .expect(304);
    assert!(r.body.is_empty(), "a 304 has no body: {}", r.text());
    s.get_with(&path, &[("If-None-Match", "W/\"1\"")])
        .await
        .expect(200);

    // If-Modified-Since: 304 at (or after) Last-Modified, 200 before it.
    let r = s.get(&path).await.expect(200);
    let last_modified = r.header("last-modified").expect("Last-Modified").to_owned();
    s.get_with(&path, &[("If-Modified-Since", last_modified.as_str())])
        .await
        .expect(304);
    s.get_with(
        &path,
        &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")],
    )
    .await
    .expect(200);
}

async fn delete_then_read_is_gone_but_old_versions_remain(s: &TestServer) {
    let created = s.create(&patient("Delete")).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("Patient/{id}");
    let r = s.delete(&path).await;
    assert!(
        r.status == 200 || r.status == 204,
        "{}: {}",
        r.status,
        r.text()
    );
    s.get(&path).await.expect(410);
    let v1 = s
        .get(&format!("{path}/_history/1"))
        .await
        .expect(200)
        .json();
    assert_eq!(v1["name"][0]["family"], "Delete");
    // The deleted resource is not found by searches.
    let b = s.search("Patient?identifier=urn:test:mrn|Delete").await;
    assert!(entries(&b).is_empty(), "{b}");
    // Deleting again is fine (idempotent).
    let r = s.delete(&path).await;
    assert!(
        r.status == 200 || r.status == 204,
        "{}: {}",
        r.status,
        r.text()
    );
    // An update after a delete brings it back as a new version.
    let mut again = created.clone();
    again["name"][0]["family"] = json!("Back");
    let r = s.put(&path, &again).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{}: {}",
        r.status,
        r.text()
    );
    assert_eq!(
        s.get(&path).await.expect(200).json()["meta"]["versionId"],
        "3"
    );
}

async fn history_instance_type_system_since_count(s: &TestServer) {
    let created = s.create(&patient("History")).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("Patient/{id}");
    let mut v = created.clone();
    v["active"] = json!(true);
    let v2 = s.put(&path, &v).await.expect(200).json();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    v["active"] = json!(false);
    s.put(&path, &v).await.expect(200);
    s.delete(&path).await;
    let other = s.create(&patient("Other")).await;
    s.create(&json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": format!("Patient/{id}")},
    }))
    .await;

    // Instance history: newest first, every version, the deletion too.
    let b = s.get(&format!("{path}/_history")).await.expect(200).json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "history");
    assert_eq!(b["total"], 4, "{b}");
    let versions: Vec<String> = entries(&b)
        .iter()
        .map(|e| etag_version(e["response"]["etag"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(versions, ["4", "3", "2", "1"], "{b}");
    let methods: Vec<String> = entries(&b)
        .iter()
        .map(|e| {
            e["request"]["method"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "PUT", "POST"], "{b}");
    assert!(
        entries(&b)[0].get("resource").is_none(),
        "a deletion has no resource: {b}"
    );
    for e in &entries(&b)[1..] {
        assert_eq!(e["resource"]["id"], id.as_str());
        assert_eq!(e["fullUrl"], format!("{}/{path}", s.base));
    }

    // _count and the next link.
    let b = s
        .get(&format!("{path}/_history?_count=3"))
        .await
        .expect(200)
        .json();
    assert_eq!(entries(&b).len(), 3, "{b}");
    let next = link(&b, "next").expect("a next link");
    let b2 = s.get(&next).await.expect(200).json();
    assert_eq!(entries(&b2).len(), 1, "{b2}");
    assert!(link(&b2, "next").is_none(), "{b2}");
    assert_eq!(
        etag_version(
            entries(&b2)[0]["response"]["etag"]
                .as_str()
                .unwrap_or_default()
        ),
        "1"
    );

    // _since: versions written at or after the instant.
    let since = v2["meta"]["lastUpdated"].as_str().expect("lastUpdated");
    let b = s
        .get(&format!("{path}/_history?_since={}", enc(since)))
        .await
        .expect(200)
        .json();
    let versions: Vec<String> = entries(&b)
        .iter()
        .map(|e| etag_version(e["response"]["etag"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(versions, ["4", "3", "2"], "_since={since}: {b}");
    let b = s
        .get(&format!("{path}/_history?_since=2100-01-01"))
        .await
        .expect(200)
        .json();
    assert!(entries(&b).is_empty(), "{b}");
    s.get(&format!("{path}/_history?_since=yesterday"))
        .await
        .expect(400);

    // Type history: every Patient version; system history: every version of every type.
    let b = s.get("Patient/_history").await.expect(200).json();
    assert_eq!(b["total"], 5, "{b}");
    assert!(entries(&b).iter().all(|e| {
        e["fullUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/Patient/"))
    }));
    let b = s.get("_history").await.expect(200).json();
    assert_eq!(b["total"], 6, "{b}");
    let b = s
        .get(&format!("_history?_since={}&_count=2", enc(since)))
        .await
        .expect(200)
        .json();
    // v2, v3, delete, Other, Observation.
    assert_eq!(b["total"], 5, "{b}");
    assert_eq!(entries(&b).len(), 2, "{b}");
    let mut seen = Vec::new();
    let mut page = Some(b);
    while let Some(b) = page {
        seen.extend(entries(&b).iter().map(|e| {
            format!(
                "{} {}",
                e["fullUrl"].as_str().unwrap_or_default(),
                e["response"]["etag"].as_str().unwrap_or_default()
            )
        }));
        page = match link(&b, "next") {
            Some(next) => Some(s.get(&next).await.expect(200).json()),
            None => None,
        };
        assert!(seen.len() <= 5, "the next links do not end: {seen:?}");
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| e.contains(other["id"].as_str().unwrap_or("?")))
    );

    // The history of an unknown resource is 404.
    s.get("Patient/nobody/_history").await.expect(404);
}

async fn conditional_create(s: &TestServer) {
    let p = patient("Conditional");
    let cond = [("If-None-Exist", "identifier=urn:test:mrn|Conditional")];
    let r = s.post_with("Patient", &cond, &p).await.expect(201);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let r = s.post_with("Patient", &cond, &p).await.expect(200);
    assert_eq!(r.json()["id"], id.as_str());
    if let Some(location) = r.header("location") {
        assert!(location.contains(&format!("/Patient/{id}")), "{location}");
    }
    let b = s
        .search("Patient?identifier=urn:test:mrn|Conditional")
        .await;
    assert_eq!(entries(&b).len(), 1, "{b}");
    // The full-URL form of the condition works as well.
    let full = format!("{}/Patient?identifier=urn:test:mrn|Conditional", s.base);
    let r = s
        .post_with("Patient", &[("If-None-Exist", full.as_str())], &p)
        .await
        .expect(200);
    assert_eq!(r.json()["id"], id.as_str());
    // Two matches: 412.
    s.create(&patient("Twin")).await;
    s.create(&patient("Twin")).await;
    s.post_with(
        "Patient",
        &[("If-None-Exist", "identifier=urn:test:mrn|Twin")],
        &patient("Twin"),
    )
    .await
    .expect(412);
    // An unknown parameter in the condition is an error, not a match of everything.
    s.post_with("Patient", &[("If-None-Exist", "nonsense=1")], &p)
        .await
        .expect(400);
}

async fn concurrent_conditional_creates_make_one_resource(s: &TestServer) {
    let p = patient("Race");
    // 50 requests at once (polled together on this task; the client opens a connection for
    // each, the server runs them on its own tasks).
    let requests = (0..50).map(|_| {
        s.post_with(
            "Patient",
            &[("If-None-Exist", "identifier=urn:test:mrn|Race")],
            &p,
        )
    });
    let answers = futures_join_all(requests).await;
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for r in &answers {
        assert!(
            r.status == 201 || r.status == 200,
            "{}: {}",
            r.status,
            r.text()
        );
        if r.status == 201 {
            created += 1;
        }
        ids.insert(r.json()["id"].as_str().unwrap_or_default().to_owned());
    }
    let b = s
        .search("Patient?identifier=urn:test:mrn|Race&_total=accurate")
        .await;
    assert_eq!(entries(&b).len(), 1, "{b}");
    assert_eq!(
        created, 1,
        "exactly one of the 50 conditional creates creates"
    );
    assert_eq!(
        ids.len(),
        1,
        "all 50 answers name the same resource: {ids:?}"
    );
}

/// Runs futures concurrently (on this task) and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("done")).collect()
}

async fn conditional_update(s: &TestServer) {
    let url = "Patient?identifier=urn:test:mrn|CondUpdate";
    // No match: created.
    let r = s.put(url, &patient("CondUpdate")).await.expect(201);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    // One match: that resource is updated.
    let mut p = patient("CondUpdate");
    p["active"] = json!(true);
    let r = s.put(url, &p).await.expect(200);
    let body = r.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(
        s.get(&format!("Patient/{id}")).await.expect(200).json()["active"],
        true
    );
    // Two matches: 412, nothing written.
    s.create(&patient("Twin")).await;
    s.create(&patient("Twin")).await;
    s.put("Patient?identifier=urn:test:mrn|Twin", &patient("Twin"))
        .await
        .expect(412);
    let b = s.search("Patient?identifier=urn:test:mrn|Twin").await;
    assert_eq!(entries(&b).len(), 2, "{b}");
    for e in entries(&b) {
        assert_eq!(e["resource"]["meta"]["versionId"], "1");
    }
}

async fn conditional_delete(s: &TestServer) {
    let keep = s.create(&patient("Keep")).await;
    let gone = s.create(&patient("Gone")).await;
    let r = s.delete("Patient?identifier=urn:test:mrn|Gone").await;
    assert!(
        r.status == 200 || r.status == 204,
        "{}: {}",
        r.status,
        r.text()
    );
    s.get(&format!("Patient/{}", gone["id"].as_str().expect("id")))
        .await
        .expect(410);
    s.get(&format!("Patient/{}", keep["id"].as_str().expect("id")))
        .await
        .expect(200);
    // No match: nothing happens, not an error.
    let r = s.delete("Patient?identifier=urn:test:mrn|Nobody").await;
    assert!(
        r.status == 200 || r.status == 204,
        "{}: {}",
        r.status,
        r.text()
    );
    let b = s.search("Patient").await;
    assert_eq!(entries(&b).len(), 1, "{b}");
}

async fn json_patch(s: &TestServer) {
    let created = s.create(&patient("Patch")).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("Patient/{id}");
    let patch = json!([
        {"op": "replace", "path": "/name/0/family", "value": "Patched"},
        {"op": "add", "path": "/active", "value": true},
    ]);
    let ct = [("Content-Type", "application/json-patch+json")];
    let r = s
        .call("PATCH", &path, &ct, Some(patch.to_string().into_bytes()))
        .await
        .expect(200);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let body = r.json();
    assert_eq!(body["name"][0]["family"], "Patched");
    assert_eq!(body["active"], true);
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(
        s.get(&path).await.expect(200).json()["name"][0]["family"],
        "Patched"
    );

    // A patch that makes the resource invalid: 422, nothing stored.
    let bad = json!([{"op": "replace", "path": "/gender", "value": "bogus"}]);
    let r = s
        .call("PATCH", &path, &ct, Some(bad.to_string().into_bytes()))
        .await
        .expect(422);
    assert!(
        r.issue_expressions().iter().any(|e| e.contains("gender")),
        "{}",
        r.text()
    );
    assert_eq!(
        s.get(&path).await.expect(200).json()["meta"]["versionId"],
        "2"
    );

    // If-Match on PATCH.
    let ok = json!([{"op": "replace", "path": "/active", "value": false}]);
    let r = s
        .call(
            "PATCH",
            &path,
            &[
                ("Content-Type", "application/json-patch+json"),
                ("If-Match", "W/\"1\""),
            ],
            Some(ok.to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.text());
    // A patch that cannot be applied (test fails), a body that is no patch, a wrong type.
    let failing = json!([{"op": "test", "path": "/active", "value": false}]);
    let r = s
        .call("PATCH", &path, &ct, Some(failing.to_string().into_bytes()))
        .await;
    assert!(
        r.status == 422 || r.status == 400 || r.status == 409,
        "{}: {}",
        r.status,
        r.text()
    );
    s.call("PATCH", &path, &ct, Some(b"{\"op\":1}".to_vec()))
        .await
        .expect(400);
    let r = s
        .call(
            "PATCH",
            &path,
            &[("Content-Type", "text/plain")],
            Some(patch.to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    s.call(
        "PATCH",
        "Patient/nobody",
        &ct,
        Some(patch.to_string().into_bytes()),
    )
    .await
    .expect(404);
}

async fn prefer_return(s: &TestServer) {
    let r = s
        .post_with(
            "Patient",
            &[("Prefer", "return=minimal")],
            &patient("Minimal"),
        )
        .await
        .expect(201);
    assert!(r.body.is_empty(), "return=minimal: {}", r.text());
    let location = r.header("location").expect("Location").to_owned();
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    let r = s.get(&location).await.expect(200);
    let stored = r.json();
    assert_eq!(stored["name"][0]["family"], "Minimal");

    let r = s
        .post_with(
            "Patient",
            &[("Prefer", "return=OperationOutcome")],
            &patient("Outcome"),
        )
        .await
        .expect(201);
    assert_eq!(r.json()["resourceType"], "OperationOutcome", "{}", r.text());
    assert!(r.header("location").is_some());

    let r = s
        .post_with(
            "Patient",
            &[("Prefer", "return=representation")],
            &patient("Representation"),
        )
        .await
        .expect(201);
    assert_eq!(r.json()["resourceType"], "Patient");

    // On update too.
    let id = stored["id"].as_str().expect("id");
    let r = s
        .put_with(
            &format!("Patient/{id}"),
            &[("Prefer", "return=minimal")],
            &stored,
        )
        .await
        .expect(200);
    assert!(r.body.is_empty(), "return=minimal: {}", r.text());
    assert_eq!(r.header("etag"), Some("W/\"2\""));
}
