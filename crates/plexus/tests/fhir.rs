//! End-to-end tests of the FHIR API of `plexus serve`: the real binary with a `[fhir]`
//! section, loaded by `plexus fhir synth`, then checked by an independent client,
//! `tests/peers/fhir_e2e.py` (Python `requests` + `fhir.resources` 6.4.0, FHIR R4), which
//! parses every resource the server returns with the R4 class of its type. On SQLite and on
//! PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PG_URL, StoreKind, fixed_port, http, python, root, with_postgres};

/// How many synthetic patients are loaded.
const PATIENTS: u64 = 20;

/// A running `plexus serve` with the FHIR API on a known port; killed when dropped.
struct FhirServe {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl FhirServe {
    /// Writes plexus.toml into `dir` (the store, the admin API on any port, the FHIR API on
    /// a free port) and starts `plexus serve`; waits until `/fhir/metadata` answers.
    fn start(dir: &Path, store: &StoreKind) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let port = fixed_port();
        let store_toml = match store {
            StoreKind::Sqlite => format!(
                "[store]\nkind = \"sqlite\"\npath = {:?}\n",
                dir.join("data").display().to_string()
            ),
            StoreKind::Postgres(schema) => {
                format!("[store]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{schema}\"\n")
            }
        };
        // An MLLP listener of its own: without one, serve listens on the default 2575, which
        // tests running at the same time would share.
        let mllp = fixed_port();
        let config = format!(
            "{store_toml}\n[admin]\nbind = \"127.0.0.1:0\"\n\n[fhir]\nenabled = true\nbind = \"127.0.0.1:{port}\"\ndefault_count = 20\nmax_count = 500\n\n[security]\nfhir_auth = false\n\n[[listener]]\nchannel = \"fhir-test\"\nbind = \"127.0.0.1:{mllp}\"\n"
        );
        std::fs::write(dir.join("plexus.toml"), config).expect("write plexus.toml");
        let log = dir.join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(dir.join("plexus.toml"))
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start plexus serve");
        let mut server = Self { child, port, log };
        let start = Instant::now();
        loop {
            if let Some((200, _)) = http(port, "GET", "/fhir/metadata", None) {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("plexus serve exited with {status}: {}", server.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_mins(1),
                "the FHIR API did not answer: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/fhir", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET that must answer 200 with JSON.
    fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(self.port, "GET", &format!("/fhir/{path}"), None)
            .unwrap_or_else(|| panic!("GET /fhir/{path}: no answer"));
        assert_eq!(status, 200, "GET /fhir/{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /fhir/{path}: {e}: {body}"))
    }

    /// The `total` of `path?_summary=count`.
    fn count(&self, path: &str) -> u64 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let b = self.get(&format!("{path}{sep}_summary=count"));
        b["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path}: no total in {b}"))
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let log = self.log_text();
        common::terminate(&mut self.child, &log);
    }
}

impl Drop for FhirServe {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `plexus fhir synth --patients N --server URL`, which must succeed.
fn synth(base: &str, patients: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args([
            "fhir",
            "synth",
            "--patients",
            &patients.to_string(),
            "--server",
            base,
        ])
        .output()
        .expect("run plexus fhir synth");
    assert!(
        out.status.success(),
        "plexus fhir synth failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The whole scenario on one store.
fn scenario(store: &StoreKind) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = FhirServe::start(dir.path(), store);
    let base = server.base();

    // The CapabilityStatement names the server's own base URL.
    let cs = server.get("metadata");
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(
        cs["implementation"]["url"],
        base.as_str(),
        "{}",
        cs["implementation"]
    );

    // Load the synthetic patients: each a transaction, so all of each or nothing.
    synth(&base, PATIENTS);
    assert_eq!(server.count("Patient"), PATIENTS);
    let mut expected: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for n in 0..PATIENTS {
        // Seed 1: the CLI's default.
        let bundle = fhir_server::synth::patient_bundle(1, n);
        for e in bundle["entry"].as_array().into_iter().flatten() {
            *expected
                .entry(
                    e["resource"]["resourceType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default() += 1;
        }
    }
    for (t, n) in &expected {
        assert_eq!(server.count(t), *n, "{t} after plexus fhir synth");
    }
    // Paging with the configured default page size (20) and max_count (500).
    let b = server.get("Observation");
    assert_eq!(
        b["entry"].as_array().map_or(0, Vec::len),
        20,
        "default_count"
    );
    let b = server.get("Observation?_count=100000");
    let observations = expected.get("Observation").copied().unwrap_or(0);
    assert_eq!(
        b["entry"].as_array().map_or(0, Vec::len) as u64,
        observations.min(500),
        "max_count"
    );

    // The independent client.
    if let Some(python) = python() {
        let script = root().join("tests/peers/fhir_e2e.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg(&base)
            .args(["--patients", &PATIENTS.to_string()])
            .output()
            .expect("run tests/peers/fhir_e2e.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("fhir_e2e.py: {stdout}{stderr}");
        assert!(
            out.status.success(),
            "tests/peers/fhir_e2e.py failed ({}) against {base}:\n{stdout}\n{stderr}\nserver log:\n{}",
            out.status,
            server.log_text()
        );
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    }
    server.stop();
}

#[test]
fn synth_and_independent_client_on_sqlite() {
    scenario(&StoreKind::Sqlite);
}

#[test]
fn synth_and_independent_client_on_postgres() {
    with_postgres("fhir_e2e", |store| scenario(&store));
}

#[test]
fn fhir_api_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = fixed_port();
    let data = dir.path().join("data");
    let config = format!(
        "[store]\nkind = \"sqlite\"\npath = {:?}\n\n[admin]\nbind = \"127.0.0.1:0\"\n\n[fhir]\nenabled = false\nbind = \"127.0.0.1:{port}\"\n\n[[listener]]\nchannel = \"fhir-test\"\nbind = \"127.0.0.1:{mllp}\"\n",
        data.display().to_string(),
        mllp = fixed_port()
    );
    std::fs::write(dir.path().join("plexus.toml"), config).expect("write plexus.toml");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("--config")
        .arg(dir.path().join("plexus.toml"))
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start plexus serve");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("admin API listening")
    {
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "plexus serve did not start"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "plexus serve exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        http(port, "GET", "/fhir/metadata", None).is_none(),
        "[fhir] enabled = false still serves the FHIR API"
    );
    let _ = child.kill();
    let _ = child.wait();
}
