//! Errors: each an OperationOutcome (the client in `common` checks that for every answer of
//! 400 or more) with the status FHIR prescribes; `/metadata`; `$validate`.

use serde_json::{Value, json};

use crate::common::{TestServer, on_both_backends};

on_both_backends!(
    unknown_type_is_404,
    malformed_bodies_are_400,
    invalid_resources_are_422_naming_the_element,
    unsupported_formats_are_406,
    bad_ids_are_400,
    unknown_search_parameters,
    metadata_is_a_capability_statement,
    validate_operation,
    unsupported_bodies_and_methods,
);

/// Asserts a 422 whose issues name an element containing `element`.
#[track_caller]
fn assert_names(r: &crate::common::Resp, element: &str) {
    let expressions = r.issue_expressions();
    assert!(
        expressions.iter().any(|e| e.contains(element)),
        "{} answered {}; no issue names {element}: {}",
        r.what,
        r.status,
        r.text()
    );
}

async fn unknown_type_is_404(s: &TestServer) {
    s.get("Patientx/1").await.expect(404);
    s.get("Patientx").await.expect(404);
    s.post("Foo", &json!({"resourceType": "Foo"}))
        .await
        .expect(404);
    s.put("Foo/1", &json!({"resourceType": "Foo", "id": "1"}))
        .await
        .expect(404);
    s.delete("Foo/1").await.expect(404);
    s.get("Foo/_history").await.expect(404);
    // Not a concrete resource type either.
    s.get("DomainResource/1").await.expect(404);
    // An endpoint that does not exist.
    s.get("Patient/1/_history/1/extra").await.expect(404);
}

async fn malformed_bodies_are_400(s: &TestServer) {
    let r = s
        .call(
            "POST",
            "Patient",
            &[],
            Some(b"{\"resourceType\": \"Patient\",".to_vec()),
        )
        .await
        .expect(400);
    assert_eq!(r.json()["issue"][0]["severity"], "error");
    s.call("POST", "Patient", &[], Some(b"[1,2]".to_vec()))
        .await
        .expect(400);
    s.call("POST", "Patient", &[], Some(Vec::new()))
        .await
        .expect(400);
    s.post("Patient", &json!({"name": [{"family": "NoType"}]}))
        .await
        .expect(400);
    // The body's type is not the URL's.
    s.post(
        "Patient",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
    )
    .await
    .expect(400);
    s.put(
        "Patient/abc",
        &json!({"resourceType": "Observation", "id": "abc", "status": "final", "code": {"text": "x"}}),
    )
    .await
    .expect(400);
    // An update needs the id in the body.
    s.put("Patient/abc", &json!({"resourceType": "Patient"}))
        .await
        .expect(400);
    // A body that is not JSON at all.
    let r = s
        .call(
            "POST",
            "Patient",
            &[("Content-Type", "application/fhir+xml")],
            Some(b"<Patient xmlns=\"http://hl7.org/fhir\"/>".to_vec()),
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    // Nothing of it was stored.
    let b = s.search("Patient").await;
    assert_eq!(b["total"], 0, "{b}");
}

async fn invalid_resources_are_422_naming_the_element(s: &TestServer) {
    let r = s
        .post("Patient", &json!({"resourceType": "Patient", "foo": "bar"}))
        .await
        .expect(422);
    assert_names(&r, "Patient.foo");

    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "bogus"}),
        )
        .await
        .expect(422);
    assert_names(&r, "Patient.gender");

    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "birthDate": "15.03.1970"}),
        )
        .await
        .expect(422);
    assert_names(&r, "Patient.birthDate");

    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "active": "yes"}),
        )
        .await
        .expect(422);
    assert_names(&r, "Patient.active");

    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "name": [{"family": ["A", "B"]}]}),
        )
        .await
        .expect(422);
    assert_names(&r, "family");

    let r = s
        .post(
            "Observation",
            &json!({"resourceType": "Observation", "code": {"text": "glucose"}}),
        )
        .await
        .expect(422);
    assert_names(&r, "Observation.status");

    let r = s
        .post(
            "Observation",
            &json!({"resourceType": "Observation", "status": "final"}),
        )
        .await
        .expect(422);
    assert_names(&r, "Observation.code");

    // Nested: an unknown element inside a datatype.
    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "name": [{"family": "X", "nickname": "Y"}]}),
        )
        .await
        .expect(422);
    assert_names(&r, "nickname");

    // An update is validated the same way, and nothing is stored.
    let r = s
        .put(
            "Patient/p422",
            &json!({"resourceType": "Patient", "id": "p422", "gender": "bogus"}),
        )
        .await
        .expect(422);
    assert_names(&r, "Patient.gender");
    s.get("Patient/p422").await.expect(404);
    let b = s.search("Patient").await;
    assert_eq!(b["total"], 0, "{b}");
    let b = s.search("Observation").await;
    assert_eq!(b["total"], 0, "{b}");
}

async fn unsupported_formats_are_406(s: &TestServer) {
    s.create(&json!({"resourceType": "Patient", "id": "x"}))
        .await;
    s.get("Patient?_format=xml").await.expect(406);
    s.get("Patient?_format=application/fhir%2Bxml")
        .await
        .expect(406);
    s.get("metadata?_format=xml").await.expect(406);
    s.get_with("Patient", &[("Accept", "application/fhir+xml")])
        .await
        .expect(406);
    s.get_with("metadata", &[("Accept", "application/xml")])
        .await
        .expect(406);
    // JSON in any of its spellings, and */*, are fine.
    for accept in [
        "application/fhir+json",
        "application/json",
        "*/*",
        "application/fhir+xml;q=0.9, application/fhir+json",
    ] {
        s.get_with("Patient", &[("Accept", accept)])
            .await
            .expect(200);
    }
    for f in ["json", "application/json", "application/fhir%2Bjson"] {
        s.get(&format!("Patient?_format={f}")).await.expect(200);
    }
}

async fn bad_ids_are_400(s: &TestServer) {
    s.get("Patient/a_b").await.expect(400);
    s.get("Patient/a%20b").await.expect(400);
    let long = "a".repeat(65);
    s.get(&format!("Patient/{long}")).await.expect(400);
    s.get(&format!("Patient/{}", "a".repeat(64)))
        .await
        .expect(404);
    s.put(
        "Patient/a_b",
        &json!({"resourceType": "Patient", "id": "a_b"}),
    )
    .await
    .expect(400);
    s.delete("Patient/a_b").await.expect(400);
    s.get("Patient/a_b/_history").await.expect(400);
    s.get("Patient/a_b/_history/1").await.expect(400);
    s.get("Patient/ok/_history/one").await.expect(400);
}

async fn unknown_search_parameters(s: &TestServer) {
    s.create(&json!({"resourceType": "Patient", "name": [{"family": "Lenient"}]}))
        .await;
    let r = s.get("Patient?foo=bar").await.expect(400);
    assert!(
        r.text().contains("foo"),
        "the diagnostics name the parameter: {}",
        r.text()
    );
    s.get("Patient?name:nonsense=x").await.expect(400);
    s.get("Patient?birthdate=notadate").await.expect(400);
    s.get("Patient?_count=many").await.expect(400);
    let r = s
        .get_with("Patient?foo=bar", &[("Prefer", "handling=lenient")])
        .await
        .expect(200);
    let b = r.json();
    assert_eq!(b["total"], 1, "{b}");
    // Lenient drops only the unknown parameter, not the known ones.
    let r = s
        .get_with(
            "Patient?foo=bar&name=nobody",
            &[("Prefer", "handling=lenient")],
        )
        .await
        .expect(200);
    assert_eq!(r.json()["total"], 0, "{}", r.text());
    s.get_with("Patient?foo=bar", &[("Prefer", "handling=strict")])
        .await
        .expect(400);
}

async fn metadata_is_a_capability_statement(s: &TestServer) {
    let r = s.get("metadata").await.expect(200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/fhir+json"))
    );
    let cs = r.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1", "{}", cs["fhirVersion"]);
    assert_eq!(cs["kind"], "instance");
    assert!(
        cs["format"].as_array().is_some_and(|f| f
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.contains("json")))),
        "{}",
        cs["format"]
    );
    let rest = &cs["rest"][0];
    assert_eq!(rest["mode"], "server");
    let resources = rest["resource"].as_array().expect("rest.resource");
    let patient: &Value = resources
        .iter()
        .find(|r| r["type"] == "Patient")
        .expect("Patient in rest.resource");
    let params: Vec<&str> = patient["searchParam"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["name", "birthdate", "identifier", "gender"] {
        assert!(
            params.contains(&p),
            "Patient searchParam lacks {p}: {params:?}"
        );
    }
    let interactions: Vec<&str> = patient["interaction"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["code"].as_str())
        .collect();
    for i in [
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "create",
        "search-type",
        "history-instance",
    ] {
        assert!(
            interactions.contains(&i),
            "Patient interaction lacks {i}: {interactions:?}"
        );
    }
    assert!(resources.iter().any(|r| r["type"] == "Observation"));
}

async fn validate_operation(s: &TestServer) {
    let good = json!({"resourceType": "Patient", "name": [{"family": "Valid"}], "gender": "male"});
    let r = s.post("Patient/$validate", &good).await.expect(200);
    let oo = r.json();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(
        oo["issue"].as_array().is_some_and(|i| i
            .iter()
            .all(|i| i["severity"] != "error" && i["severity"] != "fatal")),
        "{oo}"
    );

    let bad = json!({"resourceType": "Patient", "gender": "bogus", "foo": 1});
    let r = s.post("Patient/$validate", &bad).await.expect(200);
    let oo = r.json();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let errors: Vec<&Value> = oo["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["severity"] == "error")
        .collect();
    assert!(errors.len() >= 2, "{oo}");
    let exprs = r.issue_expressions();
    assert!(exprs.iter().any(|e| e.contains("Patient.gender")), "{oo}");
    assert!(exprs.iter().any(|e| e.contains("Patient.foo")), "{oo}");

    // In a Parameters resource, as the operation's definition also allows.
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bad}]});
    let r = s.post("Patient/$validate", &params).await.expect(200);
    assert!(
        r.issue_expressions()
            .iter()
            .any(|e| e.contains("Patient.gender")),
        "{}",
        r.text()
    );

    // $validate stores nothing.
    let b = s.search("Patient").await;
    assert_eq!(b["total"], 0, "{b}");
    // A body of another type is an error.
    let r = s
        .post("Patient/$validate", &json!({"resourceType": "Observation"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// 415 for bodies in a format the server does not read, 405 for methods a URL does not take;
/// none of them stores anything.
async fn unsupported_bodies_and_methods(s: &TestServer) {
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Unsupported"}]}))
        .await;
    let id = p["id"].as_str().expect("id").to_owned();
    let xml = b"<Patient xmlns=\"http://hl7.org/fhir\"/>".to_vec();
    let r = s
        .call(
            "POST",
            "Patient",
            &[("content-type", "application/fhir+xml")],
            Some(xml.clone()),
        )
        .await
        .expect(415);
    r.assert_outcome();
    s.call(
        "PUT",
        &format!("Patient/{id}"),
        &[("content-type", "application/fhir+xml")],
        Some(xml),
    )
    .await
    .expect(415);
    // PATCH takes a JSON Patch only
    let patch = json!([{"op": "replace", "path": "/active", "value": true}]).to_string();
    s.call(
        "PATCH",
        &format!("Patient/{id}"),
        &[("content-type", "application/fhir+json")],
        Some(patch.into_bytes()),
    )
    .await
    .expect(415);
    // _search takes a form
    s.call(
        "POST",
        "Patient/_search",
        &[("content-type", "application/json")],
        Some(b"{}".to_vec()),
    )
    .await
    .expect(415);
    // methods a URL does not take
    s.call("POST", &format!("Patient/{id}"), &[], Some(b"{}".to_vec()))
        .await
        .expect(405);
    s.call("DELETE", "Patient", &[], None).await.expect(405);
    s.call("PATCH", "metadata", &[], None).await.expect(405);
    // nothing of it was stored: still version 1, still one Unsupported
    let now = s.get(&format!("Patient/{id}")).await.expect(200).json();
    assert_eq!(now["meta"]["versionId"], "1", "{now}");
    assert!(now.get("active").is_none(), "{now}");
    let found = s.search("Patient?name=Unsupported").await;
    assert_eq!(found["total"], 1, "{found}");
}
