//! The values an evaluation works on and returns: [`Item`] and [`Node`].

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// An element of the resource (or of a resolved resource): a borrowed JSON value plus its FHIR
/// type when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// The JSON value. `null` for a primitive that has only an `_element` (extensions, no value),
    /// and an empty object for a reference placeholder from `resolve()` without a resolver.
    pub value: &'a Value,
    /// The FHIR type name when known (`"HumanName"`, `"string"`, `"Patient"`): from a choice
    /// key's suffix, a `resourceType`, the [`Model`](crate::Model), or a `resolve()` placeholder.
    pub type_name: Option<Cow<'a, str>>,
    /// Where the [`Model`](crate::Model) looks up this node's children (`"Patient.contact"`,
    /// `"HumanName"`); set for resources, choice values and nodes typed by the model.
    pub type_path: Option<Cow<'a, str>>,
    /// The primitive's `_element` companion object (`id`, `extension`), when present.
    pub primitive_element: Option<&'a Value>,
}

impl<'a> Node<'a> {
    /// A node with no known type.
    pub fn untyped(value: &'a Value) -> Self {
        Self {
            value,
            type_name: None,
            type_path: None,
            primitive_element: None,
        }
    }

    /// A node for a resource (or any JSON object) typed by its `resourceType`, if any.
    pub fn resource(value: &'a Value) -> Self {
        let rt = value.get("resourceType").and_then(Value::as_str);
        Self {
            value,
            type_name: rt.map(Cow::Borrowed),
            type_path: rt.map(Cow::Borrowed),
            primitive_element: None,
        }
    }
}

/// One item of a FHIRPath collection: a node of the data, or a value computed by the expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// An element of the resource (objects, arrays' items and primitives from the JSON).
    Node(Node<'a>),
    /// System.Boolean
    Boolean(bool),
    /// System.Integer
    Integer(i64),
    /// System.Decimal
    Decimal(f64),
    /// System.String
    String(String),
    /// System.Date, as written (`2020`, `2020-01`, `2020-01-02`).
    Date(String),
    /// System.DateTime, as written without `@` (`2020-01-02T10:00:00Z`).
    DateTime(String),
    /// System.Time, as written without `@T` (`10:00`, `10:00:00.5`).
    Time(String),
    /// System.Quantity: a value and a UCUM unit or calendar duration keyword.
    Quantity {
        /// The numeric value.
        value: f64,
        /// The unit (`"mg"`, `"days"`).
        unit: String,
    },
}

impl<'a> Item<'a> {
    /// The node, if this item is one.
    pub fn as_node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The JSON value of a node item.
    pub fn as_json(&self) -> Option<&'a Value> {
        match self {
            Item::Node(n) => Some(n.value),
            _ => None,
        }
    }

    /// The text of a string item, or of a node holding a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s),
            Item::Node(n) => n.value.as_str(),
            _ => None,
        }
    }

    /// The item's type name: the node's FHIR type when known, else the System type name
    /// (`"Boolean"`, `"String"`, ...), or `None` for an untyped JSON object.
    pub fn type_name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(match self {
            Item::Node(n) => {
                if let Some(t) = &n.type_name {
                    return Some(Cow::Borrowed(t));
                }
                match n.value {
                    Value::String(_) => "String",
                    Value::Bool(_) => "Boolean",
                    Value::Number(x) if x.is_i64() => "Integer",
                    Value::Number(_) => "Decimal",
                    _ => return None,
                }
            }
            Item::Boolean(_) => "Boolean",
            Item::Integer(_) => "Integer",
            Item::Decimal(_) => "Decimal",
            Item::String(_) => "String",
            Item::Date(_) => "Date",
            Item::DateTime(_) => "DateTime",
            Item::Time(_) => "Time",
            Item::Quantity { .. } => "Quantity",
        }))
    }
}

impl fmt::Display for Item<'_> {
    /// The item as FHIRPath `toString()` would render it; nodes of objects render as JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Node(n) => match n.value {
                Value::String(s) => f.write_str(s),
                other => write!(f, "{other}"),
            },
            Item::Boolean(b) => write!(f, "{b}"),
            Item::Integer(i) => write!(f, "{i}"),
            Item::Decimal(d) => write!(f, "{d}"),
            Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => f.write_str(s),
            Item::Quantity { value, unit } => write!(f, "{value} '{unit}'"),
        }
    }
}
