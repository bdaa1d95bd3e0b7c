//! Extraction: the search parameters' FHIRPath expressions, compiled once per resource type,
//! evaluated on a resource, their results turned into [`IndexValue`]s.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use fhirpath::{ChildType, Context, Expr, Item, Model};
use serde_json::Value;

use super::convert;
use super::{IndexEntry, IndexError, IndexValue};
use crate::defs::{self, ParamType, SearchParamDef};

/// A resource's index rows and the parameters skipped because their expression failed on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extraction {
    /// The rows.
    pub entries: Vec<IndexEntry>,
    /// Codes of the parameters whose expression could not be evaluated on this resource (the
    /// write still goes on, without rows for them). No resource content.
    pub skipped: Vec<&'static str>,
}

/// One compiled search parameter of a type.
struct Compiled {
    def: &'static SearchParamDef,
    /// `None` when the expression does not parse (counted as skipped on every resource).
    expr: Option<Expr>,
    /// For composites: each component's type and expression, in order.
    components: Vec<(ParamType, Option<Expr>)>,
    /// Whether its rows only repeat other parameters' rows ([`super::derivation`]): a store
    /// keeps none of them.
    derived: bool,
    /// The resource's elements the expression starts from, when it finds nothing on a
    /// resource that has none of them ([`roots`]); `None`: always evaluated.
    roots: Option<Vec<String>>,
}

/// Functions that give nothing on an empty input whatever their arguments.
const EMPTY_ON_EMPTY: &[&str] = &[
    "where",
    "as",
    "ofType",
    "resolve",
    "first",
    "last",
    "extension",
    "single",
    "distinct",
];

/// The first element of every `|`-separated part of `expression` (on `resource_type`), when
/// each part is a path from the resource whose steps and functions all give nothing on an
/// empty input (`Observation.value.as(Quantity)`, `Observation.subject.where(resolve() is
/// Patient)`); `None` otherwise: an operator or a function such as `exists()` can find a value
/// on a resource without the element (`Patient.deceased.exists() and …` gives `false`).
fn roots(expression: &str, resource_type: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in super::derived::split_top(expression)? {
        // the part's text outside parentheses: the arguments of `where(…)` and the like do
        // not matter on an empty input
        let part = super::derived::unwrap_parens(part);
        let mut top = String::new();
        let mut depth = 0usize;
        for c in part.chars() {
            match c {
                '(' => {
                    if depth == 0 {
                        top.push('(');
                    }
                    depth += 1;
                }
                ')' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        top.push(')');
                    }
                }
                _ if depth == 0 => top.push(c),
                _ => {}
            }
        }
        let mut rest = top.as_str();
        // a cast of the whole part: `Observation.value as Quantity`
        if let Some((path, ty)) = rest.rsplit_once(" as ")
            && ty.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            rest = path;
        }
        let rest = rest.strip_prefix(resource_type)?.strip_prefix('.')?;
        let mut steps = rest.split('.');
        // `extension('url')` on the resource reads its `extension` element
        let root = steps
            .next()
            .map(|r| if r == "extension()" { "extension" } else { r })?;
        if root.is_empty() || !root.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        for step in steps {
            let ok = match step.strip_suffix("()") {
                Some(f) => EMPTY_ON_EMPTY.contains(&f),
                None => !step.is_empty() && step.bytes().all(|b| b.is_ascii_alphanumeric()),
            };
            if !ok {
                return None;
            }
        }
        out.push(root.to_owned());
    }
    Some(out)
}

/// Whether `resource` has an element a path starting at `root` can reach: `root` itself,
/// its primitive extension `_root`, or a choice `root[x]` (`valueQuantity`).
fn has_root(resource: &serde_json::Map<String, Value>, root: &str) -> bool {
    resource.keys().any(|k| {
        let k = k.strip_prefix('_').unwrap_or(k);
        k.strip_prefix(root).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

/// The compiled parameters of every resource type, each type compiled on first use.
fn compiled(resource_type: &str) -> Option<&'static [Compiled]> {
    static TYPES: OnceLock<HashMap<&'static str, OnceLock<Vec<Compiled>>>> = OnceLock::new();
    let types = TYPES.get_or_init(|| {
        defs::resource_types()
            .iter()
            .map(|t| (*t, OnceLock::new()))
            .collect()
    });
    let (ty, cell) = types.get_key_value(resource_type)?;
    Some(cell.get_or_init(|| compile(ty)))
}

/// Rewrites `Resource.x` / `DomainResource.x` (the expressions of the parameters every type
/// shares) to `Type.x`, so evaluation needs no type hierarchy (derivations compare the
/// expressions as extraction evaluates them, so they use it too).
pub(super) fn for_type(expression: &str, resource_type: &str) -> String {
    for base in ["Resource.", "DomainResource."] {
        if let Some(rest) = expression.strip_prefix(base) {
            return format!("{resource_type}.{rest}");
        }
    }
    expression.to_owned()
}

fn compile(resource_type: &str) -> Vec<Compiled> {
    defs::search_params(resource_type)
        .filter(|d| is_indexed(d))
        .map(|def| {
            let components = def
                .components
                .iter()
                .map(|c| {
                    let kind = defs::search_param_by_url(c.definition)
                        .map_or(ParamType::Special, |d| d.kind);
                    (kind, fhirpath::parse(c.expression).ok())
                })
                .collect();
            let expression = for_type(def.expression, resource_type);
            Compiled {
                def,
                expr: fhirpath::parse(&expression).ok(),
                components,
                derived: super::derivation(resource_type, def.code).is_some(),
                roots: roots(&expression, resource_type),
            }
        })
        .collect()
}

/// Whether a parameter gets index rows: not `_id`/`_lastUpdated` (the store answers them
/// from the resource row), not special ones (`near`), not those without an expression.
fn is_indexed(def: &SearchParamDef) -> bool {
    !matches!(def.code, "_id" | "_lastUpdated")
        && def.kind != ParamType::Special
        && !def.expression.is_empty()
}

/// Types nodes from the generated definitions, so conversions know a HumanName from an
/// Address and an Identifier from a ContactPoint without guessing from the JSON.
struct DefsModel;

/// Most answers [`DefsModel`] keeps per thread; past it the cache starts again (element
/// names also come from the data, so the set of questions is not bounded by the definitions).
const CHILD_TYPE_CACHE: usize = 4096;

thread_local! {
    /// `parent type path` NUL `element` → the answer: the same few hundred questions come up
    /// for every resource, and a hash lookup costs less than the definitions' binary searches.
    static CHILD_TYPES: RefCell<HashMap<Box<str>, Option<ChildType>>> =
        RefCell::new(HashMap::new());
}

impl Model for DefsModel {
    fn child_type(&self, parent_type_path: &str, element: &str) -> Option<ChildType> {
        // the key on the stack: a lookup allocates nothing
        let (mut stack, mut heap) = ([0u8; 128], Vec::new());
        let buf = defs::join_bytes(
            &mut stack,
            &mut heap,
            &[parent_type_path.as_bytes(), b"\0", element.as_bytes()],
        );
        let Ok(key) = std::str::from_utf8(buf) else {
            return child_type(parent_type_path, element);
        };
        CHILD_TYPES.with(|cache| {
            if let Some(found) = cache.borrow().get(key) {
                return found.clone();
            }
            let found = child_type(parent_type_path, element);
            let mut cache = cache.borrow_mut();
            if cache.len() >= CHILD_TYPE_CACHE {
                cache.clear();
            }
            cache.insert(Box::from(key), found.clone());
            found
        })
    }
}

/// The type of `element` in a node at `parent_type_path`, from the definitions.
fn child_type(parent_type_path: &str, element: &str) -> Option<ChildType> {
    let type_name = parent_type_path
        .split('.')
        .next()
        .unwrap_or(parent_type_path);
    let (def, choice) = defs::child_element(type_name, parent_type_path, element)?;
    if let Some(target) = def.content_reference {
        return Some(ChildType {
            type_path: Cow::Borrowed(target.trim_start_matches('#')),
            type_name: Cow::Borrowed("BackboneElement"),
            choice: false,
        });
    }
    let first = *def.types.first()?;
    // A backbone element's children, and a bound code's binding (conversions find the
    // code system from it), are looked up by the element's path; a choice's type path is
    // not used (the evaluator types choices by their key's suffix).
    let by_path = matches!(first, "BackboneElement" | "Element")
        || (first == "code" && def.required_binding.is_some());
    Some(ChildType {
        type_path: Cow::Borrowed(if by_path { def.path } else { first }),
        type_name: Cow::Borrowed(first),
        choice,
    })
}

/// The index rows of a resource (see [`extract_with_skipped`]).
pub fn extract(resource: &Value) -> Result<Vec<IndexEntry>, IndexError> {
    extract_with_skipped(resource).map(|e| e.entries)
}

/// The index rows a store keeps of a resource: those of [`extract`] without the rows of
/// derived parameters ([`super::derivation`]), which searches answer from the rows they
/// repeat; their expressions are not evaluated (for an Observation, the `combo-*` unions and
/// the composites of its own code and value).
pub fn extract_stored(resource: &Value) -> Result<Vec<IndexEntry>, IndexError> {
    extract_params(resource, false).map(|e| e.entries)
}

/// The index rows of a resource: for every indexed search parameter of its type, the
/// values its expression finds, converted by parameter type. A parameter whose expression
/// fails on this resource is skipped and named in [`Extraction::skipped`].
pub fn extract_with_skipped(resource: &Value) -> Result<Extraction, IndexError> {
    extract_params(resource, true)
}

/// [`extract_with_skipped`], with or without the derived parameters.
fn extract_params(resource: &Value, derived: bool) -> Result<Extraction, IndexError> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(IndexError::NotAResource)?;
    let params = compiled(resource_type)
        .ok_or_else(|| IndexError::UnknownResourceType(resource_type.to_owned()))?;
    let model = DefsModel;
    let ctx = Context::new().with_model(&model).with_resource(resource);
    let mut out = Extraction::default();
    let mut values = Vec::new();
    let object = resource.as_object();
    for param in params.iter().filter(|p| derived || !p.derived) {
        let Some(expr) = &param.expr else {
            out.skipped.push(param.def.code);
            continue;
        };
        if let (Some(roots), Some(object)) = (&param.roots, object)
            && !roots.iter().any(|r| has_root(object, r))
        {
            continue;
        }
        let Ok(items) = expr.evaluate(resource, &ctx) else {
            out.skipped.push(param.def.code);
            continue;
        };
        values.clear();
        if param.def.kind == ParamType::Composite {
            if !composite(param, &items, resource, &ctx, &mut values) {
                out.skipped.push(param.def.code);
                continue;
            }
        } else {
            for item in &items {
                convert::convert(param.def.kind, item, &mut values);
            }
        }
        for value in values.drain(..) {
            let duplicate = out
                .entries
                .iter()
                .rev()
                .take_while(|e| e.param == param.def.code)
                .any(|e| e.value == value);
            if !duplicate {
                out.entries.push(IndexEntry {
                    param: param.def.code.to_owned(),
                    value,
                });
            }
        }
    }
    Ok(out)
}

/// Most composite rows one element may give (the product of its components' values).
const MAX_COMPOSITE_ROWS: usize = 64;

/// Composite rows: per node of the parameter's expression, the product of its components'
/// values. `false` when a component's expression failed.
fn composite<'a>(
    param: &Compiled,
    items: &[Item<'a>],
    resource: &'a Value,
    ctx: &Context<'a>,
    out: &mut Vec<IndexValue>,
) -> bool {
    for item in items {
        let mut rows: Vec<Vec<IndexValue>> = vec![Vec::new()];
        for (kind, expr) in &param.components {
            let Some(expr) = expr else {
                return false;
            };
            let Ok(found) = expr.evaluate_items(std::slice::from_ref(item), resource, ctx) else {
                return false;
            };
            let mut values = Vec::new();
            for f in &found {
                convert::convert(*kind, f, &mut values);
            }
            if values.is_empty() {
                rows.clear();
                break;
            }
            let mut next = Vec::with_capacity(rows.len() * values.len());
            for row in &rows {
                for v in &values {
                    if next.len() == MAX_COMPOSITE_ROWS {
                        break;
                    }
                    let mut r = row.clone();
                    r.push(v.clone());
                    next.push(r);
                }
            }
            rows = next;
        }
        out.extend(
            rows.into_iter()
                .filter(|r| !r.is_empty())
                .map(|components| IndexValue::Composite { components }),
        );
    }
    true
}

/// A node typed as `type_name`, for tests of the conversions.
#[cfg(test)]
pub(crate) fn typed<'a>(value: &'a Value, type_name: &'a str) -> Item<'a> {
    Item::Node(fhirpath::Node {
        value,
        type_name: Some(type_name.into()),
        type_path: Some(type_name.into()),
        primitive_element: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roots_are_found_for_plain_paths_only() {
        let r = |e: &str, t: &str| roots(e, t);
        let some = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(r("Patient.name", "Patient"), some(&["name"]));
        assert_eq!(
            r(
                "Observation.subject.where(resolve() is Patient)",
                "Observation"
            ),
            some(&["subject"])
        );
        assert_eq!(
            r(
                "(Observation.value as Quantity) | (Observation.value as SampledData)",
                "Observation"
            ),
            some(&["value", "value"])
        );
        assert_eq!(
            r(
                "Patient.address.city | Patient.telecom.where(system='phone')",
                "Patient"
            ),
            some(&["address", "telecom"])
        );
        assert_eq!(
            r("Patient.extension('http://x|y').value", "Patient"),
            some(&["extension"])
        );
        // can find a value on a resource without the element
        assert_eq!(
            r(
                "Patient.deceased.exists() and Patient.deceased != false",
                "Patient"
            ),
            None
        );
        assert_eq!(r("Patient.name.empty()", "Patient"), None);
        assert_eq!(r("Patient.name.count()", "Patient"), None);
        assert_eq!(r("Patient.active | true", "Patient"), None);
        // not a path from the resource
        assert_eq!(r("Observation", "Observation"), None);
        assert_eq!(r("Bundle.entry[0].resource", "Bundle"), None);
        assert_eq!(r("Observation.name", "Patient"), None);
        assert_eq!(r("(Patient.name", "Patient"), None);
    }

    /// What makes skipping sound: an expression with roots finds nothing on a resource
    /// without those elements. Checked by evaluating every such parameter of every type on
    /// a resource that has no element at all.
    #[test]
    fn parameters_with_roots_find_nothing_without_them() {
        let mut with_roots = 0;
        let mut all = 0;
        for ty in defs::resource_types() {
            let resource = json!({ "resourceType": ty });
            let model = DefsModel;
            let ctx = Context::new().with_model(&model).with_resource(&resource);
            for param in compiled(ty).unwrap_or_default() {
                all += 1;
                let (Some(roots), Some(expr)) = (&param.roots, &param.expr) else {
                    continue;
                };
                with_roots += 1;
                assert!(!roots.is_empty(), "{ty}.{}", param.def.code);
                let found = expr
                    .evaluate(&resource, &ctx)
                    .unwrap_or_else(|e| panic!("{ty}.{}: {e}", param.def.code));
                assert!(found.is_empty(), "{ty}.{} found {found:?}", param.def.code);
            }
        }
        // nearly every parameter is a plain path (the rest are always evaluated)
        assert!(with_roots * 10 > all * 9, "{with_roots} of {all}");
        println!("{with_roots} of {all} parameters have roots");
    }

    #[test]
    fn choices_and_primitive_extensions_are_roots() {
        let o = json!({"valueQuantity": {"value": 1}, "_status": {"id": "s"}, "codes": 1});
        let o = o.as_object().unwrap_or_else(|| unreachable!());
        assert!(has_root(o, "value"));
        assert!(has_root(o, "status"));
        assert!(!has_root(o, "code"));
        assert!(!has_root(o, "val"));
        assert!(!has_root(o, "subject"));
    }
}
