//! Search index rows: what the store keeps for each search parameter of a resource's
//! current version, so that searches are SQL on index tables and never scan resource JSON.
//!
//! The store writes the rows of a resource in the same transaction as the resource and
//! replaces them when the resource changes.

//!
//! [`extract`] evaluates every search parameter of the resource's type (the FHIRPath
//! expressions of the generated definitions, parsed once per type and kept) and converts what
//! they find by parameter type:
//!
//! - string: string and markdown values, HumanName (family, given, prefix, suffix, text) and
//!   Address (line, city, district, state, postalCode, country, text) parts, one row each;
//! - token: Coding; CodeableConcept (a row per coding, whose display falls back to the
//!   concept's text, plus a display-only row for a text no coding row carries); Identifier
//!   (system, value, a row per type coding for `:of-type`, type text as display);
//!   ContactPoint (its value as code, no system, as in the FHIR token table); `code` (with
//!   the code system when the element's required binding draws from one system, e.g.
//!   `Patient.gender`), string, id and uri values as code; booleans as `true`/`false`;
//! - reference: Reference.reference `Type/id` (`_history` dropped) as target type and id;
//!   an absolute URL (or `urn:`) as `url`, plus the target of its `Type/id` tail; a
//!   canonical as `url` as written and, when it has `|version`, a second row with the bare
//!   url (a search without version finds every version); Reference.identifier; `#contained`
//!   references give no row (only their identifier, if any); a resource found inside the
//!   resource (Bundle's `composition`) as its own type and id;
//! - date: date, dateTime and instant by precision ([`date_range`], UTC when no zone);
//!   Period (open ends are `i64::MIN`/`i64::MAX`; an unreadable end skips it); Timing (each
//!   event, else repeat.boundsPeriod);
//! - number: integer and decimal with the range of their precision ([`number_range`]);
//!   decimals go through `serde_json`'s `f64`, so `1.50` is read as `1.5` (the shortest text
//!   of the double gives the precision: 1.45..1.55); a Range as its low..high bounds;
//! - quantity: Quantity and its profiles (Age, Duration, Distance, Count, SimpleQuantity)
//!   with system, code and unit; Money as value with `urn:iso:std:iso:4217|currency`; a
//!   Range as one row from low's lower to high's upper bound (open: `f64::MIN`/`f64::MAX`),
//!   valued and united by low (else high); SampledData gives no row;
//! - uri: uri, url, canonical, oid and uuid values as written;
//! - composite: per node the parameter's expression finds, the components' expressions
//!   evaluated on that node, and a row per combination of their values (at most 64).
//!
//! Some parameters' rows repeat other parameters' rows of the same resource
//! (`Observation.combo-code` is `code` and `component-code` together; `code-value-quantity`
//! pairs the Observation's own `code` and `value-quantity`): [`derivation`] tells which, so a
//! store can leave them out and answer their searches from the rows they repeat.
//! [`extract`] still gives their entries (scope checks match resources against them).
//!
//! Not indexed: `_id` and `_lastUpdated` (the store answers them from the resource row),
//! special parameters (`near`), and parameters without expression (`_text`, `_content`,
//! `_query`). An expression that fails on a resource skips that parameter only
//! ([`Extraction::skipped`]); the write goes on.

mod convert;
mod derived;
mod extract;
mod values;

pub use derived::{Derivation, derivation, deriving_types};
pub use extract::{Extraction, extract, extract_stored, extract_with_skipped};
pub use values::{date_range, normalize, number_range};

/// Why a JSON value could not be indexed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The value is not an object with a `resourceType` string.
    #[error("not a FHIR resource: no resourceType")]
    NotAResource,
    /// `resourceType` names no FHIR R4 resource type.
    #[error("unknown resource type '{0}'")]
    UnknownResourceType(String),
}

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
        /// The HumanName or Address element the text is (`family`, `city`, …), when the
        /// value is part of one: a parameter on that element alone (`address-city`) is
        /// answered from these rows ([`Derivation::Part`]).
        part: Option<&'static str>,
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
