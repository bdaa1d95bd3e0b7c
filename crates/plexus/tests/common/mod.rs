//! Helpers for the end-to-end tests: start `plexus serve` on a free port with a fresh store,
//! find the Python peers, make test certificates.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared third-party corpus of HL7 v2 messages, if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = root().join("../shared/corpus/hl7v2/fhir-converter");
    if d.exists() {
        Some(d)
    } else {
        eprintln!("skipped: the shared corpus {} is absent", d.display());
        None
    }
}

#[path = "../../../../tests/support/python.rs"]
mod support_python;

/// The Python interpreter of the test venv (see `tests/support/python.rs`).
pub fn python() -> Option<PathBuf> {
    support_python::venv_python(&root())
}

/// A fresh PostgreSQL schema name.
pub fn pg_schema(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("plexus_test_{tag}_{}_{nanos}", std::process::id())
}

/// The PostgreSQL server every machine runs.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Drops a schema (best effort).
pub fn drop_schema(schema: &str) {
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Which store a test server uses.
#[derive(Debug, Clone)]
pub enum StoreKind {
    /// SQLite in the server's directory.
    Sqlite,
    /// PostgreSQL in this schema.
    Postgres(String),
}

impl StoreKind {
    fn toml(&self, dir: &Path) -> String {
        match self {
            Self::Sqlite => format!(
                "[store]\nkind = \"sqlite\"\npath = {:?}\n",
                dir.join("data").display().to_string()
            ),
            Self::Postgres(schema) => {
                format!("[store]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{schema}\"\n")
            }
        }
    }

    /// The store configuration, to open the same store from the test.
    pub fn config(&self, dir: &Path) -> store::StoreConfig {
        match self {
            Self::Sqlite => store::StoreConfig::Sqlite(store::SqliteConfig::new(dir.join("data"))),
            Self::Postgres(schema) => {
                let mut c = store::PostgresConfig::new(PG_URL);
                c.schema.clone_from(schema);
                store::StoreConfig::Postgres(c)
            }
        }
    }
}

/// A running `plexus serve`.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub store: StoreKind,
}

impl Server {
    /// Starts `plexus serve` with one listener on a free port; `listener_extra` is appended to
    /// the `[[listener]]` table (e.g. timeouts, a `[listener.tls]` table).
    pub fn start(dir: &Path, store: StoreKind, listener_extra: &str) -> Self {
        let port = free_port();
        Self::start_on(dir, store, listener_extra, port)
    }

    /// Starts on a given port (to restart a server where its clients expect it).
    pub fn start_on(dir: &Path, store: StoreKind, listener_extra: &str, port: u16) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let config = dir.join("plexus.toml");
        let text = format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\n\n[fhir]\nbind = \"127.0.0.1:0\"\n\n[[listener]]\nchannel = \"test\"\nbind = \"127.0.0.1:{port}\"\n{listener_extra}\n",
            store.toml(dir)
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.join(format!(
            "serve-{}.log",
            Instant::now().elapsed().as_nanos() ^ u128::from(port)
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start plexus serve");
        let server = Self {
            child,
            port,
            dir: dir.to_path_buf(),
            log,
            store,
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(f) = std::fs::File::open(&self.log)
                && BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.contains("MLLP server listening"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "plexus serve did not start: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process dies at once, as in a power cut of the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "plexus serve exited with {status}: {}",
                    self.log_text()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("plexus serve did not stop on SIGTERM");
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A port nobody listens on now, below the kernel's ephemeral range: unlike a
/// [`free_port`], no outgoing connection (of this test or another one running at the same
/// time) can take it as its local port before the test binds it, so a server can be started,
/// or restarted, on it later.
pub fn fixed_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral <= LOW + 1_000 {
        return free_port();
    }
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..1_000 {
        let n = seed.wrapping_add(NEXT.fetch_add(7_919, Ordering::Relaxed));
        let port = u16::try_from(LOW + n % (ephemeral - LOW)).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral}");
}

/// Reads every message of the store (newest first), with their raw bytes.
pub async fn stored(config: &store::StoreConfig) -> Vec<store::StoredMessage> {
    use store::{Journal as _, Store as _};
    let s = store::AnyStore::open(config).await.expect("open store");
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let filter = store::MessageFilter {
            limit: Some(1000),
            before_id: before,
            ..store::MessageFilter::default()
        };
        let page = s.list(&filter).await.expect("list");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|m| m.id);
        for m in page {
            out.push(s.get(m.id).await.expect("get").expect("present"));
        }
    }
    s.close().await.expect("close");
    out
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, written as
/// PEM files into `dir`; plus a client certificate from another CA.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

impl Pki {
    /// Makes the certificates.
    pub fn new(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        std::fs::create_dir_all(dir).expect("pki dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Plexus Test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, cn: &str, issuer: &rcgen::Issuer<'_, KeyPair>| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(names).expect("params");
            p.distinguished_name.push(DnType::CommonName, cn);
            p.distinguished_name
                .push(DnType::OrganizationName, "Plexus Tests");
            let cert = p.signed_by(&key, issuer).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "plexus-server",
            &issuer,
        );
        let (client_pem, client_key) = leaf(vec![], "lab-system", &issuer);
        let rogue_ca_key = KeyPair::generate().expect("key");
        let mut rogue_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        rogue_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rogue_params
            .distinguished_name
            .push(DnType::CommonName, "Rogue CA");
        let rogue_issuer = rcgen::Issuer::new(rogue_params, rogue_ca_key);
        let (rogue_pem, rogue_key) = leaf(vec![], "intruder", &rogue_issuer);
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write pem");
            p
        };
        Self {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
            rogue_cert: write("rogue.pem", &rogue_pem),
            rogue_key: write("rogue.key", &rogue_key),
        }
    }
}

/// A Python peer from `tests/peers/` that prints `LISTENING <port>`; killed when dropped.
pub struct Peer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Peer {
    /// Starts `tests/peers/<script>` with `args` and waits for its port.
    pub fn start(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(python)
            .arg(root().join("tests/peers").join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python peer");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = line
            .trim()
            .trim_start_matches("LISTENING ")
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed {line:?}"));
        Self { child, port }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits the log of `tests/peers/mllp_ack_server.py` into the messages it recorded, each
/// exactly as received; a message still being written (no separator yet) is left out.
pub fn split_log(all: &[u8]) -> Vec<Vec<u8>> {
    let sep = b"=== END OF MESSAGE ===\n";
    let mut out = Vec::new();
    let mut rest = all;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(rest[..i].to_vec());
        rest = &rest[i + sep.len()..];
    }
    out
}

/// The messages an `mllp_ack_server.py` has logged so far (none if the log does not exist).
pub fn peer_messages(log: &Path) -> Vec<Vec<u8>> {
    split_log(&std::fs::read(log).unwrap_or_default())
}

/// Starts `tests/peers/mllp_ack_server.py` logging to `log`, on `port` (0: any free port).
pub fn mllp_peer(python: &Path, log: &Path, port: u16) -> Peer {
    let port = port.to_string();
    Peer::start(
        python,
        "mllp_ack_server.py",
        &[
            "--log".as_ref(),
            log.as_os_str(),
            "--port".as_ref(),
            port.as_ref(),
        ],
    )
}

/// Polls `check` every 50 ms until it gives a value; panics after `timeout` with `what` and
/// the last state `describe` gives.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; {}",
            describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`); returns the status and
/// the body. `None` when nothing answers.
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    http_as(port, method, path, body, None)
}

/// [`http`] with a bearer token.
pub fn http_as(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_mins(1))).ok()?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}");
    let request = match body {
        Some(b) => format!(
            "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => format!("{head}Content-Length: 0\r\n\r\n"),
    };
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `body` on a fresh PostgreSQL schema, dropped afterwards (also when `body` panics).
pub fn with_postgres(tag: &str, body: impl FnOnce(StoreKind)) {
    // PostgreSQL names have at most 63 characters
    let schema = pg_schema(&tag[..tag.len().min(24)]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        body(StoreKind::Postgres(schema.clone()));
    }));
    drop_schema(&schema);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A running `plexus serve` with a channels folder (`<dir>/channels`) and the admin API on
/// a fixed port; node name `test-node`, so that a restart takes its leases back at once.
/// Killed when dropped.
pub struct ChannelServer {
    child: Child,
    /// The admin API's port.
    pub admin_port: u16,
    /// The server's folder (plexus.toml, channels/, SQLite data, logs).
    pub dir: PathBuf,
    /// This run's log (stderr).
    pub log: PathBuf,
    /// The store.
    pub store: StoreKind,
    /// An API token of an admin user, for the admin API.
    pub token: String,
}

/// Runs `plexus --config CONFIG ARGS…`, which must succeed; returns its standard output.
pub fn plexus_cli(config: &Path, args: &[&str]) -> String {
    // In the config's folder, where serve runs: relative paths (a generated signing key
    // with PostgreSQL) land there, not in the source tree.
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(config.parent().unwrap_or(Path::new(".")))
        .output()
        .expect("run plexus");
    assert!(
        out.status.success(),
        "plexus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adds an admin user `tester` to the store of `config` and returns a new API token of it
/// with `scope` on the FHIR API.
pub fn admin_token(config: &Path, scope: &str) -> String {
    plexus_cli(config, &["user", "add", "tester", "--role", "admin"]);
    plexus_cli(
        config,
        &["token", "create", "--user", "tester", "--scope", scope],
    )
    .trim()
    .to_owned()
}

impl ChannelServer {
    /// Writes plexus.toml and the channel files (`(file stem, TOML)`) into `dir`, starts
    /// `plexus serve` and waits until its admin API answers (channels are deployed before).
    pub fn start(dir: &Path, store: StoreKind, channels: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir.join("channels")).expect("channels dir");
        for (name, text) in channels {
            write_channel(dir, name, text);
        }
        let admin_port = fixed_port();
        let config = format!(
            "node = \"test-node\"\nchannels = \"channels\"\n\n{}\n[admin]\nbind = \"127.0.0.1:{admin_port}\"\n\n[fhir]\nbind = \"127.0.0.1:0\"\n",
            store.toml(dir)
        );
        std::fs::write(dir.join("plexus.toml"), config).expect("write plexus.toml");
        Self::spawn(dir, store, admin_port)
    }

    /// Starts `plexus serve` again on the same folder, store and admin port.
    pub fn restart(dir: &Path, store: StoreKind, admin_port: u16) -> Self {
        Self::spawn(dir, store, admin_port)
    }

    fn spawn(dir: &Path, store: StoreKind, admin_port: u16) -> Self {
        let token = admin_token(&dir.join("plexus.toml"), "");
        let n = std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count());
        let log = dir.join(format!("serve-{n}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(dir.join("plexus.toml"))
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start plexus serve");
        let mut server = Self {
            child,
            admin_port,
            dir: dir.to_path_buf(),
            log,
            store,
            token,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = http(self.admin_port, "GET", "/readyz", None) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("plexus serve exited with {status}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_mins(1),
                "plexus serve did not get ready: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin API's base URL, for `plexus channel --admin`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// This run's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Rewrites a channel file (`channels/<name>.toml`).
    pub fn write_channel(&self, name: &str, text: &str) {
        write_channel(&self.dir, name, text);
    }

    /// A request to the admin API: status and body as JSON (a JSON string if not JSON).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let (status, text) = http_as(self.admin_port, method, path, body, Some(&self.token))
            .unwrap_or_else(|| panic!("the admin API does not answer {method} {path}"));
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }

    /// GET that must answer 200.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, v) = self.api("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// The text of `/metrics`.
    pub fn metrics(&self) -> String {
        let (status, text) = http(self.admin_port, "GET", "/metrics", None).expect("/metrics");
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The port a channel's source listens on, from the admin API.
    pub fn source_port(&self, channel: &str) -> u16 {
        let v = self.get(&format!("/api/channels/{channel}"));
        v["source"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("channel {channel} has no source address: {v}"))
    }

    /// Messages waiting in a destination's queue (ready + leased), from the admin API.
    pub fn queued(&self, channel: &str, destination: &str) -> u64 {
        let v = self.get(&format!("/api/channels/{channel}"));
        let d = v["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["name"] == destination)
            .unwrap_or_else(|| panic!("no destination {destination}: {v}"));
        d["queue"]["ready"].as_u64().unwrap_or(0) + d["queue"]["leased"].as_u64().unwrap_or(0)
    }

    /// How many messages of `channel` have `status` (one page of up to 10,000).
    pub fn count(&self, channel: &str, status: &str) -> usize {
        let v = self.get(&format!(
            "/api/messages?channel={channel}&status={status}&limit=10000"
        ));
        v["messages"].as_array().map_or(0, Vec::len)
    }

    /// The full record of the message of `channel` with this control id (the newest if
    /// several), from `GET /api/messages/{id}`.
    pub fn message_by_control_id(&self, channel: &str, control_id: &str) -> serde_json::Value {
        let v = self.get(&format!(
            "/api/messages?channel={channel}&control_id={control_id}&limit=1"
        ));
        let id = v["messages"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no message {control_id} in {channel}: {v}"))
            .to_owned();
        self.get(&format!("/api/messages/{id}"))
    }

    /// SIGKILL: the process dies at once.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let log = self.log_text();
        terminate(&mut self.child, &log);
    }
}

/// A `plexus serve` of a test's own `plexus.toml` with its APIs; killed when dropped.
pub struct Serve {
    pub child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `plexus serve` on `config`, in `dir`, with `env`; its output goes to a new
    /// `serve-N.log` in `dir`. Returns at once: see [`Serve::start`] to wait.
    pub fn spawn(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!(
            "serve-{}.log",
            std::fs::read_dir(dir).map_or(0, Iterator::count)
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start plexus serve");
        Self { child, log }
    }

    /// Starts `plexus serve` on `dir/plexus.toml` with `env` and waits until both the FHIR
    /// and the admin API log that they listen.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut serve = Self::spawn(dir, &dir.join("plexus.toml"), env);
        let start = Instant::now();
        loop {
            let text = serve.log_text();
            if text.contains("FHIR API listening") && text.contains("admin API listening") {
                return serve;
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("plexus serve exited with {status}: {text}");
            }
            assert!(
                start.elapsed() < Duration::from_mins(1),
                "plexus serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        let log = self.log_text();
        terminate(&mut self.child, &log);
    }
}

/// Sends SIGTERM to a `plexus serve` and asserts it exits cleanly within a minute (`log`: its
/// output so far, for the failure message).
pub fn terminate(child: &mut std::process::Child, log: &str) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_mins(1) {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "plexus serve exited with {status}: {log}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("plexus serve did not stop on SIGTERM: {log}");
}

impl Drop for ChannelServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_channel(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join("channels").join(format!("{name}.toml")), text)
        .expect("write channel file");
}
