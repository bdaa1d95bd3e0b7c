//! # store — Plexus' durable storage
//!
//! This crate keeps what Plexus must not lose: the message journal (every received message
//! with its exact bytes, routing fields, status and searchable metadata), the content stages
//! each destination produced (RAW → TRANSFORMED → ENCODED → SENT → RESPONSE), and durable work
//! queues with leases, retries and dead letters, and FHIR resources with their version
//! history and search index ([`resources`]). It has one interface — the [`Journal`],
//! [`Queues`] and [`Resources`] traits, joined in [`Store`] — and two implementations that
//! pass one conformance suite (`tests/conformance/`):
//!
//! - [`SqliteStore`], the embedded default: one database file in a data directory in WAL
//!   mode, and one writer thread that commits concurrent writes together (group commit); a
//!   second thread syncs the WAL before any caller is answered, so a durable write costs one
//!   fsync per batch rather than one per message. FHIR resource versions once read are kept
//!   in a bounded memory cache keyed by row id and version (never stale: versions do not
//!   change).
//! - [`PgStore`], for several Plexus nodes sharing work: a connection pool, every table in one
//!   schema, queue claims with `FOR UPDATE SKIP LOCKED`.
//!
//! [`Journal::append`] returns only once the message is committed durably, so a listener may
//! acknowledge a message as soon as `append` returns. The binary holds an `Arc<`[`AnyStore`]`>`
//! chosen by a [`StoreConfig`]. Schemas are versioned (`migrations/<backend>/NNNN_*.sql`),
//! applied at open and recorded in `plexus_migrations`; a database from a newer Plexus is
//! refused.
//!
//! The channel engine moves a message on with [`Journal::apply`]: one atomic write that acks
//! the queue item it worked on, sets the message's and each destination's status, stores
//! content and enqueues the next work. Destinations that must deliver in order claim with
//! [`Queues::claim_head`] (strict FIFO: a failed item waiting for its retry blocks the queue).
//! Retention picks old messages with [`Journal::prunable`] and deletes them in small batches
//! with [`Journal::delete`].
//!
//! ```
//! use std::time::Duration;
//! use store::{AnyStore, Journal, MessageFilter, NewMessage, Queues, Store, StoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), store::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let config: StoreConfig = serde_json::from_value(serde_json::json!({
//!     "kind": "sqlite", "path": dir.path(),
//! })).unwrap();
//! let store = AnyStore::open(&config).await?;
//!
//! let raw = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ADT^A01|C42|P|2.5.1\rPID|1||12345\r";
//! let mut msg = NewMessage::new("adt-in", raw.to_vec())
//!     .with_metadata("MRN", "12345")
//!     .enqueue_to("adt-in/1", 1);
//! msg.message_type = Some("ADT".into());
//! msg.control_id = Some("C42".into());
//! let id = store.append(msg).await?; // durable: now the sender may be ACKed
//!
//! let stored = store.get(id).await?.expect("just appended");
//! assert_eq!(stored.raw(), Some(&raw[..]));
//!
//! let by_mrn = MessageFilter {
//!     metadata: vec![("MRN".into(), "12345".into())],
//!     ..MessageFilter::default()
//! };
//! assert_eq!(store.list(&by_mrn).await?[0].id, id);
//!
//! let work = store.claim("adt-in/1", "worker-1", Duration::from_secs(30), 10).await?;
//! assert_eq!(work[0].message_id, id);
//! store.ack(work[0].id, "worker-1").await?;
//! store.close().await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
mod counters;
pub mod crypto;
pub mod error;
pub mod model;
pub mod postgres;
mod resource_cache;
mod resource_sql;
pub mod resources;
pub mod security;
mod sql;
pub mod sqlite;
pub mod time;

use std::future::Future;
use std::time::Duration;

pub use audit::{
    Audit, AuditBreak, AuditEntry, AuditQuery, AuditVerification, BreakKind, NewAuditRecord,
};
pub use config::{EncryptionConfig, PostgresConfig, RetiredKey, SqliteConfig, StoreConfig};
pub use error::{Result, StoreError, Subject};
pub use model::{
    Content, DEFAULT_LIST_LIMIT, Destination, DestinationStatus, DestinationUpdate, Enqueue,
    MAX_LIST_LIMIT, MessageFilter, MessageId, MessageSummary, NewMessage, ParseValueError,
    QueueDepth, QueueItem, QueueItemId, QueueState, Shared, Stage, Status, StoreStats,
    StoredMessage, Transition,
};
pub use postgres::PgStore;
pub use resources::{
    HistoryMethod, HistoryPage, HistoryQuery, Precondition, ResourceWrite, Resources, SearchPage,
    StoredResource, WriteOp, WriteOutcome,
};
pub use security::{ClientRecord, Grant, Security, UserRecord};
pub use sqlite::SqliteStore;
pub use time::Timestamp;

/// The message journal: messages, their content stages and their status.
pub trait Journal: Send + Sync {
    /// Stores a new message — journal row, metadata, its exact bytes as the RAW stage of
    /// destination 0, the content stages and destination rows it comes with, and the queue
    /// items it asks for (READY, or already leased, see [`Enqueue::lease`]) — in one
    /// transaction, and returns its id ([`NewMessage::id`] if given, else a new one) once that
    /// transaction is durably committed. So the engine can process a message's source side
    /// first and store the outcome with the message, in one write. On SQLite the call is one
    /// request to the writer thread (group commit); on PostgreSQL one statement, batched with
    /// other appends.
    ///
    /// Fails, storing nothing, with [`StoreError::InvalidArgument`] (empty channel or queue
    /// name, RAW of destination 0 given as content, ...) and with
    /// [`StoreError::DuplicateMessageId`] if the given id is stored already. An error means
    /// nothing of the message was stored. If the future is dropped before it
    /// completes, the message may or may not have been stored (delivery is at-least-once:
    /// a sender that got no ACK sends again).
    fn append(&self, message: NewMessage) -> impl Future<Output = Result<MessageId>> + Send;

    /// Stores one content stage of a message for a destination, replacing an earlier one of
    /// the same stage. The received bytes (RAW of destination 0) cannot be replaced.
    fn put_content(
        &self,
        id: MessageId,
        destination: Destination,
        stage: Stage,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Sets a message's status, and its error text (cleared when `None`).
    fn set_status(
        &self,
        id: MessageId,
        status: Status,
        error: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A message with its metadata and all its content stages, or `None`.
    fn get(&self, id: MessageId) -> impl Future<Output = Result<Option<StoredMessage>>> + Send;

    /// Messages matching `filter`, newest first, at most `filter.limit`.
    fn list(
        &self,
        filter: &MessageFilter,
    ) -> impl Future<Output = Result<Vec<MessageSummary>>> + Send;

    /// How many messages match `filter` (its `limit` and `before_id` are ignored).
    fn count(&self, filter: &MessageFilter) -> impl Future<Output = Result<u64>> + Send;

    /// Writes every transition — queue item acks, statuses, destination rows, content, new
    /// queue items and metadata — in ONE transaction: all of it, or nothing.
    ///
    /// Fails, writing nothing, with [`StoreError::MessageNotFound`] if a transition's message
    /// does not exist, [`StoreError::LeaseNotHeld`] (or [`StoreError::QueueItemNotFound`]) if
    /// an item to complete is not leased to its owner, and [`StoreError::InvalidArgument`] if a
    /// transition would replace the received bytes or names an empty queue. Transitions are
    /// applied in order; within one, a destination or content stage given twice is written
    /// once, with the last value. On SQLite the call is one request to the writer thread, so
    /// it commits together with other writes (group commit).
    fn apply(&self, transitions: Vec<Transition>) -> impl Future<Output = Result<()>> + Send;

    /// Ids of `channel`'s messages that retention may delete, oldest first, at most `limit`:
    /// those received before `older_than`, and those beyond the newest `keep_last` (by id);
    /// either condition makes a message prunable, and with neither set nothing is. Messages
    /// that still have READY or LEASED queue items (undelivered work) are never listed.
    fn prunable(
        &self,
        channel: &str,
        older_than: Option<Timestamp>,
        keep_last: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<MessageId>>> + Send;

    /// Deletes messages with their metadata, content, destination rows and queue items (in
    /// whatever state), in one transaction, and returns how many messages were deleted (ids
    /// that do not exist are skipped). Pass small batches (say, up to a thousand ids), so the
    /// transaction stays short and appends are not held up; choose them with
    /// [`Journal::prunable`].
    fn delete(&self, ids: &[MessageId]) -> impl Future<Output = Result<u64>> + Send;

    /// One content stage of one destination for several messages at once (a destination
    /// worker's batch): `(id, bytes)` for each message that has it, in no particular order.
    fn contents(
        &self,
        ids: &[MessageId],
        destination: Destination,
        stage: Stage,
    ) -> impl Future<Output = Result<Vec<(MessageId, Vec<u8>)>>> + Send;
}

/// Durable work queues: at-least-once delivery with leases, retries and dead letters.
///
/// An item is claimed with a lease; whoever holds the lease acks it (done) or nacks it
/// (failed: retried later, or dead after `max_attempts`). A lease that runs out makes the item
/// claimable again, so the work of a crashed worker is picked up by another. A lease still
/// counts as held after it ran out as long as nobody else claimed the item; once someone has,
/// the old holder's ack or nack fails with [`StoreError::LeaseNotHeld`].
pub trait Queues: Send + Sync {
    /// Leases to `owner`, for `lease`, up to `limit` items of `queue` that are READY and due,
    /// or LEASED with a lease that ran out; in the order they became due (enqueued, retry
    /// time reached, lease ran out), then in enqueue order.
    fn claim(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<QueueItem>>> + Send;

    /// Marks an item `owner` holds as DONE.
    fn ack(&self, item: QueueItemId, owner: &str) -> impl Future<Output = Result<()>> + Send;

    /// Records a failed attempt on an item `owner` holds: one more attempt, `error` kept;
    /// DEAD if the attempts reach `max_attempts`, else READY again at `retry_at`. Returns the
    /// new state.
    fn nack(
        &self,
        item: QueueItemId,
        owner: &str,
        retry_at: Timestamp,
        error: &str,
        max_attempts: u32,
    ) -> impl Future<Output = Result<QueueState>> + Send;

    /// The DEAD items of `queue`, oldest first.
    fn dead_letters(&self, queue: &str) -> impl Future<Output = Result<Vec<QueueItem>>> + Send;

    /// Makes a DEAD item READY again, now, with its attempts reset.
    fn requeue_dead(&self, item: QueueItemId) -> impl Future<Output = Result<()>> + Send;

    /// Strict FIFO claim, for destinations that must deliver in order: looks at `queue`'s
    /// READY and LEASED items in id (enqueue) order and leases to `owner`, for `lease`, the
    /// longest prefix — at most `limit` items — of items claimable now: READY and due, LEASED
    /// with a lease that ran out, or LEASED to `owner` itself (whose lease is renewed). It
    /// stops at the first item that is not: READY but not due yet (a nacked item waiting for
    /// its retry time blocks the queue until then) or leased to another owner whose lease
    /// still runs. DEAD items do not block. Two callers, on one node or several, never get
    /// the same head.
    ///
    /// Order holds as long as a holder keeps every lease it holds alive ([`Queues::extend_lease`]
    /// or claiming again): an item whose lease ran out is claimable by another owner even while
    /// its old holder still holds later items. Use either `claim` or `claim_head` on a queue,
    /// not both. On PostgreSQL, items enqueued by transactions that commit concurrently are
    /// ordered by id, which need not be their commit order; items one producer enqueues one
    /// after another keep their order.
    fn claim_head(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<QueueItem>>> + Send;

    /// Reads, changing nothing, the items at the head of `queue` that `owner` already holds:
    /// looks at `queue`'s READY and LEASED items in id order, passes over those in `skip`
    /// (items the caller is still delivering), and returns the longest prefix — at most
    /// `limit` items — of items LEASED to `owner`, stopping at the first item that is not
    /// (READY, or leased to another owner). Whether a lease ran out does not matter here:
    /// the caller looks at `lease_until` itself.
    ///
    /// For an ordered worker whose items were enqueued already leased to it (see
    /// [`Enqueue::lease`]): it delivers them in order without a claim, which is a write. It
    /// claims ([`Queues::claim_head`]) when this returns nothing, since an item it does not
    /// hold may be at the head, and to renew leases that are about to run out. On SQLite a
    /// read on a read connection; on PostgreSQL one query.
    fn held_head(
        &self,
        queue: &str,
        owner: &str,
        skip: &[QueueItemId],
        limit: u32,
    ) -> impl Future<Output = Result<Vec<QueueItem>>> + Send;

    /// Makes the lease `owner` holds on `item` run until `lease` from now. Fails with
    /// [`StoreError::LeaseNotHeld`] if the item is no longer leased to `owner` (another owner
    /// claimed it since, or it was acked or nacked).
    fn extend_lease(
        &self,
        item: QueueItemId,
        owner: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// How many items of `queue` are READY, LEASED and DEAD.
    fn queue_depth(&self, queue: &str) -> impl Future<Output = Result<QueueDepth>> + Send;

    /// The names of the queues that have READY, LEASED or DEAD items, sorted.
    fn queue_names(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// A whole store: journal, queues and FHIR resources, plus statistics and an orderly
/// shutdown.
pub trait Store: Journal + Queues + Resources + Security + Audit {
    /// Counters of the writes since the store was opened.
    fn stats(&self) -> StoreStats;

    /// Commits what is pending and releases connections and threads. Later calls fail with
    /// [`StoreError::Closed`].
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Checks every transition of an `apply` before anything is sent to the database.
fn check_transitions(transitions: &[Transition]) -> Result<()> {
    transitions.iter().try_for_each(Transition::validate)
}

/// Refuses what no backend may store as content.
fn check_put_content(id: MessageId, destination: Destination, stage: Stage) -> Result<()> {
    if destination == 0 && stage == Stage::Raw {
        return Err(StoreError::InvalidArgument {
            op: "put_content",
            reason: format!("the received bytes of message {id} cannot be replaced"),
        });
    }
    Ok(())
}

/// Either backend, chosen at run time from a [`StoreConfig`].
#[derive(Debug)]
pub enum AnyStore {
    /// The embedded SQLite store.
    Sqlite(SqliteStore),
    /// The PostgreSQL store.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store `config` describes, migrating its schema.
    pub async fn open(config: &StoreConfig) -> Result<Self> {
        Ok(match config {
            StoreConfig::Sqlite(c) => Self::Sqlite(SqliteStore::open(c).await?),
            StoreConfig::Postgres(c) => Self::Postgres(PgStore::open(c).await?),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Whether an ordered queue's new items should be stored leased to its one worker
    /// ([`Enqueue::lease`]) and read back with [`Queues::held_head`] rather than claimed batch
    /// by batch. Both backends support either way; this says which is faster. On SQLite a claim
    /// is a write through the single writer thread, and the hand-off saves it. On PostgreSQL
    /// delivery fell behind arrival with the hand-off (two loaded pairs of `plexus bench
    /// channel`: 1,048 and 1,449 delivered/s against 1,958 and 1,803 with claims; cause not
    /// found), so it claims.
    pub fn prefers_hand_off(&self) -> bool {
        match self {
            Self::Sqlite(_) => true,
            Self::Postgres(_) => false,
        }
    }

    /// Whether, and with which keys, the store encrypts at rest.
    pub(crate) fn crypto(&self) -> &crypto::Crypto {
        match self {
            Self::Sqlite(s) => s.crypto(),
            Self::Postgres(s) => s.crypto(),
        }
    }

    /// The id of the key new data is encrypted with (`None`: the store does not encrypt).
    pub fn active_key_id(&self) -> Option<&str> {
        self.crypto().active_key()
    }
}

/// Forwards a call to whichever backend an [`AnyStore`] holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl Journal for AnyStore {
    async fn append(&self, message: NewMessage) -> Result<MessageId> {
        dispatch!(self, s => s.append(message).await)
    }

    async fn put_content(
        &self,
        id: MessageId,
        destination: Destination,
        stage: Stage,
        bytes: Vec<u8>,
    ) -> Result<()> {
        dispatch!(self, s => s.put_content(id, destination, stage, bytes).await)
    }

    async fn set_status(&self, id: MessageId, status: Status, error: Option<String>) -> Result<()> {
        dispatch!(self, s => s.set_status(id, status, error).await)
    }

    async fn get(&self, id: MessageId) -> Result<Option<StoredMessage>> {
        dispatch!(self, s => s.get(id).await)
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        dispatch!(self, s => s.list(filter).await)
    }

    async fn count(&self, filter: &MessageFilter) -> Result<u64> {
        dispatch!(self, s => s.count(filter).await)
    }

    async fn apply(&self, transitions: Vec<Transition>) -> Result<()> {
        dispatch!(self, s => s.apply(transitions).await)
    }

    async fn prunable(
        &self,
        channel: &str,
        older_than: Option<Timestamp>,
        keep_last: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MessageId>> {
        dispatch!(self, s => s.prunable(channel, older_than, keep_last, limit).await)
    }

    async fn delete(&self, ids: &[MessageId]) -> Result<u64> {
        dispatch!(self, s => s.delete(ids).await)
    }

    async fn contents(
        &self,
        ids: &[MessageId],
        destination: Destination,
        stage: Stage,
    ) -> Result<Vec<(MessageId, Vec<u8>)>> {
        dispatch!(self, s => s.contents(ids, destination, stage).await)
    }
}

impl Queues for AnyStore {
    async fn claim(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        dispatch!(self, s => s.claim(queue, owner, lease, limit).await)
    }

    async fn ack(&self, item: QueueItemId, owner: &str) -> Result<()> {
        dispatch!(self, s => s.ack(item, owner).await)
    }

    async fn nack(
        &self,
        item: QueueItemId,
        owner: &str,
        retry_at: Timestamp,
        error: &str,
        max_attempts: u32,
    ) -> Result<QueueState> {
        dispatch!(self, s => s.nack(item, owner, retry_at, error, max_attempts).await)
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<QueueItem>> {
        dispatch!(self, s => s.dead_letters(queue).await)
    }

    async fn requeue_dead(&self, item: QueueItemId) -> Result<()> {
        dispatch!(self, s => s.requeue_dead(item).await)
    }

    async fn claim_head(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        dispatch!(self, s => s.claim_head(queue, owner, lease, limit).await)
    }

    async fn held_head(
        &self,
        queue: &str,
        owner: &str,
        skip: &[QueueItemId],
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        dispatch!(self, s => s.held_head(queue, owner, skip, limit).await)
    }

    async fn extend_lease(&self, item: QueueItemId, owner: &str, lease: Duration) -> Result<()> {
        dispatch!(self, s => s.extend_lease(item, owner, lease).await)
    }

    async fn queue_depth(&self, queue: &str) -> Result<QueueDepth> {
        dispatch!(self, s => s.queue_depth(queue).await)
    }

    async fn queue_names(&self) -> Result<Vec<String>> {
        dispatch!(self, s => s.queue_names().await)
    }
}

impl Resources for AnyStore {
    async fn write(&self, writes: Vec<ResourceWrite>) -> Result<Vec<WriteOutcome>> {
        dispatch!(self, s => s.write(writes).await)
    }

    async fn read(
        &self,
        resource_type: &str,
        id: &str,
        version: Option<u64>,
    ) -> Result<Option<StoredResource>> {
        dispatch!(self, s => s.read(resource_type, id, version).await)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        dispatch!(self, s => s.history(query).await)
    }

    async fn search(&self, request: &fhir::search::SearchRequest) -> Result<SearchPage> {
        dispatch!(self, s => s.search(request).await)
    }
}

impl Security for AnyStore {
    async fn put_user(&self, user: UserRecord) -> Result<()> {
        dispatch!(self, s => s.put_user(user).await)
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        dispatch!(self, s => Security::user(s, name).await)
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        dispatch!(self, s => s.users().await)
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_user(name).await)
    }

    async fn put_client(&self, client: ClientRecord) -> Result<()> {
        dispatch!(self, s => s.put_client(client).await)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        // PgStore has a private inherent `client` (a pool connection): name the trait's.
        dispatch!(self, s => Security::client(s, client_id).await)
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>> {
        dispatch!(self, s => s.clients().await)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_client(client_id).await)
    }

    async fn put_grant(&self, grant: Grant) -> Result<bool> {
        dispatch!(self, s => s.put_grant(grant).await)
    }

    async fn take_grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        dispatch!(self, s => s.take_grant(kind, key, now).await)
    }

    async fn grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        dispatch!(self, s => Security::grant(s, kind, key, now).await)
    }

    async fn grants_of(&self, kind: &str, subject: &str, now: Timestamp) -> Result<Vec<Grant>> {
        dispatch!(self, s => s.grants_of(kind, subject, now).await)
    }

    async fn delete_grant(&self, kind: &str, key: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_grant(kind, key).await)
    }

    async fn delete_family(&self, family: &str) -> Result<u64> {
        dispatch!(self, s => s.delete_family(family).await)
    }

    async fn purge_grants(&self, now: Timestamp) -> Result<u64> {
        dispatch!(self, s => s.purge_grants(now).await)
    }
}

impl Audit for AnyStore {
    async fn audit_append(&self, records: Vec<NewAuditRecord>) -> Result<()> {
        dispatch!(self, s => s.audit_append(records).await)
    }

    async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        dispatch!(self, s => s.audit_search(query).await)
    }

    async fn audit_get(&self, seq: i64) -> Result<Option<AuditEntry>> {
        dispatch!(self, s => s.audit_get(seq).await)
    }

    async fn audit_verify(&self, anchor: Option<audit::AuditAnchor>) -> Result<AuditVerification> {
        dispatch!(self, s => s.audit_verify(anchor).await)
    }
}

impl Store for AnyStore {
    fn stats(&self) -> StoreStats {
        dispatch!(self, s => s.stats())
    }

    async fn close(&self) -> Result<()> {
        dispatch!(self, s => s.close().await)
    }
}
