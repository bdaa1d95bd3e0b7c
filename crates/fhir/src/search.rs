//! A parsed FHIR search: what the REST layer makes of `GET [type]?params` and what the store
//! turns into SQL over the index tables of [`crate::index`].
//!
//! Parameters combine with AND ([`SearchRequest::filters`]); the comma-separated values of
//! one parameter combine with OR ([`Filter::any`]).

use crate::defs::ParamType;

mod parse;

pub use parse::{canonical_key, parse};

/// Paging defaults for [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Page size when the search has no `_count`.
    pub default_count: usize,
    /// Largest page size; a larger `_count` is lowered to it.
    pub max_count: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            default_count: 20,
            max_count: 1000,
        }
    }
}

/// Why a search could not be parsed. The texts are written for an OperationOutcome's
/// diagnostics; they quote the request's parameter names and values, so they are answers to
/// the client, not log lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The resource type searched is not a FHIR R4 resource type.
    #[error("unknown resource type '{0}'")]
    UnknownResourceType(String),
    /// No search parameter of that code is defined for the type (or, in a system-wide
    /// search, for all types).
    #[error("unknown search parameter '{param}' for {resource_type}")]
    UnknownParameter {
        /// The type searched, or `all resource types`.
        resource_type: String,
        /// The parameter as sent.
        param: String,
    },
    /// A modifier the parameter's type does not have.
    #[error("unknown modifier ':{modifier}' on search parameter '{param}'")]
    UnknownModifier {
        /// The parameter's code.
        param: String,
        /// The modifier as sent.
        modifier: String,
    },
    /// A parameter name that is malformed or misused (a chain on a non-reference
    /// parameter, a `_has` without its parts, a repeated `_count`).
    #[error("invalid search parameter '{param}': {reason}")]
    InvalidParameter {
        /// The parameter as sent.
        param: String,
        /// What is wrong.
        reason: String,
    },
    /// A value that does not fit the parameter's type or modifier.
    #[error("invalid value '{value}' for search parameter '{param}': {reason}")]
    InvalidValue {
        /// The parameter as sent.
        param: String,
        /// The value (one of the comma-separated values) as sent.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A defined parameter or modifier this server does not implement (`_text`,
    /// `_content`, `near`, `:above` on tokens, …).
    #[error("search parameter '{param}' is not supported: {reason}")]
    Unsupported {
        /// The parameter as sent.
        param: String,
        /// What is not supported.
        reason: String,
    },
}

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
    /// Whether to count all matches (`_total`; [`TotalMode::Auto`] when a parsed search
    /// has none).
    pub total: TotalMode,
    /// `_include` directives.
    pub include: Vec<Include>,
    /// `_revinclude` directives.
    pub revinclude: Vec<Include>,
    /// Parameters that shape the result rather than select it (`_summary`, `_elements`,
    /// `_format`, `_pretty`), as sent, for the REST layer.
    pub result_params: Vec<(String, String)>,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalMode {
    /// No total.
    None,
    /// An estimate is enough (the store may count exactly).
    Estimate,
    /// Count exactly (the default of a request built in code).
    #[default]
    Accurate,
    /// No `_total` parameter: the server decides. The store gives the total when it is
    /// cheap (the page shows the end of the matches, or one filter is counted from its
    /// index) and omits it otherwise; a page without a total is then followed by more
    /// matches.
    Auto,
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
