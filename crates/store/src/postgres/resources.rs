//! FHIR resources on PostgreSQL: a write call is one transaction. Conditional writes take a
//! transaction-scoped advisory lock on their search before they look, so identical conditional
//! creates on any number of nodes run one after another and only the first creates; every
//! write locks its resource row (`FOR UPDATE`, or the unique key on insert), so two writers
//! never make the same version.

use std::collections::HashMap;
use std::fmt::Write as _;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::resource_sql::search::{self, IncludePlan};
use crate::resource_sql::{self, Current, Dialect, IndexRows, ResourceRow, Sql, Target, Value};
use crate::resources::{
    HistoryMethod, HistoryPage, HistoryQuery, Precondition, ResourceWrite, SearchPage,
    StoredResource, WriteOp, WriteOutcome,
};
use crate::time::Timestamp;

const D: Dialect = Dialect::Postgres;

fn bound(params: &[Value]) -> Vec<Param> {
    params
        .iter()
        .map(|p| -> Param {
            match p {
                Value::Text(t) => Box::new(t.clone()),
                Value::Int(i) => Box::new(*i),
                Value::Float(f) => Box::new(*f),
            }
        })
        .collect()
}

async fn query(client: &impl GenericClient, op: &'static str, sql: &Sql) -> Result<Vec<Row>> {
    let params = bound(&sql.params);
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let stmt = client
        .prepare_cached(&sql.text)
        .await
        .map_err(StoreError::pg(op))?;
    client.query(&stmt, &refs).await.map_err(StoreError::pg(op))
}

async fn query_ints(client: &impl GenericClient, op: &'static str, sql: &Sql) -> Result<Vec<i64>> {
    query(client, op, sql)
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(StoreError::pg(op)))
        .collect()
}

async fn query_rows(
    client: &impl GenericClient,
    op: &'static str,
    sql: &Sql,
) -> Result<Vec<ResourceRow>> {
    query(client, op, sql)
        .await?
        .iter()
        .map(resource_row)
        .collect::<std::result::Result<_, tokio_postgres::Error>>()
        .map_err(StoreError::pg(op))
}

/// A row of [`resource_sql::RESOURCE_COLUMNS`].
fn resource_row(r: &Row) -> std::result::Result<ResourceRow, tokio_postgres::Error> {
    Ok(ResourceRow {
        rid: r.try_get(0)?,
        resource_type: r.try_get(1)?,
        id: r.try_get(2)?,
        version: r.try_get(3)?,
        last_updated: r.try_get(4)?,
        deleted: r.try_get(5)?,
        method: r.try_get(6)?,
        content: r.try_get(7)?,
    })
}

/// The current versions of `rids`, in that order.
async fn load(
    client: &impl GenericClient,
    op: &'static str,
    rids: &[i64],
    crypto: &Crypto,
) -> Result<Vec<StoredResource>> {
    let mut found = HashMap::new();
    for chunk in rids.chunks(resource_sql::IN_CHUNK) {
        for r in query_rows(client, op, &resource_sql::load_sql(D, chunk)).await? {
            found.insert(r.rid, r);
        }
    }
    rids.iter()
        .filter_map(|rid| found.remove(rid))
        .map(|r| r.into_stored(op, crypto))
        .collect()
}

pub(super) async fn read(
    store: &PgStore,
    rtype: &str,
    id: &str,
    version: Option<u64>,
) -> Result<Option<StoredResource>> {
    const OP: &str = "read";
    let client = store.client(OP).await?;
    query_rows(&client, OP, &resource_sql::read_sql(D, rtype, id, version))
        .await?
        .into_iter()
        .next()
        .map(|r| r.into_stored(OP, &store.crypto))
        .transpose()
}

pub(super) async fn history(store: &PgStore, q: &HistoryQuery) -> Result<HistoryPage> {
    const OP: &str = "history";
    let (page, count) = resource_sql::history_sql(D, q)?;
    let mut client = store.client(OP).await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(StoreError::pg(OP))?;
    let versions = query_rows(&tx, OP, &page)
        .await?
        .into_iter()
        .map(|r| r.into_stored(OP, &store.crypto))
        .collect::<Result<_>>()?;
    let total = query_ints(&tx, OP, &count).await?;
    tx.commit().await.map_err(StoreError::pg(OP))?;
    Ok(HistoryPage {
        versions,
        total: total.first().copied().unwrap_or(0).unsigned_abs(),
    })
}

pub(super) async fn search(
    store: &PgStore,
    req: &fhir::search::SearchRequest,
) -> Result<SearchPage> {
    const OP: &str = "search";
    let compiled = search::compile(D, req, &store.crypto)?;
    let mut client = store.client(OP).await?;
    let Some(page) = &compiled.page else {
        // `_count=0` / `_summary=count`: the count alone, one statement
        let counted = match &compiled.count {
            Some(sql) => Some(first_count(&client, OP, sql).await?),
            None => None,
        };
        return Ok(SearchPage {
            matches: Vec::new(),
            included: Vec::new(),
            total: search::total_of(req, None, counted),
        });
    };
    // The page, its resources and the count are one statement (one snapshot, one round
    // trip); with includes, the queries that follow share its snapshot in a read-only
    // transaction.
    let fused = search::page_with_resources(page, compiled.count.as_ref());
    if req.include.is_empty() && req.revinclude.is_empty() {
        let (matches, total) = fused_page(&client, req, &compiled, &fused, &store.crypto).await?;
        return Ok(SearchPage {
            matches: matches.into_iter().map(|m| m.1).collect(),
            included: Vec::new(),
            total,
        });
    }
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(StoreError::pg(OP))?;
    let (matches, total) = fused_page(&tx, req, &compiled, &fused, &store.crypto).await?;
    let rids: Vec<i64> = matches.iter().map(|m| m.0).collect();
    let mut plan = IncludePlan::new(D, req, &rids);
    let mut loaded = HashMap::new();
    while let Some(queries) = plan.next_round() {
        let mut found = Vec::new();
        for q in &queries {
            for r in query_rows(&tx, OP, &search::resources_of(q)).await? {
                found.push(r.rid);
                loaded.insert(r.rid, r);
            }
        }
        plan.found(found);
    }
    tx.commit().await.map_err(StoreError::pg(OP))?;
    let included = plan
        .included
        .iter()
        .filter_map(|rid| loaded.remove(rid))
        .map(|r| r.into_stored(OP, &store.crypto))
        .collect::<Result<_>>()?;
    Ok(SearchPage {
        matches: matches.into_iter().map(|m| m.1).collect(),
        included,
        total,
    })
}

/// Runs the statement of [`search::page_with_resources`]: the page's resources (with their
/// row ids, the probe row dropped) and the search's total.
async fn fused_page(
    client: &impl GenericClient,
    req: &fhir::search::SearchRequest,
    compiled: &search::Compiled,
    fused: &Sql,
    crypto: &Crypto,
) -> Result<(Vec<(i64, StoredResource)>, Option<u64>)> {
    const OP: &str = "search";
    let rows = query(client, OP, fused).await?;
    let mut counted = None;
    let mut page = Vec::with_capacity(rows.len());
    for r in &rows {
        if compiled.count.is_some() {
            let n: i64 = r.try_get(8).map_err(StoreError::pg(OP))?;
            counted = Some(n.unsigned_abs());
        }
        page.push(resource_row(r).map_err(StoreError::pg(OP))?);
    }
    let mut rids: Vec<i64> = page.iter().map(|r| r.rid).collect();
    let from_page = search::total_from_page(req, compiled, &mut rids);
    page.truncate(rids.len());
    if from_page.is_none()
        && counted.is_none()
        && let Some(sql) = &compiled.count
    {
        // an empty page past the end of the matches: no row carried the count
        counted = Some(first_count(client, OP, sql).await?);
    }
    let matches = page
        .into_iter()
        .map(|r| Ok((r.rid, r.into_stored(OP, crypto)?)))
        .collect::<Result<_>>()?;
    Ok((matches, search::total_of(req, from_page, counted)))
}

/// The first row's count of a count query.
async fn first_count(client: &impl GenericClient, op: &'static str, sql: &Sql) -> Result<u64> {
    Ok(query_ints(client, op, sql)
        .await?
        .first()
        .copied()
        .unwrap_or(0)
        .unsigned_abs())
}

/// Runs the writes of one `Resources::write` call in one transaction.
pub(super) async fn write(store: &PgStore, writes: &[ResourceWrite]) -> Result<Vec<WriteOutcome>> {
    const OP: &str = "write";
    let mut client = store.client(OP).await?;
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    let outcomes = if writes.len() > 1 && writes.iter().all(plain_create) {
        create_all(&tx, writes, &store.crypto).await?
    } else {
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            outcomes.push(write_one(&tx, w, &store.crypto).await?);
        }
        outcomes
    };
    if outcomes.iter().any(WriteOutcome::is_failure) {
        tx.rollback().await.map_err(StoreError::pg(OP))?;
    } else {
        tx.commit().await.map_err(StoreError::pg(OP))?;
        store.committed(0);
        analyze_when_grown(store, writes.len());
    }
    Ok(outcomes)
}

/// How many FHIR writes a store has committed, and at what count it next refreshes the
/// planner statistics of the FHIR tables.
#[derive(Debug)]
pub(super) struct Growth {
    written: std::sync::atomic::AtomicU64,
    next: std::sync::atomic::AtomicU64,
}

impl Default for Growth {
    fn default() -> Self {
        Self {
            written: std::sync::atomic::AtomicU64::new(0),
            next: std::sync::atomic::AtomicU64::new(1_000),
        }
    }
}

/// Runs `ANALYZE` on the FHIR tables in the background each time the writes of this process
/// have doubled (1,000, 2,000, 4,000, … then every 200,000). Search plans depend on the
/// tables' statistics; autovacuum keeps them fresh on a normal server, but it may be off, or
/// late after a bulk import, and a plan made for empty tables (nested loops over index rows)
/// makes a range search over a few thousand resources take minutes.
fn analyze_when_grown(store: &PgStore, n: usize) {
    use std::sync::atomic::Ordering;
    let growth = &store.fhir_growth;
    let written = growth.written.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    let next = growth.next.load(Ordering::Relaxed);
    if written < next {
        return;
    }
    let following = next.saturating_add(next.min(200_000));
    if growth
        .next
        .compare_exchange(next, following, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return; // another write took this turn
    }
    let pool = store.pool.clone();
    tokio::spawn(async move {
        let tables = std::iter::once("fhir_resource")
            .chain(std::iter::once("fhir_version"))
            .chain(crate::resource_sql::INDEX_TABLES)
            .collect::<Vec<_>>()
            .join(", ");
        let result = match pool.get().await {
            Ok(client) => client
                .batch_execute(&format!("ANALYZE {tables}"))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => tracing::debug!(written, "FHIR table statistics refreshed"),
            Err(error) => tracing::warn!(%error, "refreshing FHIR table statistics failed"),
        }
    });
}

async fn current(client: &impl GenericClient, rtype: &str, id: &str) -> Result<Current> {
    const OP: &str = "write";
    let stmt = client
        .prepare_cached(
            "SELECT rid, version, deleted FROM fhir_resource WHERE type = $1 AND id = $2
             FOR UPDATE",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    let row = client
        .query_opt(&stmt, &[&rtype, &id])
        .await
        .map_err(StoreError::pg(OP))?;
    row.map_or(Ok(Current::Absent), |r| {
        Ok(Current::Present {
            rid: r.try_get(0).map_err(StoreError::pg(OP))?,
            version: r.try_get(1).map_err(StoreError::pg(OP))?,
            deleted: r.try_get(2).map_err(StoreError::pg(OP))?,
        })
    })
}

/// Serialises conditional writes with the same search, until the transaction ends.
async fn lock_search(
    client: &impl GenericClient,
    rtype: &str,
    req: &fhir::search::SearchRequest,
    crypto: &Crypto,
) -> Result<()> {
    // with encryption at rest the search values (PHI) are not sent, only a digest of them
    let key = crypto.lock_key(search::lock_key(rtype, req));
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(StoreError::pg("write"))?;
    Ok(())
}

/// Where a write goes, after its precondition's search (under the search's lock).
async fn resolve(
    client: &impl GenericClient,
    w: &ResourceWrite,
    crypto: &Crypto,
) -> Result<Target> {
    const OP: &str = "write";
    let (Precondition::IfNoneExist(req) | Precondition::Match(req) | Precondition::NoneExist(req)) =
        &w.precondition
    else {
        return Ok(Target::Id(w.id.clone()));
    };
    lock_search(client, &w.resource_type, req, crypto).await?;
    let sql = search::matches_sql(D, &w.resource_type, req, 2, crypto)?;
    let found = query_ints(client, OP, &sql).await?;
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
    let existing = load(client, OP, &found, crypto).await?.into_iter().next();
    Ok(match existing {
        None => Target::Done(WriteOutcome::NotFound),
        Some(r) if matches!(w.precondition, Precondition::NoneExist(_)) => {
            Target::Done(WriteOutcome::MatchAppeared(r))
        }
        Some(r) if creating => Target::Done(WriteOutcome::Existing(r)),
        Some(r) => Target::Id(r.id),
    })
}

/// Claims `(type, id)` with a version-1 row: its rid, or `None` if a concurrent writer
/// holds it (the unique key makes this wait for that writer to finish).
async fn claim_id(
    client: &impl GenericClient,
    rtype: &str,
    id: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    const OP: &str = "write";
    let stmt = client
        .prepare_cached(
            "INSERT INTO fhir_resource (type, id, version, last_updated, deleted)
             VALUES ($1, $2, 1, $3, false) ON CONFLICT (type, id) DO NOTHING RETURNING rid",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    client
        .query_opt(&stmt, &[&rtype, &id, &now.as_micros()])
        .await
        .map_err(StoreError::pg(OP))?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(StoreError::pg(OP))
}

/// An unconditional create (what a transaction Bundle's POST entries are).
fn plain_create(w: &ResourceWrite) -> bool {
    w.op == WriteOp::Create && matches!(w.precondition, Precondition::None)
}

/// Several unconditional creates in two round trips instead of two per resource: every id
/// is claimed in one pipeline, then every version with its index rows in another. Outcomes
/// and errors are those of [`write_one`] for each in turn: a taken id fails the call with
/// [`resource_sql::exists_error`] (also when two writes of the call name the same id: the
/// second claim sees the first's row).
async fn create_all(
    client: &impl GenericClient,
    writes: &[ResourceWrite],
    crypto: &Crypto,
) -> Result<Vec<WriteOutcome>> {
    let now = Timestamp::now();
    let claims = futures_util::future::try_join_all(
        writes
            .iter()
            .map(|w| claim_id(client, &w.resource_type, &w.id, now)),
    )
    .await?;
    let mut statements = Vec::with_capacity(writes.len() * 2);
    let mut outcomes = Vec::with_capacity(writes.len());
    for (w, claimed) in writes.iter().zip(claims) {
        let Some(rid) = claimed else {
            return Err(resource_sql::exists_error(&w.resource_type, &w.id));
        };
        let key = (rid, w.id.clone(), 1, HistoryMethod::Create);
        let (stored, mut these) =
            version_statements(client, w, key, now, Current::Absent, crypto).await?;
        statements.append(&mut these);
        outcomes.push(resource_sql::outcome(stored, Current::Absent));
    }
    pipelined(client, statements).await?;
    Ok(outcomes)
}

async fn write_one(
    client: &impl GenericClient,
    w: &ResourceWrite,
    crypto: &Crypto,
) -> Result<WriteOutcome> {
    const OP: &str = "write";
    let rtype = w.resource_type.as_str();
    let id = match resolve(client, w, crypto).await? {
        Target::Id(id) => id,
        Target::Done(outcome) => return Ok(outcome),
    };
    let mut now = Timestamp::now();
    // A create claims its id first (one round trip instead of a look then a claim); only an
    // id that is taken needs the look.
    let mut inserted = if w.op == WriteOp::Create {
        claim_id(client, rtype, &id, now).await?
    } else {
        None
    };
    let mut cur = if inserted.is_some() {
        Current::Absent
    } else {
        current(client, rtype, &id).await?
    };
    if cur == Current::Absent && inserted.is_none() && w.op != WriteOp::Delete {
        inserted = claim_id(client, rtype, &id, now).await?;
        if inserted.is_none() {
            cur = current(client, rtype, &id).await?;
            now = Timestamp::now();
        }
    }
    if let Precondition::IfMatch(v) = w.precondition
        && cur.live_version() != Some(v)
    {
        return Ok(WriteOutcome::VersionConflict(cur.live_version()));
    }
    let (rid, version, method) = match (w.op, cur, inserted) {
        (WriteOp::Create, Current::Present { .. }, _) => {
            return Err(resource_sql::exists_error(rtype, &id));
        }
        (WriteOp::Delete, Current::Absent | Current::Present { deleted: true, .. }, _) => {
            return Ok(WriteOutcome::NotFound);
        }
        (op, Current::Absent, Some(rid)) => {
            let method = if op == WriteOp::Create {
                HistoryMethod::Create
            } else {
                HistoryMethod::Update
            };
            (rid, 1, method)
        }
        (_, Current::Absent, None) => {
            return Err(StoreError::Task {
                op: OP,
                detail: "resource row neither found nor inserted".to_owned(),
            });
        }
        (op, Current::Present { rid, version, .. }, _) => {
            let method = if op == WriteOp::Delete {
                HistoryMethod::Delete
            } else {
                HistoryMethod::Update
            };
            (rid, version + 1, method)
        }
    };
    let stored = store_version(client, w, (rid, id, version, method), now, cur, crypto).await?;
    Ok(resource_sql::outcome(stored, cur))
}

/// Sends the statements of one version's rows together (tokio-postgres pipelines the
/// requests of futures polled together, in the order first polled): one round trip for the
/// resource row's update, the version, and the index rows' replacement, instead of one each.
async fn pipelined(
    client: &impl GenericClient,
    statements: Vec<(tokio_postgres::Statement, Vec<Param>)>,
) -> Result<()> {
    let runs = statements.iter().map(|(stmt, params)| {
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        async move { client.execute(stmt, &refs).await }
    });
    futures_util::future::try_join_all(runs)
        .await
        .map_err(StoreError::pg("write"))?;
    Ok(())
}

/// Stores the version row, updates the resource row (unless `before` is absent: the row was
/// just inserted as version 1) and replaces the index rows, in one round trip.
async fn store_version(
    client: &impl GenericClient,
    w: &ResourceWrite,
    key: (i64, String, i64, HistoryMethod),
    now: Timestamp,
    before: Current,
    crypto: &Crypto,
) -> Result<StoredResource> {
    let (stored, statements) = version_statements(client, w, key, now, before, crypto).await?;
    pipelined(client, statements).await?;
    Ok(stored)
}

/// The version a write stores and the statements that store it (see [`store_version`]).
async fn version_statements(
    client: &impl GenericClient,
    w: &ResourceWrite,
    (rid, id, version, method): (i64, String, i64, HistoryMethod),
    now: Timestamp,
    before: Current,
    crypto: &Crypto,
) -> Result<(StoredResource, Vec<(tokio_postgres::Statement, Vec<Param>)>)> {
    const OP: &str = "write";
    let stored = resource_sql::new_version(w, id, version, method, now, None)?;
    let content = if stored.deleted {
        stored.content.clone()
    } else {
        crypto
            .seal(
                SealedRow::Resource(&stored.resource_type, &stored.id, version),
                &stored.content,
            )?
            .into_owned()
    };
    let mut statements = Vec::with_capacity(3);
    if before != Current::Absent {
        let update = client
            .prepare_cached(
                "UPDATE fhir_resource SET version = $2, last_updated = $3, deleted = $4
                 WHERE rid = $1",
            )
            .await
            .map_err(StoreError::pg(OP))?;
        let params: Vec<Param> = vec![
            Box::new(rid),
            Box::new(version),
            Box::new(now.as_micros()),
            Box::new(stored.deleted),
        ];
        statements.push((update, params));
    }
    let insert = client
        .prepare_cached(
            "INSERT INTO fhir_version (rid, version, last_updated, deleted, method, content)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    let params: Vec<Param> = vec![
        Box::new(rid),
        Box::new(version),
        Box::new(now.as_micros()),
        Box::new(stored.deleted),
        Box::new(resource_sql::method_code(method)),
        Box::new(content),
    ];
    statements.push((insert, params));
    let index: &[fhir::index::IndexEntry] = if stored.deleted { &[] } else { &w.index };
    let fresh = before == Current::Absent;
    if let Some(replace) =
        replace_index(client, rid, &w.resource_type, index, fresh, crypto).await?
    {
        statements.push(replace);
    }
    Ok((stored, statements))
}

const DELETE_INDEX_SQL: &str = "WITH a AS (DELETE FROM fhir_idx_string WHERE rid = $1),
     b AS (DELETE FROM fhir_idx_token WHERE rid = $1),
     c AS (DELETE FROM fhir_idx_reference WHERE rid = $1),
     d AS (DELETE FROM fhir_idx_date WHERE rid = $1),
     e AS (DELETE FROM fhir_idx_number WHERE rid = $1),
     f AS (DELETE FROM fhir_idx_quantity WHERE rid = $1)
     DELETE FROM fhir_idx_uri WHERE rid = $1";

/// Every index row of a resource in one statement (data-modifying CTEs, one per table).
const INSERT_INDEX_SQL: &str = "WITH
 s AS (INSERT INTO fhir_idx_string (rid, type, param, grp, pos, normalized, exact, part)
   SELECT $1::bigint, $2::text, u.* FROM unnest($3::text[], $4::int[], $5::int[], $6::text[],
     $7::text[], $49::text[]) AS u),
 t AS (INSERT INTO fhir_idx_token (rid, type, param, grp, pos, system, code, display,
     type_system, type_code)
   SELECT $1::bigint, $2::text, u.* FROM unnest($8::text[], $9::int[], $10::int[], $11::text[],
     $12::text[], $13::text[], $14::text[], $15::text[]) AS u),
 r AS (INSERT INTO fhir_idx_reference (rid, type, param, grp, pos, target_type, target_id, url,
     identifier_system, identifier_value)
   SELECT $1::bigint, $2::text, u.* FROM unnest($16::text[], $17::int[], $18::int[],
     $19::text[], $20::text[], $21::text[], $22::text[], $23::text[]) AS u),
 d AS (INSERT INTO fhir_idx_date (rid, type, param, grp, pos, low, high, fast)
   SELECT $1::bigint, $2::text, u.* FROM unnest($24::text[], $25::int[], $26::int[],
     $27::bigint[], $28::bigint[], $48::int[]) AS u),
 n AS (INSERT INTO fhir_idx_number (rid, type, param, grp, pos, value, low, high)
   SELECT $1::bigint, $2::text, u.* FROM unnest($29::text[], $30::int[], $31::int[],
     $32::float8[], $33::float8[], $34::float8[]) AS u),
 q AS (INSERT INTO fhir_idx_quantity (rid, type, param, grp, pos, system, code, unit, value,
     low, high)
   SELECT $1::bigint, $2::text, u.* FROM unnest($35::text[], $36::int[], $37::int[],
     $38::text[], $39::text[], $40::text[], $41::float8[], $42::float8[], $43::float8[]) AS u)
 INSERT INTO fhir_idx_uri (rid, type, param, grp, pos, value)
   SELECT $1::bigint, $2::text, u.* FROM unnest($44::text[], $45::int[], $46::int[],
     $47::text[]) AS u";

/// Column arrays of one kind's rows.
#[derive(Default)]
struct Keys {
    param: Vec<String>,
    grp: Vec<i32>,
    pos: Vec<i32>,
}

impl Keys {
    fn add(&mut self, k: &resource_sql::Key) {
        self.param.push(k.param.clone());
        self.grp.push(k.grp);
        self.pos.push(k.pos);
    }

    /// The three key arrays as statement parameters (param, grp, pos).
    fn into_params(self, params: &mut Vec<Param>) {
        params.extend([boxed(self.param), boxed(self.grp), boxed(self.pos)]);
    }
}

fn column<T: Clone, const N: usize>(rows: &[[T; N]], i: usize) -> Vec<T> {
    rows.iter().filter_map(|r| r.get(i).cloned()).collect()
}

/// The statement that replaces the index rows of `rid` (`fresh`: a row id just inserted,
/// which has none to delete), with its parameters; `None` when there is nothing to do.
async fn replace_index(
    client: &impl GenericClient,
    rid: i64,
    rtype: &str,
    entries: &[fhir::index::IndexEntry],
    fresh: bool,
    crypto: &Crypto,
) -> Result<Option<(tokio_postgres::Statement, Vec<Param>)>> {
    const OP: &str = "write";
    if entries.is_empty() {
        if fresh {
            return Ok(None);
        }
        let delete = client
            .prepare_cached(DELETE_INDEX_SQL)
            .await
            .map_err(StoreError::pg(OP))?;
        return Ok(Some((delete, vec![Box::new(rid)])));
    }
    let params = index_params(
        rid,
        rtype,
        &crypto.index_rows(IndexRows::new(rtype, entries)),
    );
    let sql = if fresh {
        INSERT_INDEX_SQL
    } else {
        replace_index_sql()
    };
    let insert = client
        .prepare_cached(sql)
        .await
        .map_err(StoreError::pg(OP))?;
    Ok(Some((insert, params)))
}

/// The parameters of [`INSERT_INDEX_SQL`]: the rows of each kind as column arrays.
fn index_params(rid: i64, rtype: &str, rows: &IndexRows) -> Vec<Param> {
    let (mut sk, mut tk, mut rk, mut dk, mut nk, mut qk, mut uk) = Default::default();
    let keys = |k: &mut Keys, key: &resource_sql::Key| k.add(key);
    let (mut s_norm, mut s_exact, mut s_part) = (Vec::new(), Vec::new(), Vec::new());
    for (k, n, x, part) in &rows.strings {
        keys(&mut sk, k);
        s_norm.push(n.clone());
        s_exact.push(x.clone());
        s_part.push(part.map(str::to_owned));
    }
    let mut t_cols = Vec::new();
    for (k, c) in &rows.tokens {
        keys(&mut tk, k);
        t_cols.push(c.clone());
    }
    let mut r_cols = Vec::new();
    for (k, c) in &rows.references {
        keys(&mut rk, k);
        r_cols.push(c.clone());
    }
    let d_fast = rows.date_fast();
    let (mut d_low, mut d_high) = (Vec::new(), Vec::new());
    for (k, lo, hi) in &rows.dates {
        keys(&mut dk, k);
        d_low.push(*lo);
        d_high.push(*hi);
    }
    let (mut n_val, mut n_low, mut n_high) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v, lo, hi) in &rows.numbers {
        keys(&mut nk, k);
        n_val.push(*v);
        n_low.push(*lo);
        n_high.push(*hi);
    }
    let mut q_cols = Vec::new();
    let (mut q_val, mut q_low, mut q_high) = (Vec::new(), Vec::new(), Vec::new());
    for (k, c, v, lo, hi) in &rows.quantities {
        keys(&mut qk, k);
        q_cols.push(c.clone());
        q_val.push(*v);
        q_low.push(*lo);
        q_high.push(*hi);
    }
    let mut u_val = Vec::new();
    for (k, v) in &rows.uris {
        keys(&mut uk, k);
        u_val.push(v.clone());
    }
    let (sk, tk, rk, dk, nk, qk, uk): (Keys, Keys, Keys, Keys, Keys, Keys, Keys) =
        (sk, tk, rk, dk, nk, qk, uk);
    let t: [Vec<Option<String>>; 5] = std::array::from_fn(|i| column(&t_cols, i));
    let r: [Vec<Option<String>>; 5] = std::array::from_fn(|i| column(&r_cols, i));
    let q: [Vec<Option<String>>; 3] = std::array::from_fn(|i| column(&q_cols, i));
    let mut p: Vec<Param> = vec![Box::new(rid), Box::new(rtype.to_owned())];
    sk.into_params(&mut p);
    p.extend([boxed(s_norm), boxed(s_exact)]);
    tk.into_params(&mut p);
    p.extend(t.map(boxed));
    rk.into_params(&mut p);
    p.extend(r.map(boxed));
    dk.into_params(&mut p);
    p.extend([boxed(d_low), boxed(d_high)]);
    nk.into_params(&mut p);
    p.extend([boxed(n_val), boxed(n_low), boxed(n_high)]);
    qk.into_params(&mut p);
    p.extend(q.map(boxed));
    p.extend([boxed(q_val), boxed(q_low), boxed(q_high)]);
    uk.into_params(&mut p);
    p.extend([boxed(u_val), boxed(d_fast), boxed(s_part)]);
    p
}

/// An owned statement parameter (of a statement sent in a pipeline).
type Param = Box<dyn ToSql + Sync + Send>;

fn boxed<T: ToSql + Sync + Send + 'static>(value: T) -> Param {
    Box::new(value)
}

/// [`INSERT_INDEX_SQL`] with the deletion of the resource's old rows in the same statement:
/// every data-modifying part of one statement works on the same snapshot, so the deletions
/// see only the rows that were there before it, never the ones it inserts.
fn replace_index_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut deletes = String::new();
        for (i, table) in resource_sql::INDEX_TABLES.iter().enumerate() {
            let _ = write!(deletes, " del{i} AS (DELETE FROM {table} WHERE rid = $1),");
        }
        INSERT_INDEX_SQL.replacen("WITH", &format!("WITH{deletes}"), 1)
    });
    &SQL
}
