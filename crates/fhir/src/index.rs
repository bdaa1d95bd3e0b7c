//! Search index rows: what the store keeps for each search parameter of a resource's
//! current version, so that searches are SQL on index tables and never scan resource JSON.
//!
//! The store writes the rows of a resource in the same transaction as the resource and
//! replaces them when the resource changes.

/// One index row: the value `value` of the search parameter `param` (its `code`, e.g.
/// `family`) found in one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The search parameter's code (`name`, `subject`, `_tag`, …).
    pub param: String,
    /// The value.
    pub value: IndexValue,
}

/// A searchable value, by search parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// `string`: `normalized` is lower case with accents and punctuation folded (what the
    /// default and `:contains` searches compare), `exact` is the text as written (`:exact`).
    String {
        /// Folded form (lower case, accents removed).
        normalized: String,
        /// The text as written.
        exact: String,
    },
    /// `token`: a Coding, CodeableConcept coding, Identifier, ContactPoint, code, boolean,
    /// id or string. `display` holds Coding.display / CodeableConcept.text /
    /// Identifier.type.text, folded, for `:text`. `type_system`/`type_code` hold
    /// Identifier.type's coding for `:of-type`.
    Token {
        /// The code system (Identifier.system, Coding.system, ContactPoint.system).
        system: Option<String>,
        /// The code or value.
        code: Option<String>,
        /// Folded display text for `:text`.
        display: Option<String>,
        /// Identifier.type coding system, for `:of-type`.
        type_system: Option<String>,
        /// Identifier.type coding code, for `:of-type`.
        type_code: Option<String>,
    },
    /// `reference`: a Reference (literal and/or logical) or a canonical.
    Reference {
        /// Target resource type of a literal reference (`Patient` of `Patient/123`).
        target_type: Option<String>,
        /// Target id of a literal reference (`123` of `Patient/123`).
        target_id: Option<String>,
        /// The reference as written when it is an absolute URL or canonical (`url`), else
        /// `None`.
        url: Option<String>,
        /// Reference.identifier's system, for `:identifier`.
        identifier_system: Option<String>,
        /// Reference.identifier's value, for `:identifier`.
        identifier_value: Option<String>,
    },
    /// `date`: the instant range the value covers, in milliseconds since the Unix epoch
    /// (UTC), both ends inclusive. `2024` covers the whole year; an open Period end is
    /// `i64::MAX` (or `i64::MIN` for an open start).
    Date {
        /// First millisecond covered.
        low: i64,
        /// Last millisecond covered.
        high: i64,
    },
    /// `number`: the value and the range its precision implies (`2.0` → 1.95..2.05).
    Number {
        /// The value.
        value: f64,
        /// Lower bound of the implied range.
        low: f64,
        /// Upper bound of the implied range.
        high: f64,
    },
    /// `quantity`: value with its implied range, and the unit as system+code and as text.
    Quantity {
        /// Quantity.system.
        system: Option<String>,
        /// Quantity.code.
        code: Option<String>,
        /// Quantity.unit.
        unit: Option<String>,
        /// The value.
        value: f64,
        /// Lower bound of the implied range.
        low: f64,
        /// Upper bound of the implied range.
        high: f64,
    },
    /// `uri`: the URI as written.
    Uri {
        /// The URI.
        value: String,
    },
    /// `composite`: the values of the components, in the parameter's component order, all
    /// taken from the same element.
    Composite {
        /// One value per component (a component with several values gives several
        /// composite rows).
        components: Vec<IndexValue>,
    },
}
