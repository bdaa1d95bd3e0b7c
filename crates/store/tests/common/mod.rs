//! Backends under test: a fresh SQLite data directory, or a fresh PostgreSQL schema that is
//! dropped again when the test ends (also when it fails).
//!
//! PostgreSQL is reached at `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (trust auth; the server runs in CI too).

#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;

use store::{
    MessageId, NewMessage, PgStore, PostgresConfig, SqliteConfig, SqliteStore, Store, StoreError,
    Timestamp,
};

/// The id of the message [`Backend::create_version_1`] stores.
pub const V1_MESSAGE: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
/// The channel of [`V1_MESSAGE`].
pub const V1_CHANNEL: &str = "old";
/// The queue [`V1_MESSAGE`] waits on (destination 1, READY).
pub const V1_QUEUE: &str = "old/1";

/// The PostgreSQL server the tests use.
pub use testkit::postgres_url;

/// A place a store lives, that a test can open (again and again) and poke at directly.
pub trait Backend: Send + Sync + Sized + 'static {
    /// The store type.
    type S: Store + std::fmt::Debug + 'static;

    /// A new, empty place.
    fn create() -> impl Future<Output = Self> + Send;

    /// Opens a store on it.
    fn open(&self) -> impl Future<Output = Result<Self::S, StoreError>> + Send;

    /// The versions recorded in `plexus_migrations`.
    fn migration_versions(&self) -> impl Future<Output = Vec<i64>> + Send;

    /// Records a migration version, as a newer Plexus would.
    fn record_version(&self, version: i64) -> impl Future<Output = ()> + Send;

    /// Makes every insert of a queue item into `queue` fail inside the database.
    fn fail_inserts_into(&self, queue: &str) -> impl Future<Output = ()> + Send;

    /// Creates a database as Plexus wrote it at schema version 1 (only migration 0001, by raw
    /// SQL) holding [`V1_MESSAGE`], with metadata `MRN=1`, RAW content `MSH|old` and a READY
    /// item on [`V1_QUEUE`].
    fn create_version_1(&self) -> impl Future<Output = ()> + Send;

    /// How many rows of `table` belong to `message` (by `message_id`).
    fn count_rows(&self, table: &str, message: MessageId) -> impl Future<Output = i64> + Send;

    /// The configuration of a store here, with `encryption` (for `AnyStore::open`).
    fn store_config(&self, encryption: Option<store::EncryptionConfig>) -> store::StoreConfig;
}

/// A fresh SQLite data directory, deleted at the end.
pub struct Sqlite {
    pub dir: tempfile::TempDir,
}

impl Sqlite {
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.dir.path().join(SqliteConfig::DB_FILE))
            .expect("open the test database");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    async fn create() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    async fn open(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(&SqliteConfig::new(self.dir.path())).await
    }

    async fn migration_versions(&self) -> Vec<i64> {
        let conn = self.db();
        let mut stmt = conn
            .prepare("SELECT version FROM plexus_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    async fn record_version(&self, version: i64) {
        self.db()
            .execute(
                "INSERT INTO plexus_migrations (version, applied_at) VALUES (?1, 0)",
                [version],
            )
            .unwrap();
    }

    async fn fail_inserts_into(&self, queue: &str) {
        self.db()
            .execute_batch(&format!(
                "CREATE TRIGGER fail_{queue} BEFORE INSERT ON queue_items \
                 WHEN NEW.queue = '{queue}' BEGIN SELECT RAISE(ABORT, 'refused by test'); END;"
            ))
            .unwrap();
    }

    async fn create_version_1(&self) {
        let conn = self.db();
        conn.execute_batch(
            "CREATE TABLE plexus_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at INTEGER NOT NULL
             );
             INSERT INTO plexus_migrations (version, applied_at) VALUES (1, 0);",
        )
        .unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO messages (id, channel, received_at, status)
                 VALUES ('{V1_MESSAGE}', '{V1_CHANNEL}', 1767268800000000, 'RECEIVED');
             INSERT INTO message_metadata (message_id, seq, key, value)
                 VALUES ('{V1_MESSAGE}', 0, 'MRN', '1');
             INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
                 VALUES ('{V1_MESSAGE}', 0, 'RAW', 1767268800000000, CAST('MSH|old' AS BLOB));
             INSERT INTO queue_items (queue, message_id, destination, attempts, available_at,
                 state, created_at)
                 VALUES ('{V1_QUEUE}', '{V1_MESSAGE}', 1, 0, 0, 'READY', 0);"
        ))
        .unwrap();
    }

    fn store_config(&self, encryption: Option<store::EncryptionConfig>) -> store::StoreConfig {
        store::StoreConfig::Sqlite(SqliteConfig {
            encryption,
            ..SqliteConfig::new(self.dir.path())
        })
    }

    async fn count_rows(&self, table: &str, message: MessageId) -> i64 {
        self.db()
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE message_id = ?1"),
                [message.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    }
}

/// A fresh PostgreSQL schema with a random name, dropped at the end.
pub struct Postgres {
    pub url: String,
    pub schema: String,
}

impl Postgres {
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: self.url.clone(),
            schema: self.schema.clone(),
            pool_size: 8,
            encryption: None,
        }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .unwrap();
        client
    }
}

impl Backend for Postgres {
    type S = PgStore;

    async fn create() -> Self {
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        Self {
            url: postgres_url(),
            schema: format!("plexus_test_{suffix}"),
        }
    }

    async fn open(&self) -> Result<PgStore, StoreError> {
        PgStore::open(&self.config()).await
    }

    async fn migration_versions(&self) -> Vec<i64> {
        self.client()
            .await
            .query(
                "SELECT version FROM plexus_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    async fn record_version(&self, version: i64) {
        self.client()
            .await
            .execute(
                "INSERT INTO plexus_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .unwrap();
    }

    async fn fail_inserts_into(&self, queue: &str) {
        self.client()
            .await
            .batch_execute(&format!(
                "CREATE FUNCTION fail_{queue}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'refused by test'; END $$;
                 CREATE TRIGGER fail_{queue} BEFORE INSERT ON queue_items FOR EACH ROW
                 WHEN (NEW.queue = '{queue}') EXECUTE FUNCTION fail_{queue}();"
            ))
            .await
            .unwrap();
    }

    async fn create_version_1(&self) {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema};
                 SET search_path TO {schema};
                 CREATE TABLE plexus_migrations (
                     version    BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 );
                 INSERT INTO plexus_migrations (version) VALUES (1);",
                schema = self.schema
            ))
            .await
            .unwrap();
        client
            .batch_execute(include_str!("../../migrations/postgres/0001_init.sql"))
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO messages (id, channel, received_at, status)
                     VALUES ('{V1_MESSAGE}', '{V1_CHANNEL}', '2026-01-01T12:00:00Z', 'RECEIVED');
                 INSERT INTO message_metadata (message_id, seq, key, value)
                     VALUES ('{V1_MESSAGE}', 0, 'MRN', '1');
                 INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
                     VALUES ('{V1_MESSAGE}', 0, 'RAW', now(), 'MSH|old'::bytea);
                 INSERT INTO queue_items (queue, message_id, destination, attempts,
                     available_at, state)
                     VALUES ('{V1_QUEUE}', '{V1_MESSAGE}', 1, 0, now(), 'READY');"
            ))
            .await
            .unwrap();
    }

    fn store_config(&self, encryption: Option<store::EncryptionConfig>) -> store::StoreConfig {
        store::StoreConfig::Postgres(PostgresConfig {
            encryption,
            ..self.config()
        })
    }

    async fn count_rows(&self, table: &str, message: MessageId) -> i64 {
        self.client()
            .await
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE message_id = $1"),
                &[&message.to_string()],
            )
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Postgres {
    /// Drops the schema, also while a failing test unwinds.
    fn drop(&mut self) {
        testkit::drop_schema(&self.url, &self.schema);
    }
}

/// A typical ADT^A01 for `channel`, with a control id and an MRN.
pub fn adt(channel: &str, control_id: &str, mrn: &str) -> NewMessage {
    let raw = format!(
        "MSH|^~\\&|REG|HOSP|EHR|HOSP|20260101120000||ADT^A01|{control_id}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||DOE^JANE\r"
    );
    let mut m = NewMessage::new(channel, raw.into_bytes()).with_metadata("MRN", mrn);
    m.message_type = Some("ADT".into());
    m.trigger_event = Some("A01".into());
    m.control_id = Some(control_id.into());
    m.sending_application = Some("REG".into());
    m.sending_facility = Some("HOSP".into());
    m.received_at = Timestamp::now();
    m
}
