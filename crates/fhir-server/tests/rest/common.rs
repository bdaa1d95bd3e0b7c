//! The server under test: `fhir_server::mount` at `/fhir` on a real socket, on a
//! fresh SQLite directory or a fresh PostgreSQL schema (dropped again when the test ends,
//! also when it fails), and an HTTP/1.1 client that checks what every error must look like.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use store::{AnyStore, PostgresConfig, SqliteConfig, StoreConfig};

/// Runs one `async fn(&TestServer)` test on SQLite and on PostgreSQL: each becomes a module
/// with the tests `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await;
                    super::$name(&server).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Postgres).await;
                    super::$name(&server).await;
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temporary directory.
    Sqlite,
    /// PostgreSQL in a fresh schema.
    Postgres,
}

/// The PostgreSQL server the tests use (`PLEXUS_TEST_POSTGRES_URL`, by default the local
/// one with trust auth).
pub use testkit::postgres_url;

/// A PostgreSQL schema dropped when this is dropped (on a thread of its own: a drop cannot
/// await, and it also runs while a failing test unwinds).
struct PgSchema {
    url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        testkit::drop_schema(&self.url, &self.schema);
    }
}

/// Where the store lives; removed on drop.
enum Place {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgSchema),
}

/// A running FHIR server and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:port/fhir`.
    pub base: String,
    /// The backend.
    pub backend: Backend,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The bearer token sent with every request, if any.
    bearer: std::sync::Mutex<Option<String>>,
    task: tokio::task::JoinHandle<()>,
    // Last: dropped after the server task was aborted.
    _place: Place,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Opens a fresh store of `backend` and serves the FHIR API on a free port.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, fhir_server::Security::default()).await
    }

    /// [`TestServer::start`] with authorization and an access log.
    pub async fn start_with(backend: Backend, security: fhir_server::Security) -> Self {
        let (config, place) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                (
                    StoreConfig::Sqlite(SqliteConfig::new(dir.path())),
                    Place::Sqlite(dir),
                )
            }
            Backend::Postgres => {
                let url = postgres_url();
                let schema = format!(
                    "plexus_test_fhir_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let mut c = PostgresConfig::new(url.clone());
                c.schema.clone_from(&schema);
                c.pool_size = 8;
                (
                    StoreConfig::Postgres(c),
                    Place::Postgres(PgSchema { url, schema }),
                )
            }
        };
        let store = AnyStore::open(&config).await.expect("open the store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let base = format!("http://{addr}/fhir");
        let app = fhir_server::mount_with(
            "/fhir",
            Arc::new(store),
            fhir_server::FhirConfig::new(base.clone()),
            security,
        );
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build_http();
        Self {
            base,
            backend,
            client,
            bearer: std::sync::Mutex::new(None),
            task,
            _place: place,
        }
    }

    /// Sends `token` as the bearer token from now on (`None`: no Authorization header).
    pub fn use_token(&self, token: Option<&str>) {
        *self.bearer.lock().expect("token lock") = token.map(str::to_owned);
    }

    /// The absolute URL of `path`: relative to the base (`Patient/1`; `?q` and `/?q` are the
    /// base itself with a query, without and with a trailing slash), or already absolute.
    pub fn url(&self, path: &str) -> String {
        let url = if path.starts_with("http://") {
            path.to_owned()
        } else if path.starts_with(['/', '?']) || path.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        };
        escape(&url)
    }

    /// One request. A body is sent as `application/fhir+json` unless `headers` name another
    /// Content-Type. Every error answer is checked to be an OperationOutcome sent as
    /// `application/fhir+json`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = self.url(path);
        let mut req = hyper::Request::builder().method(method).uri(&url);
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_ct {
            req = req.header("content-type", "application/fhir+json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bearer = self.bearer.lock().expect("token lock").clone();
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = self
            .client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("read the body")
            .to_bytes();
        let resp = Resp {
            what: format!("{method} {url}"),
            status,
            headers,
            body,
        };
        if status >= 400 {
            resp.assert_outcome();
        }
        resp
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], None).await
    }

    /// GET with headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.call("GET", path, headers, None).await
    }

    /// POST a JSON value.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call("POST", path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    /// POST a JSON value with headers.
    pub async fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        self.call("POST", path, headers, Some(body.to_string().into_bytes()))
            .await
    }

    /// PUT a JSON value.
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call("PUT", path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    /// PUT a JSON value with headers.
    pub async fn put_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        self.call("PUT", path, headers, Some(body.to_string().into_bytes()))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, &[], None).await
    }

    /// Creates a resource (POST), which must answer 201; returns the stored resource.
    pub async fn create(&self, resource: &Value) -> Value {
        let t = resource["resourceType"].as_str().expect("resourceType");
        let r = self.post(t, resource).await;
        r.expect(201).json()
    }

    /// Stores a resource under its own id (PUT, create-on-update); returns it as stored.
    pub async fn put_resource(&self, resource: &Value) -> Value {
        let t = resource["resourceType"].as_str().expect("resourceType");
        let id = resource["id"].as_str().expect("id");
        let r = self.put(&format!("{t}/{id}"), resource).await;
        assert!(
            r.status == 201 || r.status == 200,
            "{}: {} {}",
            r.what,
            r.status,
            r.text()
        );
        r.json()
    }

    /// A search that must answer 200 with a searchset Bundle.
    pub async fn search(&self, path: &str) -> Value {
        let b = self.get(path).await.expect(200).json();
        assert_eq!(b["resourceType"], "Bundle", "GET {path}: {b}");
        assert_eq!(b["type"], "searchset", "GET {path}: {b}");
        b
    }

    /// The ids of the `match` entries of a search, in order (one page).
    pub async fn ids(&self, path: &str) -> Vec<String> {
        match_ids(&self.search(path).await)
    }

    /// The ids of the `match` entries of a search, sorted (one page).
    pub async fn sorted_ids(&self, path: &str) -> Vec<String> {
        let mut ids = self.ids(path).await;
        ids.sort();
        ids
    }
}

/// The `match` entries' ids of a searchset Bundle, in order.
pub fn match_ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] != "include")
        .map(|e| e["resource"]["id"].as_str().expect("entry id").to_owned())
        .collect()
}

/// `Type/id` of the `include` entries of a searchset Bundle, sorted.
pub fn included(bundle: &Value) -> Vec<String> {
    let mut v: Vec<String> = entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| type_id(&e["resource"]))
        .collect();
    v.sort();
    v
}

/// `Type/id` of a resource.
pub fn type_id(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap_or("?"),
        r["id"].as_str().unwrap_or("?")
    )
}

/// The entries of a Bundle (none when it has none).
pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// The URL of a Bundle's link with this relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// Percent-encodes what may not stand in a URI as it is (non-ASCII, `|`, spaces, …), so
/// tests can write `identifier=sys|value` and `name=Müller`; `%` is kept (already encoded).
fn escape(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b <= b' ' || b >= 0x7f || b"|\"<>`{}^\\".contains(&b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Sorted owned strings.
pub fn set(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    /// `METHOD url`, for messages.
    pub what: String,
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Resp {
    /// Asserts the status; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "{} answered {} (expected {status}): {}",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: the body is not JSON ({e}): {}", self.what, self.text())
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the answer is an OperationOutcome sent as `application/fhir+json`.
    #[track_caller]
    pub fn assert_outcome(&self) {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/fhir+json"),
            "{} answered {} with Content-Type {ct:?}: {}",
            self.what,
            self.status,
            self.text()
        );
        let v = self.json();
        assert_eq!(
            v["resourceType"], "OperationOutcome",
            "{} answered {} without an OperationOutcome: {v}",
            self.what, self.status
        );
        let issues = v["issue"].as_array().map_or(0, Vec::len);
        assert!(
            issues > 0,
            "{}: an OperationOutcome without issues: {v}",
            self.what
        );
    }

    /// The `expression`s (and `location`s) of the OperationOutcome's issues, joined.
    pub fn issue_expressions(&self) -> Vec<String> {
        let v = self.json();
        let mut out = Vec::new();
        for issue in v["issue"].as_array().into_iter().flatten() {
            for key in ["expression", "location"] {
                for e in issue[key].as_array().into_iter().flatten() {
                    if let Some(s) = e.as_str() {
                        out.push(s.to_owned());
                    }
                }
            }
        }
        out
    }
}
