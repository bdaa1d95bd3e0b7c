//! The SQL of the operations the channel engine drives, on one SQLite connection: transitions,
//! strict FIFO claims, lease extension, queue depths and retention. Writes run inside the
//! writer's batch transaction; reads on a read connection.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::ops::{
    BatchedIndexes, enqueue, get, item, lease_error, parse, put_destinations, put_metadata,
    put_stages,
};
use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::model::{
    MessageId, QueueDepth, QueueItem, QueueState, Shared, Status, Transition, take_shared,
};
use crate::sql::ITEM_COLUMNS;
use crate::time::Timestamp;

// no ORDER BY: on this WITHOUT ROWID table it too makes SQLite re-prepare on every run
const REFRESH_READ: &str = "SELECT destination, name, status, error FROM message_destinations \
                            WHERE message_id = ?1";
const REFRESH_WRITE: &str =
    "UPDATE messages SET status = ?2, error = coalesce(?3, error) WHERE id = ?1";

/// Sets a message's status from its destinations (see `Transition::refresh_status`): ERROR if
/// one is in error (with the first such destination's error), else QUEUED while one is still
/// on its way, else SENT if one was sent, else FILTERED. Nothing changes for a message without
/// destination rows.
///
/// Worked out here rather than in one `UPDATE` with subqueries, as PostgreSQL does: SQLite
/// marks an `UPDATE` with a scalar subquery in `SET` for re-preparation whenever its
/// parameters are cleared, and re-preparing that statement took a third of the writer thread
/// in the channel benchmark.
fn refresh_status(conn: &Connection, id: &str) -> Result<()> {
    const OP: &str = "apply";
    let mut stmt = conn
        .prepare_cached(REFRESH_READ)
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([id]).map_err(StoreError::sqlite(OP))?;
    let mut any = false;
    // the error of the lowest-numbered destination in ERROR, if it has a text
    let (mut error, mut pending, mut sent) = (None::<(i64, Option<String>)>, false, false);
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        any = true;
        let status: Status = parse(OP, "message_destinations.status", get(row, 2, OP)?)?;
        match status {
            Status::Error => {
                let destination: i64 = get(row, 0, OP)?;
                if error.as_ref().is_none_or(|(d, _)| destination < *d) {
                    let name: String = get(row, 1, OP)?;
                    let text: Option<String> = get(row, 3, OP)?;
                    error = Some((destination, text.map(|t| format!("{name}: {t}"))));
                }
            }
            Status::Received | Status::Transformed | Status::Queued => pending = true,
            Status::Sent => sent = true,
            Status::Filtered => {}
        }
    }
    if !any {
        return Ok(());
    }
    let status = if error.is_some() {
        Status::Error
    } else if pending {
        Status::Queued
    } else if sent {
        Status::Sent
    } else {
        Status::Filtered
    };
    conn.prepare_cached(REFRESH_WRITE)
        .and_then(|mut s| s.execute(params![id, status.as_str(), error.and_then(|(_, e)| e)]))
        .map_err(StoreError::sqlite(OP))?;
    Ok(())
}

/// Writes every transition, in order; the first failure fails the request, and with it the
/// transaction (the writer rolls it back), so nothing is written.
pub(super) fn apply(
    conn: &Connection,
    transitions: &[Transition],
    crypto: &Crypto,
    indexes: &BatchedIndexes,
) -> Result<()> {
    const OP: &str = "apply";
    let now = Timestamp::now().as_micros();
    for t in transitions {
        let id = t.message_id;
        let id_text = id.to_string();
        let exists = |conn: &Connection| {
            conn.prepare_cached("SELECT 1 FROM messages WHERE id = ?1")
                .and_then(|mut s| s.exists([&id_text]))
                .map_err(StoreError::sqlite(OP))
        };
        // a completed item proves its message is there (the item's foreign key), which saves
        // the lookup on the delivery path
        if let Some((item, owner)) = &t.complete {
            let changed = conn
                .prepare_cached(
                    "UPDATE queue_items SET state = 'DONE', lease_until = NULL \
                     WHERE id = ?1 AND state = 'LEASED' AND lease_owner = ?2",
                )
                .and_then(|mut s| s.execute(params![item.0, owner]))
                .map_err(StoreError::sqlite(OP))?;
            if changed == 0 {
                if !exists(conn)? {
                    return Err(StoreError::MessageNotFound { op: OP, id });
                }
                return Err(lease_error(conn, OP, *item, owner)?);
            }
        } else if !exists(conn)? {
            return Err(StoreError::MessageNotFound { op: OP, id });
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
            indexes.note(conn, OP, &id_text, None, true)?;
        }
    }
    Ok(())
}

/// The statement of [`claim_head`]. The limit is written into the SQL (one cached statement
/// per batch size): a `LIMIT ?` made SQLite re-prepare the statement on every run. Since every
/// connection has the planner's stability guarantee (`configure`) a bound limit would keep
/// its plan too; the literal stays, as the plan tests below check this text.
pub(super) fn claim_head_sql(limit: u32) -> String {
    format!(
        "WITH head AS ( \
             SELECT id, available_at <= ?4 OR (state = 'LEASED' AND lease_owner = ?1) AS ok \
             FROM queue_items WHERE queue = CAST(?3 AS TEXT) \
             AND state IN ('READY', 'LEASED') \
             ORDER BY id LIMIT {limit} \
         ) \
         UPDATE queue_items SET state = 'LEASED', lease_owner = ?1, lease_until = ?2, \
         available_at = ?2 \
         WHERE id IN (SELECT id FROM head WHERE ok AND id < \
                      coalesce((SELECT min(id) FROM head WHERE NOT ok), 9223372036854775807)) \
         RETURNING {ITEM_COLUMNS}"
    )
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
    // one that is neither due (READY due, or lease ran out) nor leased to `owner`.
    // `CAST(?3 AS TEXT)`: compared with a bare parameter, SQLite re-prepares a statement that
    // orders by the rest of the index on every run; the cast keeps the same index search.
    let mut stmt = conn
        .prepare_cached(&claim_head_sql(limit))
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt
        .query(params![owner, until, queue, now])
        .map_err(StoreError::sqlite(OP))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        items.push(item(row, OP)?);
    }
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// The statement of [`held_head`]: the queue's unfinished items in id order, read row by row
/// and no further than needed (no `LIMIT`: how many rows it takes depends on `skip`).
pub(super) fn held_head_sql() -> String {
    format!(
        "SELECT {ITEM_COLUMNS} FROM queue_items WHERE queue = CAST(?1 AS TEXT) \
         AND state IN ('READY', 'LEASED') ORDER BY id"
    )
}

/// `Queues::held_head`: the prefix of `queue`'s unfinished items, `skip` (sorted) passed over,
/// that is leased to `owner`, at most `limit` items. A read: runs on a read connection.
pub(super) fn held_head(
    conn: &Connection,
    queue: &str,
    owner: &str,
    skip: &[crate::model::QueueItemId],
    limit: u32,
) -> Result<Vec<QueueItem>> {
    const OP: &str = "held_head";
    let mut stmt = conn
        .prepare_cached(&held_head_sql())
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([queue]).map_err(StoreError::sqlite(OP))?;
    let mut items = Vec::new();
    while items.len() < limit as usize {
        let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? else {
            break;
        };
        let item = item(row, OP)?;
        if skip.binary_search(&item.id).is_ok() {
            continue;
        }
        if item.state != QueueState::Leased || item.lease_owner.as_deref() != Some(owner) {
            break;
        }
        items.push(item);
    }
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

/// Deletes messages and their rows in the batched search indexes; the foreign keys cascade to
/// metadata, content, destination rows and queue items.
pub(super) fn delete(conn: &Connection, ids: &[MessageId]) -> Result<u64> {
    const OP: &str = "delete";
    let mut control = conn
        .prepare_cached(
            "DELETE FROM message_control WHERE message_id = ?1 \
             AND control_id = (SELECT control_id FROM messages WHERE id = ?1)",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut pending = conn
        .prepare_cached("DELETE FROM message_control_pending WHERE message_id = ?1")
        .map_err(StoreError::sqlite(OP))?;
    let mut metadata = conn
        .prepare_cached(
            "DELETE FROM message_metadata_index WHERE (key, value, message_id) IN \
             (SELECT key, value, message_id FROM message_metadata WHERE message_id = ?1)",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut metadata_pending = conn
        .prepare_cached("DELETE FROM message_metadata_pending WHERE message_id = ?1")
        .map_err(StoreError::sqlite(OP))?;
    let mut stmt = conn
        .prepare_cached("DELETE FROM messages WHERE id = ?1")
        .map_err(StoreError::sqlite(OP))?;
    let mut deleted = 0u64;
    for id in ids {
        let id = id.to_string();
        control.execute([&id]).map_err(StoreError::sqlite(OP))?;
        pending.execute([&id]).map_err(StoreError::sqlite(OP))?;
        metadata.execute([&id]).map_err(StoreError::sqlite(OP))?;
        metadata_pending
            .execute([&id])
            .map_err(StoreError::sqlite(OP))?;
        deleted += stmt.execute([&id]).map_err(StoreError::sqlite(OP))? as u64;
    }
    Ok(deleted)
}

/// `Journal::contents`: one stage of one destination for several messages. A stage the
/// destination row marks as shared (see [`Shared`]) is read from the stage it shares: one
/// query per message returns the stage itself and, where the flags say so, the stages it may
/// share, and the flags decide.
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
            "SELECT c.destination, c.stage, c.bytes, coalesce(d.shared, 0) \
             FROM message_content c \
             LEFT JOIN message_destinations d \
                 ON d.message_id = c.message_id AND d.destination = ?2 \
             WHERE c.message_id = ?1 \
               AND ((c.destination = ?2 AND c.stage = ?3) \
                 OR (?3 = 'SENT' AND c.destination = ?2 AND c.stage = 'ENCODED' \
                     AND d.shared & 4 <> 0) \
                 OR (?3 IN ('SENT', 'ENCODED') AND c.destination = 0 \
                     AND c.stage = 'TRANSFORMED' AND d.shared & 1 <> 0) \
                 OR (?3 IN ('SENT', 'ENCODED') AND c.destination = 0 \
                     AND c.stage = 'RAW' AND d.shared & 2 <> 0))",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::with_capacity(ids.len());
    let mut candidates = Vec::new();
    for id in ids {
        let id_text = id.to_string();
        candidates.clear();
        let mut shared = Shared::NONE;
        let mut rows = stmt
            .query(params![id_text, destination, stage.as_str()])
            .map_err(StoreError::sqlite(OP))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
            let d = super::ops::destination(OP, get(row, 0, OP)?)?;
            let s: crate::model::Stage = parse(OP, "message_content.stage", get(row, 1, OP)?)?;
            shared = Shared::from_bits(get(row, 3, OP)?);
            candidates.push((d, s, get::<Vec<u8>>(row, 2, OP)?));
        }
        if let Some((d, s, bytes)) = take_shared(&mut candidates, shared, destination, stage) {
            let row = SealedRow::Content(&id_text, d, s);
            out.push((*id, crypto.open(OP, row, bytes)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    use super::{claim_head, held_head, refresh_status};
    use crate::sqlite::ops::claim;

    /// Every row written to the message tables checks its status, stage or state column;
    /// written as `IN` with more than two values, that check built a temporary b-tree of the
    /// list for each row (migration 0010 rewrote them as equalities). The statements of a
    /// channel message's way through the store open no temporary table, and the checks
    /// still refuse a value outside the list.
    #[test]
    fn message_table_writes_build_no_temporary_tables() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) =
            super::super::open_writer(&dir.path().join("db"), std::time::Duration::from_secs(1))
                .unwrap();
        super::super::migrate(&mut conn).unwrap();
        let id = "'01ARZ3NDEKTSV4RRFFQ69G5FAV'";
        for sql in [
            format!(
                "INSERT INTO messages (id, channel, received_at, status) \
                 VALUES ({id}, 'c', 1, 'QUEUED')"
            ),
            format!("UPDATE messages SET status = 'SENT', error = NULL WHERE id = {id}"),
            format!(
                "INSERT INTO message_content (message_id, destination, stage, created_at, bytes) \
                 VALUES ({id}, 1, 'RESPONSE', 1, x'00') ON CONFLICT (message_id, destination, stage) \
                 DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at"
            ),
            format!(
                "INSERT INTO message_destinations \
                 (message_id, destination, name, status, error, updated_at, shared) \
                 VALUES ({id}, 1, 'out', 'SENT', NULL, 1, 4) \
                 ON CONFLICT (message_id, destination) DO UPDATE SET name = excluded.name, \
                 status = excluded.status, error = excluded.error, \
                 updated_at = excluded.updated_at, shared = shared | excluded.shared"
            ),
            format!(
                "INSERT INTO queue_items (queue, message_id, destination, attempts, available_at, \
                 state, lease_owner, lease_until, created_at) \
                 VALUES ('q', {id}, 1, 0, 1, 'LEASED', 'w', 1, 1)"
            ),
            "UPDATE queue_items SET state = 'DONE', lease_until = NULL \
             WHERE id = 1 AND state = 'LEASED' AND lease_owner = 'w'"
                .to_owned(),
            "INSERT INTO fhir_resource (type, id, version, last_updated, deleted) \
             VALUES ('Patient', 'p', 1, 1, 0)"
                .to_owned(),
            "INSERT INTO fhir_version (rid, version, last_updated, deleted, method, content) \
             VALUES (1, 1, 1, 0, 'C', x'00')"
                .to_owned(),
        ] {
            let opcodes: Vec<String> = conn
                .prepare(&format!("EXPLAIN {sql}"))
                .unwrap()
                .query_map([], |r| r.get(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(!opcodes.is_empty(), "{sql}");
            assert!(
                !opcodes.iter().any(|o| o == "OpenEphemeral"),
                "{sql}: {opcodes:?}"
            );
            conn.execute(&sql, []).unwrap();
        }
        for bad in [
            format!("UPDATE messages SET status = 'LOST' WHERE id = {id}"),
            format!("UPDATE message_destinations SET status = 'LOST' WHERE message_id = {id}"),
            format!("UPDATE message_content SET stage = 'LOST' WHERE message_id = {id}"),
            "UPDATE queue_items SET state = 'LOST' WHERE id = 1".to_owned(),
            "UPDATE fhir_version SET method = 'X' WHERE rid = 1".to_owned(),
        ] {
            let e = conn.execute(&bad, []).unwrap_err().to_string();
            assert!(e.contains("CHECK constraint failed"), "{bad}: {e}");
        }
    }

    /// Times SQLite compiled `sql` again after its first preparation.
    fn reprepared(conn: &Connection, sql: &str) -> i32 {
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(StatementStatus::RePrepare)
    }

    /// The statements every delivered message runs are compiled once: SQLite re-prepares some
    /// statements (a scalar subquery in an `UPDATE`'s `SET`, an `ORDER BY` on a WITHOUT ROWID
    /// table's key) every time the statement cache clears their parameters, which once cost
    /// the writer thread a third of its time.
    #[test]
    fn hot_statements_are_not_prepared_again_on_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) =
            super::super::open_writer(&dir.path().join("db"), std::time::Duration::from_secs(1))
                .unwrap();
        super::super::migrate(&mut conn).unwrap();
        let ids = ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW"];
        for (n, id) in ids.iter().enumerate() {
            conn.execute(
                "INSERT INTO messages (id, channel, received_at, status) \
                 VALUES (?1, 'c', 1, 'QUEUED')",
                [id],
            )
            .unwrap();
            let status = if n == 0 { "SENT" } else { "ERROR" };
            conn.execute(
                "INSERT INTO message_destinations \
                 (message_id, destination, name, status, error, updated_at) \
                 VALUES (?1, 1, 'out', ?2, 'refused', 1)",
                [id, &status],
            )
            .unwrap();
            for queue in ["ordered", "parallel"] {
                conn.execute(
                    "INSERT INTO queue_items (queue, message_id, destination, available_at, \
                     state, created_at) VALUES (?1, ?2, 1, 0, 'READY', 0)",
                    [queue, id],
                )
                .unwrap();
            }
        }
        for round in 0..3 {
            for id in ids {
                refresh_status(&conn, id).unwrap();
            }
            let owner = format!("w{round}");
            claim_head(&conn, "ordered", &owner, 0, 10).unwrap();
            claim(&conn, "parallel", &owner, 0, 10).unwrap();
            let held = held_head(&conn, "ordered", &owner, &[], 10).unwrap();
            assert_eq!(held.len(), 2, "{owner} holds the head it claimed");
        }
        let statuses: Vec<(String, Option<String>)> = conn
            .prepare("SELECT status, error FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            statuses,
            [
                ("SENT".to_owned(), None),
                ("ERROR".to_owned(), Some("out: refused".to_owned()))
            ]
        );
        for sql in [
            super::REFRESH_READ.to_owned(),
            super::REFRESH_WRITE.to_owned(),
            super::claim_head_sql(10),
            crate::sqlite::ops::claim_sql(10),
            super::held_head_sql(),
        ] {
            assert_eq!(reprepared(&conn, &sql), 0, "{sql}");
        }
        // the read of the held head walks the head index in its order, no sort
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::held_head_sql()))
            .unwrap()
            .query_map(["q"], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(plan.contains("queue_items_head (queue=?)"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        // and the claims still search their partial index, in its order
        for (sql, index) in [
            (super::claim_head_sql(10), "queue_items_head (queue=?)"),
            (
                crate::sqlite::ops::claim_sql(10),
                "queue_items_claimable (queue=?",
            ),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(["o", "0", "q", "0"], |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join("; ");
            assert!(plan.contains(index), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
