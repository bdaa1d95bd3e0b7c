//! The admin API against its description and a real engine.
//!
//! - [`openapi`]: `openapi.json` documents exactly the routes of [`super::routes`], completely,
//!   and is valid OpenAPI 3.1 (checked by `openapi-spec-validator`).
//! - [`endpoints`]: every endpoint driven through the router with `oneshot` over an engine on
//!   a SQLite store; every answer is checked against the document (status documented for the
//!   operation, JSON body valid for its schema, no undocumented field).
//! - [`rbac`]: every endpoint × every role, with real API tokens, and the audit records.
//!
//! This module holds the engine the tests (the alert tests too) run on.

#![allow(clippy::unwrap_used)]

mod endpoints;
mod openapi;
mod rbac;

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use store::{AnyStore, Journal as _, MessageId, NewMessage, SqliteConfig, Status, StoreConfig};

use super::{AdminState, router};

// ---------------------------------------------------------------------------------------
// An engine on a fresh SQLite store (shared with the alert tests)

/// An engine on a fresh SQLite store, with a channels folder and an output folder in one
/// temporary directory.
pub(crate) struct TestEngine {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) engine: Arc<engine::Engine>,
    pub(crate) store: Arc<AnyStore>,
}

impl TestEngine {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        let config = StoreConfig::Sqlite(SqliteConfig::new(dir.path().join("data")));
        let store = Arc::new(AnyStore::open(&config).await.unwrap());
        let engine = engine::Engine::new(
            Arc::clone(&store),
            engine::EngineConfig {
                node: "test".into(),
                lease: Duration::from_secs(30),
                idle_poll: Duration::from_millis(50),
            },
        );
        Self { dir, engine, store }
    }

    pub(crate) fn channels_dir(&self) -> PathBuf {
        self.dir.path().join("channels")
    }

    /// A folder for a file writer's output.
    pub(crate) fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// Writes `channels/NAME.toml`.
    pub(crate) fn write_channel(&self, name: &str, text: &str) -> PathBuf {
        let path = self.channels_dir().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the channel file and deploys it.
    pub(crate) async fn deploy(&self, name: &str, text: &str) {
        let path = self.write_channel(name, text);
        let config = engine::ChannelConfig::load(&path).unwrap();
        self.engine.deploy(config).await.unwrap();
    }

    pub(crate) fn router(&self) -> Router {
        router(AdminState {
            engine: Arc::clone(&self.engine),
            channels_dir: Some(self.channels_dir()),
            auth: None,
            audit: None,
            oidc: None,
        })
    }

    /// Accepts a message and waits until every destination has a result.
    pub(crate) async fn accept_processed(&self, m: NewMessage) -> MessageId {
        let id = self.engine.accept(m).await.unwrap();
        self.wait_status(id, engine::is_final).await;
        id
    }

    /// Waits until message `id`'s status satisfies `done`; returns it.
    pub(crate) async fn wait_status(&self, id: MessageId, done: impl Fn(Status) -> bool) -> Status {
        let store = Arc::clone(&self.store);
        wait_for(
            &format!("message {id} to reach the expected status"),
            || {
                let store = Arc::clone(&store);
                let done = &done;
                async move {
                    let status = store.get(id).await.unwrap()?.summary.status;
                    done(status).then_some(status)
                }
            },
        )
        .await
    }

    /// Messages waiting (ready + leased) in a destination's queue.
    pub(crate) async fn queued(&self, channel: &str, destination: &str) -> u64 {
        self.engine
            .queue_depths()
            .await
            .into_iter()
            .find(|(c, d, _)| c == channel && d == destination)
            .map_or(0, |(_, _, n)| n)
    }
}

/// Polls `f` every 20 ms until it gives a value; panics after 20 s.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HL7 v2 message for `channel` with its header fields and MRN metadata filled in, as a
/// source would store it.
pub(crate) fn hl7(channel: &str, kind: &str, control_id: &str, mrn: &str) -> NewMessage {
    let (message_type, event) = kind.split_once('^').unwrap_or((kind, ""));
    let raw = format!(
        "MSH|^~\\&|REG|HOSP|LAB|HOSP|20250301100000||{kind}|{control_id}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||DOE^JANE\r"
    );
    let mut m = NewMessage::new(channel, raw.into_bytes()).with_metadata("MRN", mrn);
    m.message_type = Some(message_type.into());
    m.trigger_event = Some(event.into()).filter(|e: &String| !e.is_empty());
    m.control_id = Some(control_id.into());
    m.sending_application = Some("REG".into());
    m.sending_facility = Some("HOSP".into());
    m
}

/// A channel without a source whose destinations write files into `out/NAME`.
pub(crate) fn file_channel(t: &TestEngine, destinations: &[&str], extra: &str) -> String {
    let mut text =
        format!("description = \"test channel\"\nmetadata = {{ MRN = \"PID-3-1\" }}\n{extra}\n");
    for d in destinations {
        let _ = write!(
            text,
            "[[destination]]\nname = \"{d}\"\n[destination.file]\ndirectory = \"{}\"\n\
             name = \"${{messageId}}.hl7\"\n[destination.queue]\ninitial_backoff = \"10ms\"\n\n",
            t.out(d).display()
        );
    }
    text
}

pub(crate) fn files_in(dir: &FsPath) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    })
}
