//! A parsed FHIR search: what the REST layer makes of `GET [type]?params` and what the store
//! turns into SQL over the index tables of [`crate::index`].
//!
//! Parameters combine with AND ([`SearchRequest::filters`]); the comma-separated values of
//! one parameter combine with OR ([`Filter::any`]).

use crate::defs::ParamType;

/// A search, already checked against the search parameter definitions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    /// The resource type searched, or `None` for a system-wide search (`GET /?…`).
    pub resource_type: Option<String>,
    /// All of these must match (AND).
    pub filters: Vec<Filter>,
    /// Sort keys, most significant first; ties are broken by the store's insertion order so
    /// pages are stable.
    pub sort: Vec<SortKey>,
    /// Page size (`_count`). `0` asks only for the total.
    pub count: usize,
    /// Matches to skip (the page's start).
    pub offset: usize,
    /// Whether to count all matches (`_total`).
    pub total: TotalMode,
    /// `_include` directives.
    pub include: Vec<Include>,
    /// `_revinclude` directives.
    pub revinclude: Vec<Include>,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalMode {
    /// No total.
    None,
    /// An estimate is enough (the store may count exactly).
    Estimate,
    /// Count exactly (the default).
    #[default]
    Accurate,
}

/// One search parameter occurrence: any of its values may match (OR).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The alternatives.
    pub any: Vec<Predicate>,
}

/// A test of one search parameter against the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The search parameter's code (`name`, `subject`, `_id`, `_lastUpdated`, …). `_id` and
    /// `_lastUpdated` are answered from the resource row itself.
    pub param: String,
    /// What the parameter's index rows must satisfy.
    pub test: Test,
}

/// Comparison prefix of number, date and quantity searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefix {
    /// `eq` (default): the value's range lies within the search range.
    #[default]
    Eq,
    /// `ne`: the value's range does not lie within the search range.
    Ne,
    /// `gt`: the value's range reaches above the search value.
    Gt,
    /// `lt`: the value's range reaches below the search value.
    Lt,
    /// `ge`
    Ge,
    /// `le`
    Le,
    /// `sa`: starts after the search range.
    Sa,
    /// `eb`: ends before the search range.
    Eb,
    /// `ap`: approximately (ranges overlap, widened by 10%).
    Ap,
}

/// How a string parameter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    /// Default: the folded value starts with the folded search text.
    StartsWith,
    /// `:exact`: the value equals the search text exactly (case and accents count).
    Exact,
    /// `:contains`: the folded value contains the folded search text.
    Contains,
}

/// The system part of a token search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// How a uri parameter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    /// Equal.
    Exact,
    /// `:above`: the stored URI is a prefix of the search URI.
    Above,
    /// `:below`: the search URI is a prefix of the stored URI.
    Below,
}

/// What the index rows of a parameter must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `:missing=true` (`missing`: no row for the parameter) or `:missing=false`.
    Missing {
        /// `true` for `:missing=true`.
        missing: bool,
        /// The parameter's type (which index table to look in).
        kind: ParamType,
    },
    /// A string search; `value` is folded for `StartsWith`/`Contains`, as written for
    /// `Exact`.
    String {
        /// The search text.
        value: String,
        /// How to compare.
        mode: StringMode,
    },
    /// A token search: `[system|]code`; `code: None` for `system|`. With `negate`
    /// (`:not`), the resource matches when no row matches.
    Token {
        /// The system part.
        system: TokenSystem,
        /// The code part, `None` for `system|`.
        code: Option<String>,
        /// `:not`.
        negate: bool,
    },
    /// `:text` on a token: the folded display text starts with the folded search text.
    TokenText(String),
    /// `:of-type` on an identifier: `type_system|type_code|value`.
    OfType {
        /// Identifier.type coding system.
        type_system: String,
        /// Identifier.type coding code.
        type_code: String,
        /// Identifier.value.
        value: String,
    },
    /// A literal reference `[type/]id`; `target_type: None` matches any type.
    Reference {
        /// The target type, if given (`Patient/1`, or the `:Patient` modifier).
        target_type: Option<String>,
        /// The target id.
        id: String,
    },
    /// A reference given as an absolute URL or canonical, compared to the stored `url`.
    ReferenceUrl(String),
    /// `:identifier` on a reference: `[system|]value` against Reference.identifier.
    ReferenceIdentifier {
        /// The identifier system, if given.
        system: Option<String>,
        /// The identifier value.
        value: String,
    },
    /// A date search: the search range is `low..=high` (milliseconds since the epoch, UTC),
    /// from the search value's precision.
    Date {
        /// The comparison.
        prefix: Prefix,
        /// First millisecond of the search value.
        low: i64,
        /// Last millisecond of the search value.
        high: i64,
    },
    /// A number search; `low..=high` is the range implied by the search value's precision.
    Number {
        /// The comparison.
        prefix: Prefix,
        /// The search value.
        value: f64,
        /// Lower bound implied by its precision.
        low: f64,
        /// Upper bound implied by its precision.
        high: f64,
    },
    /// A quantity search `[prefix]number|system|code` (or `||code`, compared to the code or
    /// the unit text).
    Quantity {
        /// The comparison.
        prefix: Prefix,
        /// The search value.
        value: f64,
        /// Lower bound implied by its precision.
        low: f64,
        /// Upper bound implied by its precision.
        high: f64,
        /// The unit system, if given.
        system: Option<String>,
        /// The unit code (or unit text), if given.
        code: Option<String>,
    },
    /// A uri search.
    Uri {
        /// The URI.
        value: String,
        /// How to compare.
        mode: UriMode,
    },
    /// A composite search: component tests, in the parameter's component order, that must
    /// all hold for the same composite row.
    Composite(Vec<Test>),
    /// Chaining (`subject:Patient.name=x`): the reference parameter `Predicate::param` points
    /// at a resource of one of `target_types` (any type when empty) that matches `predicate`.
    Chain {
        /// Allowed target types.
        target_types: Vec<String>,
        /// The test on the target.
        predicate: Box<Predicate>,
    },
    /// Reverse chaining (`_has:Observation:patient:code=x`): some `source_type` resource
    /// whose reference parameter `reference_param` points at this resource matches
    /// `predicate`. `Predicate::param` is `_has`.
    Has {
        /// The referring resource type.
        source_type: String,
        /// Its reference parameter that points here.
        reference_param: String,
        /// The test on the referring resource.
        predicate: Box<Predicate>,
    },
}

/// A `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The search parameter (`_id`, `_lastUpdated` or a parameter of the type).
    pub param: String,
    /// `-param`.
    pub descending: bool,
    /// The parameter's type (which index table to sort on: strings by folded text, tokens
    /// by code, dates by start, numbers and quantities by value, references by target).
    pub kind: ParamType,
}

/// An `_include` or `_revinclude` directive: `source_type:param[:target_type]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type whose reference parameter is followed.
    pub source_type: String,
    /// The reference parameter, or `*` for all of the type's reference parameters.
    pub param: String,
    /// Restrict to targets of this type.
    pub target_type: Option<String>,
    /// `:iterate` (also `:recurse`): apply again to what was included.
    pub iterate: bool,
}
