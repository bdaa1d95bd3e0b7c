//! Structural validation of FHIR R4 resources in JSON against the generated definitions.
//!
//! [`validate`] checks what the base specification says about a resource's shape, without a
//! terminology server or FHIRPath invariants:
//!
//! - `resourceType` is present and names a concrete resource type; contained resources, Bundle
//!   entries and other resource-typed elements are validated the same way;
//! - every property is an element of its type (choice elements as `valueQuantity`, primitive
//!   extensions as `_birthDate`), so unknown properties are errors;
//! - cardinality: required elements are present, repeating elements are JSON arrays and single
//!   ones are not, arrays do not exceed the maximum;
//! - FHIR JSON rules: no `null`, empty objects, empty arrays or empty strings;
//! - primitive formats (the regular expressions of the definitions, checked by hand-written
//!   matchers, plus calendar checks for dates);
//! - `Reference.reference`: a relative `Type/id` with a known type, allowed by the element's
//!   target profiles, and a valid id; `#id` naming a contained resource; an absolute URL;
//!   `urn:uuid:` or `urn:oid:`; or a conditional `Type?query` (resolved by transactions);
//! - required bindings whose value set the definitions expand (see
//!   [`crate::defs::required_codes`]): a `code` must be in the value set; a `Coding` whose
//!   system is one of the value set's systems must have a code of the set, and a `Coding` of
//!   another system is an error; a `CodeableConcept` must have at least one coding in the set
//!   when it has codings of the value set's systems (codings of other systems alone, or only
//!   `text`, are accepted: FHIR lets a CodeableConcept carry translations, and a server cannot
//!   tell a text-only concept is wrong).
//!
//! Issues carry the FHIR issue type ([`IssueCode`]) and a FHIRPath-like location such as
//! `Patient.name[0].family` (nested resources continue their container's path:
//! `Bundle.entry[0].resource.subject`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::defs::{self, ElementDef, TypeKind};

/// How bad an issue is (OperationOutcome.issue.severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `fatal`: the content could not be processed at all.
    Fatal,
    /// `error`: the content is invalid.
    Error,
    /// `warning`: acceptable but questionable.
    Warning,
    /// `information`.
    Information,
}

impl Severity {
    /// The FHIR code (`error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// The FHIR issue type of an issue (OperationOutcome.issue.code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    /// `structure`: the JSON does not have the shape of the type (unknown element, array
    /// where a single value belongs, `null`, empty object).
    Structure,
    /// `required`: a required element is missing.
    Required,
    /// `value`: a primitive value has the wrong JSON type or format.
    Value,
    /// `code-invalid`: a code is not in the value set of a required binding.
    CodeInvalid,
    /// `invalid`: other rule violations (reference to a type the element does not allow,
    /// too many repetitions, several choices of one element).
    Invalid,
    /// `not-supported`: the resource type is unknown.
    NotSupported,
    /// `too-costly`: the content nests deeper than the validator follows.
    TooCostly,
}

impl IssueCode {
    /// The FHIR code (`code-invalid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::CodeInvalid => "code-invalid",
            Self::Invalid => "invalid",
            Self::NotSupported => "not-supported",
            Self::TooCostly => "too-costly",
        }
    }
}

/// One problem found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// The FHIR issue type.
    pub code: IssueCode,
    /// Where: a FHIRPath-like location (`Patient.name[0].family`).
    pub path: String,
    /// What is wrong, for people; starts with the path.
    pub message: String,
}

/// Deepest nesting of JSON objects followed; deeper content is one `too-costly` issue.
const MAX_DEPTH: usize = 64;

/// Validates a resource in FHIR JSON; `Err` holds every issue found, in document order.
pub fn validate(resource: &Value) -> Result<(), Vec<Issue>> {
    let mut v = Validator::default();
    v.resource(resource, "", None, 0, false);
    if v.issues.is_empty() {
        Ok(())
    } else {
        Err(v.issues)
    }
}

/// The state of one validation.
#[derive(Default)]
struct Validator {
    issues: Vec<Issue>,
    /// For each resource being validated (innermost last), the ids of its contained resources;
    /// a contained resource shares its container's.
    contained: Vec<BTreeSet<String>>,
}

/// Where an element's definition lives: the type whose table holds it and the path there.
#[derive(Clone, Copy)]
struct Node {
    type_name: &'static str,
    def_path: &'static str,
}

impl Validator {
    fn issue(&mut self, code: IssueCode, path: &str, message: impl std::fmt::Display) {
        self.issues.push(Issue {
            severity: Severity::Error,
            code,
            path: path.to_owned(),
            message: format!("{path}: {message}"),
        });
    }

    /// A resource at `loc` (empty at the root). `expected` is the type the element allows
    /// (`None` for any resource).
    fn resource(
        &mut self,
        value: &Value,
        loc: &str,
        expected: Option<&str>,
        depth: usize,
        contained: bool,
    ) {
        let Some(obj) = value.as_object() else {
            let at = if loc.is_empty() { "(root)" } else { loc };
            self.issue(IssueCode::Structure, at, "a resource must be a JSON object");
            return;
        };
        let Some(rt) = obj.get("resourceType") else {
            let at = if loc.is_empty() { "(root)" } else { loc };
            self.issue(IssueCode::Required, at, "resourceType is missing");
            return;
        };
        let Some(rt) = rt.as_str() else {
            let at = if loc.is_empty() { "(root)" } else { loc };
            self.issue(IssueCode::Structure, at, "resourceType must be a string");
            return;
        };
        let Some(def) = defs::type_def(rt).filter(|_| defs::is_resource_type(rt)) else {
            let at = if loc.is_empty() { "(root)" } else { loc };
            self.issue(
                IssueCode::NotSupported,
                at,
                format_args!("{rt:?} is not a known FHIR R4 resource type"),
            );
            return;
        };
        if let Some(expected) = expected
            && expected != rt
        {
            self.issue(
                IssueCode::Invalid,
                loc,
                format_args!("a {expected} is expected here, not a {rt}"),
            );
        }
        let loc = if loc.is_empty() {
            rt.to_owned()
        } else {
            loc.to_owned()
        };
        if contained && obj.contains_key("contained") {
            self.issue(
                IssueCode::Invalid,
                &format!("{loc}.contained"),
                "a contained resource must not contain resources",
            );
        }
        if !contained {
            let ids = obj
                .get("contained")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect();
            self.contained.push(ids);
        }
        let node = Node {
            type_name: def.name,
            def_path: def.name,
        };
        self.object(obj, node, &loc, true, depth + 1);
        if !contained {
            self.contained.pop();
        }
    }

    /// The properties of a JSON object against the children of `node`.
    fn object(
        &mut self,
        obj: &Map<String, Value>,
        node: Node,
        loc: &str,
        is_resource: bool,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.issue(
                IssueCode::TooCostly,
                loc,
                "the content nests too deeply to validate",
            );
            return;
        }
        if obj.is_empty() {
            self.issue(
                IssueCode::Structure,
                loc,
                "an empty object is not allowed in FHIR JSON",
            );
            return;
        }
        let kids: &[Kid] = defs::named_children(node.type_name, node.def_path);
        let mut seen_choice: Vec<(&str, &str)> = Vec::new();
        // the elements present (by a value or by an `_element`), for the minimum check
        let mut present: Vec<&'static str> = Vec::new();
        // one buffer for the location of every property, one for `_key` lookups
        let mut here = String::with_capacity(loc.len() + 32);
        here.push_str(loc);
        here.push('.');
        let stem = here.len();
        let underscored = obj.keys().any(|k| k.starts_with('_'));
        let mut ext_key = String::new();
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            here.truncate(stem);
            here.push_str(key);
            if let Some(base) = key.strip_prefix('_') {
                if let Some((elem, _)) = find_element(kids, base) {
                    present.push(elem.path);
                }
                self.primitive_extension(obj, base, value, kids, node, &here, depth);
                continue;
            }
            let Some((elem, ty)) = find_element(kids, key) else {
                self.issue(
                    IssueCode::Structure,
                    &here,
                    format_args!("unknown element {key:?} in {}", node.def_path),
                );
                continue;
            };
            present.push(elem.path);
            if elem.choice {
                if let Some((_, other)) = seen_choice.iter().find(|(p, _)| *p == elem.path) {
                    self.issue(
                        IssueCode::Invalid,
                        &here,
                        format_args!("only one of the choices of {} may be present; {other:?} is present too", elem.path),
                    );
                }
                seen_choice.push((elem.path, key));
            }
            let ext = if underscored {
                ext_key.clear();
                ext_key.push('_');
                ext_key.push_str(key);
                obj.get(&ext_key)
            } else {
                None
            };
            self.element(value, ext, elem, ty, node, &here, depth);
        }
        for (elem, name) in kids.iter().filter(|(e, _)| e.min > 0) {
            if !present.contains(&elem.path) {
                self.issue(
                    IssueCode::Required,
                    &format!("{loc}.{name}"),
                    format_args!("{} is required (minimum {})", elem.path, elem.min),
                );
            }
        }
    }

    /// One property's value (a single value or an array) against its element.
    #[allow(clippy::too_many_arguments)]
    fn element(
        &mut self,
        value: &Value,
        ext: Option<&Value>,
        elem: &'static ElementDef,
        ty: &'static str,
        node: Node,
        loc: &str,
        depth: usize,
    ) {
        if elem.is_array() {
            let Some(items) = value.as_array() else {
                self.issue(
                    IssueCode::Structure,
                    loc,
                    format_args!("{} repeats, so it must be a JSON array", elem.path),
                );
                return;
            };
            if items.is_empty() {
                self.issue(
                    IssueCode::Structure,
                    loc,
                    "an empty array is not allowed in FHIR JSON",
                );
                return;
            }
            if let Some(max) = elem.max
                && items.len() > max as usize
            {
                self.issue(
                    IssueCode::Invalid,
                    loc,
                    format_args!("{} allows at most {max}, found {}", elem.path, items.len()),
                );
            }
            let exts = ext.and_then(Value::as_array);
            let mut here = String::with_capacity(loc.len() + 8);
            for (i, item) in items.iter().enumerate() {
                here.clear();
                let _ = write!(here, "{loc}[{i}]");
                let has_ext = exts.and_then(|e| e.get(i)).is_some_and(|e| !e.is_null());
                if item.is_null() && has_ext && is_primitive(ty) {
                    continue; // the value is only in `_name`
                }
                self.single(item, elem, ty, node, &here, depth);
            }
        } else if value.is_array() {
            self.issue(
                IssueCode::Structure,
                loc,
                format_args!("{} does not repeat, so it must not be an array", elem.path),
            );
        } else {
            self.single(value, elem, ty, node, loc, depth);
        }
    }

    /// One value of an element, of type `ty`.
    fn single(
        &mut self,
        value: &Value,
        elem: &'static ElementDef,
        ty: &'static str,
        node: Node,
        loc: &str,
        depth: usize,
    ) {
        if value.is_null() {
            self.issue(
                IssueCode::Structure,
                loc,
                "null is not allowed in FHIR JSON",
            );
            return;
        }
        // An element defined by another (Questionnaire.item.item) has that one's children.
        if let Some(target) = elem.content_reference {
            let Some(obj) = self.expect_object(value, loc) else {
                return;
            };
            let inner = Node {
                type_name: node.type_name,
                def_path: target,
            };
            self.object(obj, inner, loc, false, depth + 1);
            return;
        }
        if matches!(ty, "BackboneElement" | "Element")
            && !defs::named_children(node.type_name, elem.path).is_empty()
        {
            let Some(obj) = self.expect_object(value, loc) else {
                return;
            };
            let inner = Node {
                type_name: node.type_name,
                def_path: elem.path,
            };
            self.object(obj, inner, loc, false, depth + 1);
            return;
        }
        let Some(def) = defs::type_def(ty) else {
            return; // not in the tables: nothing to check against
        };
        match def.kind {
            TypeKind::Primitive => {
                if let Some(text) = self.primitive(value, ty, loc) {
                    self.code_binding(text, elem, loc);
                }
            }
            TypeKind::Resource => {
                let expected = (!def.is_abstract).then_some(def.name);
                let contained = elem.path.ends_with(".contained");
                self.resource(value, loc, expected, depth, contained);
            }
            TypeKind::Complex => {
                let Some(obj) = self.expect_object(value, loc) else {
                    return;
                };
                let inner = Node {
                    type_name: def.name,
                    def_path: def.name,
                };
                self.object(obj, inner, loc, false, depth + 1);
                match ty {
                    "Reference" => self.reference(obj, elem, loc),
                    "Coding" => self.coding_binding(obj, elem, loc),
                    "CodeableConcept" => self.concept_binding(obj, elem, loc),
                    _ => {}
                }
            }
        }
    }

    fn expect_object<'v>(&mut self, value: &'v Value, loc: &str) -> Option<&'v Map<String, Value>> {
        let obj = value.as_object();
        if obj.is_none() {
            self.issue(IssueCode::Structure, loc, "must be a JSON object");
        }
        obj
    }

    /// `_name`: the id and extensions of a primitive element (an object, or an array aligned
    /// with the values).
    #[allow(clippy::too_many_arguments)]
    fn primitive_extension(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        value: &Value,
        kids: &[Kid],
        node: Node,
        loc: &str,
        depth: usize,
    ) {
        let Some((elem, _)) = find_element(kids, base).filter(|(_, ty)| is_primitive(ty)) else {
            self.issue(
                IssueCode::Structure,
                loc,
                format_args!(
                    "unknown element \"_{base}\" in {} (only primitive elements have one)",
                    node.def_path
                ),
            );
            return;
        };
        let element_node = Node {
            type_name: "Element",
            def_path: "Element",
        };
        if elem.is_array() {
            let Some(items) = value.as_array() else {
                self.issue(
                    IssueCode::Structure,
                    loc,
                    format_args!("{} repeats, so \"_{base}\" must be a JSON array", elem.path),
                );
                return;
            };
            if let Some(values) = obj.get(base).and_then(Value::as_array)
                && values.len() != items.len()
            {
                self.issue(
                    IssueCode::Structure,
                    loc,
                    format_args!("\"_{base}\" must have as many items as \"{base}\""),
                );
            }
            if items.is_empty() || items.iter().all(Value::is_null) {
                self.issue(IssueCode::Structure, loc, "must not be empty or only nulls");
                return;
            }
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    let value_there = obj
                        .get(base)
                        .and_then(Value::as_array)
                        .and_then(|v| v.get(i))
                        .is_some_and(|v| !v.is_null());
                    if !value_there {
                        self.issue(
                            IssueCode::Structure,
                            &format!("{loc}[{i}]"),
                            "a value and its extensions cannot both be null",
                        );
                    }
                    continue;
                }
                let here = format!("{loc}[{i}]");
                if let Some(o) = self.expect_object(item, &here) {
                    self.object(o, element_node, &here, false, depth + 1);
                }
            }
        } else if let Some(o) = self.expect_object(value, loc) {
            self.object(o, element_node, loc, false, depth + 1);
        }
    }

    /// Checks a primitive value; returns its text when it is a string (for bindings).
    fn primitive<'v>(&mut self, value: &'v Value, ty: &str, loc: &str) -> Option<&'v str> {
        let problem = match ty {
            "boolean" => (!value.is_boolean()).then_some("must be a JSON boolean"),
            "integer" => value
                .as_i64()
                .is_none_or(|n| i32::try_from(n).is_err())
                .then_some("must be a JSON integer (32 bits)"),
            "positiveInt" => value
                .as_i64()
                .is_none_or(|n| !(1..=i64::from(i32::MAX)).contains(&n))
                .then_some("must be a JSON integer of at least 1"),
            "unsignedInt" => value
                .as_i64()
                .is_none_or(|n| !(0..=i64::from(i32::MAX)).contains(&n))
                .then_some("must be a JSON integer of at least 0"),
            "decimal" => (!value.is_number()).then_some("must be a JSON number"),
            _ => None,
        };
        if let Some(p) = problem {
            self.issue(IssueCode::Value, loc, format_args!("{ty} {p}, not {value}"));
            return None;
        }
        if matches!(
            ty,
            "boolean" | "integer" | "positiveInt" | "unsignedInt" | "decimal"
        ) {
            return None;
        }
        let Some(text) = value.as_str() else {
            self.issue(
                IssueCode::Value,
                loc,
                format_args!("{ty} must be a JSON string, not {value}"),
            );
            return None;
        };
        if text.is_empty() {
            self.issue(
                IssueCode::Value,
                loc,
                "an empty string is not allowed in FHIR JSON",
            );
            return None;
        }
        if !primitive_format_ok(ty, text) {
            self.issue(
                IssueCode::Value,
                loc,
                format_args!("{text:?} is not a valid {ty}"),
            );
            return None;
        }
        Some(text)
    }

    /// A required binding on a `code` (or other string-valued) element.
    fn code_binding(&mut self, code: &str, elem: &ElementDef, loc: &str) {
        let Some(url) = elem.required_binding else {
            return;
        };
        let Some(codes) = defs::required_codes(url) else {
            return;
        };
        if codes.binary_search(&code).is_err() {
            self.issue(
                IssueCode::CodeInvalid,
                loc,
                format_args!("{code:?} is not in the required value set {url}"),
            );
        }
    }

    fn coding_binding(&mut self, obj: &Map<String, Value>, elem: &ElementDef, loc: &str) {
        let Some(vs) = elem.required_binding.and_then(defs::required_value_set) else {
            return;
        };
        let Some(codes) = vs.codes else {
            return;
        };
        let system = obj.get("system").and_then(Value::as_str);
        let code = obj.get("code").and_then(Value::as_str);
        if let Some(system) = system
            && !vs.systems.contains(&system)
        {
            self.issue(
                IssueCode::CodeInvalid,
                loc,
                format_args!(
                    "system {system:?} is not in the required value set {}",
                    vs.url
                ),
            );
            return;
        }
        if let Some(code) = code
            && codes.binary_search(&code).is_err()
        {
            self.issue(
                IssueCode::CodeInvalid,
                &format!("{loc}.code"),
                format_args!("{code:?} is not in the required value set {}", vs.url),
            );
        }
    }

    fn concept_binding(&mut self, obj: &Map<String, Value>, elem: &ElementDef, loc: &str) {
        let Some(vs) = elem.required_binding.and_then(defs::required_value_set) else {
            return;
        };
        let Some(codes) = vs.codes else {
            return;
        };
        let codings: Vec<&Map<String, Value>> = obj
            .get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .collect();
        let of_set: Vec<&Map<String, Value>> = codings
            .iter()
            .copied()
            .filter(|c| {
                c.get("system")
                    .and_then(Value::as_str)
                    .is_some_and(|s| vs.systems.contains(&s))
            })
            .collect();
        if of_set.is_empty() {
            return;
        }
        let valid = of_set.iter().any(|c| {
            c.get("code")
                .and_then(Value::as_str)
                .is_some_and(|code| codes.binary_search(&code).is_ok())
        });
        if !valid {
            let found: Vec<&str> = of_set
                .iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str))
                .collect();
            self.issue(
                IssueCode::CodeInvalid,
                loc,
                format_args!(
                    "no coding is in the required value set {} (codes {found:?})",
                    vs.url
                ),
            );
        }
    }

    /// `Reference.reference`: its form, and for relative references the target type.
    fn reference(&mut self, obj: &Map<String, Value>, elem: &ElementDef, loc: &str) {
        let Some(reference) = obj.get("reference").and_then(Value::as_str) else {
            return;
        };
        let here = format!("{loc}.reference");
        if let Some(id) = reference.strip_prefix('#') {
            let known = id.is_empty() || self.contained.last().is_some_and(|ids| ids.contains(id));
            if !known {
                self.issue(
                    IssueCode::Invalid,
                    &here,
                    format_args!("{reference:?} names no contained resource"),
                );
            }
            return;
        }
        if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
            if !is_uuid_body(uuid) {
                self.issue(
                    IssueCode::Value,
                    &here,
                    format_args!("{reference:?} is not a valid urn:uuid"),
                );
            }
            return;
        }
        if reference.starts_with("urn:oid:") {
            if !is_oid(reference) {
                self.issue(
                    IssueCode::Value,
                    &here,
                    format_args!("{reference:?} is not a valid urn:oid"),
                );
            }
            return;
        }
        if is_absolute_url(reference) {
            if reference.chars().any(char::is_whitespace) {
                self.issue(
                    IssueCode::Value,
                    &here,
                    format_args!("{reference:?} is not a valid URL"),
                );
            }
            return;
        }
        let (target, rest) = match reference.split_once(['/', '?']) {
            Some((t, _)) if reference.as_bytes().get(t.len()) == Some(&b'?') => (t, None),
            Some((t, rest)) => (t, Some(rest)),
            None => (reference, Some("")),
        };
        if !defs::is_resource_type(target) {
            self.issue(
                IssueCode::Value,
                &here,
                format_args!("{reference:?} is not a reference (Type/id with a known resource type, #id, an absolute URL or urn:uuid:)"),
            );
            return;
        }
        if let Some(rest) = rest {
            let mut parts = rest.split('/');
            let id = parts.next().unwrap_or("");
            let history_ok = match (parts.next(), parts.next(), parts.next()) {
                (None, _, _) => true,
                (Some("_history"), Some(v), None) => is_id(v),
                _ => false,
            };
            if !is_id(id) || !history_ok {
                self.issue(
                    IssueCode::Value,
                    &here,
                    format_args!("{reference:?} is not Type/id with a valid id"),
                );
                return;
            }
        }
        let targets = elem.target_profiles;
        if !targets.is_empty() && !targets.contains(&"Resource") && !targets.contains(&target) {
            self.issue(
                IssueCode::Invalid,
                &here,
                format_args!(
                    "{} may refer to {}, not {target}",
                    elem.path,
                    targets.join(", ")
                ),
            );
        }
    }
}

/// A child element of a node and its name (the last part of its path, `value[x]` for a choice).
type Kid = (&'static ElementDef, &'static str);

/// The element of `kids` a JSON property names, with the type it has there (the chosen type
/// of a choice element).
fn find_element(kids: &[Kid], key: &str) -> Option<(&'static ElementDef, &'static str)> {
    for &(e, name) in kids {
        if let Some(stem) = name.strip_suffix("[x]") {
            let Some(suffix) = key.strip_prefix(stem) else {
                continue;
            };
            if let Some(t) = e.types.iter().find(|t| type_suffix_is(t, suffix)) {
                return Some((e, t));
            }
        } else if name == key {
            return Some((e, e.types.first().copied().unwrap_or("")));
        }
    }
    None
}

/// Whether `suffix` is the type name as a choice suffix (`dateTime` → `DateTime`).
fn type_suffix_is(ty: &str, suffix: &str) -> bool {
    let mut t = ty.chars();
    let mut s = suffix.chars();
    match (t.next(), s.next()) {
        (Some(a), Some(b)) => a.to_ascii_uppercase() == b && t.as_str() == s.as_str(),
        _ => false,
    }
}

fn is_primitive(ty: &str) -> bool {
    defs::type_def(ty).is_some_and(|d| d.kind == TypeKind::Primitive)
}

/// Whether a non-empty string is a valid value of a string-valued primitive type.
fn primitive_format_ok(ty: &str, s: &str) -> bool {
    match ty {
        "id" => is_id(s),
        "code" => is_code(s),
        "uri" | "url" | "canonical" => !s.chars().any(char::is_whitespace),
        "oid" => is_oid(s),
        "uuid" => s.strip_prefix("urn:uuid:").is_some_and(is_uuid_body),
        "base64Binary" => is_base64(s),
        "date" => is_date(s),
        "dateTime" => is_date_time(s, false),
        "instant" => is_date_time(s, true),
        "time" => is_time(s),
        // string, markdown, xhtml: any non-empty text.
        _ => true,
    }
}

/// `[A-Za-z0-9\-\.]{1,64}`
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `[^\s]+(\s[^\s]+)*`: no leading, trailing or doubled whitespace.
fn is_code(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s
            .chars()
            .zip(s.chars().skip(1))
            .any(|(a, b)| a.is_whitespace() && b.is_whitespace())
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
fn is_oid(s: &str) -> bool {
    let Some(body) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut parts = body.split('.');
    let first_ok = matches!(parts.next(), Some("0" | "1" | "2"));
    let mut count = 0;
    let rest_ok = parts.all(|p| {
        count += 1;
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    });
    first_ok && rest_ok && count > 0
}

/// `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
fn is_uuid_body(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Base64 with optional whitespace, in whole groups of four.
fn is_base64(s: &str) -> bool {
    let mut n = 0usize;
    let mut padding = 0usize;
    for b in s.bytes() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'=' => {
                padding += 1;
                n += 1;
            }
            b if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' => {
                if padding > 0 {
                    return false;
                }
                n += 1;
            }
            _ => return false,
        }
    }
    n > 0 && n.is_multiple_of(4) && padding <= 2
}

fn is_absolute_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// `n` ASCII digits at the start of `s`, as a number.
fn digits(s: &str, n: usize) -> Option<u32> {
    let d = s.get(..n)?;
    if d.bytes().all(|b| b.is_ascii_digit()) {
        d.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` at the start of `s`; returns the rest and the precision
/// (1 year, 2 month, 3 day).
fn date_prefix(s: &str) -> Option<(&str, u8)> {
    let year = digits(s, 4)?;
    if year == 0 {
        return None;
    }
    let Some(rest) = s[4..].strip_prefix('-') else {
        return Some((&s[4..], 1));
    };
    let month = digits(rest, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let Some(rest) = rest[2..].strip_prefix('-') else {
        return Some((&rest[2..], 2));
    };
    let day = digits(rest, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((&rest[2..], 3))
}

fn is_date(s: &str) -> bool {
    date_prefix(s).is_some_and(|(rest, _)| rest.is_empty())
}

/// `hh:mm:ss(.fff)?` at the start of `s`; returns the rest.
fn time_prefix(s: &str) -> Option<&str> {
    let h = digits(s, 2)?;
    let m = digits(s.get(3..)?, 2)?;
    let sec = digits(s.get(6..)?, 2)?;
    if s.as_bytes().get(2) != Some(&b':') || s.as_bytes().get(5) != Some(&b':') {
        return None;
    }
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let rest = &s[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        return Some(&frac[n..]);
    }
    Some(rest)
}

fn is_time(s: &str) -> bool {
    time_prefix(s).is_some_and(str::is_empty)
}

/// `Z` or `+hh:mm`/`-hh:mm` (up to 14:00).
fn is_zone(s: &str) -> bool {
    if s == "Z" {
        return true;
    }
    let Some(body) = s.strip_prefix(['+', '-']) else {
        return false;
    };
    body.len() == 5
        && body.as_bytes()[2] == b':'
        && match (digits(body, 2), digits(&body[3..], 2)) {
            (Some(h), Some(m)) => (h < 14 && m < 60) || (h == 14 && m == 0),
            _ => false,
        }
}

/// A dateTime (partial dates allowed; a time needs a full date and a zone), or with `instant`
/// a full date, time and zone.
fn is_date_time(s: &str, instant: bool) -> bool {
    let Some((rest, precision)) = date_prefix(s) else {
        return false;
    };
    if rest.is_empty() {
        return !instant;
    }
    let Some(time) = rest.strip_prefix('T') else {
        return false;
    };
    precision == 3 && time_prefix(time).is_some_and(is_zone)
}

/// Validates a resource against a profile (`$validate?profile=`): first as [`validate`] does,
/// then against the constraints the profile adds (see [`crate::defs::profile`]: US Core
/// 5.0.1 Patient, blood pressure, implantable device, MedicationRequest): higher minimum and
/// lower maximum cardinalities, fixed and pattern values, required bindings, and slices
/// recognised by a pattern (`Observation.component:systolic`). Extension slices and FHIRPath
/// invariants are not checked.
pub fn validate_profile(resource: &Value, profile_url: &str) -> Result<(), Vec<Issue>> {
    let mut v = Validator::default();
    v.resource(resource, "", None, 0, false);
    let Some(profile) = defs::profile(profile_url) else {
        v.issue(
            IssueCode::NotSupported,
            "(root)",
            format_args!("profile {profile_url} is not known"),
        );
        return Err(v.issues);
    };
    let rt = resource.get("resourceType").and_then(Value::as_str);
    if rt != Some(profile.type_name) {
        v.issue(
            IssueCode::Invalid,
            "(root)",
            format_args!("profile {} is for {}", profile.url, profile.type_name),
        );
        return Err(v.issues);
    }
    for c in profile.constraints {
        v.profile_constraint(resource, c);
    }
    for s in profile.slices {
        v.slice(resource, s);
    }
    if v.issues.is_empty() {
        Ok(())
    } else {
        Err(v.issues)
    }
}

/// The values (arrays flattened) at `path` below a root, with their locations.
fn values_at<'v>(root: &'v Value, path: &str) -> Vec<(&'v Value, String)> {
    let mut segments = path.split('.');
    let first = segments.next().unwrap_or("");
    let mut current = vec![(root, first.to_owned())];
    for seg in segments {
        let mut next = Vec::new();
        for (v, loc) in current {
            for (key, item) in properties(v, seg) {
                match item {
                    Value::Array(items) => {
                        for (i, it) in items.iter().enumerate() {
                            next.push((it, format!("{loc}.{key}[{i}]")));
                        }
                    }
                    other => next.push((other, format!("{loc}.{key}"))),
                }
            }
        }
        current = next;
    }
    current
}

/// The properties of an object that an element name means (`value[x]`: `valueQuantity`, …).
fn properties<'v>(v: &'v Value, name: &str) -> Vec<(&'v str, &'v Value)> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    match name.strip_suffix("[x]") {
        Some(stem) => obj
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            })
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
        None => obj
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .into_iter()
            .collect(),
    }
}

/// FHIR pattern matching: every property of the pattern is in the value; every item of a
/// pattern array matches some item of the value.
fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Object(p) => value.as_object().is_some_and(|v| {
            p.iter()
                .all(|(k, pv)| v.get(k).is_some_and(|vv| matches_pattern(vv, pv)))
        }),
        Value::Array(p) => {
            let items: Vec<&Value> = match value {
                Value::Array(v) => v.iter().collect(),
                other => vec![other],
            };
            p.iter()
                .all(|pv| items.iter().any(|vv| matches_pattern(vv, pv)))
        }
        other => value == other,
    }
}

impl Validator {
    fn profile_constraint(&mut self, root: &Value, c: &defs::ProfileConstraint) {
        let Some((parent, name)) = c.path.rsplit_once('.') else {
            return;
        };
        let pattern: Option<Value> = c.pattern.and_then(|p| serde_json::from_str(p).ok());
        for (parent_value, parent_loc) in values_at(root, parent) {
            let props = properties(parent_value, name);
            let mut count = 0usize;
            for (_, v) in &props {
                count += v.as_array().map_or(1, Vec::len);
            }
            if count == 0 && !name.ends_with("[x]") {
                // A primitive given only by its extension is present.
                count = usize::from(parent_value.get(format!("_{name}")).is_some());
            }
            let here = format!("{parent_loc}.{}", name.trim_end_matches("[x]"));
            if count < c.min as usize {
                self.issue(
                    IssueCode::Required,
                    &here,
                    format_args!("{} is required by the profile (minimum {})", c.path, c.min),
                );
            }
            if let Some(max) = c.max
                && count > max as usize
            {
                self.issue(
                    IssueCode::Invalid,
                    &here,
                    format_args!("the profile allows at most {max} {}", c.path),
                );
            }
            for (key, v) in props {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                let loc = format!("{parent_loc}.{key}");
                for item in items {
                    if let Some(p) = &pattern
                        && !matches_pattern(item, p)
                    {
                        self.issue(
                            IssueCode::Value,
                            &loc,
                            format_args!("the profile requires the value {p}"),
                        );
                    }
                    if let Some(url) = c.required_binding {
                        self.profile_binding(item, url, &loc);
                    }
                }
            }
        }
    }

    /// A required binding of a profile on a code, Coding or CodeableConcept value.
    fn profile_binding(&mut self, value: &Value, url: &str, loc: &str) {
        let Some(vs) = defs::required_value_set(url) else {
            return;
        };
        let Some(codes) = vs.codes else {
            return;
        };
        let codings: Vec<&Value> = match value {
            Value::String(code) => {
                if codes.binary_search(&code.as_str()).is_err() {
                    self.issue(
                        IssueCode::CodeInvalid,
                        loc,
                        format_args!("{code:?} is not in the required value set {url}"),
                    );
                }
                return;
            }
            Value::Object(o) if o.contains_key("coding") => o
                .get("coding")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            Value::Object(_) => vec![value],
            _ => return,
        };
        let of_set: Vec<&Value> = codings
            .into_iter()
            .filter(|c| {
                c.get("system")
                    .and_then(Value::as_str)
                    .is_some_and(|s| vs.systems.contains(&s))
            })
            .collect();
        let ok = of_set.is_empty()
            || of_set.iter().any(|c| {
                c.get("code")
                    .and_then(Value::as_str)
                    .is_some_and(|code| codes.binary_search(&code).is_ok())
            });
        if !ok {
            self.issue(
                IssueCode::CodeInvalid,
                loc,
                format_args!("no code is in the required value set {url}"),
            );
        }
    }

    fn slice(&mut self, root: &Value, s: &defs::SliceDef) {
        let Ok(pattern) = serde_json::from_str::<Value>(s.pattern) else {
            return;
        };
        let values = values_at(root, s.path);
        let matching = values
            .iter()
            .filter(|(v, _)| matches_pattern(v, &pattern))
            .count();
        let loc = s.path;
        if matching < s.min as usize {
            self.issue(
                IssueCode::Required,
                loc,
                format_args!(
                    "the profile requires at least {} {} matching {pattern}, found {matching}",
                    s.min, s.id
                ),
            );
        }
        if let Some(max) = s.max
            && matching > max as usize
        {
            self.issue(
                IssueCode::Invalid,
                loc,
                format_args!(
                    "the profile allows at most {max} {}, found {matching}",
                    s.id
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_formats() {
        assert!(is_date("2024") && is_date("2024-02") && is_date("2024-02-29"));
        assert!(
            !is_date("2023-02-29") && !is_date("2024-13") && !is_date("24") && !is_date("0000")
        );
        assert!(is_date_time("2024-01-02T03:04:05Z", true));
        assert!(is_date_time("2024-01-02T03:04:05.123+14:00", true));
        assert!(!is_date_time("2024-01-02T03:04:05", false));
        assert!(!is_date_time("2024-01", true));
        assert!(is_date_time("2024-01", false));
        assert!(!is_date_time("2024-01-02T25:04:05Z", false));
        assert!(is_time("23:59:60.5") && !is_time("23:59") && !is_time("24:00:00"));
        assert!(is_id("a-B.9") && !is_id("a_b") && !is_id(&"a".repeat(65)));
        assert!(is_code("a b") && !is_code(" a") && !is_code("a  b") && !is_code("a "));
        assert!(is_oid("urn:oid:1.2.3") && !is_oid("urn:oid:1") && !is_oid("urn:oid:1.02"));
        assert!(is_uuid_body("c757873d-ec9a-4326-a141-556f43239520"));
        assert!(!is_uuid_body("C757873D-EC9A-4326-A141-556F43239520"));
        assert!(
            is_base64("aGVsbG8=")
                && is_base64("aGVs\nbG8h")
                && !is_base64("aGVsbG8")
                && !is_base64("a=bc")
        );
        assert!(type_suffix_is("dateTime", "DateTime") && !type_suffix_is("dateTime", "dateTime"));
    }
}
