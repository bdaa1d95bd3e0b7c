//! Encryption at rest on SQLite: the key record at open, key rotation batches (in the
//! writer's transactions) and the count of values per key id.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::crypto::{self, Crypto, Cursor, LoadedKeys, RecordedKey, Row, SealedTable, Step};
use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// Checks the configured keys against the store's record and records new key ids (inside
/// the open's migration connection, before the writer starts).
pub(super) fn setup(conn: &mut Connection, keys: Option<LoadedKeys>) -> Result<Crypto> {
    const OP: &str = "open";
    let e = StoreError::sqlite(OP);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let recorded: Vec<RecordedKey> = tx
        .prepare("SELECT key_id, check_value, blind_index FROM plexus_keys ORDER BY added_at")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(RecordedKey {
                    key_id: r.get(0)?,
                    check_value: r.get(1)?,
                    blind_index: r.get::<_, i64>(2)? == 1,
                })
            })?
            .collect()
        })
        .map_err(StoreError::sqlite(OP))?;
    let has_data = keys.is_some()
        && recorded.is_empty()
        && tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM fhir_resource)",
                [],
                |r| r.get::<_, bool>(0),
            )
            .map_err(StoreError::sqlite(OP))?;
    let (crypto, add) = crypto::resolve(keys, &recorded, has_data)?;
    for r in add {
        tx.execute(
            "INSERT INTO plexus_keys (key_id, check_value, blind_index, added_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![
                r.key_id,
                r.check_value,
                i64::from(r.blind_index),
                Timestamp::now().as_micros()
            ],
        )
        .map_err(StoreError::sqlite(OP))?;
        tracing::info!(key_id = %r.key_id, "recorded a new encryption key id");
    }
    tx.commit().map_err(e)?;
    Ok(crypto)
}

/// One stored encrypted value: its primary key (as a cursor), its row identity, the value.
struct Found {
    cursor: Cursor,
    /// (type, id) of a resource version; message id and key of metadata.
    names: (String, String),
    value: Vec<u8>,
}

fn row_of<'a>(cursor: &'a Cursor, names: &'a (String, String)) -> Option<Row<'a>> {
    match cursor {
        Cursor::Content(id, d, s) => {
            Some(Row::Content(id, u16::try_from(*d).ok()?, s.parse().ok()?))
        }
        Cursor::Metadata(id, _) => Some(Row::Metadata(id, &names.1)),
        Cursor::Version(_, v) => Some(Row::Resource(&names.0, &names.1, *v)),
        Cursor::Start => None,
    }
}

/// Looks at up to `limit` rows of `table` after `cursor` and re-encrypts those under
/// another key than the active one.
fn step(
    conn: &Connection,
    crypto: &Crypto,
    table: SealedTable,
    cursor: &Cursor,
    limit: u32,
) -> Result<Step> {
    const OP: &str = "rotate";
    let (sql, key): (&str, Vec<Box<dyn rusqlite::ToSql>>) = match (table, cursor) {
        (SealedTable::MessageContent, Cursor::Content(id, d, s)) => (
            "SELECT message_id, destination, stage, bytes FROM message_content \
             WHERE (message_id, destination, stage) > (?1, ?2, ?3) \
             ORDER BY message_id, destination, stage LIMIT ?4",
            vec![Box::new(id.clone()), Box::new(*d), Box::new(s.clone())],
        ),
        (SealedTable::MessageContent, _) => (
            "SELECT message_id, destination, stage, bytes FROM message_content \
             ORDER BY message_id, destination, stage LIMIT ?1",
            vec![],
        ),
        (SealedTable::MessageMetadata, Cursor::Metadata(id, seq)) => (
            "SELECT message_id, seq, key, sealed FROM message_metadata \
             WHERE (message_id, seq) > (?1, ?2) ORDER BY message_id, seq LIMIT ?3",
            vec![Box::new(id.clone()), Box::new(*seq)],
        ),
        (SealedTable::MessageMetadata, _) => (
            "SELECT message_id, seq, key, sealed FROM message_metadata \
             ORDER BY message_id, seq LIMIT ?1",
            vec![],
        ),
        (SealedTable::FhirVersion, Cursor::Version(rid, v)) => (
            "SELECT v.rid, v.version, r.type, r.id, v.content FROM fhir_version v \
             JOIN fhir_resource r ON r.rid = v.rid WHERE (v.rid, v.version) > (?1, ?2) \
             ORDER BY v.rid, v.version LIMIT ?3",
            vec![Box::new(*rid), Box::new(*v)],
        ),
        (SealedTable::FhirVersion, _) => (
            "SELECT v.rid, v.version, r.type, r.id, v.content FROM fhir_version v \
             JOIN fhir_resource r ON r.rid = v.rid ORDER BY v.rid, v.version LIMIT ?1",
            vec![],
        ),
    };
    let mut bound: Vec<&dyn rusqlite::ToSql> = key.iter().map(AsRef::as_ref).collect();
    bound.push(&limit);
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::sqlite(OP))?;
    let found: Vec<Found> = stmt
        .query_map(bound.as_slice(), |r| {
            Ok(match table {
                SealedTable::MessageContent => Found {
                    cursor: Cursor::Content(r.get(0)?, r.get(1)?, r.get(2)?),
                    names: (String::new(), String::new()),
                    value: r.get(3)?,
                },
                SealedTable::MessageMetadata => Found {
                    cursor: Cursor::Metadata(r.get(0)?, r.get(1)?),
                    names: (String::new(), r.get(2)?),
                    value: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                },
                SealedTable::FhirVersion => Found {
                    cursor: Cursor::Version(r.get(0)?, r.get(1)?),
                    names: (r.get(2)?, r.get(3)?),
                    value: r.get(4)?,
                },
            })
        })
        .and_then(Iterator::collect)
        .map_err(StoreError::sqlite(OP))?;
    let mut rewritten = 0;
    for f in &found {
        let Some(row) = row_of(&f.cursor, &f.names) else {
            continue;
        };
        let Some(new) = crypto.reseal(OP, row, &f.value)? else {
            continue;
        };
        let changed = match &f.cursor {
            Cursor::Content(id, d, s) => conn
                .prepare_cached(
                    "UPDATE message_content SET bytes = ?4 \
                     WHERE message_id = ?1 AND destination = ?2 AND stage = ?3",
                )
                .and_then(|mut st| st.execute(params![id, d, s, new])),
            Cursor::Metadata(id, seq) => conn
                .prepare_cached(
                    "UPDATE message_metadata SET sealed = ?3 WHERE message_id = ?1 AND seq = ?2",
                )
                .and_then(|mut st| st.execute(params![id, seq, new])),
            Cursor::Version(rid, v) => conn
                .prepare_cached(
                    "UPDATE fhir_version SET content = ?3 WHERE rid = ?1 AND version = ?2",
                )
                .and_then(|mut st| st.execute(params![rid, v, new])),
            Cursor::Start => Ok(0),
        }
        .map_err(StoreError::sqlite(OP))?;
        rewritten += changed as u64;
    }
    let full = found.len() >= limit as usize;
    Ok(Step {
        rewritten,
        next: if full {
            found.into_iter().last().map(|f| f.cursor)
        } else {
            None
        },
    })
}

/// Counts the encrypted values of `table` per key id (`""`: not encrypted).
fn usage(conn: &Connection, table: SealedTable) -> Result<BTreeMap<String, u64>> {
    const OP: &str = "key_usage";
    let (col, from) = match table {
        SealedTable::MessageContent => ("bytes", "message_content"),
        SealedTable::MessageMetadata => ("coalesce(sealed, X'')", "message_metadata"),
        SealedTable::FhirVersion => ("content", "fhir_version WHERE length(content) > 0"),
    };
    let sql = format!(
        "SELECT CASE WHEN substr({col}, 1, 5) = X'0050584501' \
                 AND instr(substr({col}, 6, 34), X'00') > 1 \
             THEN CAST(substr({col}, 6, instr(substr({col}, 6, 34), X'00') - 1) AS TEXT) \
             ELSE '' END AS k, count(*) FROM {from} GROUP BY k"
    );
    let mut stmt = conn.prepare(&sql).map_err(StoreError::sqlite(OP))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(StoreError::sqlite(OP))?;
    Ok(rows
        .into_iter()
        .map(|(k, n)| (k, n.unsigned_abs()))
        .collect())
}

impl SqliteStore {
    /// One batch of [`crypto::rotate`], as one request of the writer (one transaction).
    pub(crate) async fn rotate_step(
        &self,
        table: SealedTable,
        cursor: Cursor,
        limit: u32,
    ) -> Result<Step> {
        let crypto = self.crypto.clone();
        self.write("rotate", 0, move |conn| {
            step(conn, &crypto, table, &cursor, limit)
        })
        .await
    }

    /// See [`crypto::key_usage`].
    pub(crate) async fn key_usage(&self) -> Result<BTreeMap<SealedTable, BTreeMap<String, u64>>> {
        self.readers
            .run("key_usage", |conn| {
                SealedTable::ALL
                    .iter()
                    .map(|t| Ok((*t, usage(conn, *t)?)))
                    .collect()
            })
            .await
    }
}
