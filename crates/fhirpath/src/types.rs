//! Type knowledge without a model: FHIR primitives and their System types, the data types that
//! can appear as choice suffixes, a few base types, and the `is`/`as`/`ofType` test.

use std::borrow::Cow;

use serde_json::Value;

use crate::ast::TypeSpec;
use crate::item::{Item, Node};
use crate::model::Model;

/// FHIR primitive type → System type.
const PRIMITIVES: [(&str, &str); 20] = [
    ("boolean", "Boolean"),
    ("integer", "Integer"),
    ("positiveInt", "Integer"),
    ("unsignedInt", "Integer"),
    ("integer64", "Integer"),
    ("decimal", "Decimal"),
    ("string", "String"),
    ("code", "String"),
    ("id", "String"),
    ("markdown", "String"),
    ("uri", "String"),
    ("url", "String"),
    ("canonical", "String"),
    ("oid", "String"),
    ("uuid", "String"),
    ("base64Binary", "String"),
    ("xhtml", "String"),
    ("date", "Date"),
    ("dateTime", "DateTime"),
    ("instant", "DateTime"),
];

/// Complex data types that appear as choice-element suffixes (`valueQuantity`).
const CHOICE_COMPLEX: [&str; 39] = [
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
    "MoneyQuantity",
    "SimpleQuantity",
    "Narrative",
    "Extension",
    "Element",
    "BackboneElement",
    "CodeableReference",
    "RatioRange",
];

/// Built-in base types, used when the model has none.
fn builtin_base(name: &str) -> Option<&'static str> {
    Some(match name {
        "code" | "id" | "markdown" => "string",
        "url" | "canonical" | "oid" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        "Age" | "Distance" | "Duration" | "Count" | "MoneyQuantity" | "SimpleQuantity" => {
            "Quantity"
        }
        "Bundle" | "Binary" | "Parameters" | "DomainResource" => "Resource",
        _ => return None,
    })
}

/// The System type of a FHIR primitive type name.
pub(crate) fn system_type_of(fhir_primitive: &str) -> Option<&'static str> {
    PRIMITIVES
        .iter()
        .find(|(f, _)| *f == fhir_primitive)
        .map(|(_, s)| *s)
}

/// The FHIR type named by a choice key suffix (`"Quantity"`, `"String"` → `"string"`,
/// `"DateTime"` → `"dateTime"`), if the suffix is a data type.
pub(crate) fn choice_suffix_type(suffix: &str) -> Option<Cow<'static, str>> {
    let mut chars = suffix.chars();
    let first = chars.next()?.to_ascii_lowercase();
    let rest = chars.as_str();
    // the suffix with its first letter in lower case, compared without building it
    let lowered_is = |name: &str| {
        let mut n = name.chars();
        n.next() == Some(first) && n.as_str() == rest
    };
    if let Some((p, _)) = PRIMITIVES.iter().find(|(p, _)| lowered_is(p)) {
        return Some(Cow::Borrowed(p));
    }
    if lowered_is("time") {
        return Some(Cow::Borrowed("time"));
    }
    CHOICE_COMPLEX
        .iter()
        .find(|c| **c == suffix)
        .map(|c| Cow::Borrowed(*c))
}

/// Whether a name is a FHIR type whose values are JSON primitives.
pub(crate) fn is_primitive_type(name: &str) -> bool {
    name == "time" || system_type_of(name).is_some()
}

/// One name an item answers to, in a namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ns {
    Fhir,
    System,
}

/// Calls `f` with each (namespace, name) the item answers to, until `f` returns true.
fn any_candidate(
    item: &Item<'_>,
    model: Option<&dyn Model>,
    f: &mut dyn FnMut(Ns, &str) -> bool,
) -> bool {
    let mut system_loose = |system: &str| {
        let mut c = system.chars();
        let lowered = c
            .next()
            .map(|first| first.to_ascii_lowercase().to_string() + c.as_str());
        f(Ns::System, system) || lowered.is_some_and(|l| f(Ns::Fhir, &l))
    };
    match item {
        Item::Node(node) => {
            let Some(t) = fhir_type(node) else {
                return match node.value {
                    Value::String(_) => system_loose("String"),
                    Value::Bool(_) => system_loose("Boolean"),
                    Value::Number(n) if n.is_i64() || n.is_u64() => system_loose("Integer"),
                    Value::Number(_) => system_loose("Decimal"),
                    _ => false,
                };
            };
            // Resources (and resolve() placeholders) derive from DomainResource.
            let is_resource =
                node.value.get("resourceType").is_some() || crate::eval::is_placeholder(node.value);
            let mut current: Cow<'_, str> = t;
            for _ in 0..16 {
                let system = system_type_of(&current).or((current == "time").then_some("Time"));
                if f(Ns::Fhir, &current) || system.is_some_and(|s| f(Ns::System, s)) {
                    return true;
                }
                let next = model
                    .and_then(|m| m.base_type(&current))
                    .map(Cow::Owned)
                    .or_else(|| builtin_base(&current).map(Cow::Borrowed))
                    .or_else(|| {
                        (is_resource && current != "Resource" && current != "DomainResource")
                            .then_some(Cow::Borrowed("DomainResource"))
                    });
                match next {
                    Some(n) if n != current => current = n,
                    _ => return false,
                }
            }
            false
        }
        Item::Quantity { .. } => f(Ns::System, "Quantity") || f(Ns::Fhir, "Quantity"),
        other => other.type_name().is_some_and(|t| system_loose(&t)),
    }
}

/// The FHIR type of a node: its recorded type, else its `resourceType`.
fn fhir_type<'n>(node: &'n Node<'_>) -> Option<Cow<'n, str>> {
    if let Some(t) = &node.type_name {
        return Some(Cow::Borrowed(t));
    }
    node.value
        .get("resourceType")
        .and_then(Value::as_str)
        .map(Cow::Borrowed)
}

/// `item is spec`, loosely: FHIR primitives also answer to their System type, System values to
/// the FHIR primitive of the same name, and subtypes to their base types.
pub(crate) fn is_type(item: &Item<'_>, spec: &TypeSpec, model: Option<&dyn Model>) -> bool {
    is_type_named(item, spec.namespace.as_deref(), &spec.name, model)
}

/// [`is_type`] on a namespace and name.
pub(crate) fn is_type_named(
    item: &Item<'_>,
    namespace: Option<&str>,
    name: &str,
    model: Option<&dyn Model>,
) -> bool {
    let want = match namespace {
        Some("FHIR") => Some(Ns::Fhir),
        Some("System") => Some(Ns::System),
        Some(_) => return false,
        None => None,
    };
    any_candidate(item, model, &mut |ns, candidate| {
        candidate == name && want.is_none_or(|w| w == ns)
    })
}

/// A node as a System value when it is a primitive (or a Quantity), for operators and
/// functions that work on values; other items unchanged.
pub(crate) fn to_system<'a>(item: &Item<'a>) -> Item<'a> {
    let Item::Node(node) = item else {
        return item.clone();
    };
    let ty = node.type_name.as_deref();
    let system = ty.and_then(system_type_of).or(match ty {
        Some("time") => Some("Time"),
        _ => None,
    });
    match node.value {
        Value::String(s) => match system {
            Some("Date") => Item::Date(s.clone()),
            Some("DateTime") => Item::DateTime(s.clone()),
            Some("Time") => Item::Time(s.clone()),
            _ => Item::String(s.clone()),
        },
        Value::Bool(b) => Item::Boolean(*b),
        Value::Number(n) => match (system, n.as_i64()) {
            (Some("Decimal"), _) | (_, None) => n.as_f64().map_or(item.clone(), Item::Decimal),
            (_, Some(i)) => Item::Integer(i),
        },
        Value::Object(map) if !map.contains_key("resourceType") => {
            let quantity_typed = matches!(
                ty,
                Some(
                    "Quantity"
                        | "Age"
                        | "Distance"
                        | "Duration"
                        | "Count"
                        | "SimpleQuantity"
                        | "MoneyQuantity"
                )
            );
            let looks_quantity =
                ty.is_none() && (map.contains_key("code") || map.contains_key("unit"));
            match map.get("value").and_then(Value::as_f64) {
                Some(value) if quantity_typed || looks_quantity => Item::Quantity {
                    value,
                    unit: map
                        .get("code")
                        .or_else(|| map.get("unit"))
                        .and_then(Value::as_str)
                        .unwrap_or("1")
                        .to_owned(),
                },
                _ => item.clone(),
            }
        }
        _ => item.clone(),
    }
}
