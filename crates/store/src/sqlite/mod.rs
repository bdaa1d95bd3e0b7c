//! The SQLite backend: one database file in a data directory, WAL synced by its own thread
//! before a write is answered, one writer thread with group commit, a small pool of read
//! connections, and a cache of the FHIR resource versions they read.

mod audit;
mod checkpoint;
mod crypto_ops;
mod engine_ops;
mod ops;
mod resources;
mod security;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use writer::{Durability, Writer};

use crate::config::SqliteConfig;
use crate::counters::Counters;
use crate::crypto::{Crypto, LoadedKeys};
use crate::error::{Result, StoreError, Subject};
use crate::model::{
    Destination, MessageFilter, MessageId, MessageSummary, NewMessage, QueueDepth, QueueItem,
    QueueItemId, QueueState, Stage, Status, StoreStats, StoredMessage, Transition,
};
use crate::resource_cache::ResourceCache;
use crate::resources::{
    HistoryPage, HistoryQuery, ResourceWrite, Resources, SearchPage, StoredResource, WriteOutcome,
};
use crate::sql::{self, SQLITE_MIGRATIONS};
use crate::time::{Timestamp, duration_micros};
use crate::{Journal, Queues, Store};

/// The embedded store: a SQLite database in a data directory.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Arc<ReadPool>,
    counters: Arc<Counters>,
    crypto: Crypto,
    indexes: Arc<ops::BatchedIndexes>,
    /// Resource versions already read ([`ResourceCache`]).
    cache: Arc<ResourceCache>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `config.path`, migrates it to the newest
    /// schema and starts the writer thread.
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        if config.read_connections == 0 || config.max_batch == 0 {
            return Err(StoreError::Config(
                "sqlite read_connections and max_batch must be at least 1".to_owned(),
            ));
        }
        if config.wal_max_mb < 4 {
            return Err(StoreError::Config(format!(
                "sqlite wal_max_mb must be at least 4, not {}",
                config.wal_max_mb
            )));
        }
        if !(-20..=19).contains(&config.writer_nice) {
            return Err(StoreError::Config(format!(
                "sqlite writer_nice must be from -20 to 19, not {}",
                config.writer_nice
            )));
        }
        let dir = config.path.clone();
        let file = dir.join(SqliteConfig::DB_FILE);
        let busy = Duration::from_millis(config.busy_timeout_ms);
        let encryption = config.encryption.clone();
        let wal_max = config.wal_max_mb.saturating_mul(1 << 20);
        let (opened, crypto, indexes, durability) = {
            let file = file.clone();
            tokio::task::spawn_blocking(
                move || -> Result<(Connection, Crypto, ops::BatchedIndexes, Durability)> {
                    let keys = encryption.as_ref().map(LoadedKeys::load).transpose()?;
                    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                        op: "open",
                        path: dir.clone(),
                        source,
                    })?;
                    let (mut conn, wal) = open_writer(&file, busy)?;
                    migrate(&mut conn)?;
                    let halt = writer::Halt::default();
                    let page_size: i64 = conn
                        .pragma_query_value(None, "page_size", |r| r.get(0))
                        .map_err(StoreError::sqlite("open"))?;
                    let limits = checkpoint::Limits::for_size(
                        wal_max,
                        u64::try_from(page_size).unwrap_or(4096),
                    );
                    checkpoint::start(&mut conn, &file, busy, &halt, limits)?;
                    let crypto = crypto_ops::setup(&mut conn, keys)?;
                    let indexes = ops::BatchedIndexes::open(&conn)?;
                    // from here on every write goes through the writer thread, whose sync
                    // thread fsyncs the WAL before any caller is answered: SQLite need not
                    // sync each commit itself (it still syncs around checkpoints)
                    let durability = match wal {
                        Some(wal) => {
                            conn.pragma_update(None, "synchronous", "NORMAL")
                                .map_err(StoreError::sqlite("open"))?;
                            Durability::SyncWal { wal, halt }
                        }
                        None => Durability::Commit,
                    };
                    Ok((conn, crypto, indexes, durability))
                },
            )
            .await
            .map_err(|e| StoreError::Task {
                op: "open",
                detail: e.to_string(),
            })??
        };
        let counters = Arc::new(Counters::default());
        let writer = Writer::start(
            opened,
            config.max_batch,
            config.writer_nice,
            Arc::clone(&counters),
            durability,
        )?;
        tracing::info!(path = %file.display(), "SQLite store opened");
        Ok(Self {
            path: file.clone(),
            writer,
            readers: Arc::new(ReadPool::new(file, busy, config.read_connections)),
            counters,
            crypto,
            indexes: Arc::new(indexes),
            cache: Arc::new(ResourceCache::new(
                config.resource_cache_mb.saturating_mul(1 << 20),
            )),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether, and with which keys, the store encrypts at rest.
    pub(crate) fn crypto(&self) -> &Crypto {
        &self.crypto
    }

    async fn write<T, F>(&self, op: &'static str, messages: u64, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.submit(op, messages, work).await
    }
}

/// Applies the SQLite pragmas every connection needs.
fn configure(conn: &Connection, busy: Duration, op: &'static str) -> Result<()> {
    conn.busy_timeout(busy).map_err(StoreError::sqlite(op))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(StoreError::sqlite(op))?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner's stability guarantee: a cached statement keeps its plan whatever is
    // bound to it. Without it this SQLite build (STAT4) marks the parameters of many
    // statements, among them the join that reads a resource by type and id, as plan-relevant
    // and compiles the statement again whenever a different value is bound: about a tenth of
    // all CPU under the FHIR benchmark's mix. Plans still use `sqlite_stat1`; the store's SQL
    // writes the conditions of its partial indexes as literals, which this does not affect.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(StoreError::sqlite(op))?;
    Ok(())
}

/// Opens the write connection: WAL, and `synchronous=FULL` so that a committed (and so
/// ACKed) message survives a power loss. With the WAL it also returns the WAL file's path:
/// once the writer thread runs, it syncs that file itself ([`writer::Durability`]).
fn open_writer(file: &Path, busy: Duration) -> Result<(Connection, Option<PathBuf>)> {
    const OP: &str = "open";
    let conn = Connection::open(file).map_err(StoreError::sqlite(OP))?;
    configure(&conn, busy, OP)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(StoreError::sqlite(OP))?;
    let wal = if mode.eq_ignore_ascii_case("wal") {
        // the name SQLite gives it: after the database's full path as SQLite resolved it
        // (through symbolic links)
        let mut name = conn
            .path()
            .map_or_else(|| file.as_os_str().to_owned(), std::ffi::OsString::from);
        name.push("-wal");
        Some(PathBuf::from(name))
    } else {
        tracing::warn!(mode, "SQLite refused WAL mode; writes will be slower");
        None
    };
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::sqlite(OP))?;
    // the writer's working set (index pages under the newest ids) stays in memory
    conn.pragma_update(None, "cache_size", -32_768)
        .map_err(StoreError::sqlite(OP))?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(StoreError::sqlite(OP))?;
    Ok((conn, wal))
}

/// Brings the schema to the newest version in one transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    const OP: &str = "migrate";
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS plexus_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(StoreError::sqlite(OP))?;
    let found: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM plexus_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(StoreError::sqlite(OP))?;
    let supported = sql::latest(SQLITE_MIGRATIONS);
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for m in SQLITE_MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.execute_batch(m.sql)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO plexus_migrations (version, applied_at) VALUES (?1, ?2)",
                    [m.version, Timestamp::now().as_micros()],
                )
            })
            .map_err(|e| StoreError::Migration {
                version: m.version,
                source: Box::new(StoreError::Sqlite {
                    op: OP,
                    subject: crate::error::Subject::None,
                    source: e,
                }),
            })?;
        tracing::info!(version = m.version, "applied SQLite migration");
    }
    tx.commit().map_err(StoreError::sqlite(OP))
}

/// Read connections, opened on demand up to a limit and kept for reuse.
struct ReadPool {
    file: PathBuf,
    busy: Duration,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl ReadPool {
    fn new(file: PathBuf, busy: Duration, size: usize) -> Self {
        Self {
            file,
            busy,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            closed: AtomicBool::new(false),
        }
    }

    /// An idle read connection, if one is open.
    fn take_idle(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Keeps a connection for the next read, unless the pool was closed meanwhile or the
    /// connection is still inside a transaction (a read whose `COMMIT` failed): kept, it would
    /// answer later reads from an old snapshot and keep the WAL from starting over.
    fn give_back(&self, conn: Connection) {
        if !self.closed.load(Ordering::Acquire) && conn.is_autocommit() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }

    fn connection(&self, op: &'static str) -> Result<Connection> {
        if let Some(conn) = self.take_idle() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sqlite(op))?;
        configure(&conn, self.busy, op)?;
        conn.pragma_update(None, "query_only", "ON")
            .map_err(StoreError::sqlite(op))?;
        Ok(conn)
    }

    /// Runs `read` on a read connection in the blocking thread pool.
    async fn run<T, F>(self: &Arc<Self>, op: &'static str, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed { op });
        }
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed { op })?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.connection(op)?;
            let result = read(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Task {
            op,
            detail: e.to_string(),
        })?
    }

    /// Runs a short read — one lookup by key, a few pages — on the calling thread when a
    /// permit and an idle connection are at hand, else as [`ReadPool::run`]. Handing a read
    /// of some 20 µs to the blocking pool costs two thread wake-ups and switches, about as
    /// much as the read itself; reads whose cost depends on the data (searches, history)
    /// keep to the blocking pool.
    async fn run_short<T, F>(self: &Arc<Self>, op: &'static str, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed { op });
        }
        if let Ok(permit) = self.permits.try_acquire()
            && let Some(conn) = self.take_idle()
        {
            let result = read(&conn);
            self.give_back(conn);
            drop(permit);
            return result;
        }
        self.run(op, read).await
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Journal for SqliteStore {
    async fn append(&self, message: NewMessage) -> Result<MessageId> {
        message.validate()?;
        let subject = Subject::Channel(message.channel.clone());
        let crypto = self.crypto.clone();
        let indexes = Arc::clone(&self.indexes);
        self.write("append", 1, move |conn| {
            ops::append(conn, &message, &crypto, &indexes)
        })
        .await
        .map_err(|e| e.about(subject))
    }

    async fn put_content(
        &self,
        id: MessageId,
        destination: Destination,
        stage: Stage,
        bytes: Vec<u8>,
    ) -> Result<()> {
        crate::check_put_content(id, destination, stage)?;
        let bytes = self
            .crypto
            .seal(
                crate::crypto::Row::Content(&id.to_string(), destination, stage),
                &bytes,
            )?
            .into_owned();
        self.write("put_content", 0, move |conn| {
            ops::put_content(conn, id, destination, stage, &bytes)
        })
        .await
        .map_err(|e| e.about(Subject::Message(id)))
    }

    async fn set_status(&self, id: MessageId, status: Status, error: Option<String>) -> Result<()> {
        self.write("set_status", 0, move |conn| {
            ops::set_status(conn, id, status, error.as_deref())
        })
        .await
        .map_err(|e| e.about(Subject::Message(id)))
    }

    async fn get(&self, id: MessageId) -> Result<Option<StoredMessage>> {
        let crypto = self.crypto.clone();
        self.readers
            .run("get", move |conn| ops::get_message(conn, id, &crypto))
            .await
            .map_err(|e| e.about(Subject::Message(id)))
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        let filter = self.crypto.filter(filter).into_owned();
        self.readers
            .run("list", move |conn| ops::list(conn, &filter))
            .await
    }

    async fn count(&self, filter: &MessageFilter) -> Result<u64> {
        let filter = self.crypto.filter(filter).into_owned();
        self.readers
            .run("count", move |conn| ops::count(conn, &filter))
            .await
    }

    async fn apply(&self, transitions: Vec<Transition>) -> Result<()> {
        crate::check_transitions(&transitions)?;
        if transitions.is_empty() {
            return Ok(());
        }
        let subject = match transitions.as_slice() {
            [one] => Subject::Message(one.message_id),
            _ => Subject::None,
        };
        // One request: the transitions commit together, in a batch with other requests.
        let crypto = self.crypto.clone();
        let indexes = Arc::clone(&self.indexes);
        self.write("apply", 0, move |conn| {
            engine_ops::apply(conn, &transitions, &crypto, &indexes)
        })
        .await
        .map_err(|e| e.about(subject))
    }

    async fn prunable(
        &self,
        channel: &str,
        older_than: Option<Timestamp>,
        keep_last: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MessageId>> {
        let subject = Subject::Channel(channel.to_owned());
        let channel = channel.to_owned();
        self.readers
            .run("prunable", move |conn| {
                engine_ops::prunable(conn, &channel, older_than, keep_last, limit)
            })
            .await
            .map_err(|e| e.about(subject))
    }

    async fn delete(&self, ids: &[MessageId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write("delete", 0, move |conn| engine_ops::delete(conn, &ids))
            .await
    }

    async fn contents(
        &self,
        ids: &[MessageId],
        destination: Destination,
        stage: Stage,
    ) -> Result<Vec<(MessageId, Vec<u8>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let crypto = self.crypto.clone();
        self.readers
            .run("contents", move |conn| {
                engine_ops::contents(conn, &ids, destination, stage, &crypto)
            })
            .await
    }
}

impl Queues for SqliteStore {
    async fn claim(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = Subject::Queue(queue.to_owned());
        let (queue, owner) = (queue.to_owned(), owner.to_owned());
        let lease = duration_micros(lease);
        self.write("claim", 0, move |conn| {
            ops::claim(conn, &queue, &owner, lease, limit)
        })
        .await
        .map_err(|e| e.about(subject))
    }

    async fn ack(&self, item: QueueItemId, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write("ack", 0, move |conn| ops::ack(conn, item, &owner))
            .await
            .map_err(|e| e.about(Subject::QueueItem(item)))
    }

    async fn nack(
        &self,
        item: QueueItemId,
        owner: &str,
        retry_at: Timestamp,
        error: &str,
        max_attempts: u32,
    ) -> Result<QueueState> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        self.write("nack", 0, move |conn| {
            ops::nack(conn, item, &owner, retry_at, &error, max_attempts)
        })
        .await
        .map_err(|e| e.about(Subject::QueueItem(item)))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<QueueItem>> {
        let subject = Subject::Queue(queue.to_owned());
        let queue = queue.to_owned();
        self.readers
            .run("dead_letters", move |conn| ops::dead_letters(conn, &queue))
            .await
            .map_err(|e| e.about(subject))
    }

    async fn requeue_dead(&self, item: QueueItemId) -> Result<()> {
        self.write("requeue_dead", 0, move |conn| ops::requeue_dead(conn, item))
            .await
            .map_err(|e| e.about(Subject::QueueItem(item)))
    }

    async fn claim_head(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = Subject::Queue(queue.to_owned());
        let (queue, owner) = (queue.to_owned(), owner.to_owned());
        let lease = duration_micros(lease);
        self.write("claim_head", 0, move |conn| {
            engine_ops::claim_head(conn, &queue, &owner, lease, limit)
        })
        .await
        .map_err(|e| e.about(subject))
    }

    async fn held_head(
        &self,
        queue: &str,
        owner: &str,
        skip: &[QueueItemId],
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = Subject::Queue(queue.to_owned());
        let (queue, owner) = (queue.to_owned(), owner.to_owned());
        let mut skip = skip.to_vec();
        skip.sort_unstable();
        self.readers
            .run("held_head", move |conn| {
                engine_ops::held_head(conn, &queue, &owner, &skip, limit)
            })
            .await
            .map_err(|e| e.about(subject))
    }

    async fn extend_lease(&self, item: QueueItemId, owner: &str, lease: Duration) -> Result<()> {
        let owner = owner.to_owned();
        let lease = duration_micros(lease);
        self.write("extend_lease", 0, move |conn| {
            engine_ops::extend_lease(conn, item, &owner, lease)
        })
        .await
        .map_err(|e| e.about(Subject::QueueItem(item)))
    }

    async fn queue_depth(&self, queue: &str) -> Result<QueueDepth> {
        let subject = Subject::Queue(queue.to_owned());
        let queue = queue.to_owned();
        self.readers
            .run("queue_depth", move |conn| {
                engine_ops::queue_depth(conn, &queue)
            })
            .await
            .map_err(|e| e.about(subject))
    }

    async fn queue_names(&self) -> Result<Vec<String>> {
        self.readers
            .run("queue_names", engine_ops::queue_names)
            .await
    }
}

impl Resources for SqliteStore {
    async fn write(&self, writes: Vec<ResourceWrite>) -> Result<Vec<WriteOutcome>> {
        crate::resource_sql::check_writes(&writes)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let crypto = self.crypto.clone();
        // what needs no database is done here, not on the writer thread every write waits for
        let mut writes = writes;
        let prepared: Vec<_> = writes
            .iter_mut()
            .map(|w| crate::resource_sql::Prepared::new(w, &crypto))
            .collect();
        let (outcomes, stored) = SqliteStore::write(self, "fhir_write", 0, move |conn| {
            resources::write(conn, &writes, &prepared, &crypto)
        })
        .await?;
        // committed and synced: the versions written are what a read will find, so the read
        // that often follows a write needs no version row
        for (i, rid) in stored {
            if let Some(
                WriteOutcome::Created(r) | WriteOutcome::Updated(r) | WriteOutcome::Deleted(r),
            ) = outcomes.get(i)
                && let Ok(version) = i64::try_from(r.version)
            {
                self.cache.put(rid, version, r);
            }
        }
        Ok(outcomes)
    }

    async fn read(
        &self,
        resource_type: &str,
        id: &str,
        version: Option<u64>,
    ) -> Result<Option<StoredResource>> {
        let (rtype, id) = (resource_type.to_owned(), id.to_owned());
        let crypto = self.crypto.clone();
        let cache = Arc::clone(&self.cache);
        self.readers
            .run_short("read", move |conn| {
                resources::read(conn, &rtype, &id, version, &crypto, &cache)
            })
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let query = query.clone();
        let crypto = self.crypto.clone();
        self.readers
            .run("history", move |conn| {
                resources::history(conn, &query, &crypto)
            })
            .await
    }

    async fn search(&self, request: &fhir::search::SearchRequest) -> Result<SearchPage> {
        let request = request.clone();
        let crypto = self.crypto.clone();
        let cache = Arc::clone(&self.cache);
        self.readers
            .run("search", move |conn| {
                resources::search(conn, &request, &crypto, &cache)
            })
            .await
    }
}

impl Store for SqliteStore {
    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    async fn close(&self) -> Result<()> {
        self.readers.close();
        let closed = self.writer.close().await;
        self.cache.clear();
        closed?;
        tracing::info!(path = %self.path.display(), "SQLite store closed");
        Ok(())
    }
}

/// A database in a new directory, opened as the store's writer opens it, holding the table
/// `t (x INTEGER)` with one row `x`: the directory (deleted when dropped), the file and the
/// writer connection.
#[cfg(test)]
fn table_t(x: i64) -> (tempfile::TempDir, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db");
    let (writer, _) = open_writer(&file, Duration::from_secs(5)).unwrap();
    writer
        .execute_batch(&format!(
            "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES ({x})"
        ))
        .unwrap();
    (dir, file, writer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::ReadPool;

    /// A short read runs on the calling thread when a connection is idle, waits like any read
    /// when every permit is taken, and sees what the database holds either way.
    #[tokio::test]
    async fn short_reads_run_inline_or_wait_for_a_permit() {
        let (_dir, file, _writer) = super::table_t(7);
        let busy = Duration::from_secs(5);
        let pool = Arc::new(ReadPool::new(file, busy, 1));
        let read = |conn: &rusqlite::Connection| -> crate::error::Result<i64> {
            Ok(conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap())
        };
        // no idle connection yet: through the blocking pool, which leaves one idle
        assert_eq!(pool.run_short("test", read).await.unwrap(), 7);
        let caller = std::thread::current().id();
        let on = pool
            .run_short("test", move |_| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(
            on, caller,
            "an idle connection is used on the calling thread"
        );
        // every permit taken: the short read waits for one
        let held = Arc::clone(&pool.permits).acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run_short("test", read).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it ran without a permit");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 7);
        pool.close();
        assert!(pool.run_short("test", read).await.is_err());
    }

    /// A read that leaves its connection inside a transaction (as a read whose `COMMIT`
    /// failed would) does not hand it to the next read, which would see an old snapshot.
    #[tokio::test]
    async fn a_connection_left_in_a_transaction_is_not_reused() {
        let (_dir, file, writer) = super::table_t(1);
        let busy = Duration::from_secs(5);
        let pool = Arc::new(ReadPool::new(file, busy, 1));
        let count = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        let first = pool
            .run("test", move |conn| {
                conn.execute_batch("BEGIN").unwrap();
                Ok(count(conn))
            })
            .await
            .unwrap();
        assert_eq!(first, 1);
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let next = pool
            .run_short("test", move |conn| Ok((conn.is_autocommit(), count(conn))))
            .await
            .unwrap();
        assert_eq!(next, (true, 2), "the next read got the stale connection");
        pool.close();
    }

    /// Binding other values to a cached statement does not compile it again (the planner's
    /// stability guarantee, see `configure`): checked on the read of a resource by type and
    /// id, which without it was compiled again on every read; so on the writer's connection.
    #[test]
    fn cached_statements_are_not_compiled_again_for_new_values() {
        use rusqlite::StatementStatus;

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let busy = Duration::from_secs(5);
        let (mut writer, _) = super::open_writer(&file, busy).unwrap();
        super::migrate(&mut writer).unwrap();
        let pool = ReadPool::new(file, busy, 1);
        let reader = pool.connection("test").unwrap();
        for conn in [&reader, &writer] {
            for id in ["a", "b", "c"] {
                let sql = crate::resource_sql::read_sql(
                    crate::resource_sql::Dialect::Sqlite,
                    "Patient",
                    id,
                    None,
                );
                let mut stmt = conn.prepare_cached(&sql.text).unwrap();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(sql.params.iter()), |_| Ok(()))
                    .unwrap()
                    .count();
                assert_eq!(rows, 0);
                assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "id {id}");
            }
        }
    }
}
