//! Which backend to open and how: the `[store]` table of `plexus.toml`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where Plexus keeps its data.
///
/// ```toml
/// [store]
/// kind = "sqlite"
/// path = "./plexus-data"
/// ```
///
/// ```toml
/// [store]
/// kind = "postgres"
/// url = "postgres://postgres@127.0.0.1:5432/test"
/// schema = "plexus"
/// pool_size = 16
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreConfig {
    /// An embedded SQLite database in a directory (the default).
    Sqlite(SqliteConfig),
    /// A PostgreSQL database, shared by one or more Plexus nodes.
    Postgres(PostgresConfig),
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Sqlite(SqliteConfig::default())
    }
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The data directory; created if missing. The database is `plexus.db` inside it.
    #[serde(default = "SqliteConfig::default_path")]
    pub path: PathBuf,
    /// Connections kept for reads (queries run in parallel on them).
    #[serde(default = "SqliteConfig::default_read_connections")]
    pub read_connections: usize,
    /// Most write requests the writer commits in one transaction.
    #[serde(default = "SqliteConfig::default_max_batch")]
    pub max_batch: usize,
    /// How long a statement waits for a lock held by another process, in milliseconds.
    #[serde(default = "SqliteConfig::default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
}

impl SqliteConfig {
    /// Name of the database file inside the data directory.
    pub const DB_FILE: &'static str = "plexus.db";

    /// Settings for a data directory at `path`, everything else default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    fn default_path() -> PathBuf {
        PathBuf::from("./plexus-data")
    }
    fn default_read_connections() -> usize {
        4
    }
    fn default_max_batch() -> usize {
        1000
    }
    fn default_busy_timeout_ms() -> u64 {
        5000
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: Self::default_path(),
            read_connections: Self::default_read_connections(),
            max_batch: Self::default_max_batch(),
            busy_timeout_ms: Self::default_busy_timeout_ms(),
        }
    }
}

/// Settings of the PostgreSQL backend.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL or key=value string, as libpq takes it.
    pub url: String,
    /// Schema holding Plexus' tables; created if missing. Lower-case letters, digits and
    /// `_`, starting with a letter or `_`.
    #[serde(default = "PostgresConfig::default_schema")]
    pub schema: String,
    /// Most connections the pool opens.
    #[serde(default = "PostgresConfig::default_pool_size")]
    pub pool_size: usize,
}

impl PostgresConfig {
    /// Settings for `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: Self::default_schema(),
            pool_size: Self::default_pool_size(),
        }
    }

    fn default_schema() -> String {
        "plexus".to_owned()
    }
    fn default_pool_size() -> usize {
        16
    }
}

impl fmt::Debug for PostgresConfig {
    /// Leaves out the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kinds() {
        let c: StoreConfig =
            serde_json::from_str(r#"{"kind":"sqlite","path":"./plexus-data"}"#).unwrap();
        assert_eq!(c, StoreConfig::Sqlite(SqliteConfig::new("./plexus-data")));
        let c: StoreConfig = serde_json::from_str(
            r#"{"kind":"postgres","url":"postgres://postgres@127.0.0.1:5432/test","schema":"plexus","pool_size":16}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            StoreConfig::Postgres(PostgresConfig::new(
                "postgres://postgres@127.0.0.1:5432/test"
            ))
        );
        assert!(serde_json::from_str::<StoreConfig>(r#"{"kind":"mysql"}"#).is_err());
        assert!(
            serde_json::from_str::<StoreConfig>(r#"{"kind":"sqlite","pth":"x"}"#).is_err(),
            "a misspelt key is refused"
        );
    }

    #[test]
    fn debug_hides_url() {
        let c = PostgresConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
