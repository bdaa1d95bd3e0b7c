//! The audit trail on SQLite: appends are requests of the writer thread, so they commit in
//! its group commit, and the chain head is read inside the same transaction that extends it
//! (the writer is the only one writing, so no two appends see the same head).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::SqliteStore;
use crate::audit::{
    AUDIT_COLUMNS, Audit, AuditAnchor, AuditEntry, AuditParam, AuditQuery, AuditVerification,
    ChainHash, NewAuditRecord, StoredRow, VERIFY_BATCH, Verifier, chain, where_clause,
};
use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// The newest row's seq and hash.
fn head(conn: &Connection, op: &'static str) -> Result<Option<(i64, ChainHash)>> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(StoreError::sqlite(op))?;
    found
        .map(|(seq, hash)| {
            ChainHash::try_from(hash.as_slice())
                .map(|h| (seq, h))
                .map_err(|_| StoreError::Corrupt {
                    op,
                    column: "audit_event.hash",
                    value: format!("seq {seq}"),
                })
        })
        .transpose()
}

/// Inserts `records` after the head, inside the writer's transaction.
fn append(conn: &Connection, records: &[NewAuditRecord]) -> Result<()> {
    const OP: &str = "audit_append";
    let rows = chain(head(conn, OP)?, records)?;
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT INTO audit_event ({AUDIT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))
        .map_err(StoreError::sqlite(OP))?;
    for row in &rows {
        let r = &row.record;
        insert
            .execute(params![
                row.seq,
                r.recorded.as_micros(),
                r.action,
                r.outcome,
                r.type_code,
                r.subtype,
                r.agent,
                r.client_id,
                r.source_addr,
                r.patient,
                r.entity,
                r.detail,
                row.event_text,
                row.prev_hash.as_slice(),
                row.hash.as_slice(),
            ])
            .map_err(StoreError::sqlite(OP))?;
    }
    Ok(())
}

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        seq: r.get(0)?,
        record: NewAuditRecord {
            recorded: Timestamp::from_micros(r.get(1)?),
            action: r.get(2)?,
            outcome: r.get(3)?,
            type_code: r.get(4)?,
            subtype: r.get(5)?,
            agent: r.get(6)?,
            client_id: r.get(7)?,
            source_addr: r.get(8)?,
            patient: r.get(9)?,
            entity: r.get(10)?,
            detail: r.get(11)?,
            event: serde_json::Value::Null,
        },
        event_text: r.get(12)?,
        prev_hash: r.get(13)?,
        hash: r.get(14)?,
    })
}

fn search(conn: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    const OP: &str = "audit_search";
    let w = where_clause(query, |n| format!("?{n}"));
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_event {} ORDER BY seq DESC LIMIT {}",
        w.sql,
        query.effective_limit()
    );
    let values: Vec<SqlValue> = w
        .params
        .into_iter()
        .map(|p| match p {
            AuditParam::Text(t) => SqlValue::Text(t),
            AuditParam::Time(t) => SqlValue::Integer(t.as_micros()),
            AuditParam::Int(i) => SqlValue::Integer(i),
        })
        .collect();
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::sqlite(OP))?;
    let rows = stmt
        .query_map(params_from_iter(values), stored_row)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(StoreError::sqlite(OP))?;
    rows.into_iter().map(|r| r.into_entry(OP)).collect()
}

fn get(conn: &Connection, seq: i64) -> Result<Option<AuditEntry>> {
    const OP: &str = "audit_get";
    conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq = ?1"
    ))
    .and_then(|mut s| s.query_row([seq], stored_row).optional())
    .map_err(StoreError::sqlite(OP))?
    .map(|r| r.into_entry(OP))
    .transpose()
}

/// The rows after `after`, oldest first, at most [`VERIFY_BATCH`].
fn batch(conn: &Connection, after: i64) -> Result<Vec<StoredRow>> {
    const OP: &str = "audit_verify";
    conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))
    .and_then(|mut s| {
        s.query_map(params![after, i64::from(VERIFY_BATCH)], stored_row)?
            .collect()
    })
    .map_err(StoreError::sqlite(OP))
}

impl Audit for SqliteStore {
    async fn audit_append(&self, records: Vec<NewAuditRecord>) -> Result<()> {
        records.iter().try_for_each(NewAuditRecord::validate)?;
        if records.is_empty() {
            return Ok(());
        }
        self.write("audit_append", 0, move |conn| append(conn, &records))
            .await
    }

    async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        query.validate()?;
        let query = query.clone();
        self.readers
            .run("audit_search", move |conn| search(conn, &query))
            .await
    }

    async fn audit_get(&self, seq: i64) -> Result<Option<AuditEntry>> {
        self.readers
            .run("audit_get", move |conn| get(conn, seq))
            .await
    }

    async fn audit_verify(&self, anchor: Option<AuditAnchor>) -> Result<AuditVerification> {
        let mut verifier = Verifier::new(anchor);
        loop {
            let after = verifier.last_seq();
            let rows = self
                .readers
                .run("audit_verify", move |conn| batch(conn, after))
                .await?;
            for row in &rows {
                verifier.row(row);
            }
            if rows.len() < VERIFY_BATCH as usize {
                return Ok(verifier.finish());
            }
        }
    }
}
