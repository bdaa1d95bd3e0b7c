//! Group commit for PostgreSQL appends.
//!
//! One commit per message makes every append wait for its own WAL flush. Here appends go to a
//! few batcher tasks; each takes everything pending (up to a bound), sends the inserts of the
//! whole batch pipelined on one connection inside one transaction, commits once and answers
//! every caller. Under load the batches grow by themselves. If the batch fails, each of its
//! appends is run again in a transaction of its own, so one bad append cannot fail the others.

use std::sync::Arc;

use deadpool_postgres::Pool;
use futures_util::future::try_join_all;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::error::SqlState;

use crate::counters::Counters;
use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::model::{MessageId, NewMessage, route_only_to_text};
use crate::time::duration_micros;

/// The statement a plain append runs: journal row, metadata, RAW content and READY queue
/// items. Parameters `$1..$20` of [`Row::params`] (`$20`: the encrypted metadata values, an
/// empty array when encryption is off, which `unnest` pads with NULLs).
pub(super) const APPEND_SQL: &str = "WITH m AS (
         INSERT INTO messages (id, channel, received_at, peer_addr, tls_subject,
             message_type, trigger_event, control_id, sending_application,
             sending_facility, status, error, original_id, route_only)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $17, $18, $19)
         RETURNING id
     ), md AS (
         INSERT INTO message_metadata (message_id, seq, key, value, sealed)
         SELECT m.id, (kv.ord - 1)::int, kv.key, kv.value, kv.sealed
         FROM m, unnest($12::text[], $13::text[], $20::bytea[])
             WITH ORDINALITY AS kv(key, value, sealed, ord)
     ), c AS (
         INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
         SELECT m.id, 0, 'RAW', now(), $14 FROM m
     )
     INSERT INTO queue_items (queue, message_id, destination, attempts, available_at, state)
     SELECT q.queue, m.id, q.destination, 0, now(), 'READY'
     FROM m, unnest($15::text[], $16::int[]) AS q(queue, destination)";

/// The statement an append that carries its source side's outcome runs (see
/// [`carries_source_side`]): as [`APPEND_SQL`], plus content stages, destination rows and
/// queue items LEASED when a lease owner is given. Parameters `$1..$30` of [`Row::params`].
/// Plain appends keep the smaller statement, which costs the server less.
pub(super) const APPEND_SOURCE_SIDE_SQL: &str = "WITH m AS (
         INSERT INTO messages (id, channel, received_at, peer_addr, tls_subject,
             message_type, trigger_event, control_id, sending_application,
             sending_facility, status, error, original_id, route_only)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $17, $18, $19)
         RETURNING id
     ), md AS (
         INSERT INTO message_metadata (message_id, seq, key, value, sealed)
         SELECT m.id, (kv.ord - 1)::int, kv.key, kv.value, kv.sealed
         FROM m, unnest($12::text[], $13::text[], $20::bytea[])
             WITH ORDINALITY AS kv(key, value, sealed, ord)
     ), c AS (
         INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
         SELECT m.id, 0, 'RAW', now(), $14::bytea FROM m
         UNION ALL
         SELECT m.id, s.destination, s.stage, now(), s.bytes
         FROM m, unnest($21::int[], $22::text[], $23::bytea[]) AS s(destination, stage, bytes)
     ), d AS (
         INSERT INTO message_destinations
             (message_id, destination, name, status, error, updated_at, shared)
         SELECT m.id, r.destination, r.name, r.status, r.error, now(), r.shared
         FROM m, unnest($24::int[], $25::text[], $26::text[], $27::text[], $30::smallint[])
             AS r(destination, name, status, error, shared)
     )
     INSERT INTO queue_items (queue, message_id, destination, attempts, available_at, state,
         lease_owner, lease_until)
     SELECT q.queue, m.id, q.destination, 0, coalesce(q.until, now()),
         CASE WHEN q.owner IS NULL THEN 'READY' ELSE 'LEASED' END, q.owner, q.until
     FROM m, (SELECT u.queue, u.destination, u.owner,
                     now() + u.lease * interval '1 microsecond' AS until
              FROM unnest($15::text[], $16::int[], $28::text[], $29::bigint[])
                  AS u(queue, destination, owner, lease)) AS q";

/// Parameters of [`APPEND_SQL`]: the first ones of [`APPEND_SOURCE_SIDE_SQL`].
const PLAIN_PARAMS: usize = 20;

/// Whether `m` needs [`APPEND_SOURCE_SIDE_SQL`].
fn carries_source_side(m: &NewMessage) -> bool {
    !m.content.is_empty()
        || !m.destinations.is_empty()
        || m.enqueue.iter().any(|e| e.lease.is_some())
}

const OP: &str = "append";

/// An append waiting for its batch.
pub(super) struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<MessageId>>,
}

/// The handle appends are sent through; the batchers stop when it is closed.
pub(super) struct GroupCommit {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
}

/// What encryption at rest stores instead of a message's own bytes and metadata values
/// (nothing when off).
#[derive(Default)]
pub(super) struct Sealed {
    /// The received bytes, encrypted.
    pub raw: Option<Vec<u8>>,
    /// The content stages (of `last_content()`), encrypted, in order.
    pub content: Vec<Vec<u8>>,
    /// The metadata values as blind indexes, in order.
    pub values: Vec<String>,
    /// The metadata values encrypted, in order.
    pub metadata: Vec<Vec<u8>>,
}

impl Sealed {
    fn of(crypto: &Crypto, m: &NewMessage, id: &str) -> Result<Self> {
        Self::parts(crypto, id, Some(&m.raw), &m.last_content(), &m.metadata)
    }

    /// The encrypted parts of a message `id`'s write.
    pub(super) fn parts(
        crypto: &Crypto,
        id: &str,
        raw: Option<&[u8]>,
        content: &[(crate::model::Destination, crate::model::Stage, &[u8])],
        metadata: &[(String, String)],
    ) -> Result<Self> {
        if !crypto.is_on() {
            return Ok(Self::default());
        }
        let mut s = Self::default();
        if let Some(raw) = raw {
            let row = SealedRow::Content(id, 0, crate::model::Stage::Raw);
            s.raw = Some(crypto.seal(row, raw)?.into_owned());
        }
        for &(d, stage, bytes) in content {
            s.content.push(
                crypto
                    .seal(SealedRow::Content(id, d, stage), bytes)?
                    .into_owned(),
            );
        }
        for (key, value) in metadata {
            let (value, sealed) = crypto.metadata(id, key, value)?;
            s.values.push(value.into_owned());
            s.metadata.extend(sealed);
        }
        Ok(s)
    }
}

impl GroupCommit {
    /// Starts `batchers` tasks committing batches of at most `max_batch` appends.
    pub(super) fn start(
        pool: &Pool,
        counters: &Arc<Counters>,
        batchers: usize,
        max_batch: usize,
        crypto: &Crypto,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch * batchers * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..batchers.max(1) {
            tokio::spawn(run(
                pool.clone(),
                Arc::clone(&rx),
                Arc::clone(counters),
                max_batch.max(1),
                crypto.clone(),
            ));
        }
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
        }
    }

    /// A handle that takes no appends (until the store replaces it with a started one).
    pub(super) fn idle() -> Self {
        Self {
            tx: std::sync::Mutex::new(None),
        }
    }

    /// Appends through the next batch; returns once it is committed.
    pub(super) async fn append(&self, message: NewMessage) -> Result<MessageId> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let tx = tx.ok_or(StoreError::Closed { op: OP })?;
        let (reply, answer) = oneshot::channel();
        tx.send(Job { message, reply })
            .await
            .map_err(|_| StoreError::Closed { op: OP })?;
        answer.await.map_err(|_| StoreError::Closed { op: OP })?
    }

    /// Stops taking appends; the batchers finish what is queued and stop.
    pub(super) fn close(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

async fn run(
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    counters: Arc<Counters>,
    max_batch: usize,
    crypto: Crypto,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            jobs.push(first);
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
        match commit(&pool, &messages, &crypto).await {
            Ok(ids) => {
                counters.add(1, ids.len() as u64, ids.len() as u64);
                for (job, id) in jobs.into_iter().zip(ids) {
                    let _ = job.reply.send(Ok(id));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(job) = jobs.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, appends = jobs.len(), "PostgreSQL batch failed; appending one by one");
                for job in jobs {
                    let result = commit(&pool, &[&job.message], &crypto)
                        .await
                        .map(|ids| ids[0]);
                    if result.is_ok() {
                        counters.add(1, 1, 1);
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Appends the messages in one transaction, their inserts pipelined on one connection.
async fn commit(pool: &Pool, messages: &[&NewMessage], crypto: &Crypto) -> Result<Vec<MessageId>> {
    if pool.is_closed() {
        return Err(StoreError::Closed { op: OP });
    }
    let mut client = pool
        .get()
        .await
        .map_err(|source| StoreError::Pool { op: OP, source })?;
    let plain = client
        .prepare_cached(APPEND_SQL)
        .await
        .map_err(StoreError::pg(OP))?;
    let full = if messages.iter().any(|m| carries_source_side(m)) {
        Some(
            client
                .prepare_cached(APPEND_SOURCE_SIDE_SQL)
                .await
                .map_err(StoreError::pg(OP))?,
        )
    } else {
        None
    };
    let ids = messages
        .iter()
        .map(|m| m.id.map_or_else(MessageId::generate, Ok))
        .collect::<Result<Vec<_>>>()?;
    let id_texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let sealed = messages
        .iter()
        .zip(&id_texts)
        .map(|(m, id)| Sealed::of(crypto, m, id))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<Row<'_>> = messages
        .iter()
        .zip(&sealed)
        .map(|(m, s)| Row::of(m, s))
        .collect();
    let params: Vec<_> = rows
        .iter()
        .zip(&id_texts)
        .map(|(r, id)| r.params(id))
        .collect();
    // each append with its statement and that statement's parameters
    let calls: Vec<_> = messages
        .iter()
        .zip(&params)
        .map(|(m, p)| match &full {
            Some(full) if carries_source_side(m) => (full, &p[..]),
            _ => (&plain, &p[..PLAIN_PARAMS]),
        })
        .collect();
    if let [(stmt, one)] = calls.as_slice() {
        // alone: one statement is its own transaction, one round trip
        client
            .execute(*stmt, one)
            .await
            .map_err(|e| append_error(e, ids[0]))?;
        return Ok(ids);
    }
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    let inserts = calls.iter().map(|(stmt, p)| tx.execute(*stmt, p));
    try_join_all(inserts).await.map_err(StoreError::pg(OP))?;
    tx.commit().await.map_err(StoreError::pg(OP))?;
    Ok(ids)
}

/// The error of a failed append: [`StoreError::DuplicateMessageId`] if the message's id is
/// stored already. (In a batch of several, an error fails the batch, whose appends are then
/// run one by one, so the one with the duplicate id gets this error.)
fn append_error(e: tokio_postgres::Error, id: MessageId) -> StoreError {
    let duplicate = e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().is_some_and(|db| {
            db.table() == Some("messages") && db.constraint() == Some("messages_pkey")
        });
    if duplicate {
        StoreError::DuplicateMessageId { op: OP, id }
    } else {
        StoreError::pg(OP)(e)
    }
}

/// The parameters of one append, borrowed from its message.
struct Row<'m> {
    m: &'m NewMessage,
    received_at: std::time::SystemTime,
    status: &'static str,
    raw: &'m [u8],
    keys: Vec<&'m str>,
    values: Vec<&'m str>,
    sealed: Vec<&'m [u8]>,
    queues: Vec<&'m str>,
    destinations: Vec<i32>,
    lease_owners: Vec<Option<&'m str>>,
    lease_micros: Vec<Option<i64>>,
    original_id: Option<String>,
    route_only: Option<String>,
    content_destinations: Vec<i32>,
    content_stages: Vec<&'static str>,
    content_bytes: Vec<&'m [u8]>,
    dest_numbers: Vec<i32>,
    dest_names: Vec<&'m str>,
    dest_statuses: Vec<&'static str>,
    dest_errors: Vec<Option<&'m str>>,
    dest_shared: Vec<i16>,
}

impl<'m> Row<'m> {
    fn of(m: &'m NewMessage, sealed: &'m Sealed) -> Self {
        let (keys, mut values): (Vec<&str>, Vec<&str>) = m
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        if !sealed.values.is_empty() {
            values = sealed.values.iter().map(String::as_str).collect();
        }
        let mut content = m.last_content();
        for (c, s) in content.iter_mut().zip(&sealed.content) {
            c.2 = s.as_slice();
        }
        let rows = m.last_destination_updates();
        Self {
            m,
            received_at: m.received_at.to_system_time(),
            status: m.status.as_str(),
            raw: sealed.raw.as_deref().unwrap_or(&m.raw),
            keys,
            values,
            sealed: sealed.metadata.iter().map(Vec::as_slice).collect(),
            queues: m.enqueue.iter().map(|e| e.queue.as_str()).collect(),
            destinations: m.enqueue.iter().map(|e| i32::from(e.destination)).collect(),
            lease_owners: m
                .enqueue
                .iter()
                .map(|e| e.lease.as_ref().map(|(owner, _)| owner.as_str()))
                .collect(),
            lease_micros: m
                .enqueue
                .iter()
                .map(|e| e.lease.as_ref().map(|(_, lease)| duration_micros(*lease)))
                .collect(),
            original_id: m.original_id.map(|id| id.to_string()),
            route_only: m.route_only.as_deref().map(route_only_to_text),
            content_destinations: content.iter().map(|(d, _, _)| i32::from(*d)).collect(),
            content_stages: content.iter().map(|(_, s, _)| s.as_str()).collect(),
            content_bytes: content.iter().map(|(_, _, b)| *b).collect(),
            dest_numbers: rows.iter().map(|(d, _)| i32::from(d.destination)).collect(),
            dest_names: rows.iter().map(|(d, _)| d.name.as_str()).collect(),
            dest_statuses: rows.iter().map(|(d, _)| d.status.as_str()).collect(),
            dest_errors: rows.iter().map(|(d, _)| d.error.as_deref()).collect(),
            dest_shared: rows.iter().map(|(_, s)| i16::from(s.bits())).collect(),
        }
    }

    fn params<'a>(&'a self, id: &'a String) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 30] {
        let m = self.m;
        [
            id,
            &m.channel,
            &self.received_at,
            &m.peer_addr,
            &m.tls_subject,
            &m.message_type,
            &m.trigger_event,
            &m.control_id,
            &m.sending_application,
            &m.sending_facility,
            &self.status,
            &self.keys,
            &self.values,
            &self.raw,
            &self.queues,
            &self.destinations,
            &m.error,
            &self.original_id,
            &self.route_only,
            &self.sealed,
            &self.content_destinations,
            &self.content_stages,
            &self.content_bytes,
            &self.dest_numbers,
            &self.dest_names,
            &self.dest_statuses,
            &self.dest_errors,
            &self.lease_owners,
            &self.lease_micros,
            &self.dest_shared,
        ]
    }
}
