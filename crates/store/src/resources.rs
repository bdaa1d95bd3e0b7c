//! FHIR resources: current versions, full version history and the search index.
//!
//! A resource is kept as its JSON bytes with a version history; each write replaces the
//! resource's index rows ([`fhir::index::IndexEntry`], extracted by the caller) in the same
//! transaction, and searches ([`fhir::search::SearchRequest`]) are SQL over those index
//! tables — never a scan of resource JSON. The tables are described in
//! `migrations/<backend>/0003_fhir.sql`; on SQLite the index tables are clustered by
//! `(rid, param, seq)` since `0008_fhir_clustered.sql`.
//!
//! # Writes
//!
//! - The store sets `resourceType`, `id`, `meta.versionId` (a string: `"1"`, `"2"`, …) and
//!   `meta.lastUpdated` (RFC 3339 with microseconds and `Z`, the [`Timestamp`] display) in
//!   the JSON, then stores exactly `serde_json::to_vec` of it. A body whose `resourceType`
//!   differs from [`ResourceWrite::resource_type`], or that is not an object, is refused
//!   with [`crate::StoreError::InvalidArgument`] before anything is written.
//! - Versions count 1, 2, … per resource, also across a delete and a re-creation by update
//!   (which answers [`WriteOutcome::Created`] with the next version, history method Update).
//!   A create with an id that exists (even deleted) fails the whole call with
//!   [`crate::StoreError::ResourceExists`].
//! - A conditional write's search always runs on the write's resource type (whatever
//!   `resource_type` the request names) and only its filters count. SQLite runs writes on its
//!   one writer thread, so preconditions of concurrent calls are checked one after another;
//!   PostgreSQL takes a transaction-scoped advisory lock on the search
//!   ([`fhir::search::canonical_key`]) before looking, and row locks for versions. So any
//!   number of identical concurrent conditional creates make one resource.
//! - `If-Match` compares with the current, non-deleted version (a deleted or missing
//!   resource fails with `VersionConflict(None)`); it works with every op.
//! - Index rows are kept for current, non-deleted versions only. Number and quantity rows
//!   with non-finite values are dropped (no search can match them).
//!
//! # Search semantics
//!
//! - Filters combine with AND, the predicates of one [`fhir::search::Filter`] with OR (an
//!   empty OR matches nothing). Only current, non-deleted resources match.
//!   `resource_type: None` searches every type.
//! - `_id` (a token test whose code is the id, `:not` allowed, or a string test) and
//!   `_lastUpdated` (a date test; the resource's instant is compared at microsecond
//!   precision, the search range covers its milliseconds whole) are answered from the
//!   resource row.
//! - String: `StartsWith` and `Contains` on the folded value, `Exact` on the text as
//!   written. Token: system `Any`/`None` (no system)/`Is`, code `None` for `system|`;
//!   `negate` (`:not`) matches resources with no matching row, including those without the
//!   parameter. `TokenText` is a prefix match on the folded display; `OfType` needs type
//!   system, type code and value on one row.
//! - Reference: `target_type: None` matches any type; `ReferenceUrl` compares the stored
//!   `url`, `ReferenceIdentifier` the identifier value (and system when given).
//! - Date, number, quantity: the stored range `[low, high]` against the search range
//!   `[sl, sh]`: `eq` low ≥ sl and high ≤ sh; `ne` not eq; `gt` high > sh; `lt` low < sl;
//!   `ge` gt or eq; `le` lt or eq; `sa` low > sh; `eb` high < sl; `ap` the ranges overlap
//!   once the search range is widened on both sides by 10% of the value (numbers,
//!   quantities) or of the distance between the search value and now (dates). A resource
//!   matches when one of its rows does (also for `ne`). Quantity `system|code` compares
//!   both; `||code` compares the code or the unit text.
//! - Uri: `Exact`; `Above` (the stored URI is a prefix of the search URI); `Below` (the
//!   search URI is a prefix of the stored one).
//! - Composite: every component test holds on the components of one composite value.
//! - `Missing { missing, kind }` looks at the rows of `kind`'s table (every table for
//!   composite and special parameters).
//! - Chain: the reference parameter points at an existing, non-deleted resource of one of
//!   `target_types` (any type when empty) that matches the inner predicate; chains nest.
//!   `Has`: some `source_type` resource whose `reference_param` points here matches the
//!   inner predicate; nests too.
//! - Sort keys, most significant first, then the resource's row id (insertion order), so
//!   offset paging is stable. Ascending sorts by the smallest value of a resource,
//!   descending by the largest: strings by folded text, tokens by code, references by
//!   target id, uris by value, numbers and quantities by value, dates by `low` (ascending)
//!   or `high` (descending); `_id` and `_lastUpdated` by the resource's. Resources without
//!   the value come last in both directions.
//! - `count` and `offset` page the matches; `count: 0` reads only the total. `total`
//!   (`Accurate` or `Estimate`) is an exact count of all matches.
//! - `_include` (`source_type:param[:target_type]`, `param` `*` for all reference
//!   parameters) adds the existing, non-deleted targets of the page's matches;
//!   `_revinclude` the resources whose reference parameter points at them. Directives with
//!   `iterate` then apply to what was just added, round after round, until nothing new is
//!   found, for at most [`MAX_INCLUDE_ROUNDS`] rounds in all (the first included). Included resources are listed once, in
//!   the order found, and never repeat a match.
//! - Invalid combinations (a sort on a composite parameter, a chain inside a composite, …)
//!   fail with [`crate::StoreError::InvalidArgument`].
//!
//! # History
//!
//! Newest first (by time written, then row id, then version), with the total; `id` needs
//! `resource_type`; `since` keeps versions written at or after it.

use fhir::index::IndexEntry;
use fhir::search::SearchRequest;

use crate::Timestamp;
use crate::error::Result;

/// How many rounds of `:iterate` includes and revincludes a search runs at most.
pub const MAX_INCLUDE_ROUNDS: usize = 5;

/// One write of a [`Resources::write`] call.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    /// What to do.
    pub op: WriteOp,
    /// The resource type (`Patient`).
    pub resource_type: String,
    /// The logical id. For [`WriteOp::Create`] the caller picks a new id; for a conditional
    /// update or delete it is the id to use when nothing matches (update) or ignored (delete).
    pub id: String,
    /// The resource JSON (for creates and updates; `None` for deletes). The store sets
    /// `id`, `meta.versionId` and `meta.lastUpdated` in it before storing.
    pub resource: Option<serde_json::Value>,
    /// The index rows of `resource` (empty for deletes).
    pub index: Vec<IndexEntry>,
    /// A condition checked inside the write's transaction.
    pub precondition: Precondition,
}

/// The kind of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a new resource with [`ResourceWrite::id`] (fails with
    /// [`crate::StoreError::ResourceExists`] if that id exists, even deleted).
    Create,
    /// Store a new version (create-on-update when the id does not exist or was deleted).
    Update,
    /// Delete: a new, deleted version (nothing happens if the resource does not exist or is
    /// deleted already).
    Delete,
}

/// A condition checked atomically with a write.
#[derive(Debug, Clone, Default)]
pub enum Precondition {
    /// None.
    #[default]
    None,
    /// `If-Match`: the current version must be this one, else
    /// [`WriteOutcome::VersionConflict`].
    IfMatch(u64),
    /// Conditional create (`If-None-Exist`): if the search matches one resource, nothing is
    /// written and [`WriteOutcome::Existing`] names it; two or more matches give
    /// [`WriteOutcome::MultipleMatches`]. Concurrent conditional creates with the same
    /// search never both create.
    IfNoneExist(SearchRequest),
    /// The search must match nothing: a match makes the outcome
    /// [`WriteOutcome::MatchAppeared`], a failure, so the whole call is rolled back. For a
    /// transaction's conditional create that its planning found unmatched: if a concurrent
    /// request created a match since, the other writes of the transaction (which may refer to
    /// the resource this write was to create) must not be stored either.
    NoneExist(SearchRequest),
    /// Conditional update or delete (`PUT/DELETE [type]?search`): the write goes to the one
    /// resource the search matches (update: to [`ResourceWrite::id`] when none matches;
    /// delete: nothing when none matches); two or more matches give
    /// [`WriteOutcome::MultipleMatches`] (a conditional delete of several is not supported).
    Match(SearchRequest),
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// A new resource was created: its stored version.
    Created(StoredResource),
    /// A new version of an existing resource was stored.
    Updated(StoredResource),
    /// The resource was deleted: the deleted version (no content).
    Deleted(StoredResource),
    /// A delete of something that does not exist or is deleted already: nothing written.
    NotFound,
    /// Conditional create matched this resource: nothing written.
    Existing(StoredResource),
    /// The precondition's search matched more than one resource: nothing written.
    MultipleMatches,
    /// `If-Match` failed: the current version is this one (`None`: no such resource).
    VersionConflict(Option<u64>),
    /// [`Precondition::NoneExist`] failed: this resource matches the search now.
    MatchAppeared(StoredResource),
}

impl WriteOutcome {
    /// Whether the write failed a precondition (the whole [`Resources::write`] call is
    /// then rolled back).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::MultipleMatches | Self::VersionConflict(_) | Self::MatchAppeared(_)
        )
    }
}

/// A stored resource version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The resource type.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version (1, 2, …).
    pub version: u64,
    /// When this version was written.
    pub last_updated: Timestamp,
    /// Whether this version is a deletion.
    pub deleted: bool,
    /// The resource JSON as stored (with `id` and `meta` set); empty for a deletion.
    pub content: Vec<u8>,
    /// How this version was made, for history bundles.
    pub method: HistoryMethod,
}

/// How a version was made (the request method of a history entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryMethod {
    /// Created (POST).
    Create,
    /// Updated (PUT).
    Update,
    /// Deleted (DELETE).
    Delete,
}

/// Which history to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this type (`None`: all types).
    pub resource_type: Option<String>,
    /// Only this resource (needs `resource_type`).
    pub id: Option<String>,
    /// Only versions written at or after this time (`_since`).
    pub since: Option<Timestamp>,
    /// Page size.
    pub count: usize,
    /// Versions to skip.
    pub offset: usize,
}

/// A page of history, newest first, with the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The versions.
    pub versions: Vec<StoredResource>,
    /// How many versions match in all.
    pub total: u64,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// The matches of this page, in sort order.
    pub matches: Vec<StoredResource>,
    /// Resources added by `_include`/`_revinclude` (each at most once, none that is also a
    /// match).
    pub included: Vec<StoredResource>,
    /// The total number of matches, if asked for.
    pub total: Option<u64>,
}

/// FHIR resources, their history and their search index.
pub trait Resources: Send + Sync {
    /// Runs the writes in ONE transaction, in order, and returns one outcome per write. If
    /// any outcome [`WriteOutcome::is_failure`], nothing is written (the outcomes still say
    /// which write failed and why). Each resource's index rows are replaced in the same
    /// transaction.
    fn write(
        &self,
        writes: Vec<ResourceWrite>,
    ) -> impl Future<Output = Result<Vec<WriteOutcome>>> + Send;

    /// The current version (`version: None`) or a given version of a resource, deleted or
    /// not; `None` if it never existed (or has no such version).
    fn read(
        &self,
        resource_type: &str,
        id: &str,
        version: Option<u64>,
    ) -> impl Future<Output = Result<Option<StoredResource>>> + Send;

    /// Versions, newest first.
    fn history(&self, query: &HistoryQuery) -> impl Future<Output = Result<HistoryPage>> + Send;

    /// Runs a search over current, non-deleted resources.
    fn search(&self, request: &SearchRequest) -> impl Future<Output = Result<SearchPage>> + Send;
}
