//! What both backends share for FHIR resources: the SQL text of reads, history and searches
//! (generated with numbered placeholders in either dialect, values always bound), the
//! preparation of a version's JSON, and the index rows of a write.
//!
//! Generated SQL only ever contains constants, table and column names and placeholders;
//! every value of a request is a bound [`Value`], except the integers of `LIMIT` and
//! `OFFSET` on SQLite (see [`Sql::limit`]).

pub(crate) mod search;

use fhir::index::{IndexEntry, IndexValue};

use crate::error::{Result, StoreError};
use crate::resources::{
    HistoryMethod, HistoryQuery, ResourceWrite, StoredResource, WriteOp, WriteOutcome,
};
use crate::time::Timestamp;

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(i64),
    Float(f64),
}

impl Value {
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Self::Text(Some(s.into()))
    }
}

/// Placeholder spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?1`, `?2`, …
    Sqlite,
    /// `$1`, `$2`, …
    Postgres,
}

/// SQL text with its bound values.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Value>,
    dialect: Dialect,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            text: String::new(),
            params: Vec::new(),
            dialect,
        }
    }

    /// The placeholder dialect.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends constant SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Value) -> &mut Self {
        self.params.push(value);
        let n = self.params.len();
        self.text.push(match self.dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        });
        self.text.push_str(&n.to_string());
        self
    }

    /// Appends ` LIMIT n OFFSET m`. SQLite re-prepares a statement (parse and plan again)
    /// every time a value is bound to a `LIMIT` placeholder, since the planner uses the limit;
    /// so on SQLite the two integers are written as literals (one cached statement per
    /// page size and offset), on PostgreSQL they are bound.
    pub(crate) fn limit(&mut self, limit: i64, offset: i64) -> &mut Self {
        match self.dialect {
            Dialect::Sqlite => {
                self.push(&format!(" LIMIT {limit} OFFSET {offset}"));
            }
            Dialect::Postgres => {
                self.push(" LIMIT ")
                    .bind(Value::Int(limit))
                    .push(" OFFSET ")
                    .bind(Value::Int(offset));
            }
        }
        self
    }

    /// Appends a comma-separated placeholder list bound to `values`.
    pub(crate) fn bind_list(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self
    }
}

/// How many values an `IN (…)` list of ids gets at most.
pub(crate) const IN_CHUNK: usize = 500;

/// The columns every resource read returns, in [`ResourceRow`] order.
pub(crate) const RESOURCE_COLUMNS: &str =
    "r.rid, r.type, r.id, v.version, v.last_updated, v.deleted, v.method, v.content";

/// A version as read from the database, before conversion.
pub(crate) struct ResourceRow {
    pub rid: i64,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: i64,
    pub deleted: bool,
    pub method: String,
    pub content: Vec<u8>,
}

impl ResourceRow {
    /// The stored resource, its JSON decrypted.
    pub(crate) fn into_stored(
        self,
        op: &'static str,
        crypto: &crate::crypto::Crypto,
    ) -> Result<StoredResource> {
        let method = match self.method.as_str() {
            "C" => HistoryMethod::Create,
            "U" => HistoryMethod::Update,
            "D" => HistoryMethod::Delete,
            other => {
                return Err(StoreError::Corrupt {
                    op,
                    column: "fhir_version.method",
                    value: other.to_owned(),
                });
            }
        };
        let content = crypto.open(
            op,
            crate::crypto::Row::Resource(&self.resource_type, &self.id, self.version),
            self.content,
        )?;
        Ok(StoredResource {
            resource_type: self.resource_type,
            id: self.id,
            version: u64::try_from(self.version).map_err(|_| StoreError::Corrupt {
                op,
                column: "fhir_version.version",
                value: self.version.to_string(),
            })?,
            last_updated: Timestamp::from_micros(self.last_updated),
            deleted: self.deleted,
            content,
            method,
        })
    }
}

/// The code stored for a method.
pub(crate) fn method_code(method: HistoryMethod) -> &'static str {
    match method {
        HistoryMethod::Create => "C",
        HistoryMethod::Update => "U",
        HistoryMethod::Delete => "D",
    }
}

/// The current version (`version: None`) or a given version of a resource.
pub(crate) fn read_sql(dialect: Dialect, rtype: &str, id: &str, version: Option<u64>) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(&format!("SELECT {RESOURCE_COLUMNS} FROM fhir_resource r JOIN fhir_version v ON v.rid = r.rid AND v.version = "));
    match version {
        None => {
            sql.push("r.version");
        }
        Some(v) => {
            sql.bind(Value::Int(i64::try_from(v).unwrap_or(i64::MAX)));
        }
    }
    sql.push(" WHERE r.type = ")
        .bind(Value::text(rtype))
        .push(" AND r.id = ")
        .bind(Value::text(id));
    sql
}

/// Current versions of the resources with these row ids (any order).
pub(crate) fn load_sql(dialect: Dialect, rids: &[i64]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM fhir_resource r JOIN fhir_version v \
         ON v.rid = r.rid AND v.version = r.version WHERE r.rid IN ("
    ));
    sql.bind_list(rids.iter().map(|r| Value::Int(*r))).push(")");
    sql
}

/// A page of history and the query counting all of it.
pub(crate) fn history_sql(dialect: Dialect, q: &HistoryQuery) -> Result<(Sql, Sql)> {
    if q.id.is_some() && q.resource_type.is_none() {
        return Err(StoreError::InvalidArgument {
            op: "history",
            reason: "the history of one resource needs its type".to_owned(),
        });
    }
    let filter = |sql: &mut Sql| {
        sql.push(" WHERE 1 = 1");
        if let Some(t) = &q.resource_type {
            sql.push(" AND r.type = ").bind(Value::text(t));
        }
        if let Some(id) = &q.id {
            sql.push(" AND r.id = ").bind(Value::text(id));
        }
        if let Some(since) = q.since {
            sql.push(" AND v.last_updated >= ")
                .bind(Value::Int(since.as_micros()));
        }
    };
    let mut page = Sql::new(dialect);
    page.push(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM fhir_version v JOIN fhir_resource r ON r.rid = v.rid"
    ));
    filter(&mut page);
    page.push(" ORDER BY v.last_updated DESC, v.rid DESC, v.version DESC")
        .limit(to_i64(q.count), to_i64(q.offset));
    let mut count = Sql::new(dialect);
    count.push("SELECT count(*) FROM fhir_version v JOIN fhir_resource r ON r.rid = v.rid");
    filter(&mut count);
    Ok((page, count))
}

/// A count or offset as a SQL integer.
pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Refuses writes that cannot be stored, before anything is sent to the database.
pub(crate) fn check_writes(writes: &[ResourceWrite]) -> Result<()> {
    for w in writes {
        let bad = |reason: String| {
            Err(StoreError::InvalidArgument {
                op: "write",
                reason,
            })
        };
        if w.resource_type.is_empty() {
            return bad("a write needs a resource type".to_owned());
        }
        let conditional = matches!(w.precondition, crate::resources::Precondition::Match(_));
        if w.id.is_empty() && !(conditional && w.op == WriteOp::Delete) {
            return bad(format!("a write of a {} needs an id", w.resource_type));
        }
        if w.op != WriteOp::Delete {
            match &w.resource {
                Some(serde_json::Value::Object(o)) => {
                    if let Some(t) = o.get("resourceType")
                        && t.as_str() != Some(w.resource_type.as_str())
                    {
                        return bad(format!(
                            "resourceType {t} does not match the write's type {}",
                            w.resource_type
                        ));
                    }
                }
                _ => {
                    return bad(format!(
                        "a create or update of {}/{} needs a JSON object",
                        w.resource_type, w.id
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The version a write stores, before its row is inserted: its JSON (with `id` and `meta`
/// set; empty for a deletion) and what identifies it.
pub(crate) fn new_version(
    w: &ResourceWrite,
    id: String,
    version: i64,
    method: HistoryMethod,
    now: Timestamp,
    template: Option<&VersionTemplate>,
) -> Result<StoredResource> {
    let deleted = method == HistoryMethod::Delete;
    let content = if deleted {
        Vec::new()
    } else if let Some(t) = template {
        t.fill(&id, version, now)
    } else {
        version_content(w.resource.as_ref(), &w.resource_type, &id, version, now)?
    };
    Ok(StoredResource {
        resource_type: w.resource_type.clone(),
        id,
        version: version.unsigned_abs(),
        last_updated: now,
        deleted,
        content,
        method,
    })
}

/// The JSON of a new version: `resource` with `resourceType`, `id`, `meta.versionId` and
/// `meta.lastUpdated` set, serialized.
pub(crate) fn version_content(
    resource: Option<&serde_json::Value>,
    rtype: &str,
    id: &str,
    version: i64,
    last_updated: Timestamp,
) -> Result<Vec<u8>> {
    let mut value = resource
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let Some(obj) = value.as_object_mut() else {
        return Err(StoreError::InvalidArgument {
            op: "write",
            reason: format!("{rtype}/{id} is not a JSON object"),
        });
    };
    obj.insert("resourceType".to_owned(), rtype.into());
    obj.insert("id".to_owned(), id.into());
    let meta = obj
        .entry("meta")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        *meta = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("versionId".to_owned(), version.to_string().into());
        meta.insert("lastUpdated".to_owned(), last_updated.to_string().into());
    }
    serde_json::to_vec(&value).map_err(|e| StoreError::InvalidArgument {
        op: "write",
        reason: format!("{rtype}/{id} cannot be serialized: {e}"),
    })
}

/// A write's work that needs nothing from the database, done before it is queued for the
/// SQLite writer thread (which every write waits for): its index rows grouped by table with
/// encryption's blind indexes applied, and its version's JSON serialized with stand-ins.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// The index rows (those of a deletion are never written).
    pub rows: IndexRows,
    /// [`IndexRows::date_fast`] of `rows`.
    pub date_fast: Vec<i32>,
    /// The version's JSON, when it could be prepared (else the writer serializes it).
    pub template: Option<VersionTemplate>,
}

impl Prepared {
    /// Prepares `w` (with `crypto` applied to its index rows; `w.resource` gets the
    /// template's stand-ins, see [`VersionTemplate::new`]).
    pub(crate) fn new(w: &mut ResourceWrite, crypto: &crate::crypto::Crypto) -> Self {
        if w.op == WriteOp::Delete {
            return Self::default();
        }
        let rows = crypto.index_rows(IndexRows::new(&w.resource_type, &w.index));
        Self {
            date_fast: rows.date_fast(),
            rows,
            template: VersionTemplate::new(w.resource.as_mut(), &w.resource_type),
        }
    }
}

/// What fills a stand-in of a [`VersionTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Id,
    VersionId,
    LastUpdated,
}

impl Slot {
    const ALL: [Self; 3] = [Self::Id, Self::VersionId, Self::LastUpdated];

    /// The stand-in string (control characters, which serialize escaped, so the quoted text
    /// below is what the JSON holds).
    fn stand_in(self) -> &'static str {
        match self {
            Self::Id => "\u{1}plexus:id\u{1}",
            Self::VersionId => "\u{1}plexus:versionId\u{1}",
            Self::LastUpdated => "\u{1}plexus:lastUpdated\u{1}",
        }
    }

    fn serialized(self) -> &'static [u8] {
        match self {
            Self::Id => br#""\u0001plexus:id\u0001""#,
            Self::VersionId => br#""\u0001plexus:versionId\u0001""#,
            Self::LastUpdated => br#""\u0001plexus:lastUpdated\u0001""#,
        }
    }
}

/// The JSON of a version, serialized (by [`version_content`]) before the id, version and
/// time are known, with a stand-in for each: [`VersionTemplate::fill`] gives exactly the
/// bytes `version_content` would, by copying.
#[derive(Debug, Clone)]
pub(crate) struct VersionTemplate {
    bytes: Vec<u8>,
    /// The stand-ins' byte ranges in `bytes`, in order.
    slots: Vec<(std::ops::Range<usize>, Slot)>,
}

impl VersionTemplate {
    /// `None` when `resource` is not an object, or holds a stand-in's text itself.
    ///
    /// The stand-ins are put into `resource` itself (no copy of the resource is made): what
    /// [`version_content`] gives for it is unchanged, since it sets the same members.
    pub(crate) fn new(resource: Option<&mut serde_json::Value>, rtype: &str) -> Option<Self> {
        let value = resource?;
        let obj = value.as_object_mut()?;
        obj.insert("resourceType".to_owned(), rtype.into());
        obj.insert("id".to_owned(), Slot::Id.stand_in().into());
        let meta = obj
            .entry("meta")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !meta.is_object() {
            *meta = serde_json::Value::Object(serde_json::Map::new());
        }
        let meta = meta.as_object_mut()?;
        meta.insert("versionId".to_owned(), Slot::VersionId.stand_in().into());
        meta.insert(
            "lastUpdated".to_owned(),
            Slot::LastUpdated.stand_in().into(),
        );
        let bytes = serde_json::to_vec(&*value).ok()?;
        let mut slots = Vec::with_capacity(3);
        for slot in Slot::ALL {
            let text = slot.serialized();
            let mut found = memchr::memmem::find_iter(&bytes, text);
            let (Some(at), None) = (found.next(), found.next()) else {
                return None;
            };
            slots.push((at..at + text.len(), slot));
        }
        slots.sort_by_key(|(r, _)| r.start);
        Some(Self { bytes, slots })
    }

    /// The version's JSON with `id`, `meta.versionId` and `meta.lastUpdated` filled in.
    pub(crate) fn fill(&self, id: &str, version: i64, last_updated: Timestamp) -> Vec<u8> {
        let version = version.to_string();
        let time = last_updated.to_string();
        let mut out = Vec::with_capacity(self.bytes.len() + id.len() + 40);
        let mut at = 0;
        for (range, slot) in &self.slots {
            out.extend_from_slice(&self.bytes[at..range.start]);
            let text = match slot {
                Slot::Id => id,
                Slot::VersionId => &version,
                Slot::LastUpdated => &time,
            };
            quote(&mut out, text);
            at = range.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }
}

/// Appends `text` as a JSON string, as `serde_json` writes it.
fn quote(out: &mut Vec<u8>, text: &str) {
    // writing to a Vec cannot fail, and a str always serializes
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Index rows grouped by table, with composite components flattened.
#[derive(Debug, Default)]
pub(crate) struct IndexRows {
    /// normalized, exact, the HumanName/Address part
    pub strings: Vec<(Key, String, String, Option<&'static str>)>,
    pub tokens: Vec<(Key, [Option<String>; 5])>,
    pub references: Vec<(Key, [Option<String>; 5])>,
    pub dates: Vec<(Key, i64, i64)>,
    pub numbers: Vec<(Key, f64, f64, f64)>,
    pub quantities: Vec<QuantityRow>,
    pub uris: Vec<(Key, String)>,
}

/// A quantity index row: key, `[system, code, unit]`, value, low, high.
pub(crate) type QuantityRow = (Key, [Option<String>; 3], f64, f64, f64);

/// The param, composite group and component position of an index row.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub param: String,
    pub grp: i32,
    pub pos: i32,
}

/// A day in milliseconds: date rows narrower than this may be `fast` (see
/// [`IndexRows::date_fast`]).
pub(crate) const DAY_MS: i64 = 86_400_000;

impl IndexRows {
    /// The `fast` flag of each date row, in order: 1 for a plain row that is its resource's
    /// only row of the parameter and spans less than a day (so `high < low + DAY_MS`), else 0.
    pub(crate) fn date_fast(&self) -> Vec<i32> {
        let mut per_param: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        for (k, _, _) in &self.dates {
            if k.grp == 0 {
                *per_param.entry(k.param.as_str()).or_default() += 1;
            }
        }
        self.dates
            .iter()
            .map(|(k, lo, hi)| {
                i32::from(
                    k.grp == 0
                        && per_param.get(k.param.as_str()) == Some(&1)
                        && hi.saturating_sub(*lo) < DAY_MS,
                )
            })
            .collect()
    }

    /// Groups `entries` of a `resource_type` by table. Numbers and quantities that are not
    /// finite are skipped (no search could match them), as are composites nested in
    /// composites, and the entries of parameters whose values are other parameters' rows
    /// ([`fhir::index::derivation`]: searches answer them from those rows).
    pub(crate) fn new(resource_type: &str, entries: &[IndexEntry]) -> Self {
        let mut rows = Self::default();
        let mut grp = 0;
        for e in entries {
            if fhir::index::derivation(resource_type, &e.param).is_some() {
                continue;
            }
            if let IndexValue::Composite { components } = &e.value {
                grp += 1;
                for (pos, c) in components.iter().enumerate() {
                    let key = Key {
                        param: e.param.clone(),
                        grp,
                        pos: i32::try_from(pos).unwrap_or(i32::MAX),
                    };
                    rows.add(key, c);
                }
            } else {
                let key = Key {
                    param: e.param.clone(),
                    grp: 0,
                    pos: 0,
                };
                rows.add(key, &e.value);
            }
        }
        rows
    }

    fn add(&mut self, key: Key, value: &IndexValue) {
        match value.clone() {
            IndexValue::String {
                normalized,
                exact,
                part,
            } => {
                self.strings.push((key, normalized, exact, part));
            }
            IndexValue::Token {
                system,
                code,
                display,
                type_system,
                type_code,
            } => self
                .tokens
                .push((key, [system, code, display, type_system, type_code])),
            IndexValue::Reference {
                target_type,
                target_id,
                url,
                identifier_system,
                identifier_value,
            } => self.references.push((
                key,
                [
                    target_type,
                    target_id,
                    url,
                    identifier_system,
                    identifier_value,
                ],
            )),
            IndexValue::Date { low, high } => self.dates.push((key, low, high)),
            IndexValue::Number { value, low, high } => {
                if [value, low, high].iter().all(|v| v.is_finite()) {
                    self.numbers.push((key, value, low, high));
                }
            }
            IndexValue::Quantity {
                system,
                code,
                unit,
                value,
                low,
                high,
            } => {
                if [value, low, high].iter().all(|v| v.is_finite()) {
                    self.quantities
                        .push((key, [system, code, unit], value, low, high));
                }
            }
            IndexValue::Uri { value } => self.uris.push((key, value)),
            IndexValue::Composite { .. } => {}
        }
    }
}

/// The index tables, for deleting a resource's rows.
pub(crate) const INDEX_TABLES: [&str; 7] = [
    "fhir_idx_string",
    "fhir_idx_token",
    "fhir_idx_reference",
    "fhir_idx_date",
    "fhir_idx_number",
    "fhir_idx_quantity",
    "fhir_idx_uri",
];

/// What a write does once its target is known; shared decision logic of both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Current {
    /// No row for (type, id).
    Absent,
    /// A row: its rid, current version and whether that version is a deletion.
    Present {
        rid: i64,
        version: i64,
        deleted: bool,
    },
}

impl Current {
    /// The live version, for `If-Match`.
    pub(crate) fn live_version(self) -> Option<u64> {
        match self {
            Self::Present {
                version,
                deleted: false,
                ..
            } => u64::try_from(version).ok(),
            _ => None,
        }
    }
}

/// Where a write goes after its precondition's search.
pub(crate) enum Target {
    /// To the resource with this id (of the write's type).
    Id(String),
    /// Nowhere: the write is answered with this outcome.
    Done(WriteOutcome),
}

/// What a conditional write's search found (at most two row ids) means for it; `Ok(None)`
/// when the single match must be looked up first (`Existing` needs the resource, a
/// conditional update or delete its id).
pub(crate) fn target_of(w: &ResourceWrite, found: &[i64]) -> Option<Target> {
    match found {
        [] if w.op == WriteOp::Delete => Some(Target::Done(WriteOutcome::NotFound)),
        [] => Some(Target::Id(w.id.clone())),
        [_] => None,
        _ => Some(Target::Done(WriteOutcome::MultipleMatches)),
    }
}

/// The outcome of a stored version, given what was there before.
pub(crate) fn outcome(stored: StoredResource, before: Current) -> WriteOutcome {
    match (stored.deleted, before) {
        (true, _) => WriteOutcome::Deleted(stored),
        (false, Current::Present { deleted: false, .. }) => WriteOutcome::Updated(stored),
        (false, _) => WriteOutcome::Created(stored),
    }
}

/// The error of a create whose id is taken.
pub(crate) fn exists_error(rtype: &str, id: &str) -> StoreError {
    StoreError::ResourceExists {
        op: "write",
        resource_type: rtype.to_owned(),
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_gets_id_and_meta() {
        let v = serde_json::json!({"resourceType": "Patient", "meta": {"tag": []}, "id": "x"});
        let t = Timestamp::from_micros(1_795_892_400_123_456);
        let bytes = version_content(Some(&v), "Patient", "p1", 3, t).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["id"], "p1");
        assert_eq!(back["meta"]["versionId"], "3");
        assert_eq!(back["meta"]["lastUpdated"], t.to_string());
        assert_eq!(back["meta"]["tag"], serde_json::json!([]));
    }

    /// A prepared version gives exactly the bytes of `version_content`, whatever the
    /// resource holds where the stand-ins go.
    #[test]
    fn templates_fill_in_what_version_content_writes() {
        let t = Timestamp::from_micros(1_795_892_400_123_456);
        let resources = [
            serde_json::json!({"resourceType": "Patient"}),
            serde_json::json!({"resourceType": "Patient", "id": "old", "meta": {"versionId": "9", "tag": [{"code": "a"}]}}),
            serde_json::json!({"resourceType": "Patient", "meta": "not an object", "active": true}),
            serde_json::json!({"contained": [{"resourceType": "Organization", "id": "o1"}], "name": [{"family": "Ünïcode \"quoted\""}]}),
            serde_json::json!({"resourceType": "Observation", "valueQuantity": {"value": 1.5}, "zzz": null}),
        ];
        for r in &resources {
            for (id, version) in [("p1", 1), ("a-much.longer-id-0123456789", 12_345)] {
                let expected =
                    String::from_utf8(version_content(Some(r), "Patient", id, version, t).unwrap())
                        .unwrap();
                let mut with_stand_ins = r.clone();
                let template =
                    VersionTemplate::new(Some(&mut with_stand_ins), "Patient").expect("prepared");
                assert_eq!(
                    String::from_utf8(template.fill(id, version, t)).unwrap(),
                    expected,
                    "{r}"
                );
                // the resource with the stand-ins in it serializes as the resource did
                let fallback = version_content(Some(&with_stand_ins), "Patient", id, version, t);
                assert_eq!(String::from_utf8(fallback.unwrap()).unwrap(), expected);
            }
        }
    }

    /// A resource that holds a stand-in's text, or is no object, is not prepared (the writer
    /// serializes it as before), so its text is never replaced.
    #[test]
    fn templates_refuse_what_they_cannot_fill_safely() {
        let tricky =
            serde_json::json!({"resourceType": "Basic", "text": {"div": "\u{1}plexus:id\u{1}"}});
        let mut with_stand_ins = tricky.clone();
        assert!(VersionTemplate::new(Some(&mut with_stand_ins), "Basic").is_none());
        // the writer serializes the resource, stand-ins and all, as it would have the original
        let t = Timestamp::from_micros(1_795_892_400_123_456);
        assert_eq!(
            version_content(Some(&with_stand_ins), "Basic", "b1", 2, t).unwrap(),
            version_content(Some(&tricky), "Basic", "b1", 2, t).unwrap()
        );
        assert!(VersionTemplate::new(Some(&mut serde_json::json!([1])), "Basic").is_none());
        assert!(VersionTemplate::new(None, "Basic").is_none());
    }

    #[test]
    fn composites_are_flattened_with_groups() {
        let entries = vec![
            IndexEntry {
                param: "code-value".into(),
                value: IndexValue::Composite {
                    components: vec![
                        IndexValue::Uri { value: "a".into() },
                        IndexValue::Date { low: 1, high: 2 },
                    ],
                },
            },
            IndexEntry {
                param: "n".into(),
                value: IndexValue::Number {
                    value: f64::NAN,
                    low: 0.0,
                    high: 1.0,
                },
            },
        ];
        let rows = IndexRows::new("Observation", &entries);
        assert_eq!(rows.uris[0].0.grp, 1);
        assert_eq!(rows.dates[0].0.pos, 1);
        assert!(rows.numbers.is_empty());
    }
}
