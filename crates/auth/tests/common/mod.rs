//! The authorization server on a real socket, on SQLite (a temp dir) or PostgreSQL (a fresh
//! schema, dropped at the end), with a small HTTP client and helpers for the flows.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use auth::jwt::SigningKey;
use auth::principal::Role;
use auth::{AuthConfig, AuthEvent, AuthEvents, AuthServer, ClientKind, ClientRegistration};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use store::{AnyStore, ResourceWrite, Resources as _, StoreConfig, WriteOp};

/// Events the server reported.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<AuthEvent>>);

impl AuthEvents for Recorder {
    fn record(&self, event: AuthEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn kinds(&self) -> Vec<(auth::AuthEventKind, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.kind, e.detail.clone().unwrap_or_default()))
            .collect()
    }
}

pub use testkit::postgres_url;

/// Which store a harness runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Harness {
    pub server: Arc<AuthServer>,
    pub store: Arc<AnyStore>,
    pub events: Arc<Recorder>,
    pub base: String,
    pub issuer: String,
    pub dir: tempfile::TempDir,
    schema: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

pub const PUBLIC_APP: &str = "public-app";
pub const REDIRECT: &str = "https://app.example/callback";
pub const CONFIDENTIAL_APP: &str = "confidential-app";
pub const BACKEND: &str = "backend-service";
pub const PASSWORD: &str = "correct horse battery staple";

impl Harness {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// Starts with the settings changed by `adjust` (a configured signing key, …).
    pub async fn start_with(db: Db, adjust: impl FnOnce(&mut AuthConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (config, schema) = match db {
            Db::Sqlite => (
                json!({"kind": "sqlite", "path": dir.path().join("db")}),
                None,
            ),
            Db::Postgres => {
                let schema = format!(
                    "plexus_auth_{}",
                    auth::secret::random_token(9)
                        .unwrap()
                        .to_lowercase()
                        .replace(['-', '_'], "x")
                );
                (
                    json!({"kind": "postgres", "url": postgres_url(), "schema": schema, "pool_size": 4}),
                    Some(schema),
                )
            }
        };
        let config: StoreConfig = serde_json::from_value(config).unwrap();
        let store = Arc::new(AnyStore::open(&config).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let issuer = format!("{base}/fhir");
        let events = Arc::new(Recorder::default());
        let mut auth_config = AuthConfig::new(&issuer, format!("{base}/auth"), dir.path());
        adjust(&mut auth_config);
        let server = AuthServer::new(auth_config, Arc::clone(&store), events.clone()).unwrap();
        let app = axum::Router::new()
            .merge(server.router())
            .nest("/fhir", server.smart_router());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            server,
            store,
            events,
            base,
            issuer,
            dir,
            schema,
            task,
        }
    }

    /// Stops the server and drops the PostgreSQL schema (also done on drop, when a test
    /// fails before it gets here).
    pub fn finish(mut self) {
        self.task.abort();
        if let Some(schema) = self.schema.take() {
            testkit::drop_schema(&postgres_url(), &schema);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token_endpoint(&self) -> String {
        self.url("/auth/token")
    }

    /// The server's own signing key, read from its data directory (to forge tokens that
    /// differ from valid ones in one claim only).
    pub fn server_key(&self) -> SigningKey {
        let pem = std::fs::read(self.dir.path().join("auth-signing-key.pem")).unwrap();
        SigningKey::from_pem(&pem).unwrap()
    }

    /// A user `alice` (password [`PASSWORD`]), an admin `root` and the standard clients.
    pub async fn setup(&self) -> Setup {
        let s = &self.server;
        s.add_user(
            "alice",
            Some(PASSWORD),
            &[Role::ReadOnly],
            Some("Practitioner/prac-1"),
        )
        .await
        .unwrap();
        s.add_user("root", Some("root-password-1"), &[Role::Admin], None)
            .await
            .unwrap();
        s.add_user("viewer", Some("viewer-password"), &[Role::Operator], None)
            .await
            .unwrap();
        s.register_client(ClientRegistration {
            client_id: PUBLIC_APP.into(),
            name: Some("Public <App>".into()),
            kind: ClientKind::Public,
            redirect_uris: vec![REDIRECT.into(), "http://127.0.0.1:9/cb?x=1".into()],
            scopes: "launch launch/patient openid fhirUser offline_access online_access patient/*.rs user/*.rs".into(),
            jwks: None,
            jwks_uri: None,
        })
        .await
        .unwrap();
        let secret = s
            .register_client(ClientRegistration {
                client_id: CONFIDENTIAL_APP.into(),
                name: None,
                kind: ClientKind::ConfidentialSymmetric,
                redirect_uris: vec![REDIRECT.into()],
                scopes: "launch launch/patient openid fhirUser offline_access patient/*.rs".into(),
                jwks: None,
                jwks_uri: None,
            })
            .await
            .unwrap()
            .unwrap();
        let (backend_key, _) = SigningKey::generate().unwrap();
        let mut jwk = backend_key.public().to_jwk();
        jwk["kid"] = "backend-key-1".into();
        s.register_client(ClientRegistration {
            client_id: BACKEND.into(),
            name: None,
            kind: ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: "system/*.rs system/Observation.cruds".into(),
            jwks: Some(json!({"keys": [jwk]})),
            jwks_uri: None,
        })
        .await
        .unwrap();
        let admin_token = s
            .create_api_token(
                "root",
                "tests",
                "user/*.rs",
                std::time::Duration::from_mins(10),
            )
            .await
            .unwrap();
        let patients = self.add_patients().await;
        Setup {
            secret,
            backend_key,
            admin_token,
            patients,
        }
    }

    /// Two patients; their ids.
    pub async fn add_patients(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (id, family, given) in [
            ("pat-1", "Testpatient", "Amy"),
            ("pat-2", "Otherperson", "Bob"),
        ] {
            let resource = json!({
                "resourceType": "Patient", "id": id,
                "name": [{"family": family, "given": [given]}],
            });
            let index = fhir::index::extract(&resource).unwrap();
            let out = self
                .store
                .write(vec![ResourceWrite {
                    op: WriteOp::Create,
                    resource_type: "Patient".into(),
                    id: id.into(),
                    resource: Some(resource),
                    index,
                    precondition: store::Precondition::None,
                }])
                .await
                .unwrap();
            assert!(!out[0].is_failure());
            ids.push(id.to_owned());
        }
        ids
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
        // a failed test: the schema was not dropped by `finish`
        if let Some(schema) = self.schema.take() {
            testkit::drop_schema(&postgres_url(), &schema);
        }
    }
}

pub struct Setup {
    pub secret: String,
    pub backend_key: SigningKey,
    pub admin_token: String,
    pub patients: Vec<String>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `value` of `<input … name="{name}" value="…">` in an HTML page.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }

    /// The query parameters of the `Location` of a redirect.
    pub fn location_params(&self) -> Vec<(String, String)> {
        let loc = self.header("location").unwrap_or_default();
        let query = loc.split_once('?').map(|(_, q)| q).unwrap_or_default();
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn location_param(&self, name: &str) -> Option<String> {
        self.location_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Sends one request.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn post_form(url: &str, pairs: &[(&str, &str)]) -> Answer {
    post_form_with(url, &[], pairs).await
}

pub async fn post_form_with(url: &str, headers: &[(&str, &str)], pairs: &[(&str, &str)]) -> Answer {
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    send("POST", url, &h, form(pairs)).await
}

pub async fn get(url: &str) -> Answer {
    send("GET", url, &[], Bytes::new()).await
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The query of an authorization request (PKCE S256 with [`VERIFIER`]), with overrides.
pub fn authorize_url(h: &Harness, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-42"),
        ("aud", &h.issuer),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("{}?{}", h.url("/auth/authorize"), form(&pairs))
}

/// Posts a step of the authorization pages, with the txn and csrf of `page`.
pub async fn step(h: &Harness, page: &Answer, fields: &[(&str, &str)]) -> Answer {
    let txn = page.input("txn").expect("the page has a txn");
    let csrf = page.input("csrf").expect("the page has a csrf token");
    let mut pairs = vec![("txn", txn.as_str()), ("csrf", csrf.as_str())];
    pairs.extend_from_slice(fields);
    post_form(&h.url("/auth/authorize"), &pairs).await
}

/// Signs in as alice, picks `patient` if asked, approves; the redirect.
pub async fn login_and_approve(h: &Harness, url: &str, patient: Option<&str>) -> Answer {
    let page = get(url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut page = step(
        h,
        &page,
        &[
            ("action", "login"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    if page.body.contains("Select a patient") {
        let p = patient.expect("a patient to pick");
        let found = step(h, &page, &[("action", "search"), ("q", "testpatient")]).await;
        assert!(
            found.body.contains(&format!("value=\"{p}\"")),
            "{}",
            found.body
        );
        page = step(h, &found, &[("action", "pick"), ("patient", p)]).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    assert!(page.body.contains("Allow access?"), "{}", page.body);
    step(h, &page, &[("action", "approve")]).await
}

/// Exchanges `code` for tokens as the public app.
pub async fn exchange(h: &Harness, code: &str, verifier: &str) -> Answer {
    post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", PUBLIC_APP),
        ],
    )
    .await
}

/// A full standalone launch for the public app: the token response.
pub async fn tokens(h: &Harness, scope: &str) -> Value {
    let redirect =
        login_and_approve(h, &authorize_url(h, PUBLIC_APP, scope, &[]), Some("pat-1")).await;
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    let code = redirect.location_param("code").unwrap();
    let answer = exchange(h, &code, VERIFIER).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

pub fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A client assertion for the backend client, with claim overrides (`null` removes one).
pub fn assertion(h: &Harness, key: &SigningKey, kid: &str, overrides: Value) -> String {
    let mut claims = json!({
        "iss": BACKEND, "sub": BACKEND, "aud": h.token_endpoint(),
        "exp": now_secs() + 240, "iat": now_secs(),
        "jti": auth::secret::random_token(12).unwrap(),
    });
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(&k);
            } else {
                claims[k] = v;
            }
        }
    }
    sign_with_kid(key, kid, &claims)
}

/// Signs `claims` with `key` under a header naming `kid`.
pub fn sign_with_kid(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": key.alg().as_str(), "kid": kid, "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    resign(key, &header, &payload)
}

/// `header.payload` signed with `key` (the server key's signing, on our own input).
pub fn resign(key: &SigningKey, header_b64: &str, payload_b64: &str) -> String {
    auth::jwt::sign_input(key, &format!("{header_b64}.{payload_b64}")).unwrap()
}

pub async fn backend_token(h: &Harness, assertion: &str, scope: &str) -> Answer {
    post_form(
        &h.token_endpoint(),
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", auth::JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}
