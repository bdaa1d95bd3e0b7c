//! The evaluator: navigation over FHIR JSON, operators and the evaluation environment.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::ast::{Ast, BinOp, Literal, TypeSpec};
use crate::context::Context;
use crate::error::EvalError;
use crate::functions;
use crate::item::{Item, Node};
use crate::model::Model;
use crate::temporal::Temporal;
use crate::types::{self, choice_suffix_type, is_type, to_system};

/// The value of a primitive that has only an `_element` companion.
pub(crate) static NULL: Value = Value::Null;
/// The value of a `resolve()` placeholder.
pub(crate) static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| Value::Object(Map::new()));

/// Whether a value is the one `resolve()` placeholders share.
pub(crate) fn is_placeholder(value: &Value) -> bool {
    let placeholder: &Value = &EMPTY_OBJECT;
    std::ptr::eq(value, placeholder)
}

/// A collection.
pub(crate) type Items<'a> = Vec<Item<'a>>;
/// A result of evaluation.
pub(crate) type Res<'a> = Result<Items<'a>, EvalError>;

/// Everything constant during one evaluation.
pub(crate) struct Evaluator<'c, 'a> {
    pub ctx: &'c Context<'a>,
    /// `%context`: the value evaluation started on.
    pub context: &'a Value,
    /// `%resource`: the resource containing it.
    pub resource: &'a Value,
}

/// The iteration variables (`$this`, `$index`, `$total`) of the current scope.
#[derive(Clone)]
pub(crate) struct Frame<'a> {
    pub this: Items<'a>,
    pub index: Option<usize>,
    pub total: Option<Items<'a>>,
}

impl<'a> Evaluator<'_, 'a> {
    pub(crate) fn model(&self) -> Option<&dyn Model> {
        self.ctx.model
    }

    pub(crate) fn eval(&self, ast: &Ast, focus: &[Item<'a>], frame: &Frame<'a>) -> Res<'a> {
        match ast {
            Ast::Empty => Ok(Vec::new()),
            Ast::Literal(l) => Ok(vec![literal(l)]),
            Ast::Identifier(name) => Ok(self.term_identifier(name, focus)),
            Ast::Function(name, args) => functions::call(self, name, args, focus, frame),
            Ast::Member(left, name) => {
                let input = self.eval(left, focus, frame)?;
                let mut out = Vec::new();
                for item in &input {
                    self.children_named(item, name, &mut out);
                }
                Ok(out)
            }
            Ast::Call(left, name, args) => {
                let input = self.eval(left, focus, frame)?;
                functions::call(self, name, args, &input, frame)
            }
            Ast::Index(left, index) => {
                let input = self.eval(left, focus, frame)?;
                let index = self.eval(index, &frame.this, frame)?;
                index_into(input, &index)
            }
            Ast::Negate(inner) => negate(&self.eval(inner, focus, frame)?),
            Ast::Binary(op, l, r) => self.binary(*op, l, r, focus, frame),
            Ast::Union(parts) => {
                let mut out = Vec::new();
                for part in parts {
                    let items = self.eval(part, focus, frame)?;
                    union_into(&mut out, items);
                }
                Ok(out)
            }
            Ast::Is(inner, spec) => {
                let v = self.eval(inner, focus, frame)?;
                self.is(&v, spec)
            }
            // `as` filters like ofType(): FHIR's own search expressions apply it to collections.
            Ast::As(inner, spec) => {
                let v = self.eval(inner, focus, frame)?;
                Ok(self.of_type(v, spec))
            }
            Ast::Variable(name) => self.variable(name),
            Ast::This => Ok(frame.this.clone()),
            Ast::IndexVar => Ok(frame
                .index
                .and_then(|i| i64::try_from(i).ok())
                .map(Item::Integer)
                .into_iter()
                .collect()),
            Ast::Total => Ok(frame.total.clone().unwrap_or_default()),
        }
    }

    fn is(&self, v: &[Item<'a>], spec: &TypeSpec) -> Res<'a> {
        if v.len() > 1 {
            return Err(not_singleton("is", v.len()));
        }
        Ok(v.first()
            .map(|i| Item::Boolean(is_type(i, spec, self.model())))
            .into_iter()
            .collect())
    }

    pub(crate) fn of_type(&self, items: Items<'a>, spec: &TypeSpec) -> Items<'a> {
        items
            .into_iter()
            .filter(|i| is_type(i, spec, self.model()))
            .collect()
    }

    fn variable(&self, name: &str) -> Res<'a> {
        if let Some(v) = self.ctx.variables.get(name) {
            return Ok(v.clone());
        }
        Ok(match name {
            "context" => vec![Item::Node(Node::resource(self.context))],
            "resource" | "rootResource" => vec![Item::Node(Node::resource(self.resource))],
            "ucum" => vec![Item::String("http://unitsofmeasure.org".into())],
            "sct" => vec![Item::String("http://snomed.info/sct".into())],
            "loinc" => vec![Item::String("http://loinc.org".into())],
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    vec![Item::String(format!("http://hl7.org/fhir/ValueSet/{vs}"))]
                } else if let Some(ext) = name.strip_prefix("ext-") {
                    vec![Item::String(format!(
                        "http://hl7.org/fhir/StructureDefinition/{ext}"
                    ))]
                } else {
                    return Err(EvalError::UndefinedVariable {
                        name: name.to_owned(),
                    });
                }
            }
        })
    }

    /// An identifier at the start of a path: the focus itself when the name is its type
    /// (`Patient.name`, `Resource.id`), else the focus's children of that name.
    fn term_identifier(&self, name: &str, focus: &[Item<'a>]) -> Items<'a> {
        let mut out = Vec::new();
        let type_like = name.starts_with(|c: char| c.is_ascii_uppercase());
        for item in focus {
            if type_like && types::is_type_named(item, None, name, self.model()) {
                out.push(item.clone());
            } else {
                self.children_named(item, name, &mut out);
            }
        }
        out
    }

    /// Pushes the children called `name` of `item` (arrays flattened, choices followed).
    pub(crate) fn children_named(&self, item: &Item<'a>, name: &str, out: &mut Items<'a>) {
        let Item::Node(node) = item else { return };
        let Value::Object(map) = node.value else {
            // A primitive's id and extensions live in its `_element`.
            if let Some(Value::Object(elem)) = node.primitive_element
                && let Some(v) = elem.get(name)
            {
                push_values(v, None, out, &|_| (None, None));
            }
            return;
        };
        let model_type = match (self.model(), node.type_path.as_deref()) {
            (Some(m), Some(path)) => m.child_type(path, name),
            _ => None,
        };
        let is_choice = model_type.as_ref().is_some_and(|t| t.choice);
        if !is_choice {
            let value = map.get(name);
            let element = underscore_get(map, name);
            if value.is_some() || element.is_some() {
                let typing = |_: &'a Value| match &model_type {
                    Some(t) => (Some(t.type_name.clone()), Some(t.type_path.clone())),
                    None => (None, None),
                };
                push_values(value.unwrap_or(&NULL), element, out, &typing);
                return;
            }
            if model_type.is_some() {
                return;
            }
        }
        // Element names start in lower case; a capitalized name is a type that did not match.
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            return;
        }
        // A choice element: `value` finds `valueQuantity`, typed by the suffix.
        for (key, value) in map {
            let Some(suffix) = key.strip_prefix(name) else {
                continue;
            };
            if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                continue;
            }
            let Some(ty) = choice_suffix_type(suffix) else {
                continue;
            };
            let element = underscore_get(map, key);
            let typing = |_: &'a Value| (Some(ty.clone()), Some(ty.clone()));
            push_values(value, element, out, &typing);
        }
        // `_valueString` without `valueString`.
        for (key, element) in map {
            let Some(suffix) = key.strip_prefix('_').and_then(|k| k.strip_prefix(name)) else {
                continue;
            };
            if map.contains_key(&key[1..]) || !suffix.starts_with(|c: char| c.is_ascii_uppercase())
            {
                continue;
            }
            if let Some(ty) = choice_suffix_type(suffix) {
                let typing = |_: &'a Value| (Some(ty.clone()), Some(ty.clone()));
                push_values(&NULL, Some(element), out, &typing);
            }
        }
    }

    /// All children of a node, in document order (for `children()` / `descendants()`).
    pub(crate) fn all_children(&self, item: &Item<'a>, out: &mut Items<'a>) {
        let Item::Node(node) = item else { return };
        match node.value {
            Value::Object(map) => {
                for key in map.keys() {
                    if key == "resourceType" {
                        continue;
                    }
                    if key
                        .strip_prefix('_')
                        .is_some_and(|plain| map.contains_key(plain))
                    {
                        continue;
                    }
                    let name = key.strip_prefix('_').unwrap_or(key);
                    // With a model, `valueQuantity` is the choice `value`, typed Quantity.
                    let choice = self.choice_prefix(node, name);
                    self.children_named(item, choice.unwrap_or(name), out);
                }
            }
            _ => {
                if let Some(Value::Object(elem)) = node.primitive_element {
                    for v in elem.values() {
                        push_values(v, None, out, &|_| (None, None));
                    }
                }
            }
        }
    }

    /// The choice element a key like `valueQuantity` belongs to, when the model says so.
    fn choice_prefix<'k>(&self, node: &Node<'_>, key: &'k str) -> Option<&'k str> {
        let (model, path) = (self.model()?, node.type_path.as_deref()?);
        key.char_indices()
            .filter(|(i, c)| *i > 0 && c.is_ascii_uppercase())
            .map(|(i, _)| &key[..i])
            .find(|prefix| model.child_type(path, prefix).is_some_and(|t| t.choice))
    }

    fn binary(
        &self,
        op: BinOp,
        l: &Ast,
        r: &Ast,
        focus: &[Item<'a>],
        frame: &Frame<'a>,
    ) -> Res<'a> {
        // Short-circuit where three-valued logic allows.
        if matches!(op, BinOp::And | BinOp::Or | BinOp::Implies) {
            let a = to_bool(&self.eval(l, focus, frame)?, "logical operator")?;
            match (op, a) {
                (BinOp::And, Some(false)) => return Ok(vec![Item::Boolean(false)]),
                (BinOp::Or, Some(true)) | (BinOp::Implies, Some(false)) => {
                    return Ok(vec![Item::Boolean(true)]);
                }
                _ => {}
            }
            let b = to_bool(&self.eval(r, focus, frame)?, "logical operator")?;
            let result = match op {
                BinOp::And => match (a, b) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                BinOp::Or => match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                _ => match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(true), Some(false)) => Some(false),
                    _ => None,
                },
            };
            return Ok(result.map(Item::Boolean).into_iter().collect());
        }
        let a = self.eval(l, focus, frame)?;
        let b = self.eval(r, focus, frame)?;
        binary_values(op, a, b)
    }
}

/// `map["_" + name]` without allocating for usual name lengths.
fn underscore_get<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    let mut buf = [0u8; 64];
    if name.len() < buf.len() {
        buf[0] = b'_';
        buf[1..=name.len()].copy_from_slice(name.as_bytes());
        if let Ok(key) = std::str::from_utf8(&buf[..=name.len()]) {
            return map.get(key);
        }
    }
    map.get(&format!("_{name}"))
}

fn index_into<'a>(input: Items<'a>, index: &[Item<'a>]) -> Res<'a> {
    let i = match singleton_value(index, "indexer")? {
        None => return Ok(Vec::new()),
        Some(Item::Integer(i)) => i,
        Some(other) => {
            return Err(type_error(
                "indexer",
                format!("index {other} is not an integer"),
            ));
        }
    };
    Ok(usize::try_from(i)
        .ok()
        .and_then(|i| input.into_iter().nth(i))
        .into_iter()
        .collect())
}

fn negate<'a>(v: &[Item<'a>]) -> Res<'a> {
    match singleton_value(v, "unary -")? {
        None => Ok(Vec::new()),
        Some(Item::Integer(i)) => Ok(i.checked_neg().map(Item::Integer).into_iter().collect()),
        Some(Item::Decimal(d)) => Ok(vec![Item::Decimal(-d)]),
        Some(Item::Quantity { value, unit }) => Ok(vec![Item::Quantity {
            value: -value,
            unit,
        }]),
        Some(other) => Err(type_error("unary -", format!("cannot negate {other}"))),
    }
}

/// Appends the items of `more` not already in `out` (union semantics).
pub(crate) fn union_into<'a>(out: &mut Items<'a>, more: Items<'a>) {
    for item in more {
        if !contains_item(out, &item) {
            out.push(item);
        }
    }
}

/// Pushes `value` (an array is flattened) as nodes, pairing primitives with their `_element`.
fn push_values<'a>(
    value: &'a Value,
    element: Option<&'a Value>,
    out: &mut Items<'a>,
    typing: &dyn Fn(&'a Value) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>),
) {
    let make = |v: &'a Value, e: Option<&'a Value>| -> Option<Item<'a>> {
        let e = e.filter(|e| e.is_object());
        if v.is_null() && e.is_none() {
            return None;
        }
        if v.get("resourceType").and_then(Value::as_str).is_some() {
            return Some(Item::Node(Node::resource(v)));
        }
        let (type_name, type_path) = typing(v);
        Some(Item::Node(Node {
            value: v,
            type_name,
            type_path,
            primitive_element: e,
        }))
    };
    match (value, element) {
        (Value::Array(values), Some(Value::Array(elements))) => {
            for i in 0..values.len().max(elements.len()) {
                out.extend(make(values.get(i).unwrap_or(&NULL), elements.get(i)));
            }
        }
        (Value::Array(values), _) => {
            out.extend(values.iter().filter_map(|v| make(v, None)));
        }
        (Value::Null, Some(Value::Array(elements))) => {
            out.extend(elements.iter().filter_map(|e| make(&NULL, Some(e))));
        }
        (v, e) => out.extend(make(v, e)),
    }
}

pub(crate) fn literal<'a>(l: &Literal) -> Item<'a> {
    match l {
        Literal::Boolean(b) => Item::Boolean(*b),
        Literal::String(s) => Item::String(s.clone()),
        Literal::Integer(i) => Item::Integer(*i),
        Literal::Decimal(d) => Item::Decimal(*d),
        Literal::Date(d) => Item::Date(d.clone()),
        Literal::DateTime(d) => Item::DateTime(d.clone()),
        Literal::Time(t) => Item::Time(t.clone()),
        Literal::Quantity(v, u) => Item::Quantity {
            value: *v,
            unit: u.clone(),
        },
    }
}

pub(crate) fn type_error(operation: &str, message: String) -> EvalError {
    EvalError::Type {
        operation: operation.to_owned(),
        message,
    }
}

pub(crate) fn not_singleton(operation: &str, count: usize) -> EvalError {
    EvalError::NotSingleton {
        operation: operation.to_owned(),
        count,
    }
}

/// The single item of a collection as a System value (`None` when empty).
pub(crate) fn singleton_value<'a>(
    items: &[Item<'a>],
    operation: &str,
) -> Result<Option<Item<'a>>, EvalError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(to_system(one))),
        _ => Err(not_singleton(operation, items.len())),
    }
}

/// A collection as a Boolean: empty → `None`; one Boolean → it; one other item → `true`.
pub(crate) fn to_bool(items: &[Item<'_>], operation: &str) -> Result<Option<bool>, EvalError> {
    Ok(match singleton_value(items, operation)? {
        None => None,
        Some(Item::Boolean(b)) => Some(b),
        Some(_) => Some(true),
    })
}

fn as_temporal(item: &Item<'_>) -> Option<(Temporal, bool)> {
    match item {
        Item::Date(s) | Item::DateTime(s) | Item::String(s) => {
            Temporal::parse_date_time(s).map(|t| (t, false))
        }
        Item::Time(s) => Temporal::parse_time(s).map(|t| (t, true)),
        _ => None,
    }
}

fn is_temporal(item: &Item<'_>) -> bool {
    matches!(item, Item::Date(_) | Item::DateTime(_) | Item::Time(_))
}

fn number(item: &Item<'_>) -> Option<f64> {
    match item {
        #[allow(clippy::cast_precision_loss)]
        Item::Integer(i) => Some(*i as f64),
        Item::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Orders two System values, `Ok(None)` when the order is unknown (temporal precision).
pub(crate) fn compare(a: &Item<'_>, b: &Item<'_>) -> Result<Option<Ordering>, EvalError> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return Ok(x.partial_cmp(&y));
    }
    match (a, b) {
        (Item::String(x), Item::String(y)) => return Ok(Some(x.cmp(y))),
        (Item::Quantity { value: x, unit: ux }, Item::Quantity { value: y, unit: uy })
            if ux == uy =>
        {
            return Ok(x.partial_cmp(y));
        }
        (Item::Quantity { .. }, Item::Quantity { .. }) => return Ok(None),
        _ => {}
    }
    if is_temporal(a) || is_temporal(b) {
        return Ok(match (as_temporal(a), as_temporal(b)) {
            (Some((x, tx)), Some((y, ty))) if tx == ty => x.compare(&y),
            _ => None,
        });
    }
    Err(type_error(
        "comparison",
        format!("cannot compare {a} with {b}"),
    ))
}

/// `=` on two items: `None` when unknown (temporal precision).
pub(crate) fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    // Fast path for nodes (union and distinct compare many): identical JSON is equal, and two
    // non-temporal strings compare as text, without copying either.
    if let (Item::Node(x), Item::Node(y)) = (a, b) {
        if std::ptr::eq(x.value, y.value) || x.value == y.value {
            return Some(true);
        }
        let temporal = |n: &Node<'_>| {
            matches!(
                n.type_name.as_deref(),
                Some("date" | "dateTime" | "instant" | "time")
            )
        };
        if x.value.is_string() && y.value.is_string() && !temporal(x) && !temporal(y) {
            return Some(false);
        }
    }
    let (a, b) = (to_system(a), to_system(b));
    match (&a, &b) {
        (Item::Node(x), Item::Node(y)) => Some(x.value == y.value),
        (Item::Boolean(x), Item::Boolean(y)) => Some(x == y),
        (Item::Node(_) | Item::Boolean(_), _) | (_, Item::Node(_) | Item::Boolean(_)) => {
            Some(false)
        }
        (Item::Quantity { .. }, Item::Quantity { .. }) => {
            compare(&a, &b).ok().map(|o| o == Some(Ordering::Equal))
        }
        _ if is_temporal(&a) || is_temporal(&b) => match (as_temporal(&a), as_temporal(&b)) {
            (Some((x, tx)), Some((y, ty))) if tx == ty => {
                x.compare(&y).map(|o| o == Ordering::Equal)
            }
            _ => Some(false),
        },
        _ => match compare(&a, &b) {
            Ok(Some(o)) => Some(o == Ordering::Equal),
            Ok(None) => None,
            Err(_) => Some(false),
        },
    }
}

/// `~` on two items.
pub(crate) fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    let (a, b) = (to_system(a), to_system(b));
    if let (Item::String(x), Item::String(y)) = (&a, &b) {
        let norm = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        return norm(x) == norm(y);
    }
    if let (Some(x), Some(y)) = (number(&a), number(&b)) {
        return (x - y).abs() <= 0.5 * 10f64.powi(-precision_of(x).min(precision_of(y)));
    }
    if is_temporal(&a) || is_temporal(&b) {
        return matches!(
            (as_temporal(&a), as_temporal(&b)),
            (Some((x, _)), Some((y, _))) if x.compare(&y) == Some(Ordering::Equal)
        );
    }
    equal(&a, &b).unwrap_or(false)
}

fn precision_of(x: f64) -> i32 {
    let s = format!("{x}");
    s.find('.')
        .map_or(0, |i| i32::try_from(s.len() - i - 1).unwrap_or(0))
}

/// Whether `item` is in `collection` by equality (union and distinct).
pub(crate) fn contains_item(collection: &[Item<'_>], item: &Item<'_>) -> bool {
    collection.iter().any(|c| equal(c, item) == Some(true))
}

fn binary_values<'a>(op: BinOp, a: Items<'a>, b: Items<'a>) -> Res<'a> {
    let boolean = |v: Option<bool>| Ok(v.map(Item::Boolean).into_iter().collect());
    match op {
        BinOp::Union => {
            let mut out = Vec::with_capacity(a.len() + b.len());
            union_into(&mut out, a);
            union_into(&mut out, b);
            Ok(out)
        }
        BinOp::Eq | BinOp::Ne => {
            if a.is_empty() || b.is_empty() {
                return Ok(Vec::new());
            }
            let mut result = Some(a.len() == b.len());
            if a.len() == b.len() {
                for (x, y) in a.iter().zip(&b) {
                    match equal(x, y) {
                        Some(true) => {}
                        Some(false) => {
                            result = Some(false);
                            break;
                        }
                        None => result = None,
                    }
                }
            }
            boolean(if op == BinOp::Ne {
                result.map(|r| !r)
            } else {
                result
            })
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let r = a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| equivalent(x, y)));
            boolean(Some(if op == BinOp::NotEquiv { !r } else { r }))
        }
        BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
            let (Some(x), Some(y)) = (
                singleton_value(&a, "comparison")?,
                singleton_value(&b, "comparison")?,
            ) else {
                return Ok(Vec::new());
            };
            let ord = compare(&x, &y)?;
            boolean(ord.map(|o| match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Gt => o == Ordering::Greater,
                BinOp::Le => o != Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        BinOp::In | BinOp::Contains => {
            let (needle, hay) = if op == BinOp::In { (a, b) } else { (b, a) };
            match needle.as_slice() {
                [] => Ok(Vec::new()),
                [one] => boolean(Some(contains_item(&hay, one))),
                _ => Err(not_singleton(
                    if op == BinOp::In { "in" } else { "contains" },
                    needle.len(),
                )),
            }
        }
        BinOp::Xor => match (to_bool(&a, "xor")?, to_bool(&b, "xor")?) {
            (Some(x), Some(y)) => boolean(Some(x != y)),
            _ => Ok(Vec::new()),
        },
        BinOp::Concat => {
            let text = |items: &[Item<'a>]| -> Result<String, EvalError> {
                Ok(singleton_value(items, "&")?
                    .map(|i| i.to_string())
                    .unwrap_or_default())
            };
            Ok(vec![Item::String(text(&a)? + &text(&b)?)])
        }
        BinOp::And | BinOp::Or | BinOp::Implies => Ok(Vec::new()),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::IntDiv | BinOp::Mod => {
            let name = format!("{op:?}");
            let (Some(x), Some(y)) = (singleton_value(&a, &name)?, singleton_value(&b, &name)?)
            else {
                return Ok(Vec::new());
            };
            arithmetic(op, &x, &y).map(|v| v.into_iter().collect())
        }
    }
}

fn arithmetic<'a>(op: BinOp, x: &Item<'a>, y: &Item<'a>) -> Result<Option<Item<'a>>, EvalError> {
    use Item::{Decimal, Integer, Quantity, String as Str};
    Ok(match (op, x, y) {
        (BinOp::Add, Str(a), Str(b)) => Some(Str(format!("{a}{b}"))),
        (BinOp::Add, Integer(a), Integer(b)) => a.checked_add(*b).map(Integer),
        (BinOp::Sub, Integer(a), Integer(b)) => a.checked_sub(*b).map(Integer),
        (BinOp::Mul, Integer(a), Integer(b)) => a.checked_mul(*b).map(Integer),
        (BinOp::IntDiv, Integer(a), Integer(b)) => a.checked_div(*b).map(Integer),
        (BinOp::Mod, Integer(a), Integer(b)) => a.checked_rem(*b).map(Integer),
        (
            BinOp::Add | BinOp::Sub,
            Quantity { value: a, unit: ua },
            Quantity { value: b, unit: ub },
        ) if ua == ub => Some(Quantity {
            value: if op == BinOp::Add { a + b } else { a - b },
            unit: ua.clone(),
        }),
        (
            BinOp::Add | BinOp::Sub,
            Item::Date(_) | Item::DateTime(_) | Item::Time(_),
            Quantity { value, unit },
        ) => {
            let amount = if op == BinOp::Sub { -value } else { *value };
            let is_time = matches!(x, Item::Time(_));
            as_temporal(x)
                .and_then(|(t, _)| t.add(amount, unit, is_time))
                .map(|t| {
                    let text = t.format(is_time);
                    match x {
                        Item::Date(_) => Item::Date(text),
                        Item::DateTime(_) => Item::DateTime(text),
                        _ => Item::Time(text),
                    }
                })
        }
        (BinOp::Mul | BinOp::Div, Quantity { value: a, unit }, n) if number(n).is_some() => {
            let n = number(n).unwrap_or(1.0);
            if op == BinOp::Div && n == 0.0 {
                None
            } else {
                Some(Quantity {
                    value: if op == BinOp::Mul { a * n } else { a / n },
                    unit: unit.clone(),
                })
            }
        }
        _ => match (number(x), number(y)) {
            (Some(a), Some(b)) => match op {
                BinOp::Add => Some(Decimal(a + b)),
                BinOp::Sub => Some(Decimal(a - b)),
                BinOp::Mul => Some(Decimal(a * b)),
                BinOp::Div => (b != 0.0).then(|| Decimal(a / b)),
                #[allow(clippy::cast_possible_truncation)]
                BinOp::IntDiv => (b != 0.0).then(|| Integer((a / b).trunc() as i64)),
                _ => (b != 0.0).then(|| Decimal(a % b)),
            },
            _ => {
                return Err(type_error(
                    &format!("{op:?}"),
                    format!(
                        "cannot apply to {} and {}",
                        x.type_name().unwrap_or_default(),
                        y.type_name().unwrap_or_default()
                    ),
                ));
            }
        },
    })
}

/// Whether a type name is a FHIR primitive (for `hasValue`, `getValue`).
pub(crate) fn is_primitive_node(node: &Node<'_>) -> bool {
    match &node.type_name {
        Some(t) => types::is_primitive_type(t),
        None => !node.value.is_object() && !node.value.is_array(),
    }
}
