//! FHIR resources on SQLite: writes run as one request of the writer thread (so the
//! preconditions of concurrent writes are checked one after another, never at the same time),
//! reads and searches on the read connections.

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, ToSql, params_from_iter};

use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::resource_sql::search::{self, IncludePlan};
use crate::resource_sql::{
    self, Current, Dialect, INDEX_TABLES, IndexRows, ResourceRow, Sql, Target, Value,
};
use crate::resources::{
    HistoryMethod, HistoryPage, HistoryQuery, Precondition, ResourceWrite, SearchPage,
    StoredResource, WriteOp, WriteOutcome,
};
use crate::time::Timestamp;

const D: Dialect = Dialect::Sqlite;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Value::Text(t) => t.to_sql(),
            Value::Int(i) => i.to_sql(),
            Value::Float(f) => f.to_sql(),
        }
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        rid: r.get(0)?,
        resource_type: r.get(1)?,
        id: r.get(2)?,
        version: r.get(3)?,
        last_updated: r.get(4)?,
        deleted: r.get(5)?,
        method: r.get(6)?,
        content: r.get(7)?,
    })
}

fn query_rows(conn: &Connection, op: &'static str, sql: &Sql) -> Result<Vec<ResourceRow>> {
    let mut stmt = conn
        .prepare_cached(&sql.text)
        .map_err(StoreError::sqlite(op))?;
    stmt.query_map(params_from_iter(sql.params.iter()), row)
        .and_then(Iterator::collect)
        .map_err(StoreError::sqlite(op))
}

fn query_ints(conn: &Connection, op: &'static str, sql: &Sql) -> Result<Vec<i64>> {
    let mut stmt = conn
        .prepare_cached(&sql.text)
        .map_err(StoreError::sqlite(op))?;
    stmt.query_map(params_from_iter(sql.params.iter()), |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(StoreError::sqlite(op))
}

/// The current versions of `rids`, in that order.
fn load(
    conn: &Connection,
    op: &'static str,
    rids: &[i64],
    crypto: &Crypto,
) -> Result<Vec<StoredResource>> {
    let mut found = std::collections::HashMap::new();
    for chunk in rids.chunks(resource_sql::IN_CHUNK) {
        for r in query_rows(conn, op, &resource_sql::load_sql(D, chunk))? {
            found.insert(r.rid, r);
        }
    }
    rids.iter()
        .filter_map(|rid| found.remove(rid))
        .map(|r| r.into_stored(op, crypto))
        .collect()
}

pub(super) fn read(
    conn: &Connection,
    rtype: &str,
    id: &str,
    version: Option<u64>,
    crypto: &Crypto,
) -> Result<Option<StoredResource>> {
    const OP: &str = "read";
    query_rows(conn, OP, &resource_sql::read_sql(D, rtype, id, version))?
        .into_iter()
        .next()
        .map(|r| r.into_stored(OP, crypto))
        .transpose()
}

pub(super) fn history(conn: &Connection, q: &HistoryQuery, crypto: &Crypto) -> Result<HistoryPage> {
    const OP: &str = "history";
    let (page, count) = resource_sql::history_sql(D, q)?;
    let versions = query_rows(conn, OP, &page)?
        .into_iter()
        .map(|r| r.into_stored(OP, crypto))
        .collect::<Result<_>>()?;
    let total = query_ints(conn, OP, &count)?.first().copied().unwrap_or(0);
    Ok(HistoryPage {
        versions,
        total: total.unsigned_abs(),
    })
}

pub(super) fn search(
    conn: &Connection,
    req: &fhir::search::SearchRequest,
    crypto: &Crypto,
) -> Result<SearchPage> {
    const OP: &str = "search";
    let compiled = search::compile(D, req, crypto)?;
    let rids = match &compiled.page {
        Some(sql) => query_ints(conn, OP, sql)?,
        None => Vec::new(),
    };
    let total = match (&compiled.count, search::total_from_page(req, rids.len())) {
        (Some(_), Some(known)) => Some(known),
        (Some(sql), None) => Some(
            query_ints(conn, OP, sql)?
                .first()
                .copied()
                .unwrap_or(0)
                .unsigned_abs(),
        ),
        (None, _) => None,
    };
    let mut plan = IncludePlan::new(D, req, &rids);
    while let Some(queries) = plan.next_round() {
        let mut found = Vec::new();
        for q in &queries {
            found.extend(query_ints(conn, OP, q)?);
        }
        plan.found(found);
    }
    Ok(SearchPage {
        matches: load(conn, OP, &rids, crypto)?,
        included: load(conn, OP, &plan.included, crypto)?,
        total,
    })
}

/// Runs the writes of one `Resources::write` call inside the writer's transaction, under a
/// savepoint that is rolled back if a precondition fails.
pub(super) fn write(
    conn: &Connection,
    writes: &[ResourceWrite],
    crypto: &Crypto,
) -> Result<Vec<WriteOutcome>> {
    const OP: &str = "write";
    // Only a precondition can fail a write without an error (an error rolls back the whole
    // batch of the writer anyway): without one, the savepoint is not needed.
    if writes
        .iter()
        .all(|w| matches!(w.precondition, Precondition::None))
    {
        return write_all(conn, writes, crypto);
    }
    conn.execute_batch("SAVEPOINT fhir_write")
        .map_err(StoreError::sqlite(OP))?;
    let result = write_all(conn, writes, crypto);
    let keep = matches!(&result, Ok(outcomes) if !outcomes.iter().any(WriteOutcome::is_failure));
    let end = if keep {
        "RELEASE fhir_write"
    } else {
        "ROLLBACK TO fhir_write; RELEASE fhir_write"
    };
    conn.execute_batch(end).map_err(StoreError::sqlite(OP))?;
    result
}

fn write_all(
    conn: &Connection,
    writes: &[ResourceWrite],
    crypto: &Crypto,
) -> Result<Vec<WriteOutcome>> {
    let now = Timestamp::now();
    writes
        .iter()
        .map(|w| write_one(conn, w, now, crypto))
        .collect()
}

fn current(conn: &Connection, rtype: &str, id: &str) -> Result<Current> {
    conn.prepare_cached(
        "SELECT rid, version, deleted FROM fhir_resource WHERE type = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.query_row([rtype, id], |r| {
            Ok(Current::Present {
                rid: r.get(0)?,
                version: r.get(1)?,
                deleted: r.get(2)?,
            })
        })
        .optional()
    })
    .map(|c| c.unwrap_or(Current::Absent))
    .map_err(StoreError::sqlite("write"))
}

/// Where a write goes, after its precondition's search.
fn resolve(conn: &Connection, w: &ResourceWrite, crypto: &Crypto) -> Result<Target> {
    const OP: &str = "write";
    let (Precondition::IfNoneExist(req) | Precondition::Match(req) | Precondition::NoneExist(req)) =
        &w.precondition
    else {
        return Ok(Target::Id(w.id.clone()));
    };
    let sql = search::matches_sql(D, &w.resource_type, req, 2, crypto)?;
    let found = query_ints(conn, OP, &sql)?;
    let creating = matches!(
        w.precondition,
        Precondition::IfNoneExist(_) | Precondition::NoneExist(_)
    );
    if creating && found.is_empty() {
        return Ok(Target::Id(w.id.clone()));
    }
    if let Some(t) = resource_sql::target_of(w, &found) {
        return Ok(t);
    }
    let existing = load(conn, OP, &found, crypto)?.into_iter().next();
    Ok(match existing {
        None => Target::Done(WriteOutcome::NotFound),
        Some(r) if matches!(w.precondition, Precondition::NoneExist(_)) => {
            Target::Done(WriteOutcome::MatchAppeared(r))
        }
        Some(r) if creating => Target::Done(WriteOutcome::Existing(r)),
        Some(r) => Target::Id(r.id),
    })
}

fn write_one(
    conn: &Connection,
    w: &ResourceWrite,
    now: Timestamp,
    crypto: &Crypto,
) -> Result<WriteOutcome> {
    const OP: &str = "write";
    let rtype = w.resource_type.as_str();
    let id = match resolve(conn, w, crypto)? {
        Target::Id(id) => id,
        Target::Done(outcome) => return Ok(outcome),
    };
    let cur = current(conn, rtype, &id)?;
    if let Precondition::IfMatch(v) = w.precondition
        && cur.live_version() != Some(v)
    {
        return Ok(WriteOutcome::VersionConflict(cur.live_version()));
    }
    let (rid, version, method) = match (w.op, cur) {
        (WriteOp::Create, Current::Present { .. }) => {
            return Err(resource_sql::exists_error(rtype, &id));
        }
        (WriteOp::Delete, Current::Absent | Current::Present { deleted: true, .. }) => {
            return Ok(WriteOutcome::NotFound);
        }
        (op, Current::Absent) => {
            let rid = conn
                .prepare_cached(
                    "INSERT INTO fhir_resource (type, id, version, last_updated, deleted)
                     VALUES (?1, ?2, 1, ?3, 0) RETURNING rid",
                )
                .and_then(|mut s| {
                    s.query_row(rusqlite::params![rtype, id, now.as_micros()], |r| r.get(0))
                })
                .map_err(StoreError::sqlite(OP))?;
            let method = if op == WriteOp::Create {
                HistoryMethod::Create
            } else {
                HistoryMethod::Update
            };
            (rid, 1, method)
        }
        (op, Current::Present { rid, version, .. }) => {
            let method = if op == WriteOp::Delete {
                HistoryMethod::Delete
            } else {
                HistoryMethod::Update
            };
            conn.prepare_cached(
                "UPDATE fhir_resource SET version = ?2, last_updated = ?3, deleted = ?4
                 WHERE rid = ?1",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    rid,
                    version + 1,
                    now.as_micros(),
                    op == WriteOp::Delete
                ])
            })
            .map_err(StoreError::sqlite(OP))?;
            (rid, version + 1, method)
        }
    };
    let fresh = matches!(cur, Current::Absent);
    let stored = store_version(conn, w, (rid, id, version, method), now, fresh, crypto)?;
    Ok(resource_sql::outcome(stored, cur))
}

/// Stores the version row and replaces the index rows (`fresh`: a new row id, which has
/// none to delete).
fn store_version(
    conn: &Connection,
    w: &ResourceWrite,
    (rid, id, version, method): (i64, String, i64, HistoryMethod),
    now: Timestamp,
    fresh: bool,
    crypto: &Crypto,
) -> Result<StoredResource> {
    const OP: &str = "write";
    let stored = resource_sql::new_version(w, id, version, method, now)?;
    let content = if stored.deleted {
        std::borrow::Cow::Borrowed(&stored.content[..])
    } else {
        crypto.seal(
            SealedRow::Resource(&stored.resource_type, &stored.id, version),
            &stored.content,
        )?
    };
    conn.prepare_cached(
        "INSERT INTO fhir_version (rid, version, last_updated, deleted, method, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            rid,
            version,
            now.as_micros(),
            stored.deleted,
            resource_sql::method_code(method),
            content
        ])
    })
    .map_err(StoreError::sqlite(OP))?;
    let index: &[fhir::index::IndexEntry] = if stored.deleted { &[] } else { &w.index };
    replace_index(conn, rid, &w.resource_type, index, fresh, crypto)?;
    Ok(stored)
}

/// Replaces the index rows of `rid`.
fn replace_index(
    conn: &Connection,
    rid: i64,
    rtype: &str,
    entries: &[fhir::index::IndexEntry],
    fresh: bool,
    crypto: &Crypto,
) -> Result<()> {
    const OP: &str = "write";
    let e = StoreError::sqlite(OP);
    let run = || -> rusqlite::Result<()> {
        if !fresh {
            for table in INDEX_TABLES {
                conn.prepare_cached(&format!("DELETE FROM {table} WHERE rid = ?1"))?
                    .execute([rid])?;
            }
        }
        let rows = crypto.index_rows(IndexRows::new(entries));
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_string (rid, type, param, grp, pos, normalized, exact)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (k, n, x) in &rows.strings {
            s.execute(rusqlite::params![rid, rtype, k.param, k.grp, k.pos, n, x])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_token (rid, type, param, grp, pos, system, code, display,
             type_system, type_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (k, [a, b, c, d, f]) in &rows.tokens {
            s.execute(rusqlite::params![
                rid, rtype, k.param, k.grp, k.pos, a, b, c, d, f
            ])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_reference (rid, type, param, grp, pos, target_type, target_id,
             url, identifier_system, identifier_value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (k, [a, b, c, d, f]) in &rows.references {
            s.execute(rusqlite::params![
                rid, rtype, k.param, k.grp, k.pos, a, b, c, d, f
            ])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_date (rid, type, param, grp, pos, low, high, fast)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for ((k, lo, hi), fast) in rows.dates.iter().zip(rows.date_fast()) {
            s.execute(rusqlite::params![
                rid, rtype, k.param, k.grp, k.pos, lo, hi, fast
            ])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_number (rid, type, param, grp, pos, value, low, high)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (k, v, lo, hi) in &rows.numbers {
            s.execute(rusqlite::params![
                rid, rtype, k.param, k.grp, k.pos, v, lo, hi
            ])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_quantity (rid, type, param, grp, pos, system, code, unit,
             value, low, high) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (k, [a, b, c], v, lo, hi) in &rows.quantities {
            s.execute(rusqlite::params![
                rid, rtype, k.param, k.grp, k.pos, a, b, c, v, lo, hi
            ])?;
        }
        let mut s = conn.prepare_cached(
            "INSERT INTO fhir_idx_uri (rid, type, param, grp, pos, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (k, v) in &rows.uris {
            s.execute(rusqlite::params![rid, rtype, k.param, k.grp, k.pos, v])?;
        }
        Ok(())
    };
    run().map_err(e)
}
