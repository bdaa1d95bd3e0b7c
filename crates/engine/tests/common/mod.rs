//! What the engine's store-backed tests share: a store for one test on SQLite (in a
//! temporary directory) or PostgreSQL (in a schema of its own, dropped afterwards).
//!
//! PostgreSQL is reached at `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use store::{AnyStore, PostgresConfig, SqliteConfig, StoreConfig};

/// A store for one test, and what to clean up after it.
pub struct Backend {
    config: StoreConfig,
    dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Backend {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            config: StoreConfig::Sqlite(SqliteConfig::new(dir.path().join("data"))),
            dir,
            schema: None,
        }
    }

    /// A fresh schema named after `suite`, the process and a counter.
    pub fn postgres(suite: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let url = testkit::postgres_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!(
            "plexus_{suite}_{}_{nanos}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            config: StoreConfig::Postgres(PostgresConfig {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: 8,
                encryption: None,
            }),
            dir: tempfile::tempdir().unwrap(),
            schema: Some((url, schema)),
        }
    }

    /// Opens the store.
    pub async fn store(&self) -> Arc<AnyStore> {
        Arc::new(AnyStore::open(&self.config).await.unwrap())
    }

    /// A path in the test's temporary directory.
    #[allow(dead_code)] // not every suite writes files
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Backend {
    /// Drops the PostgreSQL schema, also while a failing test unwinds.
    fn drop(&mut self) {
        if let Some((url, schema)) = self.schema.take() {
            testkit::drop_schema(&url, &schema);
        }
    }
}
