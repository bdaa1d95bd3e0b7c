//! The one error type of the store, with the operation and the ids it concerned.

use std::fmt;
use std::path::PathBuf;

use crate::model::{MessageId, QueueItemId, QueueState};

/// What a failed operation was about, for the error message: a message, a queue item, a
/// queue or a channel. Never message content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// Nothing in particular (a listing, a migration).
    #[default]
    None,
    /// One message.
    Message(MessageId),
    /// One queue item.
    QueueItem(QueueItemId),
    /// One queue.
    Queue(String),
    /// One channel.
    Channel(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => Ok(()),
            Self::Message(id) => write!(f, " of message {id}"),
            Self::QueueItem(item) => write!(f, " of queue item {item}"),
            Self::Queue(queue) => write!(f, " on queue {queue:?}"),
            Self::Channel(channel) => write!(f, " on channel {channel:?}"),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
///
/// `op` names the store operation that failed (`"append"`, `"claim"`, `"migrate"`, ...), so a
/// log line says what was attempted without carrying message content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The configuration cannot be used (bad schema name, bad URL, zero pool size, ...).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The data directory could not be created or read.
    #[error("{op}: cannot use data directory {}: {source}", path.display())]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The directory or file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("{op}{subject}: SQLite error: {source}")]
    Sqlite {
        /// The operation that failed.
        op: &'static str,
        /// What it was about.
        subject: Subject,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The SQLite transaction carrying this request (batched with others) did not commit, so
    /// nothing of the request was stored.
    #[error(
        "{op}{subject}: the transaction carrying this request did not commit, nothing was \
         stored: {detail}"
    )]
    BatchFailed {
        /// The operation that failed.
        op: &'static str,
        /// What it was about.
        subject: Subject,
        /// Why the transaction failed.
        detail: String,
    },
    /// The SQLite store stopped taking writes: its write-ahead log could not be synced (or a
    /// checkpoint failed with an I/O error), so what was written since the last good sync may
    /// or may not survive a crash, and nothing written after it could be vouched for. Not
    /// transient: Plexus must be restarted, after the disk has been checked.
    #[error("{op}: the store takes no more writes: {detail}")]
    Halted {
        /// The operation that was refused.
        op: &'static str,
        /// What failed.
        detail: String,
    },
    /// PostgreSQL reported an error.
    #[error("{op}{subject}: PostgreSQL error: {source}")]
    Postgres {
        /// The operation that failed.
        op: &'static str,
        /// What it was about.
        subject: Subject,
        /// The underlying error.
        source: tokio_postgres::Error,
    },
    /// No PostgreSQL connection could be had from the pool.
    #[error("{op}: no PostgreSQL connection: {source}")]
    Pool {
        /// The operation that failed.
        op: &'static str,
        /// The underlying error.
        source: deadpool_postgres::PoolError,
    },
    /// The database was migrated by a newer Plexus than this one.
    #[error(
        "database schema version {found} is newer than the newest this build knows ({supported}); \
         use a newer Plexus or restore a backup"
    )]
    SchemaTooNew {
        /// Highest version recorded in `plexus_migrations`.
        found: i64,
        /// Highest version this build has migrations for.
        supported: i64,
    },
    /// Applying a migration failed; the transaction was rolled back.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The version of the migration that failed.
        version: i64,
        /// What went wrong.
        source: Box<StoreError>,
    },
    /// No message with this id exists.
    #[error("{op}: no message with id {id}")]
    MessageNotFound {
        /// The operation that failed.
        op: &'static str,
        /// The id that was asked for.
        id: MessageId,
    },
    /// An append gave the id of a message that is stored already; nothing was stored.
    #[error("{op}: a message with id {id} is stored already")]
    DuplicateMessageId {
        /// The operation that failed.
        op: &'static str,
        /// The id that was given.
        id: MessageId,
    },
    /// No queue item with this id exists.
    #[error("{op}: no queue item with id {item}")]
    QueueItemNotFound {
        /// The operation that failed.
        op: &'static str,
        /// The id that was asked for.
        item: QueueItemId,
    },
    /// The caller acked or nacked an item whose lease it does not hold (any more): the lease
    /// went to another owner, or the item was already acked, nacked or dead-lettered.
    #[error(
        "{op}: queue item {item} is not leased to {owner:?} (state {state}, lease owner {holder:?})"
    )]
    LeaseNotHeld {
        /// The operation that failed.
        op: &'static str,
        /// The queue item.
        item: QueueItemId,
        /// The owner that asked.
        owner: String,
        /// The item's current state.
        state: QueueState,
        /// The item's current lease owner, if any.
        holder: Option<String>,
    },
    /// The queue item is not in a state that allows the operation (e.g. requeueing an item
    /// that is not dead).
    #[error("{op}: queue item {item} is {state}, expected {expected}")]
    WrongQueueState {
        /// The operation that failed.
        op: &'static str,
        /// The queue item.
        item: QueueItemId,
        /// The item's current state.
        state: QueueState,
        /// The state the operation needs.
        expected: QueueState,
    },
    /// A FHIR create named a resource id that is taken already (also by a deleted
    /// resource); nothing of the [`crate::Resources::write`] call was stored.
    #[error("{op}: resource {resource_type}/{id} exists already")]
    ResourceExists {
        /// The operation that failed.
        op: &'static str,
        /// The resource type.
        resource_type: String,
        /// The logical id.
        id: String,
    },
    /// An argument cannot be stored (empty channel name, overwriting the received bytes, ...).
    #[error("{op}: invalid argument: {reason}")]
    InvalidArgument {
        /// The operation that failed.
        op: &'static str,
        /// Why the argument was refused.
        reason: String,
    },
    /// A value read from the database is not what this build writes (a damaged or foreign
    /// database).
    #[error("{op}: unexpected value in database column {column}: {value:?}")]
    Corrupt {
        /// The operation that failed.
        op: &'static str,
        /// The column that held the value.
        column: &'static str,
        /// The value (never message content).
        value: String,
    },
    /// An encrypted value could not be decrypted (wrong key, or data altered or moved to
    /// another row), or a value is not encrypted where it must be. Never carries content.
    #[error("{op}: encryption at rest: {detail}")]
    Encryption {
        /// The operation that failed.
        op: &'static str,
        /// What was wrong, naming the row and key id.
        detail: String,
    },
    /// A value was encrypted under a key id that is not configured.
    #[error(
        "{op}: data is encrypted under key id {key_id:?}, which is not configured (add it to \
         [[store.encryption.retired]])"
    )]
    UnknownKey {
        /// The operation that failed.
        op: &'static str,
        /// The key id recorded in the row.
        key_id: String,
    },
    /// A search feature that blind (hashed) index values cannot answer, asked of a store that
    /// encrypts at rest: `:contains` on strings, `:text` on tokens, `_sort` on string or token
    /// parameters. A FHIR server answers 400 with an OperationOutcome.
    #[error("{op}: {feature} is not supported with encryption at rest")]
    UnsupportedWithEncryption {
        /// The operation that failed.
        op: &'static str,
        /// What was asked, e.g. "the :contains modifier (name:contains)".
        feature: String,
    },
    /// The process made more than 2^80 ids in one millisecond; try again.
    #[error("message id space for this millisecond is exhausted")]
    IdsExhausted,
    /// The store was closed, or its writer thread stopped.
    #[error("{op}: the store is closed")]
    Closed {
        /// The operation that failed.
        op: &'static str,
    },
    /// A blocking task of the store panicked or was cancelled.
    #[error("{op}: internal task failed: {detail}")]
    Task {
        /// The operation that failed.
        op: &'static str,
        /// The task's failure.
        detail: String,
    },
}

impl StoreError {
    /// A `Sqlite` error for `op`, for use with `map_err`.
    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Self::Sqlite {
            op,
            subject: Subject::None,
            source,
        }
    }

    /// A `Postgres` error for `op`, for use with `map_err`.
    pub(crate) fn pg(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Self::Postgres {
            op,
            subject: Subject::None,
            source,
        }
    }

    /// Names what the failed operation was about, where the error does not say it yet.
    #[must_use]
    pub(crate) fn about(mut self, about: Subject) -> Self {
        if let Self::Sqlite { subject, .. }
        | Self::Postgres { subject, .. }
        | Self::BatchFailed { subject, .. } = &mut self
            && *subject == Subject::None
        {
            *subject = about;
        }
        self
    }

    /// Whether the error says that something asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::MessageNotFound { .. } | Self::QueueItemNotFound { .. }
        )
    }

    /// Whether the error is worth retrying as is: the database was busy or unreachable, or a
    /// batch it was part of did not commit. Errors about the request itself are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::BatchFailed { .. } | Self::Pool { .. } | Self::IdsExhausted => true,
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                )
            ),
            Self::Postgres { source, .. } => postgres_transient(source),
            _ => false,
        }
    }
}

/// Whether a PostgreSQL error is about the connection or the server's load rather than the
/// request: connection loss, serialization failure or deadlock (class 40), insufficient
/// resources (53), operator intervention such as a restart (57).
fn postgres_transient(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => ["08", "40", "53", "57"]
            .iter()
            .any(|class| code.code().starts_with(class)),
        None => e
            .source()
            .is_some_and(<dyn std::error::Error + 'static>::is::<std::io::Error>),
    }
}
