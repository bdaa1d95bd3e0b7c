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

use crate::counters::Counters;
use crate::error::{Result, StoreError};
use crate::model::{MessageId, NewMessage, route_only_to_text};

/// The statement one append runs: journal row, metadata, RAW content and queue items.
pub(super) const APPEND_SQL: &str = "WITH m AS (
         INSERT INTO messages (id, channel, received_at, peer_addr, tls_subject,
             message_type, trigger_event, control_id, sending_application,
             sending_facility, status, error, original_id, route_only)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $17, $18, $19)
         RETURNING id
     ), md AS (
         INSERT INTO message_metadata (message_id, seq, key, value)
         SELECT m.id, (kv.ord - 1)::int, kv.key, kv.value
         FROM m, unnest($12::text[], $13::text[]) WITH ORDINALITY AS kv(key, value, ord)
     ), c AS (
         INSERT INTO message_content (message_id, destination, stage, created_at, bytes)
         SELECT m.id, 0, 'RAW', now(), $14 FROM m
     )
     INSERT INTO queue_items (queue, message_id, destination, attempts, available_at, state)
     SELECT q.queue, m.id, q.destination, 0, now(), 'READY'
     FROM m, unnest($15::text[], $16::int[]) AS q(queue, destination)";

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

impl GroupCommit {
    /// Starts `batchers` tasks committing batches of at most `max_batch` appends.
    pub(super) fn start(
        pool: &Pool,
        counters: &Arc<Counters>,
        batchers: usize,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch * batchers * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..batchers.max(1) {
            tokio::spawn(run(
                pool.clone(),
                Arc::clone(&rx),
                Arc::clone(counters),
                max_batch.max(1),
            ));
        }
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
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
        match commit(&pool, &messages).await {
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
                    let result = commit(&pool, &[&job.message]).await.map(|ids| ids[0]);
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
async fn commit(pool: &Pool, messages: &[&NewMessage]) -> Result<Vec<MessageId>> {
    if pool.is_closed() {
        return Err(StoreError::Closed { op: OP });
    }
    let mut client = pool
        .get()
        .await
        .map_err(|source| StoreError::Pool { op: OP, source })?;
    let stmt = client
        .prepare_cached(APPEND_SQL)
        .await
        .map_err(StoreError::pg(OP))?;
    let ids = messages
        .iter()
        .map(|_| MessageId::generate())
        .collect::<Result<Vec<_>>>()?;
    let id_texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<Row<'_>> = messages.iter().map(|m| Row::of(m)).collect();
    let params: Vec<_> = rows
        .iter()
        .zip(&id_texts)
        .map(|(r, id)| r.params(id))
        .collect();
    if let [one] = params.as_slice() {
        // alone: one statement is its own transaction, one round trip
        client
            .execute(&stmt, one)
            .await
            .map_err(StoreError::pg(OP))?;
        return Ok(ids);
    }
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    let inserts = params.iter().map(|p| tx.execute(&stmt, p));
    try_join_all(inserts).await.map_err(StoreError::pg(OP))?;
    tx.commit().await.map_err(StoreError::pg(OP))?;
    Ok(ids)
}

/// The parameters of one append, borrowed from its message.
struct Row<'m> {
    m: &'m NewMessage,
    received_at: std::time::SystemTime,
    status: &'static str,
    keys: Vec<&'m str>,
    values: Vec<&'m str>,
    queues: Vec<&'m str>,
    destinations: Vec<i32>,
    original_id: Option<String>,
    route_only: Option<String>,
}

impl<'m> Row<'m> {
    fn of(m: &'m NewMessage) -> Self {
        let (keys, values) = m
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        Self {
            m,
            received_at: m.received_at.to_system_time(),
            status: m.status.as_str(),
            keys,
            values,
            queues: m.enqueue.iter().map(|e| e.queue.as_str()).collect(),
            destinations: m.enqueue.iter().map(|e| i32::from(e.destination)).collect(),
            original_id: m.original_id.map(|id| id.to_string()),
            route_only: m.route_only.as_deref().map(route_only_to_text),
        }
    }

    fn params<'a>(&'a self, id: &'a String) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 19] {
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
            &m.raw,
            &self.queues,
            &self.destinations,
            &m.error,
            &self.original_id,
            &self.route_only,
        ]
    }
}
