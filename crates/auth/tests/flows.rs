//! SMART flows over real sockets, on SQLite and on PostgreSQL: standalone launch with the
//! patient picker, EHR launch, refresh rotation, backend services, introspection and
//! revocation, and the smart-configuration document.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use auth::AuthEventKind;
use common::*;
use serde_json::{Value, json};

macro_rules! on_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::common::Harness::start(crate::common::Db::Sqlite).await;
                    crate::$case(&h).await;
                    h.finish();
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::common::Harness::start(crate::common::Db::Postgres).await;
                    crate::$case(&h).await;
                    h.finish();
                }
            )+
        }
    };
}

on_both_stores!(
    standalone_launch_with_patient_picker,
    ehr_launch_with_context,
    refresh_rotation_and_narrowing,
    backend_services_and_introspection,
    confidential_client_and_revocation,
);

async fn standalone_launch_with_patient_picker(h: &Harness) {
    let setup = h.setup().await;
    let scope = "launch/patient openid fhirUser offline_access patient/*.rs";
    let url = authorize_url(h, PUBLIC_APP, scope, &[("nonce", "n-1")]);
    // a wrong password first: 401, the form again, audited
    let page = get(&url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Public &lt;App&gt;"),
        "client name is escaped"
    );
    let again = step(
        h,
        &page,
        &[
            ("action", "login"),
            ("username", "alice"),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(again.status, 401);
    assert!(again.body.contains("Wrong user name or password"));
    // the first page's txn is used up
    let stale = step(
        h,
        &page,
        &[
            ("action", "login"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(stale.status, 400);
    let picker = step(
        h,
        &again,
        &[
            ("action", "login"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert!(picker.body.contains("Select a patient"), "{}", picker.body);
    let found = step(h, &picker, &[("action", "search"), ("q", "Testpatient")]).await;
    assert!(found.body.contains("value=\"pat-1\""));
    assert!(!found.body.contains("value=\"pat-2\""));
    // an unknown patient is refused
    let refused = step(h, &found, &[("action", "pick"), ("patient", "nope")]).await;
    assert_eq!(refused.status, 400);
    let found = step(h, &refused, &[("action", "search"), ("q", "Testpatient")]).await;
    let consent = step(
        h,
        &found,
        &[("action", "pick"), ("patient", &setup.patients[0])],
    )
    .await;
    assert!(consent.body.contains("patient/*.rs"));
    let redirect = step(h, &consent, &[("action", "approve")]).await;
    assert_eq!(redirect.status, 303);
    assert!(redirect.header("location").unwrap().starts_with(REDIRECT));
    assert_eq!(redirect.location_param("state").as_deref(), Some("st-42"));
    let code = redirect.location_param("code").unwrap();
    let answer = exchange(h, &code, VERIFIER).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let t = answer.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["patient"], "pat-1");
    assert_eq!(
        t["scope"],
        "patient/*.rs launch/patient openid fhirUser offline_access"
    );
    assert!(t["refresh_token"].is_string());
    assert!(t["expires_in"].as_i64().unwrap() > 800);
    let principal = h
        .server
        .verify_bearer(t["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.patient.as_deref(), Some("pat-1"));
    assert_eq!(principal.client_id.as_deref(), Some(PUBLIC_APP));
    assert_eq!(principal.fhir_user.as_deref(), Some("Practitioner/prac-1"));
    assert!(
        principal
            .access("Observation", auth::Perm::Read)
            .is_allowed()
    );
    assert!(
        !principal
            .access("Observation", auth::Perm::Create)
            .is_allowed()
    );
    // the ID token: signed by the server, aud = client, nonce, fhirUser
    let id = auth::jwt::Unverified::parse(t["id_token"].as_str().unwrap()).unwrap();
    assert!(id.verify(h.server_key().public()));
    assert_eq!(id.str_claim("aud"), Some(PUBLIC_APP));
    assert_eq!(id.str_claim("nonce"), Some("n-1"));
    assert_eq!(
        id.str_claim("fhirUser"),
        Some(format!("{}/Practitioner/prac-1", h.issuer).as_str())
    );
    let kinds = h.events.kinds();
    assert!(kinds.iter().any(|(k, _)| *k == AuthEventKind::LoginFailed));
    assert!(
        kinds
            .iter()
            .any(|(k, _)| *k == AuthEventKind::LoginSucceeded)
    );
    assert!(kinds.iter().any(|(k, _)| *k == AuthEventKind::TokenIssued));
    let issued_from_peer = h.events.0.lock().unwrap().iter().any(|e| {
        e.kind == AuthEventKind::TokenIssued
            && e.source_addr.as_deref() == Some("127.0.0.1")
            && e.patient.as_deref() == Some("pat-1")
    });
    assert!(
        issued_from_peer,
        "token events carry the peer address and patient"
    );
    // the smart configuration and the JWKS
    let conf = get(&format!("{}/.well-known/smart-configuration", h.issuer))
        .await
        .json();
    assert_eq!(conf["token_endpoint"], h.token_endpoint());
    assert_eq!(conf["code_challenge_methods_supported"], json!(["S256"]));
    assert!(
        conf["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("launch-ehr"))
    );
    let jwks = get(&h.url("/auth/jwks")).await.json();
    assert_eq!(jwks["keys"][0]["alg"], "ES384");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

async fn ehr_launch_with_context(h: &Harness) {
    let setup = h.setup().await;
    let launch_url = h.url("/auth/launch");
    let bearer = format!("Bearer {}", setup.admin_token);
    // no token: 401; a token without admin/developer: 403
    let none = send(
        "POST",
        &launch_url,
        &[("content-type", "application/json")],
        r#"{"patient":"pat-2"}"#,
    )
    .await;
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let viewer = h
        .server
        .create_api_token("viewer", "v", "", std::time::Duration::from_mins(1))
        .await
        .unwrap();
    let weak = send(
        "POST",
        &launch_url,
        &[
            ("authorization", &format!("Bearer {viewer}")),
            ("content-type", "application/json"),
        ],
        r#"{"patient":"pat-2"}"#,
    )
    .await;
    assert_eq!(weak.status, 403);
    let bad = send(
        "POST",
        &launch_url,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        r#"{"patient":"../x"}"#,
    )
    .await;
    assert_eq!(bad.status, 400);
    let created = send(
        "POST",
        &launch_url,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        r#"{"patient":"pat-2","encounter":"enc-9"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let launch = created.json()["launch"].as_str().unwrap().to_owned();
    let scope = "launch openid fhirUser patient/*.rs";
    let url = authorize_url(h, PUBLIC_APP, scope, &[("launch", &launch)]);
    // no patient picker: the launch gives the context
    let redirect = login_and_approve(h, &url, None).await;
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    let t = exchange(h, &redirect.location_param("code").unwrap(), VERIFIER)
        .await
        .json();
    assert_eq!(t["patient"], "pat-2");
    assert_eq!(t["encounter"], "enc-9");
    assert!(t["id_token"].is_string());
    assert!(
        t.get("refresh_token").is_none(),
        "no offline_access or online_access asked"
    );
    // the launch is single use
    let reused = get(&url).await;
    assert_eq!(reused.status, 303);
    assert_eq!(
        reused.location_param("error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(reused.location_param("state").as_deref(), Some("st-42"));
    assert!(
        h.events
            .kinds()
            .iter()
            .any(|(k, _)| *k == AuthEventKind::LaunchCreated)
    );
}

async fn refresh_rotation_and_narrowing(h: &Harness) {
    h.setup().await;
    let t = tokens(h, "launch/patient offline_access patient/*.rs").await;
    let refresh1 = t["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String, scope: Option<&'static str>| async move {
        let mut pairs = vec![("grant_type", "refresh_token"), ("client_id", PUBLIC_APP)];
        pairs.push(("refresh_token", token.as_str()));
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        post_form(&h.token_endpoint(), &pairs).await
    };
    // widening is refused and does not use the token up
    let wider = refresh(refresh1.clone(), Some("patient/*.cruds")).await;
    assert_eq!(
        (wider.status, wider.json()["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let wider = refresh(refresh1.clone(), Some("user/*.rs")).await;
    assert_eq!(wider.json()["error"], "invalid_scope");
    // narrowing works; the new refresh token keeps the full scope
    let narrow = refresh(refresh1.clone(), Some("patient/Observation.rs")).await;
    assert_eq!(narrow.status, 200, "{}", narrow.body);
    let n = narrow.json();
    assert_eq!(n["scope"], "patient/Observation.rs");
    assert_eq!(n["patient"], "pat-1");
    let refresh2 = n["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let full = refresh(refresh2.clone(), None).await;
    assert_eq!(full.status, 200);
    let f = full.json();
    assert_eq!(f["scope"], "patient/*.rs launch/patient offline_access");
    let refresh3 = f["refresh_token"].as_str().unwrap().to_owned();
    let access3 = f["access_token"].as_str().unwrap().to_owned();
    assert!(h.server.verify_bearer(&access3).await.is_ok());
    // replaying a used refresh token: refused, and the whole family revoked
    let replay = refresh(refresh1.clone(), None).await;
    assert_eq!(
        (replay.status, replay.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        h.server.verify_bearer(&access3).await.is_err(),
        "family access token revoked"
    );
    let after = refresh(refresh3, None).await;
    assert_eq!(
        after.json()["error"],
        "invalid_grant",
        "family refresh token revoked"
    );
    assert!(
        h.events
            .kinds()
            .iter()
            .any(|(k, d)| *k == AuthEventKind::Revoked && d.contains("replayed"))
    );
    // another client cannot use a refresh token
    let t = tokens(h, "launch/patient offline_access patient/*.rs").await;
    let other = post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "confidential-app"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(other.json()["error"], "invalid_client");
    // online_access: a refresh token too, bound to the session
    let online = tokens(h, "launch/patient online_access patient/*.rs").await;
    assert!(online["refresh_token"].is_string());
}

async fn backend_services_and_introspection(h: &Harness) {
    let setup = h.setup().await;
    let key = &setup.backend_key;
    let ok = backend_token(
        h,
        &assertion(h, key, "backend-key-1", json!({})),
        "system/Observation.rs system/Patient.rs",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let t = ok.json();
    assert_eq!(t["scope"], "system/Observation.rs system/Patient.rs");
    assert!(t.get("refresh_token").is_none());
    let access = t["access_token"].as_str().unwrap();
    let p = h.server.verify_bearer(access).await.unwrap();
    assert_eq!(p.subject, BACKEND);
    assert!(p.access("Patient", auth::Perm::Search).is_allowed());
    // a scope beyond the registration is not granted; non-system scopes are refused
    let some = backend_token(
        h,
        &assertion(h, key, "backend-key-1", json!({})),
        "system/*.cruds",
    )
    .await;
    assert_eq!(
        some.json()["error"],
        "invalid_scope",
        "system/*.cruds is wider than allowed"
    );
    let patient = backend_token(
        h,
        &assertion(h, key, "backend-key-1", json!({})),
        "patient/*.rs",
    )
    .await;
    assert_eq!(patient.json()["error"], "invalid_scope");
    // introspection, authenticated as a confidential client (Basic)
    let basic = format!("Basic {}", base64_basic(CONFIDENTIAL_APP, &setup.secret));
    let intro = post_form_with(
        &h.url("/auth/introspect"),
        &[("authorization", &basic)],
        &[("token", access)],
    )
    .await;
    assert_eq!(intro.status, 200, "{}", intro.body);
    let i = intro.json();
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], BACKEND);
    assert_eq!(i["scope"], "system/Observation.rs system/Patient.rs");
    let dead = post_form_with(
        &h.url("/auth/introspect"),
        &[("authorization", &basic)],
        &[("token", "garbage")],
    )
    .await;
    assert_eq!(dead.json(), json!({"active": false}));
    // a public client may not introspect
    let public = post_form(
        &h.url("/auth/introspect"),
        &[("client_id", PUBLIC_APP), ("token", access)],
    )
    .await;
    assert_eq!(public.json()["error"], "invalid_client");
    // the backend client itself, by assertion, may
    let by_assertion = post_form(
        &h.url("/auth/introspect"),
        &[
            ("token", access),
            ("client_assertion_type", auth::JWT_BEARER),
            (
                "client_assertion",
                &assertion(h, key, "backend-key-1", json!({})),
            ),
        ],
    )
    .await;
    assert_eq!(by_assertion.json()["active"], true);
    // a JWKS served from a URL
    let (key2, _) = auth::jwt::SigningKey::generate().unwrap();
    let mut jwk = key2.public().to_jwk();
    jwk["kid"] = "url-key".into();
    let jwks_server = serve_json(json!({"keys": [jwk]})).await;
    h.server
        .register_client(auth::ClientRegistration {
            client_id: BACKEND.into(),
            name: None,
            kind: auth::ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: "system/*.rs".into(),
            jwks: None,
            jwks_uri: Some(jwks_server),
        })
        .await
        .unwrap();
    let via_url = backend_token(h, &assertion(h, &key2, "url-key", json!({})), "system/*.rs").await;
    assert_eq!(via_url.status, 200, "{}", via_url.body);
    let old_key = backend_token(
        h,
        &assertion(h, key, "backend-key-1", json!({})),
        "system/*.rs",
    )
    .await;
    assert_eq!(old_key.json()["error"], "invalid_client");
}

async fn confidential_client_and_revocation(h: &Harness) {
    let setup = h.setup().await;
    let scope = "launch/patient offline_access patient/*.rs";
    let url = authorize_url(h, CONFIDENTIAL_APP, scope, &[]);
    let redirect = login_and_approve(h, &url, Some("pat-1")).await;
    let code = redirect.location_param("code").unwrap();
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // without its secret the confidential client is refused (and the code stays usable)
    let mut public_style = pairs.to_vec();
    public_style.push(("client_id", CONFIDENTIAL_APP));
    let refused = post_form(&h.token_endpoint(), &public_style).await;
    assert_eq!(
        (refused.status, refused.json()["error"].as_str()),
        (400, Some("invalid_client"))
    );
    // wrong secret with Basic: 401 and WWW-Authenticate: Basic
    let wrong = format!("Basic {}", base64_basic(CONFIDENTIAL_APP, "not-the-secret"));
    let refused = post_form_with(&h.token_endpoint(), &[("authorization", &wrong)], &pairs).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // client_secret_post
    let mut post = public_style.clone();
    post.push(("client_secret", setup.secret.as_str()));
    let ok = post_form(&h.token_endpoint(), &post).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let t = ok.json();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let basic = format!("Basic {}", base64_basic(CONFIDENTIAL_APP, &setup.secret));
    let intro = post_form_with(
        &h.url("/auth/introspect"),
        &[("authorization", &basic)],
        &[("token", refresh)],
    )
    .await;
    assert_eq!(intro.json()["active"], true);
    assert_eq!(intro.json()["token_type"], "refresh_token");
    // revoking the refresh token revokes its access tokens too
    let revoked = post_form_with(
        &h.url("/auth/revoke"),
        &[("authorization", &basic)],
        &[("token", refresh)],
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert!(h.server.verify_bearer(access).await.is_err());
    let intro = post_form_with(
        &h.url("/auth/introspect"),
        &[("authorization", &basic)],
        &[("token", access)],
    )
    .await;
    assert_eq!(intro.json(), json!({"active": false}));
    // revoking an unknown token is still 200
    let unknown = post_form_with(
        &h.url("/auth/revoke"),
        &[("authorization", &basic)],
        &[("token", "nothing")],
    )
    .await;
    assert_eq!(unknown.status, 200);
    // an access token alone
    let t = tokens(h, "launch/patient patient/*.rs").await;
    let access = t["access_token"].as_str().unwrap();
    assert!(h.server.verify_bearer(access).await.is_ok());
    let r = post_form(
        &h.url("/auth/revoke"),
        &[("client_id", PUBLIC_APP), ("token", access)],
    )
    .await;
    assert_eq!(r.status, 200);
    let err = h.server.verify_bearer(access).await.unwrap_err();
    assert!(matches!(err, auth::AuthError::InvalidToken(_)));
    // API tokens: listed, revoked
    let listed = h.server.api_tokens("root").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(h.server.verify_bearer(&setup.admin_token).await.is_ok());
    assert!(h.server.revoke_api_token(&listed[0].0).await.unwrap());
    assert!(h.server.verify_bearer(&setup.admin_token).await.is_err());
    // a disabled user: its API tokens are refused, it cannot sign in; enabled again, both work
    let token = h
        .server
        .create_api_token("root", "again", "", std::time::Duration::from_mins(1))
        .await
        .unwrap();
    assert!(h.server.set_user_disabled("root", true).await.unwrap());
    assert!(h.server.verify_bearer(&token).await.is_err());
    assert!(
        h.server
            .create_api_token("root", "x", "", std::time::Duration::from_mins(1))
            .await
            .is_err()
    );
    assert!(h.server.set_user_disabled("alice", true).await.unwrap());
    let page = get(&authorize_url(
        h,
        PUBLIC_APP,
        "launch/patient patient/*.rs",
        &[],
    ))
    .await;
    let refused = step(
        h,
        &page,
        &[
            ("action", "login"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(h.server.set_user_disabled("root", false).await.unwrap());
    assert!(h.server.verify_bearer(&token).await.is_ok());
    assert!(!h.server.set_user_disabled("nobody", true).await.unwrap());
    // removing a user removes its API tokens
    assert!(h.server.remove_user("root").await.unwrap());
    assert!(h.server.verify_bearer(&token).await.is_err());
    assert!(h.server.api_tokens("root").await.unwrap().is_empty());
    assert!(!h.server.remove_user("root").await.unwrap());
    // expired grants are purged (the used code and refresh markers, at least none unexpired)
    h.server.purge().await.unwrap();
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// Serves `value` as JSON at `/jwks` on a loopback port; its URL.
async fn serve_json(value: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(value) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks")
}

/// A configured RSA key (PKCS#8 and PKCS#1 PEM, made by openssl) signs RS384 tokens; the
/// generated key file is private to its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_rsa_key_signs_rs384() {
    let keys = tempfile::tempdir().unwrap();
    let pkcs8 = keys.path().join("rsa-pkcs8.pem");
    let pkcs1 = keys.path().join("rsa-pkcs1.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pkcs8)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&pkcs8)
            .arg("-out")
            .arg(&pkcs1)
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is needed to make RSA test keys"
        );
        eprintln!("skipped: no openssl to make an RSA key");
        return;
    }
    for path in [pkcs8, pkcs1] {
        let h = Harness::start_with(Db::Sqlite, |c| c.signing_key = Some(path.clone())).await;
        h.setup().await;
        assert_eq!(h.server.signing_alg(), auth::jwt::Alg::Rs384);
        assert!(!h.dir.path().join("auth-signing-key.pem").exists());
        let jwks = get(&h.url("/auth/jwks")).await.json();
        assert_eq!(jwks["keys"][0]["alg"], "RS384");
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        let t = tokens(&h, "launch/patient openid fhirUser patient/*.rs").await;
        let access = t["access_token"].as_str().unwrap();
        let jwt = auth::jwt::Unverified::parse(access).unwrap();
        assert_eq!(jwt.alg, "RS384");
        let key = auth::jwt::PublicKey::from_jwk(&jwks["keys"][0]).unwrap();
        assert!(jwt.verify(&key));
        assert!(h.server.verify_bearer(access).await.is_ok());
        let conf = get(&format!("{}/.well-known/smart-configuration", h.issuer))
            .await
            .json();
        assert_eq!(
            conf["id_token_signing_alg_values_supported"],
            json!(["RS384"])
        );
        h.finish();
    }
    // the generated key: mode 0600, reused on restart
    let h = Harness::start(Db::Sqlite).await;
    let file = h.dir.path().join("auth-signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let kid = h.server.jwks()["keys"][0]["kid"].clone();
    let again = auth::AuthServer::new(
        h.server.config().clone(),
        std::sync::Arc::clone(&h.store),
        std::sync::Arc::new(auth::NoEvents),
    )
    .unwrap();
    assert_eq!(again.jwks()["keys"][0]["kid"], kid);
    // authorize by POST (authorize-post) works like GET
    let url = authorize_url(&h, PUBLIC_APP, "launch/patient patient/*.rs", &[]);
    let (endpoint, query) = url.split_once('?').unwrap();
    let page = send(
        "POST",
        endpoint,
        &[("content-type", "application/x-www-form-urlencoded")],
        query.to_owned(),
    )
    .await;
    assert_eq!(page.status, 400, "no such client before setup");
    h.setup().await;
    let page = send(
        "POST",
        endpoint,
        &[("content-type", "application/x-www-form-urlencoded")],
        query.to_owned(),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.input("txn").is_some());
    h.finish();
}
