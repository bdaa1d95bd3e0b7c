//! A [`SearchRequest`] as SQL over the index tables (see `migrations/*/0003_fhir.sql`).
//!
//! The matches are `fhir_resource r` rows: `NOT r.deleted`, `r.type = ?` (unless a system
//! search), and one condition per filter. A positive test on a parameter is
//! `r.rid IN (SELECT x.rid FROM fhir_idx_<kind> x WHERE x.type = ? AND x.param = ? AND …)`,
//! which the `(type, param, value…)` index of the kind's table answers; `:not` is the same
//! with `NOT IN`, `:missing` a correlated `EXISTS` on the `(rid, param)` index. Chains join
//! the reference table to the target's `fhir_resource` row and test the target with the same
//! generator (so chains nest); `_has` does the same from the referring side. Sort keys are
//! correlated sub-selects on the `(rid, param)` index, `NULLS LAST`, then `r.rid`.
//!
//! A parameter whose rows the store does not write because they would repeat other
//! parameters' rows ([`fhir::index::derivation`]) is answered from those: a union
//! (`Observation.combo-code`) as the test of any of its parameters, a composite on the
//! resource itself (`code-value-quantity`) as each component's test on its own parameter, a
//! HumanName or Address part (`Patient.address-city`) as the test of the whole element's
//! rows (`address`) that carry the part — or of the rows the parameter got before it was
//! derived (schema version 13), which stay until the resource is written again.
//!
//! On SQLite, a list of row ids is built whole before the search runs; when several filters
//! of a typed search are answered by index tables, only the likely most selective one
//! ([`driving_filter`]) is such a list and the others are correlated `EXISTS` on the
//! `(rid, param)` index, checked per candidate.

use std::collections::HashSet;

use fhir::defs::ParamType;
use fhir::search::{
    Include, Predicate, Prefix, SearchRequest, SortKey, StringMode, Test, TokenSystem, TotalMode,
    UriMode,
};

use super::{Dialect, IN_CHUNK, Sql, Value, to_i64};
use crate::crypto::Crypto;
use crate::error::{Result, StoreError};
use crate::time::Timestamp;

use crate::resources::MAX_INCLUDE_ROUNDS;

fn invalid(reason: String) -> StoreError {
    StoreError::InvalidArgument {
        op: "search",
        reason,
    }
}

/// The SQL of one search.
pub(crate) struct Compiled {
    /// Row ids of the page, in order (absent when `count` is 0); with `probe`, one row
    /// more than the page, to tell whether matches follow it.
    pub page: Option<Sql>,
    /// The count of all matches, run when the page does not tell the total (absent without
    /// `_total`, and with [`TotalMode::Auto`] when counting is not cheap).
    pub count: Option<Sql>,
    /// Whether `page` asks for one row past the page ([`TotalMode::Auto`]).
    pub probe: bool,
}

/// Compiles the page and count queries of `req`.
///
/// With [`TotalMode::Auto`] (no `_total`), the total is given only when it is cheap: the
/// page query fetches one extra row, so a page that reaches the end of the matches tells
/// the total; otherwise a search of one filter is counted from that filter's index rows
/// ([`index_count`]), and any other search has no total: counting checks every candidate
/// (at 1M resources, `name=<3 letters>&gender=female&birthdate=ge1980&_count=10` took
/// 8.7-12.5 ms p50 over HTTP with its count, 1.1-1.6 ms without).
pub(crate) fn compile(dialect: Dialect, req: &SearchRequest, crypto: &Crypto) -> Result<Compiled> {
    let probe = req.total == TotalMode::Auto && req.count > 0;
    let page = if req.count > 0 {
        let mut g = Gen::new(dialect, crypto);
        g.sql.push("SELECT r.rid FROM fhir_resource r WHERE ");
        g.conditions(req)?;
        let types: Vec<String> = req.resource_type.iter().cloned().collect();
        g.order_by(&req.sort, &types)?;
        let rows = if probe {
            req.count.saturating_add(1)
        } else {
            req.count
        };
        g.sql.limit(to_i64(rows), to_i64(req.offset));
        Some(g.sql)
    } else {
        None
    };
    let count = match req.total {
        TotalMode::None => None,
        TotalMode::Auto if req.count > 0 => {
            if req.filters.len() == 1 {
                index_count(dialect, req, crypto)?
            } else {
                None
            }
        }
        _ => {
            if let Some(sql) = index_count(dialect, req, crypto)? {
                Some(sql)
            } else {
                let mut g = Gen::new(dialect, crypto);
                g.sql.push("SELECT count(*) FROM fhir_resource r WHERE ");
                g.conditions(req)?;
                Some(g.sql)
            }
        }
    };
    Ok(Compiled { page, count, probe })
}

/// The count of a typed search whose filters are each one positive value test, from the
/// index rows alone: index rows exist only for live resources (a write replaces them, a
/// delete removes them) and carry the resource type, so the count needs no visit to
/// `fhir_resource` (a `name=smi` at 1M resources counted 5,500 matches in 1.2 ms instead of
/// 15 ms). With several filters (SQLite), the driving filter's rows are the candidates and
/// each other filter is a correlated `EXISTS` on the candidate's rows of its parameter (one
/// seek into the table clustered by `(rid, param)`). `None` when the search is not of that
/// shape.
fn index_count(dialect: Dialect, req: &SearchRequest, crypto: &Crypto) -> Result<Option<Sql>> {
    let Some(rtype) = &req.resource_type else {
        return Ok(None);
    };
    let Some(tests) = req
        .filters
        .iter()
        .map(plain_test)
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let driver = match tests.len() {
        0 => return Ok(None),
        1 => 0,
        // several filters: SQLite only (PostgreSQL plans the lists of row ids itself), and
        // not with two bounds on one date parameter (answered together, see `date_group`)
        _ if dialect == Dialect::Sqlite && date_groups(req).is_empty() => {
            match driving_filter(req) {
                Some(d) => d,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let mut g = Gen::new(dialect, crypto);
    let (first, table) = tests[driver];
    let a = g.alias();
    g.push(&format!(
        "SELECT count(DISTINCT x{a}.rid) FROM {table} x{a} WHERE x{a}.type = "
    ))
    .text(rtype)
    .push(&format!(" AND x{a}.param = "))
    .text(&first.param)
    .push(" AND ");
    g.value_test(&first.test, &format!("x{a}"), &first.param)?;
    for (n, (other, table)) in tests.iter().enumerate() {
        if n == driver {
            continue;
        }
        let b = g.alias();
        g.push(&format!(
            " AND EXISTS (SELECT 1 FROM {table} x{b} WHERE x{b}.rid = x{a}.rid AND x{b}.param = "
        ))
        .text(&other.param)
        .push(" AND ");
        g.value_test(&other.test, &format!("x{b}"), &other.param)?;
        g.push(")");
    }
    Ok(Some(g.sql))
}

/// A filter of one positive test answered by one index table's value index: the test and
/// the table.
fn plain_test(f: &fhir::search::Filter) -> Option<(&Predicate, &'static str)> {
    let [p] = f.any.as_slice() else {
        return None;
    };
    let plain = !matches!(p.param.as_str(), "_id" | "_lastUpdated")
        && fhir::index::deriving_types(&p.param).is_empty()
        && !matches!(
            p.test,
            Test::Missing { .. }
                | Test::Token { negate: true, .. }
                | Test::Chain { .. }
                | Test::Has { .. }
                | Test::Composite(_)
                // the rows that are fast and those that are not take two index ranges
                | Test::Date { .. }
        );
    table_of_test(&p.test)
        .filter(|_| plain)
        .map(|table| (p, table))
}

/// The total of a search when its page already tells it, after dropping the probe row
/// (see [`Compiled::probe`]) from `rids`: a page that is not full (or, with the probe, has
/// no row after it) and does not start past the end holds the last matches, so the total is
/// the matches before it plus those in it (no count query needed). `None` when only a
/// count can tell.
pub(crate) fn total_from_page(
    req: &SearchRequest,
    compiled: &Compiled,
    rids: &mut Vec<i64>,
) -> Option<u64> {
    if compiled.probe && rids.len() > req.count {
        rids.truncate(req.count);
        return None;
    }
    let on_page = rids.len();
    let ends = req.count > 0 && (on_page < req.count || compiled.probe);
    let reaches_page = on_page > 0 || req.offset == 0;
    (ends && reaches_page).then(|| (req.offset + on_page) as u64)
}

/// The total of a search: none with `_total=none`, else what the page tells, else the
/// result of `count` (the count query, run only when needed), else none.
pub(crate) fn total_of(
    req: &SearchRequest,
    from_page: Option<u64>,
    count: Option<u64>,
) -> Option<u64> {
    match req.total {
        TotalMode::None => None,
        _ => from_page.or(count),
    }
}

/// Row ids of at most `limit` matches of `req`'s filters on `resource_type` (for conditional
/// writes; sort, paging and includes are ignored).
pub(crate) fn matches_sql(
    dialect: Dialect,
    resource_type: &str,
    req: &SearchRequest,
    limit: i64,
    crypto: &Crypto,
) -> Result<Sql> {
    let req = SearchRequest {
        resource_type: Some(resource_type.to_owned()),
        filters: req.filters.clone(),
        ..SearchRequest::default()
    };
    let mut g = Gen::new(dialect, crypto);
    g.sql.push("SELECT r.rid FROM fhir_resource r WHERE ");
    g.conditions(&req)?;
    g.sql.push(" ORDER BY r.rid").limit(limit, 0);
    Ok(g.sql)
}

/// The text that names a conditional write's search, for the lock that serialises
/// identical conditional writes (PostgreSQL): [`fhir::search::canonical_key`] of the search on
/// the write's type, so the order of parameters and values does not matter.
pub(crate) fn lock_key(resource_type: &str, req: &SearchRequest) -> String {
    let on_type = SearchRequest {
        resource_type: Some(resource_type.to_owned()),
        filters: req.filters.clone(),
        ..SearchRequest::default()
    };
    format!("plexus-fhir:{}", fhir::search::canonical_key(&on_type))
}

/// Whether a predicate is a positive test on index rows (a short list of row ids).
fn drives_by_index(p: &Predicate) -> bool {
    !matches!(p.param.as_str(), "_id" | "_lastUpdated")
        && match &p.test {
            Test::Missing { .. } | Test::Token { negate: true, .. } => false,
            Test::Chain { .. } | Test::Has { .. } | Test::Composite(_) => true,
            t => table_of_test(t).is_some(),
        }
}

/// The filter that drives a SQLite search through the index tables (its row ids are listed
/// first, the other filters are checked per candidate): the one whose values are likely the
/// fewest — a token with system and code (an identifier), then references, strings, codes,
/// other kinds. `None` when no filter can drive.
fn driving_filter(req: &SearchRequest) -> Option<usize> {
    let rank = |p: &Predicate| match &p.test {
        Test::Token {
            system: TokenSystem::Is(_),
            code: Some(_),
            negate: false,
        } => 0,
        Test::Reference { .. } | Test::ReferenceIdentifier { .. } | Test::ReferenceUrl(_) => 1,
        Test::String {
            mode: StringMode::Exact | StringMode::StartsWith,
            ..
        } => 2,
        Test::Token { .. } | Test::OfType { .. } => 3,
        Test::Chain { .. } | Test::Has { .. } | Test::Composite(_) => 4,
        _ => 5,
    };
    req.filters
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.any.is_empty() && f.any.iter().all(drives_by_index))
        .min_by_key(|(_, f)| f.any.iter().map(rank).max().unwrap_or(5))
        .map(|(n, _)| n)
}

/// A date parameter and its bounds: (prefix, low, high) each.
type DateGroup = (String, Vec<(Prefix, i64, i64)>);

/// The date parameters bounded by two or more filters of one value each (`date=ge…&date=le…`),
/// with their bounds: answered together by [`Gen::date_group`]. `_lastUpdated` is not an
/// index parameter and stays as it is.
fn date_groups(req: &SearchRequest) -> Vec<DateGroup> {
    let mut groups: Vec<DateGroup> = Vec::new();
    for f in &req.filters {
        if let [p] = f.any.as_slice()
            && let Test::Date { prefix, low, high } = p.test
            && p.param != "_lastUpdated"
            && fhir::index::deriving_types(&p.param).is_empty()
        {
            match groups.iter_mut().find(|(param, _)| *param == p.param) {
                Some((_, tests)) => tests.push((prefix, low, high)),
                None => groups.push((p.param.clone(), vec![(prefix, low, high)])),
            }
        }
    }
    groups.retain(|(_, tests)| tests.len() > 1);
    groups
}

/// The types in context (all when none) on which `param` is derived, with how.
fn derived_in(
    param: &str,
    types: &[String],
) -> Vec<(&'static str, &'static fhir::index::Derivation)> {
    fhir::index::deriving_types(param)
        .iter()
        .filter(|t| types.is_empty() || types.iter().any(|c| c == *t))
        .filter_map(|t| fhir::index::derivation(t, param).map(|d| (*t, d)))
        .collect()
}

/// The index table of each component test of composite `param` (a negated token has none).
fn component_tables(param: &str, tests: &[Test]) -> Result<Vec<&'static str>> {
    tests
        .iter()
        .map(|t| match t {
            Test::Token { negate: true, .. } => None,
            t => table_of_test(t),
        })
        .map(|table| table.ok_or_else(|| invalid(format!("unsupported component test in {param}"))))
        .collect()
}

/// The index table of a parameter kind.
fn table_of(kind: ParamType) -> Option<&'static str> {
    Some(match kind {
        ParamType::String => "fhir_idx_string",
        ParamType::Token => "fhir_idx_token",
        ParamType::Reference => "fhir_idx_reference",
        ParamType::Date => "fhir_idx_date",
        ParamType::Number => "fhir_idx_number",
        ParamType::Quantity => "fhir_idx_quantity",
        ParamType::Uri => "fhir_idx_uri",
        ParamType::Composite | ParamType::Special => return None,
    })
}

/// The index table a (non-composite) value test looks in.
fn table_of_test(test: &Test) -> Option<&'static str> {
    table_of(match test {
        Test::String { .. } => ParamType::String,
        Test::Token { .. } | Test::TokenText(_) | Test::OfType { .. } => ParamType::Token,
        Test::Reference { .. } | Test::ReferenceUrl(_) | Test::ReferenceIdentifier { .. } => {
            ParamType::Reference
        }
        Test::Date { .. } => ParamType::Date,
        Test::Number { .. } => ParamType::Number,
        Test::Quantity { .. } => ParamType::Quantity,
        Test::Uri { .. } => ParamType::Uri,
        Test::Missing { .. } | Test::Composite(_) | Test::Chain { .. } | Test::Has { .. } => {
            return None;
        }
    })
}

/// The smallest string greater than every string starting with `prefix` (`None`: there is
/// none, every string from `prefix` on qualifies). Byte order of UTF-8 is code point order,
/// which is what SQLite's BINARY and PostgreSQL's "C" collations compare.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `text` for a LIKE pattern with `\` as the escape character.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A bound of a range comparison.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn value(self) -> Value {
        match self {
            Self::Int(i) => Value::Int(i),
            Self::Float(f) => Value::Float(f),
        }
    }
}

/// The SQL generator: a growing statement and fresh alias numbers.
struct Gen {
    sql: Sql,
    next_alias: usize,
    /// SQLite: a value test on `r` is written as a correlated `EXISTS` on the `(rid, param)`
    /// index instead of a list of row ids (set for the filters that do not drive the search).
    correlate: bool,
    /// With encryption at rest: string and token values are compared as blind indexes.
    crypto: Crypto,
    /// While a parameter on a HumanName or Address part is answered from the rows of the
    /// whole element ([`fhir::index::Derivation::Part`]): the part those rows must carry.
    part: Option<&'static str>,
}

impl Gen {
    fn new(dialect: Dialect, crypto: &Crypto) -> Self {
        Self {
            sql: Sql::new(dialect),
            next_alias: 0,
            correlate: false,
            crypto: crypto.clone(),
            part: None,
        }
    }

    /// `{a}.param = ?` for `param`, and the part its rows must carry (see [`Gen::part`]).
    fn param_is(&mut self, a: &str, param: &str) -> &mut Self {
        self.push(&format!("{a}.param = ")).text(param);
        if let Some(part) = self.part {
            self.push(&format!(" AND {a}.part = ")).text(part);
        }
        self
    }

    fn alias(&mut self) -> usize {
        self.next_alias += 1;
        self.next_alias
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push(s);
        self
    }

    fn bind(&mut self, v: Value) -> &mut Self {
        self.sql.bind(v);
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.bind(Value::text(s))
    }

    /// The WHERE conditions of a search on `r`.
    fn conditions(&mut self, req: &SearchRequest) -> Result<()> {
        self.push("NOT r.deleted");
        let types: Vec<String> = req.resource_type.iter().cloned().collect();
        let mut driver = None;
        if let Some(t) = &req.resource_type {
            // SQLite: when a filter is answered by an index table, let that drive the search
            // (rowid IN list) instead of a scan of the type's resources; `+` keeps the type
            // test from being used as an index. `_id` is answered by the (type, id) index.
            let drive_by_index = self.sql.dialect() == Dialect::Sqlite
                && req
                    .filters
                    .iter()
                    .any(|f| !f.any.is_empty() && f.any.iter().all(drives_by_index))
                && !req
                    .filters
                    .iter()
                    .any(|f| f.any.iter().any(|p| p.param == "_id"));
            if drive_by_index {
                driver = driving_filter(req);
            }
            self.push(if drive_by_index {
                " AND +r.type = "
            } else {
                " AND r.type = "
            })
            .text(t);
        }
        let grouped = date_groups(req);
        for (param, tests) in &grouped {
            self.push(" AND ");
            self.date_group(param, tests, &types, "r");
        }
        for (n, f) in req.filters.iter().enumerate() {
            if let [p] = f.any.as_slice()
                && grouped.iter().any(|(param, _)| *param == p.param)
                && matches!(p.test, Test::Date { .. })
            {
                continue; // answered by its group
            }
            // Each list of row ids is built whole before the search runs: with several
            // filters only the driving one is a list, the others are checked per candidate.
            self.correlate = driver.is_some_and(|d| d != n);
            self.push(" AND (");
            if f.any.is_empty() {
                // an empty OR is false
                self.push("1 = 0");
            }
            for (i, p) in f.any.iter().enumerate() {
                if i > 0 {
                    self.push(" OR ");
                }
                self.push("(");
                self.predicate(p, "r", &types)?;
                self.push(")");
            }
            self.push(")");
        }
        self.correlate = false;
        Ok(())
    }

    /// Two or more date bounds on one parameter (`date=ge2020&date=lt2021`). FHIR lets each
    /// bound match a different value of the resource, so in general each is its own list of
    /// row ids, intersected. Rows flagged `fast` are their resource's only value of the
    /// parameter and narrower than a day: for those one row must satisfy every bound, and the
    /// bounds imply a closed range on `low` that one index range scan answers. Only resources
    /// without a fast row need the intersection. A single bound is answered the same way
    /// (the `(type, param, high, low)` index holds only the rows that are not fast).
    fn date_group(
        &mut self,
        param: &str,
        tests: &[(Prefix, i64, i64)],
        types: &[String],
        res: &str,
    ) {
        let now = Timestamp::now().as_micros() / 1000;
        let (mut from, mut to) = (i64::MIN, i64::MAX);
        for &(prefix, sl, sh) in tests {
            let d = date_ap_delta(sl, sh, now);
            let (lo_min, lo_max) = match prefix {
                Prefix::Eq => (sl, sh),
                Prefix::Ge => (sl.saturating_sub(super::DAY_MS), i64::MAX),
                Prefix::Gt => (sh.saturating_sub(super::DAY_MS), i64::MAX),
                Prefix::Sa => (sh, i64::MAX),
                Prefix::Le => (i64::MIN, sh),
                Prefix::Lt | Prefix::Eb => (i64::MIN, sl),
                Prefix::Ap => (
                    sl.saturating_sub(d).saturating_sub(super::DAY_MS),
                    sh.saturating_add(d),
                ),
                Prefix::Ne => (i64::MIN, i64::MAX),
            };
            from = from.max(lo_min);
            to = to.min(lo_max);
        }
        let test = |&(prefix, low, high): &(Prefix, i64, i64)| Test::Date { prefix, low, high };
        let a = self.alias();
        self.push(&format!(
            "({res}.rid IN (SELECT x{a}.rid FROM fhir_idx_date x{a} WHERE x{a}.param = "
        ))
        .text(param);
        self.type_filter(&format!("x{a}.type"), types);
        self.push(&format!(" AND x{a}.fast = 1 AND x{a}.low >= "))
            .bind(Value::Int(from))
            .push(&format!(" AND x{a}.low <= "))
            .bind(Value::Int(to));
        for t in tests {
            self.push(" AND ");
            // a date test cannot fail to compile
            let _ = self.value_test(&test(t), &format!("x{a}"), param);
        }
        // the resources without a fast row, in the same list: with `OR` between two lists
        // SQLite looked every fast row's resource up and sorted them all for the page
        // (1.0–1.6 ms at 1M resources for a two-day range), with one list it reads the
        // list's row ids in order and stops at the page's end (0.3 ms)
        self.push(" UNION ALL ");
        let first = self.alias();
        for (i, t) in tests.iter().enumerate() {
            let b = if i == 0 {
                self.push(&format!("SELECT x{first}.rid"));
                first
            } else {
                let b = self.alias();
                self.push(&format!(" AND x{first}.rid IN (SELECT x{b}.rid"));
                b
            };
            self.push(&format!(" FROM fhir_idx_date x{b} WHERE x{b}.param = "))
                .text(param);
            self.type_filter(&format!("x{b}.type"), types);
            // the literal lets the partial indexes of the rows that are not fast answer
            self.push(&format!(" AND x{b}.fast = 0 AND "));
            let _ = self.value_test(&test(t), &format!("x{b}"), param);
            if i > 0 {
                self.push(")");
            }
        }
        self.push("))");
    }

    /// `x.type = ?` or `x.type IN (…)` for the resource types in context (nothing when any).
    fn type_filter(&mut self, col: &str, types: &[String]) {
        match types {
            [] => {}
            [one] => {
                self.push(" AND ").push(col).push(" = ").text(one);
            }
            many => {
                self.push(" AND ").push(col).push(" IN (");
                self.sql
                    .bind_list(many.iter().map(|t| Value::text(t.as_str())));
                self.push(")");
            }
        }
    }

    /// A condition on the resource row alias `r` (of one of `types`, any when empty).
    fn predicate(&mut self, pred: &Predicate, res: &str, types: &[String]) -> Result<()> {
        match (pred.param.as_str(), &pred.test) {
            ("_id", test) => self.id_test(res, test),
            ("_lastUpdated", test) => self.last_updated_test(res, test),
            (param, _) if !fhir::index::deriving_types(param).is_empty() => {
                self.derived(pred, res, types)
            }
            _ => self.stored(pred, res, types),
        }
    }

    /// A condition on the resource row alias `r` from the rows of the parameter itself.
    fn stored(&mut self, pred: &Predicate, res: &str, types: &[String]) -> Result<()> {
        match (pred.param.as_str(), &pred.test) {
            (_, Test::Missing { missing, kind }) => {
                self.missing(&pred.param, *missing, *kind, res);
                Ok(())
            }
            (
                _,
                Test::Chain {
                    target_types,
                    predicate,
                },
            ) => {
                let (x, t) = (self.alias(), self.alias());
                self.push(&format!(
                    "{res}.rid IN (SELECT x{x}.rid FROM fhir_idx_reference x{x} \
                     JOIN fhir_resource t{t} ON t{t}.type = x{x}.target_type \
                     AND t{t}.id = x{x}.target_id WHERE x{x}.param = "
                ))
                .text(&pred.param);
                self.type_filter(&format!("x{x}.type"), types);
                self.type_filter(&format!("x{x}.target_type"), target_types);
                self.push(&format!(" AND NOT t{t}.deleted AND ("));
                self.predicate(predicate, &format!("t{t}"), target_types)?;
                self.push("))");
                Ok(())
            }
            (
                _,
                Test::Has {
                    source_type,
                    reference_param,
                    predicate,
                },
            ) => {
                let (x, src, t) = (self.alias(), self.alias(), self.alias());
                self.push(&format!(
                    "{res}.rid IN (SELECT t{t}.rid FROM fhir_idx_reference x{x} \
                     JOIN fhir_resource s{src} ON s{src}.rid = x{x}.rid \
                     JOIN fhir_resource t{t} ON t{t}.type = x{x}.target_type \
                     AND t{t}.id = x{x}.target_id WHERE x{x}.type = "
                ))
                .text(source_type)
                .push(&format!(" AND x{x}.param = "))
                .text(reference_param);
                self.type_filter(&format!("x{x}.target_type"), types);
                self.push(" AND (");
                self.predicate(
                    predicate,
                    &format!("s{src}"),
                    std::slice::from_ref(source_type),
                )?;
                self.push("))");
                Ok(())
            }
            (_, Test::Composite(tests)) => self.composite(pred, tests, res, types),
            (_, test) => {
                let table = table_of_test(test).ok_or_else(|| {
                    invalid(format!("unsupported test on parameter {}", pred.param))
                })?;
                let negate = matches!(test, Test::Token { negate: true, .. });
                let correlated = self.correlate && !negate && res == "r";
                if let (false, &Test::Date { prefix, low, high }) = (correlated, test) {
                    // fast rows by their start, the others by either end (see `date_group`)
                    self.date_group(&pred.param, &[(prefix, low, high)], types, res);
                    return Ok(());
                }
                let a = self.alias();
                if correlated {
                    self.push(&format!(
                        "EXISTS (SELECT 1 FROM {table} x{a} WHERE x{a}.rid = {res}.rid AND "
                    ));
                    self.param_is(&format!("x{a}"), &pred.param);
                    self.push(" AND ");
                    self.value_test(test, &format!("x{a}"), &pred.param)?;
                    self.push(")");
                    return Ok(());
                }
                self.push(&format!(
                    "{res}.rid {}IN (SELECT x{a}.rid FROM {table} x{a} WHERE ",
                    if negate { "NOT " } else { "" }
                ));
                self.param_is(&format!("x{a}"), &pred.param);
                self.type_filter(&format!("x{a}.type"), types);
                self.push(" AND ");
                self.value_test(test, &format!("x{a}"), &pred.param)?;
                self.push(")");
                Ok(())
            }
        }
    }

    /// A test of a parameter that is derived on some of the types in context (see
    /// [`fhir::index::derivation`]): on those, the test of the rows it is derived from; on
    /// the others, the test of its own rows. A positive test holds when one part holds, a
    /// negative one (`:not`, `:missing=true`) when every part holds.
    fn derived(&mut self, pred: &Predicate, res: &str, types: &[String]) -> Result<()> {
        let derived = derived_in(&pred.param, types);
        let own: Vec<String> = types
            .iter()
            .filter(|t| !derived.iter().any(|(d, _)| d == t))
            .cloned()
            .collect();
        // with no type in context, the types that write the parameter's own rows
        let writes_own = if types.is_empty() {
            fhir::defs::resource_types().iter().any(|t| {
                fhir::defs::search_param(t, &pred.param).is_some()
                    && fhir::index::derivation(t, &pred.param).is_none()
            })
        } else {
            !own.is_empty()
        };
        let negative = matches!(
            pred.test,
            Test::Token { negate: true, .. } | Test::Missing { missing: true, .. }
        );
        let join = if negative { " AND " } else { " OR " };
        // guard each derived part by the resource's type unless it is the only one
        let guard = types.len() != 1;
        self.push("(");
        let mut first = true;
        if writes_own {
            // derived types have no rows of the parameter: only the others answer here
            self.push("(");
            self.stored(pred, res, &own)?;
            self.push(")");
            first = false;
        }
        for (ty, derivation) in derived {
            if !first {
                self.push(join);
            }
            first = false;
            self.push("(");
            if guard {
                self.push(&format!(
                    "{res}.type {} ",
                    if negative { "<>" } else { "=" }
                ))
                .text(ty)
                .push(if negative { " OR " } else { " AND " });
            }
            let on_type = [ty.to_owned()];
            match derivation {
                fhir::index::Derivation::Union(sources) => {
                    self.push("(");
                    for (i, s) in sources.iter().enumerate() {
                        if i > 0 {
                            self.push(join);
                        }
                        let part = Predicate {
                            param: (*s).to_owned(),
                            test: pred.test.clone(),
                        };
                        self.push("(");
                        self.predicate(&part, res, &on_type)?;
                        self.push(")");
                    }
                    self.push(")");
                }
                fhir::index::Derivation::Components(sources) => {
                    self.components(pred, sources, ty, res)?;
                }
                fhir::index::Derivation::Part { source, part } => {
                    // the source's rows of that part, and rows the parameter was given
                    // before it was derived (kept until the resource is written again)
                    let from_source = Predicate {
                        param: (*source).to_owned(),
                        test: pred.test.clone(),
                    };
                    self.push("((");
                    self.part = Some(part);
                    let done = self.stored(&from_source, res, &on_type);
                    self.part = None;
                    done?;
                    self.push(")").push(join).push("(");
                    self.stored(pred, res, &on_type)?;
                    self.push("))");
                }
            }
            self.push(")");
        }
        if first {
            self.push(if negative { "1 = 1" } else { "1 = 0" });
        }
        self.push(")");
        Ok(())
    }

    /// A composite on the resource itself, from its components' own parameters: each
    /// component test holds for one row of its parameter (`:missing`: each has a row).
    fn components(
        &mut self,
        pred: &Predicate,
        sources: &[&'static str],
        ty: &str,
        res: &str,
    ) -> Result<()> {
        let on_type = [ty.to_owned()];
        let tests: Vec<Test> = match &pred.test {
            Test::Composite(tests) => {
                if tests.len() != sources.len() {
                    return Err(invalid(format!(
                        "composite {} has {} components, not {}",
                        pred.param,
                        sources.len(),
                        tests.len()
                    )));
                }
                let tables = component_tables(&pred.param, tests)?;
                return self.component_rows(sources, &tables, tests, ty, res);
            }
            Test::Missing { missing, .. } => {
                if *missing {
                    self.push("NOT ");
                }
                sources
                    .iter()
                    .map(|s| Test::Missing {
                        missing: false,
                        kind: fhir::defs::search_param(ty, s)
                            .map_or(ParamType::Special, |d| d.kind),
                    })
                    .collect()
            }
            _ => {
                return Err(invalid(format!(
                    "unsupported test on composite {}",
                    pred.param
                )));
            }
        };
        self.push("(");
        for (i, (s, test)) in sources.iter().zip(tests).enumerate() {
            if i > 0 {
                self.push(" AND ");
            }
            let part = Predicate {
                param: (*s).to_owned(),
                test,
            };
            self.push("(");
            self.predicate(&part, res, &on_type)?;
            self.push(")");
        }
        self.push(")");
        Ok(())
    }

    /// Each component test holds for a row of its parameter (in `tables`) of one resource
    /// of type `ty`: the first component's rows joined to the others' rows of the same
    /// resource (one seek each into the tables clustered by `(rid, param)`), as one list of
    /// row ids or, for a filter that does not drive the search, checked per candidate.
    fn component_rows(
        &mut self,
        sources: &[&'static str],
        tables: &[&'static str],
        tests: &[Test],
        ty: &str,
        res: &str,
    ) -> Result<()> {
        let base = self.alias();
        let correlated = self.correlate && res == "r";
        if correlated {
            self.push(&format!("EXISTS (SELECT 1 FROM {} c{base}_0", tables[0]));
        } else {
            self.push(&format!(
                "{res}.rid IN (SELECT c{base}_0.rid FROM {} c{base}_0",
                tables[0]
            ));
        }
        for (i, (table, source)) in tables.iter().zip(sources).enumerate().skip(1) {
            self.push(&format!(
                " JOIN {table} c{base}_{i} ON c{base}_{i}.rid = c{base}_0.rid \
                 AND c{base}_{i}.param = "
            ))
            .text(source);
        }
        self.push(" WHERE ");
        if correlated {
            self.push(&format!("c{base}_0.rid = {res}.rid AND "));
        }
        self.push(&format!("c{base}_0.param = ")).text(sources[0]);
        if !correlated {
            self.push(&format!(" AND c{base}_0.type = ")).text(ty);
        }
        for (i, (t, source)) in tests.iter().zip(sources).enumerate() {
            self.push(" AND ");
            self.value_test(t, &format!("c{base}_{i}"), source)?;
        }
        self.push(")");
        Ok(())
    }

    /// `:missing`: whether the resource has rows of `param` in `kind`'s table(s).
    fn missing(&mut self, param: &str, missing: bool, kind: ParamType, res: &str) {
        let tables: Vec<&str> = match table_of(kind) {
            Some(t) => vec![t],
            None => super::INDEX_TABLES.to_vec(),
        };
        if missing {
            self.push("NOT ");
        }
        self.push("(");
        for (i, table) in tables.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            let a = self.alias();
            self.push(&format!(
                "EXISTS (SELECT 1 FROM {table} x{a} WHERE x{a}.rid = {res}.rid AND "
            ))
            .param_is(&format!("x{a}"), param)
            .push(")");
        }
        self.push(")");
    }

    /// `_id`, answered from the resource row.
    fn id_test(&mut self, r: &str, test: &Test) -> Result<()> {
        match test {
            Test::Token {
                code: Some(code),
                negate,
                ..
            } => {
                self.push(&format!("{r}.id {} ", if *negate { "<>" } else { "=" }))
                    .text(code);
            }
            Test::String { value, .. } => {
                self.push(&format!("{r}.id = ")).text(value);
            }
            Test::Token { code: None, .. } | Test::Missing { missing: false, .. } => {
                self.push("1 = 1");
            }
            Test::Missing { missing: true, .. } => {
                self.push("1 = 0");
            }
            _ => return Err(invalid("unsupported test on _id".to_owned())),
        }
        Ok(())
    }

    /// `_lastUpdated`, answered from the resource row (microseconds; the search range is in
    /// milliseconds and covers each millisecond whole).
    fn last_updated_test(&mut self, r: &str, test: &Test) -> Result<()> {
        match test {
            Test::Date { prefix, low, high } => {
                let lo = low.saturating_mul(1000);
                let hi = high.saturating_mul(1000).saturating_add(999);
                let col = format!("{r}.last_updated");
                let d = date_ap_delta(lo, hi, Timestamp::now().as_micros());
                self.range(*prefix, &col, &col, Num::Int(lo), Num::Int(hi), Num::Int(d));
                Ok(())
            }
            Test::Missing { missing, .. } => {
                self.push(if *missing { "1 = 0" } else { "1 = 1" });
                Ok(())
            }
            _ => Err(invalid("unsupported test on _lastUpdated".to_owned())),
        }
    }

    /// All component tests hold for the component rows of one composite value.
    fn composite(
        &mut self,
        p: &Predicate,
        tests: &[Test],
        r: &str,
        types: &[String],
    ) -> Result<()> {
        if tests.is_empty() {
            return Err(invalid(format!("composite {} without components", p.param)));
        }
        let base = self.alias();
        let tables = component_tables(&p.param, tests)?;
        self.push(&format!(
            "{r}.rid IN (SELECT c{base}_0.rid FROM {} c{base}_0",
            tables[0]
        ));
        for (i, table) in tables.iter().enumerate().skip(1) {
            self.push(&format!(
                " JOIN {table} c{base}_{i} ON c{base}_{i}.rid = c{base}_0.rid \
                 AND c{base}_{i}.param = c{base}_0.param AND c{base}_{i}.grp = c{base}_0.grp \
                 AND c{base}_{i}.pos = {i}"
            ));
        }
        self.push(&format!(" WHERE c{base}_0.param = "))
            .text(&p.param);
        self.type_filter(&format!("c{base}_0.type"), types);
        self.push(&format!(" AND c{base}_0.grp > 0 AND c{base}_0.pos = 0"));
        for (i, t) in tests.iter().enumerate() {
            self.push(" AND ");
            self.value_test(t, &format!("c{base}_{i}"), &p.param)?;
        }
        self.push(")");
        Ok(())
    }

    /// `col >= prefix AND col < successor` (an index range).
    fn prefix(&mut self, col: &str, prefix: &str) {
        if prefix.is_empty() {
            self.push(&format!("{col} IS NOT NULL"));
            return;
        }
        self.push(&format!("{col} >= ")).text(prefix);
        if let Some(next) = prefix_successor(prefix) {
            self.push(&format!(" AND {col} < ")).text(&next);
        }
    }

    /// A string test of one index row `a` of `param` (see [`Gen::value_test`]).
    fn string_test(&mut self, a: &str, param: &str, value: &str, mode: StringMode) -> Result<()> {
        match mode {
            StringMode::StartsWith => {
                let value = self.crypto.string_prefix(param, value).into_owned();
                self.prefix(&format!("{a}.normalized"), &value);
            }
            StringMode::Exact => {
                // A row's `normalized` is the normalization of its `exact` (with encryption,
                // the whole value's row holds the blind index of the whole normalized text),
                // so the (type, param, normalized) index finds the candidates; there is no
                // index on `exact` (migration 0007).
                let normalized = fhir::index::normalize(value);
                if !normalized.is_empty() {
                    let normalized = self.crypto.string_prefix(param, &normalized).into_owned();
                    self.push(&format!("{a}.normalized = "))
                        .text(&normalized)
                        .push(" AND ");
                }
                let value = self.crypto.string_exact(param, value).into_owned();
                self.push(&format!("{a}.exact = ")).text(&value);
            }
            StringMode::Contains => {
                self.crypto.refuse("search", || {
                    format!("the :contains modifier ({param}:contains)")
                })?;
                self.push(&format!("{a}.normalized LIKE "))
                    .text(&format!("%{}%", like_escape(value)))
                    .push(" ESCAPE '\\'");
            }
        }
        Ok(())
    }

    /// A test of one index row `a` of `param`. With encryption at rest, string, token code
    /// and reference identifier values are bound as the blind indexes they are stored as
    /// (the SQL stays the same); what blind indexes cannot answer is refused.
    fn value_test(&mut self, test: &Test, a: &str, param: &str) -> Result<()> {
        match test {
            Test::String { value, mode } => self.string_test(a, param, value, *mode)?,
            Test::Token { system, code, .. } => {
                match code {
                    Some(c) => {
                        let c = self.crypto.token(param, c).into_owned();
                        self.push(&format!("{a}.code = ")).text(&c);
                    }
                    None => {
                        self.push("1 = 1");
                    }
                }
                match system {
                    TokenSystem::Any => {}
                    TokenSystem::None => {
                        self.push(&format!(" AND {a}.system IS NULL"));
                    }
                    TokenSystem::Is(s) => {
                        self.push(&format!(" AND {a}.system = ")).text(s);
                    }
                }
            }
            Test::TokenText(text) => {
                self.crypto
                    .refuse("search", || format!("the :text modifier ({param}:text)"))?;
                self.prefix(&format!("{a}.display"), text);
            }
            Test::OfType {
                type_system,
                type_code,
                value,
            } => {
                let value = self.crypto.token(param, value).into_owned();
                self.push(&format!("{a}.code = "))
                    .text(&value)
                    .push(&format!(" AND {a}.type_system = "))
                    .text(type_system)
                    .push(&format!(" AND {a}.type_code = "))
                    .text(type_code);
            }
            Test::Reference { target_type, id } => {
                self.push(&format!("{a}.target_id = ")).text(id);
                if let Some(t) = target_type {
                    self.push(&format!(" AND {a}.target_type = ")).text(t);
                }
            }
            Test::ReferenceUrl(url) => {
                self.push(&format!("{a}.url = ")).text(url);
            }
            Test::ReferenceIdentifier { system, value } => {
                let value = self.crypto.identifier(param, value).into_owned();
                self.push(&format!("{a}.identifier_value = ")).text(&value);
                if let Some(s) = system {
                    self.push(&format!(" AND {a}.identifier_system = ")).text(s);
                }
            }
            Test::Date { prefix, low, high } => {
                let d = date_ap_delta(*low, *high, Timestamp::now().as_micros() / 1000);
                self.range(
                    *prefix,
                    &format!("{a}.low"),
                    &format!("{a}.high"),
                    Num::Int(*low),
                    Num::Int(*high),
                    Num::Int(d),
                );
            }
            Test::Number {
                prefix,
                value,
                low,
                high,
            } => self.number(*prefix, a, *value, *low, *high),
            Test::Quantity {
                prefix,
                value,
                low,
                high,
                system,
                code,
            } => {
                self.number(*prefix, a, *value, *low, *high);
                self.quantity_unit(a, system.as_deref(), code.as_deref());
            }
            Test::Uri { value, mode } => self.uri(a, value, *mode),
            Test::Missing { .. } | Test::Composite(_) | Test::Chain { .. } | Test::Has { .. } => {
                return Err(invalid("unsupported nested test".to_owned()));
            }
        }
        Ok(())
    }

    /// The unit part of a quantity search (the code is compared to the unit text too when
    /// no system is given).
    fn quantity_unit(&mut self, a: &str, system: Option<&str>, code: Option<&str>) {
        match (system, code) {
            (Some(s), Some(c)) => {
                self.push(&format!(" AND {a}.system = "))
                    .text(s)
                    .push(&format!(" AND {a}.code = "))
                    .text(c);
            }
            (None, Some(c)) => {
                self.push(&format!(" AND ({a}.code = "))
                    .text(c)
                    .push(&format!(" OR {a}.unit = "))
                    .text(c)
                    .push(")");
            }
            (Some(s), None) => {
                self.push(&format!(" AND {a}.system = ")).text(s);
            }
            (None, None) => {}
        }
    }

    /// A uri search.
    fn uri(&mut self, a: &str, value: &str, mode: UriMode) {
        match mode {
            UriMode::Exact => {
                self.push(&format!("{a}.value = ")).text(value);
            }
            UriMode::Above => {
                self.push("substr(CAST(")
                    .text(value)
                    .push(&format!(" AS TEXT), 1, length({a}.value)) = {a}.value"));
            }
            UriMode::Below => self.prefix(&format!("{a}.value"), value),
        }
    }

    fn number(&mut self, prefix: Prefix, a: &str, value: f64, low: f64, high: f64) {
        let d = (value.abs() * 0.1).max(0.0);
        self.range(
            prefix,
            &format!("{a}.low"),
            &format!("{a}.high"),
            Num::Float(low),
            Num::Float(high),
            Num::Float(d),
        );
    }

    /// A prefix comparison of the value range `lo..=hi` (columns) with the search range
    /// `sl..=sh`; `d` widens the search range for `ap`.
    fn range(&mut self, prefix: Prefix, lo: &str, hi: &str, sl: Num, sh: Num, d: Num) {
        // Every form below starts with a bound on one column, so an index on (low, …) or
        // (high, …) answers it with one range scan; `lo <= hi` always holds, which makes the
        // added bounds redundant for the result.
        let eq = |g: &mut Self| {
            g.push(&format!("({lo} >= "))
                .bind(sl.value())
                .push(&format!(" AND {lo} <= "))
                .bind(sh.value())
                .push(&format!(" AND {hi} <= "))
                .bind(sh.value())
                .push(")");
        };
        match prefix {
            Prefix::Eq => eq(self),
            Prefix::Ne => {
                self.push("NOT ");
                eq(self);
            }
            Prefix::Gt => {
                self.push(&format!("{hi} > ")).bind(sh.value());
            }
            Prefix::Lt => {
                self.push(&format!("{lo} < ")).bind(sl.value());
            }
            // gt or eq: `hi > sh OR (lo >= sl AND hi <= sh)`, written with its range first
            Prefix::Ge => {
                self.push(&format!("({hi} >= "))
                    .bind(sl.value())
                    .push(&format!(" AND ({hi} > "))
                    .bind(sh.value())
                    .push(&format!(" OR {lo} >= "))
                    .bind(sl.value())
                    .push("))");
            }
            // lt or eq: `lo < sl OR (lo >= sl AND hi <= sh)`, written with its range first
            Prefix::Le => {
                self.push(&format!("({lo} <= "))
                    .bind(sh.value())
                    .push(&format!(" AND ({lo} < "))
                    .bind(sl.value())
                    .push(&format!(" OR {hi} <= "))
                    .bind(sh.value())
                    .push("))");
            }
            Prefix::Sa => {
                self.push(&format!("{lo} > ")).bind(sh.value());
            }
            Prefix::Eb => {
                self.push(&format!("{hi} < ")).bind(sl.value());
            }
            Prefix::Ap => {
                let (wl, wh) = match (sl, sh, d) {
                    (Num::Int(l), Num::Int(h), Num::Int(d)) => {
                        (Num::Int(l.saturating_sub(d)), Num::Int(h.saturating_add(d)))
                    }
                    (Num::Float(l), Num::Float(h), Num::Float(d)) => {
                        (Num::Float(l - d), Num::Float(h + d))
                    }
                    _ => (sl, sh),
                };
                self.push(&format!("({lo} <= "))
                    .bind(wh.value())
                    .push(&format!(" AND {hi} >= "))
                    .bind(wl.value())
                    .push(")");
            }
        }
    }

    /// `ORDER BY` the sort keys (missing values last), then the row id.
    fn order_by(&mut self, keys: &[SortKey], types: &[String]) -> Result<()> {
        self.push(" ORDER BY ");
        for k in keys {
            let dir = if k.descending { "DESC" } else { "ASC" };
            match k.param.as_str() {
                "_id" => {
                    self.push(&format!("r.id {dir}, "));
                }
                "_lastUpdated" => {
                    self.push(&format!("r.last_updated {dir}, "));
                }
                param => {
                    if matches!(k.kind, ParamType::String | ParamType::Token) {
                        let kind = if k.kind == ParamType::String {
                            "string"
                        } else {
                            "token"
                        };
                        self.crypto.refuse("search", || {
                            format!("_sort on the {kind} parameter {param}")
                        })?;
                    }
                    let agg = if k.descending { "max" } else { "min" };
                    let (table, col) = match k.kind {
                        ParamType::String => ("fhir_idx_string", "normalized"),
                        ParamType::Token => ("fhir_idx_token", "code"),
                        ParamType::Reference => ("fhir_idx_reference", "target_id"),
                        ParamType::Date if k.descending => ("fhir_idx_date", "high"),
                        ParamType::Date => ("fhir_idx_date", "low"),
                        ParamType::Number => ("fhir_idx_number", "value"),
                        ParamType::Quantity => ("fhir_idx_quantity", "value"),
                        ParamType::Uri => ("fhir_idx_uri", "value"),
                        ParamType::Composite | ParamType::Special => {
                            return Err(invalid(format!("cannot sort by {param}")));
                        }
                    };
                    let a = self.alias();
                    self.push(&format!(
                        "(SELECT {agg}(x{a}.{col}) FROM {table} x{a} WHERE x{a}.rid = r.rid \
                         AND x{a}.grp = 0 AND "
                    ));
                    self.sort_rows(param, &format!("x{a}"), types)?;
                    self.push(&format!(") {dir} NULLS LAST, "));
                }
            }
        }
        self.push("r.rid ASC");
        Ok(())
    }
}

impl Gen {
    /// The rows `a` of `param` a sort key reads: its own, and on the types where it is a
    /// union of other parameters (see [`fhir::index::derivation`]) theirs, where it is a
    /// HumanName or Address part the whole element's rows of that part.
    fn sort_rows(&mut self, param: &str, a: &str, types: &[String]) -> Result<()> {
        let derived = derived_in(param, types);
        self.push(&format!("({a}.param = ")).text(param);
        for (ty, derivation) in derived {
            self.push(" OR (r.type = ").text(ty);
            match derivation {
                fhir::index::Derivation::Union(sources) => {
                    self.push(&format!(" AND {a}.param IN ("));
                    self.sql.bind_list(sources.iter().map(|s| Value::text(*s)));
                    self.push("))");
                }
                fhir::index::Derivation::Part { source, part } => {
                    self.push(&format!(" AND {a}.param = "))
                        .text(source)
                        .push(&format!(" AND {a}.part = "))
                        .text(part)
                        .push(")");
                }
                fhir::index::Derivation::Components(_) => {
                    return Err(invalid(format!("cannot sort by {param}")));
                }
            }
        }
        self.push(")");
        Ok(())
    }
}

/// The widening of an `ap` date search: 10% of the distance between the search value and
/// now (FHIR's recommendation for dates), in the unit of the arguments.
fn date_ap_delta(low: i64, high: i64, now: i64) -> i64 {
    let mid = low / 2 + high / 2;
    (i128::from(now) - i128::from(mid))
        .abs()
        .checked_div(10)
        .and_then(|d| i64::try_from(d).ok())
        .unwrap_or(i64::MAX)
}

/// The rounds of `_include` and `_revinclude`: queries over the resources added last round,
/// until nothing new is found or [`MAX_INCLUDE_ROUNDS`] is reached.
pub(crate) struct IncludePlan<'a> {
    dialect: Dialect,
    include: &'a [Include],
    revinclude: &'a [Include],
    seen: HashSet<i64>,
    frontier: Vec<i64>,
    round: usize,
    /// Row ids of the included resources, in the order found.
    pub included: Vec<i64>,
}

impl<'a> IncludePlan<'a> {
    pub(crate) fn new(dialect: Dialect, req: &'a SearchRequest, matches: &[i64]) -> Self {
        Self {
            dialect,
            include: &req.include,
            revinclude: &req.revinclude,
            seen: matches.iter().copied().collect(),
            frontier: matches.to_vec(),
            round: 0,
            included: Vec::new(),
        }
    }

    /// The queries of the next round (each returns row ids), or `None` when done.
    pub(crate) fn next_round(&mut self) -> Option<Vec<Sql>> {
        if self.frontier.is_empty() || self.round >= MAX_INCLUDE_ROUNDS {
            return None;
        }
        let first = self.round == 0;
        self.round += 1;
        let mut queries = Vec::new();
        for chunk in self.frontier.chunks(IN_CHUNK) {
            for inc in self.include.iter().filter(|i| first || i.iterate) {
                queries.push(include_sql(self.dialect, inc, chunk, false));
            }
            for inc in self.revinclude.iter().filter(|i| first || i.iterate) {
                queries.push(include_sql(self.dialect, inc, chunk, true));
            }
        }
        if queries.is_empty() {
            return None;
        }
        Some(queries)
    }

    /// Takes the row ids a round found.
    pub(crate) fn found(&mut self, mut rids: Vec<i64>) {
        rids.sort_unstable();
        rids.dedup();
        self.frontier = rids.into_iter().filter(|r| self.seen.insert(*r)).collect();
        self.included.extend_from_slice(&self.frontier);
    }
}

/// PostgreSQL: the page of a search and its resources (current versions, in page order) in
/// one statement, so a search costs one round trip instead of one per query: the columns of
/// [`super::RESOURCE_COLUMNS`], then, with `count`, the count of all matches as a ninth column
/// (the same in every row; an uncorrelated sub-select, run once). `ARRAY(…)` keeps the
/// page's `ORDER BY` order, which `WITH ORDINALITY` numbers. Counting with the page costs at
/// most the page's own work when the page is not full (its matches are all there is) and
/// saves the count's round trip when it is.
pub(crate) fn page_with_resources(page: &Sql, count: Option<&Sql>) -> Sql {
    let mut sql = Sql::new(Dialect::Postgres);
    sql.push("SELECT ").push(super::RESOURCE_COLUMNS);
    if let Some(count) = count {
        sql.push(", (");
        append_renumbered(&mut sql, count);
        sql.push(")");
    }
    sql.push(" FROM unnest(ARRAY(");
    append_renumbered(&mut sql, page);
    sql.push(
        ")) WITH ORDINALITY AS p(rid, n) JOIN fhir_resource r ON r.rid = p.rid \
         JOIN fhir_version v ON v.rid = r.rid AND v.version = r.version ORDER BY p.n",
    );
    sql
}

/// PostgreSQL: the current versions of the resources an include query (returning row ids)
/// finds, in one statement (any order).
pub(crate) fn resources_of(rids: &Sql) -> Sql {
    let mut sql = Sql::new(Dialect::Postgres);
    sql.push("SELECT ").push(super::RESOURCE_COLUMNS).push(
        " FROM fhir_resource r JOIN fhir_version v ON v.rid = r.rid \
             AND v.version = r.version WHERE r.rid IN (",
    );
    append_renumbered(&mut sql, rids);
    sql.push(")");
    sql
}

/// Appends PostgreSQL statement `part` to `sql`, its `$n` placeholders renumbered after
/// `sql`'s (the SQL text of a search never holds a `$` other than a placeholder: values are
/// always bound).
fn append_renumbered(sql: &mut Sql, part: &Sql) {
    let shift = sql.params.len();
    let mut rest = part.text.as_str();
    while let Some(at) = rest.find('$') {
        sql.text.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => sql.text.push_str(&(n + shift).to_string()),
            Err(_) => sql.text.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    sql.text.push_str(rest);
    sql.params.extend(part.params.iter().cloned());
}

/// Targets of (or, `reverse`, resources pointing at) the resources `rids` by one directive.
fn include_sql(dialect: Dialect, inc: &Include, rids: &[i64], reverse: bool) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(if reverse {
        "SELECT DISTINCT x.rid"
    } else {
        "SELECT DISTINCT t.rid"
    })
    .push(
        " FROM fhir_idx_reference x JOIN fhir_resource t ON t.type = x.target_type \
         AND t.id = x.target_id WHERE ",
    )
    .push(if reverse { "t.rid IN (" } else { "x.rid IN (" })
    .bind_list(rids.iter().map(|r| Value::Int(*r)))
    // SQLite: `+` keeps the planner from answering the source type and param with the
    // (type, param, …) index, a scan of every reference of that kind (without statistics it
    // chose that over the listed row ids: 340 ms instead of 0.2 ms at 1M resources)
    .push(match dialect {
        Dialect::Sqlite => ") AND x.grp = 0 AND NOT t.deleted AND +x.type = ",
        Dialect::Postgres => ") AND x.grp = 0 AND NOT t.deleted AND x.type = ",
    })
    .bind(Value::text(inc.source_type.as_str()));
    if inc.param != "*" {
        sql.push(" AND x.param = ")
            .bind(Value::text(inc.param.as_str()));
    }
    if let Some(t) = &inc.target_type {
        sql.push(" AND x.target_type = ")
            .bind(Value::text(t.as_str()));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir::search::Filter;

    #[test]
    fn successor_of_prefixes() {
        assert_eq!(prefix_successor("smi").as_deref(), Some("smj"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn fused_page_statement_renumbers_the_placeholders() {
        let mut page = Sql::new(Dialect::Postgres);
        page.push("SELECT r.rid FROM fhir_resource r WHERE r.type = ")
            .bind(Value::text("Patient"))
            .push(" AND r.rid > ")
            .bind(Value::Int(7))
            .limit(11, 0);
        let mut count = Sql::new(Dialect::Postgres);
        count
            .push("SELECT count(*) FROM fhir_resource r WHERE r.type = ")
            .bind(Value::text("Patient"));
        let fused = page_with_resources(&page, Some(&count));
        assert!(
            fused.text.contains("WHERE r.type = $1)"),
            "count first: {}",
            fused.text
        );
        assert!(
            fused
                .text
                .contains("WHERE r.type = $2 AND r.rid > $3 LIMIT $4 OFFSET $5)"),
            "page after it: {}",
            fused.text
        );
        assert_eq!(fused.params.len(), 5);
        assert_eq!(fused.params[0], Value::text("Patient"));
        assert_eq!(fused.params[2], Value::Int(7));
        assert_eq!(fused.params[3], Value::Int(11));
        let alone = page_with_resources(&page, None);
        assert!(
            alone.text.contains("r.rid > $2 LIMIT $3 OFFSET $4)"),
            "{}",
            alone.text
        );
        assert!(alone.text.ends_with("ORDER BY p.n"), "{}", alone.text);
        let loaded = resources_of(&count);
        assert!(
            loaded.text.ends_with("WHERE r.type = $1)"),
            "{}",
            loaded.text
        );
        // two-digit placeholders keep their digits together
        let mut many = Sql::new(Dialect::Postgres);
        many.push("SELECT 1 WHERE 1 IN (")
            .bind_list((0..12).map(Value::Int))
            .push(")");
        let shifted = page_with_resources(&page, Some(&many));
        assert!(shifted.text.contains("$11, $12)"), "{}", shifted.text);
        assert!(shifted.text.contains("r.type = $13"), "{}", shifted.text);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("50%_a\\"), "50\\%\\_a\\\\");
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let req = SearchRequest {
            resource_type: Some("Patient".into()),
            filters: vec![Filter {
                any: vec![Predicate {
                    param: "name".into(),
                    test: Test::String {
                        value: "o'brien; DROP".into(),
                        mode: StringMode::Contains,
                    },
                }],
            }],
            count: 10,
            ..SearchRequest::default()
        };
        let c = compile(Dialect::Postgres, &req, &Crypto::off()).unwrap();
        let page = c.page.unwrap();
        assert!(!page.text.contains("brien"), "{}", page.text);
        assert!(page.text.contains("$3"), "{}", page.text);
        assert_eq!(page.params.len(), 6);
    }
}
