//! # fhirpath — FHIRPath over FHIR JSON
//!
//! This crate parses [FHIRPath](http://hl7.org/fhirpath/N1/) expressions (the normative N1
//! language plus FHIR's additions: `resolve()`, `extension()`, `hasValue()`, `%resource`, ...)
//! and evaluates them over FHIR resources held as [`serde_json::Value`], without IO. Its main
//! users are search index extraction (the expressions of FHIR's SearchParameters) and
//! validation invariants. [`parse`] turns the text into an [`Expr`], which is reusable and
//! `Send + Sync`; [`Expr::evaluate`] runs it on a resource and returns the resulting
//! collection of [`Item`]s, borrowing nodes from the resource. Errors are values
//! ([`ParseError`], [`EvalError`]); no input makes this crate panic.
//!
//! Types come from the data (choice keys such as `valueQuantity`, `resourceType`) or, when the
//! caller supplies one in the [`Context`], from a [`Model`]. Without a resolver, `resolve()` on a
//! literal reference `Type/id` yields a placeholder node typed `Type`, so
//! `subject.where(resolve() is Patient)` works for indexing without loading the target; `#id`
//! references resolve to the root resource's contained resources.
//!
//! We wrote our own evaluator: the Rust FHIRPath crates we know of either lack FHIR's JSON
//! conventions (choice elements, `_element` companions) or are unmaintained.
//!
//! ```
//! use fhirpath::{parse, Context, Item};
//! use serde_json::json;
//!
//! let patient = json!({
//!     "resourceType": "Patient",
//!     "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
//!     "generalPractitioner": [{"reference": "Practitioner/7"}]
//! });
//! let given = parse("Patient.name.given").unwrap();
//! let items = given.evaluate(&patient, &Context::default()).unwrap();
//! let names: Vec<&str> = items.iter().filter_map(Item::as_str).collect();
//! assert_eq!(names, ["Peter", "James"]);
//!
//! let gp = parse("Patient.generalPractitioner.where(resolve() is Practitioner)").unwrap();
//! assert_eq!(gp.evaluate(&patient, &Context::default()).unwrap().len(), 1);
//! ```
//!
//! ## Semantics worth knowing
//!
//! - A path's first identifier matches the focus when it names the focus's type (`Patient`,
//!   `Resource`, `DomainResource`), else it is a child name. Arrays are flattened, missing
//!   elements skipped; `Observation.value` finds `valueQuantity`, `valueString`, ... and types the
//!   node by the suffix (`Quantity`, `string`, `dateTime`). A primitive's `_element` companion
//!   (`_birthDate`) is kept on the node, so `birthDate.extension(url)` works, and a primitive
//!   with only an `_element` is a node whose value is `null` (`hasValue()` is false).
//! - Types match loosely: FHIR primitives also answer to their System type (`valueString` is
//!   `string` and `String`), System values to the FHIR primitive of the same name, subtypes to
//!   their bases (`Age` is a `Quantity`, every resource a `Resource`). Without a [`Model`] an
//!   object that is neither a resource nor a choice value has no type (`name.ofType(HumanName)`
//!   is empty); with one, every node it knows carries its type and type path.
//! - `as` (operator and function) filters like `ofType()` instead of failing on more than one
//!   item, because FHIR's own search expressions apply it to collections.
//! - `resolve()`: the context's resolver first; then `#id` in the root's `contained`; then, when
//!   `%resource` is a Bundle, the entry with that `fullUrl` or `Type/id`; else a placeholder
//!   node (an empty object) typed by the reference's `Type` (`Type/id`, an absolute URL ending
//!   in `Type/id`, optionally `/_history/v`). Other references (`urn:uuid:` not in a Bundle)
//!   resolve to nothing.
//! - `matches()` must match the whole string (as HAPI's validator does, and as R4's invariants
//!   such as `name.matches('[A-Z]([A-Za-z0-9_]){0,254}')` intend); `matchesFull()` is the same.
//!   Regular expressions use the `regex` crate (linear time, no backreferences or lookaround).
//! - Expressions nest at most 128 levels (each link of a chain counts, a union of any length
//!   counts once), so evaluation's recursion stays well inside a thread's stack.
//!
//! ## Not supported
//!
//! Terminology functions (`memberOf`, `subsumes`, `subsumedBy`) and `conformsTo` return
//! [`EvalError::Unsupported`]. Quantities compare and add only with equal units (no UCUM
//! conversion); dates add calendar durations (`+ 1 month`, `- 2 'd'`) but durations between dates
//! are not computed. Decimals are `f64` (a JSON number keeps its text in the node). Also missing:
//! `type()` reflection, `encode`/`decode`, `lowBoundary`/`highBoundary`, `sort()` and
//! `defineVariable()` from FHIRPath 3.0. `htmlChecks()` always returns true.

mod ast;
mod context;
mod error;
mod eval;
mod functions;
mod item;
mod model;
mod parser;
mod resolve;
mod scalar;
mod temporal;
mod types;

use serde_json::Value;

pub use context::{Context, Resolver};
pub use error::{EvalError, ParseError};
pub use item::{Item, Node};
pub use model::{ChildType, Model};

/// A parsed FHIRPath expression, reusable across evaluations and threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    ast: ast::Ast,
    source: String,
}

/// Parses a FHIRPath expression. Unknown functions and wrong argument counts are parse errors.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    Ok(Expr {
        ast: parser::parse(src)?,
        source: src.to_owned(),
    })
}

impl Expr {
    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression with `resource` as the focus (`%context`, and `%resource`
    /// unless the context sets another). Nodes in the result borrow from `resource` (or from
    /// resources the context's resolver returned).
    pub fn evaluate<'a>(
        &self,
        resource: &'a Value,
        ctx: &Context<'a>,
    ) -> Result<Vec<Item<'a>>, EvalError> {
        self.evaluate_items(&[Item::Node(node_for(resource))], resource, ctx)
    }

    /// Evaluates the expression on an input collection (e.g. the result of another expression)
    /// with `context` as `%context`.
    pub fn evaluate_items<'a>(
        &self,
        input: &[Item<'a>],
        context: &'a Value,
        ctx: &Context<'a>,
    ) -> Result<Vec<Item<'a>>, EvalError> {
        let ev = eval::Evaluator {
            ctx,
            context,
            resource: ctx.resource.unwrap_or(context),
        };
        let frame = eval::Frame {
            this: input.to_vec(),
            index: None,
            total: None,
        };
        ev.eval(&self.ast, input, &frame)
    }

    /// Evaluates the expression as a boolean condition (an invariant): `Ok(None)` when the
    /// result is empty, `Ok(Some(true))` for `true` or a single non-Boolean item.
    pub fn evaluate_bool<'a>(
        &self,
        resource: &'a Value,
        ctx: &Context<'a>,
    ) -> Result<Option<bool>, EvalError> {
        eval::to_bool(&self.evaluate(resource, ctx)?, "condition")
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(src: &str) -> Result<Self, ParseError> {
        parse(src)
    }
}

impl std::fmt::Display for Expr {
    /// The source text, as parsed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The starting node for a value: typed by `resourceType` when it has one.
fn node_for(value: &Value) -> Node<'_> {
    Node::resource(value)
}
