//! The operations the channel engine drives, on PostgreSQL: transitions, strict FIFO claims,
//! lease extension, queue depths and retention.
//!
//! An `apply` is one transaction: it locks the messages it changes (so they cannot be deleted,
//! and two applies of one message take turns), then sends every statement of every transition
//! pipelined on the connection and commits once, or rolls everything back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures_util::future::{try_join, try_join_all};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::group::Sealed;
use super::{PgStore, rows};
use crate::error::{Result, StoreError, Subject};
use crate::model::{
    Destination, MessageId, QueueDepth, QueueItem, QueueItemId, QueueState, Shared, Stage,
    Transition, take_shared,
};
use crate::sql::ITEM_COLUMNS;
use crate::time::{Timestamp, duration_micros};

/// Locks the messages of an apply; returns those that exist.
const LOCK_SQL: &str = "SELECT id FROM messages WHERE id = ANY($1::text[]) ORDER BY id
     FOR NO KEY UPDATE";

const COMPLETE_SQL: &str = "UPDATE queue_items SET state = 'DONE', lease_until = NULL
     WHERE id = $1 AND state = 'LEASED' AND lease_owner = $2";

const STATUS_SQL: &str = "UPDATE messages SET status = $2, error = $3 WHERE id = $1::text";

const DESTINATIONS_SQL: &str = "INSERT INTO message_destinations
         (message_id, destination, name, status, error, updated_at, shared)
     SELECT $1::text, d.destination, d.name, d.status, d.error, now(), d.shared
     FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::smallint[])
         AS d(destination, name, status, error, shared)
     ON CONFLICT (message_id, destination) DO UPDATE SET name = excluded.name,
         status = excluded.status, error = excluded.error, updated_at = excluded.updated_at,
         shared = message_destinations.shared | excluded.shared";

const CONTENT_SQL: &str = "INSERT INTO message_content
         (message_id, destination, stage, created_at, bytes)
     SELECT $1::text, c.destination, c.stage, now(), c.bytes
     FROM unnest($2::int[], $3::text[], $4::bytea[]) AS c(destination, stage, bytes)
     ON CONFLICT (message_id, destination, stage)
     DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at";

/// Queue items, READY or (with a lease owner) LEASED; see
/// [`super::group::APPEND_SOURCE_SIDE_SQL`].
const ENQUEUE_SQL: &str = "INSERT INTO queue_items
         (queue, message_id, destination, attempts, available_at, state, lease_owner,
          lease_until)
     SELECT q.queue, $1::text, q.destination, 0, coalesce(q.until, now()),
         CASE WHEN q.owner IS NULL THEN 'READY' ELSE 'LEASED' END, q.owner, q.until
     FROM (SELECT u.queue, u.destination, u.owner, u.ord,
                  now() + u.lease * interval '1 microsecond' AS until
           FROM unnest($2::text[], $3::int[], $4::text[], $5::bigint[]) WITH ORDINALITY
               AS u(queue, destination, owner, lease, ord)) AS q
     ORDER BY q.ord";

const METADATA_SQL: &str = "INSERT INTO message_metadata (message_id, seq, key, value, sealed)
     SELECT $1::text, base.next + (kv.ord - 1)::int, kv.key, kv.value, kv.sealed
     FROM (SELECT coalesce(max(seq) + 1, 0) AS next FROM message_metadata
           WHERE message_id = $1::text) AS base,
          unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS kv(key, value, sealed, ord)";

/// The statements of an apply, prepared (and cached) on one connection.
struct Statements {
    lock: Statement,
    complete: Statement,
    status: Statement,
    destinations: Statement,
    content: Statement,
    enqueue: Statement,
    metadata: Statement,
    refresh: Statement,
}

impl Statements {
    async fn prepare(client: &deadpool_postgres::Object, op: &'static str) -> Result<Self> {
        let prepare = |sql: &'static str| async move {
            client.prepare_cached(sql).await.map_err(StoreError::pg(op))
        };
        Ok(Self {
            lock: prepare(LOCK_SQL).await?,
            complete: prepare(COMPLETE_SQL).await?,
            status: prepare(STATUS_SQL).await?,
            destinations: prepare(DESTINATIONS_SQL).await?,
            content: prepare(CONTENT_SQL).await?,
            enqueue: prepare(ENQUEUE_SQL).await?,
            metadata: prepare(METADATA_SQL).await?,
            refresh: prepare(crate::sql::REFRESH_STATUS_PG).await?,
        })
    }
}

/// The parameters of one transition, borrowed from it.
struct Params<'t> {
    id: String,
    refresh: bool,
    complete: Option<(i64, &'t str)>,
    status: Option<(&'static str, Option<&'t str>)>,
    dest_numbers: Vec<i32>,
    dest_names: Vec<&'t str>,
    dest_statuses: Vec<&'static str>,
    dest_errors: Vec<Option<&'t str>>,
    dest_shared: Vec<i16>,
    content_destinations: Vec<i32>,
    content_stages: Vec<&'static str>,
    content_bytes: Vec<&'t [u8]>,
    queues: Vec<&'t str>,
    queue_destinations: Vec<i32>,
    lease_owners: Vec<Option<&'t str>>,
    lease_micros: Vec<Option<i64>>,
    keys: Vec<&'t str>,
    values: Vec<&'t str>,
    /// Encrypted metadata values (empty when encryption is off).
    sealed: Vec<&'t [u8]>,
}

impl<'t> Params<'t> {
    fn of(t: &'t Transition, sealed: &'t Sealed) -> Self {
        let destinations = t.last_destination_updates();
        let mut content = t.last_content();
        for (c, s) in content.iter_mut().zip(&sealed.content) {
            c.2 = s.as_slice();
        }
        Self {
            id: t.message_id.to_string(),
            refresh: t.refresh_status,
            complete: t
                .complete
                .as_ref()
                .map(|(item, owner)| (item.0, owner.as_str())),
            status: t
                .status
                .as_ref()
                .map(|(status, error)| (status.as_str(), error.as_deref())),
            dest_numbers: destinations
                .iter()
                .map(|(d, _)| i32::from(d.destination))
                .collect(),
            dest_names: destinations.iter().map(|(d, _)| d.name.as_str()).collect(),
            dest_statuses: destinations
                .iter()
                .map(|(d, _)| d.status.as_str())
                .collect(),
            dest_errors: destinations
                .iter()
                .map(|(d, _)| d.error.as_deref())
                .collect(),
            dest_shared: destinations
                .iter()
                .map(|(_, s)| i16::from(s.bits()))
                .collect(),
            content_destinations: content.iter().map(|(d, _, _)| i32::from(*d)).collect(),
            content_stages: content.iter().map(|(_, s, _)| s.as_str()).collect(),
            content_bytes: content.iter().map(|(_, _, b)| *b).collect(),
            queues: t.enqueue.iter().map(|e| e.queue.as_str()).collect(),
            queue_destinations: t.enqueue.iter().map(|e| i32::from(e.destination)).collect(),
            lease_owners: t
                .enqueue
                .iter()
                .map(|e| e.lease.as_ref().map(|(owner, _)| owner.as_str()))
                .collect(),
            lease_micros: t
                .enqueue
                .iter()
                .map(|e| e.lease.as_ref().map(|(_, lease)| duration_micros(*lease)))
                .collect(),
            keys: t.metadata.iter().map(|(k, _)| k.as_str()).collect(),
            values: if sealed.values.is_empty() {
                t.metadata.iter().map(|(_, v)| v.as_str()).collect()
            } else {
                sealed.values.iter().map(String::as_str).collect()
            },
            sealed: sealed.metadata.iter().map(Vec::as_slice).collect(),
        }
    }
}

type Bound<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// The encrypted content and metadata of each transition (nothing when encryption is off).
fn seal_all(store: &PgStore, transitions: &[Transition]) -> Result<Vec<Sealed>> {
    transitions
        .iter()
        .map(|t| {
            Sealed::parts(
                &store.crypto,
                &t.message_id.to_string(),
                None,
                &t.last_content(),
                &t.metadata,
            )
        })
        .collect()
}

/// `Journal::apply`: every transition in one transaction.
pub(super) async fn apply(store: &PgStore, transitions: Vec<Transition>) -> Result<()> {
    const OP: &str = "apply";
    crate::check_transitions(&transitions)?;
    if transitions.is_empty() {
        return Ok(());
    }
    if batchable(&transitions) && apply_batch(store, &transitions).await? {
        return Ok(());
    }
    let mut client = store.client(OP).await?;
    let stmts = Statements::prepare(&client, OP).await?;
    let sealed = seal_all(store, &transitions)?;
    let params: Vec<Params<'_>> = transitions
        .iter()
        .zip(&sealed)
        .map(|(t, s)| Params::of(t, s))
        .collect();
    // statements in transition order; for each item to complete, its statement's index
    let mut calls: Vec<(&Statement, Bound<'_>)> = Vec::new();
    let mut completions: Vec<(usize, QueueItemId, &str)> = Vec::new();
    for p in &params {
        if let Some((item, owner)) = &p.complete {
            completions.push((calls.len(), QueueItemId(*item), owner));
            calls.push((&stmts.complete, vec![item, owner]));
        }
        if let Some((status, error)) = &p.status {
            calls.push((&stmts.status, vec![&p.id, status, error]));
        }
        if !p.dest_numbers.is_empty() {
            calls.push((
                &stmts.destinations,
                vec![
                    &p.id,
                    &p.dest_numbers,
                    &p.dest_names,
                    &p.dest_statuses,
                    &p.dest_errors,
                    &p.dest_shared,
                ],
            ));
        }
        if p.refresh {
            calls.push((&stmts.refresh, vec![&p.id]));
        }
        if !p.content_destinations.is_empty() {
            calls.push((
                &stmts.content,
                vec![
                    &p.id,
                    &p.content_destinations,
                    &p.content_stages,
                    &p.content_bytes,
                ],
            ));
        }
        if !p.queues.is_empty() {
            calls.push((
                &stmts.enqueue,
                vec![
                    &p.id,
                    &p.queues,
                    &p.queue_destinations,
                    &p.lease_owners,
                    &p.lease_micros,
                ],
            ));
        }
        if !p.keys.is_empty() {
            calls.push((&stmts.metadata, vec![&p.id, &p.keys, &p.values, &p.sealed]));
        }
    }
    let ids: Vec<&str> = params.iter().map(|p| p.id.as_str()).collect();

    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    let found: HashSet<String> = tx
        .query(&stmts.lock, &[&ids])
        .await
        .map_err(StoreError::pg(OP))?
        .iter()
        .map(|r| rows::get(r, 0, OP))
        .collect::<Result<_>>()?;
    if let Some(missing) = transitions
        .iter()
        .find(|t| !found.contains(&t.message_id.to_string()))
    {
        // dropping the transaction rolls it back
        return Err(StoreError::MessageNotFound {
            op: OP,
            id: missing.message_id,
        });
    }
    let counts = try_join_all(calls.iter().map(|(stmt, bound)| tx.execute(*stmt, bound)))
        .await
        .map_err(StoreError::pg(OP))?;
    if let Some(&(_, item, owner)) = completions.iter().find(|(i, _, _)| counts[*i] == 0) {
        // read inside the transaction, so an item an earlier transition of this apply
        // completed shows as DONE; dropping the transaction then rolls it back
        return Err(PgStore::lease_error(&tx, OP, item, owner).await?);
    }
    tx.commit().await.map_err(StoreError::pg(OP))?;
    store.committed(0);
    Ok(())
}

/// Whether an apply can run set-based: several transitions of distinct messages, without
/// metadata (whose sequence numbers are per message). A destination worker's batch of
/// deliveries is such an apply.
fn batchable(transitions: &[Transition]) -> bool {
    transitions.len() > 1
        && transitions.iter().all(|t| t.metadata.is_empty())
        && transitions
            .iter()
            .map(|t| t.message_id)
            .collect::<HashSet<_>>()
            .len()
            == transitions.len()
}

const COMPLETE_MANY_SQL: &str = "UPDATE queue_items q SET state = 'DONE', lease_until = NULL
     FROM unnest($1::bigint[], $2::text[]) AS c(id, owner)
     WHERE q.id = c.id AND q.state = 'LEASED' AND q.lease_owner = c.owner";

const STATUS_MANY_SQL: &str = "UPDATE messages m SET status = s.status, error = s.error
     FROM unnest($1::text[], $2::text[], $3::text[]) AS s(id, status, error)
     WHERE m.id = s.id";

const DESTINATIONS_MANY_SQL: &str = "INSERT INTO message_destinations
         (message_id, destination, name, status, error, updated_at, shared)
     SELECT d.id, d.destination, d.name, d.status, d.error, now(), d.shared
     FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::smallint[])
         AS d(id, destination, name, status, error, shared)
     ON CONFLICT (message_id, destination) DO UPDATE SET name = excluded.name,
         status = excluded.status, error = excluded.error, updated_at = excluded.updated_at,
         shared = message_destinations.shared | excluded.shared";

const CONTENT_MANY_SQL: &str = "INSERT INTO message_content
         (message_id, destination, stage, created_at, bytes)
     SELECT c.id, c.destination, c.stage, now(), c.bytes
     FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[]) AS c(id, destination, stage, bytes)
     ON CONFLICT (message_id, destination, stage)
     DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at";

const ENQUEUE_MANY_SQL: &str = "INSERT INTO queue_items
         (queue, message_id, destination, attempts, available_at, state, lease_owner,
          lease_until)
     SELECT q.queue, q.id, q.destination, 0, coalesce(q.until, now()),
         CASE WHEN q.owner IS NULL THEN 'READY' ELSE 'LEASED' END, q.owner, q.until
     FROM (SELECT u.id, u.queue, u.destination, u.owner, u.ord,
                  now() + u.lease * interval '1 microsecond' AS until
           FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bigint[])
               WITH ORDINALITY AS u(id, queue, destination, owner, lease, ord)) AS q
     ORDER BY q.ord";

/// The transitions of [`apply_batch`], as one array per column.
#[derive(Default)]
struct Columns<'t> {
    complete_items: Vec<i64>,
    complete_owners: Vec<&'t str>,
    status_ids: Vec<&'t str>,
    statuses: Vec<&'static str>,
    status_errors: Vec<Option<&'t str>>,
    dest_ids: Vec<&'t str>,
    dest_numbers: Vec<i32>,
    dest_names: Vec<&'t str>,
    dest_statuses: Vec<&'static str>,
    dest_errors: Vec<Option<&'t str>>,
    dest_shared: Vec<i16>,
    refresh_ids: Vec<&'t str>,
    content_ids: Vec<&'t str>,
    content_destinations: Vec<i32>,
    content_stages: Vec<&'static str>,
    content_bytes: Vec<&'t [u8]>,
    queue_ids: Vec<&'t str>,
    queues: Vec<&'t str>,
    queue_destinations: Vec<i32>,
    lease_owners: Vec<Option<&'t str>>,
    lease_micros: Vec<Option<i64>>,
}

impl<'t> Columns<'t> {
    fn of(params: &'t [Params<'t>]) -> Self {
        let mut c = Self::default();
        for p in params {
            let id = p.id.as_str();
            if let Some((item, owner)) = p.complete {
                c.complete_items.push(item);
                c.complete_owners.push(owner);
            }
            if let Some((status, error)) = p.status {
                c.status_ids.push(id);
                c.statuses.push(status);
                c.status_errors.push(error);
            }
            c.dest_ids
                .extend(std::iter::repeat_n(id, p.dest_numbers.len()));
            c.dest_numbers.extend(&p.dest_numbers);
            c.dest_names.extend(&p.dest_names);
            c.dest_statuses.extend(&p.dest_statuses);
            c.dest_errors.extend(&p.dest_errors);
            c.dest_shared.extend(&p.dest_shared);
            if p.refresh {
                c.refresh_ids.push(id);
            }
            c.content_ids
                .extend(std::iter::repeat_n(id, p.content_destinations.len()));
            c.content_destinations.extend(&p.content_destinations);
            c.content_stages.extend(&p.content_stages);
            c.content_bytes.extend(&p.content_bytes);
            c.queue_ids.extend(std::iter::repeat_n(id, p.queues.len()));
            c.queues.extend(&p.queues);
            c.queue_destinations.extend(&p.queue_destinations);
            c.lease_owners.extend(&p.lease_owners);
            c.lease_micros.extend(&p.lease_micros);
        }
        c
    }
}

/// Applies transitions of distinct messages with one statement per kind of change for the
/// whole batch, instead of several per transition. Returns `false`, having written nothing,
/// when an item to complete is not held as claimed: the caller then applies transition by
/// transition, which names the item.
async fn apply_batch(store: &PgStore, transitions: &[Transition]) -> Result<bool> {
    const OP: &str = "apply";
    let mut client = store.client(OP).await?;
    let prepare = |sql: &'static str| {
        let client = &client;
        async move { client.prepare_cached(sql).await.map_err(StoreError::pg(OP)) }
    };
    let lock = prepare(LOCK_SQL).await?;
    let complete = prepare(COMPLETE_MANY_SQL).await?;
    let status = prepare(STATUS_MANY_SQL).await?;
    let destinations = prepare(DESTINATIONS_MANY_SQL).await?;
    let refresh = prepare(crate::sql::REFRESH_STATUS_MANY_PG).await?;
    let content = prepare(CONTENT_MANY_SQL).await?;
    let enqueue = prepare(ENQUEUE_MANY_SQL).await?;
    let sealed = seal_all(store, transitions)?;
    let params: Vec<Params<'_>> = transitions
        .iter()
        .zip(&sealed)
        .map(|(t, s)| Params::of(t, s))
        .collect();
    let c = Columns::of(&params);
    let ids: Vec<&str> = params.iter().map(|p| p.id.as_str()).collect();

    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    let found = tx
        .query(&lock, &[&ids])
        .await
        .map_err(StoreError::pg(OP))?
        .len();
    if found != ids.len() {
        // the transition by transition path names the missing message
        return Ok(false);
    }
    let mut calls: Vec<(&Statement, Bound<'_>)> = Vec::new();
    if !c.complete_items.is_empty() {
        calls.push((&complete, vec![&c.complete_items, &c.complete_owners]));
    }
    if !c.status_ids.is_empty() {
        calls.push((&status, vec![&c.status_ids, &c.statuses, &c.status_errors]));
    }
    if !c.dest_ids.is_empty() {
        calls.push((
            &destinations,
            vec![
                &c.dest_ids,
                &c.dest_numbers,
                &c.dest_names,
                &c.dest_statuses,
                &c.dest_errors,
                &c.dest_shared,
            ],
        ));
    }
    if !c.refresh_ids.is_empty() {
        calls.push((&refresh, vec![&c.refresh_ids]));
    }
    if !c.content_ids.is_empty() {
        calls.push((
            &content,
            vec![
                &c.content_ids,
                &c.content_destinations,
                &c.content_stages,
                &c.content_bytes,
            ],
        ));
    }
    if !c.queue_ids.is_empty() {
        calls.push((
            &enqueue,
            vec![
                &c.queue_ids,
                &c.queues,
                &c.queue_destinations,
                &c.lease_owners,
                &c.lease_micros,
            ],
        ));
    }
    let counts = try_join_all(calls.iter().map(|(stmt, bound)| tx.execute(*stmt, bound)))
        .await
        .map_err(StoreError::pg(OP))?;
    if !c.complete_items.is_empty() && counts[0] != c.complete_items.len() as u64 {
        // dropping the transaction rolls it back
        return Ok(false);
    }
    tx.commit().await.map_err(StoreError::pg(OP))?;
    store.committed(0);
    Ok(true)
}

/// `Queues::claim_head`: serialised per queue by an advisory lock, so that two claimers (on
/// one node or several) take turns and never both see the same head as claimable; the rows
/// are locked as well, so a concurrent ack or nack is seen as it committed.
pub(super) async fn claim_head(
    store: &PgStore,
    queue: &str,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<QueueItem>> {
    const OP: &str = "claim_head";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut client = store.client(OP).await?;
    let lock = client
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
        .await
        .map_err(StoreError::pg(OP))?;
    // head: the first `limit` unfinished items; the claimable prefix ends before the first one
    // that is neither due (READY due, or lease ran out) nor leased to `owner`
    let claim = client
        .prepare_cached(&format!(
            "WITH head AS (
                 SELECT id, (available_at <= statement_timestamp()
                             OR (state = 'LEASED' AND lease_owner = $3)) AS ok
                 FROM queue_items
                 WHERE queue = $1 AND state IN ('READY', 'LEASED')
                 ORDER BY id
                 LIMIT $2
                 FOR UPDATE
             ), t AS (
                 SELECT statement_timestamp() + $4::bigint * interval '1 microsecond' AS until
             )
             UPDATE queue_items q
             SET state = 'LEASED', lease_owner = $3, lease_until = t.until,
                 available_at = t.until
             FROM t
             WHERE q.id IN (SELECT id FROM head WHERE ok AND id <
                 coalesce((SELECT min(id) FROM head WHERE NOT ok), 9223372036854775807))
             RETURNING {}",
            ITEM_COLUMNS
                .split(", ")
                .map(|c| format!("q.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .map_err(StoreError::pg(OP))?;
    let lock_key = format!("plexus-claim-head:{}", store.schema);
    let lease = duration_micros(lease);
    let limit = i64::from(limit);
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    // pipelined: the claim runs (and takes its snapshot) once the lock is granted
    let (_, found) = try_join(
        tx.execute(&lock, &[&lock_key, &queue]),
        tx.query(&claim, &[&queue, &limit, &owner, &lease]),
    )
    .await
    .map_err(StoreError::pg(OP))?;
    tx.commit().await.map_err(StoreError::pg(OP))?;
    store.committed(0);
    let mut items = found
        .iter()
        .map(|r| rows::item(r, OP))
        .collect::<Result<Vec<_>>>()?;
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// `Queues::held_head`: the head of `queue` with room for the skipped items, then the prefix
/// leased to `owner` picked out here. A plain read: it takes no lock, and a claim that
/// commits meanwhile only shortens what the next call returns.
pub(super) async fn held_head(
    store: &PgStore,
    queue: &str,
    owner: &str,
    skip: &[QueueItemId],
    limit: u32,
) -> Result<Vec<QueueItem>> {
    const OP: &str = "held_head";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM queue_items \
             WHERE queue = $1 AND state IN ('READY', 'LEASED') ORDER BY id LIMIT $2"
        ))
        .await
        .map_err(StoreError::pg(OP))?;
    let skip: HashSet<QueueItemId> = skip.iter().copied().collect();
    let rows_wanted = i64::from(limit) + i64::try_from(skip.len()).unwrap_or(i64::MAX);
    let found = client
        .query(&stmt, &[&queue, &rows_wanted])
        .await
        .map_err(StoreError::pg(OP))?;
    let mut items = Vec::new();
    for row in &found {
        if items.len() >= limit as usize {
            break;
        }
        let item = rows::item(row, OP)?;
        if skip.contains(&item.id) {
            continue;
        }
        if item.state != QueueState::Leased || item.lease_owner.as_deref() != Some(owner) {
            break;
        }
        items.push(item);
    }
    Ok(items)
}

/// `Queues::extend_lease`.
pub(super) async fn extend_lease(
    store: &PgStore,
    item: QueueItemId,
    owner: &str,
    lease: Duration,
) -> Result<()> {
    const OP: &str = "extend_lease";
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached(
            "UPDATE queue_items
             SET lease_until = now() + $3::bigint * interval '1 microsecond',
                 available_at = now() + $3::bigint * interval '1 microsecond'
             WHERE id = $1 AND state = 'LEASED' AND lease_owner = $2",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    let changed = client
        .execute(&stmt, &[&item.0, &owner, &duration_micros(lease)])
        .await
        .map_err(StoreError::pg(OP))?;
    if changed == 0 {
        return Err(PgStore::lease_error(&client, OP, item, owner).await?);
    }
    store.committed(0);
    Ok(())
}

/// `Queues::queue_depth`.
pub(super) async fn queue_depth(store: &PgStore, queue: &str) -> Result<QueueDepth> {
    const OP: &str = "queue_depth";
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached(
            "SELECT state, count(*) FROM queue_items
             WHERE queue = $1 AND state IN ('READY', 'LEASED', 'DEAD') GROUP BY state",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    let found = client
        .query(&stmt, &[&queue])
        .await
        .map_err(StoreError::pg(OP))?;
    let mut depth = QueueDepth::default();
    for row in &found {
        let state: QueueState = rows::parse(OP, "queue_items.state", rows::get(row, 0, OP)?)?;
        let n = rows::get::<i64>(row, 1, OP)?.unsigned_abs();
        match state {
            QueueState::Ready => depth.ready = n,
            QueueState::Leased => depth.leased = n,
            QueueState::Dead => depth.dead = n,
            QueueState::Done => {}
        }
    }
    Ok(depth)
}

/// `Queues::queue_names`.
pub(super) async fn queue_names(store: &PgStore) -> Result<Vec<String>> {
    const OP: &str = "queue_names";
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached(
            "SELECT queue FROM queue_items WHERE state IN ('READY', 'LEASED')
             UNION
             SELECT queue FROM queue_items WHERE state = 'DEAD'
             ORDER BY 1",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    client
        .query(&stmt, &[])
        .await
        .map_err(StoreError::pg(OP))?
        .iter()
        .map(|r| rows::get(r, 0, OP))
        .collect()
}

/// `Journal::prunable`.
pub(super) async fn prunable(
    store: &PgStore,
    channel: &str,
    older_than: Option<Timestamp>,
    keep_last: Option<u64>,
    limit: u32,
) -> Result<Vec<MessageId>> {
    const OP: &str = "prunable";
    let client = store.client(OP).await?;
    // the newest message beyond the newest `keep_last`: it and everything older may go
    let cutoff: Option<String> = match keep_last {
        None => None,
        Some(keep) => {
            let stmt = client
                .prepare_cached(
                    "SELECT id FROM messages WHERE channel = $1 ORDER BY id DESC
                     LIMIT 1 OFFSET $2",
                )
                .await
                .map_err(StoreError::pg(OP))?;
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            match client
                .query_opt(&stmt, &[&channel, &keep])
                .await
                .map_err(StoreError::pg(OP))?
            {
                Some(row) => Some(rows::get(&row, 0, OP)?),
                None => None,
            }
        }
    };
    let older_than: Option<SystemTime> = older_than.map(Timestamp::to_system_time);
    if cutoff.is_none() && older_than.is_none() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT m.id FROM messages m
             WHERE m.channel = $1
             AND (($2::timestamptz IS NOT NULL AND m.received_at < $2::timestamptz)
                  OR ($3::text IS NOT NULL AND m.id <= $3::text))
             AND NOT EXISTS (SELECT 1 FROM queue_items q WHERE q.message_id = m.id
                             AND q.state IN ('READY', 'LEASED'))
             ORDER BY m.id
             LIMIT $4",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    client
        .query(&stmt, &[&channel, &older_than, &cutoff, &i64::from(limit)])
        .await
        .map_err(StoreError::pg(OP))?
        .iter()
        .map(|r| rows::parse(OP, "messages.id", rows::get(r, 0, OP)?))
        .collect()
}

/// `Journal::delete`: one statement, so one short transaction; the foreign keys cascade to
/// metadata, content, destination rows and queue items.
pub(super) async fn delete(store: &PgStore, ids: &[MessageId]) -> Result<u64> {
    const OP: &str = "delete";
    if ids.is_empty() {
        return Ok(0);
    }
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached("DELETE FROM messages WHERE id = ANY($1::text[])")
        .await
        .map_err(StoreError::pg(OP))?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let deleted = client
        .execute(&stmt, &[&ids])
        .await
        .map_err(StoreError::pg(OP))?;
    store.committed(0);
    Ok(deleted)
}

/// What an apply was about, for its errors.
pub(super) fn apply_subject(transitions: &[Transition]) -> Subject {
    match transitions {
        [one] => Subject::Message(one.message_id),
        _ => Subject::None,
    }
}

/// A message's shared flags and the candidate rows (destination, stage, bytes) of
/// [`contents`].
type Candidates = (Shared, Vec<(Destination, Stage, Vec<u8>)>);

/// `Journal::contents`: one stage of one destination for several messages, in one query. A
/// stage the destination row marks as shared (see [`Shared`]) is read from the stage it
/// shares: the query returns the stage itself and, where the flags say so, the stages it may
/// share, and the flags decide.
pub(super) async fn contents(
    store: &PgStore,
    ids: &[MessageId],
    destination: crate::model::Destination,
    stage: crate::model::Stage,
) -> Result<Vec<(MessageId, Vec<u8>)>> {
    const OP: &str = "contents";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = store.client(OP).await?;
    let stmt = client
        .prepare_cached(
            "SELECT c.message_id, c.destination, c.stage, c.bytes, coalesce(d.shared, 0::smallint)
             FROM message_content c
             LEFT JOIN message_destinations d
                 ON d.message_id = c.message_id AND d.destination = $2
             WHERE c.message_id = ANY($1::text[])
               AND ((c.destination = $2 AND c.stage = $3)
                 OR ($3 = 'SENT' AND c.destination = $2 AND c.stage = 'ENCODED'
                     AND d.shared & 4 <> 0)
                 OR ($3 IN ('SENT', 'ENCODED') AND c.destination = 0
                     AND c.stage = 'TRANSFORMED' AND d.shared & 1 <> 0)
                 OR ($3 IN ('SENT', 'ENCODED') AND c.destination = 0
                     AND c.stage = 'RAW' AND d.shared & 2 <> 0))",
        )
        .await
        .map_err(StoreError::pg(OP))?;
    let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows = client
        .query(&stmt, &[&texts, &i32::from(destination), &stage.as_str()])
        .await
        .map_err(StoreError::pg(OP))?;
    let mut found: HashMap<String, Candidates> = HashMap::new();
    for r in &rows {
        let id_text: String = rows::get(r, 0, OP)?;
        let d: i32 = rows::get(r, 1, OP)?;
        let d = Destination::try_from(d).map_err(|_| StoreError::Corrupt {
            op: OP,
            column: "message_content.destination",
            value: d.to_string(),
        })?;
        let s = rows::parse(OP, "message_content.stage", rows::get::<String>(r, 2, OP)?)?;
        let bits: i16 = rows::get(r, 4, OP)?;
        let entry = found
            .entry(id_text)
            .or_insert_with(|| (Shared::from_bits(bits.into()), Vec::new()));
        entry.1.push((d, s, rows::get(r, 3, OP)?));
    }
    let mut out = Vec::with_capacity(found.len());
    for id in ids {
        let id_text = id.to_string();
        let Some((shared, mut candidates)) = found.remove(&id_text) else {
            continue;
        };
        if let Some((d, s, bytes)) = take_shared(&mut candidates, shared, destination, stage) {
            let row = crate::crypto::Row::Content(&id_text, d, s);
            out.push((*id, store.crypto.open(OP, row, bytes)?));
        }
    }
    Ok(out)
}
