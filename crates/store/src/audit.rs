//! The audit trail: an append-only, hash-chained log of who did what to which data.
//!
//! Every access to patient data (a FHIR read or search, a message viewed in the admin API, a
//! reprocess, a login, a configuration change) is recorded as one [`NewAuditRecord`]: a few
//! searchable columns and the full FHIR `AuditEvent` (built by `auth::audit`). Records are
//! numbered 1, 2, 3, … in the order they were appended, with no gaps, and chained:
//!
//! ```text
//! hash(n) = SHA-256( prev_hash(n) ‖ canonical_bytes(row n) ),   prev_hash(n) = hash(n-1),
//! prev_hash(1) = 32 zero bytes
//! ```
//!
//! where [`canonical_bytes`] is a length-prefixed encoding of every column of the row,
//! including the sequence number and the `AuditEvent` JSON exactly as stored. So changing a
//! column, removing a row or re-ordering rows breaks the chain at that row, and
//! [`Audit::audit_verify`] names it. Both backends refuse `UPDATE`, `DELETE` (and on PostgreSQL
//! `TRUNCATE`) of the table with triggers; the chain is what catches someone who disables them.
//!
//! What the chain cannot show on its own: rows removed from the END (the chain that is left is
//! intact). [`AuditVerification::head`] is the newest sequence number and its hash; an
//! operator who keeps it somewhere else (a ticket, a log shipped off the machine) can check
//! later that the chain still contains it ([`Audit::audit_verify`] with an anchor).
//!
//! No record may hold patient data other than the patient's reference: [`NewAuditRecord::entity`]
//! names a resource (`Observation/5`) or a search by its type and parameter NAMES
//! (`Observation?code,patient`), never parameter values; the store refuses an `entity` with `=`.

use std::future::Future;

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// A hash of the chain (SHA-256).
pub type ChainHash = [u8; 32];

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: ChainHash = [0; 32];

/// How many rows [`Audit::audit_verify`] reads at a time (its memory stays flat).
pub const VERIFY_BATCH: u32 = 1_000;

/// The default and the largest [`AuditQuery::limit`].
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
/// The largest [`AuditQuery::limit`] honoured.
pub const MAX_AUDIT_LIMIT: u32 = 1_000;

/// Tag at the start of every row's canonical bytes: the encoding's version.
const ENCODING_TAG: &[u8] = b"plexus-audit-v1";

/// One event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    /// When the event happened.
    pub recorded: Timestamp,
    /// FHIR `AuditEvent.action`: `C`, `R`, `U`, `D` or `E`.
    pub action: String,
    /// FHIR `AuditEvent.outcome`: `0` success, `4` minor failure, `8` serious failure, `12`
    /// major failure.
    pub outcome: String,
    /// `AuditEvent.type` code: `rest`, or a DICOM code such as `110114` (user authentication).
    pub type_code: String,
    /// `AuditEvent.subtype` code: the FHIR interaction (`read`, `search-type`), `110122`
    /// (login), …
    pub subtype: Option<String>,
    /// Who: a user name, a client id, or `anonymous`.
    pub agent: String,
    /// The OAuth client the caller used, if any.
    pub client_id: Option<String>,
    /// From where: the peer's IP address.
    pub source_addr: Option<String>,
    /// The patient concerned, as a reference (`Patient/123`), when known.
    pub patient: Option<String>,
    /// What: `Observation/5`, or a search as type and parameter names only
    /// (`Observation?code,patient`). Never a parameter value (no `=`).
    pub entity: Option<String>,
    /// Why it failed, or another note; never patient data.
    pub detail: Option<String>,
    /// The full FHIR `AuditEvent`, stored (as `serde_json::to_vec` of it) and hashed as given.
    pub event: serde_json::Value,
}

impl NewAuditRecord {
    /// Checks what every backend refuses to store.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(StoreError::InvalidArgument {
                op: "audit_append",
                reason,
            })
        };
        if !matches!(self.action.as_str(), "C" | "R" | "U" | "D" | "E") {
            return bad(format!("action {:?} is not C, R, U, D or E", self.action));
        }
        if !matches!(self.outcome.as_str(), "0" | "4" | "8" | "12") {
            return bad(format!("outcome {:?} is not 0, 4, 8 or 12", self.outcome));
        }
        if self.type_code.is_empty() || self.agent.is_empty() {
            return bad("type_code and agent must not be empty".to_owned());
        }
        if self.entity.as_deref().is_some_and(|e| e.contains('=')) {
            return bad(
                "entity must name a resource or a search's parameter names, never values (`=`)"
                    .to_owned(),
            );
        }
        if self.event.get("resourceType").and_then(|t| t.as_str()) != Some("AuditEvent") {
            return bad("event must be a FHIR AuditEvent object".to_owned());
        }
        Ok(())
    }

    /// The event's JSON bytes as they are stored and hashed.
    pub(crate) fn event_text(&self) -> Result<String> {
        serde_json::to_string(&self.event).map_err(|e| StoreError::InvalidArgument {
            op: "audit_append",
            reason: format!("event cannot be serialised: {e}"),
        })
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its place in the chain: 1, 2, 3, …
    pub seq: i64,
    /// The record's columns, as appended.
    pub record: NewAuditRecord,
    /// The previous record's hash ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
}

/// Filters of [`Audit::audit_search`]; all given ones must match. Results are newest first
/// (by `seq`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
    /// The agent, exactly.
    pub agent: Option<String>,
    /// The patient reference, exactly (`Patient/123`).
    pub patient: Option<String>,
    /// The action (`R`, …).
    pub action: Option<String>,
    /// The outcome (`0`, `4`, `8`, `12`).
    pub outcome: Option<String>,
    /// The subtype code (`read`, `110122`, …).
    pub subtype: Option<String>,
    /// The type code (`rest`, `110114`, …).
    pub type_code: Option<String>,
    /// The entity's resource type (`Observation` matches `Observation/5` and
    /// `Observation?code`).
    pub entity_type: Option<String>,
    /// Only records with a smaller seq (paging backwards: pass the last seq of a page).
    pub before_seq: Option<i64>,
    /// Only records with a larger seq.
    pub after_seq: Option<i64>,
    /// At most this many ([`DEFAULT_AUDIT_LIMIT`] when `None`, never more than
    /// [`MAX_AUDIT_LIMIT`]).
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// The limit applied.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_AUDIT_LIMIT)
            .clamp(1, MAX_AUDIT_LIMIT)
    }

    /// Refuses an entity type that is not a resource type name.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(t) = &self.entity_type
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(StoreError::InvalidArgument {
                op: "audit_search",
                reason: format!("entity type {t:?} is not a resource type name"),
            });
        }
        Ok(())
    }
}

/// What is wrong at a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// Rows `expected..seq` are missing (deleted): the row found has a larger seq.
    Missing {
        /// The seq that should have come next.
        expected: i64,
    },
    /// The row's `prev_hash` is not the hash of the row before it.
    Link,
    /// The row's content does not match its hash (a column was changed).
    Hash,
    /// The anchor given to verify names a seq that is absent, or whose hash differs.
    Anchor,
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { expected } => write!(f, "records from seq {expected} are missing"),
            Self::Link => f.write_str("its prev_hash is not the hash of the record before it"),
            Self::Hash => f.write_str("its content does not match its hash (changed)"),
            Self::Anchor => f.write_str("it does not have the anchored hash (replaced or removed)"),
        }
    }
}

/// A place where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The seq of the first row found wrong (for [`BreakKind::Missing`], the row after the
    /// gap).
    pub seq: i64,
    /// What is wrong.
    pub kind: BreakKind,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditVerification {
    /// Rows read.
    pub records: u64,
    /// The newest row: its seq and hash (`None` when the trail is empty).
    pub head: Option<(i64, ChainHash)>,
    /// The first break found, if any.
    pub first_break: Option<AuditBreak>,
    /// How many breaks were found (after a break the walk goes on from the row's own hash).
    pub breaks: u64,
    /// How many seqs are missing in all.
    pub missing: u64,
}

impl AuditVerification {
    /// Whether the chain is whole.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// A (seq, hash) an operator recorded earlier, that the chain must still hold.
pub type AuditAnchor = (i64, ChainHash);

/// The audit trail of a store.
pub trait Audit: Send + Sync {
    /// Appends `records`, in order, with consecutive sequence numbers after the current head,
    /// chained to it; durable when it returns. All of them or none are stored. Fails with
    /// [`StoreError::InvalidArgument`] (see [`NewAuditRecord::validate`]) storing nothing. On
    /// SQLite the call is one request to the writer thread (group commit); on PostgreSQL the
    /// appends of a node are batched into one transaction, and nodes take turns through an
    /// advisory lock.
    fn audit_append(&self, records: Vec<NewAuditRecord>)
    -> impl Future<Output = Result<()>> + Send;

    /// Records matching `query`, newest first.
    fn audit_search(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;

    /// The record with this seq, if any.
    fn audit_get(&self, seq: i64) -> impl Future<Output = Result<Option<AuditEntry>>> + Send;

    /// Walks the whole chain, [`VERIFY_BATCH`] rows at a time, checking every row's seq, link
    /// and hash; with `anchor`, also that the row at its seq still has its hash.
    fn audit_verify(
        &self,
        anchor: Option<AuditAnchor>,
    ) -> impl Future<Output = Result<AuditVerification>> + Send;
}

/// The bytes of a row that its hash covers: the encoding tag, then each column in table order,
/// each as a presence byte (0 for NULL, 1 otherwise) and, if present, its length (u64,
/// big-endian) and bytes; integers as 8 big-endian bytes. `event_json` is the stored JSON text.
pub fn canonical_bytes(seq: i64, record: &NewAuditRecord, event_json: &str) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u64).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    let r = record;
    let mut out = Vec::with_capacity(256 + event_json.len());
    field(&mut out, Some(ENCODING_TAG));
    field(&mut out, Some(&seq.to_be_bytes()));
    field(&mut out, Some(&r.recorded.as_micros().to_be_bytes()));
    for text in [
        Some(&r.action),
        Some(&r.outcome),
        Some(&r.type_code),
        r.subtype.as_ref(),
        Some(&r.agent),
        r.client_id.as_ref(),
        r.source_addr.as_ref(),
        r.patient.as_ref(),
        r.entity.as_ref(),
        r.detail.as_ref(),
    ] {
        field(&mut out, text.map(String::as_bytes));
    }
    field(&mut out, Some(event_json.as_bytes()));
    out
}

/// The hash of a row: SHA-256 of `prev_hash` then [`canonical_bytes`].
pub fn chain_hash(
    prev_hash: &ChainHash,
    seq: i64,
    record: &NewAuditRecord,
    event_json: &str,
) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical_bytes(seq, record, event_json));
    h.finalize().into()
}

/// A row as it is inserted or read for verification: the record with its JSON text.
#[derive(Debug, Clone)]
pub(crate) struct ChainRow {
    pub seq: i64,
    pub record: NewAuditRecord,
    pub event_text: String,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

/// Chains `records` after `head` (`None`: the trail is empty).
pub(crate) fn chain(
    head: Option<(i64, ChainHash)>,
    records: &[NewAuditRecord],
) -> Result<Vec<ChainRow>> {
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH));
    records
        .iter()
        .map(|r| {
            seq += 1;
            let event_text = r.event_text()?;
            let hash = chain_hash(&prev, seq, r, &event_text);
            let row = ChainRow {
                seq,
                record: r.clone(),
                event_text,
                prev_hash: prev,
                hash,
            };
            prev = hash;
            Ok(row)
        })
        .collect()
}

/// A row read back for verification: its columns and the JSON text as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    pub seq: i64,
    pub record: NewAuditRecord,
    pub event_text: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The walk of [`Audit::audit_verify`], fed rows in seq order, one batch after another.
#[derive(Debug)]
pub(crate) struct Verifier {
    report: AuditVerification,
    prev: ChainHash,
    next_seq: i64,
    anchor: Option<AuditAnchor>,
    anchor_seen: bool,
}

impl Verifier {
    pub(crate) fn new(anchor: Option<AuditAnchor>) -> Self {
        Self {
            report: AuditVerification::default(),
            prev: GENESIS_HASH,
            next_seq: 1,
            anchor,
            anchor_seen: false,
        }
    }

    /// The seq after which the next batch starts.
    pub(crate) fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    fn broke(&mut self, seq: i64, kind: BreakKind) {
        self.report.breaks += 1;
        if self.report.first_break.is_none() {
            self.report.first_break = Some(AuditBreak { seq, kind });
        }
    }

    /// Checks one row (rows must come in increasing seq order).
    pub(crate) fn row(&mut self, row: &StoredRow) {
        self.report.records += 1;
        if row.seq != self.next_seq {
            self.report.missing += (row.seq - self.next_seq).unsigned_abs();
            self.broke(
                row.seq,
                BreakKind::Missing {
                    expected: self.next_seq,
                },
            );
        } else if row.prev_hash != self.prev {
            self.broke(row.seq, BreakKind::Link);
        }
        let computed = chain_hash(
            &row.prev_hash.as_slice().try_into().unwrap_or(GENESIS_HASH),
            row.seq,
            &row.record,
            &row.event_text,
        );
        let stored: ChainHash = row.hash.as_slice().try_into().unwrap_or_else(|_| {
            // a hash of the wrong length cannot be right: make it differ from `computed`
            let mut h = computed;
            h[0] ^= 0xff;
            h
        });
        if computed != stored || row.prev_hash.len() != 32 {
            self.broke(row.seq, BreakKind::Hash);
        }
        if let Some((seq, hash)) = self.anchor
            && seq == row.seq
        {
            self.anchor_seen = true;
            if hash != stored {
                self.broke(row.seq, BreakKind::Anchor);
            }
        }
        // go on from what the row says it is, so one changed row is one break
        self.prev = stored;
        self.next_seq = row.seq + 1;
        self.report.head = Some((row.seq, stored));
    }

    pub(crate) fn finish(mut self) -> AuditVerification {
        if let Some((seq, _)) = self.anchor
            && !self.anchor_seen
        {
            self.broke(seq, BreakKind::Anchor);
        }
        self.report
    }
}

/// Lower-case hex of a hash.
pub fn hex(hash: &ChainHash) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses 64 hex digits into a hash.
pub fn parse_hex(text: &str) -> Option<ChainHash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

/// A WHERE clause over `audit_event` for `query`, with numbered placeholders from
/// `placeholder(n)`.
pub(crate) struct AuditWhere {
    pub sql: String,
    pub params: Vec<AuditParam>,
}

/// A bound value of [`AuditWhere`].
pub(crate) enum AuditParam {
    Text(String),
    Time(Timestamp),
    Int(i64),
}

pub(crate) fn where_clause(
    query: &AuditQuery,
    placeholder: impl Fn(usize) -> String,
) -> AuditWhere {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    // `cond(p)` spells the condition with `p`, the value's placeholder (maybe more than once)
    let mut push = |cond: &dyn Fn(&str) -> String, value: AuditParam| {
        params.push(value);
        conds.push(cond(&placeholder(params.len())));
    };
    if let Some(t) = query.since {
        push(&|p| format!("recorded >= {p}"), AuditParam::Time(t));
    }
    if let Some(t) = query.until {
        push(&|p| format!("recorded < {p}"), AuditParam::Time(t));
    }
    let texts = [
        ("agent", &query.agent),
        ("patient", &query.patient),
        ("action", &query.action),
        ("outcome", &query.outcome),
        ("subtype", &query.subtype),
        ("type_code", &query.type_code),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            push(&|p| format!("{column} = {p}"), AuditParam::Text(v.clone()));
        }
    }
    if let Some(t) = &query.entity_type {
        // `Observation` matches `Observation`, `Observation/5` and `Observation?code`
        push(
            &|p| {
                format!(
                    "(entity = {p} OR substr(entity, 1, length({p}) + 1) IN ({p} || '/', {p} || '?'))"
                )
            },
            AuditParam::Text(t.clone()),
        );
    }
    if let Some(s) = query.before_seq {
        push(&|p| format!("seq < {p}"), AuditParam::Int(s));
    }
    if let Some(s) = query.after_seq {
        push(&|p| format!("seq > {p}"), AuditParam::Int(s));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    AuditWhere { sql, params }
}

/// The columns read back, in the order `row` readers expect.
pub(crate) const AUDIT_COLUMNS: &str = "seq, recorded, action, outcome, type_code, subtype, \
     agent, client_id, source_addr, patient, entity, detail, event, prev_hash, hash";

impl StoredRow {
    /// The entry a search returns: the JSON parsed.
    pub(crate) fn into_entry(self, op: &'static str) -> Result<AuditEntry> {
        let mut record = self.record;
        record.event = serde_json::from_str(&self.event_text).map_err(|_| StoreError::Corrupt {
            op,
            column: "audit_event.event",
            value: format!("seq {}", self.seq),
        })?;
        let hash = |v: Vec<u8>, column| {
            ChainHash::try_from(v.as_slice()).map_err(|_| StoreError::Corrupt {
                op,
                column,
                value: format!("seq {}", self.seq),
            })
        };
        Ok(AuditEntry {
            seq: self.seq,
            record,
            prev_hash: hash(self.prev_hash, "audit_event.prev_hash")?,
            hash: hash(self.hash, "audit_event.hash")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(agent: &str) -> NewAuditRecord {
        NewAuditRecord {
            recorded: Timestamp::from_micros(1_767_268_800_000_000),
            action: "R".into(),
            outcome: "0".into(),
            type_code: "rest".into(),
            subtype: Some("read".into()),
            agent: agent.into(),
            client_id: None,
            source_addr: Some("127.0.0.1".into()),
            patient: Some("Patient/1".into()),
            entity: Some("Observation/5".into()),
            detail: None,
            event: serde_json::json!({"resourceType": "AuditEvent"}),
        }
    }

    #[test]
    fn encoding_is_unambiguous() {
        // moving a byte from one field to the next changes the bytes
        let mut a = record("ab");
        a.client_id = Some("c".into());
        let mut b = record("a");
        b.client_id = Some("bc".into());
        assert_ne!(canonical_bytes(1, &a, "{}"), canonical_bytes(1, &b, "{}"));
        // NULL differs from the empty string
        let mut c = record("x");
        c.detail = None;
        let mut d = record("x");
        d.detail = Some(String::new());
        assert_ne!(canonical_bytes(1, &c, "{}"), canonical_bytes(1, &d, "{}"));
        // the seq is covered
        assert_ne!(canonical_bytes(1, &c, "{}"), canonical_bytes(2, &c, "{}"));
    }

    #[test]
    fn chain_links_and_verifier_finds_each_kind_of_break() {
        let records: Vec<_> = (0..5).map(|i| record(&format!("u{i}"))).collect();
        let rows = chain(None, &records).unwrap();
        assert_eq!(rows[0].prev_hash, GENESIS_HASH);
        assert_eq!(rows[3].prev_hash, rows[2].hash);
        let stored = |r: &ChainRow| StoredRow {
            seq: r.seq,
            record: r.record.clone(),
            event_text: r.event_text.clone(),
            prev_hash: r.prev_hash.to_vec(),
            hash: r.hash.to_vec(),
        };
        let all: Vec<StoredRow> = rows.iter().map(stored).collect();
        let run = |rows: &[StoredRow], anchor| {
            let mut v = Verifier::new(anchor);
            for r in rows {
                v.row(r);
            }
            v.finish()
        };
        let ok = run(&all, Some((3, rows[2].hash)));
        assert!(ok.is_intact(), "{ok:?}");
        assert_eq!(ok.records, 5);
        assert_eq!(ok.head, Some((5, rows[4].hash)));

        let mut changed = all.clone();
        changed[2].record.agent = "mallory".into();
        let v = run(&changed, None);
        assert_eq!(
            v.first_break,
            Some(AuditBreak {
                seq: 3,
                kind: BreakKind::Hash
            })
        );
        assert_eq!(v.breaks, 1);

        let mut gap = all.clone();
        gap.remove(1);
        let v = run(&gap, None);
        assert_eq!(
            v.first_break,
            Some(AuditBreak {
                seq: 3,
                kind: BreakKind::Missing { expected: 2 }
            })
        );
        assert_eq!(v.missing, 1);

        let mut relinked = all.clone();
        relinked[3].prev_hash = vec![7; 32];
        let v = run(&relinked, None);
        assert_eq!(
            v.first_break,
            Some(AuditBreak {
                seq: 4,
                kind: BreakKind::Link
            })
        );

        let v = run(&all[..2], Some((3, rows[2].hash)));
        assert_eq!(
            v.first_break,
            Some(AuditBreak {
                seq: 3,
                kind: BreakKind::Anchor
            })
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = chain_hash(&GENESIS_HASH, 1, &record("a"), "{}");
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn validation_refuses_values_in_entities() {
        let mut r = record("a");
        r.entity = Some("Patient?name=smith".into());
        assert!(r.validate().is_err());
        r.entity = Some("Patient?name,birthdate".into());
        r.validate().unwrap();
        r.action = "X".into();
        assert!(r.validate().is_err());
    }
}
