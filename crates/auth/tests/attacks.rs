//! Attacks on tokens and on the authorization flows, each refused with the right status
//! and error code, reported to the audit events, and answered with nothing else.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use auth::AuthEventKind;
use auth::jwt::SigningKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

async fn sqlite() -> (Harness, Setup) {
    let h = Harness::start(Db::Sqlite).await;
    let setup = h.setup().await;
    (h, setup)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `claims` signed by the server's own key with its own header.
fn forge(h: &Harness, claims: &Value) -> String {
    let key = h.server_key();
    let header = json!({"alg": "ES384", "kid": key.kid(), "typ": "at+jwt"});
    auth::jwt::sign_input(&key, &format!("{}.{}", b64(&header), b64(claims))).unwrap()
}

/// The status `/auth/launch` answers a bearer token with: 401 for a refused token, 403
/// for a valid SMART token (authenticated, but not an admin's API token).
async fn launch_status(h: &Harness, token: &str) -> (u16, Option<String>, String) {
    let a = send(
        "POST",
        &h.url("/auth/launch"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        r#"{"patient":"pat-1"}"#,
    )
    .await;
    (
        a.status,
        a.header("www-authenticate").map(str::to_owned),
        a.body,
    )
}

async fn assert_refused(h: &Harness, token: &str, what: &str) {
    let err = h.server.verify_bearer(token).await.unwrap_err();
    assert!(
        matches!(err, auth::AuthError::InvalidToken(_)),
        "{what}: {err}"
    );
    let (status, www, body) = launch_status(h, token).await;
    assert_eq!(status, 401, "{what}");
    assert!(www.unwrap().contains("error=\"invalid_token\""), "{what}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_tampered_access_tokens_are_refused() {
    let (h, _) = sqlite().await;
    let t = tokens(&h, "launch/patient patient/*.rs").await;
    let token = t["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    let now = now_secs();
    // control: the same claims signed again by the server's key pass, so each refusal
    // below is due to the one thing that differs
    let control = forge(&h, &claims);
    assert!(h.server.verify_bearer(&control).await.is_ok());
    assert_eq!(launch_status(&h, &control).await.0, 403);
    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    // within the 30 s leeway an expired token still passes
    assert!(
        h.server
            .verify_bearer(&forge(&h, &with("exp", json!(now - 10))))
            .await
            .is_ok()
    );

    let (h1, p1) = (b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    assert_refused(&h, &format!("{h1}.{p1}."), "alg none").await;
    assert_refused(&h, &format!("{h1}.{p1}"), "alg none, two parts").await;
    // HS384 keyed with the server's public JWK (algorithm confusion)
    let jwk = get(&h.url("/auth/jwks")).await.json()["keys"][0].to_string();
    let hs_header = b64(&json!({"alg": "HS384", "typ": "JWT"}));
    let input = format!("{hs_header}.{p1}");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA384, jwk.as_bytes()),
        input.as_bytes(),
    );
    assert_refused(
        &h,
        &format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())),
        "HS384",
    )
    .await;
    // the server's signature under another alg name
    let es = forge(&h, &claims);
    let sig = es.rsplit('.').next().unwrap();
    let rs_header = b64(&json!({"alg": "RS384", "kid": h.server_key().kid()}));
    assert_refused(
        &h,
        &format!("{rs_header}.{p1}.{sig}"),
        "alg RS384 on an ES384 signature",
    )
    .await;
    // a wrong key, with the server's kid or its own
    let (other, _) = SigningKey::generate().unwrap();
    let header = json!({"alg": "ES384", "kid": h.server_key().kid(), "typ": "at+jwt"});
    let wrong = auth::jwt::sign_input(&other, &format!("{}.{p1}", b64(&header))).unwrap();
    assert_refused(&h, &wrong, "wrong key").await;
    assert_refused(
        &h,
        &other.sign("at+jwt", &claims).unwrap(),
        "wrong key and kid",
    )
    .await;
    // expired, not yet valid, issued in the future
    assert_refused(&h, &forge(&h, &with("exp", json!(now - 120))), "expired").await;
    assert_refused(
        &h,
        &forge(&h, &with("nbf", json!(now + 600))),
        "not yet valid",
    )
    .await;
    assert_refused(
        &h,
        &forge(&h, &with("iat", json!(now + 600))),
        "issued in the future",
    )
    .await;
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&h, &forge(&h, &no_exp), "no exp").await;
    // wrong audience, wrong issuer
    assert_refused(
        &h,
        &forge(&h, &with("aud", json!("https://elsewhere.example/fhir"))),
        "wrong aud",
    )
    .await;
    assert_refused(
        &h,
        &forge(&h, &with("aud", json!(format!("{}/", h.issuer)))),
        "aud with a slash",
    )
    .await;
    assert_refused(
        &h,
        &forge(&h, &with("iss", json!("https://evil.example/fhir"))),
        "wrong iss",
    )
    .await;
    // a jti the server never issued (a validly signed token it did not hand out)
    assert_refused(
        &h,
        &forge(&h, &with("jti", json!("made-up"))),
        "unknown jti",
    )
    .await;
    // tampered signature, tampered payload
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 1;
    let head = es.rsplit_once('.').unwrap().0;
    assert_refused(
        &h,
        &format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes)),
        "tampered signature",
    )
    .await;
    let escalated = b64(&with("scope", json!("patient/*.cruds user/*.cruds")));
    let parts: Vec<&str> = token.split('.').collect();
    assert_refused(
        &h,
        &format!("{}.{escalated}.{}", parts[0], parts[2]),
        "tampered payload",
    )
    .await;
    // garbage and API-token look-alikes
    for junk in [
        "",
        "x",
        "a.b.c",
        "plx_",
        "plx_notatoken",
        &"A".repeat(20_000),
    ] {
        assert_refused(&h, junk, "junk").await;
    }
    // a replayed access token after revocation
    let r = post_form(
        &h.url("/auth/revoke"),
        &[("client_id", PUBLIC_APP), ("token", token)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_refused(&h, token, "revoked").await;
    assert_refused(&h, &control, "revoked jti, re-signed").await;
    let refused = h
        .events
        .kinds()
        .into_iter()
        .filter(|(k, _)| *k == AuthEventKind::TokenRefused)
        .map(|(_, d)| d)
        .collect::<Vec<_>>();
    for reason in [
        "algorithm not accepted",
        "bad signature",
        "expired",
        "not valid yet",
        "wrong audience",
        "wrong issuer",
        "revoked",
    ] {
        assert!(
            refused.iter().any(|d| d.contains(reason)),
            "{reason} audited: {refused:?}"
        );
    }
    h.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_assertions_are_checked() {
    let (h, setup) = sqlite().await;
    let key = &setup.backend_key;
    let kid = "backend-key-1";
    let scope = "system/Patient.rs";
    let refused = |answer: Answer, what: &str| {
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_client", "{what}");
        assert!(answer.json().get("access_token").is_none());
    };
    let a = assertion(&h, key, kid, json!({"jti": "once"}));
    assert_eq!(backend_token(&h, &a, scope).await.status, 200);
    refused(
        backend_token(&h, &a, scope).await,
        "the same assertion again",
    );
    let again = assertion(&h, key, kid, json!({"jti": "once"}));
    refused(
        backend_token(&h, &again, scope).await,
        "a new assertion with a used jti",
    );
    let now = now_secs();
    for (what, overrides) in [
        ("aud is the FHIR base", json!({"aud": h.issuer})),
        (
            "aud with a trailing slash",
            json!({"aud": format!("{}/", h.token_endpoint())}),
        ),
        ("exp 10 minutes ahead", json!({"exp": now + 600})),
        ("expired", json!({"exp": now - 120})),
        ("no exp", json!({"exp": null})),
        ("no jti", json!({"jti": null})),
        ("sub differs", json!({"sub": "someone-else"})),
        ("unknown client", json!({"iss": "nobody", "sub": "nobody"})),
        ("not yet valid", json!({"nbf": now + 600})),
    ] {
        refused(
            backend_token(&h, &assertion(&h, key, kid, overrides), scope).await,
            what,
        );
    }
    let (stranger, _) = SigningKey::generate().unwrap();
    refused(
        backend_token(&h, &assertion(&h, &stranger, kid, json!({})), scope).await,
        "unregistered key",
    );
    refused(
        backend_token(&h, &assertion(&h, &stranger, "other", json!({})), scope).await,
        "unknown kid",
    );
    let claims = json!({"iss": BACKEND, "sub": BACKEND, "aud": h.token_endpoint(), "exp": now + 60, "jti": "n1"});
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims));
    refused(backend_token(&h, &none, scope).await, "alg none");
    let input = format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(&claims));
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"),
        input.as_bytes(),
    );
    refused(
        backend_token(
            &h,
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())),
            scope,
        )
        .await,
        "HS256",
    );
    // a public client cannot use client_credentials
    let p = post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PUBLIC_APP),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(p.json()["error"], "unauthorized_client");
    assert!(
        h.events
            .kinds()
            .iter()
            .any(|(k, d)| *k == AuthEventKind::TokenRefused && d.contains("jti was used before"))
    );
    h.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_and_redirect_uri_attacks() {
    let (h, _) = sqlite().await;
    let scope = "launch/patient patient/*.rs";
    // plain, missing method, missing challenge: an error redirect with the state, no code
    for (what, extra) in [
        (
            "plain",
            vec![
                ("code_challenge_method", "plain"),
                ("code_challenge", VERIFIER),
            ],
        ),
        ("no method", vec![("code_challenge_method", "")]),
        ("no challenge", vec![("code_challenge", "")]),
        ("wrong aud", vec![("aud", "https://elsewhere.example/fhir")]),
        ("token response type", vec![("response_type", "token")]),
    ] {
        let a = get(&authorize_url(&h, PUBLIC_APP, scope, &extra)).await;
        assert_eq!(a.status, 303, "{what}");
        assert!(a.header("location").unwrap().starts_with(REDIRECT));
        assert!(a.location_param("error").is_some(), "{what}");
        assert_eq!(
            a.location_param("state").as_deref(),
            Some("st-42"),
            "{what}"
        );
        assert!(a.location_param("code").is_none());
    }
    // redirect URI variations: an error page, never a redirect
    for variant in [
        "https://app.example/callback/",
        "https://APP.example/callback",
        "https://app.example/Callback",
        "https://app.example/callback?extra=1",
        "http://app.example/callback",
        "https://app.example:443/callback",
        "https://app.example/callback/../callback",
        "https://app.example/callbackx",
        "https://app.example/callback#frag",
        "https://evil.example/callback",
        "http://127.0.0.1:9/cb?x=1&y=2",
        "http://127.0.0.1:9/cb",
    ] {
        let a = get(&authorize_url(
            &h,
            PUBLIC_APP,
            scope,
            &[("redirect_uri", variant)],
        ))
        .await;
        assert_eq!(a.status, 400, "{variant}");
        assert!(a.header("location").is_none(), "{variant}");
        assert!(a.body.contains("not registered"), "{variant}");
    }
    let unknown = get(&authorize_url(&h, "no-such-client", scope, &[])).await;
    assert_eq!((unknown.status, unknown.header("location")), (400, None));
    // the registered URI with its own query is matched exactly and keeps its query
    let ok = get(&authorize_url(
        &h,
        PUBLIC_APP,
        scope,
        &[
            ("redirect_uri", "http://127.0.0.1:9/cb?x=1"),
            ("response_type", "token"),
        ],
    ))
    .await;
    assert!(
        ok.header("location")
            .unwrap()
            .starts_with("http://127.0.0.1:9/cb?x=1&error=")
    );

    // a PKCE verifier that does not match: invalid_grant, and the code is used up
    let redirect = login_and_approve(
        &h,
        &authorize_url(&h, PUBLIC_APP, scope, &[]),
        Some("pat-1"),
    )
    .await;
    let code = redirect.location_param("code").unwrap();
    let wrong = exchange(&h, &code, &"x".repeat(43)).await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(wrong.json().get("access_token").is_none());
    let after = exchange(&h, &code, VERIFIER).await;
    assert_eq!(after.json()["error"], "invalid_grant");
    // a redirect_uri that differs at the token endpoint
    let redirect = login_and_approve(
        &h,
        &authorize_url(&h, PUBLIC_APP, scope, &[]),
        Some("pat-1"),
    )
    .await;
    let code = redirect.location_param("code").unwrap();
    let other = post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/callback/"),
            ("code_verifier", VERIFIER),
            ("client_id", PUBLIC_APP),
        ],
    )
    .await;
    assert_eq!(other.json()["error"], "invalid_grant");
    h.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_reuse_revokes_what_the_code_gave() {
    let (h, _) = sqlite().await;
    let scope = "launch/patient offline_access patient/*.rs";
    let redirect = login_and_approve(
        &h,
        &authorize_url(&h, PUBLIC_APP, scope, &[]),
        Some("pat-1"),
    )
    .await;
    let code = redirect.location_param("code").unwrap();
    let first = exchange(&h, &code, VERIFIER).await;
    assert_eq!(first.status, 200);
    let t = first.json();
    let access = t["access_token"].as_str().unwrap();
    assert!(h.server.verify_bearer(access).await.is_ok());
    let second = exchange(&h, &code, VERIFIER).await;
    assert_eq!(
        (second.status, second.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        h.server.verify_bearer(access).await.is_err(),
        "tokens of a reused code are revoked"
    );
    let refresh = post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_APP),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refresh.json()["error"], "invalid_grant");
    assert!(
        h.events
            .kinds()
            .iter()
            .any(|(k, d)| *k == AuthEventKind::Revoked && d.contains("reused"))
    );
    // a made-up code
    assert_eq!(
        exchange(&h, "made-up", VERIFIER).await.json()["error"],
        "invalid_grant"
    );
    h.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_to_the_endpoints() {
    let (h, setup) = sqlite().await;
    let big = "a=".to_owned() + &"x".repeat(70 * 1024);
    for path in [
        "/auth/token",
        "/auth/introspect",
        "/auth/revoke",
        "/auth/authorize",
        "/auth/launch",
    ] {
        let a = send(
            "POST",
            &h.url(path),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &format!("Bearer {}", setup.admin_token)),
            ],
            big.clone(),
        )
        .await;
        assert_eq!(a.status, 413, "{path}");
    }
    let token = h.token_endpoint();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "repeated parameter",
            form(&[
                ("grant_type", "authorization_code"),
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_APP),
            ]),
            "invalid_request",
        ),
        (
            "no grant_type",
            form(&[("client_id", PUBLIC_APP)]),
            "invalid_request",
        ),
        (
            "unknown grant_type",
            form(&[("grant_type", "password"), ("client_id", PUBLIC_APP)]),
            "unsupported_grant_type",
        ),
        (
            "implicit grant",
            form(&[("grant_type", "implicit"), ("client_id", PUBLIC_APP)]),
            "unsupported_grant_type",
        ),
        (
            "unknown client",
            form(&[("grant_type", "authorization_code"), ("client_id", "ghost")]),
            "invalid_client",
        ),
        (
            "two auth methods",
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CONFIDENTIAL_APP),
                ("client_secret", "x"),
                ("client_assertion_type", auth::JWT_BEARER),
                ("client_assertion", "a.b.c"),
            ]),
            "invalid_request",
        ),
        (
            "long parameter",
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", PUBLIC_APP),
                ("code", &"c".repeat(20_000)),
            ]),
            "invalid_request",
        ),
        (
            "sql in a code",
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", PUBLIC_APP),
                ("code", "' OR 1=1 --"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]),
            "invalid_grant",
        ),
    ];
    for (what, body, error) in cases {
        let a = send(
            "POST",
            &token,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        assert_eq!(a.json()["error"], error, "{what}");
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
    let json_body = send(
        "POST",
        &token,
        &[("content-type", "application/json")],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await;
    assert_eq!(json_body.json()["error"], "invalid_request");
    let get_token = get(&token).await;
    assert_eq!(get_token.status, 405);
    // a forged CSRF token: the pending authorization is refused and used up
    let page = get(&authorize_url(
        &h,
        PUBLIC_APP,
        "launch/patient patient/*.rs",
        &[],
    ))
    .await;
    let txn = page.input("txn").unwrap();
    let forged = post_form(
        &h.url("/auth/authorize"),
        &[
            ("txn", &txn),
            ("csrf", "forged"),
            ("action", "login"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.input("txn").is_none());
    // guessing passwords: after five failures the authorization ends with access_denied
    let mut page = get(&authorize_url(
        &h,
        PUBLIC_APP,
        "launch/patient patient/*.rs",
        &[],
    ))
    .await;
    for i in 0..5 {
        page = step(
            &h,
            &page,
            &[
                ("action", "login"),
                ("username", "alice"),
                ("password", &format!("guess{i}")),
            ],
        )
        .await;
        if i < 4 {
            assert_eq!(page.status, 401);
        }
    }
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location_param("error").as_deref(),
        Some("access_denied")
    );
    // an unknown user fails the same way as a wrong password
    let page = get(&authorize_url(
        &h,
        PUBLIC_APP,
        "launch/patient patient/*.rs",
        &[],
    ))
    .await;
    let unknown = step(
        &h,
        &page,
        &[
            ("action", "login"),
            ("username", "mallory"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("Wrong user name or password"));
    let failures = h
        .events
        .kinds()
        .iter()
        .filter(|(k, _)| *k == AuthEventKind::LoginFailed)
        .count();
    assert_eq!(failures, 6);
    h.finish();
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn arbitrary_bearer_tokens_are_refused_without_panic(
            raw in proptest::collection::vec(any::<u8>(), 0..400),
            header in "[ -~]{0,60}",
            payload in "[ -~]{0,120}",
            sig in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let rt = runtime();
            rt.block_on(async {
                let h = Harness::start(Db::Sqlite).await;
                let text = String::from_utf8_lossy(&raw).into_owned();
                let shaped = format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(header.as_bytes()),
                    URL_SAFE_NO_PAD.encode(payload.as_bytes()),
                    URL_SAFE_NO_PAD.encode(&sig),
                );
                for token in [text.clone(), shaped, format!("plx_{text}")] {
                    prop_assert!(h.server.verify_bearer(&token).await.is_err());
                }
                h.finish();
                Ok(())
            })?;
        }

        #[test]
        fn arbitrary_endpoint_bodies_get_client_errors(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            forms in proptest::collection::vec(
                proptest::collection::vec(("(grant_type|code|client_id|scope|token|txn|csrf|action|refresh_token|client_assertion|client_assertion_type|redirect_uri|code_verifier|[a-z]{1,8})", "[ -~]{0,40}"), 0..8),
                1..8,
            ),
        ) {
            use tower::ServiceExt as _;
            let rt = runtime();
            rt.block_on(async {
                let h = Harness::start(Db::Sqlite).await;
                let router = h.server.router();
                let mut requests: Vec<Vec<u8>> = bodies;
                for f in forms {
                    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    requests.push(form(&pairs).into_bytes());
                }
                for body in requests {
                    for path in ["/auth/token", "/auth/introspect", "/auth/revoke", "/auth/authorize", "/auth/launch"] {
                        let request = axum::http::Request::post(path)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(axum::body::Body::from(body.clone()))
                            .unwrap();
                        let response = router.clone().oneshot(request).await.unwrap();
                        let status = response.status().as_u16();
                        prop_assert!((400..500).contains(&status), "{path}: {status}");
                    }
                }
                h.finish();
                Ok(())
            })?;
        }
    }
}
