//! Encryption at rest on PostgreSQL: the key record at open (serialised between nodes by an
//! advisory lock), key rotation batches (one transaction each, rows locked) and the count
//! of values per key id.

use std::collections::BTreeMap;

use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::crypto::{self, Crypto, Cursor, LoadedKeys, RecordedKey, Row, SealedTable, Step};
use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// Checks the configured keys against the store's record and records new key ids.
pub(super) async fn setup(store: &PgStore, keys: Option<LoadedKeys>) -> Result<Crypto> {
    const OP: &str = "open";
    let mut client = store.client(OP).await?;
    let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("plexus-keys:{}", store.schema)],
    )
    .await
    .map_err(StoreError::pg(OP))?;
    let recorded = tx
        .query(
            "SELECT key_id, check_value, blind_index FROM plexus_keys ORDER BY added_at",
            &[],
        )
        .await
        .map_err(StoreError::pg(OP))?
        .iter()
        .map(|r| {
            Ok(RecordedKey {
                key_id: r.try_get(0)?,
                check_value: r.try_get(1)?,
                blind_index: r.try_get::<_, i32>(2)? == 1,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(StoreError::pg(OP))?;
    let has_data = if keys.is_some() && recorded.is_empty() {
        tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM fhir_resource)",
            &[],
        )
        .await
        .and_then(|r| r.try_get::<_, bool>(0))
        .map_err(StoreError::pg(OP))?
    } else {
        false
    };
    let (crypto, add) = crypto::resolve(keys, &recorded, has_data)?;
    for r in add {
        tx.execute(
            "INSERT INTO plexus_keys (key_id, check_value, blind_index, added_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING",
            &[
                &r.key_id,
                &r.check_value,
                &i32::from(r.blind_index),
                &Timestamp::now().as_micros(),
            ],
        )
        .await
        .map_err(StoreError::pg(OP))?;
        tracing::info!(key_id = %r.key_id, "recorded a new encryption key id");
    }
    tx.commit().await.map_err(StoreError::pg(OP))?;
    Ok(crypto)
}

/// The select of one rotation batch of `table`, after the cursor when `after`.
fn select_sql(table: SealedTable, after: bool) -> String {
    let (select, key, order, lock) = match table {
        SealedTable::MessageContent => (
            "SELECT message_id, destination, stage, bytes FROM message_content",
            "(message_id, destination, stage) > ($1, $2::int, $3)",
            "message_id, destination, stage",
            "FOR UPDATE",
        ),
        SealedTable::MessageMetadata => (
            "SELECT message_id, seq, key, sealed FROM message_metadata",
            "(message_id, seq) > ($1, $2::int)",
            "message_id, seq",
            "FOR UPDATE",
        ),
        SealedTable::FhirVersion => (
            "SELECT v.rid, v.version, r.type, r.id, v.content FROM fhir_version v \
             JOIN fhir_resource r ON r.rid = v.rid",
            "(v.rid, v.version) > ($1, $2)",
            "v.rid, v.version",
            "FOR UPDATE OF v",
        ),
    };
    let (filter, limit) = match (table, after) {
        (_, false) => (String::new(), "$1"),
        (SealedTable::MessageContent, true) => (format!(" WHERE {key}"), "$4"),
        (_, true) => (format!(" WHERE {key}"), "$3"),
    };
    format!("{select}{filter} ORDER BY {order} LIMIT {limit} {lock}")
}

const UPDATE_CONTENT: &str = "UPDATE message_content SET bytes = $4 WHERE message_id = $1 AND destination = $2 AND stage = $3";
const UPDATE_METADATA: &str =
    "UPDATE message_metadata SET sealed = $3 WHERE message_id = $1 AND seq = $2";
const UPDATE_VERSION: &str = "UPDATE fhir_version SET content = $3 WHERE rid = $1 AND version = $2";

impl PgStore {
    /// One batch of [`crypto::rotate`] in one transaction.
    pub(crate) async fn rotate_step(
        &self,
        table: SealedTable,
        cursor: Cursor,
        limit: u32,
    ) -> Result<Step> {
        const OP: &str = "rotate";
        let limit = i64::from(limit);
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(StoreError::pg(OP))?;
        let sql = select_sql(table, cursor != Cursor::Start);
        let (text, int_a, int_b);
        let params: Vec<&(dyn ToSql + Sync)> = match &cursor {
            Cursor::Start => vec![&limit],
            Cursor::Content(id, d, s) => {
                text = id.clone();
                int_a = i32::try_from(*d).unwrap_or(i32::MAX);
                vec![&text, &int_a, s, &limit]
            }
            Cursor::Metadata(id, seq) => {
                text = id.clone();
                int_a = i32::try_from(*seq).unwrap_or(i32::MAX);
                vec![&text, &int_a, &limit]
            }
            Cursor::Version(rid, v) => {
                int_b = [*rid, *v];
                vec![&int_b[0], &int_b[1], &limit]
            }
        };
        let rows = tx.query(&sql, &params).await.map_err(StoreError::pg(OP))?;
        let mut rewritten = 0;
        let mut last = None;
        for r in &rows {
            let e = StoreError::pg(OP);
            let (cursor, names, value) = match table {
                SealedTable::MessageContent => (
                    Cursor::Content(
                        r.try_get(0).map_err(e)?,
                        i64::from(r.try_get::<_, i32>(1).map_err(StoreError::pg(OP))?),
                        r.try_get(2).map_err(StoreError::pg(OP))?,
                    ),
                    (String::new(), String::new()),
                    r.try_get::<_, Vec<u8>>(3).map_err(StoreError::pg(OP))?,
                ),
                SealedTable::MessageMetadata => (
                    Cursor::Metadata(
                        r.try_get(0).map_err(e)?,
                        i64::from(r.try_get::<_, i32>(1).map_err(StoreError::pg(OP))?),
                    ),
                    (String::new(), r.try_get(2).map_err(StoreError::pg(OP))?),
                    r.try_get::<_, Option<Vec<u8>>>(3)
                        .map_err(StoreError::pg(OP))?
                        .unwrap_or_default(),
                ),
                SealedTable::FhirVersion => (
                    Cursor::Version(
                        r.try_get(0).map_err(e)?,
                        r.try_get(1).map_err(StoreError::pg(OP))?,
                    ),
                    (
                        r.try_get(2).map_err(StoreError::pg(OP))?,
                        r.try_get(3).map_err(StoreError::pg(OP))?,
                    ),
                    r.try_get::<_, Vec<u8>>(4).map_err(StoreError::pg(OP))?,
                ),
            };
            let row = match &cursor {
                Cursor::Content(id, d, s) => {
                    let stage = s.parse().map_err(|_| StoreError::Corrupt {
                        op: OP,
                        column: "message_content.stage",
                        value: s.clone(),
                    })?;
                    Row::Content(id, u16::try_from(*d).unwrap_or(u16::MAX), stage)
                }
                Cursor::Metadata(id, _) => Row::Metadata(id, &names.1),
                Cursor::Version(_, v) => Row::Resource(&names.0, &names.1, *v),
                Cursor::Start => continue,
            };
            if let Some(new) = self.crypto.reseal(OP, row, &value)? {
                let n = match &cursor {
                    Cursor::Content(id, d, s) => {
                        let d = i32::try_from(*d).unwrap_or(i32::MAX);
                        tx.execute(UPDATE_CONTENT, &[id, &d, s, &new]).await
                    }
                    Cursor::Metadata(id, seq) => {
                        let seq = i32::try_from(*seq).unwrap_or(i32::MAX);
                        tx.execute(UPDATE_METADATA, &[id, &seq, &new]).await
                    }
                    Cursor::Version(rid, v) => tx.execute(UPDATE_VERSION, &[rid, v, &new]).await,
                    Cursor::Start => Ok(0),
                }
                .map_err(StoreError::pg(OP))?;
                rewritten += n;
            }
            last = Some(cursor);
        }
        tx.commit().await.map_err(StoreError::pg(OP))?;
        let full = rows.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(Step {
            rewritten,
            next: if full { last } else { None },
        })
    }

    /// See [`crypto::key_usage`].
    pub(crate) async fn key_usage(&self) -> Result<BTreeMap<SealedTable, BTreeMap<String, u64>>> {
        const OP: &str = "key_usage";
        let client = self.client(OP).await?;
        let mut out = BTreeMap::new();
        for table in SealedTable::ALL {
            let (col, from) = match table {
                SealedTable::MessageContent => ("bytes", "message_content"),
                SealedTable::MessageMetadata => ("coalesce(sealed, ''::bytea)", "message_metadata"),
                SealedTable::FhirVersion => ("content", "fhir_version WHERE length(content) > 0"),
            };
            let pos = format!("position('\\x00'::bytea in substring({col} from 6 for 34))");
            let sql = format!(
                "SELECT CASE WHEN substring({col} from 1 for 5) = '\\x0050584501'::bytea \
                     AND {pos} > 1 \
                 THEN convert_from(substring({col} from 6 for {pos} - 1), 'UTF8') \
                 ELSE '' END AS k, count(*)::bigint FROM {from} GROUP BY k"
            );
            let rows = client.query(&sql, &[]).await.map_err(StoreError::pg(OP))?;
            let mut counts = BTreeMap::new();
            for r in rows {
                let k: String = r.try_get(0).map_err(StoreError::pg(OP))?;
                let n: i64 = r.try_get(1).map_err(StoreError::pg(OP))?;
                counts.insert(k, n.unsigned_abs());
            }
            out.insert(table, counts);
        }
        Ok(out)
    }
}
