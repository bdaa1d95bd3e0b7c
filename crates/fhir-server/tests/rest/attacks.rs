//! Hostile input on a server with authorization: SQL-like strings in every kind of search
//! parameter, in ids and in sort keys; oversized headers and bodies; forged tokens. Each is
//! answered with the right status and an OperationOutcome, never a 500, nothing leaks, and
//! the stored data is unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use auth::{Principal, ScopeSet};
use fhir_server::access::BoxFuture;
use fhir_server::{AuthFailure, Authenticator, Security};
use serde_json::json;

use crate::common::{Backend, TestServer};

struct OneToken;

impl Authenticator for OneToken {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>> {
        Box::pin(async move {
            let tokens: HashMap<&str, (&str, Option<&str>)> = HashMap::from([
                ("admin", ("system/*.cruds", None)),
                ("p1", ("patient/*.rs", Some("p1"))),
            ]);
            let (scopes, patient) = tokens.get(token).ok_or_else(|| AuthFailure {
                description: "the token is not valid".to_owned(),
            })?;
            Ok(Principal {
                subject: token.to_owned(),
                client_id: None,
                fhir_user: None,
                scopes: ScopeSet::parse(scopes).expect("scopes"),
                patient: patient.map(str::to_owned),
                encounter: None,
                token_id: None,
                roles: Vec::new(),
            })
        })
    }
}

const SQL: &[&str] = &[
    "' OR '1'='1",
    "x'); DROP TABLE fhir_resource; --",
    "\" OR 1=1 --",
    "1; DELETE FROM fhir_version",
    "%' OR type LIKE '%",
    "Patient/p2' OR '1'='1",
    "\\'; SELECT pg_sleep(5); --",
];

async fn hostile_input(backend: Backend) {
    let security = Security {
        authenticator: Some(Arc::new(OneToken)),
        access_log: None,
        public_routes: None,
    };
    let s = TestServer::start_with(backend, security).await;
    s.use_token(Some("admin"));
    for id in ["p1", "p2"] {
        s.put_resource(&json!({
            "resourceType": "Patient", "id": id,
            "identifier": [{"system": "urn:mrn", "value": id}],
            "name": [{"family": "Doe"}], "birthDate": "1970-01-01",
        }))
        .await;
    }
    s.use_token(Some("p1"));
    for sql in SQL {
        let v = crate::common::enc(sql);
        for param in [
            "name",
            "family",
            "identifier",
            "_id",
            "gender",
            "general-practitioner",
            "name:exact",
            "name:contains",
        ] {
            let r = s.get(&format!("Patient?{param}={v}")).await;
            assert!(
                r.status == 200 || r.status == 400,
                "{param}={sql}: {} {}",
                r.status,
                r.text()
            );
            if r.status == 200 {
                let b = r.json();
                let ids = crate::common::match_ids(&b);
                assert!(
                    ids.is_empty() || ids == ["p1"],
                    "{param}={sql} leaked {ids:?}"
                );
            }
        }
        for path in [
            format!("Patient?birthdate={v}"),
            format!("Patient?_sort={v}"),
            format!("Patient?_count={v}"),
            format!("Patient?{v}=1"),
        ] {
            let r = s.get(&path).await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
        }
        let r = s.get(&format!("Patient/{v}")).await;
        assert!(
            r.status == 400 || r.status == 404,
            "read {sql}: {}",
            r.status
        );
    }
    // Forged and malformed tokens.
    for bad in [
        "",
        "Bearer",
        "admin2",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "p1' OR '1'='1",
    ] {
        s.use_token(Some(bad));
        let r = s.get("Patient/p1").await;
        assert_eq!(r.status, 401, "token {bad:?}");
    }
    // Oversized headers: refused by the HTTP layer before any handler runs (hyper answers
    // 431 without a body).
    s.use_token(Some("admin"));
    assert_eq!(raw_status(&s.base, &"x".repeat(1 << 20)).await, 431);
    // The data is intact.
    let b = s.search("Patient?_total=accurate").await;
    assert_eq!(b["total"], 2, "{b}");
}

/// The status of a GET of `Patient/p1` with a header of `padding`, on a raw connection.
async fn raw_status(base: &str, padding: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .to_owned();
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /fhir/Patient/p1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\nX-Padding: {padding}\r\n\r\n"
    );
    // The server may close before reading it all.
    let _ = conn.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

mod hostile {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::hostile_input(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::hostile_input(super::Backend::Postgres).await;
    }
}
