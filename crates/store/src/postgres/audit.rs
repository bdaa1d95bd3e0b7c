//! The audit trail on PostgreSQL.
//!
//! One chain per schema, shared by every node: an append takes a transaction-scoped advisory
//! lock on the schema's audit key, reads the head, inserts the rows after it and commits,
//! which releases the lock. So appends from all nodes are serialised, and seqs have no gaps
//! (they are not from a sequence, whose values a rolled-back transaction would lose).
//!
//! Taking the lock once per append would cost one commit (one WAL flush) per record while
//! everyone else waits; so the appends of a node go to one batcher task that takes everything
//! pending, appends it all in one transaction and answers each caller after the commit (group
//! commit, as for messages). If a batch fails, its appends are run again one by one, so a bad
//! one fails alone.

use std::time::SystemTime;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{PgStore, rows};
use crate::audit::{
    AUDIT_COLUMNS, Audit, AuditAnchor, AuditEntry, AuditParam, AuditQuery, AuditVerification,
    ChainHash, NewAuditRecord, StoredRow, VERIFY_BATCH, Verifier, chain, where_clause,
};
use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// Most records one batch carries.
const MAX_BATCH_RECORDS: usize = 1_000;

const INSERT_SQL: &str = "INSERT INTO audit_event (seq, recorded, action, outcome, type_code, \
         subtype, agent, client_id, source_addr, patient, entity, detail, event, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
         $13::text[], $14::bytea[], $15::bytea[])";

struct Pending {
    records: Vec<NewAuditRecord>,
    reply: oneshot::Sender<Result<()>>,
}

/// The batcher of a store's audit appends.
pub(super) struct AuditWriter {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the batcher task on `pool`, appending to `schema`'s chain.
    pub(super) fn start(pool: &Pool, schema: &str) -> Self {
        let (tx, rx) = mpsc::channel(1_024);
        let lock_key = format!("plexus-audit:{schema}");
        tokio::spawn(run(pool.clone(), lock_key, rx));
        Self { tx }
    }

    async fn append(&self, records: Vec<NewAuditRecord>) -> Result<()> {
        const OP: &str = "audit_append";
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { records, reply })
            .await
            .map_err(|_| StoreError::Closed { op: OP })?;
        answer.await.map_err(|_| StoreError::Closed { op: OP })?
    }
}

/// The batcher: take what is pending, append it in one transaction, answer.
async fn run(pool: Pool, lock_key: String, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut records = batch[0].records.len();
        while records < MAX_BATCH_RECORDS {
            match rx.try_recv() {
                Ok(p) => {
                    records += p.records.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        if pool.is_closed() {
            for p in batch {
                let _ = p.reply.send(Err(StoreError::Closed { op: "audit_append" }));
            }
            continue;
        }
        let all: Vec<NewAuditRecord> = batch.iter().flat_map(|p| p.records.clone()).collect();
        match append_batch(&pool, &lock_key, &all).await {
            Ok(()) => {
                for p in batch {
                    let _ = p.reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(p) = batch.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, appends = batch.len(), "audit batch failed; appending one by one");
                for p in batch {
                    let result = append_batch(&pool, &lock_key, &p.records).await;
                    let _ = p.reply.send(result);
                }
            }
        }
    }
}

/// Appends `records` in one transaction under the chain lock.
async fn append_batch(pool: &Pool, lock_key: &str, records: &[NewAuditRecord]) -> Result<()> {
    const OP: &str = "audit_append";
    let mut client = pool
        .get()
        .await
        .map_err(|source| StoreError::Pool { op: OP, source })?;
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
        .await
        .map_err(StoreError::pg(OP))?;
    let head = tx
        .query_opt(
            "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(StoreError::pg(OP))?
        .map(|row| -> Result<(i64, ChainHash)> {
            let seq: i64 = rows::get(&row, 0, OP)?;
            let hash: Vec<u8> = rows::get(&row, 1, OP)?;
            ChainHash::try_from(hash.as_slice())
                .map(|h| (seq, h))
                .map_err(|_| StoreError::Corrupt {
                    op: OP,
                    column: "audit_event.hash",
                    value: format!("seq {seq}"),
                })
        })
        .transpose()?;
    let chained = chain(head, records)?;
    let n = chained.len();
    let mut seqs = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut texts: [Vec<Option<&str>>; 11] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut prev = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for row in &chained {
        let r = &row.record;
        seqs.push(row.seq);
        recorded.push(r.recorded.to_system_time());
        let columns = [
            Some(r.action.as_str()),
            Some(r.outcome.as_str()),
            Some(r.type_code.as_str()),
            r.subtype.as_deref(),
            Some(r.agent.as_str()),
            r.client_id.as_deref(),
            r.source_addr.as_deref(),
            r.patient.as_deref(),
            r.entity.as_deref(),
            r.detail.as_deref(),
            Some(row.event_text.as_str()),
        ];
        for (column, value) in texts.iter_mut().zip(columns) {
            column.push(value);
        }
        prev.push(row.prev_hash.as_slice());
        hashes.push(row.hash.as_slice());
    }
    let stmt = tx
        .prepare_cached(INSERT_SQL)
        .await
        .map_err(StoreError::pg(OP))?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&seqs, &recorded];
    params.extend(texts.iter().map(|t| t as &(dyn ToSql + Sync)));
    params.push(&prev);
    params.push(&hashes);
    tx.execute(&stmt, &params)
        .await
        .map_err(StoreError::pg(OP))?;
    tx.commit().await.map_err(StoreError::pg(OP))
}

fn stored_row(row: &tokio_postgres::Row, op: &'static str) -> Result<StoredRow> {
    Ok(StoredRow {
        seq: rows::get(row, 0, op)?,
        record: NewAuditRecord {
            recorded: Timestamp::from(rows::get::<SystemTime>(row, 1, op)?),
            action: rows::get(row, 2, op)?,
            outcome: rows::get(row, 3, op)?,
            type_code: rows::get(row, 4, op)?,
            subtype: rows::get(row, 5, op)?,
            agent: rows::get(row, 6, op)?,
            client_id: rows::get(row, 7, op)?,
            source_addr: rows::get(row, 8, op)?,
            patient: rows::get(row, 9, op)?,
            entity: rows::get(row, 10, op)?,
            detail: rows::get(row, 11, op)?,
            event: serde_json::Value::Null,
        },
        event_text: rows::get(row, 12, op)?,
        prev_hash: rows::get(row, 13, op)?,
        hash: rows::get(row, 14, op)?,
    })
}

impl Audit for PgStore {
    async fn audit_append(&self, records: Vec<NewAuditRecord>) -> Result<()> {
        records.iter().try_for_each(NewAuditRecord::validate)?;
        if records.is_empty() {
            return Ok(());
        }
        if self.pool.is_closed() {
            return Err(StoreError::Closed { op: "audit_append" });
        }
        self.audit.append(records).await?;
        self.committed(0);
        Ok(())
    }

    async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        const OP: &str = "audit_search";
        query.validate()?;
        let w = where_clause(query, |n| format!("${n}"));
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_event {} ORDER BY seq DESC LIMIT {}",
            w.sql,
            query.effective_limit()
        );
        let values: Vec<Box<dyn ToSql + Sync + Send>> = w
            .params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    AuditParam::Text(t) => Box::new(t),
                    AuditParam::Time(t) => Box::new(t.to_system_time()),
                    AuditParam::Int(i) => Box::new(i),
                }
            })
            .collect();
        let bound: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client(OP).await?;
        let found = client
            .query(&sql, &bound)
            .await
            .map_err(StoreError::pg(OP))?;
        found
            .iter()
            .map(|r| stored_row(r, OP)?.into_entry(OP))
            .collect()
    }

    async fn audit_get(&self, seq: i64) -> Result<Option<AuditEntry>> {
        const OP: &str = "audit_get";
        let client = self.client(OP).await?;
        client
            .query_opt(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq = $1"),
                &[&seq],
            )
            .await
            .map_err(StoreError::pg(OP))?
            .map(|r| stored_row(&r, OP)?.into_entry(OP))
            .transpose()
    }

    async fn audit_verify(&self, anchor: Option<AuditAnchor>) -> Result<AuditVerification> {
        const OP: &str = "audit_verify";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .await
            .map_err(StoreError::pg(OP))?;
        let mut verifier = Verifier::new(anchor);
        loop {
            let after = verifier.last_seq();
            let found = client
                .query(&stmt, &[&after, &i64::from(VERIFY_BATCH)])
                .await
                .map_err(StoreError::pg(OP))?;
            for row in &found {
                verifier.row(&stored_row(row, OP)?);
            }
            if found.len() < VERIFY_BATCH as usize {
                return Ok(verifier.finish());
            }
        }
    }
}
