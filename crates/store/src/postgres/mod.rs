//! The PostgreSQL backend: a deadpool connection pool, every table in one schema (the
//! connections' `search_path`), one transaction per write, queue claims with
//! `FOR UPDATE SKIP LOCKED` so several nodes can share a queue.
//!
//! An append is one statement (data-modifying CTEs insert the journal row, metadata, content
//! stages, destination rows and queue items), so it costs one round trip and one durable
//! commit, shared with the other appends of its batch.
//! Lease times use the database's clock, shared by every node.

mod audit;
mod crypto_ops;
mod engine_ops;
mod group;
mod resources;
mod rows;
mod security;

use std::sync::Arc;

use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::config::PostgresConfig;
use crate::counters::Counters;
use crate::crypto::{Crypto, LoadedKeys, Row as SealedRow};
use crate::error::{Result, StoreError, Subject};
use crate::model::{
    Destination, MessageFilter, MessageId, MessageSummary, NewMessage, QueueDepth, QueueItem,
    QueueItemId, QueueState, Shared, Stage, Status, StoreStats, StoredMessage, Transition,
    add_shared,
};
use crate::resources::{
    HistoryPage, HistoryQuery, ResourceWrite, Resources, SearchPage, StoredResource, WriteOutcome,
};
use crate::sql::{self, ITEM_COLUMNS, POSTGRES_MIGRATIONS, Param, SUMMARY_COLUMNS};
use crate::time::{Timestamp, duration_micros};
use crate::{Journal, Queues, Store};

/// The shared store: tables in one schema of a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    schema: String,
    counters: Arc<Counters>,
    appends: group::GroupCommit,
    /// The batcher of audit appends (one chain per schema, see `audit`).
    audit: audit::AuditWriter,
    /// When to refresh the FHIR tables' planner statistics (see `resources::analyze_when_grown`).
    fhir_growth: Arc<resources::Growth>,
    /// Encryption at rest (off unless configured).
    crypto: Crypto,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Whether `name` can be used unquoted as a schema name.
fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
        && !name.starts_with("pg_")
}

impl PgStore {
    /// Connects to `config.url`, creates the schema if missing and migrates it.
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        if !valid_schema_name(&config.schema) {
            return Err(StoreError::Config(format!(
                "schema name {:?} must be lower-case letters, digits and _ (not starting with a \
                 digit or pg_, at most 63 characters)",
                config.schema
            )));
        }
        if config.pool_size == 0 {
            return Err(StoreError::Config(
                "postgres pool_size must be at least 1".to_owned(),
            ));
        }
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let options = match pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c search_path={}", config.schema),
            _ => format!("-c search_path={}", config.schema),
        };
        pg.options(&options);
        if pg.get_application_name().is_none() {
            pg.application_name("plexus");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_mins(1)))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the PostgreSQL pool: {e}")))?;
        let keys = config
            .encryption
            .as_ref()
            .map(LoadedKeys::load)
            .transpose()?;
        let counters = Arc::new(Counters::default());
        // a few batchers commit in parallel; each batch is one transaction
        let batchers = (config.pool_size / 4).clamp(1, 4);
        let appends = group::GroupCommit::idle();
        let mut store = Self {
            audit: audit::AuditWriter::start(&pool, &config.schema),
            pool,
            schema: config.schema.clone(),
            counters,
            appends,
            fhir_growth: Arc::new(resources::Growth::default()),
            crypto: Crypto::off(),
        };
        store.migrate().await?;
        store.crypto = crypto_ops::setup(&store, keys).await?;
        store.appends =
            group::GroupCommit::start(&store.pool, &store.counters, batchers, 500, &store.crypto);
        tracing::info!(schema = %store.schema, "PostgreSQL store opened");
        Ok(store)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Whether, and with which keys, the store encrypts at rest.
    pub(crate) fn crypto(&self) -> &Crypto {
        &self.crypto
    }

    async fn client(&self, op: &'static str) -> Result<Object> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed { op });
        }
        self.pool
            .get()
            .await
            .map_err(|source| StoreError::Pool { op, source })
    }

    /// Creates the schema and applies missing migrations in one transaction, serialised
    /// between nodes by an advisory lock.
    async fn migrate(&self) -> Result<()> {
        const OP: &str = "migrate";
        let schema = &self.schema;
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("plexus-migrate:{schema}")],
        )
        .await
        .map_err(StoreError::pg(OP))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             SET LOCAL search_path TO {schema};
             CREATE TABLE IF NOT EXISTS plexus_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(StoreError::pg(OP))?;
        let found: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM plexus_migrations",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StoreError::pg(OP))?;
        let supported = sql::latest(POSTGRES_MIGRATIONS);
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        for m in POSTGRES_MIGRATIONS.iter().filter(|m| m.version > found) {
            let applied = async {
                tx.batch_execute(m.sql).await?;
                tx.execute(
                    "INSERT INTO plexus_migrations (version) VALUES ($1)",
                    &[&m.version],
                )
                .await
            };
            applied.await.map_err(|e| StoreError::Migration {
                version: m.version,
                source: Box::new(StoreError::Postgres {
                    op: OP,
                    subject: crate::error::Subject::None,
                    source: e,
                }),
            })?;
            tracing::info!(version = m.version, schema, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(StoreError::pg(OP))
    }

    fn committed(&self, messages: u64) {
        self.counters.add(1, 1, messages);
    }

    /// Why a conditional queue update changed nothing: the item is missing or its lease gone
    /// (as seen by `client`, a connection or a transaction).
    async fn lease_error(
        client: &impl deadpool_postgres::GenericClient,
        op: &'static str,
        item: QueueItemId,
        owner: &str,
    ) -> Result<StoreError> {
        let row = client
            .query_opt(
                "SELECT state, lease_owner FROM queue_items WHERE id = $1",
                &[&item.0],
            )
            .await
            .map_err(StoreError::pg(op))?;
        Ok(match row {
            None => StoreError::QueueItemNotFound { op, item },
            Some(row) => StoreError::LeaseNotHeld {
                op,
                item,
                owner: owner.to_owned(),
                state: rows::parse(op, "queue_items.state", rows::get(&row, 0, op)?)?,
                holder: rows::get(&row, 1, op)?,
            },
        })
    }
}

/// The filter's values as PostgreSQL parameters.
fn pg_params(params: Vec<Param>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s),
                Param::Time(t) => Box::new(t.to_system_time()),
            }
        })
        .collect()
}

impl Journal for PgStore {
    async fn append(&self, message: NewMessage) -> Result<MessageId> {
        let subject = Subject::Channel(message.channel.clone());
        async {
            message.validate()?;
            self.appends.append(message).await
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn put_content(
        &self,
        id: MessageId,
        destination: Destination,
        stage: Stage,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let subject = Subject::Message(id);
        async {
            const OP: &str = "put_content";
            crate::check_put_content(id, destination, stage)?;
            let bytes = self.crypto.seal(
                SealedRow::Content(&id.to_string(), destination, stage),
                &bytes,
            )?;
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
                     SELECT id, $2, $3, now(), $4 FROM messages WHERE id = $1
                     ON CONFLICT (message_id, destination, stage)
                     DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at",
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let changed = client
                .execute(
                    &stmt,
                    &[
                        &id.to_string(),
                        &i32::from(destination),
                        &stage.as_str(),
                        &bytes.as_ref(),
                    ],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            if changed == 0 {
                return Err(StoreError::MessageNotFound { op: OP, id });
            }
            self.committed(0);
            Ok(())
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn set_status(&self, id: MessageId, status: Status, error: Option<String>) -> Result<()> {
        let subject = Subject::Message(id);
        async {
            const OP: &str = "set_status";
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached("UPDATE messages SET status = $2, error = $3 WHERE id = $1")
                .await
                .map_err(StoreError::pg(OP))?;
            let changed = client
                .execute(&stmt, &[&id.to_string(), &status.as_str(), &error])
                .await
                .map_err(StoreError::pg(OP))?;
            if changed == 0 {
                return Err(StoreError::MessageNotFound { op: OP, id });
            }
            self.committed(0);
            Ok(())
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn get(&self, id: MessageId) -> Result<Option<StoredMessage>> {
        let subject = Subject::Message(id);
        async {
            const OP: &str = "get";
            let mut client = self.client(OP).await?;
            let id_text = id.to_string();
            // One snapshot for the four reads.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(StoreError::pg(OP))?;
            let summary_sql = format!("SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id = $1");
            let Some(row) = tx
                .query_opt(&summary_sql, &[&id_text])
                .await
                .map_err(StoreError::pg(OP))?
            else {
                return Ok(None);
            };
            let summary = rows::summary(&row, OP)?;
            let meta = tx
                .query(
                    "SELECT key, value, sealed FROM message_metadata WHERE message_id = $1 \
                     ORDER BY seq",
                    &[&id_text],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let content = tx
                .query(
                    "SELECT destination, stage, bytes, created_at FROM message_content
                     WHERE message_id = $1",
                    &[&id_text],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let destinations = tx
                .query(
                    "SELECT destination, name, status, error, updated_at, shared
                     FROM message_destinations WHERE message_id = $1 ORDER BY destination",
                    &[&id_text],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            tx.commit().await.map_err(StoreError::pg(OP))?;
            let mut shared = Vec::with_capacity(destinations.len());
            let destinations = destinations
                .iter()
                .map(|r| {
                    let d = rows::destination_status(r, OP)?;
                    let bits: i16 = rows::get(r, 5, OP)?;
                    shared.push((d.destination, Shared::from_bits(bits.into()), d.updated_at));
                    Ok(d)
                })
                .collect::<Result<Vec<_>>>()?;
            let metadata = meta
                .iter()
                .map(|r| {
                    let key: String = rows::get(r, 0, OP)?;
                    let value = self.crypto.open_metadata(
                        OP,
                        &id_text,
                        &key,
                        rows::get(r, 1, OP)?,
                        rows::get(r, 2, OP)?,
                    )?;
                    Ok((key, value))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut content = content
                .iter()
                .map(|r| {
                    let mut c = rows::content(r, OP)?;
                    let row = SealedRow::Content(&id_text, c.destination, c.stage);
                    c.bytes = self.crypto.open(OP, row, std::mem::take(&mut c.bytes))?;
                    Ok(c)
                })
                .collect::<Result<Vec<_>>>()?;
            add_shared(&mut content, &shared);
            Ok(Some(StoredMessage {
                summary,
                metadata,
                content,
                destinations,
            }))
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        const OP: &str = "list";
        let filter = &*self.crypto.filter(filter);
        let w = sql::filter_clause(filter, true, &sql::INDEXED_COLUMNS, |n| format!("${n}"));
        let query = format!(
            "SELECT {SUMMARY_COLUMNS} FROM messages m {} ORDER BY m.id DESC LIMIT ${}",
            w.sql,
            w.params.len() + 1
        );
        let mut params = pg_params(w.params);
        params.push(Box::new(i64::from(filter.effective_limit())));
        let bound: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client(OP).await?;
        let found = client
            .query(&query, &bound)
            .await
            .map_err(StoreError::pg(OP))?;
        found.iter().map(|r| rows::summary(r, OP)).collect()
    }

    async fn count(&self, filter: &MessageFilter) -> Result<u64> {
        const OP: &str = "count";
        let filter = &*self.crypto.filter(filter);
        let w = sql::filter_clause(filter, false, &sql::INDEXED_COLUMNS, |n| format!("${n}"));
        let query = format!("SELECT count(*) FROM messages m {}", w.sql);
        let params = pg_params(w.params);
        let bound: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client(OP).await?;
        let n: i64 = client
            .query_one(&query, &bound)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(StoreError::pg(OP))?;
        Ok(n.unsigned_abs())
    }
    async fn apply(&self, transitions: Vec<Transition>) -> Result<()> {
        let subject = engine_ops::apply_subject(&transitions);
        engine_ops::apply(self, transitions)
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
        engine_ops::prunable(self, channel, older_than, keep_last, limit)
            .await
            .map_err(|e| e.about(Subject::Channel(channel.to_owned())))
    }

    async fn delete(&self, ids: &[MessageId]) -> Result<u64> {
        engine_ops::delete(self, ids).await
    }

    async fn contents(
        &self,
        ids: &[MessageId],
        destination: Destination,
        stage: Stage,
    ) -> Result<Vec<(MessageId, Vec<u8>)>> {
        engine_ops::contents(self, ids, destination, stage).await
    }
}

impl Queues for PgStore {
    async fn claim(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        let subject = Subject::Queue(queue.to_owned());
        async {
            const OP: &str = "claim";
            if limit == 0 {
                return Ok(Vec::new());
            }
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(&format!(
                    "WITH c AS (
                         SELECT id FROM queue_items
                         WHERE queue = $1 AND state IN ('READY', 'LEASED') AND available_at <= now()
                         ORDER BY available_at, id
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     ), t AS (
                         SELECT now() + $4::bigint * interval '1 microsecond' AS until
                     )
                     UPDATE queue_items q
                     SET state = 'LEASED', lease_owner = $3, lease_until = t.until,
                         available_at = t.until
                     FROM c, t
                     WHERE q.id = c.id
                     RETURNING {}",
                    ITEM_COLUMNS
                        .split(", ")
                        .map(|c| format!("q.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .await
                .map_err(StoreError::pg(OP))?;
            let found = client
                .query(
                    &stmt,
                    &[&queue, &i64::from(limit), &owner, &duration_micros(lease)],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            self.committed(0);
            let mut items = found
                .iter()
                .map(|r| rows::item(r, OP))
                .collect::<Result<Vec<_>>>()?;
            items.sort_by_key(|i| i.id);
            Ok(items)
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn ack(&self, item: QueueItemId, owner: &str) -> Result<()> {
        let subject = Subject::QueueItem(item);
        async {
            const OP: &str = "ack";
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE queue_items SET state = 'DONE', lease_until = NULL
                     WHERE id = $1 AND state = 'LEASED' AND lease_owner = $2",
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let changed = client
                .execute(&stmt, &[&item.0, &owner])
                .await
                .map_err(StoreError::pg(OP))?;
            if changed == 0 {
                return Err(Self::lease_error(&client, OP, item, owner).await?);
            }
            self.committed(0);
            Ok(())
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn nack(
        &self,
        item: QueueItemId,
        owner: &str,
        retry_at: Timestamp,
        error: &str,
        max_attempts: u32,
    ) -> Result<QueueState> {
        let subject = Subject::QueueItem(item);
        async {
            const OP: &str = "nack";
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE queue_items
                     SET attempts = attempts + 1, last_error = $3, lease_until = NULL,
                         available_at = $4,
                         state = CASE WHEN attempts + 1 >= $5::bigint THEN 'DEAD' ELSE 'READY' END
                     WHERE id = $1 AND state = 'LEASED' AND lease_owner = $2
                     RETURNING state",
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let retry_at: SystemTime = retry_at.to_system_time();
            let row = client
                .query_opt(
                    &stmt,
                    &[&item.0, &owner, &error, &retry_at, &i64::from(max_attempts)],
                )
                .await
                .map_err(StoreError::pg(OP))?;
            match row {
                Some(row) => {
                    self.committed(0);
                    rows::parse(OP, "queue_items.state", rows::get(&row, 0, OP)?)
                }
                None => Err(Self::lease_error(&client, OP, item, owner).await?),
            }
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<QueueItem>> {
        let subject = Subject::Queue(queue.to_owned());
        async {
            const OP: &str = "dead_letters";
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM queue_items WHERE queue = $1 AND state = 'DEAD' \
                     ORDER BY id"
                ))
                .await
                .map_err(StoreError::pg(OP))?;
            let found = client
                .query(&stmt, &[&queue])
                .await
                .map_err(StoreError::pg(OP))?;
            found
                .iter()
                .map(|r| rows::item(r, OP))
                .collect::<Result<_>>()
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }

    async fn requeue_dead(&self, item: QueueItemId) -> Result<()> {
        let subject = Subject::QueueItem(item);
        async {
            const OP: &str = "requeue_dead";
            let client = self.client(OP).await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE queue_items SET state = 'READY', attempts = 0, available_at = now(),
                     lease_until = NULL WHERE id = $1 AND state = 'DEAD'",
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let changed = client
                .execute(&stmt, &[&item.0])
                .await
                .map_err(StoreError::pg(OP))?;
            if changed > 0 {
                self.committed(0);
                return Ok(());
            }
            let row = client
                .query_opt("SELECT state FROM queue_items WHERE id = $1", &[&item.0])
                .await
                .map_err(StoreError::pg(OP))?;
            Err(match row {
                None => StoreError::QueueItemNotFound { op: OP, item },
                Some(row) => StoreError::WrongQueueState {
                    op: OP,
                    item,
                    state: rows::parse(OP, "queue_items.state", rows::get(&row, 0, OP)?)?,
                    expected: QueueState::Dead,
                },
            })
        }
        .await
        .map_err(|e: StoreError| e.about(subject))
    }
    async fn claim_head(
        &self,
        queue: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        engine_ops::claim_head(self, queue, owner, lease, limit)
            .await
            .map_err(|e| e.about(Subject::Queue(queue.to_owned())))
    }

    async fn held_head(
        &self,
        queue: &str,
        owner: &str,
        skip: &[QueueItemId],
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        engine_ops::held_head(self, queue, owner, skip, limit)
            .await
            .map_err(|e| e.about(Subject::Queue(queue.to_owned())))
    }

    async fn extend_lease(&self, item: QueueItemId, owner: &str, lease: Duration) -> Result<()> {
        engine_ops::extend_lease(self, item, owner, lease)
            .await
            .map_err(|e| e.about(Subject::QueueItem(item)))
    }

    async fn queue_depth(&self, queue: &str) -> Result<QueueDepth> {
        engine_ops::queue_depth(self, queue)
            .await
            .map_err(|e| e.about(Subject::Queue(queue.to_owned())))
    }

    async fn queue_names(&self) -> Result<Vec<String>> {
        engine_ops::queue_names(self).await
    }
}

impl Resources for PgStore {
    async fn write(&self, writes: Vec<ResourceWrite>) -> Result<Vec<WriteOutcome>> {
        crate::resource_sql::check_writes(&writes)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        resources::write(self, &writes).await
    }

    async fn read(
        &self,
        resource_type: &str,
        id: &str,
        version: Option<u64>,
    ) -> Result<Option<StoredResource>> {
        resources::read(self, resource_type, id, version).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        resources::history(self, query).await
    }

    async fn search(&self, request: &fhir::search::SearchRequest) -> Result<SearchPage> {
        resources::search(self, request).await
    }
}

impl Store for PgStore {
    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    async fn close(&self) -> Result<()> {
        self.appends.close();
        self.pool.close();
        tracing::info!(schema = %self.schema, "PostgreSQL store closed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_schema_name;

    #[test]
    fn schema_names() {
        for ok in ["plexus", "_x", "plexus_test_01"] {
            assert!(valid_schema_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Plexus",
            "1x",
            "a-b",
            "a;drop",
            "pg_catalog",
            &"x".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
