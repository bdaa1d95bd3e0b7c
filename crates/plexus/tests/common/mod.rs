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
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\n\n[[listener]]\nchannel = \"test\"\nbind = \"127.0.0.1:{port}\"\n{listener_extra}\n",
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
