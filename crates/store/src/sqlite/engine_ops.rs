//! The SQL of the operations the channel engine drives, on one SQLite connection: transitions,
//! strict FIFO claims, lease extension, queue depths and retention. Writes run inside the
//! writer's batch transaction; reads on a read connection.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::ops::{
    enqueue, get, item, lease_error, parse, put_destinations, put_metadata, put_stages,
};
use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::model::{MessageId, QueueDepth, QueueItem, QueueState, Transition};
use crate::sql::ITEM_COLUMNS;
use crate::time::Timestamp;

/// See `Transition::refresh_status`.
fn refresh_status(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached(crate::sql::REFRESH_STATUS_SQLITE)
        .and_then(|mut s| s.execute([id]))
        .map_err(StoreError::sqlite("apply"))?;
    Ok(())
}

/// Writes every transition, in order; the first failure fails the request, and with it the
/// transaction (the writer rolls it back), so nothing is written.
pub(super) fn apply(conn: &Connection, transitions: &[Transition], crypto: &Crypto) -> Result<()> {
    const OP: &str = "apply";
    let now = Timestamp::now().as_micros();
    for t in transitions {
        let id = t.message_id;
        let id_text = id.to_string();
        let exists = conn
            .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")
            .and_then(|mut s| s.exists([&id_text]))
            .map_err(StoreError::sqlite(OP))?;
        if !exists {
            return Err(StoreError::MessageNotFound { op: OP, id });
        }
        if let Some((item, owner)) = &t.complete {
            let changed = conn
                .prepare_cached(
                    "UPDATE queue_items SET state = 'DONE', lease_until = NULL \
                     WHERE id = ?1 AND state = 'LEASED' AND lease_owner = ?2",
                )
                .and_then(|mut s| s.execute(params![item.0, owner]))
                .map_err(StoreError::sqlite(OP))?;
            if changed == 0 {
                return Err(lease_error(conn, OP, *item, owner)?);
            }
        }
        if let Some((status, error)) = &t.status {
            conn.prepare_cached("UPDATE messages SET status = ?2, error = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id_text, status.as_str(), error]))
                .map_err(StoreError::sqlite(OP))?;
        }
        put_destinations(conn, OP, &id_text, now, &t.last_destination_updates())?;
        if t.refresh_status {
            refresh_status(conn, &id_text)?;
        }
        put_stages(conn, OP, &id_text, now, &t.last_content(), crypto)?;
        enqueue(conn, OP, &id_text, now, &t.enqueue)?;
        if !t.metadata.is_empty() {
            let next: i64 = conn
                .prepare_cached(
                    "SELECT coalesce(max(seq) + 1, 0) FROM message_metadata WHERE message_id = ?1",
                )
                .and_then(|mut s| s.query_row([&id_text], |r| r.get(0)))
                .map_err(StoreError::sqlite(OP))?;
            put_metadata(conn, OP, &id_text, next, &t.metadata, crypto)?;
        }
    }
    Ok(())
}

/// Leases to `owner` the longest claimable prefix (at most `limit`) of `queue`'s unfinished
/// items in id order. The writer is the only one writing, so reading then updating is safe.
pub(super) fn claim_head(
    conn: &Connection,
    queue: &str,
    owner: &str,
    lease_micros: i64,
    limit: u32,
) -> Result<Vec<QueueItem>> {
    const OP: &str = "claim_head";
    let now = Timestamp::now().as_micros();
    let until = now.saturating_add(lease_micros);
    // head: the first `limit` unfinished items; the claimable prefix ends before the first
    // one that is neither due (READY due, or lease ran out) nor leased to `owner`
    let mut stmt = conn
        .prepare_cached(&format!(
            "WITH head AS ( \
                 SELECT id, available_at <= ?4 OR (state = 'LEASED' AND lease_owner = ?1) AS ok \
                 FROM queue_items WHERE queue = ?3 AND state IN ('READY', 'LEASED') \
                 ORDER BY id LIMIT ?5 \
             ) \
             UPDATE queue_items SET state = 'LEASED', lease_owner = ?1, lease_until = ?2, \
             available_at = ?2 \
             WHERE id IN (SELECT id FROM head WHERE ok AND id < \
                          coalesce((SELECT min(id) FROM head WHERE NOT ok), 9223372036854775807)) \
             RETURNING {ITEM_COLUMNS}"
        ))
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt
        .query(params![owner, until, queue, now, limit])
        .map_err(StoreError::sqlite(OP))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        items.push(item(row, OP)?);
    }
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// Makes `owner`'s lease on `item` run until `lease_micros` from now.
pub(super) fn extend_lease(
    conn: &Connection,
    id: crate::model::QueueItemId,
    owner: &str,
    lease_micros: i64,
) -> Result<()> {
    const OP: &str = "extend_lease";
    let until = Timestamp::now().as_micros().saturating_add(lease_micros);
    let changed = conn
        .prepare_cached(
            "UPDATE queue_items SET lease_until = ?3, available_at = ?3 \
             WHERE id = ?1 AND state = 'LEASED' AND lease_owner = ?2",
        )
        .and_then(|mut s| s.execute(params![id.0, owner, until]))
        .map_err(StoreError::sqlite(OP))?;
    if changed == 0 {
        return Err(lease_error(conn, OP, id, owner)?);
    }
    Ok(())
}

/// Counts `queue`'s READY, LEASED and DEAD items.
pub(super) fn queue_depth(conn: &Connection, queue: &str) -> Result<QueueDepth> {
    const OP: &str = "queue_depth";
    let mut stmt = conn
        .prepare_cached(
            "SELECT state, count(*) FROM queue_items \
             WHERE queue = ?1 AND state IN ('READY', 'LEASED') GROUP BY state \
             UNION ALL \
             SELECT state, count(*) FROM queue_items \
             WHERE queue = ?1 AND state = 'DEAD' GROUP BY state",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([queue]).map_err(StoreError::sqlite(OP))?;
    let mut depth = QueueDepth::default();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        let state: QueueState = parse(OP, "queue_items.state", get(row, 0, OP)?)?;
        let n = get::<i64>(row, 1, OP)?.unsigned_abs();
        match state {
            QueueState::Ready => depth.ready = n,
            QueueState::Leased => depth.leased = n,
            QueueState::Dead => depth.dead = n,
            QueueState::Done => {}
        }
    }
    Ok(depth)
}

/// Names of the queues with unfinished or dead items, sorted.
pub(super) fn queue_names(conn: &Connection) -> Result<Vec<String>> {
    const OP: &str = "queue_names";
    let mut stmt = conn
        .prepare_cached(
            "SELECT DISTINCT queue FROM queue_items WHERE state IN ('READY', 'LEASED') \
             UNION \
             SELECT DISTINCT queue FROM queue_items WHERE state = 'DEAD' \
             ORDER BY 1",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(OP))?;
    let mut names = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        names.push(get(row, 0, OP)?);
    }
    Ok(names)
}

/// Ids of `channel`'s messages retention may delete, oldest first (see `Journal::prunable`).
pub(super) fn prunable(
    conn: &Connection,
    channel: &str,
    older_than: Option<Timestamp>,
    keep_last: Option<u64>,
    limit: u32,
) -> Result<Vec<MessageId>> {
    const OP: &str = "prunable";
    // the newest message beyond the newest `keep_last`: it and everything older may go
    let cutoff: Option<String> = match keep_last {
        None => None,
        Some(keep) => conn
            .prepare_cached(
                "SELECT id FROM messages WHERE channel = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![channel, i64::try_from(keep).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(StoreError::sqlite(OP))?,
    };
    let older_than = older_than.map(Timestamp::as_micros);
    if cutoff.is_none() && older_than.is_none() {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.id FROM messages m \
             WHERE m.channel = ?1 \
             AND ((?2 IS NOT NULL AND m.received_at < ?2) OR (?3 IS NOT NULL AND m.id <= ?3)) \
             AND NOT EXISTS (SELECT 1 FROM queue_items q WHERE q.message_id = m.id \
                             AND q.state IN ('READY', 'LEASED')) \
             ORDER BY m.id LIMIT ?4",
        )
        .map_err(StoreError::sqlite(OP))?;
    let bound: [&dyn ToSql; 4] = [&channel, &older_than, &cutoff, &limit];
    let mut rows = stmt.query(&bound[..]).map_err(StoreError::sqlite(OP))?;
    let mut ids = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        ids.push(parse(OP, "messages.id", get(row, 0, OP)?)?);
    }
    Ok(ids)
}

/// Deletes messages; the foreign keys cascade to metadata, content, destination rows and
/// queue items.
pub(super) fn delete(conn: &Connection, ids: &[MessageId]) -> Result<u64> {
    const OP: &str = "delete";
    let mut stmt = conn
        .prepare_cached("DELETE FROM messages WHERE id = ?1")
        .map_err(StoreError::sqlite(OP))?;
    let mut deleted = 0u64;
    for id in ids {
        deleted += stmt
            .execute([id.to_string()])
            .map_err(StoreError::sqlite(OP))? as u64;
    }
    Ok(deleted)
}

/// `Journal::contents`: one stage of one destination for several messages.
pub(super) fn contents(
    conn: &Connection,
    ids: &[MessageId],
    destination: crate::model::Destination,
    stage: crate::model::Stage,
    crypto: &Crypto,
) -> Result<Vec<(MessageId, Vec<u8>)>> {
    const OP: &str = "contents";
    let mut stmt = conn
        .prepare_cached(
            "SELECT bytes FROM message_content \
             WHERE message_id = ?1 AND destination = ?2 AND stage = ?3",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let bytes: Option<Vec<u8>> = stmt
            .query_row(params![id.to_string(), destination, stage.as_str()], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::sqlite(OP))?;
        if let Some(b) = bytes {
            let id_text = id.to_string();
            let row = SealedRow::Content(&id_text, destination, stage);
            out.push((*id, crypto.open(OP, row, b)?));
        }
    }
    Ok(out)
}
