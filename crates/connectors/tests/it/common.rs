//! Shared helpers: a recording engine, fields, certificates and the Python peers.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectors::{Inbound, Receipt, Submit};
use futures_util::future::BoxFuture;

/// Upper bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Fields from `(name, value)` pairs.
pub fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An engine stand-in: records every message; refuses those containing `REJECT`, fails to
/// store those containing `STOREFAIL`, accepts the rest with an ACK-like response `ACK:<n>`.
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<Inbound>>,
    /// When set, each submit waits for a permit.
    pub gate: Option<tokio::sync::Semaphore>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn gated() -> Arc<Self> {
        Arc::new(Self {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Self::default()
        })
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|i| String::from_utf8_lossy(&i.bytes).into_owned())
            .collect()
    }

    pub fn last(&self) -> Inbound {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing submitted")
    }
}

impl Submit for Recorder {
    fn submit(&self, inbound: Inbound) -> BoxFuture<'_, Receipt> {
        Box::pin(async move {
            let n = {
                let mut seen = self.seen.lock().unwrap();
                seen.push(inbound.clone());
                seen.len()
            };
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            if inbound.bytes.windows(6).any(|w| w == b"REJECT") {
                Receipt::refused(format!("msg-{n}"), "the test engine refuses REJECT")
            } else if inbound.bytes.windows(9).any(|w| w == b"STOREFAIL") {
                Receipt::not_stored("the test store is down")
            } else {
                Receipt::accepted(format!("msg-{n}")).with_response(
                    format!("ACK:{n}").into_bytes(),
                    Some("application/hl7-v2".into()),
                )
            }
        })
    }
}

/// Waits until `condition` holds (checked every 10 ms), failing after [`PATIENCE`].
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// `python3` (standard library only, so no venv): a failure in CI when missing, else `None`
/// after saying the test is skipped.
pub fn python() -> Option<PathBuf> {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from("python3"));
    }
    assert!(std::env::var_os("CI").is_none(), "python3 is missing");
    eprintln!("skipped: no python3");
    None
}

/// `curl`, if installed.
pub fn curl() -> Option<PathBuf> {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        Some(PathBuf::from("curl"))
    } else {
        eprintln!("skipped: no curl");
        None
    }
}

/// Runs `python3 tests/peers/http_client.py` with `args`, sending `requests` (a JSON list);
/// returns the JSON list of results.
pub async fn python_client(
    python: &Path,
    args: Vec<String>,
    requests: serde_json::Value,
) -> Vec<serde_json::Value> {
    let python = python.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python)
            .arg(peer_script("http_client.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(requests.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "http_client.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// The Python HTTP server peer, killed when dropped.
pub struct PythonServer {
    child: Child,
    pub port: u16,
}

impl PythonServer {
    pub fn start(python: &Path, args: &[&Path]) -> Self {
        let mut command = Command::new(python);
        command.arg(peer_script("http_server.py"));
        for (flag, value) in ["--cert", "--key", "--client-ca"].iter().zip(args) {
            command.arg(flag).arg(value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("unexpected peer output {line:?}"))
            .parse()
            .unwrap();
        Self { child, port }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[path = "../../../../tests/support/pki.rs"]
mod pki;
pub use pki::Pki;
