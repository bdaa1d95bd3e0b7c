//! The SQL of each store operation on one SQLite connection. Write operations run inside the
//! writer's batch transaction; reads on a read connection.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::crypto::{Crypto, Row as SealedRow};
use crate::error::{Result, StoreError};
use crate::model::{
    Content, Destination, DestinationStatus, DestinationUpdate, Enqueue, MessageFilter, MessageId,
    MessageSummary, NewMessage, QueueItem, QueueItemId, QueueState, Shared, Stage, Status,
    StoredMessage, add_shared, route_only_from_text, route_only_to_text,
};
use crate::sql::{self, ITEM_COLUMNS, Param, SUMMARY_COLUMNS};
use crate::time::{Timestamp, duration_micros};

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Text(s) => s.to_sql(),
            Param::Time(t) => Ok(ToSqlOutput::from(t.as_micros())),
        }
    }
}

/// Parses a text column written by this crate; anything else means a damaged database.
pub(super) fn parse<T: FromStr>(
    op: &'static str,
    column: &'static str,
    value: String,
) -> Result<T> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt { op, column, value })
}

pub(super) fn get<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    idx: usize,
    op: &'static str,
) -> Result<T> {
    row.get(idx).map_err(StoreError::sqlite(op))
}

pub(super) fn destination(op: &'static str, value: i64) -> Result<Destination> {
    Destination::try_from(value).map_err(|_| StoreError::Corrupt {
        op,
        column: "destination",
        value: value.to_string(),
    })
}

fn summary(row: &Row<'_>, op: &'static str) -> Result<MessageSummary> {
    Ok(MessageSummary {
        id: parse(op, "messages.id", get(row, 0, op)?)?,
        channel: get(row, 1, op)?,
        received_at: Timestamp::from_micros(get(row, 2, op)?),
        peer_addr: get(row, 3, op)?,
        tls_subject: get(row, 4, op)?,
        message_type: get(row, 5, op)?,
        trigger_event: get(row, 6, op)?,
        control_id: get(row, 7, op)?,
        sending_application: get(row, 8, op)?,
        sending_facility: get(row, 9, op)?,
        status: parse(op, "messages.status", get(row, 10, op)?)?,
        error: get(row, 11, op)?,
        original_id: get::<Option<String>>(row, 12, op)?
            .map(|id| parse(op, "messages.original_id", id))
            .transpose()?,
        route_only: get::<Option<String>>(row, 13, op)?
            .map(|text| {
                route_only_from_text(&text).ok_or(StoreError::Corrupt {
                    op,
                    column: "messages.route_only",
                    value: text,
                })
            })
            .transpose()?,
    })
}

pub(super) fn item(row: &Row<'_>, op: &'static str) -> Result<QueueItem> {
    let attempts: i64 = get(row, 4, op)?;
    Ok(QueueItem {
        id: QueueItemId(get(row, 0, op)?),
        queue: get(row, 1, op)?,
        message_id: parse(op, "queue_items.message_id", get(row, 2, op)?)?,
        destination: destination(op, get(row, 3, op)?)?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt {
            op,
            column: "queue_items.attempts",
            value: attempts.to_string(),
        })?,
        available_at: Timestamp::from_micros(get(row, 5, op)?),
        lease_owner: get(row, 6, op)?,
        lease_until: get::<Option<i64>>(row, 7, op)?.map(Timestamp::from_micros),
        state: parse(op, "queue_items.state", get(row, 8, op)?)?,
        last_error: get(row, 9, op)?,
    })
}

/// How this backend finds messages by control id and metadata pair (migrations 11 and 12):
/// in the batched index, and among the rows still waiting to be filed there (`CROSS JOIN`:
/// SQLite then reads the few pending messages and looks up their pairs, rather than every
/// pair testing whether its message is pending).
pub(super) const LOOKUPS: sql::Lookups = sql::Lookups {
    control_id: "m.id IN (SELECT message_id FROM message_control WHERE control_id = ? \
                 UNION ALL SELECT message_id FROM message_control_pending WHERE control_id = ?)",
    metadata: "m.id IN (SELECT message_id FROM message_metadata_index \
               WHERE key = ? AND value = ? \
               UNION ALL SELECT md.message_id FROM message_metadata_pending p \
               CROSS JOIN message_metadata md ON md.message_id = p.message_id \
               WHERE md.key = ? AND md.value = ?)",
};

/// The search indexes filled in batches (migrations 11 and 12): an append adds its control id
/// to `message_control_pending` and lists a message with metadata in
/// `message_metadata_pending` (both keyed by message id, so written at their end), and every
/// [`Self::BATCH`] such messages the writer files everything pending into `message_control`
/// and `message_metadata_index` in key order, in the appending transaction.
#[derive(Debug)]
pub(super) struct BatchedIndexes {
    /// Messages noted since the last move, as far as this process knows: a rolled-back batch
    /// still counted, which only moves the rows sooner.
    pending: AtomicUsize,
}

impl BatchedIndexes {
    /// Messages after which the pending rows are filed. Filing writes each leaf page it
    /// touches once, however many rows it adds there; the commit it is part of waits for it
    /// (1,024 messages with a control id and two metadata pairs each added 1.5–3.5 ms to the
    /// p99 ACK of the channel benchmark, hence half that). Searches read at most about this
    /// many pending rows (more if a filing's transaction failed).
    const BATCH: usize = 512;

    /// The indexes of the store behind `conn`, counting the pending rows.
    pub(super) fn open(conn: &Connection) -> Result<Self> {
        let pending: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM message_control_pending) \
                 + (SELECT count(*) FROM message_metadata_pending)",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("open"))?;
        Ok(Self {
            pending: AtomicUsize::new(usize::try_from(pending).unwrap_or(usize::MAX)),
        })
    }

    /// Notes a message's control id and (`metadata`) that it has new metadata pairs; files
    /// everything pending when enough messages were noted.
    pub(super) fn note(
        &self,
        conn: &Connection,
        op: &'static str,
        id: &str,
        control_id: Option<&str>,
        metadata: bool,
    ) -> Result<()> {
        if let Some(control_id) = control_id {
            conn.prepare_cached(
                "INSERT INTO message_control_pending (message_id, control_id) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![id, control_id]))
            .map_err(StoreError::sqlite(op))?;
        }
        if metadata {
            conn.prepare_cached(
                "INSERT INTO message_metadata_pending (message_id) VALUES (?1) \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute([id]))
            .map_err(StoreError::sqlite(op))?;
        }
        if (control_id.is_some() || metadata)
            && self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= Self::BATCH
        {
            Self::file_pending(conn, op)?;
            self.pending.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Files every pending row into its index.
    fn file_pending(conn: &Connection, op: &'static str) -> Result<()> {
        for sql in [
            // OR IGNORE: a row filed already is no reason to stop filing (and every append
            // after it); none should be, as deleting a message deletes its rows from both
            "INSERT OR IGNORE INTO message_control (control_id, message_id) \
             SELECT control_id, message_id FROM message_control_pending \
             ORDER BY control_id, message_id",
            "DELETE FROM message_control_pending",
            // OR IGNORE: a message may carry the same pair twice, and a message given more
            // pairs by a transition is listed again with its pairs filed already
            "INSERT OR IGNORE INTO message_metadata_index (key, value, message_id) \
             SELECT md.key, md.value, md.message_id FROM message_metadata_pending p \
             CROSS JOIN message_metadata md ON md.message_id = p.message_id \
             ORDER BY md.key, md.value, md.message_id",
            "DELETE FROM message_metadata_pending",
        ] {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(StoreError::sqlite(op))?;
        }
        Ok(())
    }
}

/// Inserts a message, its metadata, its RAW content, the content stages and destination rows
/// it comes with, and its queue items.
pub(super) fn append(
    conn: &Connection,
    msg: &NewMessage,
    crypto: &Crypto,
    indexes: &BatchedIndexes,
) -> Result<MessageId> {
    const OP: &str = "append";
    let id = match msg.id {
        Some(id) => id,
        None => MessageId::generate()?,
    };
    let id_text = id.to_string();
    let now = Timestamp::now().as_micros();
    // DO NOTHING: an id stored already is told apart from other failures by the count
    let inserted = conn
        .prepare_cached(
            "INSERT INTO messages (id, channel, received_at, peer_addr, tls_subject, \
             message_type, trigger_event, control_id, sending_application, sending_facility, \
             status, error, original_id, route_only) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                id_text,
                msg.channel,
                msg.received_at.as_micros(),
                msg.peer_addr,
                msg.tls_subject,
                msg.message_type,
                msg.trigger_event,
                msg.control_id,
                msg.sending_application,
                msg.sending_facility,
                msg.status.as_str(),
                msg.error,
                msg.original_id.map(|o| o.to_string()),
                msg.route_only.as_deref().map(route_only_to_text),
            ])
        })
        .map_err(StoreError::sqlite(OP))?;
    if inserted == 0 {
        return Err(StoreError::DuplicateMessageId { op: OP, id });
    }
    put_metadata(conn, OP, &id_text, 0, &msg.metadata, crypto)?;
    indexes.note(
        conn,
        OP,
        &id_text,
        msg.control_id.as_deref(),
        !msg.metadata.is_empty(),
    )?;
    let raw = crypto.seal(
        SealedRow::Content(&id_text, 0, crate::model::Stage::Raw),
        &msg.raw,
    )?;
    conn.prepare_cached(
        "INSERT INTO message_content (message_id, destination, stage, created_at, bytes) \
         VALUES (?1, 0, 'RAW', ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![id_text, now, raw]))
    .map_err(StoreError::sqlite(OP))?;
    put_stages(conn, OP, &id_text, now, &msg.last_content(), crypto)?;
    put_destinations(conn, OP, &id_text, now, &msg.last_destination_updates())?;
    enqueue(conn, OP, &id_text, now, &msg.enqueue)?;
    Ok(id)
}

/// Inserts metadata rows of a message, numbered from `first` (with encryption on: a blind
/// index as `value`, the value encrypted as `sealed`).
pub(super) fn put_metadata(
    conn: &Connection,
    op: &'static str,
    id_text: &str,
    first: i64,
    metadata: &[(String, String)],
    crypto: &Crypto,
) -> Result<()> {
    if metadata.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO message_metadata (message_id, seq, key, value, sealed) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(StoreError::sqlite(op))?;
    for (seq, (key, value)) in (first..).zip(metadata) {
        let (value, sealed) = crypto.metadata(id_text, key, value)?;
        stmt.execute(params![id_text, seq, key, value, sealed])
            .map_err(StoreError::sqlite(op))?;
    }
    Ok(())
}

/// Stores (or replaces) content stages of a message.
pub(super) fn put_stages(
    conn: &Connection,
    op: &'static str,
    id_text: &str,
    now: i64,
    content: &[(Destination, Stage, &[u8])],
    crypto: &Crypto,
) -> Result<()> {
    if content.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO message_content (message_id, destination, stage, created_at, bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (message_id, destination, stage) \
             DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at",
        )
        .map_err(StoreError::sqlite(op))?;
    for (destination, stage, bytes) in content {
        let bytes = crypto.seal(SealedRow::Content(id_text, *destination, *stage), bytes)?;
        stmt.execute(params![id_text, destination, stage.as_str(), now, bytes])
            .map_err(StoreError::sqlite(op))?;
    }
    Ok(())
}

/// Stores (or replaces) destination status rows of a message; shared content flags add to
/// those already recorded.
pub(super) fn put_destinations(
    conn: &Connection,
    op: &'static str,
    id_text: &str,
    now: i64,
    destinations: &[(&DestinationUpdate, Shared)],
) -> Result<()> {
    if destinations.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO message_destinations \
             (message_id, destination, name, status, error, updated_at, shared) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (message_id, destination) DO UPDATE SET name = excluded.name, \
             status = excluded.status, error = excluded.error, \
             updated_at = excluded.updated_at, shared = shared | excluded.shared",
        )
        .map_err(StoreError::sqlite(op))?;
    for (d, shared) in destinations {
        stmt.execute(params![
            id_text,
            d.destination,
            d.name,
            d.status.as_str(),
            d.error,
            now,
            shared.bits()
        ])
        .map_err(StoreError::sqlite(op))?;
    }
    Ok(())
}

/// Inserts queue items for a message: READY and due `now`, or LEASED to the owner its
/// [`Enqueue::lease`] names until the lease runs out.
pub(super) fn enqueue(
    conn: &Connection,
    op: &'static str,
    id_text: &str,
    now: i64,
    items: &[Enqueue],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO queue_items (queue, message_id, destination, attempts, available_at, \
             state, lease_owner, lease_until, created_at) \
             VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(StoreError::sqlite(op))?;
    for q in items {
        let (state, owner, until) = match &q.lease {
            None => (QueueState::Ready, None, None),
            Some((owner, lease)) => (
                QueueState::Leased,
                Some(owner.as_str()),
                Some(now.saturating_add(duration_micros(*lease))),
            ),
        };
        stmt.execute(params![
            q.queue,
            id_text,
            q.destination,
            until.unwrap_or(now),
            state.as_str(),
            owner,
            until,
            now
        ])
        .map_err(StoreError::sqlite(op))?;
    }
    Ok(())
}

/// Stores (or replaces) one content stage.
pub(super) fn put_content(
    conn: &Connection,
    id: MessageId,
    destination: Destination,
    stage: Stage,
    bytes: &[u8],
) -> Result<()> {
    const OP: &str = "put_content";
    let changed = conn
        .prepare_cached(
            "INSERT INTO message_content (message_id, destination, stage, created_at, bytes) \
             SELECT id, ?2, ?3, ?4, ?5 FROM messages WHERE id = ?1 \
             ON CONFLICT (message_id, destination, stage) \
             DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                id.to_string(),
                destination,
                stage.as_str(),
                Timestamp::now().as_micros(),
                bytes
            ])
        })
        .map_err(StoreError::sqlite(OP))?;
    if changed == 0 {
        return Err(StoreError::MessageNotFound { op: OP, id });
    }
    Ok(())
}

/// Sets a message's status and error text.
pub(super) fn set_status(
    conn: &Connection,
    id: MessageId,
    status: Status,
    error: Option<&str>,
) -> Result<()> {
    const OP: &str = "set_status";
    let changed = conn
        .prepare_cached("UPDATE messages SET status = ?2, error = ?3 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id.to_string(), status.as_str(), error]))
        .map_err(StoreError::sqlite(OP))?;
    if changed == 0 {
        return Err(StoreError::MessageNotFound { op: OP, id });
    }
    Ok(())
}

/// Leases up to `limit` claimable items of `queue` to `owner` for `lease_micros`.
pub(super) fn claim(
    conn: &Connection,
    queue: &str,
    owner: &str,
    lease_micros: i64,
    limit: u32,
) -> Result<Vec<QueueItem>> {
    const OP: &str = "claim";
    let now = Timestamp::now().as_micros();
    let until = now.saturating_add(lease_micros);
    let mut stmt = conn
        .prepare_cached(&claim_sql(limit))
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

/// The statement of [`claim`] (the literal limit and the `CAST`: see
/// `engine_ops::claim_head_sql` and `engine_ops::claim_head`).
pub(super) fn claim_sql(limit: u32) -> String {
    format!(
        "UPDATE queue_items SET state = 'LEASED', lease_owner = ?1, lease_until = ?2, \
         available_at = ?2 \
         WHERE id IN (SELECT id FROM queue_items \
                      WHERE queue = CAST(?3 AS TEXT) AND state IN ('READY', 'LEASED') \
                      AND available_at <= ?4 \
                      ORDER BY available_at, id LIMIT {limit}) \
         RETURNING {ITEM_COLUMNS}"
    )
}

/// Why a conditional queue update changed nothing: the item is missing or its lease is gone.
pub(super) fn lease_error(
    conn: &Connection,
    op: &'static str,
    id: QueueItemId,
    owner: &str,
) -> Result<StoreError> {
    let found: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT state, lease_owner FROM queue_items WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(StoreError::sqlite(op))?;
    Ok(match found {
        None => StoreError::QueueItemNotFound { op, item: id },
        Some((state, holder)) => StoreError::LeaseNotHeld {
            op,
            item: id,
            owner: owner.to_owned(),
            state: parse(op, "queue_items.state", state)?,
            holder,
        },
    })
}

/// Marks a leased item done.
pub(super) fn ack(conn: &Connection, id: QueueItemId, owner: &str) -> Result<()> {
    const OP: &str = "ack";
    let changed = conn
        .prepare_cached(
            "UPDATE queue_items SET state = 'DONE', lease_until = NULL \
             WHERE id = ?1 AND state = 'LEASED' AND lease_owner = ?2",
        )
        .and_then(|mut s| s.execute(params![id.0, owner]))
        .map_err(StoreError::sqlite(OP))?;
    if changed == 0 {
        return Err(lease_error(conn, OP, id, owner)?);
    }
    Ok(())
}

/// Records a failed attempt: back to READY at `retry_at`, or DEAD after `max_attempts`.
pub(super) fn nack(
    conn: &Connection,
    id: QueueItemId,
    owner: &str,
    retry_at: Timestamp,
    error: &str,
    max_attempts: u32,
) -> Result<QueueState> {
    const OP: &str = "nack";
    let state: Option<String> = conn
        .prepare_cached(
            "UPDATE queue_items SET attempts = attempts + 1, last_error = ?3, lease_until = NULL, \
             available_at = ?4, \
             state = CASE WHEN attempts + 1 >= ?5 THEN 'DEAD' ELSE 'READY' END \
             WHERE id = ?1 AND state = 'LEASED' AND lease_owner = ?2 RETURNING state",
        )
        .and_then(|mut s| {
            s.query_row(
                params![id.0, owner, error, retry_at.as_micros(), max_attempts],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(StoreError::sqlite(OP))?;
    match state {
        Some(state) => parse(OP, "queue_items.state", state),
        None => Err(lease_error(conn, OP, id, owner)?),
    }
}

/// Puts a dead item back to READY with its attempts reset.
pub(super) fn requeue_dead(conn: &Connection, id: QueueItemId) -> Result<()> {
    const OP: &str = "requeue_dead";
    let changed = conn
        .prepare_cached(
            "UPDATE queue_items SET state = 'READY', attempts = 0, available_at = ?2, \
             lease_until = NULL WHERE id = ?1 AND state = 'DEAD'",
        )
        .and_then(|mut s| s.execute(params![id.0, Timestamp::now().as_micros()]))
        .map_err(StoreError::sqlite(OP))?;
    if changed > 0 {
        return Ok(());
    }
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM queue_items WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.0], |r| r.get(0)).optional())
        .map_err(StoreError::sqlite(OP))?;
    Err(match state {
        None => StoreError::QueueItemNotFound { op: OP, item: id },
        Some(state) => StoreError::WrongQueueState {
            op: OP,
            item: id,
            state: parse(OP, "queue_items.state", state)?,
            expected: QueueState::Dead,
        },
    })
}

/// A message with metadata and content, read in one snapshot.
pub(super) fn get_message(
    conn: &Connection,
    id: MessageId,
    crypto: &Crypto,
) -> Result<Option<StoredMessage>> {
    const OP: &str = "get";
    let id_text = id.to_string();
    let tx = conn
        .unchecked_transaction()
        .map_err(StoreError::sqlite(OP))?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id = ?1"
        ))
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([&id_text]).map_err(StoreError::sqlite(OP))?;
    let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? else {
        return Ok(None);
    };
    let summary = summary(row, OP)?;
    drop(rows);
    let mut metadata = Vec::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT key, value, sealed FROM message_metadata WHERE message_id = ?1 ORDER BY seq",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([&id_text]).map_err(StoreError::sqlite(OP))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        let key: String = get(row, 0, OP)?;
        let value = crypto.open_metadata(OP, &id_text, &key, get(row, 1, OP)?, get(row, 2, OP)?)?;
        metadata.push((key, value));
    }
    drop(rows);
    let mut content = Vec::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT destination, stage, bytes, created_at FROM message_content \
             WHERE message_id = ?1",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([&id_text]).map_err(StoreError::sqlite(OP))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        let destination = destination(OP, get(row, 0, OP)?)?;
        let stage = parse(OP, "message_content.stage", get(row, 1, OP)?)?;
        content.push(Content {
            destination,
            stage,
            bytes: crypto.open(
                OP,
                SealedRow::Content(&id_text, destination, stage),
                get(row, 2, OP)?,
            )?,
            created_at: Timestamp::from_micros(get(row, 3, OP)?),
        });
    }
    drop(rows);
    let mut destinations = Vec::new();
    let mut shared = Vec::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT destination, name, status, error, updated_at, shared \
             FROM message_destinations WHERE message_id = ?1 ORDER BY destination",
        )
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([&id_text]).map_err(StoreError::sqlite(OP))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        let d = DestinationStatus {
            destination: destination(OP, get(row, 0, OP)?)?,
            name: get(row, 1, OP)?,
            status: parse(OP, "message_destinations.status", get(row, 2, OP)?)?,
            error: get(row, 3, OP)?,
            updated_at: Timestamp::from_micros(get(row, 4, OP)?),
        };
        shared.push((
            d.destination,
            Shared::from_bits(get(row, 5, OP)?),
            d.updated_at,
        ));
        destinations.push(d);
    }
    add_shared(&mut content, &shared);
    Ok(Some(StoredMessage {
        summary,
        metadata,
        content,
        destinations,
    }))
}

/// Messages matching `filter`, newest first.
pub(super) fn list(conn: &Connection, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
    const OP: &str = "list";
    let w = sql::filter_clause(filter, true, &LOOKUPS, |n| format!("?{n}"));
    let query = format!(
        "SELECT {SUMMARY_COLUMNS} FROM messages m {} ORDER BY m.id DESC LIMIT ?{}",
        w.sql,
        w.params.len() + 1
    );
    let mut stmt = conn.prepare(&query).map_err(StoreError::sqlite(OP))?;
    let mut bound: Vec<&dyn ToSql> = w.params.iter().map(|p| p as &dyn ToSql).collect();
    let limit = filter.effective_limit();
    bound.push(&limit);
    let mut rows = stmt
        .query(bound.as_slice())
        .map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        out.push(summary(row, OP)?);
    }
    Ok(out)
}

/// How many messages match `filter` (ignoring its limit and paging).
pub(super) fn count(conn: &Connection, filter: &MessageFilter) -> Result<u64> {
    const OP: &str = "count";
    let w = sql::filter_clause(filter, false, &LOOKUPS, |n| format!("?{n}"));
    let query = format!("SELECT count(*) FROM messages m {}", w.sql);
    let bound: Vec<&dyn ToSql> = w.params.iter().map(|p| p as &dyn ToSql).collect();
    let n: i64 = conn
        .prepare(&query)
        .and_then(|mut s| s.query_row(bound.as_slice(), |r| r.get(0)))
        .map_err(StoreError::sqlite(OP))?;
    Ok(n.unsigned_abs())
}

/// The dead items of `queue`, oldest first.
pub(super) fn dead_letters(conn: &Connection, queue: &str) -> Result<Vec<QueueItem>> {
    const OP: &str = "dead_letters";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM queue_items WHERE queue = ?1 AND state = 'DEAD' ORDER BY id"
        ))
        .map_err(StoreError::sqlite(OP))?;
    let mut rows = stmt.query([queue]).map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(OP))? {
        out.push(item(row, OP)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use crate::model::{MessageFilter, MessageId, Status};
    use crate::sql;
    use crate::time::Timestamp;

    /// The query plan of a listing: searching by any one filter must use an index, never
    /// read every message (the journal holds millions).
    fn plan(conn: &Connection, filter: &MessageFilter) -> String {
        let w = sql::filter_clause(filter, true, &super::LOOKUPS, |n| format!("?{n}"));
        let query = format!(
            "EXPLAIN QUERY PLAN SELECT m.id FROM messages m {} ORDER BY m.id DESC LIMIT 100",
            w.sql
        );
        let mut stmt = conn.prepare(&query).unwrap();
        let bound: Vec<&dyn rusqlite::ToSql> =
            w.params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
        let rows = stmt
            .query_map(bound.as_slice(), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn every_search_filter_uses_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut conn).unwrap();
        let now = Timestamp::now();
        let filters = [
            MessageFilter {
                channel: Some("adt".into()),
                ..MessageFilter::default()
            },
            MessageFilter {
                status: Some(Status::Error),
                ..MessageFilter::default()
            },
            MessageFilter {
                message_type: Some("ADT".into()),
                trigger_event: Some("A01".into()),
                ..MessageFilter::default()
            },
            MessageFilter {
                control_id: Some("C1".into()),
                ..MessageFilter::default()
            },
            MessageFilter {
                metadata: vec![("MRN".into(), "12345".into())],
                ..MessageFilter::default()
            },
            MessageFilter {
                received_from: Some(now),
                received_to: Some(now),
                ..MessageFilter::default()
            },
            MessageFilter {
                original_id: Some(MessageId::generate().unwrap()),
                ..MessageFilter::default()
            },
            MessageFilter {
                channel: Some("adt".into()),
                status: Some(Status::Sent),
                metadata: vec![("MRN".into(), "12345".into())],
                ..MessageFilter::default()
            },
        ];
        for f in &filters {
            let p = plan(&conn, f);
            // the only tables read whole are those of rows waiting to be filed in the batched
            // indexes (the pending control ids, `p` the pending message list): a few hundred
            // rows
            let scans: Vec<&str> = p
                .split("; ")
                .filter(|step| {
                    step.starts_with("SCAN ")
                        && !matches!(*step, "SCAN message_control_pending" | "SCAN p")
                })
                .collect();
            assert!(scans.is_empty(), "{f:?} reads a whole table: {p}");
            assert!(p.contains("USING"), "{f:?}: {p}");
        }
        let p = plan(
            &conn,
            &MessageFilter {
                control_id: Some("C1".into()),
                ..MessageFilter::default()
            },
        );
        assert!(
            p.contains("SEARCH message_control USING PRIMARY KEY (control_id=?)"),
            "{p}"
        );
        let p = plan(
            &conn,
            &MessageFilter {
                metadata: vec![("MRN".into(), "12345".into())],
                ..MessageFilter::default()
            },
        );
        assert!(
            p.contains("SEARCH message_metadata_index USING PRIMARY KEY (key=? AND value=?)")
                && p.contains("SCAN p; SEARCH md USING PRIMARY KEY (message_id=?)"),
            "{p}"
        );
        // paging newest first without a filter walks the primary key backwards, no sort
        let p = plan(&conn, &MessageFilter::default());
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }
}
