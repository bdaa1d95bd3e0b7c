//! The optional type model a caller (the `fhir` crate) supplies so nodes carry FHIR types.

use std::borrow::Cow;

/// The type of a child element, as the [`Model`] knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildType {
    /// Where to look up this child's own children next: a type name (`"HumanName"`) or, for
    /// backbone elements, the element path (`"Patient.contact"`).
    ///
    /// Borrowed when the model's tables hold the text (no allocation per navigation step).
    pub type_path: Cow<'static, str>,
    /// The FHIR type name (`"HumanName"`, `"string"`, `"BackboneElement"`). For a choice element
    /// the evaluator ignores it and takes the type from the JSON key's suffix.
    pub type_name: Cow<'static, str>,
    /// Whether the element is a choice (`value[x]`): its JSON keys are `value` + a type suffix.
    pub choice: bool,
}

/// Element and type knowledge for typed navigation (`ofType`, `is`, `as`, choice elements).
///
/// Contract:
/// - `child_type(parent, element)` receives the parent node's type path: a resource or data type
///   name (`"Patient"`, `"HumanName"`) or a backbone element path (`"Patient.contact"`), and the
///   element name as written in the expression (`"value"` for `value[x]`). It returns `None` when
///   the element is unknown; the evaluator then falls back to inferring the type from the JSON.
/// - For choice elements return `choice: true`; the evaluator finds the key `element` + type
///   suffix and sets the node type to the suffix (`valueQuantity` → `Quantity`, `valueString` →
///   `string`) and its type path to that type name.
/// - `base_type(name)` returns the parent type of a type (`"Age"` → `"Quantity"`, `"Patient"` →
///   `"DomainResource"`, `"code"` → `"string"`) for `is`/`as`/`ofType` on subtypes. The evaluator
///   has a built-in table for the common cases, used when this returns `None`.
///
/// Implementations must not panic; they are called with whatever names the data and the
/// expression contain.
pub trait Model: Send + Sync {
    /// The type of `element` inside a node whose type path is `parent_type_path`.
    fn child_type(&self, parent_type_path: &str, element: &str) -> Option<ChildType>;

    /// The direct base type of `type_name`, if any.
    fn base_type(&self, type_name: &str) -> Option<String> {
        let _ = type_name;
        None
    }
}
