//! Role-based access to every endpoint: each route × each role (admin, developer, operator,
//! auditor, read-only) with a real API token of the authorization server, plus no token and
//! a bad token; and the audit records of refusals, message views and changes.

use std::sync::Arc;
use std::time::Duration;

use auth::principal::Role;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use store::Audit as _;
use tower::ServiceExt as _;

use super::{TestEngine, file_channel, hl7};
use crate::admin::{AdminState, router, routes};

async fn status(app: &axum::Router, method: &str, path: &str, token: Option<&str>) -> StatusCode {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
#[expect(clippy::too_many_lines, reason = "one walk over every route and role")]
async fn every_route_checks_the_callers_roles() {
    let t = TestEngine::new().await;
    t.deploy("adt", &file_channel(&t, &["d1"], "")).await;
    let id = t
        .accept_processed(hl7("adt", "ADT^A01", "C1", "MRN1"))
        .await;
    let auth = auth::AuthServer::new(
        auth::AuthConfig::new(
            "http://127.0.0.1:1/fhir",
            "http://127.0.0.1:1/auth",
            t.dir.path().join("keys"),
        ),
        Arc::clone(&t.store),
        Arc::new(auth::NoEvents),
    )
    .unwrap();
    let audit = crate::security::AuditTrail::start(Arc::clone(&t.store), "test".into());
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let user = format!("user-{role}");
        auth.add_user(&user, Some("a long password"), &[role], None)
            .await
            .unwrap();
        let token = auth
            .create_api_token(&user, "test", "", Duration::from_hours(1))
            .await
            .unwrap();
        tokens.push((role, token));
    }
    let app = router(AdminState {
        engine: Arc::clone(&t.engine),
        channels_dir: Some(t.channels_dir()),
        auth: Some(Arc::clone(&auth)),
        audit: Some(Arc::clone(&audit)),
        oidc: None,
    });
    let mut checked = 0;
    for route in routes() {
        let path = route
            .path
            .replace("{name}", "adt")
            .replace("{destination}", "d1")
            .replace("{id}", &id.to_string());
        let method = route.verb.openapi_key().to_uppercase();
        let Some(action) = route.action else {
            let s = status(&app, &method, &path, None).await;
            assert!(
                s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
                "public {method} {path}: {s}"
            );
            continue;
        };
        assert_eq!(
            status(&app, &method, &path, None).await,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(
            status(&app, &method, &path, Some("plx_not-a-token")).await,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
        for (role, token) in &tokens {
            let s = status(&app, &method, &path, Some(token)).await;
            if role.allows(action) {
                assert!(
                    s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
                    "{role} {method} {path}: {s}"
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 5 * 15, "{checked} checks");

    // Password sign-in: a wrong password is refused, the right one gives a session token
    // with the user's roles.
    let login = |body: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/login")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let r = app
        .clone()
        .oneshot(login(
            r#"{"username":"user-auditor","password":"wrong password"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .clone()
        .oneshot(login(
            r#"{"username":"nobody","password":"a long password"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .clone()
        .oneshot(login(
            r#"{"username":"user-auditor","password":"a long password"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let session: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let session = session["token"].as_str().unwrap();
    assert_eq!(
        status(&app, "GET", "/api/channels", Some(session)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, "GET", "/api/messages", Some(session)).await,
        StatusCode::FORBIDDEN
    );

    // Refusals, message views, sign-ins and changes are in the audit trail.
    let entries = t
        .store
        .audit_search(&store::AuditQuery {
            limit: Some(1000),
            ..store::AuditQuery::default()
        })
        .await
        .unwrap();
    let refused = entries.iter().filter(|e| e.record.outcome != "0").count();
    assert!(refused >= 2 * 15, "{refused} refusals recorded");
    assert!(
        entries.iter().any(|e| e.record.agent == "user-operator"
            && e.record.outcome == "0"
            && e.record
                .entity
                .as_deref()
                .is_some_and(|x| x.contains(&id.to_string()))),
        "the operator's view of the message is recorded"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.record.type_code == "110114" && e.record.outcome != "0")
            .count(),
        2,
        "the two failed sign-ins"
    );
    assert!(t.store.audit_verify(None).await.unwrap().is_intact());
}
