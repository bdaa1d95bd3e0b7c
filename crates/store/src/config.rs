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
/// Either backend can encrypt message payloads and FHIR resources at rest
/// ([`EncryptionConfig`], `[store.encryption]`).
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
    /// Megabytes of memory for FHIR resource versions already read (decrypted), so that
    /// reading one again costs the lookup of its current version only; 0 turns the cache off.
    #[serde(default = "SqliteConfig::default_resource_cache_mb")]
    pub resource_cache_mb: usize,
    /// The nice value (-20 … 19; Linux) the writer thread asks for. Every write waits for
    /// that one thread while the work before and after it spreads over all cores, so when
    /// the cores are busy the writer should not wait for them: below 0 it gets the larger
    /// share. The writer only ever gains priority by it: when it already runs at this nice
    /// value or a lower one (a process started at a lower one), or the value is 0, nothing
    /// changes. A value below the process's own needs `CAP_SYS_NICE` or `RLIMIT_NICE`
    /// (systemd: `LimitNICE=`); when refused, the writer keeps the process's priority and
    /// says so once in the log.
    #[serde(default = "SqliteConfig::default_writer_nice")]
    pub writer_nice: i32,
    /// Megabytes the write-ahead log (`plexus.db-wal`) may reach before the writer copies
    /// the rest of it into the database itself, so that it can start over; a background
    /// thread copies it every quarter of that. Every write waits while the writer copies, so
    /// a small log stalls writes often under a heavy load (docs/operations.md).
    #[serde(default = "SqliteConfig::default_wal_max_mb")]
    pub wal_max_mb: u64,
    /// Encryption at rest (`[store.encryption]`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
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
    fn default_resource_cache_mb() -> usize {
        64
    }
    fn default_writer_nice() -> i32 {
        -5
    }
    fn default_wal_max_mb() -> u64 {
        360
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: Self::default_path(),
            read_connections: Self::default_read_connections(),
            max_batch: Self::default_max_batch(),
            busy_timeout_ms: Self::default_busy_timeout_ms(),
            resource_cache_mb: Self::default_resource_cache_mb(),
            writer_nice: Self::default_writer_nice(),
            wal_max_mb: Self::default_wal_max_mb(),
            encryption: None,
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
    /// Encryption at rest (`[store.encryption]`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
}

impl PostgresConfig {
    /// Settings for `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: Self::default_schema(),
            pool_size: Self::default_pool_size(),
            encryption: None,
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
            .field("encryption", &self.encryption)
            .finish()
    }
}

impl StoreConfig {
    /// The encryption settings of whichever backend this is.
    pub fn encryption(&self) -> Option<&EncryptionConfig> {
        match self {
            Self::Sqlite(c) => c.encryption.as_ref(),
            Self::Postgres(c) => c.encryption.as_ref(),
        }
    }
}

/// Encryption at rest: message payloads (received bytes and every content stage), message
/// metadata values and FHIR resource JSON are stored AES-256-GCM encrypted, and the search
/// values of FHIR string and token parameters and of message metadata as keyed hashes (blind
/// indexes). See `docs/security.md` and [`crate::crypto`].
///
/// ```toml
/// [store.encryption]
/// key_id = "k2"                          # the key new data is encrypted with
/// key_file = "/etc/plexus/store-k2.key"  # 32 raw bytes, 64 hex characters or base64
/// # key_env = "PLEXUS_STORE_KEY"         # or: the key (hex or base64) in this variable
///
/// [[store.encryption.retired]]           # older keys, kept to read what they encrypted
/// key_id = "k1"
/// key_env = "PLEXUS_STORE_KEY_K1"
/// ```
///
/// Key ids are 1 to 32 characters of `A-Z a-z 0-9 . _ -`; each row records the id of the key
/// that encrypted it. `plexus store rotate-key` re-encrypts rows of retired keys with the
/// active one. The blind indexes are keyed from one key for the life of the store (the
/// active key when encryption was first turned on, or `index_key_id`); that key must stay
/// configured (active or retired).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The id of the active key, which encrypts everything written from now on.
    pub key_id: String,
    /// A file holding the active key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the active key (hex or base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// The key the blind indexes are derived from; defaults to the one the store recorded
    /// when encryption was first turned on (then: the active key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key_id: Option<String>,
    /// Keys no longer used to encrypt, kept to decrypt what they encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredKey>,
}

/// A key kept for reading (`[[store.encryption.retired]]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// Its id, as recorded in the rows it encrypted.
    pub key_id: String,
    /// A file holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key (hex or base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
}

impl EncryptionConfig {
    /// Encryption with the key in `file`, under `key_id`.
    pub fn with_key_file(key_id: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        Self {
            key_id: key_id.into(),
            key_file: Some(file.into()),
            key_env: None,
            index_key_id: None,
            retired: Vec::new(),
        }
    }

    /// Every configured key: `(id, file, env)`, the active one first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&str, Option<&PathBuf>, Option<&str>)> {
        std::iter::once((
            self.key_id.as_str(),
            self.key_file.as_ref(),
            self.key_env.as_deref(),
        ))
        .chain(
            self.retired
                .iter()
                .map(|r| (r.key_id.as_str(), r.key_file.as_ref(), r.key_env.as_deref())),
        )
    }
}

impl fmt::Debug for EncryptionConfig {
    /// Names where the keys come from, never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("key_id", &self.key_id)
            .field("key_file", &self.key_file)
            .field("key_env", &self.key_env)
            .field("index_key_id", &self.index_key_id)
            .field("retired", &self.retired)
            .finish()
    }
}

impl fmt::Debug for RetiredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetiredKey")
            .field("key_id", &self.key_id)
            .field("key_file", &self.key_file)
            .field("key_env", &self.key_env)
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
    fn reads_encryption_settings() {
        let c: StoreConfig = serde_json::from_str(
            r#"{"kind":"sqlite","path":"d","encryption":{"key_id":"k2","key_env":"K2",
                "retired":[{"key_id":"k1","key_file":"/k1"}]}}"#,
        )
        .unwrap();
        let e = c.encryption().unwrap();
        assert_eq!(e.key_id, "k2");
        assert_eq!(
            e.retired[0].key_file.as_deref(),
            Some(std::path::Path::new("/k1"))
        );
        assert!(
            serde_json::from_str::<StoreConfig>(
                r#"{"kind":"sqlite","encryption":{"key_id":"k","key":"00"}}"#
            )
            .is_err(),
            "an inline key is refused"
        );
    }

    #[test]
    fn debug_hides_url() {
        let c = PostgresConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
